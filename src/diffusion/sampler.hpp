#pragma once
// The EDM sampler (Karras et al. 2022, Algorithm 2; spec/method.md section 1): Heun steps on the
// sigma schedule of edm_sigmas, optional stochastic churn, classifier-free guidance. Everything
// per sample runs as Kokkos kernels on the device; the host only computes the schedule and the
// per-step scalars and launches. Buffers are allocated by the constructor, so run() allocates,
// copies and fences nothing (a Kokkos Tools test checks it).
#include <cstdint>
#include <functional>
#include <vector>

#include "core/types.hpp"
#include "diffusion/edm.hpp"
#include "models/unet.hpp"

namespace dmis::diffusion {

struct SamplerConfig {
  int steps = 18; // N: Heun steps (2N - 1 denoiser evaluations per guidance branch)
  double sigma_min = 0.002;
  double sigma_max = 80;
  double rho = 7;
  double churn = 0;  // S_churn; 0: the deterministic sampler
  double s_tmin = 0; // churn only where s_tmin <= sigma_i <= s_tmax
  double s_tmax = 1e30;
  double s_noise = 1;  // S_noise: scale of the churn noise
  double guidance = 1; // classifier-free guidance scale w; 1 = plain conditional
  bool clip_denoised = false; // clamp every D (after guidance) to the data range [-1, 1]
  uint64_t seed = 0;
};

/// The N + 1 noise levels sigma_0 = sigma_max > ... > sigma_{N-1} = sigma_min > sigma_N = 0:
/// sigma_i = (smax^(1/rho) + i/(N-1) (smin^(1/rho) - smax^(1/rho)))^rho. (N = 1: sigma_max, 0.)
/// Throws InputError naming the field for steps < 1, sigma_min <= 0, sigma_max <= sigma_min,
/// rho <= 0, churn < 0 or guidance < 0.
std::vector<double> edm_sigmas(const SamplerConfig& cfg);

/// The denoiser D(x; sigma, label) the sampler calls: writes D (B, C, H, W) for the noisy x
/// (B, C, H, W) at per-sample noise levels sigma (B) and labels (B). Launches on the given
/// instance; must not fence or allocate if the sampler's hot-path guarantee is to hold.
template <class Exec>
using Denoiser = std::function<void(const Exec&, const Tensor4<const float, Exec>& /*x*/,
                                    const Tensor1<const float, Exec>& /*sigma*/,
                                    const Tensor1<const int, Exec>& /*labels*/,
                                    const Tensor4<float, Exec>& /*D*/)>;

template <class Exec> class HeunSampler {
public:
  using T = float;
  using X = Tensor4<T, Exec>;

  /// Allocates the state for batches of B images of C x H x W.
  HeunSampler(int B, int C, int H, int W);

  /// Samples out (B, C, H, W) from x_0 = sigma_0 n by EDM Algorithm 2. Labels (B) condition every
  /// denoiser call; with cfg.guidance != 1 each evaluation is D_w = D(x; sigma, uncond_label) +
  /// w (D(x; sigma, labels) - D(x; sigma, uncond_label)). The noise is Philox(seed, kSampler)
  /// with counter (element pair, sample_offset + b, stage, 0), stage 0 for x_0 and i + 1 for the
  /// churn of step i, so a sample's noise does not depend on how a batch is split over ranks.
  /// `out` holds the state x_i during the run; it is the x the denoiser sees at sigma_hat.
  void run(const Exec& exec, const SamplerConfig& cfg, const Denoiser<Exec>& denoiser,
           const Tensor1<const int, Exec>& labels, int uncond_label, uint32_t sample_offset,
           const X& out);

  int batch() const { return m_B; }
  /// Denoiser calls one run() makes: (2N - 1), twice that with guidance.
  static int denoiser_calls(const SamplerConfig& cfg);

private:
  void evaluate(const Exec& exec, const SamplerConfig& cfg, const Denoiser<Exec>& denoiser,
                const Tensor4<const T, Exec>& x, double sigma,
                const Tensor1<const int, Exec>& labels);

  int m_B, m_C, m_H, m_W;
  Buffer1<T, Exec> m_xnext;    // (B, C, H, W) Euler prediction x_{i+1}
  Buffer1<T, Exec> m_d;        // (B, C, H, W) first slope d_i
  Buffer1<T, Exec> m_D;        // (B, C, H, W) denoiser output (guided)
  Buffer1<T, Exec> m_Du;       // (B, C, H, W) unconditional denoiser output (guidance)
  Buffer1<T, Exec> m_sigma;    // (B) the noise level of the current evaluation
  Buffer1<int, Exec> m_uncond; // (B) uncond_label everywhere (guidance)
};

/// A Denoiser from a UNet: net_in = c_in(sigma) x, c_noise = ln(sigma)/4, F = net(net_in,
/// c_noise, labels) without dropout, D = c_skip x + c_out F. The UNet must already be prepared
/// for the sampler's batch (in_channels == out_channels); `net` and `params` must outlive the
/// returned callback. Its scratch (net_in, c_noise) is allocated here, once.
template <class Exec>
Denoiser<Exec> unet_denoiser(models::UNet<Exec, float>& net,
                             const Tensor1<const float, Exec>& params, const EdmConfig& edm);

/// The Ambient Diffusion denoiser (spec/method.md section 5): the UNet (in_channels =
/// out_channels + 1) sees [c_in(sigma) A x, A] with a fixed mask A (B, 1, H, W) per sample, and
/// D = A (c_skip x + c_out F) + (1 - A) sigma_data F (Edm::denoise). `mask` must outlive the
/// callback; fill it with ambient_masks.
template <class Exec>
Denoiser<Exec> ambient_denoiser(models::UNet<Exec, float>& net,
                                const Tensor1<const float, Exec>& params, const EdmConfig& edm,
                                const Tensor4<const float, Exec>& mask);

/// A conditional denoiser (DiffEM's posterior q(x | y)): the UNet (in_channels = out_channels +
/// Cc) sees [c_in(sigma) x, cond] with cond (B, Cc, H, W) fixed during a run, and D = c_skip x +
/// c_out F. `cond` must outlive the callback.
template <class Exec>
Denoiser<Exec> conditional_denoiser(models::UNet<Exec, float>& net,
                                    const Tensor1<const float, Exec>& params, const EdmConfig& edm,
                                    const Tensor4<const float, Exec>& cond);

/// The sampler's masks of Ambient Diffusion: pixel p of sample b is seen with probability
/// `keep`, keyed by (seed, first_index + b, p).
template <class Exec>
void ambient_masks(const Exec& exec, uint64_t seed, double keep, uint32_t first_index,
                   const Tensor4<float, Exec>& mask);

} // namespace dmis::diffusion
