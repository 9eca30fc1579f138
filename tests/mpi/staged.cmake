# 2 ranks with the gradient sum staged through host memory (DMIS_MPI_STAGED=1) and in place:
# bitwise the same losses and final parameters.
string(REPLACE "|" ";" NP2 "${NP2}")
file(REMOVE_RECURSE ${WORK})
function(run name)
  execute_process(COMMAND ${CMAKE_COMMAND} -E env ${ARGN} ${NP2} ${DMIS} train ${DECK}
                          --set data.path=${DATA} --set run.out_dir=${WORK}/${name} --set run.log_every=1
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name} failed (${rc}):\n${out}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()
run(staged DMIS_MPI_STAGED=1)
if(NOT out MATCHES "gradients all-reduced through a host staging buffer")
  message(FATAL_ERROR "the staged path was not taken:\n${out}")
endif()
run(direct DMIS_MPI_STAGED=0)
if(NOT out MATCHES "gradients all-reduced in place \\(host memory\\)")
  message(FATAL_ERROR "the in-place path was not taken:\n${out}")
endif()
file(GLOB a ${WORK}/staged/*)
file(GLOB b ${WORK}/direct/*)
execute_process(COMMAND ${PYTHON} ${COMPARE} ${a}/stats.jsonl ${b}/stats.jsonl 0
                RESULT_VARIABLE rc OUTPUT_VARIABLE o ERROR_VARIABLE e)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "staged and in-place runs differ:\n${o}${e}")
endif()
execute_process(COMMAND h5diff ${a}/ckpt-00000016.h5 ${b}/ckpt-00000016.h5 /params /params
                RESULT_VARIABLE rc OUTPUT_VARIABLE o)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "staged and in-place runs end with different parameters:\n${o}")
endif()
