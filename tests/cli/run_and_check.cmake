# Runs a command and checks its exit code and output:
#   cmake -DCMD="prog;arg;..." -DEXPECT_RC=2 -DEXPECT_REGEX="..." [-DREJECT_REGEX="..."] -P run_and_check.cmake
execute_process(COMMAND ${CMD} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(all "${out}${err}")
if(NOT rc STREQUAL "${EXPECT_RC}")
  message(FATAL_ERROR "`${CMD}` exited with ${rc}, expected ${EXPECT_RC}. Output:\n${all}")
endif()
if(DEFINED EXPECT_REGEX AND NOT all MATCHES "${EXPECT_REGEX}")
  message(FATAL_ERROR "`${CMD}` output does not match '${EXPECT_REGEX}'. Output:\n${all}")
endif()
if(DEFINED REJECT_REGEX AND all MATCHES "${REJECT_REGEX}")
  message(FATAL_ERROR "`${CMD}` output matches '${REJECT_REGEX}', which it must not. Output:\n${all}")
endif()
message(STATUS "ok: `${CMD}` exited ${rc}")
