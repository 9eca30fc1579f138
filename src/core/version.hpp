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

}  // namespace dmis
