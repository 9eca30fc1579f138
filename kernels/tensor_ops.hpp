#pragma once
// Shape and arithmetic glue of the UNet: nearest x2 upsampling, channel concatenation, the
// residual add and the per-channel broadcast add of the time embedding.
#include "kernels/common.hpp"

namespace dmis::kernels {

/// Nearest-neighbour x2 upsampling, as F.interpolate(scale_factor=2, mode="nearest").
template <class Exec, class T>
struct Upsample2x {
  using X = Tensor4<T, Exec>;
  using CX = Tensor4<const T, Exec>;
  /// y (B, C, 2H, 2W) from x (B, C, H, W).
  static void forward(const Exec& exec, const CX& x, const X& y);
  /// dx (B, C, H, W) = sum of the 4 gradients each input pixel was copied to, by `mode`.
  static void backward(const Exec& exec, const CX& dy, const X& dx, GradMode mode);
};

/// Concatenation along channels: y = cat(a, b), current activations first, then the skip.
template <class Exec, class T>
struct Concat {
  using X = Tensor4<T, Exec>;
  using CX = Tensor4<const T, Exec>;
  /// y (B, Ca + Cb, H, W) from a (B, Ca, H, W) and b (B, Cb, H, W).
  static void forward(const Exec& exec, const CX& a, const CX& b, const X& y);
  /// Splits dy into da (by mode_a) and db (by mode_b).
  static void backward(const Exec& exec, const CX& dy, const X& da, GradMode mode_a, const X& db,
                       GradMode mode_b);
};

/// Elementwise sums (flat views of any shape).
template <class Exec, class T>
struct Add {
  using V = Tensor1<T, Exec>;
  using CV = Tensor1<const T, Exec>;
  /// y (N) = a (N) + b (N); y may alias a or b.
  static void forward(const Exec& exec, const CV& a, const CV& b, const V& y);
  /// The gradient passes through to both inputs: da (by mode_a), db (by mode_b).
  static void backward(const Exec& exec, const CV& dy, const V& da, GradMode mode_a, const V& db,
                       GradMode mode_b);
};

/// y (N) = x (N), or y += x with `mode` Accumulate: passes a gradient on through an identity
/// branch (the residual of an attention block, a ResBlock without skip convolution).
template <class Exec, class T>
struct AddTo {
  using V = Tensor1<T, Exec>;
  using CV = Tensor1<const T, Exec>;
  static void apply(const Exec& exec, const CV& x, const V& y, GradMode mode);
};

/// y (B, C, H, W) = x (B, C, H, W) + e (B, C) broadcast over H, W (the embedding projection
/// added inside a ResBlock).
template <class Exec, class T>
struct ChannelAdd {
  using X = Tensor4<T, Exec>;
  using CX = Tensor4<const T, Exec>;
  using M = Tensor2<T, Exec>;
  using CM = Tensor2<const T, Exec>;
  /// y may alias x.
  static void forward(const Exec& exec, const CX& x, const CM& e, const X& y);
  /// de (B, C) = sum over (H, W) of dy, by `mode` (the x gradient is dy itself).
  static void backward(const Exec& exec, const CX& dy, const M& de, GradMode mode);
};

}  // namespace dmis::kernels
