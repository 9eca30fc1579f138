#include "methods/method_step.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "kernels/common.hpp"
#include "kernels/eti.hpp"
#include "optim/optimizer.hpp"

namespace dmis::methods {

namespace {
using dmis_ops::Supervision;
enum Kind : int { kClean = 0, kNoisy = 1, kPartial = 2, kUnlabeled = 3 };
template <class Exec>
Buffer1<float, Exec> fbuf(const char* name, size_t n) {
  return Buffer1<float, Exec>(std::string("dmis::method::") + name, std::max<size_t>(n, 1));
}
template <class Exec>
Buffer1<int, Exec> ibuf(const char* name, size_t n) {
  return Buffer1<int, Exec>(std::string("dmis::method::") + name, std::max<size_t>(n, 1));
}

// Vanilla label of sample b: the observed label; partial labels: a uniformly random candidate
// (keyed by step and sample); unlabelled: the "no label" token K.
template <class Cand>
KOKKOS_INLINE_FUNCTION int vanilla_label(int kind, int K, int b, int obs, const Cand& cand,
                                         bool is_labeled, const rng::Philox& gen, uint32_t step,
                                         uint32_t sample) {
  if (kind == kUnlabeled) return is_labeled ? obs : K;
  if (kind != kPartial) return obs;
  int count = 0;
  for (int k = 0; k < K; ++k) count += cand(b, k) ? 1 : 0;
  if (count == 0) return K;
  int pick = static_cast<int>(rng::uniform<float>(gen, step, sample, 0u) * count);
  if (pick >= count) pick = count - 1;
  for (int k = 0; k < K; ++k)
    if (cand(b, k) && pick-- == 0) return k;
  return K;
}
// ids(i) = i % C: every class for every image (a free function: CUDA lambdas cannot live in
// constructors).
template <class Exec>
void fill_class_ids(const Buffer1<int, Exec>& ids, int C) {
  Kokkos::parallel_for(
      "dmis::method::classes_all", Kokkos::RangePolicy<Exec>(0, ids.extent(0)),
      KOKKOS_LAMBDA(int i) { ids(i) = i % C; });
}
}  // namespace

template <class Exec>
MethodStep<Exec>::MethodStep(const models::UNetConfig& net, const TrainStepConfig& train,
                             const MethodConfig& m, int local_batch, double conv_scratch_mb)
    : m_cfg(m), m_train(train), m_kind(m.supervision), m_B(local_batch),
      m_core(net, train, local_batch, conv_scratch_mb) {
  if (m.kind == MethodKind::Diffem)
    throw InputError("method diffem is a pipeline of training runs (train::train), not one step");
  if (m.ambient && m.kind != MethodKind::Dmis)
    throw InputError(cat("method.ambient goes with method.name dmis (found '", name_of(m.kind),
                         "'; method.name ambient is Ambient Diffusion with the observed labels)"));
  if (needs_masks() != m_core.masked_input())
    throw InputError(cat("method '", name_of(m.kind), m.ambient ? "' with ambient" : "'",
                         needs_masks() ? " needs" : " does not take",
                         " a network with a mask input channel (in_channels = out_channels + 1), "
                         "found ", net.in_channels, " -> ", net.out_channels));
  if (!(m.delta >= 0 && m.delta < 1))
    throw InputError(cat("method.delta: expected a rate in [0, 1), found ", m.delta));
  m_scale = resolved_logit_scale(m.logit_scale, net);
  m_C = net.classes;
  // the classifier's samples: the first Bc of the global batch, which interleaved shards spread
  // as Bc / ranks per rank (the trainer checks that it divides)
  {
    const int Bg = train.global_batch > 0 ? train.global_batch : local_batch;
    const int ranks = std::max(1, Bg / local_batch);
    const int Bcg = classifier_samples(m.classifier_fraction, Bg);
    m_Bc = std::max(1, Bcg / ranks);
    const int Bwg = classifier_samples(m.posterior_fraction, Bg);
    m_Bw = std::max(m_Bc, std::min(m_B, Bwg / ranks));
  }
  m_Kc = std::max(1, std::min(m.top_k, m_C));
  m_E = std::max(0, std::min(m.gen_extra, m_C - 1));
  m_labels = ibuf<Exec>("labels", m_B);
  m_top = ibuf<Exec>("top_class", m_B);
  m_top_w = fbuf<Exec>("top_weight", m_B);
  m_loss_cls = fbuf<Exec>("loss_cls", 1);
  m_prior = fbuf<Exec>("prior", m_C + 1);
  m_log_prior = fbuf<Exec>("log_prior", m_C + 1);
  m_counts = Kokkos::View<int*, Kokkos::LayoutRight, DeviceOf<Exec>>("dmis::method::prior_counts",
                                                                     m_C);
  set_prior(std::vector<double>(m_C, 1.0 / m_C));
  const size_t n = static_cast<size_t>(net.in_channels) * net.resolution * net.resolution;
  m_rest = fbuf<Exec>("mix_rest", m_B * n);
  if (needs_masks())
    m_mask_tilde = fbuf<Exec>("ambient_mask", static_cast<size_t>(m_B) * net.resolution * net.resolution);
  if (m.kind == MethodKind::Dmis) allocate_dmis(net, conv_scratch_mb);
}

namespace {

/// The DMIS classifiers' levels: K points in the DMIS window, at method.classifier_sigma, or
/// evenly over [classifier_sigma, classifier_sigma_max] with equal weights; unscaled logits u
/// (the step applies s, a device scalar, and the prior).
ClassifierConfig dmis_classifier_config(const MethodConfig& m, const TrainStepConfig& train) {
  ClassifierConfig cc;
  cc.points = m.timesteps;
  cc.timesteps = ClassifierLevels::Window;
  cc.window = m.window;
  cc.fixed_sigma = m.classifier_sigma;
  if (m.classifier_sigma_max > 0) {  // K levels evenly over [classifier_sigma, _max], alike
    if (!(m.classifier_sigma > 0 && m.classifier_sigma_max > m.classifier_sigma))
      throw InputError(cat("method.classifier_sigma_max (", m.classifier_sigma_max,
                           ") must exceed method.classifier_sigma (", m.classifier_sigma, ")"));
    cc.fixed_sigma = 0;
    cc.timesteps = ClassifierLevels::Uniform;
    cc.uniform_min = m.classifier_sigma;
    cc.uniform_max = m.classifier_sigma_max;
    cc.equal_weights = true;
  }
  cc.logit_scale = 1;
  cc.edm = train.edm;
  return cc;
}

/// EM's starting counts for the noisy-label transition (C x C): a label is right with
/// probability 1 - transition_init, wrong labels spread evenly (diagonally dominant, the usual
/// identifiability assumption), with the weight of the counts' steady state (the samples of
/// 1 / (1 - momentum) steps) so that it fades as the estimates come in. known: the
/// supervision's own noise process instead (fixed; the same weight of counts, so that the
/// Dirichlet prior's share is the same as fixed's).
std::vector<float> initial_transition_counts(const MethodConfig& m, const TrainStepConfig& train,
                                             int local_batch, int C) {
  const double e0 = m.transition_init;
  const int Bwg = classifier_samples(m.posterior_fraction, train.global_batch > 0 ? train.global_batch : local_batch);
  const double rows = Bwg / (1.0 - std::min(m.transition_momentum, 0.999)) / C;
  const bool known = m.transition == TransitionMode::Known && m.supervision == dmis_ops::Supervision::Noisy;
  if (known && m.known_transition.size() != static_cast<size_t>(C) * C)
    throw InputError(cat("method.transition: known needs the noise process's transition of ", C, " x ", C,
                         " values, found ", m.known_transition.size()));
  std::vector<float> init(C * C);
  for (int y = 0; y < C; ++y)
    for (int k = 0; k < C; ++k)
      init[y * C + k] = static_cast<float>(rows * (known ? m.known_transition[y * C + k]
                                                         : y == k ? 1 - e0 : e0 / (C - 1)));
  return init;
}

}  // namespace

std::string refine_classes_problem(const MethodConfig& m, int classes) {
  if (m.refine_classes <= 0) return {};
  if (m.timesteps < 2)
    return cat("refines with draws 2.. of method.timesteps: expected timesteps >= 2, found ", m.timesteps);
  if (!(m.classifier_sigma > 0))
    return cat("needs the draws at method.classifier_sigma (one sigma, or the levels up to "
               "classifier_sigma_max), not the window's: expected classifier_sigma > 0, found ",
               m.classifier_sigma);
  if (classes > 0 && m.refine_classes >= classes)
    return cat("expected fewer than the ", classes,
               " classes (every class takes every draw without it), found ", m.refine_classes);
  return {};
}

/// The E-step's classifiers over every class of the B_w images: one, or with
/// `method.refine_classes` R a coarse one (draw 1, every class) and a fine one (the other K - 1
/// draws over the R classes of largest posterior).
template <class Exec>
void MethodStep<Exec>::make_estep_classifiers(const models::UNetConfig& net, const ClassifierConfig& cc,
                                              double conv_scratch_mb) {
  const MethodConfig& m = m_cfg;
  if (m.refine_classes > 0) {
    // coarse to fine: draw 1 over every class, draws 2..K over the R classes of largest posterior
    m_R = m.refine_classes;
    ClassifierConfig first = cc, rest = cc;
    first.points = 1;
    rest.points = m.timesteps - 1;
    rest.first_draw = 1;  // its own noise: draws 2..K of the same stream
    if (m.classifier_sigma_max > 0) {
      // K levels over [classifier_sigma, classifier_sigma_max]: draw 1 over every class at the
      // middle level (index K / 2), the other K - 1 levels over the R classes; each classifier
      // weighs its levels lambda / (its points), so refine_logits' (first + (K - 1) mean) / K
      // is the K levels' mean, as without refinement
      std::vector<double> sigma, weight;
      classifier_levels(cc, sigma, weight);
      const int mid = m.timesteps / 2;
      first.sigmas = {sigma[mid]};
      for (int k = 0; k < m.timesteps; ++k)
        if (k != mid) rest.sigmas.push_back(sigma[k]);
    }
    m_ema_cls = std::make_unique<DiffusionClassifier<Exec>>(net, first, m_Bw, m_C, true, conv_scratch_mb);
    m_refine_cls = std::make_unique<DiffusionClassifier<Exec>>(net, rest, m_Bw, m_R, true, conv_scratch_mb);
    m_refine_set = ibuf<Exec>("refine_set", m_Bw * m_R);
    m_u = fbuf<Exec>("refined_logits", m_Bw * m_C);
  } else {
    m_ema_cls = std::make_unique<DiffusionClassifier<Exec>>(net, cc, m_Bw, m_C, true, conv_scratch_mb);
  }
}

/// DMIS's state: the two diffusion classifiers, the posteriors and targets, the noisy-label
/// transition, the diagnostics and gradient buffers, and the mixture's extra-class network.
template <class Exec>
void MethodStep<Exec>::allocate_dmis(const models::UNetConfig& net, double conv_scratch_mb) {
  const MethodConfig& m = m_cfg;
  const size_t n = static_cast<size_t>(net.in_channels) * net.resolution * net.resolution;
  const ClassifierConfig cc = dmis_classifier_config(m, m_train);
  const std::string problem = refine_classes_problem(m, m_C);
  if (!problem.empty()) throw InputError(cat("method.refine_classes: ", problem));
  m_skip_estep = m_kind == dmis_ops::Supervision::Clean && !(m.calibrate_scale && m.beta > 0);
  if (!m_skip_estep) make_estep_classifiers(net, cc, conv_scratch_mb);  // none: estep_skipped()
  ClassifierConfig live = cc;
  if (m.cls_sigma > 0) live.fixed_sigma = m.cls_sigma;
  // beta 0: its forward feeds L_cls in the log alone (no backward): an inference network, run
  // in the E-step's precision (dmis_classification)
  m_live_cls = std::make_unique<DiffusionClassifier<Exec>>(net, live, m_Bc, m_Kc, /*inference_only=*/m.beta == 0,
                                                           conv_scratch_mb);
  m_fphi = fbuf<Exec>("f_phi", m_Bw * m_C);
  m_q = fbuf<Exec>("posterior", m_Bw * m_C);
  m_ftheta = fbuf<Exec>("f_theta", m_Bc * m_Kc);
  m_target = fbuf<Exec>("target", m_Bc * m_Kc);
  m_classes_all = ibuf<Exec>("classes_all", m_Bw * m_C);
  m_classes_set = ibuf<Exec>("classes_set", m_Bc * m_Kc);
  fill_class_ids<Exec>(m_classes_all, m_C);
  m_trans_step = fbuf<Exec>("step_sums", m_C * m_C + kScaleGrid);  // counts (C, C), ll (G)
  m_trans_acc = fbuf<Exec>("transition_counts", m_C * m_C);
  m_trans = fbuf<Exec>("transition", m_C * m_C);
  set_transition_counts(initial_transition_counts(m, m_train, m_B, m_C));
  m_diag = fbuf<Exec>("diagnostics", dmis_ops::kDiagnostics);
  m_scale_dev = fbuf<Exec>("logit_scale", 1);
  set_logit_scale(m_scale);
  m_gcls = fbuf<Exec>("grads_cls", m_core.store().grads.extent(0));
  if (m.estep_network == EstepNetwork::Warmup && !m_skip_estep)
    m_estep_params = fbuf<Exec>("estep_params", m_core.store().ema.extent(0));
  m_norm_scratch = fbuf<Exec>("diag_norm_scratch", optim::Optimizer<Exec, T>::norm_scratch_size(
                                                      m_core.store().grads.extent(0)));
  if (m_E > 0 && m.gen_objective == GenObjective::Mixture) {
    m_genw = fbuf<Exec>("gen_weights", m_Bw * m_C);
    m_extra_net = std::make_unique<models::UNet<Exec, T>>(net);
    m_extra_net->prepare(m_E * m_Bw, conv_scratch_mb, /*inference_only=*/true);
    m_extra_w = fbuf<Exec>("extra_weight", m_E * m_Bw);
    m_extra_labels = ibuf<Exec>("extra_labels", m_E * m_Bw);
    m_extra_in = fbuf<Exec>("extra_in", m_E * m_Bw * n);
    m_extra_cn = fbuf<Exec>("extra_c_noise", m_E * m_Bw);
    m_extra_sigma = fbuf<Exec>("extra_sigma", m_E * m_Bw);
  }
  Kokkos::fence();
}

template <class Exec>
void MethodStep<Exec>::set_prior(const std::vector<double>& pi) {
  if (static_cast<int>(pi.size()) != m_C && static_cast<int>(pi.size()) != m_C + 1)
    throw InputError(cat("class prior of ", pi.size(), " entries for ", m_C, " classes"));
  auto hp = Kokkos::create_mirror_view(m_prior);
  auto hl = Kokkos::create_mirror_view(m_log_prior);
  for (int k = 0; k < m_C; ++k) {
    hp(k) = static_cast<T>(pi[k]);
    hl(k) = static_cast<T>(std::log(std::max(pi[k], 1e-12)));
  }
  hp(m_C) = 1, hl(m_C) = 0;
  Kokkos::deep_copy(m_prior, hp);
  Kokkos::deep_copy(m_log_prior, hl);
}

template <class Exec>
void MethodStep<Exec>::set_estep_params(const std::vector<float>& w) {
  if (m_estep_params.extent(0) == 0) return;  // not dmis, or the E-step on the EMA
  if (w.size() != m_estep_params.extent(0))
    throw InputError(cat("estep_params: expected the network's ", m_estep_params.extent(0),
                         " parameters, found ", w.size()));
  auto h = Kokkos::create_mirror_view(m_estep_params);
  for (size_t i = 0; i < w.size(); ++i) h(i) = w[i];
  Kokkos::deep_copy(m_estep_params, h);
  m_estep_frozen = true;
}

template <class Exec>
Tensor1<const typename MethodStep<Exec>::T, Exec> MethodStep<Exec>::estep_weights(const Exec& exec) {
  if (m_estep_params.extent(0) == 0) return m_core.store().ema;
  // the first DMIS step (of a run not resumed after it), and with method.estep_refresh_kimg
  // each step that starts a new refresh period: a pure function of the step, so a resumed run
  // (the copy restored from its checkpoint) refreshes at the same steps
  if (!m_estep_frozen || estep_refresh_due(m_core.step())) {
    Kokkos::deep_copy(exec, m_estep_params, m_core.store().ema);
    m_estep_frozen = true;
  }
  return m_estep_params;
}

template <class Exec>
void MethodStep<Exec>::set_transition_counts(const std::vector<float>& counts) {
  if (m_trans_acc.extent(0) == 0) return;  // not dmis
  if (static_cast<int>(counts.size()) != m_C * m_C)
    throw InputError(cat("transition counts of ", counts.size(), " values for ", m_C, " classes (",
                         m_C * m_C, " expected)"));
  auto h = Kokkos::create_mirror_view(m_trans_acc);
  for (int i = 0; i < m_C * m_C; ++i) h(i) = counts[i];
  Kokkos::deep_copy(m_trans_acc, h);
  Kokkos::deep_copy(m_trans_step, T(0));
  // the estimate from the counts alone (momentum 1, nothing added)
  const Tensor2<T, Exec> step(m_trans_step.data(), m_C, m_C), acc(m_trans_acc.data(), m_C, m_C),
      tr(m_trans.data(), m_C, m_C);
  dmis_ops::transition_update(Exec(), step, acc, 1.f, static_cast<float>(m_cfg.transition_prior), tr);
  Kokkos::fence();
}

template <class Exec>
void MethodStep<Exec>::set_logit_scale(double s) {
  if (m_scale_dev.extent(0) == 0) return;  // not dmis
  if (!(s > 0 && std::isfinite(s))) throw InputError(cat("logit scale must be positive, found ", s));
  Kokkos::deep_copy(m_scale_dev, static_cast<T>(s));
}

template <class Exec>
double MethodStep<Exec>::kimg_since_switch(long s) const {
  return static_cast<double>(s) * m_core.global_batch() / 1e3 - m_cfg.warmup_kimg;
}

template <class Exec>
double MethodStep<Exec>::dmis_ramp(long s) const {
  if (!(m_cfg.rampup_kimg > 0)) return 1.0;
  // the ramp's first step (the first DMIS step) already has r > 0: steps counted from 1
  const double per_step = m_core.global_batch() / 1e3;
  return std::clamp((kimg_since_switch(s) + per_step) / m_cfg.rampup_kimg, 1e-6, 1.0);
}

template <class Exec>
bool MethodStep<Exec>::estep_refresh_due(long s) const {
  if (!(m_cfg.estep_refresh_kimg > 0) || !dmis_active(s) || !dmis_active(s - 1)) return false;
  // refresh period of step s: whole periods of estep_refresh_kimg since the switch
  auto period = [&](long t) { return std::floor(kimg_since_switch(t) / m_cfg.estep_refresh_kimg + 1e-9); };
  return period(s) > period(s - 1);
}

template <class Exec>
bool MethodStep<Exec>::dmis_active(long s) const {
  if (m_cfg.kind != MethodKind::Dmis) return false;
  return static_cast<double>(s) * m_core.global_batch() >= m_cfg.warmup_kimg * 1e3;
}

template <class Exec>
void MethodStep<Exec>::vanilla_labels(const Exec& exec, const Tensor1<const int, Exec>& observed,
                                      const Tensor2<const uint8_t, Exec>& candidates,
                                      const Tensor1<const uint8_t, Exec>& labeled,
                                      const Tensor1<int, Exec>& out) {
  const int kind = static_cast<int>(m_kind), K = m_C;
  const rng::Philox gen(m_train.seed, rng::kCandidate);
  const uint32_t step = static_cast<uint32_t>(m_core.step());
  const rng::SampleIds ids = m_train.ids();
  Kokkos::parallel_for(
      "dmis::method::vanilla_labels", Kokkos::RangePolicy<Exec>(exec, 0, m_B), KOKKOS_LAMBDA(int b) {
        out(b) = vanilla_label(kind, K, b, observed(b), candidates, labeled(b) != 0, gen, step,
                               ids(b));
      });
}

template <class Exec>
void MethodStep<Exec>::run(const Exec& exec, const Tensor4<const T, Exec>& x0,
                           const Tensor1<const int, Exec>& observed,
                           const Tensor2<const uint8_t, Exec>& candidates,
                           const Tensor1<const uint8_t, Exec>& labeled,
                           const Tensor4<const T, Exec>& mask,
                           const Tensor1<const int, Exec>& index) {
  const char* op = "dmis::method::run";
  kernels::expect_shape(op, "observed", observed, {m_B});
  kernels::expect_shape(op, "candidates", candidates, {m_B, m_C});
  kernels::expect_shape(op, "labeled", labeled, {m_B});
  if (needs_masks()) {
    const int R = m_core.net().config().resolution;
    kernels::expect_shape(op, "mask", mask, {m_B, 1, R, R});
    kernels::expect_shape(op, "index", index, {m_B});
  }
  if (dmis_active(m_core.step())) {
    run_dmis(exec, x0, observed, candidates, labeled, mask, index);
    return;
  }
  const Tensor1<int, Exec> labels(m_labels.data(), m_B);
  m_core.begin(exec);
  vanilla_labels(exec, observed, candidates, labeled, labels);
  m_core.drop_labels(exec, labels, labels);
  if (needs_masks()) {  // Ambient Diffusion: the network sees A B x_sigma, the loss A (D - x0)
    const int R = m_core.net().config().resolution;
    const Tensor4<T, Exec> tilde(m_mask_tilde.data(), m_B, 1, R, R);
    further_mask(exec, mask, index, tilde);
    m_core.sample_inputs(exec, x0, tilde);
    m_core.generative_loss(exec, x0, labels, V1(), Tensor4<const T, Exec>(), T(1), mask);
  } else {
    m_core.sample_inputs(exec, x0);
    m_core.generative_loss(exec, x0, labels, V1(), Tensor4<const T, Exec>());
  }
  optim::Optimizer<Exec, T>::fill(exec, V1(m_loss_cls.data(), 1), T(0));
  m_core.finish(exec);
}

template <class Exec>
void MethodStep<Exec>::further_mask(const Exec& exec, const Tensor4<const T, Exec>& mask,
                                    const Tensor1<const int, Exec>& index,
                                    const Tensor4<T, Exec>& out) const {
  const rng::Philox gen(m_train.seed, rng::kAmbient);
  const T delta = T(m_cfg.delta);
  const int hw = static_cast<int>(mask.extent(2) * mask.extent(3));
  Kokkos::parallel_for(
      "dmis::method::ambient_mask",
      Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(mask.extent(0)) * hw),
      KOKKOS_LAMBDA(size_t r) {
        const int b = static_cast<int>(r / hw), p = static_cast<int>(r % hw);
        const bool keep = rng::uniform<T>(gen, 0u, static_cast<uint32_t>(index(b)),
                                          static_cast<uint32_t>(p)) >= delta;
        out.data()[r] = keep ? mask.data()[r] : T(0);
      });
}

