#pragma once
// A training step of a method under imprecise supervision (spec/method.md sections 2-4):
//
// - vanilla: conditional EDM on the observed supervision (noisy labels as given; partial labels:
//   a random candidate each step; unlabelled samples: the "no label" token);
// - dmis: after an optional warm-up of vanilla steps, the EMA diffusion classifier gives every
//   sample of the batch (posterior_fraction) its posterior given the supervision,
//   q(y) = p(y | x0, z) ∝ p(z | y) p_phi(y | x0) (noisy labels: p(ŷ | y) from a transition
//   estimated while training); the live diffusion classifier gets the classification loss on a
//   slice of the batch (classifier_fraction) with q (or, for noisy labels on request, DMIS's
//   ELR-style target) as its target; the generative term trains the denoiser on a class drawn
//   from q (gen_objective sample: the M-step of Eq. 7, unbiased, one evaluation per sample) or
//   on TDSM's mixture (gen_objective mixture: gradient through the largest-weight class, up to
//   `gen_extra` more classes above tau mixed in without gradient).
//
// Every per-sample computation is a device kernel; buffers are allocated by the constructor.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "kernels/mixed_gemm.hpp"
#include "methods/classifier.hpp"
#include "methods/dmis_ops.hpp"
#include "methods/edm_step.hpp"
#include "methods/method_choices.hpp"

