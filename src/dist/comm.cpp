#include "dist/comm.hpp"

#include <Kokkos_Core.hpp>
#include <cstdlib>
#include <algorithm>
#include <sstream>

#include "dmis_config.hpp"
#if DMIS_ENABLE_MPI
#include <mpi.h>
#if __has_include(<mpi-ext.h>)
#include <mpi-ext.h>  // Open MPI: MPIX_Query_cuda_support, MPIX_Query_rocm_support
#endif
#endif

namespace dmis::dist {

#if DMIS_ENABLE_MPI
namespace {
bool g_mpi_owned = false;  // MPI initialised by this Runtime (finalised by it too)
}
#endif

Runtime::Runtime(int& argc, char**& argv) {
#if DMIS_ENABLE_MPI
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
    g_mpi_owned = true;
  }
#endif
  Kokkos::initialize(argc, argv);
}

Runtime::~Runtime() {
  Kokkos::finalize();
#if DMIS_ENABLE_MPI
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (g_mpi_owned && !finalized) MPI_Finalize();
#endif
}

int rank() {
#if DMIS_ENABLE_MPI
  int init = 0;
  MPI_Initialized(&init);
  if (!init) return 0;
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
#else
  return 0;
#endif
}

int size() {
#if DMIS_ENABLE_MPI
  int init = 0;
  MPI_Initialized(&init);
  if (!init) return 1;
  int s = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
#else
  return 1;
#endif
}

std::string mpi_description() {
#if DMIS_ENABLE_MPI
  char lib[MPI_MAX_LIBRARY_VERSION_STRING] = {0};
  int len = 0;
  MPI_Get_library_version(lib, &len);
  std::string s(lib, static_cast<size_t>(len));
  const auto cut = s.find_first_of(",\n");  // the first clause names library and version
  if (cut != std::string::npos) s = s.substr(0, cut);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  int major = 0, minor = 0;
  MPI_Get_version(&major, &minor);
  std::ostringstream os;
  os << s << " (MPI " << major << "." << minor << "), " << size() << " rank" << (size() == 1 ? "" : "s");
  return os.str();
#else
  return "disabled at build time (DMIS_ENABLE_MPI=OFF)";
#endif
}

bool gpu_aware() {
  if (const char* e = std::getenv("DMIS_MPI_GPU_AWARE")) return std::string(e) == "1";
#if DMIS_ENABLE_MPI
#if defined(KOKKOS_ENABLE_CUDA) && defined(MPIX_CUDA_AWARE_SUPPORT) && MPIX_CUDA_AWARE_SUPPORT
  return MPIX_Query_cuda_support() == 1;
#elif defined(KOKKOS_ENABLE_HIP) && defined(MPIX_ROCM_AWARE_SUPPORT) && MPIX_ROCM_AWARE_SUPPORT
  return MPIX_Query_rocm_support() == 1;
#endif
#endif
  return false;
}

#if DMIS_ENABLE_MPI
namespace {
template <class T>
MPI_Datatype type_of();
template <>
MPI_Datatype type_of<float>() { return MPI_FLOAT; }
template <>
MPI_Datatype type_of<double>() { return MPI_DOUBLE; }
template <>
MPI_Datatype type_of<int>() { return MPI_INT; }

template <class T>
void sum(T* data, size_t n) {
  if (size() == 1 || n == 0) return;
  const size_t chunk = size_t(1) << 30;  // MPI counts are int
  for (size_t i = 0; i < n; i += chunk)
    MPI_Allreduce(MPI_IN_PLACE, data + i, static_cast<int>(std::min(chunk, n - i)), type_of<T>(),
                  MPI_SUM, MPI_COMM_WORLD);
}

template <class T>
std::vector<T> gather_any(const std::vector<T>& local, int root) {
  const int ranks = size();
  if (ranks == 1) return local;
  int n = static_cast<int>(local.size());
  std::vector<int> counts(ranks), displs(ranks);
  MPI_Gather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, root, MPI_COMM_WORLD);
  std::vector<T> all;
  if (rank() == root) {
    long total = 0;
    for (int r = 0; r < ranks; ++r) displs[r] = static_cast<int>(total), total += counts[r];
    all.resize(static_cast<size_t>(total));
  }
  MPI_Gatherv(local.data(), n, type_of<T>(), all.data(), counts.data(), displs.data(),
              type_of<T>(), root, MPI_COMM_WORLD);
  return all;
}
}  // namespace

void allreduce_sum(float* data, size_t n) { sum(data, n); }
void allreduce_sum(double* data, size_t n) { sum(data, n); }
void allreduce_sum(int* data, size_t n) { sum(data, n); }
double allreduce_max(double v) {
  if (size() > 1) MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return v;
}
std::vector<float> gather(const std::vector<float>& local, int root) { return gather_any(local, root); }
std::vector<int32_t> gather(const std::vector<int32_t>& local, int root) {
  static_assert(sizeof(int32_t) == sizeof(int), "MPI_INT is 32 bits here");
  std::vector<int> l(local.begin(), local.end());
  const std::vector<int> all = gather_any(l, root);
  return std::vector<int32_t>(all.begin(), all.end());
}
void barrier() {
  if (size() > 1) MPI_Barrier(MPI_COMM_WORLD);
}
void abort_job(int code) {
  if (size() > 1) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}
#else
void allreduce_sum(float*, size_t) {}
void allreduce_sum(double*, size_t) {}
void allreduce_sum(int*, size_t) {}
double allreduce_max(double v) { return v; }
std::vector<float> gather(const std::vector<float>& local, int) { return local; }
std::vector<int32_t> gather(const std::vector<int32_t>& local, int) { return local; }
void barrier() {}
void abort_job(int code) { std::exit(code); }
#endif

std::pair<long, long> share(long n, int r, int ranks) {
  if (r < 0) r = rank();
  if (ranks < 0) ranks = size();
  const long base = n / ranks, extra = n % ranks;
  const long first = r * base + std::min<long>(r, extra);
  return {first, first + base + (r < extra ? 1 : 0)};
}

}  // namespace dmis::dist
