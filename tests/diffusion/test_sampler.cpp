// The EDM Heun sampler: the sigma schedule, the algorithm against a double-precision host
// reference, the sampled distribution against the exact one for Gaussian data (deterministic and
// stochastic), classifier-free guidance, determinism and batch-split invariance, the Kokkos Tools
// hot-path check, and a smoke run through a real UNet.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>
#include <vector>

#include "core/error.hpp"
#include "diffusion/sampler.hpp"
#include "harness/exec_spaces.hpp"
#include "harness/tensor.hpp"
#include "harness/tools_counters.hpp"
#include "models/unet.hpp"

namespace {

using namespace dmis;
using namespace dmis::test;
using diffusion::Denoiser;
using diffusion::HeunSampler;
using diffusion::SamplerConfig;

template <class E> using DevF = Kokkos::View<float*, Kokkos::LayoutRight, DeviceOf<E>>;
template <class E> using DevI = Kokkos::View<int*, Kokkos::LayoutRight, DeviceOf<E>>;

// ---- the analytic model: x0 ~ N(mu_y, s^2) per pixel ------------------------------------------

/// D (B, n) = (s^2 x + sigma^2 mu[label]) / (s^2 + sigma^2): the exact denoiser of Gaussian data
/// with mean mu[label] and variance s^2. Copies x into `capture` when it is not empty.
template <class E>
void gaussian_denoise(const E& exec, const DevF<E>& mu, float s2, const Tensor4<const float, E>& x,
                      const Tensor1<const float, E>& sigma, const Tensor1<const int, E>& labels,
                      const Tensor4<float, E>& D, const DevF<E>& capture) {
  const int B = x.extent(0), n = x.extent(1) * x.extent(2) * x.extent(3);
  const bool cap = capture.extent(0) == static_cast<size_t>(B) * n;
  Kokkos::parallel_for(
      "dmis::test::gaussian_denoiser", Kokkos::RangePolicy<E>(exec, 0, static_cast<size_t>(B) * n),
      KOKKOS_LAMBDA(size_t r) {
        const int b = static_cast<int>(r / n), i = static_cast<int>(r % n);
        const float s = sigma(b), xv = (&x(b, 0, 0, 0))[i];
        (&D(b, 0, 0, 0))[i] = (s2 * xv + s * s * mu(labels(b))) / (s2 + s * s);
        if (cap)
          capture(r) = xv;
      });
}

template <class E> struct GaussianModel {
  DevF<E> mu;     // (K + 1) class means; row K: unconditional
  float s = 0.5f; // per-pixel standard deviation of the data
  std::shared_ptr<int> calls = std::make_shared<int>(0);
  DevF<E> first_x; // x of the first call, when sized (B * n)

  GaussianModel(const std::vector<float>& means, float sd) : s(sd) {
    mu = DevF<E>("dmis::test::mu", means.size());
    auto h = Kokkos::create_mirror_view(mu);
    for (size_t k = 0; k < means.size(); ++k)
      h(k) = means[k];
    Kokkos::deep_copy(mu, h);
  }
  Denoiser<E> denoiser() const {
    const DevF<E> m = mu, cap = first_x;
    const float s2 = s * s;
    const std::shared_ptr<int> n = calls;
    return [m, cap, s2, n](const E& exec, const Tensor4<const float, E>& x,
                           const Tensor1<const float, E>& sigma,
                           const Tensor1<const int, E>& labels, const Tensor4<float, E>& D) {
      gaussian_denoise<E>(exec, m, s2, x, sigma, labels, D, *n == 0 ? cap : DevF<E>());
      ++*n;
    };
  }
};

/// One Heun step of Algorithm 2 in double for a scalar x_hat and a denoiser D(x, sigma).
template <class F> double heun_step(double xh, double sh, double sn, const F& D) {
  const double d = (xh - D(xh, sh)) / sh, xn = xh + (sn - sh) * d;
  if (sn == 0)
    return xn;
  const double d2 = (xn - D(xn, sn)) / sn;
  return xh + (sn - sh) * (0.5 * d + 0.5 * d2);
}

double gamma_of(const SamplerConfig& cfg, double sigma) {
  return (cfg.s_tmin <= sigma && sigma <= cfg.s_tmax)
             ? std::min(cfg.churn / cfg.steps, std::sqrt(2.0) - 1)
             : 0.0;
}

/// Mean and standard deviation of the sampler's output for Gaussian data N(mu, s^2), exactly,
/// for this algorithm and schedule: each step is affine in x_hat and the noise is Gaussian, so
/// the moments propagate in closed form. The difference to (mu, s) is the discretisation error
/// (plus the sigma_max truncation: x_0 ~ N(0, sigma_max^2) instead of N(mu, s^2 + sigma_max^2)).
struct Moments {
  double mean, sd;
};
Moments heun_moments(const SamplerConfig& cfg, double mu, double s) {
  const auto sig = diffusion::edm_sigmas(cfg);
  auto D = [&](double x, double t) { return (s * s * x + t * t * mu) / (s * s + t * t); };
  double m = 0, v = sig[0] * sig[0];
  for (int i = 0; i < cfg.steps; ++i) {
    const double sh = sig[i] * (1 + gamma_of(cfg, sig[i]));
    v += (sh * sh - sig[i] * sig[i]) * cfg.s_noise * cfg.s_noise;
    const double c = heun_step(0.0, sh, sig[i + 1], D), a = heun_step(1.0, sh, sig[i + 1], D) - c;
    m = a * m + c;
    v = a * a * v;
  }
  return {m, std::sqrt(v)};
}

template <class V> std::vector<float> to_host(const V& v) {
  Kokkos::fence();
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), v);
  return std::vector<float>(h.data(), h.data() + h.span());
}

