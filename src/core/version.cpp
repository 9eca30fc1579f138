#include "core/version.hpp"

#include <Kokkos_Core.hpp>
#include <sstream>

#include "dist/comm.hpp"
#include "dmis_config.hpp"
#if DMIS_ENABLE_HDF5
#include <hdf5.h>
#endif

namespace dmis {

const char* version() { return DMIS_VERSION_STRING; }

namespace {
std::string kokkos_backends() {
  std::string s;
  auto add = [&](const char* name) { s += (s.empty() ? "" : ", ") + std::string(name); };
#ifdef KOKKOS_ENABLE_SERIAL
  add("Serial");
#endif
#ifdef KOKKOS_ENABLE_OPENMP
  add("OpenMP");
#endif
#ifdef KOKKOS_ENABLE_THREADS
  add("Threads");
#endif
#ifdef KOKKOS_ENABLE_CUDA
  add("Cuda");
#endif
#ifdef KOKKOS_ENABLE_HIP
  add("HIP");
#endif
#ifdef KOKKOS_ENABLE_SYCL
  add("SYCL");
#endif
  return s;
}

std::string kokkos_version() {
  std::ostringstream os;
  os << KOKKOS_VERSION / 10000 << "." << (KOKKOS_VERSION / 100) % 100 << "." << KOKKOS_VERSION % 100;
  return os.str();
}
}  // namespace

std::string banner() {
  std::ostringstream os;
  os << "dmis " << version() << " (git " << git_hash() << ", " << DMIS_BUILD_TYPE << ", "
     << DMIS_CXX_COMPILER << ", C++" << __cplusplus / 100 - 2000 << ")\n";
  os << "  Kokkos         " << kokkos_version() << ", backends: " << kokkos_backends()
     << "; default execution space " << Kokkos::DefaultExecutionSpace::name() << "\n";
  if (Kokkos::is_initialized()) {
    os << "  concurrency    " << Kokkos::DefaultExecutionSpace().concurrency() << " ("
       << Kokkos::DefaultExecutionSpace::name() << "), "
       << Kokkos::DefaultHostExecutionSpace().concurrency() << " ("
       << Kokkos::DefaultHostExecutionSpace::name() << " host)\n";
  }
  os << "  Kokkos Kernels " << DMIS_KOKKOSKERNELS_VERSION_STRING << "\n";
  os << "  MPI            " << dist::mpi_description() << "\n";
#if DMIS_ENABLE_HDF5
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
  os << "  HDF5           " << maj << "." << min << "." << rel << "\n";
#else
  os << "  HDF5           disabled at build time (DMIS_ENABLE_HDF5=OFF)\n";
#endif
  os << "  yaml-cpp       " << DMIS_YAMLCPP_VERSION_STRING << "\n";
  return os.str();
}

}  // namespace dmis
