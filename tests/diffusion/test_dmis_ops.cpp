// The operations of a DMIS step (src/methods/dmis_ops.hpp), each against a host reference, and
// the diffusion classifier's logit scale.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "methods/classifier.hpp"
#include "methods/dmis_ops.hpp"
#include "methods/method_step.hpp"
#include "models/unet.hpp"

namespace {
using namespace dmis;
namespace ops = dmis::methods::dmis_ops;
using Exec = Kokkos::DefaultExecutionSpace;
template <class T>
using Buf = Kokkos::View<T*, Kokkos::LayoutRight, Exec::memory_space>;

template <class T>
Buf<T> upload(const std::vector<T>& v) {
  Buf<T> d("dmis::test::buf", std::max<size_t>(v.size(), 1));
  auto h = Kokkos::create_mirror_view(d);
  for (size_t i = 0; i < v.size(); ++i) h(i) = v[i];
  Kokkos::deep_copy(d, h);
  return d;
}
template <class T>
std::vector<T> host(const Buf<T>& d, size_t n) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), d);
  return std::vector<T>(h.data(), h.data() + n);
}
template <class T>
Tensor2<T, Exec> t2(const Buf<T>& d, int r, int c) {
  return Tensor2<T, Exec>(d.data(), r, c);
}
template <class T>
Tensor2<const T, Exec> c2(const Buf<T>& d, int r, int c) {
  return Tensor2<const T, Exec>(d.data(), r, c);
}
template <class T>
Tensor1<const T, Exec> c1(const Buf<T>& d, int n) {
  return Tensor1<const T, Exec>(d.data(), n);
}

std::vector<float> pattern(size_t n, uint32_t s, float lo, float hi) {
  std::vector<float> v(n);
  for (auto& x : v) {
    s = s * 1664525u + 1013904223u;
    x = lo + (hi - lo) * ((s >> 8) / 16777216.0f);
  }
  return v;
}
std::vector<float> host_softmax(const std::vector<float>& l, int B, int C) {
  std::vector<float> p(l.size());
  for (int b = 0; b < B; ++b) {
    double mx = -1e30, z = 0;
    for (int y = 0; y < C; ++y) mx = std::max<double>(mx, l[b * C + y]);
    for (int y = 0; y < C; ++y) z += std::exp(l[b * C + y] - mx);
    for (int y = 0; y < C; ++y) p[b * C + y] = static_cast<float>(std::exp(l[b * C + y] - mx) / z);
  }
  return p;
}

// softmax(s u + log prior(classes)) with the scale a device scalar, against the host
TEST(DmisOps, ScaledSoftmaxMatchesHost) {
  const int B = 5, C = 7;
  const float s = 37.5f;
  const auto u = pattern(B * C, 3, -1, 1);
  std::vector<float> l(B * C);
  std::vector<int> cls(B * C);
  std::vector<float> lp(C + 1);
  for (int y = 0; y <= C; ++y) lp[y] = std::log(0.05f + 0.1f * y);
  for (int i = 0; i < B * C; ++i) {
    cls[i] = (i * 3 + i / C) % (C + 1);
    l[i] = s * u[i] + lp[cls[i]];
  }
  auto du = upload(u);
  auto dc = upload(cls);
  auto dlp = upload(lp);
  auto ds = upload(std::vector<float>{s});
  Buf<float> out("out", B * C);
  ops::scaled_softmax<Exec>(Exec(), c2(du, B, C), Tensor2<const int, Exec>(dc.data(), B, C),
                            Tensor1<const float, Exec>(dlp.data(), C + 1),
                            Tensor1<const float, Exec>(ds.data(), 1), t2(out, B, C));
  const auto got = host(out, B * C), want = host_softmax(l, B, C);
  for (int i = 0; i < B * C; ++i) EXPECT_NEAR(got[i], want[i], 2e-6) << i;
}

// q ∝ p(z | y) f(y) for each kind, against the host product
TEST(DmisOps, PosteriorPerSupervisionKind) {
  const int B = 4, C = 5;
  auto f = host_softmax(pattern(B * C, 11, -3, 3), B, C);
  auto df = upload(f);
  const std::vector<int> obs = {0, 3, 4, 1};
  auto dobs = upload(obs);
  Buf<float> q("q", B * C);
  auto check = [&](auto lik_host, const char* what) {
    const auto got = host(q, B * C);
    for (int b = 0; b < B; ++b) {
      double z = 0;
      for (int y = 0; y < C; ++y) z += lik_host(b, y) * f[b * C + y];
      for (int y = 0; y < C; ++y)
        EXPECT_NEAR(got[b * C + y], lik_host(b, y) * f[b * C + y] / z, 1e-6) << what << " " << b << "," << y;
    }
  };
  // clean: one-hot of the label; the likelihood alone gives the same floats (the skipped
  // E-step's posterior, MethodStep::estep_skipped)
  ops::posterior(Exec(), ops::CleanLikelihood<Exec>{c1(dobs, B)}, c2(df, B, C), t2(q, B, C));
  check([&](int b, int y) { return y == obs[b] ? 1.0 : 0.0; }, "clean");
  const auto with_f = host(q, B * C);
  ops::likelihood_posterior(Exec(), ops::CleanLikelihood<Exec>{c1(dobs, B)}, t2(q, B, C));
  EXPECT_EQ(host(q, B * C), with_f) << "clean: the likelihood's posterior differs from posterior()'s";
  // noisy: T(y, ŷ)
  std::vector<float> T(C * C);
  for (int y = 0; y < C; ++y)
    for (int k = 0; k < C; ++k) T[y * C + k] = y == k ? 0.6f : 0.1f;
  auto dT = upload(T);
  ops::posterior(Exec(), ops::NoisyLikelihood<Exec>{c1(dobs, B), c2(dT, C, C)}, c2(df, B, C), t2(q, B, C));
  check([&](int b, int y) { return double(T[y * C + obs[b]]); }, "noisy");
  // partial: the candidate set
  std::vector<uint8_t> cand(B * C, 0);
  for (int b = 0; b < B; ++b) cand[b * C + b] = cand[b * C + (b + 2) % C] = 1;
  auto dcand = upload(cand);
  ops::posterior(Exec(), ops::PartialLikelihood<Exec>{c2(dcand, B, C)}, c2(df, B, C), t2(q, B, C));
  check([&](int b, int y) { return double(cand[b * C + y]); }, "partial");
  // unlabelled: the label where there is one, every class elsewhere
  const std::vector<uint8_t> lab = {1, 0, 0, 1};
  auto dlab = upload(lab);
  ops::posterior(Exec(), ops::UnlabeledLikelihood<Exec>{c1(dobs, B), c1(dlab, B)}, c2(df, B, C), t2(q, B, C));
  check([&](int b, int y) { return lab[b] ? (y == obs[b] ? 1.0 : 0.0) : 1.0; }, "unlabeled");
}

// f underflowed on every candidate: the candidates share the mass instead of 0/0
TEST(DmisOps, PosteriorFallsBackToTheSupervisionWhereTheClassifierUnderflows) {
  const int B = 1, C = 4;
  auto df = upload(std::vector<float>{1, 0, 0, 0});
  auto dcand = upload(std::vector<uint8_t>{0, 1, 1, 0});
  Buf<float> q("q", B * C);
  ops::posterior(Exec(), ops::PartialLikelihood<Exec>{c2(dcand, B, C)}, c2(df, B, C), t2(q, B, C));
  const auto got = host(q, B * C);
  EXPECT_FLOAT_EQ(got[0], 0);
  EXPECT_FLOAT_EQ(got[1], 0.5f);
  EXPECT_FLOAT_EQ(got[2], 0.5f);
}

TEST(DmisOps, TopClassesKeepTheRequiredLabel) {
  const int B = 2, C = 6, Kc = 3;
  auto dq = upload(std::vector<float>{0.1f, 0.3f, 0.05f, 0.3f, 0.2f, 0.05f,  //
                                      0.5f, 0.2f, 0.1f, 0.1f, 0.05f, 0.05f});
  auto dmust = upload(std::vector<int>{4, 5});
  Buf<int> set("set", B * Kc);
  ops::top_classes(Exec(), c2(dq, B, C), Tensor1<const int, Exec>(), t2(set, B, Kc));
  EXPECT_EQ(host(set, B * Kc), (std::vector<int>{1, 3, 4, 0, 1, 2}));  // ties: smaller id first
  ops::top_classes(Exec(), c2(dq, B, C), c1(dmust, B), t2(set, B, Kc));
  EXPECT_EQ(host(set, B * Kc), (std::vector<int>{1, 3, 4, 0, 1, 5}));
}

// The partial-label class prior's counts: each row's arg-max once (a tie to the smaller class),
// added to what the epoch has counted so far.
TEST(DmisOps, PriorCountsAddEachRowsTopClass) {
  const int B = 4, C = 3;
  const std::vector<float> q = {0.2f, 0.5f, 0.3f,  0.6f, 0.2f, 0.2f,  0.1f, 0.1f, 0.8f,  0.4f, 0.4f, 0.2f};
  auto dq = upload(q);
  Kokkos::View<int*, Kokkos::LayoutRight, DeviceOf<Exec>> counts("dmis::test::counts", C);
  Kokkos::deep_copy(counts, 1);
  ops::prior_counts(Exec(), c2(dq, B, C), counts);
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), counts);
  EXPECT_EQ(h(0), 1 + 2);  // rows 1 and 3 (the tie)
  EXPECT_EQ(h(1), 1 + 1);
  EXPECT_EQ(h(2), 1 + 1);
}

TEST(DmisOps, RestrictedTargetsRenormaliseOverTheSet) {
  const int B = 2, C = 4, Kc = 2;
  auto dq = upload(std::vector<float>{0.1f, 0.6f, 0.3f, 0.0f, 0.0f, 0.0f, 0.0f, 1.0f});
  auto dset = upload(std::vector<int>{1, 2, 0, 1});
  Buf<float> t("t", B * Kc);
  ops::restricted_targets(Exec(), c2(dq, B, C), c2(dset, B, Kc), t2(t, B, Kc));
  const auto got = host(t, B * Kc);
  EXPECT_NEAR(got[0], 0.6 / 0.9, 1e-6);
  EXPECT_NEAR(got[1], 0.3 / 0.9, 1e-6);
  EXPECT_FLOAT_EQ(got[2], 0.5f);  // no mass on the set: uniform over it
  EXPECT_FLOAT_EQ(got[3], 0.5f);
}

