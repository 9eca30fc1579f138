#pragma once
// Dense layer y = x W^T + b, as PyTorch's nn.Linear(in, out): W (Out, In), b (Out).
// Both products go through Kokkos Kernels GEMM.
#include "kernels/common.hpp"

namespace dmis::kernels {

template <class Exec, class T>
struct Linear {
  using M = Tensor2<T, Exec>;
  using CM = Tensor2<const T, Exec>;
  using V1 = Tensor1<T, Exec>;
  using CV1 = Tensor1<const T, Exec>;

  /// y (B, Out) = x (B, In) w^T (In, Out) + b (Out); b may be empty.
  static void forward(const Exec& exec, const CM& x, const CM& w, const CV1& b, const M& y);

  /// dx (B, In) by `mode` (empty view: not needed), dw (Out, In) +=, db (Out) += (empty: no bias).
  static void backward(const Exec& exec, const CM& dy, const CM& x, const CM& w, const M& dx,
                       GradMode mode, const M& dw, const V1& db);
};

}  // namespace dmis::kernels
