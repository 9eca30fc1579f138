# Runs CMD and checks that its standard output equals the content of FILE:
#   cmake -DCMD="prog;args" -DFILE=path -DHINT="how to regenerate" -P compare_output.cmake
execute_process(COMMAND ${CMD} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "`${CMD}` failed (${rc}): ${err}")
endif()
file(READ ${FILE} want)
if(NOT out STREQUAL want)
  message(FATAL_ERROR "${FILE} is out of date with `${CMD}`; regenerate it: ${HINT}")
endif()
