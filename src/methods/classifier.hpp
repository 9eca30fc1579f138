#pragma once
// The diffusion classifier (spec/method.md section 3):
//   logit_y = log pi_y - s * sum_k w_k * mean_pixels( D(x0 + sigma_k eps_k; sigma_k, y) - x0 )^2
// with the same (sigma_k, eps_k) for every class, evaluated as one batched UNet forward over
// B images x NC classes x K noise levels. Its backward (for the DMIS classification loss) goes
// through all the evaluations. Everything per sample is a device kernel.
#include <cstdint>
#include <string>
#include <vector>

#include "core/types.hpp"
#include "diffusion/edm.hpp"
#include "models/unet.hpp"
#include "methods/method_choices.hpp"

namespace dmis::methods {

struct ClassifierConfig {
  int points = 1;                     // K noise levels per class
  ClassifierLevels timesteps = ClassifierLevels::Window;  // the DMIS window or uniform in sigma
  double window = 6.4;                // DMIS window width in sigma
  double uniform_min = 1e-4;          // uniform grid: smallest sigma (Chen et al.)
  double uniform_max = 3.0;           // uniform grid: largest sigma
  // uniform grid: weights lambda(sigma) / K (each level's EDM-normalised error counted alike,
  // as the window does) instead of the ELBO's lambda(sigma) p(sigma) d_sigma
  bool equal_weights = false;
  double fixed_sigma = 0;             // > 0: all K points at this sigma (independent noise)
  // not empty: the K points at exactly these sigmas (K = its size), weights lambda(sigma) / K,
  // before fixed_sigma and the grids (a share of another classifier's levels: the
  // coarse-to-fine E-step's)
  std::vector<double> sigmas;
  // the noise of point k is the stream's draw k + first_draw: a second classifier over the same
  // images takes draws of its own (0: the first K)
  int first_draw = 0;
  // s; 0: the number of values of an image (C * H * W), i.e. the squared error summed over
  // pixels as in the ELBO of DMIS's Eq. 12 (a mean with s = 1 gives a nearly flat posterior)
  double logit_scale = 0.0;
  diffusion::EdmConfig edm;
};

/// The K noise levels and their weights w_k. cfg.sigmas: those, lambda(sigma_k) / K. Window:
/// equal-probability quantiles of the training log-normal truncated to [l, l + window] with
/// F(l) + F(r) = 1, weights lambda(sigma_k) / K. Uniform: a linear grid on [uniform_min, uniform_max] with weights
/// lambda(sigma) p_lognormal(sigma) d_sigma (the ELBO's), or lambda(sigma) / K with
/// cfg.equal_weights.
void classifier_levels(const ClassifierConfig& cfg, std::vector<double>& sigma,
                       std::vector<double>& weight);
/// The DMIS window [l, r] for a width.
void dmis_window(double P_mean, double width, double& l, double& r);
/// The logit scale a config resolves to for a network: cfg.logit_scale, or the number of values
/// of an image (out_channels * resolution^2) where it is 0.
double resolved_logit_scale(double logit_scale, const models::UNetConfig& net);
/// Inverse of the standard normal CDF (Acklam's approximation, relative error < 1.2e-9).
double normal_quantile(double p);

template <class Exec>
class DiffusionClassifier {
public:
  using T = float;
  /// `net` is prepared here for batch B * NC * K (for training unless inference_only).
  DiffusionClassifier(const models::UNetConfig& net, const ClassifierConfig& cfg, int B, int NC,
                      bool inference_only, double conv_scratch_mb = 0);

  /// logits (B, NC) for images x0 (B, C, H, W) and their candidate classes (B, NC) (ids in
  /// [0, K]); noise keyed by (seed, step, ids(b)). log_prior (classes) may be empty
  /// (uniform). A network with a mask channel (Ambient) takes the pixel masks (B, 1, H, W) of
  /// x0: it sees [c_in mask x_sigma, mask], and the error of a class is the mean squared error
  /// over the seen pixels only.
  void forward(const Exec& exec, const Tensor1<const T, Exec>& params,
               const Tensor4<const T, Exec>& x0, const Tensor2<const int, Exec>& classes,
               const Tensor1<const T, Exec>& log_prior, uint64_t seed, uint32_t step,
               rng::SampleIds ids, const Tensor4<const T, Exec>& mask = Tensor4<const T, Exec>());
  /// grads += d/dparams of sum(dlogits * logits) for the last forward.
  void backward(const Exec& exec, const Tensor1<const T, Exec>& params,
                const Tensor2<const T, Exec>& dlogits, const Tensor1<T, Exec>& grads);

  Tensor2<T, Exec> logits() const { return m_logits; }  // (B, NC)
  int batch() const { return m_B; }
  int classes_per_image() const { return m_NC; }
  int points() const { return m_K; }
  /// The logit scale s in use (logit_scale, or the pixel count where it is 0).
  double logit_scale() const { return m_cfg.logit_scale; }
  /// Forward passes of the UNet per call (B * NC * K).
  int evaluations() const { return m_B * m_NC * m_K; }
  const ClassifierConfig& config() const { return m_cfg; }
  models::UNet<Exec, T>& net() { return m_net; }
  const models::UNet<Exec, T>& net() const { return m_net; }

  // forward's stages (public only because CUDA's device lambdas cannot live in private member
  // functions)
  void noisy_inputs(const Exec& exec, const Tensor4<const T, Exec>& x0, const Tensor2<const int, Exec>& classes,
                    uint64_t seed, uint32_t step, rng::SampleIds ids, const Tensor4<const T, Exec>& mask);
  void errors(const Exec& exec, const Tensor4<const T, Exec>& x0, const Tensor4<const T, Exec>& mask);
  void logits_from_errors(const Exec& exec, const Tensor2<const int, Exec>& classes,
                          const Tensor1<const T, Exec>& log_prior);

private:
  ClassifierConfig m_cfg;
  int m_B, m_NC, m_K;
  models::UNet<Exec, T> m_net;
  Buffer1<T, Exec> m_sigma_k, m_weight_k;           // (K)
  Buffer1<T, Exec> m_sigma, m_c_noise, m_err, m_seen;  // (B*NC*K); m_seen: values counted
  Buffer1<T, Exec> m_xin, m_xs, m_D;                // (B*NC*K, C, H, W)
  Buffer1<int, Exec> m_labels;                      // (B*NC*K)
  Kokkos::View<T**, Kokkos::LayoutRight, DeviceOf<Exec>> m_logits_buf;
  Tensor2<T, Exec> m_logits;
  Tensor4<const T, Exec> m_x0, m_mask;              // the last forward's images and masks
};

}  // namespace dmis::methods
