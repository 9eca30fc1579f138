#pragma once
// The EDM diffusion core (Karras et al. 2022; spec/method.md section 1) as device kernels:
// training noise, preconditioning and the denoiser D = c_skip x + c_out F, with the loss weight
// lambda(sigma). Everything per sample runs on the device.
#include <cstdint>

#include "core/kokkos_compat.hpp"
#include "core/rng.hpp"
#include "core/types.hpp"

namespace dmis::diffusion {

struct EdmConfig {
  double P_mean = -1.2;
  double P_std = 1.2;
  double sigma_data = 0.5;
};

/// The denoiser's output scaling at one noise level (spec/method.md section 1), one definition
/// for Edm::denoise and the kernels that fuse it (the DMIS extra-label mix):
/// D = c_skip x + c_out F; for a pixel Ambient's mask hides (m = 0) D = sigma_data F.
template <class T>
struct EdmScaling {
  T c_skip, c_out, sd;
  KOKKOS_INLINE_FUNCTION EdmScaling(T sigma, T sigma_data) : sd(sigma_data) {
    const T q = sigma * sigma + sigma_data * sigma_data;
    c_skip = sigma_data * sigma_data / q;
    c_out = sigma * sigma_data / compat::sqrt(q);
  }
  KOKKOS_INLINE_FUNCTION T operator()(T x, T F) const { return c_skip * x + c_out * F; }
  KOKKOS_INLINE_FUNCTION T masked(T x, T F, T m) const {
    return m * (c_skip * x + c_out * F) + (T(1) - m) * sd * F;
  }
};

template <class Exec, class T = float>
struct Edm {
  using X = Tensor4<T, Exec>;
  using CX = Tensor4<const T, Exec>;
  using V1 = Tensor1<T, Exec>;
  using CV1 = Tensor1<const T, Exec>;

  /// sigma (B) with ln(sigma) ~ N(P_mean, P_std^2) and noise (B, C, H, W) ~ N(0, I), keyed by
  /// (seed, step, ids(b)): the same draws whatever the rank count or backend.
  static void sample_training_noise(const Exec& exec, const EdmConfig& cfg, uint64_t seed,
                                    uint32_t step, rng::SampleIds ids, const V1& sigma,
                                    const X& noise);

  /// x_sigma = x0 + sigma * noise, net_in = c_in(sigma) x_sigma, c_noise = ln(sigma) / 4,
  /// weight = lambda(sigma) = (sigma^2 + sd^2) / (sigma sd)^2.
  static void prepare_training_inputs(const Exec& exec, const EdmConfig& cfg, const CX& x0,
                                      const CV1& sigma, const CX& noise, const X& x_sigma,
                                      const X& net_in, const V1& c_noise, const V1& weight);

  /// net_in = c_in(sigma) x and c_noise = ln(sigma) / 4 for a noisy x (samplers, classifier).
  static void scale_input(const Exec& exec, const EdmConfig& cfg, const CX& x, const CV1& sigma,
                          const X& net_in, const V1& c_noise);

  /// The masked input of Ambient Diffusion (spec/method.md section 5): xm = mask * x (may be x
  /// itself), net_in (B, C + 1, H, W) = [c_in(sigma) xm, mask], c_noise = ln(sigma) / 4.
  /// mask is (B, 1, H, W), 1 = pixel seen; D is then c_skip xm + c_out F.
  static void masked_input(const Exec& exec, const EdmConfig& cfg, const CX& x, const CX& mask,
                           const CV1& sigma, const X& xm, const X& net_in, const V1& c_noise);

  /// D (B, C, H, W) = c_skip(sigma) x + c_out(sigma) F. With an input mask (B, 1, H, W) of
  /// Ambient Diffusion: D = m (c_skip x + c_out F) + (1 - m) sigma_data F. A pixel the network
  /// does not see has no skip term, and EDM's rule (unit-variance training target) then gives
  /// it c_out = sigma_data: its prediction does not vanish as sigma -> 0.
  static void denoise(const Exec& exec, const EdmConfig& cfg, const CX& F, const CX& x,
                      const CV1& sigma, const X& D, const CX& mask = CX());

  /// dF = c_out(sigma) dD (masked: (m c_out + (1 - m) sigma_data) dD): the gradient through the
  /// denoiser's output scaling.
  static void denoise_backward(const Exec& exec, const EdmConfig& cfg, const CX& dD,
                               const CV1& sigma, const X& dF, const CX& mask = CX());
};

}  // namespace dmis::diffusion
