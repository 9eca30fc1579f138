#pragma once
// A training step of a method under imprecise supervision (spec/method.md sections 2-4):
//
// - vanilla: conditional EDM on the observed supervision (noisy labels as given; partial labels:
//   a random candidate each step; unlabelled samples: the "no label" token);
// - dmis: after an optional warm-up of vanilla steps, on a fraction of each batch, the EMA
//   diffusion classifier gives pseudo-targets and posterior weights; the live diffusion
//   classifier gets the classification loss; the generative loss mixes the denoiser over classes
//   with the posterior weights (gradient through the largest-weight class, up to `gen_extra`
//   more classes above tau mixed in without gradient, as TDSM does).
//
// Every per-sample computation is a device kernel; buffers are allocated by the constructor.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>

#include "methods/classifier.hpp"
#include "methods/edm_step.hpp"

namespace dmis::methods {

struct MethodConfig {
  std::string name = "vanilla";       // vanilla | dmis | ambient
  double delta = 0.1;                 // ambient: further-corruption rate of the seen pixels
  bool ambient = false;               // dmis: Ambient's masked objective on corrupted images
  std::string supervision = "clean";  // clean | noisy | partial | unlabeled
  double beta = 1.0;                  // weight of the classification loss
  double warmup_kimg = 0;             // vanilla steps before the DMIS terms switch on
  int timesteps = 1;                  // K noise levels of the training classifier
  double window = 6.4;
  double classifier_fraction = 0.25;  // of each batch
  int top_k = 10;                     // classes kept in the live classifier
  double tau = 0.01;
  double logit_scale = 1.0;
  std::string prior = "uniform";      // uniform | estimate
  double prior_momentum = 0.9;
  int gen_extra = 2;                  // classes mixed in without gradient (besides the top one)
};

/// Samples of a global batch of B that get DMIS's classification term: round(fraction * B),
/// at least 1.
inline int classifier_samples(double fraction, int B) {
  return std::max(1, std::min(B, static_cast<int>(std::lround(fraction * B))));
}

template <class Exec>
class MethodStep {
public:
  using T = float;
  using V1 = Tensor1<T, Exec>;

  MethodStep(const models::UNetConfig& net, const TrainStepConfig& train, const MethodConfig& m,
             int local_batch, double conv_scratch_mb = 0);

  void initialize(models::InitScheme scheme) { m_core.initialize(scheme); }

  /// One step on a gathered batch: images x0 (B, C, H, W), observed labels (B; -1: none),
  /// candidate masks (B, K) and labelled flags (B). Ambient also takes the pixel masks
  /// (B, 1, H, W) of the observations x0 and the samples' dataset indices (B).
  void run(const Exec& exec, const Tensor4<const T, Exec>& x0, const Tensor1<const int, Exec>& observed,
           const Tensor2<const uint8_t, Exec>& candidates, const Tensor1<const uint8_t, Exec>& labeled,
           const Tensor4<const T, Exec>& mask = Tensor4<const T, Exec>(),
           const Tensor1<const int, Exec>& index = Tensor1<const int, Exec>());
  /// Whether the method needs the pixel masks and indices (ambient).
  bool needs_masks() const {
    return m_cfg.name == "ambient" || (m_cfg.name == "dmis" && m_cfg.ambient);
  }

  /// Whether step `s` uses the DMIS terms (dmis, after the warm-up).
  bool dmis_active(long s) const;
  /// Called by the trainer at the end of every epoch (class-prior update).
  void end_epoch(const Exec& exec);

  EdmTrainStep<Exec>& core() { return m_core; }
  const MethodConfig& config() const { return m_cfg; }
  /// Device scalars of the last step.
  V1 loss_gen() const { return m_core.loss(); }
  V1 loss_cls() const { return V1(m_loss_cls.data(), 1); }
  /// Class prior (K + 1; the last entry belongs to the "no label" token) and the counts of the
  /// running epoch, for checkpoints.
  Buffer1<T, Exec> prior() const { return m_prior; }
  Kokkos::View<int*, Kokkos::LayoutRight, DeviceOf<Exec>> prior_counts() const { return m_counts; }
  /// Sets the prior from host values (supervision statistics, or a checkpoint).
  void set_prior(const std::vector<double>& pi);
  /// Counted FLOPs of one step of the given kind.
  double flops_per_step(bool dmis) const;
  /// Denoiser evaluations (forward passes of one image) per step, by kind.
  int evaluations_per_step(bool dmis) const;

  // The two kinds of step (public only because CUDA's device lambdas cannot live in private
  // member functions; call run()).
  void vanilla_labels(const Exec& exec, const Tensor1<const int, Exec>& observed,
                      const Tensor2<const uint8_t, Exec>& candidates,
                      const Tensor1<const uint8_t, Exec>& labeled, const Tensor1<int, Exec>& out);
  /// Ambient's input mask: out = mask * [u(seed, image index, pixel) >= delta], fixed per image.
  void further_mask(const Exec& exec, const Tensor4<const T, Exec>& mask,
                    const Tensor1<const int, Exec>& index, const Tensor4<T, Exec>& out) const;
  void run_dmis(const Exec& exec, const Tensor4<const T, Exec>& x0,
                const Tensor1<const int, Exec>& observed,
                const Tensor2<const uint8_t, Exec>& candidates,
                const Tensor1<const uint8_t, Exec>& labeled, const Tensor4<const T, Exec>& mask,
                const Tensor1<const int, Exec>& index);

private:
  MethodConfig m_cfg;
  TrainStepConfig m_train;
  int m_B, m_Bc, m_Kc, m_E, m_C;  // batch, classifier samples, classes kept, extras, classes
  EdmTrainStep<Exec> m_core;
  std::unique_ptr<DiffusionClassifier<Exec>> m_ema_cls, m_live_cls;
  std::unique_ptr<models::UNet<Exec, T>> m_extra_net;  // no-grad forwards of extra classes
  Buffer1<T, Exec> m_prior, m_log_prior, m_loss_cls, m_fphi, m_ftheta, m_target, m_genw,
      m_top_w, m_rest, m_mask_tilde, m_extra_w, m_extra_in, m_extra_cn, m_extra_sigma, m_extra_D;
  Buffer1<int, Exec> m_labels, m_classes_all, m_classes_set, m_top, m_extra_labels;
  Kokkos::View<int*, Kokkos::LayoutRight, DeviceOf<Exec>> m_counts;
};

}  // namespace dmis::methods
