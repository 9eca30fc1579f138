#pragma once
// The one place where Kokkos 3.4 and Kokkos 4.x/5.x differ for dmis.
//
// - math functions: Kokkos::Experimental:: in 3.4/3.5, Kokkos:: from 3.6 (the Experimental
//   aliases are gone in Kokkos 4);
// - KokkosBlas::gemm takes an execution-space instance first only in Kokkos Kernels >= 4;
//   3.4 runs it on the default instance of the view's execution space.
#include <Kokkos_Core.hpp>
#include <KokkosBlas3_gemm.hpp>
#include <cmath>

// GCC on x86-64 Linux: tell the vectoriser that glibc's libmvec has SIMD versions of exp, so
// loops over activations (SiLU, softmax) vectorise (with -fno-math-errno, set by CMake).
// Measured: SiLU 7x faster; the vector expf gave bitwise the same results on this machine.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) && \
    !defined(__CUDACC__) && !defined(__HIPCC__) && !defined(__INTEL_COMPILER)
extern "C" {
__attribute__((simd("notinbranch"))) float expf(float) noexcept;
__attribute__((simd("notinbranch"))) double exp(double) noexcept;
}
#endif

namespace dmis::compat {

#if KOKKOS_VERSION >= 30600
namespace kmath = ::Kokkos;
#else
namespace kmath = ::Kokkos::Experimental;
#endif

template <class T>
KOKKOS_INLINE_FUNCTION T exp(T x) {
  return kmath::exp(x);
}
template <class T>
KOKKOS_INLINE_FUNCTION T log(T x) {
  return kmath::log(x);
}
template <class T>
KOKKOS_INLINE_FUNCTION T sqrt(T x) {
  return kmath::sqrt(x);
}
template <class T>
KOKKOS_INLINE_FUNCTION T cos(T x) {
  return kmath::cos(x);
}
template <class T>
KOKKOS_INLINE_FUNCTION T sin(T x) {
  return kmath::sin(x);
}
template <class T>
KOKKOS_INLINE_FUNCTION T fabs(T x) {
  return kmath::fabs(x);
}

/// sigmoid(x) = 1 / (1 + exp(-x)). (A polynomial exp that GCC would vectorise was measured
/// slower than glibc's expf without -ffast-math: GCC keeps its clamps as branches.)
template <class T>
KOKKOS_INLINE_FUNCTION T sigmoid(T x) {
  return T(1) / (T(1) + kmath::exp(-x));
}

/// C = alpha * op(A) * op(B) + beta * C, on `exec` where Kokkos Kernels can be told so.
template <class Exec, class AV, class BV, class CV>
void gemm(const Exec& exec, const char* trans_a, const char* trans_b,
          typename CV::const_value_type alpha, const AV& a, const BV& b,
          typename CV::const_value_type beta, const CV& c) {
#if defined(KOKKOSKERNELS_VERSION) && KOKKOSKERNELS_VERSION >= 40000
  KokkosBlas::gemm(exec, trans_a, trans_b, alpha, a, b, beta, c);
#else
  (void)exec;  // 3.4: the default instance of the views' execution space
  KokkosBlas::gemm(trans_a, trans_b, alpha, a, b, beta, c);
#endif
}

}  // namespace dmis::compat
