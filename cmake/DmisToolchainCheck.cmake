# Known miscompiles of the toolchain found, checked by running the pattern they break (after
# find_package(Kokkos) and the C++ standard). A crash in a run is worse than a stop here that
# names the cause.
#
# GCC 12.2-12.4 (12.5 in one more case) and Kokkos' mdspan-based View (Kokkos 4.7 on, and the
# develop snapshots before it): GCC can initialise a default-constructed View's allocation
# tracker to 0 instead of its "not tracked" flag, and the View's next assignment releases a null
# allocation record (segfault; kokkos/kokkos#7464). Kokkos' workaround (#8223) was merged in
# July 2025, before 4.7.00; #9262 (2026-06) fixes a further case seen with Kokkos 5.1.1 and GCC
# 12.5. Seen here with the Kokkos develop snapshot of 2025-06 and GCC 12.2: the evaluator's tests,
# `dmis eval` and `dmis condense` crashed (docs/kokkos-versions.md); the same snapshot compiled by
# nvcc 13 with GCC 12.2 as host compiler passed this check.
option(DMIS_CHECK_TOOLCHAIN "Check the compiler and Kokkos found for known miscompiles" ON)
if(DMIS_CHECK_TOOLCHAIN AND NOT CMAKE_CROSSCOMPILING AND Kokkos_VERSION VERSION_GREATER_EQUAL 4.5)
  try_run(_dmis_check_run _dmis_check_compiled
    ${CMAKE_BINARY_DIR}/CMakeFiles/dmis-checks ${CMAKE_CURRENT_LIST_DIR}/checks/view_default_assign.cpp
    LINK_LIBRARIES Kokkos::kokkos
    CXX_STANDARD ${CMAKE_CXX_STANDARD}
    CXX_STANDARD_REQUIRED ON
    COMPILE_OUTPUT_VARIABLE _dmis_check_compile_out
    RUN_OUTPUT_VARIABLE _dmis_check_run_out)
  if(NOT _dmis_check_compiled)
    message(STATUS "dmis: toolchain check (View assignment) did not compile; skipped")
  elseif(_dmis_check_run_out MATCHES "dmis-check: ok")
    message(STATUS "dmis: toolchain check (View assignment): ok")
  elseif(_dmis_check_run_out MATCHES "dmis-check: start")
    message(FATAL_ERROR
      "dmis: ${CMAKE_CXX_COMPILER_ID} ${CMAKE_CXX_COMPILER_VERSION} miscompiles Kokkos ${Kokkos_VERSION}'s "
      "View (${Kokkos_DIR}): assigning to a default-constructed View crashed "
      "(${CMAKE_CURRENT_LIST_DIR}/checks/view_default_assign.cpp, result '${_dmis_check_run}'). "
      "This is the GCC 12 bug of kokkos/kokkos#7464: use a Kokkos that carries its workaround "
      "(kokkos/kokkos#8223, merged 2025-07: Kokkos 4.7.00 and later) or another compiler (GCC <= 12.1 "
      "or >= 13, Clang). -DDMIS_CHECK_TOOLCHAIN=OFF skips this check.")
  else()
    message(STATUS "dmis: toolchain check (View assignment) could not run here "
                   "('${_dmis_check_run}'); skipped")
  endif()
endif()
