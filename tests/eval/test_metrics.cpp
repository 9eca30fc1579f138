// Sample metrics (src/eval/metrics.hpp): the Jacobi eigen-solver, the Frechet distance against
// closed forms, density and coverage on a case worked by hand, and both against a numpy
// reference (tests/fixtures/eval_reference.py) when its fixture file is given as argv[1].
#include <cmath>
#include <filesystem>
#include <random>

#include "eval/metrics.hpp"
#include "harness/exec_spaces.hpp"
#include "io/h5.hpp"

namespace {
using namespace dmis;

std::string g_reference; // the numpy reference file (argv[1]); empty: that test is skipped

template <class E> eval::Features<E> to_device(const std::vector<double>& v, int rows, int cols) {
  eval::Features<E> d("dmis::test::features", rows, cols);
  auto h = Kokkos::create_mirror_view(d);
  for (int r = 0; r < rows; ++r)
    for (int c = 0; c < cols; ++c)
      h(r, c) = v[static_cast<size_t>(r) * cols + c];
  Kokkos::deep_copy(d, h);
  return d;
}

std::vector<double> random_orthogonal(int n, std::mt19937_64& rng) {
  // Gram-Schmidt of a random matrix: the columns of q
  std::normal_distribution<double> nd;
  std::vector<double> q(static_cast<size_t>(n) * n);
  for (auto& x : q)
    x = nd(rng);
  for (int j = 0; j < n; ++j) {
    for (int p = 0; p < j; ++p) {
      double d = 0;
      for (int i = 0; i < n; ++i)
        d += q[i * n + j] * q[i * n + p];
      for (int i = 0; i < n; ++i)
        q[i * n + j] -= d * q[i * n + p];
    }
    double s = 0;
    for (int i = 0; i < n; ++i)
      s += q[i * n + j] * q[i * n + j];
    for (int i = 0; i < n; ++i)
      q[i * n + j] /= std::sqrt(s);
  }
  return q;
}

// Q diag(d) Q^T
std::vector<double> with_eigen(const std::vector<double>& q, const std::vector<double>& d) {
  const int n = static_cast<int>(d.size());
  std::vector<double> a(static_cast<size_t>(n) * n, 0.0);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j)
      for (int k = 0; k < n; ++k)
        a[i * n + j] += q[i * n + k] * d[k] * q[j * n + k];
  return a;
}

TEST(Metrics, JacobiEigenDecomposition) {
  std::mt19937_64 rng(3);
  const int n = 40;
  const auto q = random_orthogonal(n, rng);
  std::vector<double> d(n);
  for (int i = 0; i < n; ++i)
    d[i] = 0.1 * (i - 10) * (i % 3 + 1); // negatives and repeats
  const auto a = with_eigen(q, d);
  std::vector<double> vals, vecs;
  eval::symmetric_eigen(a, n, vals, vecs);
  auto sorted = d;
  std::sort(sorted.begin(), sorted.end());
  for (int i = 0; i < n; ++i)
    EXPECT_NEAR(vals[i], sorted[i], 1e-10) << i;
  // A v = lambda v for every column
  double worst = 0;
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < n; ++i) {
      double av = 0;
      for (int k = 0; k < n; ++k)
        av += a[i * n + k] * vecs[k * n + j];
      worst = std::max(worst, std::fabs(av - vals[j] * vecs[i * n + j]));
    }
  EXPECT_LT(worst, 1e-10);
}