template <class Exec>
void MethodStep<Exec>::run_dmis(const Exec& exec, const Tensor4<const T, Exec>& x0,
                                const Tensor1<const int, Exec>& observed,
                                const Tensor2<const uint8_t, Exec>& candidates,
                                const Tensor1<const uint8_t, Exec>& labeled,
                                const Tensor4<const T, Exec>& mask,
                                const Tensor1<const int, Exec>& index) {
  const auto& nc = m_core.net().config();
  const int R = nc.resolution;
  // DMIS with Ambient's masked objective (noisy labels and missing pixels): the classifiers see
  // the observation masks A, the generative term the further-masked A B, its loss A
  const bool masked = needs_masks();
  const Tensor4<T, Exec> tilde(masked ? m_mask_tilde.data() : nullptr, masked ? m_B : 0, 1, R, R);
  if (masked) further_mask(exec, mask, index, tilde);
  // the ramp-in after the warm-up (method.rampup_kimg): r in (0, 1], host-known from the step
  const double ramp = dmis_ramp(m_core.step());
  m_core.begin(exec);
  dmis_posterior(exec, x0, observed, candidates, labeled, mask);    // 1-2
  dmis_classification(exec, x0, observed, mask, ramp);             // 3-5
  if (m_cfg.gen_objective == GenObjective::Sample)                  // 6
    sample_term(exec, x0, observed, candidates, labeled, mask, tilde, ramp);
  else
    mixture_term(exec, x0, observed, candidates, labeled, mask, tilde);
  dmis_finish(exec, observed, index);                               // 7
  m_core.finish(exec);
}

