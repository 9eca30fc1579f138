#pragma once
// Corruption channels for images (spec/method.md section 5; Ambient Diffusion, DiffEM):
//
//   mask:P            every pixel is missing with probability P (all channels of a pixel together)
//   box:S | box:HxW   one missing box of S x S (H x W) pixels at a random position
//   box:FRAC          one missing square box covering about FRAC of the image (0 < FRAC < 1)
//   blur:SIGMA[,width:K]
//                     Gaussian blur of standard deviation SIGMA pixels, a K x K kernel
//                     (default K = 2 * ceil(3 * SIGMA) + 1), edges replicated
//   ...,noise:SIGMA_Y observation noise N(0, SIGMA_Y^2) added to every observed value
//                     (in the [-1, 1] scale of the images)
//
// The observation of image x is y = M * (A(x) + SIGMA_Y * eps): A is the blur (identity for
// the masks), M the pixel mask (all ones for the blur); missing values are stored as 0.
//
// Every draw is a pure function of (seed, image index, round): the same on every backend,
// thread count and rank count. Round 0 is the dataset's own corruption (dmis import --corrupt);
// DiffEM corrupts its reconstructions afresh with rounds 1, 2, ... The functions below are the
// single definition used by the importer (host) and by training (device kernels).
#include <cstdint>
#include <string>
#include <vector>

#include "core/rng.hpp"
#include "core/types.hpp"

namespace dmis::data {

struct Corruption {
  enum class Kind { None, Mask, Box, Blur };
  Kind kind = Kind::None;
  double p = 0;              // mask: probability that a pixel is missing
  int box_h = 0, box_w = 0;  // box: fixed size ...
  double box_frac = 0;       // ... or the fraction of the image area (square box)
  double blur_sigma = 0;     // blur: standard deviation in pixels
  int blur_width = 0;        // blur: kernel width (odd)
  double noise = 0;          // observation noise standard deviation
  bool none() const { return kind == Kind::None; }
  /// The canonical spec string (parse(spec()) gives the same channel).
  std::string spec() const;
  /// Box size for images of H x W.
  void box_size(int H, int W, int& bh, int& bw) const;
  /// Expected share of pixels observed.
  double observed_fraction(int H, int W) const;
};

/// Parses a corruption spec (grammar above). Throws UsageError naming the spec and the part
/// that is wrong, what was expected and what was found.
Corruption parse_corruption(const std::string& spec);

/// Device-side form of a corruption channel, usable inside kernels.
struct CorruptionKernel {
  int kind = 0;  // 0 none, 1 mask, 2 box, 3 blur
  float p = 0, noise = 0, blur_sigma = 0;
  int box_h = 0, box_w = 0, blur_width = 0;
  rng::Philox gen;

  CorruptionKernel() = default;
  CorruptionKernel(const Corruption& c, int H, int W, uint64_t seed);

  /// 1 if pixel (h, w) of image `image` is observed in corruption round `round`.
  KOKKOS_INLINE_FUNCTION int observed(uint32_t image, uint32_t round, int H, int W, int h,
                                      int w) const {
    if (kind == 1) return rng::uniform<float>(gen, round, image, static_cast<uint32_t>(h * W + w)) >= p;
    if (kind == 2) {
      int top, left;
      box_origin(image, round, H, W, top, left);
      return !(h >= top && h < top + box_h && w >= left && w < left + box_w);
    }
    return 1;
  }

  KOKKOS_INLINE_FUNCTION void box_origin(uint32_t image, uint32_t round, int H, int W, int& top,
                                         int& left) const {
    const uint32_t base = static_cast<uint32_t>(H * W);
    const float u0 = rng::uniform<float>(gen, round, image, base),
                u1 = rng::uniform<float>(gen, round, image, base + 1);
    top = static_cast<int>(u0 * (H - box_h + 1));
    left = static_cast<int>(u1 * (W - box_w + 1));
    if (top > H - box_h) top = H - box_h;
    if (left > W - box_w) left = W - box_w;
  }

  /// The observation of element (c, h, w) of image x (C, H, W, row-major at `x`), before the
  /// mask: A(x) + noise.
  KOKKOS_INLINE_FUNCTION float forward(const float* x, uint32_t image, uint32_t round, int C,
                                       int H, int W, int c, int h, int w) const {
    float v;
    if (kind == 3) {
      const int r = blur_width / 2;
      const float inv = -0.5f / (blur_sigma * blur_sigma);
      float acc = 0, norm = 0;
      for (int dy = -r; dy <= r; ++dy) {
        const int yy = h + dy < 0 ? 0 : (h + dy >= H ? H - 1 : h + dy);
        const float gy = compat::exp(inv * float(dy * dy));
        for (int dx = -r; dx <= r; ++dx) {
          const int xx = w + dx < 0 ? 0 : (w + dx >= W ? W - 1 : w + dx);
          const float g = gy * compat::exp(inv * float(dx * dx));
          acc += g * x[(c * H + yy) * W + xx];
          norm += g;
        }
      }
      v = acc / norm;
    } else {
      v = x[(c * H + h) * W + w];
    }
    if (noise > 0)
      v += noise * rng::normal<float>(gen, round, image, static_cast<uint32_t>((c * H + h) * W + w));
    return v;
  }
};

/// Corrupts a batch on the device: x (B, C, H, W) in [-1, 1] -> obs (B, C, H, W) with 0 where
/// missing, mask (B, 1, H, W) 1 = observed. Image b has index images(b) in the dataset.
template <class Exec>
void corrupt(const Exec& exec, const CorruptionKernel& k, uint32_t round,
             const Tensor1<const int, Exec>& images, const Tensor4<const float, Exec>& x,
             const Tensor4<float, Exec>& obs, const Tensor4<float, Exec>& mask);

/// Host: corrupts N images (uint8, (N, C, H, W)) of dataset indices first, first + 1, ...
/// in round 0: observations in [-1, 1] (0 where missing) and masks (N, 1, H, W).
void corrupt_images(const Corruption& c, uint64_t seed, int N, int C, int H, int W,
                    const std::vector<uint8_t>& images, std::vector<float>& observations,
                    std::vector<uint8_t>& masks);

}  // namespace dmis::data
