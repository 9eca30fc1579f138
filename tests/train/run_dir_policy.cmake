# The run directory's policy: a run killed before its first checkpoint continues with
# run.resume: latest from step 0 (it was a dead end: latest found no checkpoint, none found a
# run), its old records dropped; two runs writing one directory at once: the second stops
# (exit 2, the lock named) instead of both writing stats.jsonl.
#   cmake -DDMIS=... -DDECK=... -DDATA=... -DWORK=... -P run_dir_policy.cmake
file(REMOVE_RECURSE ${WORK})
set(common ${DECK} --set data.path=${DATA} --set run.out_dir=${WORK} --set run.name=r
           --set run.log_every=2)
execute_process(COMMAND ${DMIS} train ${common} --set train.steps=4
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "dmis train failed (${rc}):\n${out}\n${err}")
endif()
# as if killed before its first checkpoint: the deck, log and records, no checkpoint
file(GLOB h5 ${WORK}/r/ckpt-*.h5 ${WORK}/r/ema-*.h5)
file(REMOVE ${h5})
execute_process(COMMAND ${DMIS} train ${common} --set train.steps=4
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 2 OR NOT err MATCHES "already holds a run; set run.resume: latest")
  message(FATAL_ERROR "run.resume none on a stopped run: exit ${rc}, expected 2:\n${err}")
endif()
execute_process(COMMAND ${DMIS} train ${common} --set train.steps=4 --set run.resume=latest
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out MATCHES "holds no complete checkpoint \\(the run stopped before its first\\): starting from step 0")
  message(FATAL_ERROR "run.resume latest on a run stopped before its first checkpoint: exit ${rc}:\n${out}\n${err}")
endif()
file(STRINGS ${WORK}/r/stats.jsonl lines)
list(LENGTH lines n)
if(NOT n EQUAL 2)
  message(FATAL_ERROR "stats.jsonl holds ${n} records after the restart, expected 2 (steps 2 and 4):\n${lines}")
endif()
# two runs on one directory at once (execute_process runs its commands concurrently; each
# writes its own log, so that neither is cut off by the pipe execute_process sets between them)
execute_process(COMMAND sh -c "exec \"$0\" \"$@\" > '${WORK}/a.log' 2>&1" ${DMIS} train ${common}
                        --set train.steps=32 --set run.resume=latest
                COMMAND sh -c "exec \"$0\" \"$@\" > '${WORK}/b.log' 2>&1" ${DMIS} train ${common}
                        --set train.steps=32 --set run.resume=latest
                RESULTS_VARIABLE rcs)
file(READ ${WORK}/a.log a)
file(READ ${WORK}/b.log b)
list(SORT rcs)
if(NOT rcs STREQUAL "0;2" OR NOT "${a}${b}" MATCHES "the run directory '[^']*r' is in use by another run \\(its lock '[^']*.lock' is held\\)")
  message(FATAL_ERROR "two runs on one directory: exits ${rcs}, expected 0 and 2:\n${a}\n${b}")
endif()