// Without the clamp, the paper's formula; with it, no push once the prediction saturates
TEST(DmisOps, ElrTargetIsThePapersFormulaAndStopsPushingOnceSaturated) {
  const int B = 2, C = 3, Kc = 3;
  const std::vector<float> fth = {0.5f, 0.3f, 0.2f, 0.2f, 0.5f, 0.3f};
  const std::vector<float> fphi = {0.6f, 0.1f, 0.3f, 0.1f, 0.2f, 0.7f};
  auto dth = upload(fth), dphi = upload(fphi);
  auto dset = upload(std::vector<int>{0, 1, 2, 0, 1, 2});
  auto dobs = upload(std::vector<int>{1, 2});
  Buf<float> r("r", B * Kc);
  ops::elr_targets(Exec(), c2(dth, B, Kc), c2(dphi, B, C), c2(dset, B, Kc), c1(dobs, B), 0.f, t2(r, B, Kc));
  auto got = host(r, B * Kc);
  for (int b = 0; b < B; ++b) {
    double delta = 0, sum = 0;
    for (int j = 0; j < C; ++j) delta += fth[b * C + j] * fphi[b * C + j];
    for (int j = 0; j < C; ++j) {
      const double want = (j == (b ? 2 : 1) ? 1.0 : 0.0) - fth[b * C + j] * (delta - fphi[b * C + j]) / (1 - delta);
      EXPECT_NEAR(got[b * C + j], want, 1e-6);
      sum += got[b * C + j];
    }
    EXPECT_NEAR(sum, 1.0, 1e-6);  // 1^T r = 1
  }
  // saturated on the observed label: the paper's formula pushes by 1/2, the clamped one not
  const float e = 1e-6f;
  auto sat_th = upload(std::vector<float>{e, 1 - 2 * e, e});
  auto sat_phi = upload(std::vector<float>{e, 1 - 2 * e, e});
  auto one_obs = upload(std::vector<int>{1});
  for (float clamp : {0.f, 1e-4f}) {
    ops::elr_targets(Exec(), c2(sat_th, 1, Kc), c2(sat_phi, 1, C), c2(dset, 1, Kc), c1(one_obs, 1),
                     clamp, t2(r, 1, Kc));
    got = host(r, Kc);
    const double push = (1 - 2 * e) - got[1];  // f_theta - r on the observed class
    if (clamp == 0.f)
      EXPECT_NEAR(push, -0.5, 1e-3);
    else
      EXPECT_NEAR(push, 0.0, 1e-5);
  }
}

// dlogits = g (f - t), and f - t is the finite-difference gradient of the cross-entropy
TEST(DmisOps, ClassificationGradientMatchesFiniteDifferences) {
  const int B = 3, Kc = 4;
  const auto logits = pattern(B * Kc, 5, -2, 2);
  auto tt = host_softmax(pattern(B * Kc, 9, -1, 1), B, Kc);
  const auto f = host_softmax(logits, B, Kc);
  auto df = upload(f), dt = upload(tt);
  Buf<float> loss("loss", 1), dl("dl", B * Kc);
  const float g = 0.25f;
  ops::classification_grad(Exec(), c2(df, B, Kc), c2(dt, B, Kc), g, Tensor1<float, Exec>(loss.data(), 1),
                           t2(dl, B, Kc));
  auto ce = [&](const std::vector<double>& l) {
    double s = 0;
    for (int b = 0; b < B; ++b) {
      double mx = -1e30, z = 0;
      for (int j = 0; j < Kc; ++j) mx = std::max(mx, l[b * Kc + j]);
      for (int j = 0; j < Kc; ++j) z += std::exp(l[b * Kc + j] - mx);
      for (int j = 0; j < Kc; ++j) s -= tt[b * Kc + j] * (l[b * Kc + j] - mx - std::log(z));
    }
    return s / B;
  };
  std::vector<double> l(logits.begin(), logits.end());
  EXPECT_NEAR(host(loss, 1)[0], ce(l), 1e-5);
  const auto got = host(dl, B * Kc);
  for (int i = 0; i < B * Kc; ++i) {
    const double h = 1e-5;
    auto lp = l, lm = l;
    lp[i] += h, lm[i] -= h;
    const double fd = (ce(lp) - ce(lm)) / (2 * h) * B;  // the gradient of B * loss
    EXPECT_NEAR(got[i], g * fd, 1e-6) << i;
  }
  // pull only: the negative entries (the classes the target wants more of) as they are, the
  // positive ones (raising the others' errors) zero; there are some of each here
  Buf<float> dp("dp", B * Kc);
  ops::classification_grad(Exec(), c2(df, B, Kc), c2(dt, B, Kc), g, Tensor1<float, Exec>(loss.data(), 1),
                           t2(dp, B, Kc), /*pull_only=*/true);
  const auto pulled = host(dp, B * Kc);
  int negative = 0, zeroed = 0;
  for (int i = 0; i < B * Kc; ++i) {
    if (got[i] < 0) {
      EXPECT_EQ(pulled[i], got[i]) << i;
      ++negative;
    } else {
      EXPECT_EQ(pulled[i], 0.f) << i;
      zeroed += got[i] > 0;
    }
  }
  EXPECT_GT(negative, 0);
  EXPECT_GT(zeroed, 0);
}

// y ~ q: frequencies within 4 standard errors, never a class with q = 0
TEST(DmisOps, SampledLabelsFollowThePosterior) {
  const int B = 20000, C = 4;
  const std::vector<float> row = {0.5f, 0.0f, 0.3f, 0.2f};
  std::vector<float> q(B * C);
  for (int b = 0; b < B; ++b)
    for (int y = 0; y < C; ++y) q[b * C + y] = row[y];
  auto dq = upload(q);
  Buf<int> lab("lab", B);
  ops::sample_labels(Exec(), c2(dq, B, C), rng::Philox(7, rng::kPseudoLabel), 3u, rng::SampleIds{0, 1},
                     Tensor1<int, Exec>(lab.data(), B));
  const auto got = host(lab, B);
  std::vector<int> n(C, 0);
  for (int v : got) ++n[v];
  EXPECT_EQ(n[1], 0);
  for (int y = 0; y < C; ++y) {
    const double se = std::sqrt(row[y] * (1 - row[y]) / B);
    EXPECT_NEAR(n[y] / double(B), row[y], 4 * se + 1e-12) << y;
  }
  // the same keys give the same draws
  Buf<int> again("again", B);
  ops::sample_labels(Exec(), c2(dq, B, C), rng::Philox(7, rng::kPseudoLabel), 3u, rng::SampleIds{0, 1},
                     Tensor1<int, Exec>(again.data(), B));
  EXPECT_EQ(host(again, B), got);
}

// The ramp-in: r = 1 keeps the posterior's classes of the first Bw samples, r = 0.3 keeps
// about 30 % of them (each its own draw, the same for the same keys, growing with r: a sample
// kept at r keeps at every larger r), the rest and every sample from Bw on take the vanilla label
TEST(DmisOps, RampLabelsKeepThePosteriorClassWithProbabilityR) {
  const int B = 4000, Bw = 3000;
  std::vector<int> drawn(B, 7), van(B, 2);
  auto dv = upload(van);
  auto run = [&](float r) {
    auto d = upload(drawn);
    ops::ramp_labels(Exec(), r, Bw, rng::Philox(5, rng::kRampLabel), 9u, rng::SampleIds{0, 1},
                     Tensor1<const int, Exec>(dv.data(), B), Tensor1<int, Exec>(d.data(), B));
    return host(d, B);
  };
  const auto all = run(1.f), part = run(0.3f), more = run(0.6f), none = run(0.f);
  int kept = 0;
  for (int b = 0; b < B; ++b) {
    EXPECT_EQ(all[b], b < Bw ? 7 : 2) << b;
    EXPECT_EQ(none[b], 2) << b;
    if (b >= Bw) {
      EXPECT_EQ(part[b], 2) << b;
    }
    if (part[b] == 7) {
      ++kept;
      EXPECT_EQ(more[b], 7) << b;
    }
  }
  EXPECT_NEAR(kept / double(Bw), 0.3, 4 * std::sqrt(0.3 * 0.7 / Bw));
  EXPECT_EQ(run(0.3f), part);
}

// method.relabel_confidence: a sample keeps the posterior's class where q's top entry reaches
// the confidence (the boundary included), else it takes the vanilla label
TEST(DmisOps, KeepConfidentFallsBackToTheVanillaLabelBelowTheConfidence) {
  const int B = 3, C = 3;
  auto dq = upload(std::vector<float>{0.8f, 0.1f, 0.1f, 0.2f, 0.5f, 0.3f, 0.1f, 0.2f, 0.7f});
  auto dv = upload(std::vector<int>{2, 0, 1});
  auto run = [&](float conf) {
    auto d = upload(std::vector<int>{0, 1, 2});  // the posterior's classes
    ops::keep_confident(Exec(), c2(dq, B, C), conf, c1(dv, B), Tensor1<int, Exec>(d.data(), B));
    return host(d, B);
  };
  EXPECT_EQ(run(0.f), (std::vector<int>{0, 1, 2}));
  EXPECT_EQ(run(0.7f), (std::vector<int>{0, 0, 2}));  // 0.7 reaches 0.7
  EXPECT_EQ(run(0.75f), (std::vector<int>{0, 0, 1}));
  EXPECT_EQ(run(0.9f), (std::vector<int>{2, 0, 1}));
}

