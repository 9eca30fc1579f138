#pragma once
// GroupNorm with G groups and a per-channel affine transform, as PyTorch's
// nn.GroupNorm(G, C, eps): statistics over (C/G channels x H x W) per sample and group,
// biased variance. Forward saves mean and rstd (B, G) for backward.
//
// With Activation::Silu, the kernel computes SiLU(GroupNorm(x)) in one pass (the pair that opens every
// ResBlock branch and the output head); backward recomputes the normalised value from x, mean
// and rstd instead of storing it.
#include "kernels/common.hpp"

namespace dmis::kernels {

/// The activation fused after the normalisation.
enum class Activation { None, Silu };

template <class Exec, class T>
struct GroupNorm {
  using X = Tensor4<T, Exec>;
  using CX = Tensor4<const T, Exec>;
  using V1 = Tensor1<T, Exec>;
  using CV1 = Tensor1<const T, Exec>;
  using M = Tensor2<T, Exec>;
  using CM = Tensor2<const T, Exec>;

  /// y (B, C, H, W) = gamma (C) * (x - mean) * rstd + beta (C); saves mean, rstd (B, G).
  static void forward(const Exec& exec, const CX& x, const CV1& gamma, const CV1& beta, int groups,
                      T eps, const X& y, const M& mean, const M& rstd,
                      Activation act = Activation::None);

  /// Scratch elements backward needs for batch B, C channels, G groups.
  static size_t scratch_size(int B, int C, int G) { return 2 * static_cast<size_t>(B) * (C + G); }

  /// dx (B, C, H, W) by `mode`; dgamma, dbeta (C) +=. With Activation::Silu, dy is the gradient with
  /// respect to SiLU's output (beta is then needed to recompute it). `work` (optional, the shape
  /// of dy, and it may be dy itself) keeps the gradient through SiLU between the two passes, so
  /// that the sigmoid is evaluated once per element instead of twice.
  static void backward(const Exec& exec, const CX& dy, const CX& x, const CV1& gamma,
                       const CV1& beta, const CM& mean, const CM& rstd, const X& dx, GradMode mode,
                       const V1& dgamma, const V1& dbeta, const V1& scratch,
                       Activation act = Activation::None, const X& work = X());
};

}  // namespace dmis::kernels
