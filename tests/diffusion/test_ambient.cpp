// Ambient Diffusion pieces (spec/method.md section 5): the masked network input, a training loss
// that sees only observed pixels, the fixed further mask of each image, the sampler's masks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "diffusion/edm.hpp"
#include "diffusion/sampler.hpp"
#include "methods/method_step.hpp"

namespace {
using namespace dmis;
using Exec = Kokkos::DefaultExecutionSpace;
template <class T>
using DView = Kokkos::View<T, Kokkos::LayoutRight, Exec::memory_space>;

template <class V>
std::vector<float> host(const V& v) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), v);
  return std::vector<float>(h.data(), h.data() + h.span());
}
template <class V>
void upload(const V& v, const std::vector<float>& src) {
  auto h = Kokkos::create_mirror_view(v);
  for (size_t i = 0; i < src.size(); ++i) h.data()[i] = src[i];
  Kokkos::deep_copy(v, h);
}

// A pseudo-random pattern in [-1, 1], and a 0/1 mask keeping about `keep`.
std::vector<float> pattern(size_t n, uint32_t s) {
  std::vector<float> v(n);
  for (auto& x : v) {
    s = s * 1664525u + 1013904223u;
    x = (s >> 8) / 8388608.0f - 1.0f;
  }
  return v;
}
std::vector<float> mask_of(size_t n, uint32_t s, float keep) {
  auto v = pattern(n, s);
  for (auto& x : v) x = (x + 1) / 2 < keep ? 1.f : 0.f;
  return v;
}

TEST(Ambient, MaskedInputScalesTheSeenPixelsAndAppendsTheMask) {
  const int B = 3, C = 2, H = 5, W = 4, n = C * H * W;
  DView<float****> x("x", B, C, H, W), mask("mask", B, 1, H, W), xm("xm", B, C, H, W),
      net_in("net_in", B, C + 1, H, W);
  DView<float*> sigma("sigma", B), c_noise("c_noise", B);
  const auto hx = pattern(B * n, 1), hm = mask_of(B * H * W, 2, 0.5f);
  const std::vector<float> hs = {0.1f, 1.f, 20.f};
  upload(x, hx);
  upload(mask, hm);
  upload(sigma, hs);
  diffusion::EdmConfig cfg;
  diffusion::Edm<Exec, float>::masked_input(Exec(), cfg, x, mask, sigma, xm, net_in, c_noise);
  const auto gxm = host(xm), gin = host(net_in), gcn = host(c_noise);
  for (int b = 0; b < B; ++b) {
    const double c_in = 1 / std::sqrt(hs[b] * hs[b] + cfg.sigma_data * cfg.sigma_data);
    EXPECT_NEAR(gcn[b], std::log(hs[b]) / 4, 1e-6);
    for (int c = 0; c <= C; ++c)
      for (int p = 0; p < H * W; ++p) {
        const float m = hm[b * H * W + p];
        const float got = gin[(b * (C + 1) + c) * H * W + p];
        if (c == C) {
          ASSERT_EQ(got, m);
          continue;
        }
        const float want = m * hx[(b * C + c) * H * W + p];
        ASSERT_EQ(gxm[(b * C + c) * H * W + p], want);
        ASSERT_NEAR(got, c_in * want, 1e-6);
      }
  }
}

TEST(Ambient, UnseenPixelsKeepTheirPredictionAsSigmaVanishes) {
  // D = m (c_skip x + c_out F) + (1 - m) sigma_d F, and the backward applies the same factors
  const int B = 2, C = 1, H = 3, W = 4, n = C * H * W;
  DView<float****> x("x", B, C, H, W), F("F", B, C, H, W), D("D", B, C, H, W), mask("m", B, 1, H, W),
      ones("ones", B, C, H, W), dF("dF", B, C, H, W), coef("coef", B, C, H, W);
  DView<float*> sigma("sigma", B);
  const auto hx = pattern(B * n, 3), hF = pattern(B * n, 4), hm = mask_of(B * H * W, 5, 0.5f);
  const std::vector<float> hs = {0.002f, 3.f};
  upload(x, hx);
  upload(F, hF);
  upload(mask, hm);
  upload(sigma, hs);
  Kokkos::deep_copy(ones, 1.0f);
  diffusion::EdmConfig cfg;
  using Edm = diffusion::Edm<Exec, float>;
  Edm::denoise(Exec(), cfg, F, x, sigma, D, mask);
  const auto gD = host(D);
  const double sd = cfg.sigma_data;
  for (int b = 0; b < B; ++b) {
    const double s = hs[b], q = s * s + sd * sd, c_skip = sd * sd / q, c_out = s * sd / std::sqrt(q);
    for (int i = 0; i < n; ++i) {
      const size_t r = b * n + i;
      const double want = hm[b * H * W + i % (H * W)] > 0 ? c_skip * hx[r] + c_out * hF[r] : sd * hF[r];
      ASSERT_NEAR(gD[r], want, 1e-6) << "b " << b << " i " << i;
    }
  }
  // at sigma = 0.002 an unseen pixel's prediction is sigma_d F, not ~0.004 F
  // backward: dF = dD * (the factor of F in D): with x = 0, D(F = 1) is that factor
  DView<float****> zero("zero", B, C, H, W);
  Edm::denoise(Exec(), cfg, ones, zero, sigma, coef, mask);
  Edm::denoise_backward(Exec(), cfg, ones, sigma, dF, mask);
  EXPECT_EQ(host(coef), host(dF));
}

