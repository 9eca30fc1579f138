// GoogleTest main for dmis tests: Kokkos is initialised around RUN_ALL_TESTS, except when only
// listing tests (so discovery does not start the runtime).
#include <gtest/gtest.h>

#include <Kokkos_Core.hpp>
#include <cstring>

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  for (int i = 1; i < argc; ++i)
    if (std::strcmp(argv[i], "--gtest_list_tests") == 0) return RUN_ALL_TESTS();
  Kokkos::initialize(argc, argv);
  const int result = RUN_ALL_TESTS();
  Kokkos::finalize();
  return result;
}