namespace dmis::methods {

struct MethodConfig {
  MethodKind kind = MethodKind::Vanilla;
  double delta = 0.1;                 // ambient: further-corruption rate of the seen pixels
  bool ambient = false;               // dmis: Ambient's masked objective on corrupted images
  dmis_ops::Supervision supervision = dmis_ops::Supervision::Clean;
  double beta = 1.0;                  // weight of the classification loss
  double warmup_kimg = 0;             // vanilla steps before the DMIS terms switch on
  double rampup_kimg = 0;             // then the DMIS terms ramp in linearly over this
  ClsPush cls_push = ClsPush::Both;   // classification gradient: the loss's, or pull only
  int timesteps = 1;                  // K noise levels of the training classifier
  int refine_classes = 0;             // > 0: draws 2..K of the posterior's classifier over this
                                      // many classes of largest posterior after draw 1 (with
                                      // classifier_sigma_max: draw 1 at the middle level)
  double window = 6.4;
  double classifier_sigma = 0;        // > 0: the classifier's K points at this sigma
  double classifier_sigma_max = 0;    // > classifier_sigma: the K points evenly up to it
  double cls_sigma = 0;               // > 0: the live classifier (L_cls) at this sigma instead
  double classifier_fraction = 0.25;  // of each batch
  int top_k = 10;                     // classes kept in the live classifier
  double tau = 0.01;
  double logit_scale = 0.0;           // s; 0: the number of pixels (the sum of Eq. 12)
  NoisyTarget noisy_target = NoisyTarget::Posterior;  // or elr (DMIS Eq. 15)
  double elr_clamp = 1e-4;            // elr: probabilities clamped as ELR's reference does
  double posterior_fraction = 1.0;    // of each batch: samples whose generative class comes from q
  GenObjective gen_objective = GenObjective::Sample;
  double transition_momentum = 0.98;  // noisy: per-step decay of the transition counts
  double transition_init = 0.5;       // noisy: EM's start, labels wrong with this probability
  TransitionMode transition = TransitionMode::Estimate;  // noisy: online EM, fixed at the start,
                                                        // or known (known_transition, fixed)
  std::vector<double> known_transition;  // transition known: T(y, ŷ) row-major (C, C), from the
                                         // supervision's own noise process (data::noise_transition)
  double transition_prior = 1.0;      // noisy: Dirichlet pseudo-samples per row of T
  bool calibrate_scale = true;        // s by maximum likelihood of the supervision while training
  double scale_momentum = 0.9;        // per-step smoothing of that calibration (on log s)
  PriorMode prior = PriorMode::Uniform;
  double prior_momentum = 0.9;
  int gen_extra = 2;                  // classes mixed in without gradient (besides the top one)
  double relabel_confidence = 0;      // the posterior's class only where max q >= this, else
                                      // the vanilla label (0: always the posterior's)
  EstepNetwork estep_network = EstepNetwork::Ema;  // the posterior's weights: the EMA of every
                                      // step, or the EMA as the warm-up left it (frozen at the
                                      // first DMIS step: the E-step never learns its own relabels)
  double estep_refresh_kimg = 0;      // warmup: the frozen copy taken again from the EMA every
                                      // this many kimg after the switch (0: never)
  kernels::GemmPrecision estep_precision = kernels::GemmPrecision::FP32;  // the E-step's forward
                                      // evaluations' GEMMs (the training step: train.precision)
};

/// Samples of a global batch of B that get DMIS's classification term: round(fraction * B),
/// at least 1.
inline int classifier_samples(double fraction, int B) {
  return std::max(1, std::min(B, static_cast<int>(std::lround(fraction * B))));
}

/// What is wrong with method.refine_classes in `m` for `classes` classes (0: not known yet, the
/// plan's check before the dataset is read), as a message to follow the key's name; empty when
/// fine.
std::string refine_classes_problem(const MethodConfig& m, int classes);

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
    return m_cfg.kind == MethodKind::Ambient || (m_cfg.kind == MethodKind::Dmis && m_cfg.ambient);
  }

  /// Whether step `s` uses the DMIS terms (dmis, after the warm-up).
  bool dmis_active(long s) const;
  /// method.estep_refresh_kimg: step s (after the first DMIS step) starts a new refresh period
  /// (the frozen E-step weights are taken again from the EMA before its E-step).
  bool estep_refresh_due(long s) const;
  // the weight r in (0, 1] of the DMIS terms at step s during the ramp-in (1 after it)
  double dmis_ramp(long s) const;
  // kimg trained before step s, less method.warmup_kimg (negative during the warm-up): the
  // ramp and the E-step refresh periods both count from the switch with it
  double kimg_since_switch(long s) const;
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
  /// Noisy labels: the running transition counts (C, C) (checkpointed) and the estimate T(y, ŷ)
  /// = p(ŷ | y) (C, C) they give.
  Buffer1<T, Exec> transition_counts() const { return m_trans_acc; }
  Tensor2<T, Exec> transition() const { return Tensor2<T, Exec>(m_trans.data(), m_C, m_C); }
  /// Restores the counts (C * C values, from a checkpoint) and the estimate.
  void set_transition_counts(const std::vector<float>& counts);
  /// Called with this step's sums (step_sums_size(): the transition counts C * C, then the
  /// supervision's log-likelihood at each grid scale) before they are used: MPI sums them over the
  /// ranks, so every rank holds the same estimates.
  std::function<void(const Exec&, const V1&)> on_step_sums;
  int step_sums_size() const { return m_C * m_C + kScaleGrid; }
  /// The grid of the logit-scale calibration: kScaleGrid scales from kScaleGridLo, each
  /// kScaleGridRatio times the last (1 to 4096).
  static constexpr int kScaleGrid = 25;
  static constexpr float kScaleGridLo = 1.f, kScaleGridRatio = 1.41421356f;
  /// Clean labels of the whole training set (N), for the diagnostics only (never for training).
  void set_audit_labels(const Tensor1<const int, Exec>& clean) { m_audit = clean; }
  /// The last DMIS step's posteriors q (Bw, C) and generative classes (B; C: "no label").
  Tensor2<const T, Exec> posterior() const { return Tensor2<const T, Exec>(m_q.data(), m_Bw, m_C); }
  Tensor1<const int, Exec> generative_labels() const { return Tensor1<const int, Exec>(m_top.data(), m_B); }
  /// The last DMIS step's diagnostics (dmis_ops::kDiagnostics values, dmis_ops::Diagnostic).
  V1 diagnostics() const { return V1(m_diag.data(), dmis_ops::kDiagnostics); }
  /// The diffusion classifier's logit scale s (1): the resolved method.logit_scale, then
  /// calibrated while training (checkpointed).
  Buffer1<T, Exec> logit_scale() const { return m_scale_dev; }
  double initial_logit_scale() const { return m_scale; }
  void set_logit_scale(double s);
  /// Samples of the local batch with posterior weights / with the classification term.
  int posterior_samples() const { return m_Bw; }
  /// The diffusion classifiers of a DMIS step (null for the other methods): the EMA one of the
  /// posterior (method.classifier_sigma) and the live one of the classification term
  /// (method.cls_sigma where it is set).
  const DiffusionClassifier<Exec>* posterior_classifier() const { return m_ema_cls.get(); }
  const DiffusionClassifier<Exec>* live_classifier() const { return m_live_cls.get(); }
  /// The coarse-to-fine E-step's second classifier (method.refine_classes), or nullptr.
  const DiffusionClassifier<Exec>* refine_classifier() const { return m_refine_cls.get(); }
  int classifier_samples_local() const { return m_Bc; }
  /// method.estep_network warmup: the E-step's frozen weights (the EMA as the first DMIS step
  /// found it), for checkpoints; empty before that step and under ema.
  Buffer1<T, Exec> estep_params() const { return m_estep_frozen ? m_estep_params : Buffer1<T, Exec>(); }
  /// Restores them (a checkpoint's, params-sized); an InputError naming the size else.
  void set_estep_params(const std::vector<float>& w);
  /// Counted FLOPs of one step of the given kind.
  double flops_per_step(bool dmis) const;
  /// Denoiser evaluations (forward passes of one image) per step, by kind.
  int evaluations_per_step(bool dmis) const;
  /// Of those, the E-step's (the posterior's EMA classifier, with its refinement; 0 where the
  /// E-step is skipped).
  int posterior_evaluations() const;
  /// Whether the E-step is left out: clean labels make the posterior the observed label
  /// whatever the classifier says (q ∝ 1[y = ŷ] f), so the E-step's evaluations feed only the
  /// logit scale's calibration, which reaches training only through the classification term.
  /// Skipped where that cannot happen (beta 0, or the scale not calibrated): the step then
  /// trains bitwise as it does with the E-step, at the cost of a vanilla step plus the
  /// classifier slice; the EMA classifier's diagnostics are not measured (null in the stats),
  /// and at beta 0 the logged L_cls is at the scale the run started with.
  bool estep_skipped() const { return m_skip_estep; }

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
  // run_dmis's stages, in order
  void dmis_posterior(const Exec& exec, const Tensor4<const T, Exec>& x0,
                      const Tensor1<const int, Exec>& observed,
                      const Tensor2<const uint8_t, Exec>& candidates,
                      const Tensor1<const uint8_t, Exec>& labeled, const Tensor4<const T, Exec>& mask);
  void dmis_classification(const Exec& exec, const Tensor4<const T, Exec>& x0,
                           const Tensor1<const int, Exec>& observed, const Tensor4<const T, Exec>& mask,
                           double ramp);
  void sample_term(const Exec& exec, const Tensor4<const T, Exec>& x0,
                   const Tensor1<const int, Exec>& observed,
                   const Tensor2<const uint8_t, Exec>& candidates,
                   const Tensor1<const uint8_t, Exec>& labeled, const Tensor4<const T, Exec>& mask,
                   const Tensor4<T, Exec>& tilde, double ramp);
  void dmis_finish(const Exec& exec, const Tensor1<const int, Exec>& observed,
                   const Tensor1<const int, Exec>& index);
  void mixture_term(const Exec& exec, const Tensor4<const T, Exec>& x0,
                    const Tensor1<const int, Exec>& observed,
                    const Tensor2<const uint8_t, Exec>& candidates,
                    const Tensor1<const uint8_t, Exec>& labeled, const Tensor4<const T, Exec>& mask,
                    const Tensor4<T, Exec>& tilde);
  void mixture_classes(const Exec& exec, const Tensor1<const int, Exec>& observed,
                       const Tensor2<const uint8_t, Exec>& candidates,
                       const Tensor1<const uint8_t, Exec>& labeled);
  void extra_classes(const Exec& exec, const Tensor4<T, Exec>& tilde, const Tensor4<T, Exec>& rest);

