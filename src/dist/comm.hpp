#pragma once
// The process-wide runtime: MPI (when built with it) and Kokkos, initialised and finalised in the
// right order, plus the little of MPI the rest of dmis needs to know.
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

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

/// Whether MPI may be handed device (GPU) memory: the library says so at run time
/// (MPIX_Query_cuda_support / MPIX_Query_rocm_support), overridden by DMIS_MPI_GPU_AWARE=0|1.
bool gpu_aware();

/// In-place sums over all ranks (no-ops on one rank). `data` is host memory unless
/// gpu_aware() holds. Every rank must call them in the same order.
void allreduce_sum(float* data, size_t n);
void allreduce_sum(double* data, size_t n);
void allreduce_sum(int* data, size_t n);
/// The largest value over all ranks.
double allreduce_max(double v);

/// Root receives every rank's `local` (concatenated in rank order); other ranks get {}.
std::vector<float> gather(const std::vector<float>& local, int root = 0);
std::vector<int32_t> gather(const std::vector<int32_t>& local, int root = 0);

void barrier();

/// Ends the whole job (all ranks) with `code`; returns only without MPI.
[[noreturn]] void abort_job(int code);

/// [first, last) of n items for this rank: contiguous, balanced shares in rank order.
std::pair<long, long> share(long n, int r = -1, int ranks = -1);

}  // namespace dmis::dist