// 1. the EMA diffusion classifier over every class: f = p_phi(y | x0)   (Bw, C)
// 2. the posterior given the supervision, q ∝ p(z | y) f   (Bw, C), with p(z | y) of the
//    supervision kind (noisy labels: the current transition estimate); the likelihood of the
//    supervision over the grid of logit scales; the transition's online EM and the class
//    prior's counts (both take effect from the next step, with the sums of every rank)
template <class Exec>
void MethodStep<Exec>::dmis_posterior(const Exec& exec, const Tensor4<const T, Exec>& x0,
                                      const Tensor1<const int, Exec>& observed,
                                      const Tensor2<const uint8_t, Exec>& candidates,
                                      const Tensor1<const uint8_t, Exec>& labeled,
                                      const Tensor4<const T, Exec>& mask) {
  namespace ops = dmis_ops;
  using M2 = Tensor2<T, Exec>;
  const auto& nc = m_core.net().config();
  const int Bw = m_Bw, C = m_C, Ch = nc.out_channels, R = nc.resolution;
  const bool masked = needs_masks();
  const Tensor4<const T, Exec> x0w(x0.data(), Bw, Ch, R, R),
      maskw(masked ? mask.data() : nullptr, masked ? Bw : 0, 1, R, R);
  const Tensor1<const int, Exec> obsw(observed.data(), Bw);
  const Tensor2<const int, Exec> all(m_classes_all.data(), Bw, C);
  const Tensor1<const T, Exec> scale(m_scale_dev.data(), 1);
  const uint32_t step = static_cast<uint32_t>(m_core.step());
  if (m_skip_estep) {  // clean labels: q is the observed label whatever f is (estep_skipped())
    ops::likelihood_posterior(exec, ops::CleanLikelihood<Exec>{obsw}, Tensor2<T, Exec>(m_q.data(), Bw, C));
    return;
  }
  const Tensor1<const T, Exec> weights = estep_weights(exec);  // method.estep_network
  const kernels::GemmPrecisionScope estep_gemms(m_cfg.estep_precision, "method.estep_precision");
  m_ema_cls->forward(exec, weights, x0w, all, Tensor1<const T, Exec>(), m_train.seed, step,
                     m_train.ids(), maskw);
  const Tensor2<T, Exec> fphi(m_fphi.data(), Bw, C), q(m_q.data(), Bw, C);
  const V1 sums(m_trans_step.data(), C * C + kScaleGrid), ll(m_trans_step.data() + C * C, kScaleGrid);
  auto with_likelihood = [&](auto&& fn) {
    switch (m_kind) {
      case ops::Supervision::Clean: fn(ops::CleanLikelihood<Exec>{obsw}); break;
      case ops::Supervision::Noisy:
        fn(ops::NoisyLikelihood<Exec>{obsw, Tensor2<const T, Exec>(m_trans.data(), C, C)});
        break;
      case ops::Supervision::Partial:
        fn(ops::PartialLikelihood<Exec>{Tensor2<const uint8_t, Exec>(candidates.data(), Bw, C)});
        break;
      case ops::Supervision::Unlabeled:
        fn(ops::UnlabeledLikelihood<Exec>{obsw, Tensor1<const uint8_t, Exec>(labeled.data(), Bw)});
        break;
    }
  };
  // f = softmax(s u + log prior), q ∝ p(z | y) f, from unscaled logits u (Bw, C)
  auto posterior_from = [&](const Tensor2<const T, Exec>& u) {
    ops::scaled_softmax<Exec>(exec, u, all, m_log_prior, scale, fphi);
    with_likelihood([&](const auto& lik) { ops::posterior(exec, lik, Tensor2<const T, Exec>(fphi), q); });
  };
  Tensor2<const T, Exec> u(m_ema_cls->logits());
  if (m_refine_cls) {
    // coarse to fine: the posterior after draw 1 picks the R classes that take draws 2..K
    posterior_from(u);
    const Tensor2<int, Exec> set(m_refine_set.data(), Bw, m_R);
    ops::top_classes(exec, Tensor2<const T, Exec>(q), Tensor1<const int, Exec>(), set);
    m_refine_cls->forward(exec, weights, x0w, Tensor2<const int, Exec>(set), Tensor1<const T, Exec>(),
                          m_train.seed, step, m_train.ids(), maskw);
    const Tensor2<T, Exec> refined(m_u.data(), Bw, C);
    ops::refine_logits(exec, u, Tensor2<const T, Exec>(m_refine_cls->logits()), Tensor2<const int, Exec>(set),
                       m_cfg.timesteps, refined);
    u = Tensor2<const T, Exec>(refined);
  }
  // the logit scale's likelihood over every class (with refinement: the refined classes' mean
  // over K draws, the others' one draw), the posterior (with refinement: over the refined
  // classes alone, ops::screen_out says why)
  if (m_cfg.calibrate_scale)
    with_likelihood([&](const auto& lik) {
      ops::scale_loglik(exec, lik, u, all, Tensor1<const T, Exec>(m_log_prior), kScaleGridLo, kScaleGridRatio, ll);
    });
  if (m_refine_cls)
    ops::screen_out(exec, Tensor2<const int, Exec>(m_refine_set.data(), Bw, m_R), Tensor2<T, Exec>(m_u.data(), Bw, C));
  posterior_from(u);
  const bool estimate_transition = m_kind == ops::Supervision::Noisy && m_cfg.transition == TransitionMode::Estimate;
  if (estimate_transition)
    ops::transition_counts(exec, Tensor2<const T, Exec>(q), obsw, Tensor2<T, Exec>(m_trans_step.data(), C, C));
  if (on_step_sums) on_step_sums(exec, sums);
  if (estimate_transition)
    ops::transition_update(exec, M2(m_trans_step.data(), C, C), M2(m_trans_acc.data(), C, C),
                           float(m_cfg.transition_momentum), float(m_cfg.transition_prior), M2(m_trans.data(), C, C));
  if (m_kind == ops::Supervision::Partial && m_cfg.prior == PriorMode::Estimate)
    ops::prior_counts(exec, Tensor2<const T, Exec>(q), m_counts);
}

