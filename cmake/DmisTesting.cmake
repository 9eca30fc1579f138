# dmis_add_test(NAME n SOURCES ... [LABELS ...] [THREADS 1 2] [TIMEOUT s] [MAIN file|NONE] [ARGS ...])
# Builds test_<n> from the sources plus tests/main.cpp and registers it once per thread count
# (OMP_NUM_THREADS), as <n>.threads<k>.
set(DMIS_TEST_THREADS "1;2" CACHE STRING "OpenMP thread counts every test runs with")

function(dmis_add_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT;MAIN" "SOURCES;LABELS;THREADS;LIBS;ARGS" ${ARGN})
  if(NOT T_THREADS)
    set(T_THREADS ${DMIS_TEST_THREADS})
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 900)
  endif()
  if(NOT T_MAIN)
    set(T_MAIN ${PROJECT_SOURCE_DIR}/tests/main.cpp)
  endif()
  if(T_MAIN STREQUAL "NONE")  # the sources bring their own main
    set(T_MAIN "")
  endif()
  add_executable(test_${T_NAME} ${T_SOURCES} ${T_MAIN})
  target_include_directories(test_${T_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  target_link_libraries(test_${T_NAME} PRIVATE dmis_lib dmis_flags GTest::gtest ${T_LIBS})
  foreach(_t ${T_THREADS})
    add_test(NAME ${T_NAME}.threads${_t} COMMAND test_${T_NAME} ${T_ARGS})
    set_tests_properties(${T_NAME}.threads${_t} PROPERTIES
      LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
      ENVIRONMENT "OMP_NUM_THREADS=${_t};OMP_PROC_BIND=false;DMIS_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
  endforeach()
endfunction()
