#pragma once
// Global average pooling over the spatial dimensions, as PyTorch's
// x.mean(dim=(2, 3)) / nn.AdaptiveAvgPool2d(1) followed by a flatten: y (B, C) = mean over
// (H, W) of x (B, C, H, W).
#include "kernels/common.hpp"

namespace dmis::kernels {

template <class Exec, class T> struct GlobalAvgPool {
  using X = Tensor4<T, Exec>;
  using CX = Tensor4<const T, Exec>;
  using M = Tensor2<T, Exec>;
  using CM = Tensor2<const T, Exec>;

  /// y (B, C) = mean over (H, W) of x (B, C, H, W), summed in a fixed order.
  static void forward(const Exec& exec, const CX& x, const M& y);

  /// dx (B, C, H, W) = dy (B, C) / (H W), broadcast over (H, W), written by `mode`.
  static void backward(const Exec& exec, const CM& dy, const X& dx, GradMode mode);
};

} // namespace dmis::kernels