template <class E> DevI<E> make_labels(const std::vector<int>& labels) {
  DevI<E> d("dmis::test::labels", labels.size());
  auto h = Kokkos::create_mirror_view(d);
  for (size_t i = 0; i < labels.size(); ++i)
    h(i) = labels[i];
  Kokkos::deep_copy(d, h);
  return d;
}

/// Runs a fresh sampler of batch B on 1 x H x W images and returns the samples (host).
template <class E>
std::vector<float> sample(const SamplerConfig& cfg, const Denoiser<E>& den,
                          const std::vector<int>& labels, int uncond, uint32_t offset, int H,
                          int W) {
  const int B = static_cast<int>(labels.size());
  HeunSampler<E> sampler(B, 1, H, W);
  DevF<E> out("dmis::test::out", static_cast<size_t>(B) * H * W);
  const DevI<E> lab = make_labels<E>(labels);
  sampler.run(E(), cfg, den, lab, uncond, offset, Tensor4<float, E>(out.data(), B, 1, H, W));
  return to_host(out);
}

struct Stats {
  double mean = 0, sd = 0;
  long n = 0;
};
Stats stats(const std::vector<float>& v, int per_sample = 1, int B = 0, int stride = 1,
            int first = 0) {
  // samples first, first + stride, ... of B samples, each per_sample values
  Stats s;
  double sum = 0, sum2 = 0;
  const int nb = B ? B : static_cast<int>(v.size()) / per_sample;
  for (int b = first; b < nb; b += stride)
    for (int i = 0; i < per_sample; ++i) {
      const double x = v[static_cast<size_t>(b) * per_sample + i];
      sum += x;
      ++s.n;
    }
  s.mean = sum / s.n;
  for (int b = first; b < nb; b += stride)
    for (int i = 0; i < per_sample; ++i) {
      const double x = v[static_cast<size_t>(b) * per_sample + i] - s.mean;
      sum2 += x * x;
    }
  s.sd = std::sqrt(sum2 / (s.n - 1));
  return s;
}

/// The sample mean and sd against the exact moments of the algorithm (sampling error only:
/// 5 standard errors, mean sd/sqrt(n), sd sd/sqrt(2n)) and against the data distribution
/// (mu, s) with the discretisation error of the schedule added.
void expect_distribution(const char* what, const Stats& got, const Moments& exact, double mu,
                         double s) {
  const double se_mean = exact.sd / std::sqrt(double(got.n));
  const double se_sd = exact.sd / std::sqrt(2.0 * got.n);
  const double disc_mean = std::fabs(exact.mean - mu), disc_sd = std::fabs(exact.sd - s);
  std::printf("[%s] n=%ld: mean %.5f sd %.5f | algorithm exact mean %.5f sd %.5f | data mu %.3f "
              "s %.3f | 5 SE: mean %.5f sd %.5f | discretisation: mean %.5f sd %.5f\n",
              what, got.n, got.mean, got.sd, exact.mean, exact.sd, mu, s, 5 * se_mean, 5 * se_sd,
              disc_mean, disc_sd);
  EXPECT_NEAR(got.mean, exact.mean, 5 * se_mean) << what;
  EXPECT_NEAR(got.sd, exact.sd, 5 * se_sd) << what;
  EXPECT_NEAR(got.mean, mu, 5 * se_mean + disc_mean) << what;
  EXPECT_NEAR(got.sd, s, 5 * se_sd + disc_sd) << what;
  // the schedule itself is accurate at these step counts (this bounds the tolerance above); the
  // mean's part is mostly the sigma_max truncation, about |mu| s / sigma_max
  EXPECT_LT(disc_mean, 0.002 + 1.2 * std::fabs(mu) * s / 80) << what;
  EXPECT_LT(disc_sd, 0.015) << what;
}