// 3. the live classifier on the classes of largest q (a known label always among them)
// 4. its target: q on the set, or DMIS's ELR-style target for noisy labels
// 5. L_cls and its gradient, taken with respect to the unscaled logits u (the classifier's
//    backward): the gradient with respect to s u divided by s. Its size does not depend on the
//    scale, i.e. beta weighs a classification loss summed over pixels against a generative
//    loss summed over pixels as in the paper (here both are per pixel), while s sets how sharp
//    the posterior is. Into its own buffer (its norm for the diagnostics); added at the end.
template <class Exec>
void MethodStep<Exec>::dmis_classification(const Exec& exec, const Tensor4<const T, Exec>& x0,
                                           const Tensor1<const int, Exec>& observed,
                                           const Tensor4<const T, Exec>& mask, double ramp) {
  namespace ops = dmis_ops;
  const auto& nc = m_core.net().config();
  const int B = m_B, Bc = m_Bc, Kc = m_Kc, C = m_C, Ch = nc.out_channels, R = nc.resolution;
  const bool masked = needs_masks();
  const Tensor4<const T, Exec> x0c(x0.data(), Bc, Ch, R, R);
  const Tensor4<const T, Exec> maskc(masked ? mask.data() : nullptr, masked ? Bc : 0, 1, R, R);
  auto& store = m_core.store();
  const Tensor2<const T, Exec> qc(m_q.data(), Bc, C);
  const Tensor2<int, Exec> set(m_classes_set.data(), Bc, Kc);
  const bool has_label = m_kind != ops::Supervision::Partial;
  ops::top_classes(exec, qc,
                   has_label ? Tensor1<const int, Exec>(observed.data(), Bc) : Tensor1<const int, Exec>(),
                   set);
  {
    // beta 0: L_cls for the log alone, its GEMMs in the E-step's precision (for beta > 0 the
    // scope keeps the training step's)
    const kernels::GemmPrecisionScope gemms(m_cfg.beta > 0 ? kernels::gemm_precision() : m_cfg.estep_precision,
                                            "method.estep_precision");
    m_live_cls->forward(exec, store.params, x0c, Tensor2<const int, Exec>(set), Tensor1<const T, Exec>(),
                        m_train.seed, static_cast<uint32_t>(m_core.step()), m_train.ids(), maskc);
  }
  const Tensor2<T, Exec> fth(m_ftheta.data(), Bc, Kc), tgt(m_target.data(), Bc, Kc);
  ops::scaled_softmax<Exec>(exec, m_live_cls->logits(), Tensor2<const int, Exec>(set), m_log_prior,
                            Tensor1<const T, Exec>(m_scale_dev.data(), 1), fth);
  if (m_kind == ops::Supervision::Noisy && m_cfg.noisy_target == NoisyTarget::Elr)
    ops::elr_targets(exec, Tensor2<const T, Exec>(fth), Tensor2<const T, Exec>(m_fphi.data(), Bc, C),
                     Tensor2<const int, Exec>(set), Tensor1<const int, Exec>(observed.data(), Bc),
                     static_cast<float>(m_cfg.elr_clamp), tgt);
  else
    ops::restricted_targets(exec, qc, Tensor2<const int, Exec>(set), tgt);
  const T g = T(ramp * m_cfg.beta) / T(static_cast<double>(Bc) * m_core.global_batch() / B);
  ops::classification_grad(exec, Tensor2<const T, Exec>(fth), Tensor2<const T, Exec>(tgt), g,
                           V1(m_loss_cls.data(), 1), tgt,  // tgt now holds dlogits
                           m_cfg.cls_push == ClsPush::Pull);
  const V1 gcls(m_gcls.data(), store.grads.extent(0));
  optim::Optimizer<Exec, T>::fill(exec, gcls, T(0));
  // beta 0: dlogits are all 0, so is the backward's gradient; skip it (the forward stays, for
  // L_cls in the diagnostics)
  if (ramp * m_cfg.beta > 0) m_live_cls->backward(exec, store.params, Tensor2<const T, Exec>(tgt), gcls);
  optim::Optimizer<Exec, T>::grad_norm2(exec, Tensor1<const T, Exec>(gcls),
                                        V1(m_norm_scratch.data(), m_norm_scratch.extent(0)),
                                        V1(m_diag.data() + ops::kGradNorm2Cls, 1));
}

