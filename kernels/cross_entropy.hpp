#pragma once
// Softmax cross-entropy over class logits, as PyTorch's nn.CrossEntropyLoss() (mean reduction):
//   p_b = softmax(logits_b),   loss_b = -log p_b[label_b],   loss = mean over b of loss_b.
// Forward saves the probabilities for backward. Labels must lie in [0, K): callers check them
// once when the data is loaded (count_out_of_range), not on every step.
#include "kernels/common.hpp"

namespace dmis::kernels {

template <class Exec, class T> struct SoftmaxCrossEntropy {
  using M = Tensor2<T, Exec>;
  using CM = Tensor2<const T, Exec>;
  using V1 = Tensor1<T, Exec>;
  using L = Tensor1<const int, Exec>;

  /// probs (B, K) = softmax(logits (B, K)) (may alias logits); per_sample (B) = loss_b;
  /// total (1) = mean of loss_b, summed in a fixed order.
  static void forward(const Exec& exec, const CM& logits, const L& labels, const M& probs,
                      const V1& per_sample, const V1& total);

  /// dlogits (B, K) = dloss * (probs - onehot(label)) / B, written by `mode`; may alias probs
  /// when mode is Overwrite.
  static void backward(const Exec& exec, T dloss, const CM& probs, const L& labels,
                       const M& dlogits, GradMode mode);

  /// predictions (B) = argmax over k of scores (B, K) (logits or probabilities; the first of
  /// equal maxima).
  static void argmax(const Exec& exec, const CM& scores, const Tensor1<int, Exec>& predictions);

  /// How many labels lie outside [0, K) (a host result: the reduction waits for `exec`).
  static int count_out_of_range(const Exec& exec, const L& labels, int K);
};

} // namespace dmis::kernels