// Labels corrupted through a known T, a classifier that knows the clean class: the counts'
// rows recover T; the prior keeps every entry above zero
TEST(DmisOps, TransitionEstimateRecoversTheNoise) {
  const int C = 3, B = 3000;
  const double Ttrue[3][3] = {{0.6, 0.4, 0.0}, {0.1, 0.8, 0.1}, {0.0, 0.3, 0.7}};
  std::vector<float> f(B * C, 0.f);
  std::vector<int> obs(B);
  uint32_t s = 17;
  for (int b = 0; b < B; ++b) {
    const int y = b % C;
    f[b * C + y] = 1;
    s = s * 1664525u + 1013904223u;
    const double u = (s >> 8) / 16777216.0;
    double c = 0;
    int k = 0;
    for (; k < C - 1; ++k)
      if (u < (c += Ttrue[y][k])) break;
    obs[b] = k;
  }
  auto df = upload(f);
  auto dobs = upload(obs);
  Buf<float> step("step", C * C), acc("acc", C * C), T("T", C * C);
  Kokkos::deep_copy(step, 0.f), Kokkos::deep_copy(acc, 0.f);
  // in ten batches, momentum 1 (plain sums)
  for (int i = 0; i < 10; ++i) {
    const int nb = B / 10;
    ops::transition_counts(Exec(), Tensor2<const float, Exec>(df.data() + i * nb * C, nb, C),
                           Tensor1<const int, Exec>(dobs.data() + i * nb, nb), t2(step, C, C));
    ops::transition_update(Exec(), t2(step, C, C), t2(acc, C, C), 1.f, 1.f, t2(T, C, C));
  }
  const auto got = host(T, C * C);
  for (int y = 0; y < C; ++y)
    for (int k = 0; k < C; ++k) {
      EXPECT_NEAR(got[y * C + k], Ttrue[y][k], 0.045) << y << "," << k;
      EXPECT_GT(got[y * C + k], 0.f);
    }
  EXPECT_EQ(host(step, C * C), std::vector<float>(C * C, 0.f));  // the step's counts restart
}

TEST(DmisOps, DiagnosticsCountAgainstTheAuditLabels) {
  const int B = 2, C = 3;
  auto dq = upload(std::vector<float>{0.5f, 0.5f, 0.0f, 0.1f, 0.1f, 0.8f});
  auto df = upload(std::vector<float>{1.f / 3, 1.f / 3, 1.f / 3, 0.f, 1.f, 0.f});
  auto dgen = upload(std::vector<int>{0, C});  // the second was dropped to "no label"
  auto dobs = upload(std::vector<int>{1, 2});
  auto didx = upload(std::vector<int>{4, 0});
  auto daudit = upload(std::vector<int>{2, 0, 0, 0, 0});
  Buf<float> diag("diag", ops::kDiagnostics);
  ops::posterior_diagnostics(Exec(), c2(dq, B, C), c2(df, B, C), c1(dgen, B), c1(dobs, B),
                             c1(didx, B), c1(daudit, 5), Tensor1<float, Exec>(diag.data(), ops::kDiagnostics));
  const auto d = host(diag, ops::kDiagnostics);
  const double hq = (std::log(2.0) + -(0.2 * std::log(0.1) + 0.8 * std::log(0.8))) / 2;
  EXPECT_NEAR(d[ops::kEntropyTarget], hq, 1e-6);
  EXPECT_NEAR(d[ops::kEntropyEma], std::log(3.0) / 2, 1e-6);
  EXPECT_FLOAT_EQ(d[ops::kAccTarget], 1.0f);   // arg-max 0 (tie: first) = 0; 2 = 2
  EXPECT_FLOAT_EQ(d[ops::kAccEma], 0.5f);      // 0 = 0; 1 != 2
  EXPECT_FLOAT_EQ(d[ops::kAccGen], 1.0f);      // one counted, right
  EXPECT_FLOAT_EQ(d[ops::kAccObserved], 0.5f); // 1 != 0; 2 = 2
  EXPECT_FLOAT_EQ(d[ops::kRelabeled], 1.0f);   // 0 != 1; the dropped one not counted
  EXPECT_FLOAT_EQ(d[ops::kRelabelAcc], 1.0f);  // relabelled 1 -> 0, the truth is 0
  EXPECT_FLOAT_EQ(d[ops::kRelabelWasRight], 0.0f);
  // without audit labels: NaN
  ops::posterior_diagnostics(Exec(), c2(dq, B, C), c2(df, B, C), c1(dgen, B), c1(dobs, B),
                             c1(didx, B), Tensor1<const int, Exec>(),
                             Tensor1<float, Exec>(diag.data(), ops::kDiagnostics));
  EXPECT_TRUE(std::isnan(host(diag, ops::kDiagnostics)[ops::kAccTarget]));
  EXPECT_FLOAT_EQ(host(diag, ops::kDiagnostics)[ops::kRelabeled], 1.0f);  // needs no audit
  EXPECT_TRUE(std::isnan(host(diag, ops::kDiagnostics)[ops::kRelabelAcc]));
  EXPECT_TRUE(std::isnan(d[ops::kPseudoShare]));  // every sample has a label
}

TEST(DmisOps, DiagnosticsCountThePseudoLabelsOfSamplesWithoutALabel) {
  const int B = 4, C = 3;
  auto dq = upload(std::vector<float>(B * C, 1.f / C));
  auto df = upload(std::vector<float>(B * C, 1.f / C));
  // three unlabelled samples: a right class, "no label" (dropped or unsure), a wrong class;
  // one labelled sample (relabelled, not counted here)
  auto dgen = upload(std::vector<int>{0, C, 2, 1});
  auto dobs = upload(std::vector<int>{-1, -1, -1, 0});
  auto didx = upload(std::vector<int>{0, 1, 2, 3});
  auto daudit = upload(std::vector<int>{0, 0, 0, 1});
  Buf<float> diag("diag", ops::kDiagnostics);
  ops::posterior_diagnostics(Exec(), c2(dq, B, C), c2(df, B, C), c1(dgen, B), c1(dobs, B),
                             c1(didx, B), c1(daudit, 4), Tensor1<float, Exec>(diag.data(), ops::kDiagnostics));
  auto d = host(diag, ops::kDiagnostics);
  EXPECT_FLOAT_EQ(d[ops::kPseudoShare], 2.f / 3);
  EXPECT_FLOAT_EQ(d[ops::kPseudoAcc], 0.5f);
  EXPECT_FLOAT_EQ(d[ops::kRelabeled], 1.0f);  // the labelled one only
  EXPECT_FLOAT_EQ(d[ops::kAccGen], 2.f / 3);  // 0 = 0, 2 != 0, 1 = 1
  ops::posterior_diagnostics(Exec(), c2(dq, B, C), c2(df, B, C), c1(dgen, B), c1(dobs, B),
                             c1(didx, B), Tensor1<const int, Exec>(),
                             Tensor1<float, Exec>(diag.data(), ops::kDiagnostics));
  d = host(diag, ops::kDiagnostics);
  EXPECT_FLOAT_EQ(d[ops::kPseudoShare], 2.f / 3);  // needs no audit
  EXPECT_TRUE(std::isnan(d[ops::kPseudoAcc]));
}

// A one-level unet-s (base 8) for the classifier tests, its weights initialised from `seed`.
models::UNetConfig tiny_classifier_net() {
  models::UNetConfig net = models::UNetConfig::from_preset("unet-s");
  net.base = 8, net.mults = {1}, net.n_blocks = 1, net.attn_res = {}, net.groups = 4;
  return net;
}
Buf<float> initialised_params(const models::UNetConfig& net, const ParamTable& table, uint64_t seed) {
  Buf<float> params("params", table.total());
  models::init_params<Exec, float>(Exec(), net, table, Tensor1<float, Exec>(params.data(), params.extent(0)), seed,
                                   models::InitScheme::Torch);
  return params;
}

// Runs the classifiers, each built for B = 2 samples of NC = 3 classes on tiny_classifier_net,
// on the same two patterned images (pattern seed `image_seed`) with candidate classes 0-5, the
// weights initialised from `init`, noise seed `seed` and step `step`; returns each one's logits
// (B, NC) on the host, in the order given.
using HostLogits = Kokkos::View<float**, Kokkos::LayoutRight, Kokkos::HostSpace>;
std::vector<HostLogits> classifier_logits(
    const std::vector<methods::DiffusionClassifier<Exec>*>& cs, uint64_t init, uint32_t image_seed,
    uint64_t seed, uint32_t step) {
  const int B = 2, NC = 3;
  const models::UNetConfig net = tiny_classifier_net();
  const Buf<float> params = initialised_params(net, cs.front()->net().table(), init);
  auto x0 = upload(pattern(B * 784, image_seed, -1, 1));
  auto classes = upload(std::vector<int>{0, 1, 2, 3, 4, 5});
  const Tensor4<const float, Exec> x(x0.data(), B, 1, 28, 28);
  std::vector<HostLogits> out;
  for (auto* c : cs) {
    c->forward(Exec(), c1(params, params.extent(0)), x, c2(classes, B, NC), Tensor1<const float, Exec>(), seed,
               step, rng::SampleIds{0, 1});
    out.emplace_back("logits", B, NC);
    Kokkos::deep_copy(out.back(), c->logits());
  }
  return out;
}

// The default logit scale is the pixel count: the logits are C*H*W times those of the mean
TEST(DmisOps, DefaultLogitScaleIsThePixelCount) {
  const models::UNetConfig net = tiny_classifier_net();
  EXPECT_DOUBLE_EQ(methods::resolved_logit_scale(0, net), 784.0);
  EXPECT_DOUBLE_EQ(methods::resolved_logit_scale(3, net), 3.0);
  EXPECT_THROW(methods::resolved_logit_scale(-1, net), InputError);
  const int B = 2, NC = 3;
  methods::ClassifierConfig mean_cfg, sum_cfg;
  mean_cfg.logit_scale = 1, sum_cfg.logit_scale = 0;
  methods::DiffusionClassifier<Exec> mean_cls(net, mean_cfg, B, NC, true), sum_cls(net, sum_cfg, B, NC, true);
  EXPECT_DOUBLE_EQ(sum_cls.logit_scale(), 784.0);
  const auto l = classifier_logits({&mean_cls, &sum_cls}, 1, 23, 1, 0);
  const HostLogits a = l[0], b = l[1];
  for (int i = 0; i < B; ++i)
    for (int j = 0; j < NC; ++j) EXPECT_NEAR(b(i, j), 784 * a(i, j), 1e-4 * std::abs(784 * a(i, j)) + 1e-6);
}

