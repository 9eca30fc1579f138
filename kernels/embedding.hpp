#pragma once
// The UNet's conditioning inputs: sinusoidal features of c_noise and the learned class table.
#include "kernels/common.hpp"

namespace dmis::kernels {

/// y (B, D) = [cos(c f_0) .. cos(c f_{D/2-1}), sin(c f_0) .. sin(c f_{D/2-1})],
/// f_i = exp(-ln(10000) i / (D/2)), c = c_noise (B). D must be even.
template <class Exec, class T>
struct SinusoidalEmbedding {
  using M = Tensor2<T, Exec>;
  using CM = Tensor2<const T, Exec>;
  using V1 = Tensor1<T, Exec>;
  using CV1 = Tensor1<const T, Exec>;
  static void forward(const Exec& exec, const CV1& c, const M& y);
  /// dc (B) by `mode` from dy (B, D).
  static void backward(const Exec& exec, const CM& dy, const CV1& c, const V1& dc, GradMode mode);
};

/// Class-embedding lookup: y (B, D) (=, or += by `mode`) table (K+1, D) row labels(b).
/// Row K is the "no label" token. Labels must lie in [0, K]: validate them when data are loaded
/// (count_out_of_range); out-of-range labels contribute nothing here.
template <class Exec, class T>
struct ClassEmbedding {
  using M = Tensor2<T, Exec>;
  using CM = Tensor2<const T, Exec>;
  using L = Tensor1<const int, Exec>;
  static void forward(const Exec& exec, const L& labels, const CM& table, const M& y,
                      GradMode mode);
  /// dtable (K+1, D) += rows of dy gathered by label (deterministic: no atomics).
  static void backward(const Exec& exec, const CM& dy, const L& labels, const M& dtable);
  /// Number of labels outside [0, rows). Reads back one integer (fences): not for the hot path.
  static int count_out_of_range(const Exec& exec, const L& labels, int rows);
};

}  // namespace dmis::kernels