private:
  void allocate_dmis(const models::UNetConfig& net, double conv_scratch_mb);
  void make_estep_classifiers(const models::UNetConfig& net, const ClassifierConfig& cc,
                              double conv_scratch_mb);
  // the weights of this step's E-step: the EMA, or (estep_network warmup) the frozen copy,
  // taken from the EMA on the first call
  Tensor1<const T, Exec> estep_weights(const Exec& exec);
  MethodConfig m_cfg;
  TrainStepConfig m_train;
  dmis_ops::Supervision m_kind;
  // batch, samples with posteriors, classifier samples, classes kept, extras, classes
  int m_B, m_Bw, m_Bc, m_Kc, m_E, m_C;
  double m_scale = 1;
  EdmTrainStep<Exec> m_core;
  // the posterior's EMA classifier, the classification term's live one, and the refinement's
  // (draws 2..K over the classes of largest posterior after draw 1; method.refine_classes)
  std::unique_ptr<DiffusionClassifier<Exec>> m_ema_cls, m_live_cls, m_refine_cls;
  int m_R = 0;                          // classes refined (0: none)
  Buffer1<int, Exec> m_refine_set;      // (Bw, R)
  Buffer1<T, Exec> m_u;                 // (Bw, C) the refined unscaled logits
  std::unique_ptr<models::UNet<Exec, T>> m_extra_net;  // no-grad forwards of extra classes
  Buffer1<T, Exec> m_prior, m_log_prior, m_loss_cls, m_fphi, m_ftheta, m_target, m_genw,
      m_top_w, m_rest, m_mask_tilde, m_extra_w, m_extra_in, m_extra_cn, m_extra_sigma, m_extra_D;
  Buffer1<int, Exec> m_labels, m_classes_all, m_classes_set, m_top, m_extra_labels;
  Buffer1<T, Exec> m_q, m_trans_step, m_trans_acc, m_trans, m_diag, m_gcls, m_norm_scratch,
      m_scale_dev;
  Tensor1<const int, Exec> m_audit;
  Buffer1<T, Exec> m_estep_params;  // estep_network warmup: the frozen E-step weights
  bool m_estep_frozen = false;
  bool m_skip_estep = false;  // estep_skipped()
  Kokkos::View<int*, Kokkos::LayoutRight, DeviceOf<Exec>> m_counts;
};

}  // namespace dmis::methods