// ---- the schedule ------------------------------------------------------------------------------

TEST(EdmSigmas, MatchesHandComputedSchedule) {
  SamplerConfig cfg; // N = 18, sigma in [0.002, 80], rho = 7
  const auto s = diffusion::edm_sigmas(cfg);
  ASSERT_EQ(s.size(), 19u);
  EXPECT_EQ(s[0], 80.0);
  EXPECT_DOUBLE_EQ(s[17], 0.002);
  EXPECT_EQ(s[18], 0.0);
  // (80^(1/7) + i/17 (0.002^(1/7) - 80^(1/7)))^7, computed separately in Python
  EXPECT_NEAR(s[1], 57.58598472124816, 1e-12 * 57.6);
  EXPECT_NEAR(s[2], 40.78557379650796, 1e-12 * 40.8);
  EXPECT_NEAR(s[3], 28.374584604156844, 1e-12 * 28.4);
  EXPECT_NEAR(s[16], 0.0075280199627840785, 1e-12 * 0.0075);
  for (int i = 0; i < 18; ++i)
    EXPECT_GT(s[i], s[i + 1]) << i;
  cfg.steps = 1;
  EXPECT_EQ(diffusion::edm_sigmas(cfg), (std::vector<double>{80.0, 0.0}));
}

TEST(EdmSigmas, RejectsBadConfigurations) {
  auto expect_error = [](SamplerConfig cfg, const char* field) {
    try {
      diffusion::edm_sigmas(cfg);
      ADD_FAILURE() << "no error for a bad " << field;
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(field), std::string::npos) << e.what();
    }
  };
  SamplerConfig c;
  c.steps = 0;
  expect_error(c, "steps");
  c = {};
  c.sigma_min = 0;
  expect_error(c, "sigma_min");
  c = {};
  c.sigma_max = 0.001;
  expect_error(c, "sigma_max");
  c = {};
  c.rho = 0;
  expect_error(c, "rho");
  c = {};
  c.guidance = -0.5;
  expect_error(c, "guidance");
  c = {};
  c.churn = -1;
  expect_error(c, "churn");
}

// ---- the sampler on every backend ------------------------------------------------------------

template <class E> class Sampler : public ::testing::Test {};
TYPED_TEST_SUITE(Sampler, ExecSpaces, ExecSpaceNames);

// Every element against Algorithm 2 in double, from the same initial noise (read back from the
// first denoiser call, which sees x_0 = sigma_0 n), with guidance w = 1.7.
TYPED_TEST(Sampler, MatchesHostReference) {
  using E = TypeParam;
  const int B = 6, H = 3, W = 5, n = H * W; // odd n: the last noise pair is half used
  const std::vector<float> mu{-0.4f, 0.6f, 0.1f};
  GaussianModel<E> model(mu, 0.3f);
  model.first_x = DevF<E>("dmis::test::x0", B * n);
  SamplerConfig cfg;
  cfg.steps = 12;
  cfg.guidance = 1.7;
  cfg.seed = 11;
  std::vector<int> labels{0, 1, 1, 0, 1, 0};
  const auto out = sample<E>(cfg, model.denoiser(), labels, 2, 0, H, W);
  EXPECT_EQ(*model.calls, HeunSampler<E>::denoiser_calls(cfg));
  EXPECT_EQ(*model.calls, 2 * (2 * 12 - 1));
  const auto x0 = to_host(model.first_x);
  const auto sig = diffusion::edm_sigmas(cfg);
  std::vector<double> got(out.begin(), out.end()), want(out.size());
  const double s2 = 0.09, w = cfg.guidance;
  double noise_sum2 = 0;
  for (int b = 0; b < B; ++b) {
    auto Dg = [&](double x, double t) {
      auto D = [&](double m) { return (s2 * x + t * t * m) / (s2 + t * t); };
      return D(mu[2]) + w * (D(mu[labels[b]]) - D(mu[2]));
    };
    for (int i = 0; i < n; ++i) {
      double x = x0[b * n + i];
      noise_sum2 += (x / 80) * (x / 80);
      for (int k = 0; k < cfg.steps; ++k)
        x = heun_step(x, sig[k], sig[k + 1], Dg);
      want[b * n + i] = x;
    }
  }
  EXPECT_NEAR(std::sqrt(noise_sum2 / (B * n)), 1.0, 0.35) << "x_0 = 80 n with n ~ N(0, 1)";
  EXPECT_TRUE(all_close(got, want, 1e-4, 1e-4, "samples vs host Heun"));
}

