# A checkpoint whose DMIS state (/method/logit_scale) cannot be taken: resuming from it stops
# with an error that names the file and the dataset (exit 2), and leaves the run as it was.
#   cmake -DDMIS=... -DDECK=... -DDATA=... -DWORK=... -DPYTHON=... -P bad_method_state.cmake
file(REMOVE_RECURSE ${WORK})
set(common ${DECK} --set data.path=${DATA} --set run.out_dir=${WORK} --set run.name=bad)
execute_process(COMMAND ${DMIS} train ${common} --set train.steps=8
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "dmis train failed (${rc}):\n${out}\n${err}")
endif()
set(ck ${WORK}/bad/ckpt-00000008.h5)
execute_process(COMMAND ${PYTHON} -c
  "import h5py, sys; f = h5py.File(sys.argv[1], 'r+'); d = f['/method/logit_scale']; d[...] = -d[...]; f.close()"
  ${ck} RESULT_VARIABLE rc ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "could not patch ${ck} (${rc}): ${err}")
endif()
file(SHA256 ${ck} before)
file(SHA256 ${WORK}/bad/stats.jsonl stats_before)
execute_process(COMMAND ${DMIS} train ${common} --set train.steps=12 --set run.resume=latest
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 2)
  message(FATAL_ERROR "resuming from a negative logit scale: exit ${rc}, expected 2:\n${out}\n${err}")
endif()
if(NOT err MATCHES "cannot resume from '[^']*ckpt-00000008.h5': /method: logit scale must be positive, found -")
  message(FATAL_ERROR "the error does not name the file and the value:\n${err}")
endif()
file(SHA256 ${ck} after)
file(SHA256 ${WORK}/bad/stats.jsonl stats_after)
if(NOT before STREQUAL after OR NOT stats_before STREQUAL stats_after)
  message(FATAL_ERROR "the failed resume changed the run's files")
endif()
message(STATUS "bad method state: ${err}")
