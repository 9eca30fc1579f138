#pragma once
// The small operations of a DMIS step (spec/method.md section 4), each a device kernel taking
// the execution-space instance first. MethodStep::run_dmis strings them together; each is tested
// on its own (tests/diffusion/test_dmis_ops.cpp).
//
// Notation: B samples, C classes, Kc classes kept in the live classifier.
//   f    (B, C)   the EMA diffusion classifier's posterior p_phi(y | x0)
//   q    (B, C)   the posterior given the supervision, p(y | x0, z) ∝ p(z | y) f(y): the EMA
//                 pseudo-target of the classification term and the label distribution of the
//                 generative term (the E-step of Eq. 7)
//   set  (B, Kc)  the classes the live classifier evaluates
//   T    (C, C)   noisy labels: the transition T(y, ŷ) = p(ŷ | y), estimated while training
#include <cstdint>
#include <limits>

#include "core/kokkos_compat.hpp"
#include "core/rng.hpp"
#include "core/types.hpp"
#include "data/supervision_kind.hpp"

namespace dmis::methods::dmis_ops {

/// supervision.kind (one enum with the data layer's; its value selects the kind in device code)
using Supervision = data::SupervisionKind;

// ---- p(z_b | y) up to a factor that does not depend on y: one functor per supervision kind ----

/// Clean labels: the observed label is the class.
template <class Exec>
struct CleanLikelihood {
  Tensor1<const int, Exec> observed;  // (B)
  KOKKOS_INLINE_FUNCTION float operator()(int b, int y) const {
    return y == observed(b) ? 1.f : 0.f;
  }
};
/// Noisy labels: p(ŷ | y) = T(y, ŷ) (Theorem 1's weights need it).
template <class Exec>
struct NoisyLikelihood {
  Tensor1<const int, Exec> observed;    // (B)
  Tensor2<const float, Exec> transition;  // (C, C)
  KOKKOS_INLINE_FUNCTION float operator()(int b, int y) const {
    return transition(y, observed(b));
  }
};
/// Partial labels: the same p(S | y) for every y in S (random candidate generation), 0 outside.
template <class Exec>
struct PartialLikelihood {
  Tensor2<const uint8_t, Exec> candidates;  // (B, C)
  KOKKOS_INLINE_FUNCTION float operator()(int b, int y) const {
    return candidates(b, y) ? 1.f : 0.f;
  }
};
/// Supplementary-unlabelled: the label for labelled samples, nothing for the others.
template <class Exec>
struct UnlabeledLikelihood {
  Tensor1<const int, Exec> observed;     // (B)
  Tensor1<const uint8_t, Exec> labeled;  // (B)
  KOKKOS_INLINE_FUNCTION float operator()(int b, int y) const {
    return labeled(b) ? (y == observed(b) ? 1.f : 0.f) : 1.f;
  }
};

// ---- the operations --------------------------------------------------------------------------

/// out (B, N) = softmax over each row of s u(b, j) + log_prior(classes(b, j)): the diffusion
/// classifier's posterior from its unscaled logits u = -sum_k w_k mse_k (B, N), the logit scale
/// s = scale(0) (a device scalar: it is calibrated while training) and the class prior
/// (C + 1; may be empty: uniform).
template <class Exec>
void scaled_softmax(const Exec& exec, const Tensor2<const float, Exec>& u,
                    const Tensor2<const int, Exec>& classes,
                    const Tensor1<const float, Exec>& log_prior,
                    const Tensor1<const float, Exec>& scale, const Tensor2<float, Exec>& out) {
  const int N = static_cast<int>(u.extent(1));
  const bool with_prior = log_prior.extent(0) > 0;
  Kokkos::parallel_for(
      "dmis::dmis_ops::scaled_softmax", Kokkos::RangePolicy<Exec>(exec, 0, u.extent(0)),
      KOKKOS_LAMBDA(int b) {
        const float s = scale(0);
        float mx = -3.0e38f;
        for (int j = 0; j < N; ++j) {
          const float l = s * u(b, j) + (with_prior ? log_prior(classes(b, j)) : 0.f);
          out(b, j) = l;
          mx = l > mx ? l : mx;
        }
        float z = 0;
        for (int j = 0; j < N; ++j) z += (out(b, j) = compat::exp(out(b, j) - mx));
        for (int j = 0; j < N; ++j) out(b, j) /= z;
      });
}

/// The logit scale by maximum likelihood of the supervision under the diffusion classifier,
/// over a grid of scales (a softmax saturates at a too large s, where the likelihood's gradient
/// in s vanishes; a grid search does not need it), in two parts so that the sums can be added
/// over ranks in between:
///   scale_loglik: ll(g) += sum_b log sum_y p(z_b | y) softmax(s_g u_b + log prior)_y for the
///     G scales s_g = grid_lo * grid_ratio^g;
///   update_scale: log s <- momentum log s + (1 - momentum) log s_best, s_best the grid scale of
///     the largest sum (s unchanged where every sum is equal: no supervision in the batch);
///     the sums restart.
template <class Exec, class Likelihood>
void scale_loglik(const Exec& exec, const Likelihood& lik, const Tensor2<const float, Exec>& u,
                  const Tensor2<const int, Exec>& classes, const Tensor1<const float, Exec>& log_prior,
                  float grid_lo, float grid_ratio, const Tensor1<float, Exec>& ll) {
  const int B = static_cast<int>(u.extent(0)), C = static_cast<int>(u.extent(1));
  const bool with_prior = log_prior.extent(0) > 0;
  Kokkos::parallel_for(
      "dmis::dmis_ops::scale_loglik", Kokkos::RangePolicy<Exec>(exec, 0, ll.extent(0)),
      KOKKOS_LAMBDA(int g) {
        const float s = grid_lo * compat::exp(g * compat::log(grid_ratio));
        float total = 0;
        for (int b = 0; b < B; ++b) {
          float mx = -3.0e38f;
          for (int y = 0; y < C; ++y) {
            const float l = s * u(b, y) + (with_prior ? log_prior(classes(b, y)) : 0.f);
            mx = l > mx ? l : mx;
          }
          float z = 0, zl = 0;
          for (int y = 0; y < C; ++y) {
            const float e = compat::exp(s * u(b, y) + (with_prior ? log_prior(classes(b, y)) : 0.f) - mx);
            z += e;
            zl += lik(b, y) * e;
          }
          total += compat::log(zl > 1e-30f ? zl : 1e-30f) - compat::log(z);
        }
        ll(g) += total;
      });
}
template <class Exec>
void update_scale(const Exec& exec, const Tensor1<float, Exec>& ll, float grid_lo, float grid_ratio,
                  float momentum, const Tensor1<float, Exec>& scale) {
  const int G = static_cast<int>(ll.extent(0));
  Kokkos::parallel_for(
      "dmis::dmis_ops::update_scale", Kokkos::RangePolicy<Exec>(exec, 0, 1), KOKKOS_LAMBDA(int) {
        int best = 0;
        float lo = ll(0), hi = ll(0);
        for (int g = 1; g < G; ++g) {
          best = ll(g) > ll(best) ? g : best;
          lo = ll(g) < lo ? ll(g) : lo, hi = ll(g) > hi ? ll(g) : hi;
        }
        if (hi - lo > 1e-6f * (1.f + (hi > -hi ? hi : -hi))) {
          const float target = compat::log(grid_lo) + best * compat::log(grid_ratio);
          scale(0) = compat::exp(momentum * compat::log(scale(0)) + (1.f - momentum) * target);
        }
        for (int g = 0; g < G; ++g) ll(g) = 0;
      });
}

/// q (B, C) ∝ lik(b, y) f(b, y), normalised per row. Where the product vanishes everywhere
/// (f underflowed on every class z allows), q is lik normalised; where lik vanishes too,
/// uniform.
template <class Exec, class Likelihood>
void posterior(const Exec& exec, const Likelihood& lik, const Tensor2<const float, Exec>& f,
               const Tensor2<float, Exec>& q) {
  const int C = static_cast<int>(f.extent(1));
  Kokkos::parallel_for(
      "dmis::dmis_ops::posterior", Kokkos::RangePolicy<Exec>(exec, 0, f.extent(0)),
      KOKKOS_LAMBDA(int b) {
        float z = 0, zl = 0;
        for (int y = 0; y < C; ++y) {
          const float l = lik(b, y);
          zl += l;
          z += (q(b, y) = l * f(b, y));
        }
        for (int y = 0; y < C; ++y)
          q(b, y) = z > 0 ? q(b, y) / z : (zl > 0 ? lik(b, y) / zl : 1.f / C);
      });
}

/// q (B, C) = lik(b, y) normalised per row (uniform where lik vanishes): the posterior of a
/// classifier that says nothing, and under clean labels the posterior for any classifier (the
/// observed label, exactly as posterior() gives it: l f / (l f) = 1).
template <class Exec, class Likelihood>
void likelihood_posterior(const Exec& exec, const Likelihood& lik, const Tensor2<float, Exec>& q) {
  const int C = static_cast<int>(q.extent(1));
  Kokkos::parallel_for(
      "dmis::dmis_ops::likelihood_posterior", Kokkos::RangePolicy<Exec>(exec, 0, q.extent(0)),
      KOKKOS_LAMBDA(int b) {
        float zl = 0;
        for (int y = 0; y < C; ++y) zl += (q(b, y) = lik(b, y));
        for (int y = 0; y < C; ++y) q(b, y) = zl > 0 ? q(b, y) / zl : 1.f / C;
      });
}

/// set (B, Kc): the Kc classes of largest q, in decreasing order (ties: the smaller class id).
/// With must (B) not empty, must(b) >= 0 is always in the set (it replaces the last entry).
template <class Exec>
void top_classes(const Exec& exec, const Tensor2<const float, Exec>& q,
                 const Tensor1<const int, Exec>& must, const Tensor2<int, Exec>& set) {
  const int C = static_cast<int>(q.extent(1)), Kc = static_cast<int>(set.extent(1));
  const bool with_must = must.extent(0) > 0;
  Kokkos::parallel_for(
      "dmis::dmis_ops::top_classes", Kokkos::RangePolicy<Exec>(exec, 0, set.extent(0)),
      KOKKOS_LAMBDA(int b) {
        for (int j = 0; j < Kc; ++j) {  // repeated arg-max (C is small)
          int best = -1;
          for (int y = 0; y < C; ++y) {
            bool used = false;
            for (int i = 0; i < j; ++i) used = used || set(b, i) == y;
            if (!used && (best < 0 || q(b, y) > q(b, best))) best = y;
          }
          set(b, j) = best;
        }
        if (with_must && must(b) >= 0) {
          bool present = false;
          for (int j = 0; j < Kc; ++j) present = present || set(b, j) == must(b);
          if (!present) set(b, Kc - 1) = must(b);
        }
      });
}

/// u (B, C) = the logits of a coarse-to-fine E-step: first (B, C) holds each class's logit from
/// one noise draw, more (B, R) the mean logit of K - 1 further draws for the classes set (B, R)
/// of each row (the R of largest posterior after the first draw). Those classes get the mean
/// over all K draws, (first + (K - 1) more) / K; the others keep their one draw.
template <class Exec>
void refine_logits(const Exec& exec, const Tensor2<const float, Exec>& first,
                   const Tensor2<const float, Exec>& more, const Tensor2<const int, Exec>& set, int K,
                   const Tensor2<float, Exec>& u) {
  const int C = static_cast<int>(first.extent(1)), R = static_cast<int>(set.extent(1));
  const float w1 = 1.f / K, wk = float(K - 1) / K;
  Kokkos::parallel_for(
      "dmis::dmis_ops::refine_logits", Kokkos::RangePolicy<Exec>(exec, 0, set.extent(0)),
      KOKKOS_LAMBDA(int b) {
        for (int y = 0; y < C; ++y) u(b, y) = first(b, y);
        for (int j = 0; j < R; ++j) {
          const int y = set(b, j);
          u(b, y) = w1 * first(b, y) + wk * more(b, j);
        }
      });
}

/// u (B, C): every class outside set (B, R) screened out (kScreenedOut: no mass after a
/// softmax). The coarse-to-fine E-step's posterior is over the refined classes alone: the R
/// were chosen for a high first draw, so their mean over K draws falls back towards their
/// expectation while the best of the others keeps its one lucky draw, and would win too often
/// (measured: the posterior's class right less often than with one draw for every class).
constexpr float kScreenedOut = -1.0e30f;
template <class Exec>
void screen_out(const Exec& exec, const Tensor2<const int, Exec>& set, const Tensor2<float, Exec>& u) {
  const int C = static_cast<int>(u.extent(1)), R = static_cast<int>(set.extent(1));
  Kokkos::parallel_for(
      "dmis::dmis_ops::screen_out", Kokkos::RangePolicy<Exec>(exec, 0, set.extent(0)),
      KOKKOS_LAMBDA(int b) {
        for (int y = 0; y < C; ++y) {
          bool kept = false;
          for (int j = 0; j < R; ++j) kept = kept || set(b, j) == y;
          if (!kept) u(b, y) = kScreenedOut;
        }
      });
}

/// target (B, Kc) = q restricted to the set and renormalised (spec: "f_phi restricted to S and
/// renormalised"; one-hot for a known label). Rows with no mass on the set: uniform over it.
template <class Exec>
void restricted_targets(const Exec& exec, const Tensor2<const float, Exec>& q,
                        const Tensor2<const int, Exec>& set, const Tensor2<float, Exec>& target) {
  const int Kc = static_cast<int>(set.extent(1));
  Kokkos::parallel_for(
      "dmis::dmis_ops::restricted_targets", Kokkos::RangePolicy<Exec>(exec, 0, set.extent(0)),
      KOKKOS_LAMBDA(int b) {
        float z = 0;
        for (int j = 0; j < Kc; ++j) z += q(b, set(b, j));
        for (int j = 0; j < Kc; ++j) target(b, j) = z > 0 ? q(b, set(b, j)) / z : 1.f / Kc;
      });
}

/// The ELR-style noisy-label target of DMIS Eq. 15 (no transition matrix), stop-gradient:
///   r = ŷ - p ⊙ (δ_m - m ⊙ f) / (1 - δ),  δ = <p, f>,  δ_m = <m ⊙ p, f>
/// with p = f_theta (B, Kc) over the set and f = f_phi on the same classes, both clamped to
/// [clamp, 1 - clamp] as ELR's reference does, and m_j = 0 where p_j lies outside that range
/// (the clamp's zero derivative). With clamp = 0 this is the paper's formula (m = 1), whose
/// push on a saturated prediction never stops: f_theta - r -> -1/2 on ŷ.
template <class Exec>
void elr_targets(const Exec& exec, const Tensor2<const float, Exec>& ftheta,
                 const Tensor2<const float, Exec>& fphi, const Tensor2<const int, Exec>& set,
                 const Tensor1<const int, Exec>& observed, float clamp,
                 const Tensor2<float, Exec>& target) {
  const int Kc = static_cast<int>(set.extent(1));
  const float lo = clamp, hi = 1.f - clamp;
  Kokkos::parallel_for(
      "dmis::dmis_ops::elr_targets", Kokkos::RangePolicy<Exec>(exec, 0, set.extent(0)),
      KOKKOS_LAMBDA(int b) {
        auto cl = [&](float v) { return v < lo ? lo : (v > hi ? hi : v); };
        float delta = 0, delta_m = 0;
        for (int j = 0; j < Kc; ++j) {
          const float p = ftheta(b, j), pc = cl(p), fc = cl(fphi(b, set(b, j)));
          const bool inside = clamp <= 0 || (p >= lo && p <= hi);
          delta += pc * fc;
          delta_m += inside ? pc * fc : 0.f;
        }
        const float denom = 1.f - delta > 1e-6f ? 1.f - delta : 1e-6f;
        for (int j = 0; j < Kc; ++j) {
          const float p = ftheta(b, j), pc = cl(p), fc = cl(fphi(b, set(b, j)));
          const bool inside = clamp <= 0 || (p >= lo && p <= hi);
          const float yhat = set(b, j) == observed(b) ? 1.f : 0.f;
          target(b, j) = yhat - pc * (delta_m - (inside ? fc : 0.f)) / denom;
        }
      });
}

/// The classification loss -sum_j t_j log f_j averaged over the B rows into loss(0), and
/// dlogits (B, Kc) = g (f - t), the gradient of g * B * loss with respect to the logits (the
/// caller folds the batch mean, beta and the logit scale into g). dlogits may alias target.
/// pull_only keeps the negative entries alone (min(g (f - t), 0)): the logits are minus
/// denoising errors, so the term then only lowers the error of classes the target wants more
/// of and never trains the denoiser to be worse for the others (method.cls_push: pull).
template <class Exec>
void classification_grad(const Exec& exec, const Tensor2<const float, Exec>& f,
                         const Tensor2<const float, Exec>& target, float g,
                         const Tensor1<float, Exec>& loss, const Tensor2<float, Exec>& dlogits,
                         bool pull_only = false) {
  const int B = static_cast<int>(f.extent(0)), Kc = static_cast<int>(f.extent(1));
  Kokkos::parallel_for(
      "dmis::dmis_ops::classification_loss", Kokkos::RangePolicy<Exec>(exec, 0, 1),
      KOKKOS_LAMBDA(int) {
        float s = 0;
        for (int b = 0; b < B; ++b)
          for (int j = 0; j < Kc; ++j)
            s -= target(b, j) * compat::log(f(b, j) > 1e-30f ? f(b, j) : 1e-30f);
        loss(0) = s / B;
      });
  Kokkos::parallel_for(
      "dmis::dmis_ops::classification_dlogits", Kokkos::RangePolicy<Exec>(exec, 0, B * Kc),
      KOKKOS_LAMBDA(int i) {
        const int b = i / Kc, j = i % Kc;
        const float d = g * (f(b, j) - target(b, j));
        dlogits(b, j) = pull_only && d > 0 ? 0.f : d;
      });
}

/// labels (B): a class drawn from q(b, .) by the inverse CDF at u = uniform(seed stream, step,
/// ids(b)): the generative term E_q ||D(x_sigma; sigma, y) - x0||^2 of Eq. 7, estimated without
/// bias with one denoiser evaluation per sample.
template <class Exec>
void sample_labels(const Exec& exec, const Tensor2<const float, Exec>& q, const rng::Philox& gen,
                   uint32_t step, rng::SampleIds ids, const Tensor1<int, Exec>& labels) {
  const int C = static_cast<int>(q.extent(1));
  Kokkos::parallel_for(
      "dmis::dmis_ops::sample_labels", Kokkos::RangePolicy<Exec>(exec, 0, q.extent(0)),
      KOKKOS_LAMBDA(int b) {
        const float u = rng::uniform<float>(gen, step, ids(b), 0u);
        float c = 0;
        int y = -1;
        for (int k = 0; k < C && y < 0; ++k) {
          c += q(b, k);
          if (u < c) y = k;
        }
        if (y < 0)  // rounding: the last class with mass
          for (int k = C - 1; k >= 0 && y < 0; --k)
            if (q(b, k) > 0) y = k;
        labels(b) = y < 0 ? 0 : y;
      });
}

/// The largest entry of row b of q (B, C).
template <class Q>
KOKKOS_INLINE_FUNCTION float row_max(const Q& q, int b) {
  float m = q(b, 0);
  for (int y = 1; y < static_cast<int>(q.extent(1)); ++y) m = q(b, y) > m ? q(b, y) : m;
  return m;
}

/// method.relabel_confidence's rule, for both generative objectives: q's row b is not sure
/// enough of its top class to relabel the sample (max_y q(b, y) < confidence).
template <class Q>
KOKKOS_INLINE_FUNCTION bool unsure(const Q& q, int b, float confidence) {
  return row_max(q, b) < confidence;
}

/// method.relabel_confidence: labels (Bw = q-rows) keep the posterior's class only where q is
/// at least this sure of its top class (max_y q(b, y) >= confidence); elsewhere the sample
/// trains on its vanilla label (B; the observed label for noisy labels) as vanilla does. A
/// mistaken relabelling is structured (it follows the classifier's confusions, the same for
/// every look-alike image), a noisy label's mistake is not.
template <class Exec>
void keep_confident(const Exec& exec, const Tensor2<const float, Exec>& q, float confidence,
                    const Tensor1<const int, Exec>& vanilla, const Tensor1<int, Exec>& labels) {
  Kokkos::parallel_for(
      "dmis::dmis_ops::keep_confident", Kokkos::RangePolicy<Exec>(exec, 0, q.extent(0)),
      KOKKOS_LAMBDA(int b) {
        if (unsure(q, b, confidence)) labels(b) = vanilla(b);
      });
}

/// The ramp-in of the posterior's classes (method.rampup_kimg): labels (B) holds the class
/// drawn from q for its first Bw = q-rows samples; each of them keeps it with probability r (its
/// own draw of the stream, per step and sample), the others and every sample from Bw on take the
/// vanilla label (B). r = 1 leaves the first Bw untouched.
template <class Exec>
void ramp_labels(const Exec& exec, float r, int Bw, const rng::Philox& gen, uint32_t step,
                 rng::SampleIds ids, const Tensor1<const int, Exec>& vanilla,
                 const Tensor1<int, Exec>& labels) {
  Kokkos::parallel_for(
      "dmis::dmis_ops::ramp_labels", Kokkos::RangePolicy<Exec>(exec, 0, labels.extent(0)),
      KOKKOS_LAMBDA(int b) {
        const bool keep = b < Bw && (r >= 1.f || rng::uniform<float>(gen, step, ids(b), 0u) < r);
        if (!keep) labels(b) = vanilla(b);
      });
}

/// counts (C, C) += sum_b q(b, y) [observed(b) = ŷ]: with q the posterior under the current
/// estimate of T, the expected counts of (clean class, noisy label) pairs, i.e. the E-step of
/// an online EM for T (Dawid and Skene), whose M-step (transition_update) normalises them. Its
/// fixed point is the maximum-likelihood T for the classifier f; the confusion of f itself
/// would shrink T towards uniform wherever f is weak. One thread per (y, ŷ), samples in
/// order: deterministic.
template <class Exec>
void transition_counts(const Exec& exec, const Tensor2<const float, Exec>& q,
                       const Tensor1<const int, Exec>& observed, const Tensor2<float, Exec>& counts) {
  const int B = static_cast<int>(q.extent(0)), C = static_cast<int>(q.extent(1));
  Kokkos::parallel_for(
      "dmis::dmis_ops::transition_counts", Kokkos::RangePolicy<Exec>(exec, 0, C * C),
      KOKKOS_LAMBDA(int i) {
        const int y = i / C, yh = i % C;
        float s = 0;
        for (int b = 0; b < B; ++b) s += observed(b) == yh ? q(b, y) : 0.f;
        counts(y, yh) += s;
      });
}

/// acc (C, C) = momentum * acc + counts; counts = 0; T (C, C) = rows of acc + prior_count / C
/// normalised (a Dirichlet prior of prior_count pseudo-samples spread over ŷ, so that no
/// T(y, ŷ) is ever 0).
template <class Exec>
void transition_update(const Exec& exec, const Tensor2<float, Exec>& counts,
                       const Tensor2<float, Exec>& acc, float momentum, float prior_count,
                       const Tensor2<float, Exec>& T) {
  const int C = static_cast<int>(T.extent(0));
  Kokkos::parallel_for(
      "dmis::dmis_ops::transition_update", Kokkos::RangePolicy<Exec>(exec, 0, C),
      KOKKOS_LAMBDA(int y) {
        float z = 0;
        for (int k = 0; k < C; ++k) {
          acc(y, k) = momentum * acc(y, k) + counts(y, k);
          counts(y, k) = 0;
          z += acc(y, k) + prior_count / C;
        }
        for (int k = 0; k < C; ++k) T(y, k) = (acc(y, k) + prior_count / C) / z;
      });
}

/// counts (C) += how many rows of q (B, C) put each class first (ties: the smaller class): the
/// class prior's counts under partial labels (arg-max of the posterior over the candidates).
template <class Exec>
void prior_counts(const Exec& exec, const Tensor2<const float, Exec>& q,
                  const Kokkos::View<int*, Kokkos::LayoutRight, DeviceOf<Exec>>& counts) {
  const int B = static_cast<int>(q.extent(0)), C = static_cast<int>(q.extent(1));
  Kokkos::parallel_for(
      "dmis::dmis_ops::prior_counts", Kokkos::RangePolicy<Exec>(exec, 0, 1), KOKKOS_LAMBDA(int) {
        for (int b = 0; b < B; ++b) {  // one pass in order: deterministic without atomics
          int arg = 0;
          for (int y = 1; y < C; ++y) arg = q(b, y) > q(b, arg) ? y : arg;
          counts(arg) += 1;
        }
      });
}

/// dst (N) += src (N): the classification term's gradient added to the generative one.
template <class Exec>
void add_into(const Exec& exec, const Tensor1<const float, Exec>& src, const Tensor1<float, Exec>& dst) {
  Kokkos::parallel_for(
      "dmis::dmis_ops::add_into", Kokkos::RangePolicy<Exec>(exec, 0, src.extent(0)),
      KOKKOS_LAMBDA(size_t i) { dst(i) += src(i); });
}

/// The method's internals for the run's statistics (spec: "make the method observable"), one
/// step's values in diag (kDiagnostics). Accuracies are against audit labels (the clean labels,
/// never used for training) through the samples' dataset indices; NaN where there are none.
enum Diagnostic : int {
  kEntropyTarget = 0,   // mean entropy (nats) of q, the EMA pseudo-targets
  kEntropyEma = 1,      // mean entropy of f, the EMA classifier alone
  kAccTarget = 2,       // arg-max q = clean label
  kAccEma = 3,          // arg-max f = clean label
  kAccGen = 4,          // the generative term's class (not dropped) = clean label
  kAccObserved = 5,     // observed label = clean label (the supervision's own accuracy)
  kGradNorm2Cls = 6,    // squared norm of the classification term's gradient (this rank)
  kGradNorm2Gen = 7,    // squared norm of the generative term's gradient (this rank)
  kLogitScale = 8,      // the diffusion classifier's logit scale s after this step
  kRelabeled = 9,       // the generative term's class (not dropped) != the observed label
  kRelabelAcc = 10,     // of those relabelled: the generative class = clean label
  kRelabelWasRight = 11,  // of those relabelled: the observed label they replace = clean label
  kPseudoShare = 12,    // of the samples without a label (unlabelled, partial): the share the
                        // generative term trains on a class (not "no label": dropped, or unsure
                        // under method.relabel_confidence)
  kPseudoAcc = 13,      // of those: the class = clean label
  kDiagnostics = 14
};

/// Fills diag entries kEntropyTarget .. kAccObserved and kRelabeled .. kPseudoAcc for the
/// Bw samples with posteriors (kRelabeled: NaN where none has both an observed label and a
/// generative class; the relabelled samples' accuracies NaN where none was relabelled;
/// kPseudoShare NaN where every sample has a label, kPseudoAcc where none got a class).
/// audit (N) may be empty. gen_labels (B): the generative term's classes (C = "no label").
/// f may be empty (no E-step classifier: MethodStep::estep_skipped): its entries NaN.
template <class Exec>
void posterior_diagnostics(const Exec& exec, const Tensor2<const float, Exec>& q,
                           const Tensor2<const float, Exec>& f,
                           const Tensor1<const int, Exec>& gen_labels,
                           const Tensor1<const int, Exec>& observed,
                           const Tensor1<const int, Exec>& index,
                           const Tensor1<const int, Exec>& audit, const Tensor1<float, Exec>& diag) {
  const int B = static_cast<int>(q.extent(0)), C = static_cast<int>(q.extent(1));
  const bool audited = audit.extent(0) > 0, with_f = f.extent(0) > 0;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Kokkos::parallel_for(
      "dmis::dmis_ops::posterior_diagnostics", Kokkos::RangePolicy<Exec>(exec, 0, 1),
      KOKKOS_LAMBDA(int) {
        float hq = 0, hf = 0;
        int aq = 0, af = 0, ag = 0, ng = 0, ao = 0, no = 0, nr = 0, rl = 0, ra = 0, rw = 0;
        int nu = 0, pc = 0, pa = 0;  // without a label; of those with a class; of those right
        for (int b = 0; b < B; ++b) {
          int mq = 0, mf = 0;
          for (int y = 0; y < C; ++y) {
            const float a = q(b, y), c = with_f ? f(b, y) : 0.f;
            hq -= a > 0 ? a * compat::log(a) : 0.f;
            hf -= c > 0 ? c * compat::log(c) : 0.f;
            mq = a > q(b, mq) ? y : mq;
            if (with_f) mf = c > f(b, mf) ? y : mf;
          }
          if (gen_labels(b) < C && observed(b) >= 0) ++nr, rl += gen_labels(b) != observed(b);
          if (observed(b) < 0) ++nu, pc += gen_labels(b) < C;
          if (!audited) continue;
          const int truth = audit(index(b));
          if (observed(b) < 0 && gen_labels(b) < C) pa += gen_labels(b) == truth;
          aq += mq == truth, af += mf == truth;
          if (gen_labels(b) < C) ++ng, ag += gen_labels(b) == truth;
          if (observed(b) >= 0) ++no, ao += observed(b) == truth;
          if (gen_labels(b) < C && observed(b) >= 0 && gen_labels(b) != observed(b))
            ra += gen_labels(b) == truth, rw += observed(b) == truth;
        }
        diag(kEntropyTarget) = hq / B;
        diag(kEntropyEma) = with_f ? hf / B : nan;
        diag(kAccTarget) = audited ? float(aq) / B : nan;
        diag(kAccEma) = audited && with_f ? float(af) / B : nan;
        diag(kAccGen) = audited && ng > 0 ? float(ag) / ng : nan;
        diag(kAccObserved) = audited && no > 0 ? float(ao) / no : nan;
        diag(kRelabeled) = nr > 0 ? float(rl) / nr : nan;
        diag(kRelabelAcc) = audited && rl > 0 ? float(ra) / rl : nan;
        diag(kRelabelWasRight) = audited && rl > 0 ? float(rw) / rl : nan;
        diag(kPseudoShare) = nu > 0 ? float(pc) / nu : nan;
        diag(kPseudoAcc) = audited && pc > 0 ? float(pa) / pc : nan;
      });
}

}  // namespace dmis::methods::dmis_ops