TEST(Metrics, FrechetDistanceClosedForms) {
  std::mt19937_64 rng(5);
  const int n = 16;
  const auto q = random_orthogonal(n, rng);
  std::vector<double> d1(n), d2(n);
  std::uniform_real_distribution<double> u(0.1, 3.0);
  eval::Gaussian a, b;
  a.dim = b.dim = n;
  double want = 0;
  for (int i = 0; i < n; ++i) {
    d1[i] = u(rng), d2[i] = u(rng);
    a.mean.push_back(u(rng));
    b.mean.push_back(u(rng));
    want += std::pow(a.mean[i] - b.mean[i], 2) + std::pow(std::sqrt(d1[i]) - std::sqrt(d2[i]), 2);
  }
  // covariances that share eigenvectors: FD = |mu1 - mu2|^2 + sum (sqrt(l1) - sqrt(l2))^2
  a.cov = with_eigen(q, d1);
  b.cov = with_eigen(q, d2);
  EXPECT_NEAR(eval::frechet_distance(a, b), want, 1e-9 * (1 + want));
  EXPECT_NEAR(eval::frechet_distance(b, a), want, 1e-9 * (1 + want));
  EXPECT_NEAR(eval::frechet_distance(a, a), 0.0, 1e-9);
  // 1-D: (mu1 - mu2)^2 + (s1 - s2)^2
  eval::Gaussian x{1, 2, {1.0}, {4.0}}, y{1, 2, {-2.0}, {9.0}};
  EXPECT_NEAR(eval::frechet_distance(x, y), 9.0 + 1.0, 1e-12);
  // a singular covariance (rank 1) is fine
  eval::Gaussian s{2, 2, {0, 0}, {1, 1, 1, 1}}, t{2, 2, {0, 0}, {1, 0, 0, 1}};
  // tr((S T)^1/2) with S = [[1,1],[1,1]], T = I: sqrt of eigenvalues of S: sqrt(2)
  EXPECT_NEAR(eval::frechet_distance(s, t), 2 + 2 - 2 * std::sqrt(2.0), 1e-12);
}

template <class E> class MetricsDevice : public ::testing::Test {};
TYPED_TEST_SUITE(MetricsDevice, dmis::test::ExecSpaces, dmis::test::ExecSpaceNames);

TYPED_TEST(MetricsDevice, GaussianFitAndFdOfASetWithItself) {
  using E = TypeParam;
  E exec;
  std::mt19937_64 rng(7);
  std::normal_distribution<double> nd;
  const int N = 500, F = 6;
  std::vector<double> v(N * F);
  for (int r = 0; r < N; ++r)
    for (int c = 0; c < F; ++c)
      v[r * F + c] = nd(rng) * (c + 1) + (c == 2 ? 0.5 * v[r * F] : 0) + c;
  const auto f = to_device<E>(v, N, F);
  const eval::Gaussian g = eval::fit_gaussian(exec, f);
  // against a plain two-pass host computation
  for (int c = 0; c < F; ++c) {
    double m = 0;
    for (int r = 0; r < N; ++r)
      m += v[r * F + c];
    m /= N;
    EXPECT_NEAR(g.mean[c], m, 1e-12 * (1 + std::fabs(m)));
    for (int c2 = 0; c2 < F; ++c2) {
      double m2 = 0, s = 0;
      for (int r = 0; r < N; ++r)
        m2 += v[r * F + c2];
      m2 /= N;
      for (int r = 0; r < N; ++r)
        s += (v[r * F + c] - m) * (v[r * F + c2] - m2);
      EXPECT_NEAR(g.cov[c * F + c2], s / (N - 1), 1e-10) << c << " " << c2;
    }
  }
  EXPECT_NEAR(eval::frechet_distance(g, g), 0.0, 1e-9);
  // a shifted copy: FD = |shift|^2
  std::vector<double> w(v);
  for (int r = 0; r < N; ++r)
    w[r * F + 1] += 2.0, w[r * F + 4] -= 1.0;
  const eval::Gaussian h = eval::fit_gaussian(exec, to_device<E>(w, N, F));
  EXPECT_NEAR(eval::frechet_distance(g, h), 5.0, 1e-8);
  // select_rows picks rows in the order given
  const auto sel = eval::select_rows(exec, f, {4, 0});
  auto hs = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), sel);
  EXPECT_EQ(hs(0, 3), v[4 * F + 3]);
  EXPECT_EQ(hs(1, 5), v[5]);
  EXPECT_THROW(eval::fit_gaussian(exec, eval::select_rows(exec, f, {1})), InputError);
}

