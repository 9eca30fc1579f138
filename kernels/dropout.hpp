#pragma once
// Inverted dropout with a regenerated mask: element i of sample b is kept with probability 1-p
// (and scaled by 1/(1-p)), decided by a counter-based draw keyed by (seed, step, global sample
// index, i). Backward draws the same mask again, so nothing is stored.
#include <cstdint>

#include "core/rng.hpp"
#include "kernels/common.hpp"

namespace dmis::kernels {

template <class Exec, class T>
struct Dropout {
  using X = Tensor4<T, Exec>;
  using CX = Tensor4<const T, Exec>;
  /// y (B, C, H, W) = mask * x / (1 - p); y may alias x.
  static void forward(const Exec& exec, const CX& x, const X& y, float p, uint64_t seed,
                      uint32_t step, rng::SampleIds ids);
  /// dx = mask * dy / (1 - p), by `mode`; dx may alias dy when overwriting.
  static void backward(const Exec& exec, const CX& dy, const X& dx, GradMode mode, float p,
                       uint64_t seed, uint32_t step, rng::SampleIds ids);
};

}  // namespace dmis::kernels