// A second classifier with first_draw d takes the noise of draw d onwards: at one sigma, the
// mean of a K = 2 classifier's logits is that of its first draw (first_draw 0, K = 1) and of
// its second (first_draw 1, K = 1); so the refinement's draws are independent of draw 1's.
TEST(DmisOps, FirstDrawGivesAClassifierTheLaterDrawsOfTheSameStream) {
  const models::UNetConfig net = tiny_classifier_net();
  const int B = 2, NC = 3;
  methods::ClassifierConfig two, first, second;
  two.fixed_sigma = first.fixed_sigma = second.fixed_sigma = 2.0;
  two.logit_scale = first.logit_scale = second.logit_scale = 1;
  two.points = 2, second.first_draw = 1;
  methods::DiffusionClassifier<Exec> c2cls(net, two, B, NC, true), c0(net, first, B, NC, true),
      c1cls(net, second, B, NC, true);
  const auto l = classifier_logits({&c2cls, &c0, &c1cls}, 3, 29, 5, 7);
  const HostLogits l2 = l[0], l0 = l[1], l1 = l[2];
  for (int i = 0; i < B; ++i)
    for (int j = 0; j < NC; ++j) {
      EXPECT_NEAR(l2(i, j), 0.5f * (l0(i, j) + l1(i, j)), 1e-5f * std::abs(l2(i, j)) + 1e-6f) << i << " " << j;
      EXPECT_NE(l0(i, j), l1(i, j)) << "draws 1 and 2 took the same noise";
    }
}

// The coarse-to-fine E-step's logits: the refined classes the mean over all K draws, the
// others their one draw; then screened out (no mass after the softmax)
TEST(DmisOps, RefineLogitsAverageTheRefinedClassesOnly) {
  const int B = 2, C = 5, R = 2, K = 3;
  const auto first = pattern(B * C, 31, -2, 0), more = pattern(B * R, 37, -2, 0);
  const std::vector<int> set{3, 0, 1, 4};
  auto dfirst = upload(first), dmore = upload(more);
  auto dset = upload(set);
  Buf<float> u("u", B * C);
  ops::refine_logits(Exec(), c2(dfirst, B, C), c2(dmore, B, R), c2(dset, B, R), K, t2(u, B, C));
  const auto got = host(u, B * C);
  for (int b = 0; b < B; ++b)
    for (int y = 0; y < C; ++y) {
      float want = first[b * C + y];
      for (int j = 0; j < R; ++j)
        if (set[b * R + j] == y) want = (first[b * C + y] + (K - 1) * more[b * R + j]) / K;
      EXPECT_NEAR(got[b * C + y], want, 1e-6f) << b << " " << y;
    }
  ops::screen_out(Exec(), c2(dset, B, R), t2(u, B, C));
  const auto screened = host(u, B * C);
  for (int b = 0; b < B; ++b)
    for (int y = 0; y < C; ++y) {
      const bool kept = set[b * R] == y || set[b * R + 1] == y;
      EXPECT_EQ(screened[b * C + y], kept ? got[b * C + y] : ops::kScreenedOut) << b << " " << y;
    }
  // after the scaled softmax the screened-out classes have no mass, the others all of it
  auto all = upload(std::vector<int>{0, 1, 2, 3, 4, 0, 1, 2, 3, 4});
  auto scale = upload(std::vector<float>{4096.f});
  Buf<float> f("f", B * C);
  ops::scaled_softmax<Exec>(Exec(), c2(u, B, C), c2(all, B, C), Tensor1<const float, Exec>(), c1(scale, 1),
                            t2(f, B, C));
  const auto p = host(f, B * C);
  for (int b = 0; b < B; ++b) {
    float kept = 0;
    for (int j = 0; j < R; ++j) kept += p[b * C + set[b * R + j]];
    EXPECT_NEAR(kept, 1.f, 1e-6f) << b;
    for (int y = 0; y < C; ++y) EXPECT_TRUE(std::isfinite(p[b * C + y])) << b << " " << y;
  }
}

// The classifier's noise levels: the window's equal-probability quantiles inside [l, r] with
// lambda / K; the uniform grid with the ELBO's lambda p d_sigma or, with equal_weights, lambda / K
TEST(DmisOps, ClassifierLevelsAndTheirWeights) {
  methods::ClassifierConfig cfg;
  cfg.points = 8;
  const double sd = cfg.edm.sigma_data, Pm = cfg.edm.P_mean, Ps = cfg.edm.P_std;
  auto lambda = [&](double s) { return (s * s + sd * sd) / ((s * sd) * (s * sd)); };
  std::vector<double> sig, w;
  methods::classifier_levels(cfg, sig, w);
  double l, r;
  methods::dmis_window(Pm, cfg.window, l, r);
  auto F = [&](double s) { return 0.5 * std::erfc(-(std::log(s) - Pm) / Ps / std::sqrt(2.0)); };
  EXPECT_NEAR(F(l) + F(r), 1.0, 1e-9);
  for (int k = 0; k < 8; ++k) {
    EXPECT_GT(sig[k], l);
    EXPECT_LT(sig[k], r);
    if (k) {
      EXPECT_GT(sig[k], sig[k - 1]);
    }
    // the k-th of 8 equal-probability cells' midpoint in probability
    EXPECT_NEAR(F(sig[k]), F(l) + (k + 0.5) / 8 * (F(r) - F(l)), 1e-7);
    EXPECT_NEAR(w[k], lambda(sig[k]) / 8, 1e-9 * w[k]);
  }
  cfg.timesteps = methods::ClassifierLevels::Uniform, cfg.uniform_min = 1, cfg.uniform_max = 4;
  methods::classifier_levels(cfg, sig, w);
  for (int k = 0; k < 8; ++k) {
    EXPECT_NEAR(sig[k], 1 + k * 3.0 / 7, 1e-12);
    const double z = (std::log(sig[k]) - Pm) / Ps;
    const double pdf = std::exp(-z * z / 2) / (sig[k] * Ps * std::sqrt(2 * M_PI));
    EXPECT_NEAR(w[k], lambda(sig[k]) * pdf * 3.0 / 7, 1e-9 * w[k]);
  }
  cfg.equal_weights = true;
  methods::classifier_levels(cfg, sig, w);
  for (int k = 0; k < 8; ++k) EXPECT_NEAR(w[k], lambda(sig[k]) / 8, 1e-9 * w[k]);
  cfg.uniform_min = 4;
  EXPECT_THROW(methods::classifier_levels(cfg, sig, w), InputError);
}

// The logit scale of largest likelihood of labels drawn from softmax(2 u): the grid's 2 (host
// bisection on the maximum-likelihood condition as the reference), then the smoothing on log s
TEST(DmisOps, ScaleCalibrationFindsTheMaximumLikelihoodTemperature) {
  const int B = 3000, C = 3, G = 7;
  const auto u = pattern(B * C, 41, -1, 1);
  std::vector<int> lab(B);
  uint32_t st = 5;
  for (int b = 0; b < B; ++b) {
    double z = 0, p[3];
    for (int y = 0; y < C; ++y) z += (p[y] = std::exp(2.0 * u[b * C + y]));
    st = st * 1664525u + 1013904223u;
    double r = (st >> 8) / 16777216.0 * z, c = 0;
    lab[b] = C - 1;
    for (int y = 0; y < C; ++y)
      if (r < (c += p[y])) {
        lab[b] = y;
        break;
      }
  }
  // the ML condition: sum_b (u(b, label) - E_f[u]) = 0, decreasing in s
  auto dlogl = [&](double s) {
    double g = 0;
    for (int b = 0; b < B; ++b) {
      double z = 0, e = 0;
      for (int y = 0; y < C; ++y) z += std::exp(s * u[b * C + y]);
      for (int y = 0; y < C; ++y) e += std::exp(s * u[b * C + y]) / z * u[b * C + y];
      g += u[b * C + lab[b]] - e;
    }
    return g;
  };
  double lo = 0.1, hi = 10;
  for (int i = 0; i < 60; ++i) (dlogl(0.5 * (lo + hi)) > 0 ? lo : hi) = 0.5 * (lo + hi);
  const double s_ml = 0.5 * (lo + hi);
  ASSERT_GT(s_ml, 1.7);  // nearer the grid's 2 than its 1.41 or 2.83
  ASSERT_LT(s_ml, 2.4);
  auto du = upload(u);
  auto dlab = upload(lab);
  std::vector<int> ids(B * C);
  for (int i = 0; i < B * C; ++i) ids[i] = i % C;
  auto dcls = upload(ids);
  Buf<float> ll("ll", G), scale("scale", 1);
  Kokkos::deep_copy(ll, 0.f), Kokkos::deep_copy(scale, 1.f);
  const float glo = 0.5f, ratio = std::sqrt(2.f);  // 0.5, 0.71, 1, 1.41, 2, 2.83, 4
  // in two halves of the batch (as two ranks would add them)
  for (int half = 0; half < 2; ++half)
    ops::scale_loglik(Exec(), ops::CleanLikelihood<Exec>{Tensor1<const int, Exec>(dlab.data() + half * B / 2, B / 2)},
                      Tensor2<const float, Exec>(du.data() + half * B / 2 * C, B / 2, C),
                      Tensor2<const int, Exec>(dcls.data(), B / 2, C), Tensor1<const float, Exec>(), glo,
                      ratio, Tensor1<float, Exec>(ll.data(), G));
  const auto got = host(ll, G);
  for (int g = 0; g < G; ++g) {  // against the host log-likelihood
    const double sg = glo * std::pow(double(ratio), g);
    double want = 0;
    for (int b = 0; b < B; ++b) {
      double z = 0;
      for (int y = 0; y < C; ++y) z += std::exp(sg * u[b * C + y]);
      want += sg * u[b * C + lab[b]] - std::log(z);
    }
    EXPECT_NEAR(got[g], want, 1e-4 * std::abs(want)) << g;
  }
  ops::update_scale(Exec(), Tensor1<float, Exec>(ll.data(), G), glo, ratio, 0.5f,
                    Tensor1<float, Exec>(scale.data(), 1));
  EXPECT_NEAR(host(scale, 1)[0], std::sqrt(2.0), 1e-4);  // halfway from 1 to 2 on log s
  EXPECT_EQ(host(ll, G), std::vector<float>(G, 0.f));     // the sums restart
  // no supervision in the batch (every sum equal): the scale stays
  ops::update_scale(Exec(), Tensor1<float, Exec>(ll.data(), G), glo, ratio, 0.5f,
                    Tensor1<float, Exec>(scale.data(), 1));
  EXPECT_NEAR(host(scale, 1)[0], std::sqrt(2.0), 1e-4);
}

