#pragma once
// Mixed precision for the GEMMs: bf16 inputs, fp32 accumulation and output (train.precision:
// bf16). Kokkos Kernels 3.4 has no mixed-precision GEMM, so the products go to the vendor's own
// behind one small interface (gemm_bf16): on the CPU oneDNN's dnnl_gemm_bf16bf16f32 (Intel's
// library, AVX512-BF16 / AMX where the cores have them; loaded at run time, since Debian ships
// it as libdnnl2 with PyTorch), on NVIDIA GPUs cuBLAS GemmEx (bf16 inputs, fp32 compute: the
// tensor cores), on the stream of the execution space instance; rocBLAS gemm_ex for AMD GPUs
// is not built yet (the check below says so). Master weights, optimizer state and every
// non-GEMM operation stay fp32.
//
// bf16 here is the project's own 16-bit type (the upper half of an IEEE binary32, rounded to
// nearest even), not Kokkos' bhalf_t: Kokkos 3.4 (the only Kokkos a fresh machine here can
// get) has none, and one type for every Kokkos version keeps a run's rounding, and so its loss
// trajectory, the same across them. Its layout is what the vendor GEMMs take.
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>

#include <Kokkos_Core.hpp>

#include "core/error.hpp"

namespace dmis::kernels {

struct bf16 {
  uint16_t bits;
};

/// x rounded to the nearest bf16, ties to even; NaN stays NaN (quiet), infinities stay.
/// Branch-free, so that loops converting rows of activations vectorise.
KOKKOS_INLINE_FUNCTION bf16 to_bf16(float x) {
  uint32_t u;
#if defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__)
  u = __float_as_uint(x);
#else
  std::memcpy(&u, &x, 4);
#endif
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t quiet_nan = (u >> 16) | 0x40u;
  return bf16{static_cast<uint16_t>((u & 0x7fffffffu) > 0x7f800000u ? quiet_nan : rounded)};
}

KOKKOS_INLINE_FUNCTION float from_bf16(bf16 b) {
  const uint32_t u = static_cast<uint32_t>(b.bits) << 16;
#if defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__)
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, 4);
  return x;
#endif
}

/// The precision of the network's large GEMMs (the 3x3 stride-1 convolutions, which are most
/// of the step): fp32, or bf16 inputs with fp32 accumulation. Process-wide, like the
/// convolution algorithm; fp32 by default.
enum class GemmPrecision { FP32, BF16 };
GemmPrecision gemm_precision();
/// Sets it; bf16 throws InputError naming `what` (the deck key or option) and the library
/// looked for when this build and machine have no mixed GEMM.
void set_gemm_precision(GemmPrecision p, const char* what);
const char* gemm_precision_name(GemmPrecision p);
/// "fp32" / "bf16"; throws InputError naming `what` for anything else.
GemmPrecision parse_gemm_precision(const std::string& s, const char* what);

/// Sets the process-wide GEMM precision for one scope and restores the one before it on the
/// way out (method.estep_precision around the E-step; tests). `what` names the setting for
/// set_gemm_precision's error.
class GemmPrecisionScope {
 public:
  GemmPrecisionScope(GemmPrecision p, const char* what) : m_saved(gemm_precision()), m_what(what) {
    if (p != m_saved) set_gemm_precision(p, what);
  }
  ~GemmPrecisionScope() {
    if (gemm_precision() != m_saved) set_gemm_precision(m_saved, m_what);
  }
  GemmPrecisionScope(const GemmPrecisionScope&) = delete;
  GemmPrecisionScope& operator=(const GemmPrecisionScope&) = delete;

 private:
  GemmPrecision m_saved;
  const char* m_what;
};

