// DiffEM's PPCA start (src/train/ppca.hpp) on data drawn from a known rank-3 Gaussian with 60 %
// of the pixels missing: the fitted posterior mean is as good as the posterior mean under the
// true parameters (computed here on the host, independently), the noise variance is recovered,
// a posterior draw has about twice the mean's error (what a draw from the right posterior has),
// observed values are kept, and a seed fixes the draws.
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <random>
#include <vector>

#include "core/error.hpp"
#include "train/ppca.hpp"

namespace dmis::test {
namespace {

struct Problem {
  int N = 600, C = 2, HW = 36, r = 3;
  double v = 0.01;
  std::vector<double> W, mu;         // the truth: W (P, r), mu (P)
  std::vector<float> x, y, masks;    // clean values, observations (0 where missing), masks
  int P() const { return C * HW; }

  Problem() {
    std::mt19937 g(7);
    std::normal_distribution<double> n01;
    std::uniform_real_distribution<double> u01;
    W.resize(static_cast<size_t>(P()) * r);
    mu.resize(P());
    for (auto& w : W) w = 0.5 * n01(g);
    for (auto& m : mu) m = 0.3 * n01(g);
    x.resize(static_cast<size_t>(N) * P());
    y.assign(x.size(), 0.f);
    masks.resize(static_cast<size_t>(N) * HW);
    for (int i = 0; i < N; ++i) {
      double z[3] = {n01(g), n01(g), n01(g)};
      for (int p = 0; p < HW; ++p) masks[i * HW + p] = u01(g) < 0.4 ? 1.f : 0.f;
      for (int j = 0; j < P(); ++j) {
        double s = mu[j] + std::sqrt(v) * n01(g);
        for (int a = 0; a < r; ++a) s += W[j * r + a] * z[a];
        x[i * P() + j] = static_cast<float>(s);
        if (masks[i * HW + j % HW] > 0) y[i * P() + j] = static_cast<float>(s);
      }
    }
  }

  // posterior mean under the true parameters: M = v I + W_O^T W_O, Ez = M^-1 W_O^T (y_O - mu_O)
  std::vector<float> oracle() const {
    std::vector<float> out(y);
    for (int i = 0; i < N; ++i) {
      double M[3][4] = {};
      for (int a = 0; a < r; ++a) M[a][a] = v;
      for (int j = 0; j < P(); ++j) {
        if (masks[i * HW + j % HW] == 0) continue;
        for (int a = 0; a < r; ++a) {
          for (int b = 0; b < r; ++b) M[a][b] += W[j * r + a] * W[j * r + b];
          M[a][3] += W[j * r + a] * (y[i * P() + j] - mu[j]);
        }
      }
      for (int k = 0; k < r; ++k)  // Gauss-Jordan on the SPD 3 x 3 system
        for (int a = 0; a < r; ++a) {
          if (a == k) continue;
          const double f = M[a][k] / M[k][k];
          for (int b = k; b < 4; ++b) M[a][b] -= f * M[k][b];
        }
      for (int j = 0; j < P(); ++j) {
        if (masks[i * HW + j % HW] > 0) continue;
        double s = mu[j];
        for (int a = 0; a < r; ++a) s += W[j * r + a] * M[a][3] / M[a][a];
        out[i * P() + j] = static_cast<float>(s);
      }
    }
    return out;
  }