// 6. the generative term (sample objective): a class drawn from q for the first Bw samples
//    (during the ramp-in, with probability r; below method.relabel_confidence, the vanilla
//    label), the vanilla label for the others; then classifier-free guidance's label dropout
template <class Exec>
void MethodStep<Exec>::sample_term(const Exec& exec, const Tensor4<const T, Exec>& x0,
                                   const Tensor1<const int, Exec>& observed,
                                   const Tensor2<const uint8_t, Exec>& candidates,
                                   const Tensor1<const uint8_t, Exec>& labeled,
                                   const Tensor4<const T, Exec>& mask, const Tensor4<T, Exec>& tilde,
                                   double ramp) {
  namespace ops = dmis_ops;
  const int B = m_B, Bw = m_Bw;
  const uint32_t step = static_cast<uint32_t>(m_core.step());
  const rng::SampleIds ids = m_train.ids();
  const uint64_t seed = m_train.seed;
  const Tensor1<int, Exec> top(m_top.data(), B);
  const Tensor2<const T, Exec> q(m_q.data(), Bw, m_C);
  ops::sample_labels(exec, q, rng::Philox(seed, rng::kPseudoLabel), step, ids, Tensor1<int, Exec>(m_top.data(), Bw));
  const bool unsure_to_vanilla = m_cfg.relabel_confidence > 0;
  if (Bw < B || ramp < 1 || unsure_to_vanilla) {
    const Tensor1<int, Exec> vanilla(m_labels.data(), B);
    vanilla_labels(exec, observed, candidates, labeled, vanilla);
    if (unsure_to_vanilla)
      ops::keep_confident(exec, q, static_cast<float>(m_cfg.relabel_confidence),
                          Tensor1<const int, Exec>(vanilla), Tensor1<int, Exec>(m_top.data(), Bw));
    ops::ramp_labels(exec, static_cast<float>(ramp), Bw, rng::Philox(seed, rng::kRampLabel), step, ids,
                     Tensor1<const int, Exec>(vanilla), top);
  }
  m_core.drop_labels(exec, top, top);
  m_core.sample_inputs(exec, x0, tilde);
  m_core.generative_loss(exec, x0, top, V1(), Tensor4<const T, Exec>(), T(1),
                         needs_masks() ? Tensor4<const T, Exec>(mask) : Tensor4<const T, Exec>());
}

