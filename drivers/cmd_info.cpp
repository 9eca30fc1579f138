#include <iostream>

#include "commands.hpp"
#include "core/error.hpp"
#include "core/version.hpp"
#include "dist/comm.hpp"

namespace dmis::cli {

int cmd_info(const Args& args) {
  for (const auto& a : args) {
    if (a == "--help" || a == "-h") {
      std::cout << "usage: dmis info\n\nPrints the dmis version and git hash, the Kokkos version, "
                   "its enabled backends and\nconcurrency, Kokkos Kernels, MPI and HDF5.\n";
      return 0;
    }
    throw UsageError(cat("unknown option '", a, "'"));
  }
  if (dist::rank() == 0) std::cout << banner();
  return 0;
}

}  // namespace dmis::cli