TYPED_TEST(MetricsDevice, DensityCoverageByHand) {
  using E = TypeParam;
  E exec;
  // 1-D (second coordinate 0), k = 1. Real 0, 1, 2, 3, 10: radii 1, 1, 1, 1, 7.
  // Fake 0.5 lies inside the balls of 0 and 1, fake 9 inside the ball of 10, fake 20 in none:
  // density = (2 + 1 + 0) / (1 * 3) = 1. Covered: 0 and 1 (by 0.5, distance 0.5 < 1) and 10
  // (by 9, 1 < 7); 2 and 3 are not (nearest fake 1.5 and 2.5 away): coverage 3 / 5.
  const auto real = to_device<E>({0, 0, 1, 0, 2, 0, 3, 0, 10, 0}, 5, 2);
  const auto fake = to_device<E>({0.5, 0, 9, 0, 20, 0}, 3, 2);
  const auto dc = eval::density_coverage(exec, real, fake, 1);
  EXPECT_DOUBLE_EQ(dc.density, 1.0);
  EXPECT_DOUBLE_EQ(dc.coverage, 0.6);
  // k = 2, radii (distance to the second nearest other real): 0 -> {1, 2} = 2; 1 -> {0, 2} = 1; 2
  // -> {1, 3} = 1; 3 -> {2, 1} = 2; 10 -> {3, 2} = 8 fake 0.5: 0 (0.5 < 2), 1 (0.5 < 1), 2 (1.5 < 1
  // no), 3 (2.5 < 2 no), 10 (9.5 < 8 no) = 2 fake 9: 10 (1 < 8) = 1; fake 20: none. density = 3 /
  // (2 * 3) = 0.5. covered: 0 (0.5 < 2), 1 (0.5 < 1), 2 (1.5 < 1 no), 3 (2.5 < 2 no), 10 (1 < 8): 3
  // / 5
  const auto dc2 = eval::density_coverage(exec, real, fake, 2);
  EXPECT_DOUBLE_EQ(dc2.density, 0.5);
  EXPECT_DOUBLE_EQ(dc2.coverage, 0.6);
  // the same set against itself covers everything
  EXPECT_DOUBLE_EQ(eval::density_coverage(exec, real, real, 1).coverage, 1.0);
  EXPECT_THROW(eval::density_coverage(exec, real, fake, 5), InputError); // N must exceed k
}

TYPED_TEST(MetricsDevice, MatchesNumpyReference) {
  using E = TypeParam;
  if (g_reference.empty())
    GTEST_SKIP() << "no reference file given (tests/fixtures/eval_reference.py)";
  E exec;
  h5::File f(g_reference, h5::File::Mode::Read);
  const auto r = f.read_double("/real"), k = f.read_double("/fake");
  const int N = r.shape[0], M = k.shape[0], F = r.shape[1];
  const auto real = to_device<E>(r.data, N, F), fake = to_device<E>(k.data, M, F);
  const double fd =
      eval::frechet_distance(eval::fit_gaussian(exec, fake), eval::fit_gaussian(exec, real));
  EXPECT_NEAR(fd, f.attr_double("/", "fd"), 1e-7 * (1 + fd));
  const auto dc = eval::density_coverage(exec, real, fake, static_cast<int>(f.attr_int("/", "k")));
  EXPECT_NEAR(dc.density, f.attr_double("/", "density"), 1e-12);
  EXPECT_NEAR(dc.coverage, f.attr_double("/", "coverage"), 1e-12);
}

} // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  Kokkos::ScopeGuard kokkos(argc, argv);
  if (argc > 1 && std::filesystem::exists(argv[1]))
    g_reference = argv[1];
  return RUN_ALL_TESTS();
}
