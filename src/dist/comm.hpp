#pragma once
// The process-wide runtime: MPI (when built with it) and Kokkos, initialised and finalised in the
// right order, plus the little of MPI the rest of dmis needs to know.
#include <string>

namespace dmis::dist {

/// Initialises MPI (if enabled) then Kokkos; finalises in reverse order. One per process.
class Runtime {
public:
  Runtime(int& argc, char**& argv);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;
};

/// This process' rank and the number of ranks (0 and 1 without MPI).
int rank();
int size();

/// "Open MPI v4.1.4 ..., 2 ranks" or "disabled at build time".
std::string mpi_description();

}  // namespace dmis::dist
