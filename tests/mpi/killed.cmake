# A job killed while it writes a checkpoint every step: what is left must resume.
#   cmake -DDMIS= -DDECK= -DDATA= -DWORK= -DLAUNCH="mpirun|-np|2|..." -P killed.cmake
string(REPLACE "|" ";" LAUNCH "${LAUNCH}")
file(REMOVE_RECURSE ${WORK})
set(common ${DECK} --set data.path=${DATA} --set run.out_dir=${WORK} --set run.checkpoint_every=1
    --set run.keep_checkpoints=2 --set run.log_every=1)
# SIGTERM to mpirun reaches the ranks at once (default action: die, mid-write or not)
execute_process(COMMAND timeout -s TERM 6 ${LAUNCH} ${DMIS} train ${common} --set train.steps=100000
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0)
  message(FATAL_ERROR "the run was meant to be killed but finished:\n${out}")
endif()
file(GLOB run_dir ${WORK}/*)
# mpirun dies first; its ranks can go on for a moment and write more checkpoints: wait until the
# directory has been still for 2 s (at most 30 s) before reading what the kill left
set(prev "")
foreach(i RANGE 30)
  file(GLOB ck RELATIVE ${run_dir} ${run_dir}/ckpt-*.h5)
  list(SORT ck)
  if(i GREATER 1 AND "${ck}" STREQUAL "${prev}" AND "${ck}" STREQUAL "${prev2}")
    break()
  endif()
  set(prev2 "${prev}")
  set(prev "${ck}")
  execute_process(COMMAND ${CMAKE_COMMAND} -E sleep 1)
endforeach()
list(LENGTH ck n)
if(n EQUAL 0)
  message(FATAL_ERROR "no complete checkpoint after 6 s (slow machine?):\n${out}\n${err}")
endif()
list(SORT ck)
list(GET ck -1 last)
string(REGEX REPLACE "ckpt-0*([0-9]+)\\.h5" "\\1" step "${last}")
math(EXPR target "${step} + 2")
execute_process(COMMAND ${LAUNCH} ${DMIS} train ${common} --set train.steps=${target}
                        --set run.resume=latest
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0 OR NOT out MATCHES "resumed from .*${last} at step ${step}")
  message(FATAL_ERROR "resuming after the kill failed (${rc}):\n${out}\n${err}")
endif()
message(STATUS "killed after ${last}; resumed from it to step ${target}")
