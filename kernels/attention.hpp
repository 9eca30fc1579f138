#pragma once
// Single-head spatial self-attention core over the N = H*W positions of each sample:
//   q, k, v = the three C-channel blocks of qkv (B, 3C, H, W), in that order,
//   a = softmax_j(q^T k / sqrt(C)) (B, N, N), h = v a^T (B, C, H, W).
// a is saved transposed (so that the products take their right operands untransposed).
// The surrounding GroupNorm, 1x1 convolutions and residual are separate kernels. The per-sample
// products are Kokkos Kernels batched GEMMs, one sample per team and one launch per product: the
// serial unblocked GEMM on host backends (a team of one thread), the team GEMM on devices.
#include "kernels/common.hpp"

namespace dmis::kernels {

template <class Exec, class T>
struct Attention {
  using X = Tensor4<T, Exec>;
  using CX = Tensor4<const T, Exec>;
  using A3 = Tensor3<T, Exec>;
  using CA3 = Tensor3<const T, Exec>;
  using V1 = Tensor1<T, Exec>;

  /// h (B, C, H, W) from qkv (B, 3C, H, W); saves the probabilities transposed for backward,
  /// attn(b, j, i) = a(b, i, j) (B, N, N): each column sums to one.
  static void forward(const Exec& exec, const CX& qkv, const X& h, const A3& attn);

  /// Scratch elements backward needs.
  static size_t scratch_size(int B, int N) { return 3 * static_cast<size_t>(B) * N * N; }  // dS, dS^T, A

  /// dqkv (B, 3C, H, W) by `mode`, from dh (B, C, H, W).
  static void backward(const Exec& exec, const CX& dh, const CX& qkv, const CA3& attn,
                       const X& dqkv, GradMode mode, const V1& scratch);
};

}  // namespace dmis::kernels
