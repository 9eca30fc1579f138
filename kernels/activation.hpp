#pragma once
// SiLU, y = x * sigmoid(x), elementwise over tensors of any shape (pass flat() views).
#include "kernels/common.hpp"

namespace dmis::kernels {

template <class Exec, class T>
struct SiLU {
  using V = Tensor1<T, Exec>;
  using CV = Tensor1<const T, Exec>;

  /// y (N) = silu(x (N)); y may alias x.
  static void forward(const Exec& exec, const CV& x, const V& y);
  /// dx (N) = dy * silu'(x), written by `mode`; dx may alias dy when mode is Overwrite.
  static void backward(const Exec& exec, const CV& dy, const CV& x, const V& dx, GradMode mode);
};

}  // namespace dmis::kernels
