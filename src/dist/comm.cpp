#include "dist/comm.hpp"

#include <Kokkos_Core.hpp>
#include <sstream>

#include "dmis_config.hpp"
#if DMIS_ENABLE_MPI
#include <mpi.h>
#endif

namespace dmis::dist {

namespace {
bool g_mpi_owned = false;
}

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

}  // namespace dmis::dist