// 7. the diagnostics, then the total gradient = generative + classification, the logit scale's
//    calibration
template <class Exec>
void MethodStep<Exec>::dmis_finish(const Exec& exec, const Tensor1<const int, Exec>& observed,
                                   const Tensor1<const int, Exec>& index) {
  namespace ops = dmis_ops;
  const int Bw = m_Bw, C = m_C;
  const V1 grads = m_core.store().grads, gcls(m_gcls.data(), grads.extent(0)), diag(m_diag.data(), ops::kDiagnostics);
  optim::Optimizer<Exec, T>::grad_norm2(exec, Tensor1<const T, Exec>(grads),
                                        V1(m_norm_scratch.data(), m_norm_scratch.extent(0)),
                                        V1(m_diag.data() + ops::kGradNorm2Gen, 1));
  ops::posterior_diagnostics(exec, Tensor2<const T, Exec>(m_q.data(), Bw, C),
                             m_skip_estep ? Tensor2<const T, Exec>() : Tensor2<const T, Exec>(m_fphi.data(), Bw, C),
                             Tensor1<const int, Exec>(m_top.data(), Bw), Tensor1<const int, Exec>(observed.data(), Bw),
                             m_audit.extent(0) > 0 ? Tensor1<const int, Exec>(index.data(), Bw)
                                                   : Tensor1<const int, Exec>(),
                             m_audit, diag);
  ops::add_into(exec, Tensor1<const T, Exec>(gcls), grads);
  const V1 sd(m_scale_dev.data(), 1);
  if (m_cfg.calibrate_scale && !m_skip_estep)  // skipped: no E-step logits to calibrate s on
    ops::update_scale(exec, V1(m_trans_step.data() + C * C, kScaleGrid), kScaleGridLo, kScaleGridRatio,
                      static_cast<float>(m_cfg.scale_momentum), sd);
  Kokkos::parallel_for(
      "dmis::method::diag_scale", Kokkos::RangePolicy<Exec>(exec, 0, 1),
      KOKKOS_LAMBDA(int) { diag(ops::kLogitScale) = sd(0); });
}

