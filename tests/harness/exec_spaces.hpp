#pragma once
// The execution spaces the tests run on: every backend this Kokkos build enables.
#include <gtest/gtest.h>

#include <Kokkos_Core.hpp>
#include <string>
#include <tuple>

namespace dmis::test {

namespace detail {
template <class... Ts>
struct List {};
template <class A, class B>
struct Cat;
template <class... As, class... Bs>
struct Cat<List<As...>, List<Bs...>> {
  using type = List<As..., Bs...>;
};
template <class L>
struct ToGTest;
template <class... Ts>
struct ToGTest<List<Ts...>> {
  using type = ::testing::Types<Ts...>;
};

#if defined(KOKKOS_ENABLE_CUDA)
using CudaList = List<Kokkos::Cuda>;
#else
using CudaList = List<>;
#endif
#if defined(KOKKOS_ENABLE_HIP)
#if KOKKOS_VERSION >= 40000
using HipList = List<Kokkos::HIP>;
#else
using HipList = List<Kokkos::Experimental::HIP>;
#endif
#else
using HipList = List<>;
#endif
#if defined(KOKKOS_ENABLE_OPENMP)
using OpenMPList = List<Kokkos::OpenMP>;
#else
using OpenMPList = List<>;
#endif
#if defined(KOKKOS_ENABLE_THREADS)
using ThreadsList = List<Kokkos::Threads>;
#else
using ThreadsList = List<>;
#endif
#if defined(KOKKOS_ENABLE_SERIAL)
using SerialList = List<Kokkos::Serial>;
#else
using SerialList = List<>;
#endif
using All = typename Cat<
    typename Cat<typename Cat<typename Cat<CudaList, HipList>::type, OpenMPList>::type,
                 ThreadsList>::type,
    SerialList>::type;
}  // namespace detail

/// Every enabled execution space, device backends first.
using ExecSpaces = typename detail::ToGTest<detail::All>::type;

/// Test names carry the execution space's name.
struct ExecSpaceNames {
  template <class E>
  static std::string GetName(int) {
    return E::name();
  }
};

}  // namespace dmis::test