  double missing_mse(const std::vector<float>& rec) const {
    double s = 0;
    size_t n = 0;
    for (int i = 0; i < N; ++i)
      for (int j = 0; j < P(); ++j)
        if (masks[i * HW + j % HW] == 0) {
          const double d = rec[i * P() + j] - x[i * P() + j];
          s += d * d;
          ++n;
        }
    return s / n;
  }
};

train::PpcaView device(const std::vector<float>& v) {
  train::PpcaView d("test::ppca", v.size());
  auto h = Kokkos::create_mirror_view(d);
  for (size_t i = 0; i < v.size(); ++i) h(i) = v[i];
  Kokkos::deep_copy(d, h);
  return d;
}

std::vector<float> run(const Problem& pb, bool sample, uint64_t seed, train::PpcaResult* res = nullptr) {
  const auto y = device(pb.y), m = device(pb.masks);
  train::PpcaView out("test::ppca::out", pb.y.size());
  train::PpcaConfig cfg;
  cfg.rank = pb.r;
  cfg.iters = 100;
  cfg.sample = sample;
  cfg.seed = seed;
  const train::PpcaResult r = train::ppca_start(y, m, pb.N, pb.C, pb.HW, cfg, out);
  if (res) *res = r;
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), out);
  return std::vector<float>(h.data(), h.data() + h.size());
}

TEST(Ppca, PosteriorMeanMatchesTheTruthsAndKeepsObservedValues) {
  const Problem pb;
  train::PpcaResult res;
  const auto rec = run(pb, /*sample=*/false, 1, &res);
  const double fit = pb.missing_mse(rec), best = pb.missing_mse(pb.oracle());
  // the per-value mean of the observed values: what diffem.start: mean fills in
  std::vector<float> mean_fill(pb.y);
  for (int j = 0; j < pb.P(); ++j) {
    double s = 0, n = 0;
    for (int i = 0; i < pb.N; ++i)
      if (pb.masks[i * pb.HW + j % pb.HW] > 0) s += pb.y[i * pb.P() + j], n += 1;
    for (int i = 0; i < pb.N; ++i)
      if (pb.masks[i * pb.HW + j % pb.HW] == 0) mean_fill[i * pb.P() + j] = static_cast<float>(s / n);
  }
  const double naive = pb.missing_mse(mean_fill);
  std::cout << "[ppca] missing-value MSE: fit " << fit << ", posterior mean under the truth " << best
            << ", per-value mean " << naive << "; noise variance " << res.v << " (truth " << pb.v
            << "), explained " << res.explained << std::endl;
  EXPECT_GT(naive, 5 * best) << "the problem is too easy to tell anything";
  EXPECT_LT(fit, 1.15 * best) << "fit " << fit << ", posterior mean under the truth " << best;
  EXPECT_NEAR(res.v, pb.v, 0.3 * pb.v);
  EXPECT_GT(res.explained, 0.9);
  for (size_t k = 0; k < rec.size(); ++k)
    if (pb.masks[(k / pb.P()) * pb.HW + (k % pb.P()) % pb.HW] > 0) {
      ASSERT_EQ(rec[k], pb.y[k]) << k;
    }
}

TEST(Ppca, PosteriorDrawHasTwiceTheMeansErrorAndASeed) {
  const Problem pb;
  const auto mean = run(pb, false, 1);
  const auto a = run(pb, true, 1), b = run(pb, true, 1), c = run(pb, true, 2);
  const double ratio = pb.missing_mse(a) / pb.missing_mse(mean);
  std::cout << "[ppca] draw / mean missing-value MSE: " << ratio << std::endl;
  EXPECT_GT(ratio, 1.6);
  EXPECT_LT(ratio, 2.4);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  for (size_t k = 0; k < a.size(); ++k)
    if (pb.masks[(k / pb.P()) * pb.HW + (k % pb.P()) % pb.HW] > 0) {
      ASSERT_EQ(a[k], pb.y[k]) << k;
    }
}

TEST(Ppca, RejectsBadShapesAndRanks) {
  const Problem pb;
  const auto y = device(pb.y), m = device(pb.masks);
  train::PpcaView out("test::ppca::out", pb.y.size());
  train::PpcaConfig cfg;
  cfg.rank = 0;
  EXPECT_THROW(train::ppca_start(y, m, pb.N, pb.C, pb.HW, cfg, out), InputError);
  cfg.rank = 3;
  EXPECT_THROW(train::ppca_start(y, m, pb.N + 1, pb.C, pb.HW, cfg, out), Error);
}

}  // namespace
}  // namespace dmis::test