TYPED_TEST(Sampler, GaussianDataDeterministic) {
  using E = TypeParam;
  const double mu = 0.3, s = 0.5;
  GaussianModel<E> model({float(mu)}, float(s));
  SamplerConfig cfg;
  cfg.steps = 64;
  cfg.seed = 5;
  const auto out = sample<E>(cfg, model.denoiser(), std::vector<int>(2000, 0), 0, 0, 4, 4);
  expect_distribution("deterministic, 64 steps", stats(out), heun_moments(cfg, mu, s), mu, s);
}

TYPED_TEST(Sampler, GaussianDataStochastic) {
  using E = TypeParam;
  const double mu = 0.3, s = 0.5;
  GaussianModel<E> model({float(mu)}, float(s));
  SamplerConfig cfg;
  cfg.steps = 64;
  cfg.churn = 40;
  cfg.s_tmin = 0.05;
  cfg.s_tmax = 50;
  cfg.s_noise = 1.003;
  cfg.seed = 6;
  const auto out = sample<E>(cfg, model.denoiser(), std::vector<int>(2000, 0), 0, 1000, 4, 4);
  expect_distribution("churn 40 in [0.05, 50], 64 steps", stats(out), heun_moments(cfg, mu, s), mu,
                      s);
  // the churn did something: the same seed without churn gives different samples
  SamplerConfig plain = cfg;
  plain.churn = 0;
  const auto det = sample<E>(plain, model.denoiser(), std::vector<int>(2000, 0), 0, 1000, 4, 4);
  EXPECT_NE(det, out);
}

// sample.clip_denoised: every D is clamped to [-1, 1]. For data N(3, 0.05^2) the plain sampler
// ends near 3; with clipping the last output, which is the sample, lies in [-1, 1] (and reaches
// the bound, since the unclipped D is above it).
TYPED_TEST(Sampler, ClipDenoisedKeepsSamplesInTheDataRange) {
  using E = TypeParam;
  GaussianModel<E> model({3.0f}, 0.05f);
  SamplerConfig cfg;
  cfg.steps = 16;
  cfg.seed = 9;
  const auto plain = sample<E>(cfg, model.denoiser(), std::vector<int>(200, 0), 0, 0, 2, 2);
  EXPECT_NEAR(stats(plain).mean, 3.0, 0.05);
  cfg.clip_denoised = true;
  const auto clipped = sample<E>(cfg, model.denoiser(), std::vector<int>(200, 0), 0, 0, 2, 2);
  const auto [lo, hi] = std::minmax_element(clipped.begin(), clipped.end());
  EXPECT_GE(*lo, -1.0f);
  EXPECT_LE(*hi, 1.0f + 1e-6f);
  EXPECT_NEAR(*hi, 1.0f, 1e-3f);
}