template <class Exec>
void MethodStep<Exec>::mixture_term(const Exec& exec, const Tensor4<const T, Exec>& x0,
                                    const Tensor1<const int, Exec>& observed,
                                    const Tensor2<const uint8_t, Exec>& candidates,
                                    const Tensor1<const uint8_t, Exec>& labeled,
                                    const Tensor4<const T, Exec>& mask, const Tensor4<T, Exec>& tilde) {
  // TDSM's mixture D_bar = sum_y q_y D(x_sigma; sigma, y) inside the norm (Eq. 10 with the
  // posterior given x0): the top class with gradient, up to E more above tau without
  const auto& nc = m_core.net().config();
  const int B = m_B, Ch = nc.out_channels, R = nc.resolution, n = Ch * R * R;
  mixture_classes(exec, observed, candidates, labeled);
  m_core.sample_inputs(exec, x0, tilde);
  const Tensor4<T, Exec> rest(m_rest.data(), B, Ch, R, R);
  optim::Optimizer<Exec, T>::fill(exec, Tensor1<T, Exec>(m_rest.data(), static_cast<size_t>(B) * n),
                                  T(0));
  if (m_extra_net && m_E > 0) extra_classes(exec, tilde, rest);
  m_core.generative_loss(exec, x0, Tensor1<const int, Exec>(m_top.data(), B),
                         Tensor1<const T, Exec>(m_top_w.data(), B), rest, T(1),
                         needs_masks() ? Tensor4<const T, Exec>(mask) : Tensor4<const T, Exec>());
}

/// The mixture's classes (B): the posterior's top class with its weight among the kept ones,
/// up to E extra classes above tau (E, Bw) with theirs; the vanilla label (weight 1) for the
/// samples without posteriors, the unsure (method.relabel_confidence) and the dropped ("no
/// label", classifier-free guidance).
template <class Exec>
void MethodStep<Exec>::mixture_classes(const Exec& exec, const Tensor1<const int, Exec>& observed,
                                       const Tensor2<const uint8_t, Exec>& candidates,
                                       const Tensor1<const uint8_t, Exec>& labeled) {
  const int B = m_B, Bw = m_Bw, C = m_C, E = m_extra_net ? m_E : 0;
  const int kind = static_cast<int>(m_kind);
  const uint32_t step = static_cast<uint32_t>(m_core.step());
  const rng::SampleIds ids = m_train.ids();
  const uint64_t seed = m_train.seed;
  const Tensor2<const T, Exec> genw(m_q.data(), Bw, C);
  const Tensor1<int, Exec> top(m_top.data(), B);
  const Tensor1<T, Exec> topw(m_top_w.data(), B);
  const Tensor2<T, Exec> xw(m_extra_w.data(), E > 0 ? E : 1, Bw);
  const Tensor2<int, Exec> xl(m_extra_labels.data(), E > 0 ? E : 1, Bw);
  {
    const rng::Philox gdrop(seed, rng::kLabelDrop), gcand(seed, rng::kCandidate);
    const T p_uncond = T(m_train.p_uncond), tau = T(m_cfg.tau);
    const T confidence = T(m_cfg.relabel_confidence);
    Kokkos::parallel_for(
        "dmis::method::gen_classes", Kokkos::RangePolicy<Exec>(exec, 0, B), KOKKOS_LAMBDA(int b) {
          const bool dropped = rng::uniform<T>(gdrop, step, ids(b), 0u) < p_uncond;
          // method.relabel_confidence: a posterior not sure enough of its top class trains the
          // sample on its vanilla label, as the samples without posteriors do
          const bool unsure = b < Bw && !dropped && dmis_ops::unsure(genw, b, confidence);
          if (b >= Bw || dropped || unsure) {
            top(b) = dropped ? C
                             : vanilla_label(kind, C, b, observed(b), candidates, labeled(b) != 0,
                                             gcand, step, ids(b));
            topw(b) = T(1);
            for (int e = 0; e < E; ++e) {
              if (b < Bw) xw(e, b) = T(0), xl(e, b) = top(b);
            }
            return;
          }
          int best = 0;
          for (int y = 1; y < C; ++y) best = genw(b, y) > genw(b, best) ? y : best;
          T total = genw(b, best);
          top(b) = best;
          for (int e = 0; e < E; ++e) {
            int nxt = -1;
            for (int y = 0; y < C; ++y) {
              bool used = y == best;
              for (int i = 0; i < e; ++i) used = used || xl(i, b) == y;
              if (!used && genw(b, y) > tau && (nxt < 0 || genw(b, y) > genw(b, nxt))) nxt = y;
            }
            xl(e, b) = nxt >= 0 ? nxt : best;
            xw(e, b) = nxt >= 0 ? genw(b, nxt) : T(0);
            total += xw(e, b);
          }
          topw(b) = genw(b, best) / total;
          for (int e = 0; e < E; ++e) xw(e, b) /= total;
        });
  }
}

