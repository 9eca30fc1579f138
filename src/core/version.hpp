#pragma once
#include <string>

namespace dmis {

/// git describe of the source tree at build time (with -dirty), or "unknown".
const char* git_hash();

/// The dmis version, e.g. "0.1.0".
const char* version();

/// A multi-line banner: dmis version and git hash, Kokkos version and backends, concurrency,
/// Kokkos Kernels, MPI library and ranks, HDF5, compiler and build type. Printed by `dmis info`
/// and at the start of every run.
std::string banner();

/// The BLAS the process loaded, as "OpenBLAS 0.3.21 ... (kernels: Haswell; OPENBLAS_CORETYPE
/// unset)" where it is OpenBLAS (found at run time by its own symbols), else "not OpenBLAS".
std::string blas_description();

/// The kernel set OpenBLAS chose ("Haswell", "SkylakeX", "Prescott", ...), or "" where the
/// BLAS is not OpenBLAS.
std::string openblas_core();

/// Empty, or a warning that OpenBLAS runs kernels well below what the CPU offers: an OpenBLAS
/// that does not know the CPU falls back to its SSE3 'Prescott' kernels (Debian 12's 0.3.21 on
/// Intel Xeon 6: every GEMM at about half speed or less), which only OPENBLAS_CORETYPE set
/// before the process starts can change. Names the value to set.
std::string blas_warning();

/// blas_warning's rule, for its tests: `core` the OpenBLAS kernel set, `cpu_flags` the CPU's
/// flags as /proc/cpuinfo lists them, `coretype` the environment's OPENBLAS_CORETYPE or null.
std::string blas_warning_for(const std::string& core, const std::string& cpu_flags,
                             const char* coretype);

}  // namespace dmis
