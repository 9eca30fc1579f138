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
enum Kind : int { kClean = 0, kNoisy = 1, kPartial = 2, kUnlabeled = 3 };
int kind_of(const std::string& s) {
  if (s == "clean") return kClean;
  if (s == "noisy") return kNoisy;
  if (s == "partial") return kPartial;
  if (s == "unlabeled") return kUnlabeled;
  throw InputError(cat("unknown supervision kind '", s, "'"));
}
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
    : m_cfg(m), m_train(train), m_B(local_batch), m_core(net, train, local_batch, conv_scratch_mb) {
  kind_of(m.supervision);
  if (m.name != "vanilla" && m.name != "dmis" && m.name != "ambient")
    throw InputError(cat("unknown method '", m.name, "' (vanilla, dmis or ambient)"));
  if (m.ambient && m.name != "dmis")
    throw InputError(cat("method.ambient goes with method.name dmis (found '", m.name,
                         "'; method.name ambient is Ambient Diffusion with the observed labels)"));
  if (needs_masks() != m_core.masked_input())
    throw InputError(cat("method '", m.name, m.ambient ? "' with ambient" : "'",
                         needs_masks() ? " needs" : " does not take",
                         " a network with a mask input channel (in_channels = out_channels + 1), "
                         "found ", net.in_channels, " -> ", net.out_channels));
  if (!(m.delta >= 0 && m.delta < 1))
    throw InputError(cat("method.delta: expected a rate in [0, 1), found ", m.delta));
  m_C = net.classes;
  // the classifier's samples: the first Bc of the global batch, which interleaved shards spread
  // as Bc / ranks per rank (the trainer checks that it divides)
  {
    const int Bg = train.global_batch > 0 ? train.global_batch : local_batch;
    const int ranks = std::max(1, Bg / local_batch);
    const int Bcg = classifier_samples(m.classifier_fraction, Bg);
    m_Bc = std::max(1, Bcg / ranks);
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
  if (m.name == "dmis") {
    ClassifierConfig cc;
    cc.points = m.timesteps;
    cc.timesteps = "window";
    cc.window = m.window;
    cc.logit_scale = m.logit_scale;
    cc.edm = train.edm;
    m_ema_cls = std::make_unique<DiffusionClassifier<Exec>>(net, cc, m_Bc, m_C, true, conv_scratch_mb);
    m_live_cls =
        std::make_unique<DiffusionClassifier<Exec>>(net, cc, m_Bc, m_Kc, false, conv_scratch_mb);
    m_fphi = fbuf<Exec>("f_phi", m_Bc * m_C);
    m_ftheta = fbuf<Exec>("f_theta", m_Bc * m_Kc);
    m_target = fbuf<Exec>("target", m_Bc * m_Kc);
    m_genw = fbuf<Exec>("gen_weights", m_Bc * m_C);
    m_classes_all = ibuf<Exec>("classes_all", m_Bc * m_C);
    m_classes_set = ibuf<Exec>("classes_set", m_Bc * m_Kc);
    fill_class_ids<Exec>(m_classes_all, m_C);
    if (m_E > 0) {
      m_extra_net = std::make_unique<models::UNet<Exec, T>>(net);
      m_extra_net->prepare(m_E * m_Bc, conv_scratch_mb, /*inference_only=*/true);
      m_extra_w = fbuf<Exec>("extra_weight", m_E * m_Bc);
      m_extra_labels = ibuf<Exec>("extra_labels", m_E * m_Bc);
      m_extra_in = fbuf<Exec>("extra_in", m_E * m_Bc * n);
      m_extra_cn = fbuf<Exec>("extra_c_noise", m_E * m_Bc);
      m_extra_sigma = fbuf<Exec>("extra_sigma", m_E * m_Bc);
    }
    Kokkos::fence();
  }
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
bool MethodStep<Exec>::dmis_active(long s) const {
  if (m_cfg.name != "dmis") return false;
  return static_cast<double>(s) * m_core.global_batch() >= m_cfg.warmup_kimg * 1e3;
}

template <class Exec>
void MethodStep<Exec>::vanilla_labels(const Exec& exec, const Tensor1<const int, Exec>& observed,
                                      const Tensor2<const uint8_t, Exec>& candidates,
                                      const Tensor1<const uint8_t, Exec>& labeled,
                                      const Tensor1<int, Exec>& out) {
  const int kind = kind_of(m_cfg.supervision), K = m_C;
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
  const int B = m_B, Bc = m_Bc, Kc = m_Kc, C = m_C, E = m_E;
  const int Ch = nc.out_channels, R = nc.resolution, n = Ch * R * R, HW = R * R;
  // DMIS with Ambient's masked objective (noisy labels and missing pixels): the classifiers see
  // the observation masks A, the generative term the further-masked A B, its loss A
  const bool masked = needs_masks();
  const Tensor4<const T, Exec> maskc(masked ? mask.data() : nullptr, masked ? Bc : 0, 1, R, R);
  const Tensor4<T, Exec> tilde(masked ? m_mask_tilde.data() : nullptr, masked ? B : 0, 1, R, R);
  if (masked) further_mask(exec, mask, index, tilde);
  const int kind = kind_of(m_cfg.supervision);
  const uint32_t step = static_cast<uint32_t>(m_core.step());
  const rng::SampleIds ids = m_train.ids();
  const uint64_t seed = m_train.seed;
  auto& store = m_core.store();
  const Tensor4<const T, Exec> x0c(x0.data(), Bc, Ch, R, R);  // the classifier's samples

  m_core.begin(exec);
  // 1. pseudo-targets: the EMA diffusion classifier over every class
  m_ema_cls->forward(exec, store.ema, x0c,
                     Tensor2<const int, Exec>(m_classes_all.data(), Bc, C), m_log_prior, seed,
                     step, ids, maskc);
  const Tensor2<T, Exec> fphi(m_fphi.data(), Bc, C);
  {
    const auto lphi = m_ema_cls->logits();
    Kokkos::parallel_for(
        "dmis::method::softmax_phi", Kokkos::RangePolicy<Exec>(exec, 0, Bc), KOKKOS_LAMBDA(int b) {
          T mx = lphi(b, 0);
          for (int y = 1; y < C; ++y) mx = lphi(b, y) > mx ? lphi(b, y) : mx;
          T z = 0;
          for (int y = 0; y < C; ++y) z += (fphi(b, y) = compat::exp(lphi(b, y) - mx));
          for (int y = 0; y < C; ++y) fphi(b, y) /= z;
        });
  }
  // 2. the classes the live classifier evaluates: top-Kc of the EMA posterior, always holding
  //    the observed label (when there is one) and at least one candidate
  const Tensor2<int, Exec> set(m_classes_set.data(), Bc, Kc);
  Kokkos::parallel_for(
      "dmis::method::class_set", Kokkos::RangePolicy<Exec>(exec, 0, Bc), KOKKOS_LAMBDA(int b) {
        for (int j = 0; j < Kc; ++j) {  // repeated arg-max (C is small)
          int best = -1;
          for (int y = 0; y < C; ++y) {
            bool used = false;
            for (int i = 0; i < j; ++i) used = used || set(b, i) == y;
            if (!used && (best < 0 || fphi(b, y) > fphi(b, best))) best = y;
          }
          set(b, j) = best;
        }
        int must = -1;
        const bool has_label = kind != kUnlabeled || labeled(b) != 0;
        if (kind != kPartial && has_label) {
          must = observed(b);
        } else if (kind == kPartial) {
          bool any = false;
          for (int j = 0; j < Kc; ++j) any = any || candidates(b, set(b, j)) != 0;
          if (!any)
            for (int y = 0; y < C; ++y)
              if (candidates(b, y) && (must < 0 || fphi(b, y) > fphi(b, must))) must = y;
        }
        if (must >= 0) {
          bool present = false;
          for (int j = 0; j < Kc; ++j) present = present || set(b, j) == must;
          if (!present) set(b, Kc - 1) = must;
        }
      });
  // 3. the live classifier
  m_live_cls->forward(exec, store.params, x0c, Tensor2<const int, Exec>(m_classes_set.data(), Bc, Kc),
                      m_log_prior, seed, step, ids, maskc);
  const Tensor2<T, Exec> fth(m_ftheta.data(), Bc, Kc), tgt(m_target.data(), Bc, Kc),
      genw(m_genw.data(), Bc, C);
  auto loss_cls = m_loss_cls;
  auto counts = m_counts;
  const bool estimate_prior = m_cfg.prior == "estimate" && kind == kPartial;
  {
    const auto lth = m_live_cls->logits();
    Kokkos::parallel_for(
        "dmis::method::targets", Kokkos::RangePolicy<Exec>(exec, 0, Bc), KOKKOS_LAMBDA(int b) {
          // f_theta: softmax over the set
          T mx = lth(b, 0);
          for (int j = 1; j < Kc; ++j) mx = lth(b, j) > mx ? lth(b, j) : mx;
          T z = 0;
          for (int j = 0; j < Kc; ++j) z += (fth(b, j) = compat::exp(lth(b, j) - mx));
          for (int j = 0; j < Kc; ++j) fth(b, j) /= z;
          const bool is_labeled = kind != kUnlabeled || labeled(b) != 0;
          for (int y = 0; y < C; ++y) genw(b, y) = T(0);
          if (kind == kClean || (kind == kUnlabeled && is_labeled)) {
            for (int j = 0; j < Kc; ++j) tgt(b, j) = set(b, j) == observed(b) ? T(1) : T(0);
            genw(b, observed(b)) = T(1);
          } else if (kind == kNoisy) {
            // ELR-style target without a transition matrix (stop-gradient)
            T delta = 0;
            for (int j = 0; j < Kc; ++j) delta += fth(b, j) * fphi(b, set(b, j));
            const T denom = T(1) - delta > T(1e-6) ? T(1) - delta : T(1e-6);
            T pos = 0;
            for (int j = 0; j < Kc; ++j) {
              const T yhat = set(b, j) == observed(b) ? T(1) : T(0);
              tgt(b, j) = yhat - fth(b, j) * (delta - fphi(b, set(b, j))) / denom;
              pos += tgt(b, j) > 0 ? (tgt(b, j) < 1 ? tgt(b, j) : T(1)) : T(0);
            }
            // posterior weights of the generative term: r clamped to [0, 1], renormalised
            for (int j = 0; j < Kc; ++j) {
              const T r = tgt(b, j) > 0 ? (tgt(b, j) < 1 ? tgt(b, j) : T(1)) : T(0);
              genw(b, set(b, j)) = pos > 0 ? r / pos : (set(b, j) == observed(b) ? T(1) : T(0));
            }
          } else {
            // partial: the EMA posterior restricted to the candidates; unlabelled: all classes
            T zs = 0, zall = 0;
            for (int j = 0; j < Kc; ++j)
              zs += fphi(b, set(b, j)) * (kind == kPartial ? T(candidates(b, set(b, j))) : T(1));
            for (int y = 0; y < C; ++y)
              zall += fphi(b, y) * (kind == kPartial ? T(candidates(b, y)) : T(1));
            int nc_set = 0;
            for (int j = 0; j < Kc; ++j)
              nc_set += (kind != kPartial || candidates(b, set(b, j))) ? 1 : 0;
            for (int j = 0; j < Kc; ++j) {
              const T in = kind == kPartial ? T(candidates(b, set(b, j))) : T(1);
              tgt(b, j) = zs > 0 ? fphi(b, set(b, j)) * in / zs : in / T(nc_set);
            }
            int ncand = 0, arg = -1;
            for (int y = 0; y < C; ++y) {
              const T in = kind == kPartial ? T(candidates(b, y)) : T(1);
              ncand += in > 0 ? 1 : 0;
              genw(b, y) = zall > 0 ? fphi(b, y) * in / zall : T(0);
              if (in > 0 && (arg < 0 || fphi(b, y) > fphi(b, arg))) arg = y;
            }
            if (!(zall > 0))
              for (int y = 0; y < C; ++y)
                genw(b, y) = (kind == kPartial ? T(candidates(b, y)) : T(1)) / T(ncand);
            if (estimate_prior && arg >= 0) Kokkos::atomic_add(&counts(arg), 1);
          }
        });
    // L_cls = -sum_j t_j log f_theta_j, averaged over the classifier samples (logged)
    Kokkos::parallel_for(
        "dmis::method::loss_cls", Kokkos::RangePolicy<Exec>(exec, 0, 1), KOKKOS_LAMBDA(int) {
          T s = 0;
          for (int b = 0; b < Bc; ++b)
            for (int j = 0; j < Kc; ++j)
              s -= tgt(b, j) * compat::log(fth(b, j) > T(1e-30) ? fth(b, j) : T(1e-30));
          loss_cls(0) = s / T(Bc);
        });
  }
  // 4. the classification loss through the live classifier: d/dlogit = beta (f - t) / Bc_global
  {
    const T g = T(m_cfg.beta) / T(static_cast<double>(Bc) * m_core.global_batch() / B);
    Kokkos::parallel_for(
        "dmis::method::dlogits", Kokkos::RangePolicy<Exec>(exec, 0, Bc * Kc), KOKKOS_LAMBDA(int i) {
          const int b = i / Kc, j = i % Kc;
          tgt(b, j) = g * (fth(b, j) - tgt(b, j));  // the target buffer now holds dlogits
        });
    m_live_cls->backward(exec, store.params, Tensor2<const T, Exec>(m_target.data(), Bc, Kc),
                         store.grads);
  }
  // 5. the generative term: top class with gradient, up to E more above tau without
  const Tensor1<int, Exec> top(m_top.data(), B);
  const Tensor1<T, Exec> topw(m_top_w.data(), B);
  const Tensor2<T, Exec> xw(m_extra_w.data(), E > 0 ? E : 1, Bc);
  const Tensor2<int, Exec> xl(m_extra_labels.data(), E > 0 ? E : 1, Bc);
  {
    const rng::Philox gdrop(seed, rng::kLabelDrop), gcand(seed, rng::kCandidate);
    const T p_uncond = T(m_train.p_uncond), tau = T(m_cfg.tau);
    Kokkos::parallel_for(
        "dmis::method::gen_classes", Kokkos::RangePolicy<Exec>(exec, 0, B), KOKKOS_LAMBDA(int b) {
          const bool dropped = rng::uniform<T>(gdrop, step, ids(b), 0u) < p_uncond;
          if (b >= Bc || dropped) {
            top(b) = dropped ? C
                             : vanilla_label(kind, C, b, observed(b), candidates, labeled(b) != 0,
                                             gcand, step, ids(b));
            topw(b) = T(1);
            for (int e = 0; e < E; ++e) {
              if (b < Bc) xw(e, b) = T(0), xl(e, b) = top(b);
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
  m_core.sample_inputs(exec, x0, tilde);
  const auto xs = m_core.x_sigma();
  const auto sig = m_core.sigma();
  const Tensor4<T, Exec> rest(m_rest.data(), B, Ch, R, R);
  optim::Optimizer<Exec, T>::fill(exec, Tensor1<T, Exec>(m_rest.data(), static_cast<size_t>(B) * n),
                                  T(0));
  if (E > 0) {
    const int J = E * Bc;
    const Tensor4<T, Exec> xin(m_extra_in.data(), J, nc.in_channels, R, R);
    auto cn = m_extra_cn;
    auto xsig = m_extra_sigma;
    const T sd = T(m_train.edm.sigma_data);
    // flat over (extra sample, input value): coalesced on a GPU
    const int nin = n + (masked ? HW : 0);
    Kokkos::parallel_for(
        "dmis::method::extra_inputs", Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(J) * nin),
        KOKKOS_LAMBDA(size_t r) {
          const int j = static_cast<int>(r / nin), k = static_cast<int>(r % nin), b = j % Bc;
          const T s = sig(b);
          if (k == 0) {
            xsig(j) = s;
            cn(j) = compat::log(s) / T(4);
          }
          const T c_in = T(1) / compat::sqrt(s * s + sd * sd);
          xin.data()[r] = k < n ? c_in * (&xs(b, 0, 0, 0))[k]
                                : tilde.data()[static_cast<size_t>(b) * HW + (k - n)];  // mask channel
        });
    m_extra_net->forward(exec, store.params,
                         {xin, m_extra_cn, Tensor1<const int, Exec>(m_extra_labels.data(), J)},
                         /*train=*/false);
    const auto F = m_extra_net->output();
    // flat over (sample, value); rest holds zeros, so rest = the sum over the extra classes
    Kokkos::parallel_for(
        "dmis::method::extra_mix", Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(Bc) * n),
        KOKKOS_LAMBDA(size_t r) {
          const int b = static_cast<int>(r / n), i = static_cast<int>(r % n);
          const diffusion::EdmScaling<T> scale(sig(b), sd);
          const T a = (&xs(b, 0, 0, 0))[i];
          const T m = masked ? tilde.data()[static_cast<size_t>(b) * HW + i % HW] : T(1);
          T acc = 0;
          for (int e = 0; e < E; ++e) {
            const T w = xw(e, b);
            if (w == T(0)) continue;
            const T f = (&F(e * Bc + b, 0, 0, 0))[i];
            acc += w * (masked ? scale.masked(a, f, m) : scale(a, f));
          }
          (&rest(b, 0, 0, 0))[i] += acc;
        });
  }
  m_core.generative_loss(exec, x0, top, topw, rest, T(1), masked ? Tensor4<const T, Exec>(mask) : Tensor4<const T, Exec>());
  m_core.finish(exec);
}

template <class Exec>
void MethodStep<Exec>::end_epoch(const Exec& exec) {
  if (!(m_cfg.name == "dmis" && m_cfg.prior == "estimate" && m_cfg.supervision == "partial"))
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

template <class Exec>
int MethodStep<Exec>::evaluations_per_step(bool dmis) const {
  if (!dmis) return 3 * m_B;  // forward + backward (counted as two)
  return 3 * m_B + m_Bc * m_C * m_cfg.timesteps + 3 * m_Bc * m_Kc * m_cfg.timesteps + m_E * m_Bc;
}

template <class Exec>
double MethodStep<Exec>::flops_per_step(bool dmis) const {
  auto& net = const_cast<EdmTrainStep<Exec>&>(m_core).net();
  const double f = net.forward_flops_per_sample(), fb = f + net.backward_flops_per_sample();
  if (!dmis) return m_B * fb;
  return m_B * fb + m_Bc * m_C * m_cfg.timesteps * f + m_Bc * m_Kc * m_cfg.timesteps * fb +
         m_E * m_Bc * f;
}

#define DMIS_INST(E, T) DMIS_INST_##T(E)
#define DMIS_INST_float(E) template class MethodStep<E>;
#define DMIS_INST_double(E)
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

}  // namespace dmis::methods
