#include "core/version.hpp"

#include <Kokkos_Core.hpp>
#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>
#if defined(__unix__)
#include <dlfcn.h>
#endif

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
// OpenBLAS's own introspection, looked up at run time: the project links whatever BLAS Kokkos
// Kernels was built against, so these symbols may be absent
const char* openblas_string(const char* symbol) {
#if defined(__unix__)
  using Fn = char* (*)();
  if (auto f = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, symbol))) return f();
#else
  (void)symbol;
#endif
  return nullptr;
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

// the CPU's flags from /proc/cpuinfo (Linux; empty elsewhere)
std::string cpu_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("flags", 0) == 0) {
      const auto colon = line.find(':');
      return colon == std::string::npos ? std::string() : line.substr(colon + 1);
    }
  return {};
}

// the CPU's model name from /proc/cpuinfo (Linux; "unknown" elsewhere) and the logical CPUs the
// system has: what a run's log names so that its timings can be read later on another machine
std::string cpu_description() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, model = "unknown";
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      const auto start = colon == std::string::npos ? colon : line.find_first_not_of(" \t", colon + 1);
      if (start != std::string::npos) model = line.substr(start);
      break;
    }
  std::ostringstream os;
  os << model << ", " << std::thread::hardware_concurrency() << " logical CPUs";
  return os.str();
}
}  // namespace

std::string openblas_core() {
  const char* core = openblas_string("openblas_get_corename");
  return core ? core : "";
}

std::string blas_description() {
  const char* config = openblas_string("openblas_get_config");
  const char* core = openblas_string("openblas_get_corename");
  if (!config) return "not OpenBLAS";
  const char* ct = std::getenv("OPENBLAS_CORETYPE");
  std::ostringstream os;
  os << config << " (kernels: " << (core ? core : "unknown") << "; OPENBLAS_CORETYPE "
     << (ct ? ct : "unset") << ")";
  return os.str();
}

std::string blas_warning_for(const std::string& core, const std::string& cpu_flags,
                             const char* coretype) {
  if (core.empty()) return {};
  const std::string flags = " " + cpu_flags + " ";
  const bool avx2 = flags.find(" avx2 ") != std::string::npos;
  const bool avx512 = flags.find(" avx512f ") != std::string::npos;
  if (!avx2) return {};
  // OpenBLAS's x86-64 kernel sets that use at least AVX2 (the rest: SSE or AVX only)
  const std::string c = lower(core);
  for (const char* good : {"haswell", "zen", "skylakex", "cooperlake", "sapphirerapids", "excavator"})
    if (c == good) return {};
  const char* suggest = avx512 ? "SkylakeX" : "Haswell";
  std::ostringstream os;
  os << "OpenBLAS runs its '" << core << "' kernels on a CPU with "
     << (avx512 ? "AVX-512" : "AVX2") << " ("
     << (coretype ? "OPENBLAS_CORETYPE=" + std::string(coretype)
                  : std::string("it does not know this CPU"))
     << "): every GEMM runs at a fraction of the CPU's speed (Intel Xeon 6 with Debian's "
        "OpenBLAS 0.3.21: the quickstart's training step 2.2x slower than with SkylakeX). Set "
        "OPENBLAS_CORETYPE="
     << suggest << " in the environment before starting dmis.";
  return os.str();
}

std::string blas_warning() {
  return blas_warning_for(openblas_core(), cpu_flags(), std::getenv("OPENBLAS_CORETYPE"));
}

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
  os << "  CPU            " << cpu_description() << "\n";
  os << "  Kokkos Kernels " << DMIS_KOKKOSKERNELS_VERSION_STRING << "\n";
  os << "  BLAS           " << blas_description() << "\n";
#if !defined(KOKKOS_ENABLE_CUDA) && !defined(KOKKOS_ENABLE_HIP) && !defined(KOKKOS_ENABLE_SYCL)
  // a CPU build's GEMMs all go through this BLAS (scripts/quickstart reads the value to set here)
  if (const std::string w = blas_warning(); !w.empty()) os << "  BLAS warning   " << w << "\n";
#endif
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
