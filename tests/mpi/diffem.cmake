# DiffEM on 1 and 2 ranks: the M-step is data parallel and the E-step shards the observations
# over the ranks and sums the reconstructions back; the lap records must agree within rounding
# (a lost or doubled shard changes the reconstruction error by far more).
#   cmake -DDMIS= -DDECK= -DWORK= -DNP1="mpirun|-np|1" -DNP2=... -DPYTHON= -P diffem.cmake
string(REPLACE "|" ";" NP1 "${NP1}")
string(REPLACE "|" ";" NP2 "${NP2}")
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
execute_process(COMMAND ${DMIS} import fmnist --out ${WORK}/mask50.h5 --corrupt mask:0.5 --keep-clean
                RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "import failed: ${err}")
endif()
function(run name)
  execute_process(COMMAND ${ARGN} ${DMIS} train ${DECK} --set data.path=${WORK}/mask50.h5
                          --set run.out_dir=${WORK}/${name} --set method.name=diffem
                          --set supervision.kind=clean --set data.train_limit=64 --set diffem.laps=1
                          --set diffem.lap_kimg=0.064 --set diffem.sample_steps=3
                          --set diffem.sample_batch=16 --set diffem.final_kimg=0.032
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name}: `${ARGN} dmis train` (diffem) failed (${rc}):\n${out}\n${err}")
  endif()
endfunction()
run(np1 ${NP1})
run(np2 ${NP2})
# the lap records: lap 0 (the start) and lap 1, within 1e-4 relative
execute_process(COMMAND ${PYTHON} -c "
import json, sys
a, b = ([json.loads(l) for l in open(p) if l.strip()] for p in sys.argv[1:3])
assert len(a) == len(b) == 2, f'{len(a)} and {len(b)} lap records, expected 2'
for ra, rb in zip(a, b):
    for k in ('mse', 'mse_missing', 'loss'):
        x, y = ra[k], rb[k]
        if x is None and y is None:
            continue
        assert x is not None and y is not None and abs(x - y) <= 1e-4 * max(abs(x), abs(y)), \\
            f'lap {ra[\"lap\"]}: {k} {x} on 1 rank, {y} on 2 ranks'
print('laps agree:', [(r['lap'], r['mse'], r['loss']) for r in a], [(r['lap'], r['mse'], r['loss']) for r in b])
" ${WORK}/np1/tiny-train/diffem/stats.jsonl ${WORK}/np2/tiny-train/diffem/stats.jsonl
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "DiffEM on 1 and 2 ranks differ:\n${out}${err}")
endif()
message(STATUS "${out}")
