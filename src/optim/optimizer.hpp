#pragma once
// AdamW, gradient-norm clipping and the EMA of the weights over the flat buffers, as device
// kernels. The gradient norm stays on the device: the update reads it there, so a step needs no
// host round trip.
#include <cstddef>

#include "core/types.hpp"

namespace dmis::optim {

struct AdamWConfig {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0.0;  // decoupled (AdamW)
  double grad_clip = 0.0;     // max global gradient norm; 0 turns clipping off
};

template <class Exec, class T = float>
struct Optimizer {
  using V1 = Tensor1<T, Exec>;
  using CV1 = Tensor1<const T, Exec>;

  /// Scratch elements grad_norm2 needs for n gradients.
  static size_t norm_scratch_size(size_t n);
  /// norm2 (1) = sum of squares of grads, summed in a fixed order.
  static void grad_norm2(const Exec& exec, const CV1& grads, const V1& scratch, const V1& norm2);
  /// One AdamW step (step counts from 1) on params, m, v. When cfg.grad_clip > 0 the gradients
  /// are scaled by min(1, clip / (||g|| + 1e-6)) using norm2 (1), computed by grad_norm2.
  static void adamw(const Exec& exec, const AdamWConfig& cfg, double lr, long step,
                    const V1& params, const CV1& grads, const V1& m, const V1& v, const CV1& norm2);
  /// ema = beta ema + (1 - beta) params.
  static void ema_update(const Exec& exec, double beta, const CV1& params, const V1& ema);
  /// x = value.
  static void fill(const Exec& exec, const V1& x, T value);
  /// dst = src.
  static void copy(const Exec& exec, const CV1& src, const V1& dst);
};

}  // namespace dmis::optim