/// How the host lays out the bf16 products of the row-unfolded 3x3 convolutions (forward and
/// input gradient; kernels/conv2d.cpp): Plain, y~ (O, N) = Wk rows, scattered into NCHW row
/// by row; or Transposed, y~^T (N, O) = rows^T Wk^T, the long dimension as oneDNN's M,
/// scattered with strided reads. Which is faster depends on the kernels oneDNN has for the
/// CPU: with AMX (Xeon 6) transposed, by 1.1-1.6x; with AVX512-BF16 alone (Zen 5) plain, by
/// 1.0-1.4x at the same shapes (docs/performance.md). Process-wide; by default transposed where
/// the CPU has AMX-BF16 and plain elsewhere, DMIS_BF16_LAYOUT (plain | transposed) sets the
/// initial value. The two differ in rounding only (oneDNN's order of accumulation), so a run
/// is reproducible on one kind of CPU, as it is with its BLAS.
enum class Bf16Layout { Plain, Transposed };
Bf16Layout bf16_layout();
void set_bf16_layout(Bf16Layout l);
const char* bf16_layout_name(Bf16Layout l);
/// "plain" / "transposed"; throws InputError naming `what` for anything else.
Bf16Layout parse_bf16_layout(const std::string& s, const char* what);
/// Whether the CPU has AMX-BF16 (x86 CPUID leaf 7, EDX bit 22; false elsewhere).
bool cpu_has_amx_bf16();

namespace detail {
// the host's mixed GEMM (oneDNN, loaded on first use)
bool host_gemm_bf16_available(std::string* why);
std::string host_gemm_bf16_description();
void host_gemm_bf16(char trans_a, char trans_b, int M, int N, int K, float alpha, const bf16* A,
                    int lda, const bf16* B, int ldb, float beta, float* C, int ldc);
template <class Exec>
constexpr bool host_exec = std::is_same<typename Exec::memory_space, Kokkos::HostSpace>::value;
#if defined(KOKKOS_ENABLE_CUDA)
template <class Exec>
constexpr bool cuda_exec = std::is_same<Exec, Kokkos::Cuda>::value;
// cuBLAS GemmEx on exec's stream (row-major arguments, as gemm_bf16's); the handle is created
// on first use and kept for the process
void cuda_gemm_bf16(const Kokkos::Cuda& exec, char trans_a, char trans_b, int M, int N, int K,
                    float alpha, const bf16* A, int lda, const bf16* B, int ldb, float beta, float* C,
                    int ldc);
std::string cuda_gemm_bf16_description();
#else
template <class Exec>
constexpr bool cuda_exec = false;
#endif
template <class Exec>
std::string device_gemm_bf16_missing() {
  return std::string("bf16 GEMMs on ") + Exec::name() + " are not built yet (rocBLAS gemm_ex); use fp32";
}
}  // namespace detail

/// Whether gemm_bf16 can run for execution space Exec; if not and `why` is given, why not.
template <class Exec>
bool gemm_bf16_available(std::string* why = nullptr) {
  if constexpr (detail::host_exec<Exec>) {
    return detail::host_gemm_bf16_available(why);
  } else if constexpr (detail::cuda_exec<Exec>) {
    return true;
  } else {
    if (why) *why = detail::device_gemm_bf16_missing<Exec>();
    return false;
  }
}
/// The library serving gemm_bf16 for Exec ("oneDNN 2.6.3 (libdnnl.so.2)"), or why none.
template <class Exec>
std::string gemm_bf16_description() {
  if constexpr (detail::host_exec<Exec>)
    return detail::host_gemm_bf16_description();
#if defined(KOKKOS_ENABLE_CUDA)
  else if constexpr (detail::cuda_exec<Exec>)
    return detail::cuda_gemm_bf16_description();
#endif
  else
    return detail::device_gemm_bf16_missing<Exec>();
}

/// C (M, N) = alpha op(A) op(B) + beta C, row-major, A and B bf16, C fp32, op 'N' or 'T' (the
/// leading dimensions those of the matrices as stored, as in row-major BLAS). Synchronous on
/// the host. Throws InputError where gemm_bf16_available is false.
template <class Exec>
void gemm_bf16(const Exec& exec, char trans_a, char trans_b, int M, int N, int K, float alpha,
               const bf16* A, int lda, const bf16* B, int ldb, float beta, float* C, int ldc) {
  (void)exec;
  if constexpr (detail::host_exec<Exec>) {
    detail::host_gemm_bf16(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#if defined(KOKKOS_ENABLE_CUDA)
  } else if constexpr (detail::cuda_exec<Exec>) {
    detail::cuda_gemm_bf16(exec, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#endif
  } else {
    throw InputError(detail::device_gemm_bf16_missing<Exec>());
  }
}

}  // namespace dmis::kernels