// Guidance with class means mu_y and the unconditional mean mu_u: D_w is the exact denoiser of
// N(mu_u + w (mu_y - mu_u), s^2), so w = 0 gives the unconditional model and w > 1 moves each
// class further from mu_u.
TYPED_TEST(Sampler, ClassifierFreeGuidance) {
  using E = TypeParam;
  const std::vector<float> mu{-0.4f, 0.6f, 0.1f}; // class 0, class 1, unconditional (K = 2)
  const float s = 0.3f;
  GaussianModel<E> model(mu, s);
  std::vector<int> labels(2000);
  for (size_t b = 0; b < labels.size(); ++b)
    labels[b] = static_cast<int>(b % 2);
  SamplerConfig cfg;
  cfg.steps = 40;
  cfg.seed = 3;
  const auto plain = sample<E>(cfg, model.denoiser(), labels, 2, 0, 4, 4);
  *model.calls = 0;
  cfg.guidance = 1;
  const auto w1 = sample<E>(cfg, model.denoiser(), labels, 7, 0, 4, 4); // uncond never used
  EXPECT_EQ(*model.calls, 2 * 40 - 1) << "w = 1 must not evaluate the unconditional model";
  EXPECT_EQ(w1, plain) << "w = 1 must equal the plain conditional sampler bitwise";

  for (double w : {0.0, 1.0, 2.5}) {
    cfg.guidance = w;
    const auto out = sample<E>(cfg, model.denoiser(), labels, 2, 0, 4, 4);
    for (int y = 0; y < 2; ++y) {
      const double target = mu[2] + w * (mu[y] - mu[2]);
      const Stats st = stats(out, 16, 2000, 2, y);
      char what[64];
      std::snprintf(what, sizeof what, "guidance w=%.1f class %d", w, y);
      expect_distribution(what, st, heun_moments(cfg, target, s), target, s);
      if (w > 1) {
        const Stats st1 = stats(plain, 16, 2000, 2, y);
        EXPECT_GT(std::fabs(st.mean - mu[2]), std::fabs(st1.mean - mu[2]) + 0.2)
            << "w = " << w << " must push class " << y << " away from the unconditional mean";
      }
    }
  }
}

TYPED_TEST(Sampler, DeterministicAndIndependentOfBatchSplit) {
  using E = TypeParam;
  GaussianModel<E> model({-0.4f, 0.6f, 0.1f}, 0.3f);
  SamplerConfig cfg;
  cfg.steps = 8;
  cfg.churn = 10; // churn noise at every step
  cfg.guidance = 2;
  cfg.seed = 42;
  const std::vector<int> labels{0, 1, 1, 0, 0, 1, 0, 1};
  const int H = 5, W = 5;
  const auto a = sample<E>(cfg, model.denoiser(), labels, 2, 0, H, W);
  const auto b = sample<E>(cfg, model.denoiser(), labels, 2, 0, H, W);
  EXPECT_EQ(a, b) << "same seed, same samples";
  for (float v : a)
    ASSERT_TRUE(std::isfinite(v));

  SamplerConfig other = cfg;
  other.seed = 43;
  const auto c = sample<E>(other, model.denoiser(), labels, 2, 0, H, W);
  size_t differ = 0;
  for (size_t i = 0; i < a.size(); ++i)
    differ += a[i] != c[i];
  EXPECT_GT(differ, a.size() * 9 / 10) << "another seed, other samples";

  const std::vector<int> first(labels.begin(), labels.begin() + 4),
      second(labels.begin() + 4, labels.end());
  auto split = sample<E>(cfg, model.denoiser(), first, 2, 0, H, W);
  const auto rest = sample<E>(cfg, model.denoiser(), second, 2, 4, H, W);
  split.insert(split.end(), rest.begin(), rest.end());
  EXPECT_EQ(split, a) << "two runs of 4 (offsets 0, 4) must equal one run of 8";
}

TYPED_TEST(Sampler, RejectsBadInputs) {
  using E = TypeParam;
  GaussianModel<E> model({0.f}, 0.5f);
  HeunSampler<E> sampler(4, 1, 2, 2);
  DevF<E> out("dmis::test::out", 4 * 4);
  const DevI<E> labels = make_labels<E>({0, 0, 0, 0});
  SamplerConfig cfg;
  cfg.steps = 0;
  EXPECT_THROW(sampler.run(E(), cfg, model.denoiser(), labels, 0, 0,
                           Tensor4<float, E>(out.data(), 4, 1, 2, 2)),
               InputError);
  cfg.steps = 4;
  EXPECT_THROW(sampler.run(E(), cfg, model.denoiser(), labels, 0, 0,
                           Tensor4<float, E>(out.data(), 2, 2, 2, 2)),
               ShapeError);
  EXPECT_THROW(sampler.run(E(), cfg, model.denoiser(), Tensor1<const int, E>(labels.data(), 3), 0,
                           0, Tensor4<float, E>(out.data(), 4, 1, 2, 2)),
               ShapeError);
}