// The MethodStep tests' network: unet-s at base 8, two levels of one block, no attention.
models::UNetConfig tiny_unet() {
  auto cfg = models::UNetConfig::from_preset("unet-s");
  cfg.base = 8, cfg.mults = {1, 2}, cfg.n_blocks = 1, cfg.attn_res = {}, cfg.groups = 4;
  return cfg;
}

// method.transition: known starts T at the supervision's own process, with the weight of counts
// and the Dirichlet prior's share of fixed's start, and keeps it there while training; estimate
// starts at the even spread and moves with the steps. A known T of the wrong size is named.
TEST(MethodStepTransition, KnownIsTheProcessAndStaysFixed) {
  const auto cfg = tiny_unet();
  const int B = 4, R = 28, C = 10;
  std::vector<double> T(C * C, 0.0);  // asymmetric: 2 -> 7 and 5 -> 6 at 0.4
  for (int y = 0; y < C; ++y) T[y * C + y] = 1;
  T[2 * C + 2] = 0.6, T[2 * C + 7] = 0.4, T[5 * C + 5] = 0.6, T[5 * C + 6] = 0.4;
  Kokkos::View<float****, Kokkos::LayoutRight, Exec::memory_space> x("dmis::test::x0", B, 1, R, R);
  Kokkos::View<int*, Kokkos::LayoutRight, Exec::memory_space> obs("dmis::test::obs", B);
  Kokkos::View<uint8_t**, Kokkos::LayoutRight, Exec::memory_space> cand("dmis::test::cand", B, C);
  Kokkos::View<uint8_t*, Kokkos::LayoutRight, Exec::memory_space> lab("dmis::test::lab", B);
  Kokkos::deep_copy(x, 0.25f);
  auto ho = Kokkos::create_mirror_view(obs);
  for (int b = 0; b < B; ++b) ho(b) = (2 * b + 1) % C;
  Kokkos::deep_copy(obs, ho);
  Kokkos::deep_copy(cand, 1);
  Kokkos::deep_copy(lab, 1);
  auto read = [&](methods::MethodStep<Exec>& s) {
    auto t = s.transition();
    auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), t);
    std::vector<double> v(C * C);
    for (int y = 0; y < C; ++y)
      for (int k = 0; k < C; ++k) v[y * C + k] = h(y, k);
    return v;
  };
  methods::TrainStepConfig tc;
  methods::MethodConfig mc;
  mc.kind = methods::MethodKind::Dmis, mc.supervision = methods::dmis_ops::Supervision::Noisy, mc.classifier_fraction = 0.5, mc.top_k = 3;
  mc.transition = methods::TransitionMode::Known, mc.known_transition = T;
  methods::MethodStep<Exec> known(cfg, tc, mc, B);
  known.initialize(models::InitScheme::Adm);
  // counts of B / (1 - momentum) samples per step's steady state, C rows: 20 per row; prior 1
  const double rows = B / (1 - mc.transition_momentum) / C;
  auto expect_process = [&](const std::vector<double>& got, const char* when) {
    for (int y = 0; y < C; ++y)
      for (int k = 0; k < C; ++k)
        EXPECT_NEAR(got[y * C + k], (rows * T[y * C + k] + 0.1) / (rows + 1), 1e-6)
            << when << ": T(" << y << ", " << k << ")";
  };
  expect_process(read(known), "at the start");
  for (int i = 0; i < 3; ++i) known.run(Exec(), x, obs, cand, lab);
  Kokkos::fence();
  expect_process(read(known), "after 3 steps");

  mc.transition = methods::TransitionMode::Estimate, mc.known_transition.clear(), mc.transition_init = 0.4;
  methods::MethodStep<Exec> est(cfg, tc, mc, B);
  est.initialize(models::InitScheme::Adm);
  const auto start = read(est);
  EXPECT_NEAR(start[0], (rows * 0.6 + 0.1) / (rows + 1), 1e-6);
  EXPECT_NEAR(start[1], (rows * 0.4 / 9 + 0.1) / (rows + 1), 1e-6);
  for (int i = 0; i < 3; ++i) est.run(Exec(), x, obs, cand, lab);
  Kokkos::fence();
  const auto moved = read(est);
  double change = 0;
  for (int i = 0; i < C * C; ++i) change = std::max(change, std::abs(moved[i] - start[i]));
  EXPECT_GT(change, 1e-3) << "estimate: the online EM did not move T";

  mc.transition = methods::TransitionMode::Known;
  mc.known_transition.assign(4, 0.25);
  try {
    methods::MethodStep<Exec> bad(cfg, tc, mc, B);
    ADD_FAILURE() << "a known transition of 4 values for 10 classes was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("known needs the noise process's transition of 10 x 10 values, found 4"),
              std::string::npos) << e.what();
  }
}

// A DMIS step's inputs for the MethodStep tests: B images of pattern(seed) in [-1, 1], the
// observed labels (label_mul b + label_add) mod C, every candidate set full, every sample
// labelled.
struct StepBatch {
  static constexpr int R = 28;
  Kokkos::View<float****, Kokkos::LayoutRight, Exec::memory_space> x;
  Kokkos::View<int*, Kokkos::LayoutRight, Exec::memory_space> obs;
  Kokkos::View<uint8_t**, Kokkos::LayoutRight, Exec::memory_space> cand;
  Kokkos::View<uint8_t*, Kokkos::LayoutRight, Exec::memory_space> lab;
  std::vector<int> observed;
  StepBatch(int B, int C, uint32_t seed, int label_mul, int label_add)
      : x("dmis::test::x0", B, 1, R, R), obs("dmis::test::obs", B), cand("dmis::test::cand", B, C),
        lab("dmis::test::lab", B), observed(B) {
    const auto px = pattern(static_cast<size_t>(B) * R * R, seed, -1.f, 1.f);
    auto hx = Kokkos::create_mirror_view(x);
    for (size_t i = 0; i < px.size(); ++i) hx.data()[i] = px[i];
    Kokkos::deep_copy(x, hx);
    auto ho = Kokkos::create_mirror_view(obs);
    for (int b = 0; b < B; ++b) ho(b) = observed[b] = (label_mul * b + label_add) % C;
    Kokkos::deep_copy(obs, ho);
    Kokkos::deep_copy(cand, 1);
    Kokkos::deep_copy(lab, 1);
  }
  void run(methods::MethodStep<Exec>& s) const { s.run(Exec(), x, obs, cand, lab); }
};

// Weights and EMA of a freshly initialised step moved by pattern(seed) in [-0.05, 0.05]: the
// initialisation's zero output layer would give every class the same logit.
void perturb_weights(methods::MethodStep<Exec>& s, uint32_t seed) {
  auto& store = s.core().store();
  auto hp = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), store.params);
  const auto noise = pattern(hp.extent(0), seed, -0.05f, 0.05f);
  for (size_t i = 0; i < hp.extent(0); ++i) hp(i) += noise[i];
  Kokkos::deep_copy(store.params, hp);
  Kokkos::deep_copy(store.ema, hp);
}

// A fresh step of (cfg, tc, mc) for batch size B, initialised and moved by perturb_weights(seed).
std::unique_ptr<methods::MethodStep<Exec>> perturbed_step(const models::UNetConfig& cfg,
                                                          const methods::TrainStepConfig& tc,
                                                          const methods::MethodConfig& mc, int B,
                                                          uint32_t seed) {
  auto s = std::make_unique<methods::MethodStep<Exec>>(cfg, tc, mc, B);
  s->initialize(models::InitScheme::Adm);
  perturb_weights(*s, seed);
  return s;
}

// The quickstart's kind of DMIS step under `kind` of supervision: hard EM (the top class of q,
// mixture without extra classes), beta 0 (the classification term forward only), the scale at
// the pixel count, a quarter of the batch in the classification term over 3 classes.
methods::MethodConfig hard_em(methods::dmis_ops::Supervision kind) {
  methods::MethodConfig mc;
  mc.kind = methods::MethodKind::Dmis, mc.supervision = kind;
  mc.classifier_fraction = 0.25, mc.top_k = 3, mc.beta = 0, mc.logit_scale = 784;
  mc.gen_objective = methods::GenObjective::Mixture, mc.gen_extra = 0;
  return mc;
}

// The E-step tests' setting: a small network, an EMA that moves visibly in a few steps (decay
// 0.5), noisy labels, DMIS from step 2 of batch B.
struct EstepSetup {
  models::UNetConfig cfg = tiny_unet();
  methods::TrainStepConfig tc;
  methods::MethodConfig mc;
  explicit EstepSetup(int B) {
    tc.ema_decay = 0.5;
    mc.kind = methods::MethodKind::Dmis, mc.supervision = methods::dmis_ops::Supervision::Noisy;
    mc.classifier_fraction = 0.25, mc.top_k = 3, mc.gen_extra = 0, mc.logit_scale = 1;
    mc.warmup_kimg = 2 * B / 1e3;
  }
};

template <class V>
std::vector<float> host_vec(const V& v) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), v);
  return std::vector<float>(h.data(), h.data() + h.size());
}

