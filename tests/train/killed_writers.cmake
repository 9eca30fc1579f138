# Every kind of output file survives a writer killed at the worst moment. Each command runs with
# DMIS_TEST_KILL_AT_COMMIT naming its output, so that the process kills itself (SIGKILL) with
# the new file complete beside the target and not yet renamed onto it (io::AtomicFile::commit).
# The target must be byte for byte what it was (or still absent), and the same command run again
# must succeed over the temporary file the killed one left behind.
#   cmake -DDMIS=... -DDECK=... -DDATA=... -DWORK=... -P killed_writers.cmake
find_program(ENV_PROGRAM env REQUIRED)
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})
set(r ${WORK}/r)
set(common ${DECK} --set data.path=${DATA} --set run.out_dir=${WORK} --set run.name=r
           --set run.log_every=2 --set run.checkpoint_every=4 --set data.train_limit=64)

# ok(what, command...): the command succeeds
function(ok what)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${what}: exit ${rc}, expected 0:\n${out}\n${err}")
  endif()
endfunction()

# killed(what, target, command...): the command, killed at the commit of target, dies of the
# signal and leaves target as it was
function(killed what target)
  set(before "absent")
  if(EXISTS ${target})
    file(SHA256 ${target} before)
  endif()
  # env execs the command: a death by signal reaches execute_process as such
  execute_process(COMMAND ${ENV_PROGRAM} "DMIS_TEST_KILL_AT_COMMIT=${target}" ${ARGN}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(tmp "no temporary file")
  if(EXISTS ${target}.tmp OR EXISTS ${target}.part)
    set(tmp "its temporary file left")
  endif()
  if(NOT rc MATCHES "[Kk]ill" OR NOT tmp STREQUAL "its temporary file left")
    message(FATAL_ERROR "${what}: expected the writer of '${target}' killed before its rename, "
                        "found exit '${rc}', ${tmp}:\n${out}\n${err}")
  endif()
  set(after "absent")
  if(EXISTS ${target})
    file(SHA256 ${target} after)
  endif()
  if(NOT before STREQUAL after)
    message(FATAL_ERROR "${what}: '${target}' changed under a killed writer (${before} -> ${after})")
  endif()
  message(STATUS "${what}: killed before the rename (exit ${rc}); '${target}' as it was (${before})")
endfunction()

# the run's files: the supervision of a fresh run, then the deck, a checkpoint, an EMA snapshot
# and the records' truncation of resumed ones
killed("fresh run: supervision" ${r}/supervision.h5 ${DMIS} train ${common} --set train.steps=4)
ok("the run restarted" ${DMIS} train ${common} --set train.steps=4 --set run.resume=latest)
killed("resumed run: deck" ${r}/deck.yaml
       ${DMIS} train ${common} --set train.steps=8 --set run.resume=latest)
killed("resumed run: the records cut back to the checkpoint" ${r}/stats.jsonl
       ${DMIS} train ${common} --set train.steps=8 --set run.resume=latest)
killed("resumed run: EMA snapshot" ${r}/ema-00000008.h5
       ${DMIS} train ${common} --set train.steps=8 --set run.resume=latest)
# killed between the snapshot and the checkpoint: the continued run redoes the steps from the
# last checkpoint and writes both (the other order left a run at step 8 without its snapshot)
killed("resumed run: checkpoint" ${r}/ckpt-00000008.h5
       ${DMIS} train ${common} --set train.steps=8 --set run.resume=latest)
ok("the run continued" ${DMIS} train ${common} --set train.steps=8 --set run.resume=latest)
if(NOT EXISTS ${r}/ckpt-00000008.h5 OR NOT EXISTS ${r}/ema-00000008.h5)
  message(FATAL_ERROR "the continued run wrote no checkpoint at step 8")
endif()

# samples (the grid first, then the samples file), with another seed so that the new files differ
ok("sample" ${DMIS} sample ${common})
killed("sample: grid" ${r}/samples.png ${DMIS} sample ${common} --set sample.seed=7)
killed("sample: samples" ${r}/samples.h5 ${DMIS} sample ${common} --set sample.seed=7)
ok("sample again" ${DMIS} sample ${common} --set sample.seed=7)

# the diffusion classifier's posteriors
ok("classify" ${DMIS} classify ${common} --limit 8)
killed("classify: posteriors" ${r}/posteriors.h5 ${DMIS} classify ${common} --limit 8 --set classify.points=2)
ok("classify again" ${DMIS} classify ${common} --limit 8 --set classify.points=2)

# an evaluator and a dataset, each over an existing file
set(ev ${WORK}/evaluator.h5)
ok("train-evaluator" ${DMIS} eval train-evaluator --data ${DATA} --out ${ev} --epochs 1 --limit 64 --test-limit 32)
killed("train-evaluator" ${ev} ${DMIS} eval train-evaluator --data ${DATA} --out ${ev} --epochs 1
       --limit 64 --test-limit 32 --seed 5)
ok("the evaluator again" ${DMIS} eval train-evaluator --data ${DATA} --out ${ev} --epochs 1 --limit 64 --test-limit 32 --seed 5)
set(ds ${WORK}/ds.h5)
ok("import" ${DMIS} import fmnist --out ${ds})
killed("import over an existing dataset" ${ds} ${DMIS} import fmnist --out ${ds} --force
       --supervision noisy-symmetric:0.2)

# DiffEM's laps: a lap's state goes to lap-NN.h5.part, its reconstructions to lap-NN.h5.recon,
# and the lap counts only once lap-NN.h5 is renamed from the .part, last
set(masked ${WORK}/mask50.h5)
ok("import a corrupted set" ${DMIS} import fmnist --out ${masked} --corrupt mask:0.5 --keep-clean)
set(em ${DECK} --set data.path=${masked} --set method.name=diffem --set supervision.kind=clean
       --set data.train_limit=64 --set diffem.laps=1 --set diffem.lap_kimg=0.032
       --set diffem.sample_steps=2 --set diffem.sample_batch=32 --set diffem.final_kimg=0.016
       --set run.out_dir=${WORK} --set run.name=em)
killed("DiffEM: lap" ${WORK}/em/diffem/lap-01.h5 ${DMIS} train ${em})
ok("DiffEM resumed" ${DMIS} train ${em} --set run.resume=latest)
if(NOT EXISTS ${WORK}/em/diffem/lap-01.h5 OR EXISTS ${WORK}/em/diffem/lap-01.h5.part)
  message(FATAL_ERROR "the resumed DiffEM run did not complete lap 1 over the killed one's .part")
endif()