/// rest (B, Ch, R, R) += the extra classes' weighted denoiser outputs at the step's x_sigma
/// (one forward of the extra-class network over E * Bw inputs, no gradient).
template <class Exec>
void MethodStep<Exec>::extra_classes(const Exec& exec, const Tensor4<T, Exec>& tilde, const Tensor4<T, Exec>& rest) {
  const auto& nc = m_core.net().config();
  const int Bw = m_Bw, E = m_E;
  const int Ch = nc.out_channels, R = nc.resolution, n = Ch * R * R, HW = R * R;
  const bool masked = needs_masks();
  const Tensor2<T, Exec> xw(m_extra_w.data(), E, Bw);
  const auto xs = m_core.x_sigma();
  const auto sig = m_core.sigma();
  const int J = E * Bw;
  const Tensor4<T, Exec> xin(m_extra_in.data(), J, nc.in_channels, R, R);
  auto cn = m_extra_cn;
  auto xsig = m_extra_sigma;
  const T sd = T(m_train.edm.sigma_data);
  // flat over (extra sample, input value): coalesced on a GPU
  const int nin = n + (masked ? HW : 0);
  Kokkos::parallel_for(
      "dmis::method::extra_inputs", Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(J) * nin),
      KOKKOS_LAMBDA(size_t r) {
        const int j = static_cast<int>(r / nin), k = static_cast<int>(r % nin), b = j % Bw;
        const T s = sig(b);
        if (k == 0) {
          xsig(j) = s;
          cn(j) = compat::log(s) / T(4);
        }
        const T c_in = T(1) / compat::sqrt(s * s + sd * sd);
        xin.data()[r] = k < n ? c_in * (&xs(b, 0, 0, 0))[k]
                              : tilde.data()[static_cast<size_t>(b) * HW + (k - n)];  // mask channel
      });
  m_extra_net->forward(exec, m_core.store().params,
                       {xin, m_extra_cn, Tensor1<const int, Exec>(m_extra_labels.data(), J)},
                       /*train=*/false);
  const auto F = m_extra_net->output();
  // flat over (sample, value); rest holds zeros, so rest = the sum over the extra classes
  Kokkos::parallel_for(
      "dmis::method::extra_mix", Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(Bw) * n),
      KOKKOS_LAMBDA(size_t r) {
        const int b = static_cast<int>(r / n), i = static_cast<int>(r % n);
        const diffusion::EdmScaling<T> scale(sig(b), sd);
        const T a = (&xs(b, 0, 0, 0))[i];
        const T m = masked ? tilde.data()[static_cast<size_t>(b) * HW + i % HW] : T(1);
        T acc = 0;
        for (int e = 0; e < E; ++e) {
          const T w = xw(e, b);
          if (w == T(0)) continue;
          const T f = (&F(e * Bw + b, 0, 0, 0))[i];
          acc += w * (masked ? scale.masked(a, f, m) : scale(a, f));
        }
        (&rest(b, 0, 0, 0))[i] += acc;
      });
}

template <class Exec>
void MethodStep<Exec>::end_epoch(const Exec& exec) {
  if (!(m_cfg.kind == MethodKind::Dmis && m_cfg.prior == PriorMode::Estimate && m_kind == Supervision::Partial))
    return;
  // pi <- mu pi + (1 - mu) counts / total, then the counts restart (once per epoch)
  auto prior = m_prior;
  auto logp = m_log_prior;
  auto counts = m_counts;
  const int C = m_C;
  const T mu = T(m_cfg.prior_momentum);
  Kokkos::parallel_for(
      "dmis::method::prior_update", Kokkos::RangePolicy<Exec>(exec, 0, 1), KOKKOS_LAMBDA(int) {
        int total = 0;
        for (int y = 0; y < C; ++y) total += counts(y);
        if (total > 0)
          for (int y = 0; y < C; ++y) {
            prior(y) = mu * prior(y) + (T(1) - mu) * T(counts(y)) / T(total);
            logp(y) = compat::log(prior(y) > T(1e-12) ? prior(y) : T(1e-12));
          }
        for (int y = 0; y < C; ++y) counts(y) = 0;
      });
}

/// The E-step's evaluations: every class at every draw, or draw 1 over every class and the
/// others over the R refined classes.
template <class Exec>
int MethodStep<Exec>::posterior_evaluations() const {
  if (m_skip_estep) return 0;
  if (m_R > 0) return m_Bw * (m_C + m_R * (m_cfg.timesteps - 1));
  return m_Bw * m_C * m_cfg.timesteps;
}

template <class Exec>
int MethodStep<Exec>::evaluations_per_step(bool dmis) const {
  if (!dmis) return 3 * m_B;  // forward + backward (counted as two)
  const int extra = m_extra_net ? m_E * m_Bw : 0;
  // the classification term's slice: forward + backward, the forward alone with beta 0 (run()
  // skips the backward of a zero gradient)
  const int cls = (m_cfg.beta > 0 ? 3 : 1) * m_Bc * m_Kc * m_cfg.timesteps;
  return 3 * m_B + posterior_evaluations() + cls + extra;
}

template <class Exec>
double MethodStep<Exec>::flops_per_step(bool dmis) const {
  auto& net = const_cast<EdmTrainStep<Exec>&>(m_core).net();
  const double f = net.forward_flops_per_sample(), fb = f + net.backward_flops_per_sample();
  if (!dmis) return m_B * fb;
  const int extra = m_extra_net ? m_E * m_Bw : 0;
  return m_B * fb + posterior_evaluations() * f +
         m_Bc * m_Kc * m_cfg.timesteps * (m_cfg.beta > 0 ? fb : f) + extra * f;
}

#define DMIS_INST(E, T) DMIS_INST_##T(E)
#define DMIS_INST_float(E) template class MethodStep<E>;
#define DMIS_INST_double(E)
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

}  // namespace dmis::methods