// method.estep_precision: bf16 takes the E-step's evaluations (the posterior's diffusion
// classifier) in bf16 and nothing else: the posterior moves by bf16's rounding only (and does
// move: bf16 was used), the process-wide precision is fp32 again after the step, and where the
// posterior's top classes agree the step's parameters are bitwise those of the fp32 E-step
// (the training step stayed in fp32: hard EM, beta 0, the scale fixed).
TEST(MethodStepEstepPrecision, Bf16TakesTheEstepAlone) {
  std::string why;
  if (!kernels::gemm_bf16_available<Exec>(&why)) GTEST_SKIP() << why;
  const auto cfg = tiny_unet();
  const int B = 16, C = 10;
  const StepBatch batch(B, C, 23u, 3, 1);
  methods::TrainStepConfig tc;
  methods::MethodConfig mc = hard_em(methods::dmis_ops::Supervision::Noisy);
  mc.calibrate_scale = false;
  mc.transition = methods::TransitionMode::Fixed, mc.transition_init = 0.4;
  ASSERT_EQ(kernels::gemm_precision(), kernels::GemmPrecision::FP32);
  struct Out {
    std::vector<float> q, params;
    std::vector<int> gen;
  };
  auto step_with = [&](kernels::GemmPrecision p) {
    mc.estep_precision = p;
    const auto step = perturbed_step(cfg, tc, mc, B, 31u);
    auto& s = *step;
    batch.run(s);
    Kokkos::fence();
    EXPECT_EQ(kernels::gemm_precision(), kernels::GemmPrecision::FP32) << "not restored after the E-step";
    Out o;
    o.q = host_vec(s.posterior());
    o.params = host_vec(s.core().store().params);
    auto hg = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), s.generative_labels());
    o.gen.assign(hg.data(), hg.data() + B);
    return o;
  };
  const Out f = step_with(kernels::GemmPrecision::FP32), h = step_with(kernels::GemmPrecision::BF16);
  double worst = 0, top = 0;
  for (int i = 0; i < B * C; ++i) worst = std::max(worst, double(std::abs(f.q[i] - h.q[i])));
  for (int b = 0; b < B; ++b) top += *std::max_element(&f.q[b * C], &f.q[b * C] + C) / B;
  EXPECT_GT(worst, 0.0) << "bitwise the fp32 posterior: bf16 was not used";
  EXPECT_LT(worst, 0.05) << "the posterior moved by more than bf16's rounding";
  EXPECT_GT(top, 0.2) << "a flat posterior (mean top " << top << "): the comparison shows little";
  ASSERT_EQ(f.gen, h.gen) << "the top classes differ; the parameters cannot be compared";
  EXPECT_EQ(f.params, h.params) << "the training step did not stay in fp32";
}

// method.relabel_confidence in a whole step, under both generative objectives: every sample
// with a posterior trains on the posterior's class (its draw, or its top class) where q is sure
// of it, and on its observed label where not; 0 keeps the posterior's class everywhere. The
// transition is flat (labels wrong with probability 0.9), so q is the classifier's own
// posterior and disagrees with the observed labels on most samples.
TEST(MethodStepRelabel, UnsurePosteriorsKeepTheObservedLabel) {
  const auto cfg = tiny_unet();
  const int B = 16, C = 10;
  const StepBatch batch(B, C, 17u, 3, 1);
  const std::vector<int>& observed = batch.observed;
  methods::TrainStepConfig tc;
  tc.p_uncond = 0;  // every sample keeps a class
  methods::MethodConfig mc;
  mc.kind = methods::MethodKind::Dmis, mc.supervision = methods::dmis_ops::Supervision::Noisy;
  mc.classifier_fraction = 0.25, mc.top_k = 3, mc.beta = 0, mc.logit_scale = 1;
  mc.calibrate_scale = false;
  mc.transition = methods::TransitionMode::Fixed, mc.transition_init = 0.9;
  for (auto objective : {methods::GenObjective::Mixture, methods::GenObjective::Sample}) {
    mc.gen_objective = objective, mc.gen_extra = 0;
    auto step_with = [&](double confidence, std::vector<float>& q) {
      mc.relabel_confidence = confidence;
      const auto step = perturbed_step(cfg, tc, mc, B, 29u);
      auto& s = *step;
      batch.run(s);
      Kokkos::fence();
      auto hq = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), s.posterior());
      auto hg = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), s.generative_labels());
      q.assign(hq.data(), hq.data() + B * C);
      return std::vector<int>(hg.data(), hg.data() + B);
    };
    std::vector<float> q0, q1;
    const auto always = step_with(0, q0);
    // the median of the top entries: about half the samples on each side
    std::vector<float> tops(B);
    for (int b = 0; b < B; ++b) tops[b] = *std::max_element(&q0[b * C], &q0[b * C] + C);
    std::vector<float> sorted = tops;
    std::sort(sorted.begin(), sorted.end());
    const float conf = 0.5f * (sorted[B / 2 - 1] + sorted[B / 2]);
    const auto some = step_with(conf, q1);
    EXPECT_EQ(q0, q1) << "the confidence changed the posterior";
    int relabeled = 0, kept = 0, unsure = 0;
    for (int b = 0; b < B; ++b) {
      relabeled += always[b] != observed[b];
      if (tops[b] < conf) {
        ++unsure;
        EXPECT_EQ(some[b], observed[b]) << "sample " << b << ": q's top " << tops[b] << " < " << conf;
      } else {
        ++kept;
        EXPECT_EQ(some[b], always[b]) << "sample " << b << ": q's top " << tops[b] << " >= " << conf;
      }
      if (objective == methods::GenObjective::Mixture) {
        EXPECT_EQ(always[b], std::max_element(&q0[b * C], &q0[b * C] + C) - &q0[b * C]) << b;
      }
    }
    EXPECT_GT(relabeled, 0) << "no sample relabelled: the test shows nothing";
    EXPECT_GT(unsure, 0);
    EXPECT_GT(kept, 0);
  }
}

// method.estep_network warmup: the first DMIS step freezes the EMA as the warm-up left it and
// every later E-step uses that copy, while the EMA goes on moving; ema (the default) keeps no
// copy. Both runs start from the same weights, so their first DMIS posteriors are the same and
// their second differ (the ema run's E-step sees the moved EMA). A checkpoint's copy of the
// wrong size is named.
TEST(MethodStepEstep, WarmupFreezesTheEmaOfTheFirstDmisStep) {
  const int B = 8, C = 10;
  const StepBatch batch(B, C, 23u, 3, 2);
  EstepSetup set(B);
  const auto& cfg = set.cfg;
  const auto& tc = set.tc;
  auto& mc = set.mc;
  auto make = [&](methods::EstepNetwork e) {
    mc.estep_network = e;
    return perturbed_step(cfg, tc, mc, B, 31u);
  };
  auto frozen = make(methods::EstepNetwork::Warmup);
  auto live = make(methods::EstepNetwork::Ema);
  for (int i = 0; i < 2; ++i) {
    ASSERT_FALSE(frozen->dmis_active(frozen->core().step()));
    batch.run(*frozen);
    batch.run(*live);
  }
  Kokkos::fence();
  EXPECT_EQ(frozen->estep_params().extent(0), 0u) << "frozen before the first DMIS step";
  const auto ema_at_switch = host_vec(frozen->core().store().ema);
  ASSERT_TRUE(frozen->dmis_active(frozen->core().step()));
  batch.run(*frozen);
  batch.run(*live);
  Kokkos::fence();
  EXPECT_EQ(host_vec(frozen->posterior()), host_vec(live->posterior()))
      << "the first DMIS step: both E-steps on the same weights";
  for (int i = 0; i < 2; ++i) {
    batch.run(*frozen);
    batch.run(*live);
  }
  Kokkos::fence();
  EXPECT_EQ(host_vec(frozen->estep_params()), ema_at_switch) << "the frozen weights moved";
  EXPECT_NE(host_vec(frozen->core().store().ema), ema_at_switch) << "the EMA did not move: the test shows nothing";
  EXPECT_EQ(live->estep_params().extent(0), 0u);
  EXPECT_NE(host_vec(frozen->posterior()), host_vec(live->posterior()))
      << "the E-step on the frozen weights gave the moving EMA's posterior";
  // a checkpoint's copy: restored exactly; the wrong size named
  auto restored = make(methods::EstepNetwork::Warmup);
  restored->set_estep_params(ema_at_switch);
  EXPECT_EQ(host_vec(restored->estep_params()), ema_at_switch);
  try {
    restored->set_estep_params(std::vector<float>(7, 0.f));
    ADD_FAILURE() << "estep_params of 7 values were accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("found 7"), std::string::npos) << e.what();
  }
}

// method.estep_refresh_kimg: the frozen copy is the EMA of the first DMIS step until a new
// refresh period starts, then the EMA of that step (a pure function of the step).
TEST(MethodStepEstep, RefreshTakesTheEmaAgainEachPeriod) {
  const int B = 8, C = 10;
  const StepBatch batch(B, C, 23u, 3, 2);
  EstepSetup set(B);  // DMIS from step 2
  const auto& cfg = set.cfg;
  const auto& tc = set.tc;
  auto& mc = set.mc;
  mc.estep_network = methods::EstepNetwork::Warmup;
  mc.estep_refresh_kimg = 2 * B / 1e3;  // a new copy at steps 4, 6, ...
  methods::MethodStep<Exec> step(cfg, tc, mc, B);
  step.initialize(models::InitScheme::Adm);
  perturb_weights(step, 31u);
  for (long s : {0L, 1L, 2L, 3L, 5L, 7L}) EXPECT_FALSE(step.estep_refresh_due(s)) << "step " << s;
  for (long s : {4L, 6L, 8L}) EXPECT_TRUE(step.estep_refresh_due(s)) << "step " << s;
  for (int i = 0; i < 2; ++i) batch.run(step);
  Kokkos::fence();
  const auto ema_at_switch = host_vec(step.core().store().ema);
  batch.run(step);  // step 2: the first copy
  batch.run(step);  // step 3
  Kokkos::fence();
  EXPECT_EQ(host_vec(step.estep_params()), ema_at_switch) << "the copy moved within its period";
  const auto ema_at_4 = host_vec(step.core().store().ema);
  ASSERT_NE(ema_at_4, ema_at_switch) << "the EMA did not move: the test shows nothing";
  batch.run(step);  // step 4: refreshed
  Kokkos::fence();
  EXPECT_EQ(host_vec(step.estep_params()), ema_at_4) << "step 4 did not take the EMA again";
  batch.run(step);  // step 5
  Kokkos::fence();
  EXPECT_EQ(host_vec(step.estep_params()), ema_at_4) << "the copy moved within its second period";
  // without a refresh period the copy stays the switch's (the test above), and the E-step on
  // the EMA never refreshes
  mc.estep_refresh_kimg = 0;
  methods::MethodStep<Exec> never(cfg, tc, mc, B);
  for (long s : {4L, 6L}) EXPECT_FALSE(never.estep_refresh_due(s));
}