models::UNetConfig tiny_ambient_net() {
  auto c = models::UNetConfig::from_preset("unet-s");
  c.base = 8;
  c.mults = {1, 2};
  c.n_blocks = 1;
  c.attn_res = {};
  c.groups = 4;
  c.resolution = 8;
  c.in_channels = 2;  // image + mask
  c.out_channels = 1;
  return c;
}

// A batch on the device: observations x0 (B, 1, R, R), masks, labels (one-hot candidates, all
// labelled) and dataset indices.
struct Batch {
  DView<float****> x, mask;
  DView<int*> obs, idx;
  DView<uint8_t**> cand;
  DView<uint8_t*> lab;
  Batch(int B, int R, const std::vector<float>& x0, const std::vector<float>& A,
        const std::vector<int>& index, const std::vector<int>& labels)
      : x("x0", B, 1, R, R), mask("mask", B, 1, R, R), obs("obs", B), idx("idx", B),
        cand("cand", B, 10), lab("lab", B) {
    upload(x, x0);
    upload(mask, A);
    auto hi = Kokkos::create_mirror_view(idx);
    auto ho = Kokkos::create_mirror_view(obs);
    auto hc = Kokkos::create_mirror_view(cand);
    auto hl = Kokkos::create_mirror_view(lab);
    for (int b = 0; b < B; ++b) {
      hi(b) = index[b];
      ho(b) = labels[b];
      hl(b) = 1;
      for (int k = 0; k < 10; ++k) hc(b, k) = k == labels[b];
    }
    Kokkos::deep_copy(idx, hi);
    Kokkos::deep_copy(obs, ho);
    Kokkos::deep_copy(cand, hc);
    Kokkos::deep_copy(lab, hl);
  }
};

// Loss and gradients of one Ambient step on observation x0 with seen-pixel mask A.
struct StepResult {
  std::vector<float> loss, grads, sigma;
  float mean_loss = 0;
};
struct StepOptions {
  bool unit = true;           // TrainStepConfig::hidden_unit_weight
  bool loss_on_tilde = false;  // the loss mask is the input mask Ã instead of A (no hidden pixel)
  long perturb = -1;          // a parameter to move by h before the step (finite differences)
  float h = 0;
};
StepResult ambient_step(const std::vector<float>& x0, const std::vector<float>& A,
                        const std::vector<int>& index, const StepOptions& o = {}) {
  const int B = 4, R = 8;
  methods::TrainStepConfig tc;
  tc.hidden_unit_weight = o.unit;
  methods::MethodConfig mc;
  mc.kind = methods::MethodKind::Ambient;
  mc.delta = 0.2;
  methods::MethodStep<Exec> step(tiny_ambient_net(), tc, mc, B);
  step.initialize(models::InitScheme::Adm);
  auto& core = step.core();
  if (o.perturb >= 0) {
    auto p = Kokkos::subview(core.store().params, std::make_pair(o.perturb, o.perturb + 1));
    auto hp = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), p);
    hp(0) += o.h;
    Kokkos::deep_copy(p, hp);
  }
  const Batch in(B, R, x0, A, index, {0, 1, 2, 3});
  const auto& x = in.x;
  const auto& mask = in.mask;
  const auto& idx = in.idx;
  const auto& obs = in.obs;
  // the step's pieces, so that the gradients can be read before the optimizer uses them
  core.begin(Exec());
  DView<float****> tilde("tilde", B, 1, R, R);
  step.further_mask(Exec(), mask, idx, tilde);
  core.sample_inputs(Exec(), x, tilde);
  core.generative_loss(Exec(), x, Tensor1<const int, Exec>(obs.data(), B), Tensor1<const float, Exec>(),
                       Tensor4<const float, Exec>(), 1.f,
                       o.loss_on_tilde ? Tensor4<const float, Exec>(tilde) : Tensor4<const float, Exec>(mask));
  return {host(core.per_sample_loss()), host(core.store().grads), host(core.sigma()),
          host(core.loss())[0]};
}

