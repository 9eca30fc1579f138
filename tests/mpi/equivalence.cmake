# The same deck on 1 rank, and twice on 2 ranks (same global batch):
#  - 2 ranks repeat exactly (losses and final parameters bitwise);
#  - 1 vs 2 ranks agree within the rounding of one reordered sum (compare_runs.py).
#   cmake -DDMIS= -DDECK= -DDATA= -DWORK= -DNP1="mpirun|-np|1" -DNP2=... -DPYTHON= -DCOMPARE= -P equivalence.cmake
string(REPLACE "|" ";" NP1 "${NP1}")
string(REPLACE "|" ";" NP2 "${NP2}")
file(REMOVE_RECURSE ${WORK})
function(run name)
  execute_process(COMMAND ${ARGN} ${DMIS} train ${DECK} --set data.path=${DATA}
                          --set run.out_dir=${WORK}/${name} --set run.log_every=1
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name}: `${ARGN} dmis train` failed (${rc}):\n${out}\n${err}")
  endif()
endfunction()
run(np1 ${NP1})
run(np2a ${NP2})
run(np2b ${NP2})
file(GLOB d1 ${WORK}/np1/*)
file(GLOB d2a ${WORK}/np2a/*)
file(GLOB d2b ${WORK}/np2b/*)
file(GLOB ck RELATIVE ${d2a} ${d2a}/ckpt-*.h5)
list(SORT ck)
list(GET ck -1 last)

# repeatability at a fixed rank count: bitwise
execute_process(COMMAND ${PYTHON} ${COMPARE} ${d2a}/stats.jsonl ${d2b}/stats.jsonl 0
                RESULT_VARIABLE rc OUTPUT_VARIABLE o ERROR_VARIABLE e)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "two runs on 2 ranks differ:\n${o}${e}")
endif()
foreach(ds params adam_m adam_v ema)
  execute_process(COMMAND h5diff ${d2a}/${last} ${d2b}/${last} /${ds} /${ds}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE o)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "two runs on 2 ranks end with different ${ds} (${last}):\n${o}")
  endif()
endforeach()
message(STATUS "2 ranks: repeat is bitwise identical (${last})")

# 1 vs 2 ranks: within tolerance
# (the DMIS classification loss within 1e-4: compare_runs.py says why)
execute_process(COMMAND ${PYTHON} ${COMPARE} ${d1}/stats.jsonl ${d2a}/stats.jsonl 1e-5 1e-4
                RESULT_VARIABLE rc OUTPUT_VARIABLE o ERROR_VARIABLE e)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "1 and 2 ranks differ beyond the tolerance:\n${o}${e}")
endif()
message(STATUS "${o}")