// Clean labels make the posterior the observed label whatever the classifier says, so where
// nothing else reads the E-step (beta 0, or the logit scale not calibrated) it is left out: no
// E-step classifier, no E-step evaluations counted, and the step trains bitwise as vanilla does
// (the generative term on the label, the classification term's gradient 0 at beta 0), with the
// posterior the label and the EMA classifier's diagnostics not measured (NaN). With beta > 0 and
// a calibrated scale the E-step stays (it sets s, which the classification term uses); other
// supervision keeps it.
TEST(MethodStepEstep, CleanLabelsSkipItWhereNothingReadsIt) {
  const auto cfg = tiny_unet();
  const int B = 8, C = 10;
  const StepBatch batch(B, C, 19u, 3, 2);
  methods::TrainStepConfig tc;
  methods::MethodConfig mc = hard_em(methods::dmis_ops::Supervision::Clean);
  mc.warmup_kimg = 2 * B / 1e3;  // DMIS from step 2
  auto dmis = perturbed_step(cfg, tc, mc, B, 37u);
  ASSERT_TRUE(dmis->estep_skipped());
  EXPECT_EQ(dmis->posterior_classifier(), nullptr);
  EXPECT_EQ(dmis->posterior_evaluations(), 0);
  EXPECT_EQ(dmis->evaluations_per_step(true), 3 * B + dmis->classifier_samples_local() * mc.top_k);
  methods::MethodConfig vc = mc;
  vc.kind = methods::MethodKind::Vanilla;
  auto vanilla = perturbed_step(cfg, tc, vc, B, 37u);
  for (int i = 0; i < 5; ++i) {
    batch.run(*dmis);
    batch.run(*vanilla);
  }
  Kokkos::fence();
  ASSERT_TRUE(dmis->dmis_active(dmis->core().step() - 1));
  EXPECT_EQ(host_vec(dmis->core().store().params), host_vec(vanilla->core().store().params))
      << "clean labels, beta 0: DMIS did not train as vanilla";
  EXPECT_EQ(host_vec(dmis->core().store().ema), host_vec(vanilla->core().store().ema));
  const auto q = host_vec(dmis->posterior());
  for (int b = 0; b < B; ++b)
    for (int y = 0; y < C; ++y)
      EXPECT_EQ(q[b * C + y], y == batch.observed[b] ? 1.f : 0.f) << "q(" << b << ", " << y << ")";
  const auto d = host_vec(dmis->diagnostics());
  EXPECT_TRUE(std::isnan(d[methods::dmis_ops::kEntropyEma])) << "an EMA classifier entropy without an E-step";
  EXPECT_EQ(d[methods::dmis_ops::kEntropyTarget], 0.f);
  EXPECT_TRUE(std::isfinite(host_vec(dmis->loss_cls())[0])) << "L_cls is still measured";
  EXPECT_EQ(host_vec(dmis->logit_scale())[0], 784.f) << "the scale moved without E-step logits";
  // where the E-step is read, it stays
  auto kept = [&](methods::MethodConfig m) {
    methods::MethodStep<Exec> s(cfg, tc, m, B);
    return !s.estep_skipped() && s.posterior_classifier() != nullptr && s.posterior_evaluations() == B * C;
  };
  methods::MethodConfig m = mc;
  m.beta = 1;  // the scale is calibrated (the default) and the classification term uses it
  EXPECT_TRUE(kept(m)) << "clean, beta 1, calibrated scale";
  m.calibrate_scale = false;
  EXPECT_FALSE(kept(m)) << "clean, beta 1, fixed scale: nothing reads the E-step";
  m = mc, m.supervision = methods::dmis_ops::Supervision::Noisy;
  EXPECT_TRUE(kept(m)) << "noisy labels, beta 0";
}

// beta 0: the classification term's forward feeds L_cls in the log alone, so it runs as the
// E-step's evaluations do: an inference network (no activations kept for a backward that never
// comes), its GEMMs in method.estep_precision. Under clean labels at beta 0 nothing else of the
// step depends on that precision (no E-step), so fp32 and bf16 train bitwise the same and L_cls
// differs by bf16's rounding alone; beta 1 keeps a training network in the step's precision.
TEST(MethodStepCost, BetaZeroRunsTheClassifierSliceAsTheEstep) {
  std::string why;
  if (!kernels::gemm_bf16_available<Exec>(&why)) GTEST_SKIP() << why;
  const auto cfg = tiny_unet();
  const int B = 8, C = 10;
  const StepBatch batch(B, C, 19u, 3, 2);
  methods::TrainStepConfig tc;
  methods::MethodConfig mc = hard_em(methods::dmis_ops::Supervision::Clean);
  mc.warmup_kimg = 2 * B / 1e3;  // DMIS from step 2
  auto fp32 = perturbed_step(cfg, tc, mc, B, 37u);
  mc.estep_precision = kernels::GemmPrecision::BF16;
  auto bf = perturbed_step(cfg, tc, mc, B, 37u);
  ASSERT_TRUE(bf->live_classifier()->net().inference_only());
  for (int i = 0; i < 4; ++i) {
    batch.run(*fp32);
    batch.run(*bf);
  }
  Kokkos::fence();
  ASSERT_TRUE(bf->dmis_active(bf->core().step() - 1));
  EXPECT_EQ(kernels::gemm_precision(), kernels::GemmPrecision::FP32) << "the step's precision was not restored";
  EXPECT_EQ(host_vec(fp32->core().store().params), host_vec(bf->core().store().params));
  const float l32 = host_vec(fp32->loss_cls())[0], l16 = host_vec(bf->loss_cls())[0];
  EXPECT_NE(l32, l16) << "L_cls bitwise fp32's: the classifier slice did not run in bf16";
  EXPECT_NEAR(l16, l32, 0.02 * std::abs(l32)) << "L_cls off by more than bf16's rounding";
  mc.beta = 1;
  methods::MethodStep<Exec> with_term(cfg, tc, mc, B);
  EXPECT_FALSE(with_term.live_classifier()->net().inference_only()) << "beta 1 needs the backward";
}

// method.cls_sigma moves the classification term's classifier alone: the posterior's EMA
// classifier stays at method.classifier_sigma (or its range up to classifier_sigma_max); at 0
// (the default) both share the posterior's levels. Vanilla has neither.
// The cost the log and the bench report: beta 0 skips the classification slice's backward
// (its forward stays, for L_cls), so the count drops by exactly that backward.
TEST(MethodStepCost, BetaZeroCountsTheClassifierSliceForwardOnly) {
  const auto cfg = tiny_unet();
  const int B = 8;
  methods::TrainStepConfig tc;
  methods::MethodConfig mc;
  mc.kind = methods::MethodKind::Dmis, mc.supervision = methods::dmis_ops::Supervision::Noisy, mc.classifier_fraction = 0.5, mc.top_k = 3;
  mc.posterior_fraction = 0.5, mc.timesteps = 2, mc.beta = 1;
  methods::MethodStep<Exec> with_term(cfg, tc, mc, B);
  mc.beta = 0;
  methods::MethodStep<Exec> without(cfg, tc, mc, B);
  ASSERT_EQ(with_term.classifier_samples_local(), 4);
  ASSERT_EQ(with_term.posterior_samples(), 4);
  EXPECT_EQ(with_term.evaluations_per_step(false), 3 * B);
  // 3B + B_w C K + 3 B_c top_k K with the term; its backward (2 B_c top_k K) gone without
  EXPECT_EQ(with_term.evaluations_per_step(true), 3 * B + 4 * 10 * 2 + 3 * 4 * 3 * 2);
  EXPECT_EQ(without.evaluations_per_step(true), 3 * B + 4 * 10 * 2 + 4 * 3 * 2);
  EXPECT_LT(without.flops_per_step(true), with_term.flops_per_step(true));
}