TEST(Ambient, LossAndGradientsIgnoreUnseenPixels) {
  const int B = 4, n = B * 8 * 8;
  const auto A = mask_of(n, 5, 0.3f);
  auto x0 = pattern(n, 6);
  for (int i = 0; i < n; ++i) x0[i] *= A[i];  // an observation: 0 where missing
  const std::vector<int> index = {17, 3, 250, 9};
  const StepResult a = ambient_step(x0, A, index);
  // whatever stands at unseen pixels has no effect
  auto other = x0;
  for (int i = 0; i < n; ++i)
    if (A[i] == 0.f) other[i] = 0.9f;
  const StepResult b = ambient_step(other, A, index);
  EXPECT_EQ(a.loss, b.loss);
  EXPECT_EQ(a.grads, b.grads);
  double g2 = 0;
  for (float g : a.grads) g2 += double(g) * g;
  EXPECT_GT(g2, 0);
  // a seen pixel does
  int seen = 0;
  while (A[seen] == 0.f) ++seen;
  other = x0;
  other[seen] += 0.5f;
  const StepResult c = ambient_step(other, A, index);
  EXPECT_NE(a.loss[0], c.loss[0]);
}

// A pixel the observation has but the further mask hid (A = 1, Ã = 0) is predicted as
// sigma_data F with no skip term; its inpainting error does not shrink with sigma, so EDM's
// lambda(sigma) would weigh it ~1 / sigma^2. It gets EDM's unit weight on F instead:
// loss = S + g^2 H with g = c_out / sigma_data, where S is the seen pixels' part and H the hidden
// pixels' part under lambda(sigma). S is measured with the loss mask Ã (no hidden pixel), H from
// the run with lambda(sigma) everywhere (method.hidden_weight: edm).
TEST(Ambient, HiddenPixelsGetUnitWeightOnTheNetworkOutput) {
  const int B = 4, n = B * 8 * 8;
  const auto A = mask_of(n, 5, 0.5f);
  auto x0 = pattern(n, 6);
  for (int i = 0; i < n; ++i) x0[i] *= A[i];
  const std::vector<int> index = {17, 3, 250, 9};
  const StepResult edm = ambient_step(x0, A, index, {false});
  const StepResult unit = ambient_step(x0, A, index, {true});
  const StepResult seen = ambient_step(x0, A, index, {true, true});
  const double sd = 0.5;
  for (int b = 0; b < B; ++b) {
    SCOPED_TRACE(b);
    const double s = edm.sigma[b], g2 = s * s / (s * s + sd * sd);
    const double S = seen.loss[b], H = edm.loss[b] - S;
    EXPECT_GT(H, 1e-3 * S);  // the sample has hidden pixels with an error
    EXPECT_NEAR(unit.loss[b], S + g2 * H, 1e-4 * (S + H));
  }
}