// run() after the constructor: no allocation, deep copy or fence, and only dmis:: kernels.
// (Kokkos 3.4 reports no fences to tools; Kokkos 4 does, and then this checks them too.)
TYPED_TEST(Sampler, RunAllocatesCopiesAndFencesNothing) {
  using E = TypeParam;
  GaussianModel<E> model({-0.4f, 0.6f, 0.1f}, 0.3f);
  const int B = 4;
  HeunSampler<E> sampler(B, 3, 4, 4);
  DevF<E> out("dmis::test::out", B * 3 * 16);
  const DevI<E> labels = make_labels<E>({0, 1, 0, 1});
  const Denoiser<E> den = model.denoiser();
  SamplerConfig cfg;
  cfg.steps = 6;
  cfg.churn = 5;
  cfg.guidance = 1.5;
  Kokkos::fence();
  ToolRecorder recorder;
  recorder.start();
  sampler.run(E(), cfg, den, labels, 2, 0, Tensor4<float, E>(out.data(), B, 3, 4, 4));
  recorder.stop();
  Kokkos::fence();
  const auto& ev = recorder.events();
  EXPECT_TRUE(ev.allocations.empty()) << "allocations: " << join(ev.allocations);
  EXPECT_TRUE(ev.deep_copies.empty()) << "deep copies: " << join(ev.deep_copies);
  EXPECT_TRUE(ev.fences.empty()) << "fences: " << join(ev.fences);
  EXPECT_TRUE(foreign_labels(ev.kernels).empty())
      << "labels without the dmis:: prefix: " << join(foreign_labels(ev.kernels));
  for (const char* k :
       {"dmis::sampler::initial_noise", "dmis::sampler::churn", "dmis::sampler::fill_labels",
        "dmis::sampler::fill_sigma", "dmis::sampler::guidance", "dmis::sampler::euler",
        "dmis::sampler::heun", "dmis::sampler::euler_last"})
    EXPECT_NE(std::find(ev.kernels.begin(), ev.kernels.end(), k), ev.kernels.end()) << k;
}

// A real network: unet-s with random (PyTorch-default) weights, B = 2, 4 steps with guidance.
TYPED_TEST(Sampler, UNetSmoke) {
  using E = TypeParam;
  E exec;
  const auto ncfg = models::UNetConfig::from_preset("unet-s");
  models::UNet<E, float> net(ncfg);
  const int B = 2, R = ncfg.resolution;
  net.prepare(B, 0, /*inference_only=*/true);
  DevF<E> params("dmis::test::params", net.table().total());
  models::init_params<E, float>(exec, ncfg, net.table(),
                                Tensor1<float, E>(params.data(), params.extent(0)), 7,
                                models::InitScheme::Torch);
  const Denoiser<E> den = diffusion::unet_denoiser<E>(
      net, Tensor1<const float, E>(params.data(), params.extent(0)), diffusion::EdmConfig{});
  HeunSampler<E> sampler(B, ncfg.in_channels, R, R);
  DevF<E> out("dmis::test::out", static_cast<size_t>(B) * ncfg.in_channels * R * R);
  const Tensor4<float, E> o(out.data(), B, ncfg.in_channels, R, R);
  const DevI<E> labels = make_labels<E>({3, 8});
  SamplerConfig cfg;
  cfg.steps = 4;
  cfg.guidance = 1.5;
  sampler.run(exec, cfg, den, labels, ncfg.classes, 0, o);
  const auto first = to_host(out);
  ASSERT_EQ(first.size(), static_cast<size_t>(B) * ncfg.in_channels * R * R);
  double sum2 = 0;
  for (float v : first) {
    ASSERT_TRUE(std::isfinite(v));
    sum2 += double(v) * v;
  }
  EXPECT_GT(sum2, 0.0);
  EXPECT_NE(std::vector<float>(first.begin(), first.begin() + R * R),
            std::vector<float>(first.begin() + R * R, first.end()));

  // the second run through the network too: nothing allocated, copied or fenced, same samples
  ToolRecorder recorder;
  recorder.start();
  sampler.run(exec, cfg, den, labels, ncfg.classes, 0, o);
  recorder.stop();
  Kokkos::fence();
  const auto& ev = recorder.events();
  EXPECT_TRUE(ev.allocations.empty()) << "allocations: " << join(ev.allocations);
  EXPECT_TRUE(ev.deep_copies.empty()) << "deep copies: " << join(ev.deep_copies);
  EXPECT_TRUE(ev.fences.empty()) << "fences: " << join(ev.fences);
  EXPECT_TRUE(foreign_labels(ev.kernels).empty())
      << "labels without the dmis:: prefix: " << join(foreign_labels(ev.kernels));
  EXPECT_EQ(to_host(out), first);
}

} // namespace