TEST(MethodStepClassifiers, ClsSigmaAndTheLevelRangeReachTheirClassifiers) {
  const auto cfg = tiny_unet();
  const int B = 4;
  methods::TrainStepConfig tc;
  methods::MethodConfig mc;
  mc.kind = methods::MethodKind::Dmis, mc.supervision = methods::dmis_ops::Supervision::Noisy, mc.classifier_fraction = 0.5, mc.top_k = 3;
  mc.classifier_sigma = 2.4;
  {
    methods::MethodStep<Exec> s(cfg, tc, mc, B);
    ASSERT_NE(s.live_classifier(), nullptr);
    ASSERT_NE(s.posterior_classifier(), nullptr);
    EXPECT_EQ(s.live_classifier()->config().fixed_sigma, 2.4);
    EXPECT_EQ(s.posterior_classifier()->config().fixed_sigma, 2.4);
  }
  mc.cls_sigma = 0.3;
  {
    methods::MethodStep<Exec> s(cfg, tc, mc, B);
    EXPECT_EQ(s.live_classifier()->config().fixed_sigma, 0.3);
    EXPECT_EQ(s.posterior_classifier()->config().fixed_sigma, 2.4);
    // everything else of the two classifiers is the same
    EXPECT_EQ(s.live_classifier()->config().points, s.posterior_classifier()->config().points);
    EXPECT_EQ(s.live_classifier()->config().timesteps, s.posterior_classifier()->config().timesteps);
  }
  // method.classifier_sigma_max: the posterior's K levels evenly from classifier_sigma to it,
  // weighted alike; the classification term keeps its own sigma
  mc.timesteps = 3, mc.classifier_sigma = 2, mc.classifier_sigma_max = 6;
  {
    methods::MethodStep<Exec> s(cfg, tc, mc, B);
    std::vector<double> sigma, weight;
    methods::classifier_levels(s.posterior_classifier()->config(), sigma, weight);
    ASSERT_EQ(sigma.size(), 3u);
    EXPECT_NEAR(sigma[0], 2, 1e-12);
    EXPECT_NEAR(sigma[1], 4, 1e-12);
    EXPECT_NEAR(sigma[2], 6, 1e-12);
    auto lambda = [](double x) { return (x * x + 0.25) / (x * x * 0.25); };  // sigma_data 0.5
    for (int k = 0; k < 3; ++k) EXPECT_NEAR(weight[k], lambda(sigma[k]) / 3, 1e-9) << k;
    methods::classifier_levels(s.live_classifier()->config(), sigma, weight);
    for (double x : sigma) EXPECT_EQ(x, 0.3);
  }
  mc.cls_sigma = 0;  // the term then shares the posterior's levels
  {
    methods::MethodStep<Exec> s(cfg, tc, mc, B);
    std::vector<double> sigma, weight;
    methods::classifier_levels(s.live_classifier()->config(), sigma, weight);
    EXPECT_NEAR(sigma[1], 4, 1e-12);
  }
  mc.classifier_sigma_max = 1;  // below classifier_sigma: named
  try {
    methods::MethodStep<Exec> s(cfg, tc, mc, B);
    ADD_FAILURE() << "classifier_sigma_max below classifier_sigma was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("method.classifier_sigma_max (1) must exceed method.classifier_sigma (2)"),
              std::string::npos) << e.what();
  }
  mc.classifier_sigma_max = 0;
  mc.kind = methods::MethodKind::Vanilla;
  {
    methods::MethodStep<Exec> s(cfg, tc, mc, B);
    EXPECT_EQ(s.live_classifier(), nullptr);
    EXPECT_EQ(s.posterior_classifier(), nullptr);
  }
}

// method.refine_classes: the posterior's classifier takes draw 1 over every class, a second
// classifier draws 2..K over R classes (noise of its own); the cost counts R (K - 1) per
// sample instead of C (K - 1); a configuration it cannot serve is named.
TEST(MethodStepClassifiers, RefineClassesSplitsTheDrawsAndCountsThem) {
  const auto cfg = tiny_unet();
  const int B = 4;
  methods::TrainStepConfig tc;
  methods::MethodConfig mc;
  mc.kind = methods::MethodKind::Dmis, mc.supervision = methods::dmis_ops::Supervision::Noisy;
  mc.classifier_fraction = 0.5, mc.top_k = 3, mc.beta = 0, mc.gen_extra = 0;
  mc.timesteps = 2, mc.classifier_sigma = 5;
  methods::MethodStep<Exec> full(cfg, tc, mc, B);
  EXPECT_EQ(full.refine_classifier(), nullptr);
  EXPECT_EQ(full.posterior_evaluations(), B * 10 * 2);
  mc.refine_classes = 3;
  methods::MethodStep<Exec> refined(cfg, tc, mc, B);
  ASSERT_NE(refined.refine_classifier(), nullptr);
  EXPECT_EQ(refined.posterior_classifier()->points(), 1);
  EXPECT_EQ(refined.posterior_classifier()->classes_per_image(), 10);
  EXPECT_EQ(refined.refine_classifier()->points(), 1);
  EXPECT_EQ(refined.refine_classifier()->classes_per_image(), 3);
  EXPECT_EQ(refined.refine_classifier()->config().first_draw, 1);
  EXPECT_EQ(refined.refine_classifier()->config().fixed_sigma, 5);
  EXPECT_EQ(refined.posterior_evaluations(), B * (10 + 3));
  EXPECT_EQ(full.evaluations_per_step(true) - refined.evaluations_per_step(true), B * (10 - 3));
  auto expect_named = [&](const char* what, const char* needle) {
    try {
      methods::MethodStep<Exec> s(cfg, tc, mc, B);
      ADD_FAILURE() << what << " was accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  mc.timesteps = 1;
  expect_named("one draw", "expected timesteps >= 2, found 1");
  mc.timesteps = 2, mc.classifier_sigma = 0;
  expect_named("the window's levels", "method.refine_classes: needs the draws at method.classifier_sigma");
  mc.classifier_sigma = 5, mc.refine_classes = 10;
  expect_named("every class", "expected fewer than the 10 classes");
  // K levels over [classifier_sigma, classifier_sigma_max]: draw 1 at the middle one (index
  // K / 2) over every class, the other K - 1 levels over the R classes
  mc.refine_classes = 3, mc.timesteps = 5, mc.classifier_sigma = 2, mc.classifier_sigma_max = 6;
  methods::MethodStep<Exec> levels(cfg, tc, mc, B);
  ASSERT_NE(levels.refine_classifier(), nullptr);
  EXPECT_EQ(levels.posterior_classifier()->config().sigmas, std::vector<double>({4.0}));
  EXPECT_EQ(levels.refine_classifier()->config().sigmas, std::vector<double>({2.0, 3.0, 5.0, 6.0}));
  EXPECT_EQ(levels.refine_classifier()->points(), 4);
  EXPECT_EQ(levels.refine_classifier()->config().first_draw, 1);
  EXPECT_EQ(levels.posterior_evaluations(), B * (10 + 4 * 3));
}

// The coarse-to-fine E-step over several levels: a classifier at sigmas {a} (draw 1) and one at
// {b, c} taking draws 2 and 3 give, as refine_logits combines them ((first + 2 mean) / 3), the
// logits of one classifier at {a, b, c} with draws 1-3: the levels weighed alike either way.
TEST(DmisOps, ClassifierAtExplicitSigmasSplitsIntoTheRefinedEStepsParts) {
  const models::UNetConfig net = tiny_classifier_net();
  const int B = 2, NC = 3;
  methods::ClassifierConfig all, first, rest;
  all.logit_scale = first.logit_scale = rest.logit_scale = 1;
  all.points = 3, all.sigmas = {3.0, 1.5, 6.0};
  first.points = 1, first.sigmas = {3.0};
  rest.points = 2, rest.sigmas = {1.5, 6.0}, rest.first_draw = 1;
  methods::DiffusionClassifier<Exec> ca(net, all, B, NC, true), cf(net, first, B, NC, true),
      cr(net, rest, B, NC, true);
  const auto l = classifier_logits({&ca, &cf, &cr}, 5, 31, 5, 7);
  const HostLogits la = l[0], lf = l[1], lr = l[2];
  for (int i = 0; i < B; ++i)
    for (int j = 0; j < NC; ++j)
      EXPECT_NEAR(la(i, j), (lf(i, j) + 2 * lr(i, j)) / 3, 1e-5f * std::abs(la(i, j)) + 1e-6f) << i << " " << j;
  // the levels are what was asked for, weighed lambda(sigma) / K
  std::vector<double> sg, w;
  methods::classifier_levels(all, sg, w);
  ASSERT_EQ(sg, all.sigmas);
  const double sd = all.edm.sigma_data;
  for (int k = 0; k < 3; ++k)
    EXPECT_NEAR(w[k], (sg[k] * sg[k] + sd * sd) / (sg[k] * sd * sg[k] * sd) / 3, 1e-12);
  methods::ClassifierConfig bad = all;
  bad.points = 2;
  EXPECT_THROW(methods::classifier_levels(bad, sg, w), InputError);
}

// The deck's spellings of the method choices, both ways, and the error for anything else: the
// plan parses each once (make_plan), so its message is what a user sees for a bad value that
// reaches it.
TEST(MethodChoices, SpellingsRoundTripAndBadValuesNameTheKey) {
  using namespace methods;
  for (auto k : {MethodKind::Vanilla, MethodKind::Dmis, MethodKind::Ambient, MethodKind::Diffem})
    EXPECT_EQ(parse_choice<MethodKind>(name_of(k), "method.name"), k);
  for (auto k : {TransitionMode::Estimate, TransitionMode::Fixed, TransitionMode::Known})
    EXPECT_EQ(parse_choice<TransitionMode>(name_of(k), "method.transition"), k);
  for (auto k : {dmis_ops::Supervision::Clean, dmis_ops::Supervision::Noisy,
                 dmis_ops::Supervision::Partial, dmis_ops::Supervision::Unlabeled})
    EXPECT_EQ(parse_choice<dmis_ops::Supervision>(name_of(k), "supervision.kind"), k);
  EXPECT_STREQ(name_of(GenObjective::Mixture), "mixture");
  EXPECT_STREQ(name_of(NoisyTarget::Elr), "elr");
  EXPECT_STREQ(name_of(ClsPush::Pull), "pull");
  EXPECT_STREQ(name_of(PriorMode::Estimate), "estimate");
  try {
    parse_choice<TransitionMode>("learned", "method.transition");
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "method.transition: expected estimate, fixed or known, found 'learned'");
  }
  try {
    parse_choice<GenObjective>("Sample", "method.gen_objective");
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_STREQ(e.what(), "method.gen_objective: expected sample or mixture, found 'Sample'");
  }
}

// A MethodStep is one step of vanilla, dmis or ambient; diffem is a pipeline of runs.
TEST(MethodChoices, DiffemIsNotAStep) {
  methods::MethodConfig mc;
  mc.kind = methods::MethodKind::Diffem;
  auto net = models::UNetConfig::from_preset("unet-s");
  net.base = 8, net.mults = {1}, net.n_blocks = 1, net.attn_res = {}, net.groups = 4;
  try {
    methods::MethodStep<Kokkos::DefaultExecutionSpace> step(net, methods::TrainStepConfig{}, mc, 2);
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("diffem is a pipeline"), std::string::npos) << e.what();
  }
}

}  // namespace
