#pragma once
// Explicit instantiation of the kernel library: every enabled Kokkos execution space, float
// (training) and double (gradient checks). Kernel bodies live in the .cpp files, so a test or a
// model that includes a kernel header does not recompile the kernels.
#include <Kokkos_Core.hpp>

#if defined(KOKKOS_ENABLE_SERIAL)
#define DMIS_ETI_SERIAL(M) M(Kokkos::Serial, float) M(Kokkos::Serial, double)
#else
#define DMIS_ETI_SERIAL(M)
#endif
#if defined(KOKKOS_ENABLE_OPENMP)
#define DMIS_ETI_OPENMP(M) M(Kokkos::OpenMP, float) M(Kokkos::OpenMP, double)
#else
#define DMIS_ETI_OPENMP(M)
#endif
#if defined(KOKKOS_ENABLE_THREADS)
#define DMIS_ETI_THREADS(M) M(Kokkos::Threads, float) M(Kokkos::Threads, double)
#else
#define DMIS_ETI_THREADS(M)
#endif
#if defined(KOKKOS_ENABLE_CUDA)
#define DMIS_ETI_CUDA(M) M(Kokkos::Cuda, float) M(Kokkos::Cuda, double)
#else
#define DMIS_ETI_CUDA(M)
#endif
#if defined(KOKKOS_ENABLE_HIP)
#if KOKKOS_VERSION >= 40000
#define DMIS_ETI_HIP(M) M(Kokkos::HIP, float) M(Kokkos::HIP, double)
#else
#define DMIS_ETI_HIP(M) M(Kokkos::Experimental::HIP, float) M(Kokkos::Experimental::HIP, double)
#endif
#else
#define DMIS_ETI_HIP(M)
#endif

/// Expands M(ExecSpace, Scalar) for every instantiated combination.
#define DMIS_FOR_EACH_EXEC_AND_SCALAR(M)                                                         \
  DMIS_ETI_SERIAL(M) DMIS_ETI_OPENMP(M) DMIS_ETI_THREADS(M) DMIS_ETI_CUDA(M) DMIS_ETI_HIP(M)

