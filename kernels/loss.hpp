#pragma once
// Weighted mean-squared error, the EDM training loss:
//   loss_b = w_b * mean over (C, H, W) of (pred - target)^2,   loss = mean over b of loss_b.
#include "kernels/common.hpp"

namespace dmis::kernels {

template <class Exec, class T>
struct MSE {
  using X = Tensor4<T, Exec>;
  using CX = Tensor4<const T, Exec>;
  using V1 = Tensor1<T, Exec>;
  using CV1 = Tensor1<const T, Exec>;

  /// per_sample (B) = loss_b; total (1) = mean of loss_b (summed in a fixed order).
  /// weight (B) may be empty (all ones).
  static void forward(const Exec& exec, const CX& pred, const CX& target, const CV1& weight,
                      const V1& per_sample, const V1& total);

  /// dpred (B, C, H, W) = dloss * d(loss)/d(pred), by `mode`.
  static void backward(const Exec& exec, T dloss, const CX& pred, const CX& target,
                       const CV1& weight, const X& dpred, GradMode mode);
};

}  // namespace dmis::kernels