// The gradient of the weighted loss against central finite differences of the mean loss, on the
// parameters with the largest gradients.
TEST(Ambient, HiddenPixelWeightGradientMatchesFiniteDifferences) {
  const int n = 4 * 8 * 8;
  const auto A = mask_of(n, 7, 0.5f);
  auto x0 = pattern(n, 8);
  for (int i = 0; i < n; ++i) x0[i] *= A[i];
  const std::vector<int> index = {5, 40, 41, 1000};
  const StepResult base = ambient_step(x0, A, index);
  std::vector<long> order(base.grads.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<long>(i);
  std::partial_sort(order.begin(), order.begin() + 6, order.end(), [&](long a, long b) {
    return std::abs(base.grads[a]) > std::abs(base.grads[b]);
  });
  for (int k = 0; k < 6; ++k) {
    const long i = order[k];
    const float h = 1e-3f;
    const StepResult up = ambient_step(x0, A, index, {true, false, i, h});
    const StepResult down = ambient_step(x0, A, index, {true, false, i, -h});
    const double fd = (double(up.mean_loss) - down.mean_loss) / (2.0 * h);
    SCOPED_TRACE(i);
    EXPECT_NEAR(fd, base.grads[i], 2e-2 * std::abs(base.grads[i]) + 1e-4);
  }
}

// One full DMIS step with Ambient's masked objective (noisy labels and missing pixels): the
// parameters after it, from the same start, for an observation x0 with seen-pixel mask A.
std::vector<float> combined_step(const std::vector<float>& x0, const std::vector<float>& A,
                                 double* loss_cls = nullptr) {
  const int B = 8, R = 8;
  methods::TrainStepConfig tc;
  tc.global_batch = B;
  methods::MethodConfig mc;
  mc.kind = methods::MethodKind::Dmis;
  mc.ambient = true;
  mc.supervision = methods::dmis_ops::Supervision::Noisy;
  mc.classifier_fraction = 0.5;
  mc.top_k = 3;
  mc.gen_extra = 1;
  methods::MethodStep<Exec> step(tiny_ambient_net(), tc, mc, B);
  step.initialize(models::InitScheme::Adm);
  std::vector<int> index(B), labels(B);
  for (int b = 0; b < B; ++b) index[b] = 100 + 7 * b, labels[b] = (3 * b) % 10;
  const Batch in(B, R, x0, A, index, labels);
  EXPECT_TRUE(step.dmis_active(0));
  step.run(Exec(), in.x, in.obs, in.cand, in.lab, in.mask, in.idx);
  if (loss_cls) *loss_cls = host(step.loss_cls())[0];
  return host(step.core().store().params);
}

TEST(Ambient, CombinedDmisStepIgnoresUnseenPixels) {
  const int n = 8 * 8 * 8;
  const auto A = mask_of(n, 11, 0.4f);
  auto x0 = pattern(n, 12);
  for (int i = 0; i < n; ++i) x0[i] *= A[i];
  double cls = 0;
  const auto a = combined_step(x0, A, &cls);
  EXPECT_TRUE(std::isfinite(cls) && cls > 0) << cls;
  auto other = x0;
  for (int i = 0; i < n; ++i)
    if (A[i] == 0.f) other[i] = -0.7f;
  EXPECT_EQ(a, combined_step(other, A)) << "unseen pixels changed the DMIS + Ambient step";
  int seen = 0;
  while (A[seen] == 0.f) ++seen;
  other = x0;
  other[seen] += 0.5f;
  EXPECT_NE(a, combined_step(other, A));
}

TEST(Ambient, FurtherMaskIsFixedPerImageAndDropsDelta) {
  const int B = 6, R = 28, hw = R * R;
  methods::TrainStepConfig tc;
  methods::MethodConfig mc;
  mc.kind = methods::MethodKind::Ambient;
  mc.delta = 0.25;
  auto net = tiny_ambient_net();
  net.resolution = R;
  methods::MethodStep<Exec> step(net, tc, mc, B);
  DView<float****> mask("mask", B, 1, R, R), out("out", B, 1, R, R);
  DView<int*> idx("idx", B);
  const auto hm = mask_of(B * hw, 9, 0.6f);
  upload(mask, hm);
  auto hi = Kokkos::create_mirror_view(idx);
  const std::vector<int> images = {0, 1, 2, 3, 4, 0};  // image 0 twice
  for (int b = 0; b < B; ++b) hi(b) = images[b];
  Kokkos::deep_copy(idx, hi);
  step.further_mask(Exec(), mask, idx, out);
  const auto ho = host(out);
  double kept = 0, seen = 0;
  for (int i = 0; i < B * hw; ++i) {
    ASSERT_LE(ho[i], hm[i]) << "a pixel missing from the observation was shown";
    seen += hm[i];
    kept += ho[i];
  }
  EXPECT_NEAR(kept / seen, 0.75, 0.03);  // ~2800 seen pixels
  // the same image draws the same further mask (given the same observation mask)
  upload(mask, std::vector<float>(B * hw, 1.f));
  step.further_mask(Exec(), mask, idx, out);
  const auto full = host(out);
  EXPECT_TRUE(std::equal(full.begin(), full.begin() + hw, full.begin() + 5 * hw));
  EXPECT_FALSE(std::equal(full.begin(), full.begin() + hw, full.begin() + hw));
}

TEST(Ambient, SamplerMasksKeepTheirShare) {
  const int B = 8, R = 28;
  DView<float****> m("m", B, 1, R, R);
  diffusion::ambient_masks<Exec>(Exec(), 3, 0.09, 100, m);
  const auto hm = host(m);
  double kept = 0;
  for (float v : hm) kept += v;
  EXPECT_NEAR(kept / hm.size(), 0.09, 0.015);  // 6272 draws: sd 0.0036
  // keyed by the global sample index: the batch starting at 101 is this one shifted by one
  DView<float****> m2("m2", B, 1, R, R);
  diffusion::ambient_masks<Exec>(Exec(), 3, 0.09, 101, m2);
  const auto hm2 = host(m2);
  EXPECT_TRUE(std::equal(hm.begin() + R * R, hm.end(), hm2.begin()));
}

}  // namespace
