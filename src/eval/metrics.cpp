#include "eval/metrics.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "core/error.hpp"
#include "core/kokkos_compat.hpp"
#include "kernels/eti.hpp"

namespace dmis::eval {

namespace {
template <class Exec> using Vec = Kokkos::View<double*, Kokkos::LayoutRight, DeviceOf<Exec>>;
template <class Exec>
using Block = Kokkos::View<double**, Kokkos::LayoutRight, DeviceOf<Exec>,
                           Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

constexpr int kMaxK = 64; // neighbours kept per row by the k-th-distance kernel

template <class Exec>
void row_norms2(const Exec& exec, const Features<Exec>& f, const Vec<Exec>& out) {
  const int F = f.extent(1);
  Kokkos::parallel_for(
      "dmis::eval::row_norms2", Kokkos::RangePolicy<Exec>(exec, 0, f.extent(0)),
      KOKKOS_LAMBDA(int r) {
        double s = 0;
        for (int c = 0; c < F; ++c)
          s += f(r, c) * f(r, c);
        out(r) = s;
      });
}

// Rows of a block of distances: the rows of `a` from row0, against every row of `b`.
template <class Exec>
Block<Exec> distance_gemm(const Exec& exec, const Features<Exec>& a, int row0, int rows,
                          const Features<Exec>& b, const Vec<Exec>& buf) {
  const auto a_blk = Kokkos::subview(a, Kokkos::make_pair(row0, row0 + rows), Kokkos::ALL());
  Block<Exec> dot(buf.data(), rows, b.extent(0));
  compat::gemm(exec, "N", "T", 1.0, a_blk, b, 0.0, dot); // (rows, N) = a_blk b^T
  return dot;
}

// radius2(row0 + r) = the (k+1)-th smallest squared distance from real row row0 + r to the real
// rows (the first is the row itself): its k-th nearest other real sample.
template <class Exec>
void kth_distance(const Exec& exec, const Block<Exec>& dot, int row0, const Vec<Exec>& norms, int k,
                  const Vec<Exec>& radius2) {
  const int N = dot.extent(1);
  Kokkos::parallel_for(
      "dmis::eval::kth_distance", Kokkos::RangePolicy<Exec>(exec, 0, dot.extent(0)),
      KOKKOS_LAMBDA(int r) {
        double best[kMaxK + 1];
        int kept = 0;
        const double nr = norms(row0 + r);
        for (int j = 0; j < N; ++j) {
          double d = nr + norms(j) - 2 * dot(r, j);
          d = d > 0 ? d : 0;
          if (kept == k + 1 && d >= best[k])
            continue;
          int at = kept < k + 1 ? kept++ : k; // insertion into the sorted list
          while (at > 0 && best[at - 1] > d) {
            best[at] = best[at - 1];
            --at;
          }
          best[at] = d;
        }
        radius2(row0 + r) = best[k];
      });
}

// For the fake rows row0 + r of a block: inside(row0 + r) = #{i : d2(fake, real_i) < radius2_i};
// nearest2(i) = min(nearest2(i), min over the block's rows of d2).
template <class Exec>
void fake_real_counts(const Exec& exec, const Block<Exec>& dot, int row0,
                      const Vec<Exec>& fake_norms, const Vec<Exec>& real_norms,
                      const Vec<Exec>& radius2,
                      const Kokkos::View<long*, Kokkos::LayoutRight, DeviceOf<Exec>>& inside,
                      const Vec<Exec>& nearest2) {
  const int rows = dot.extent(0), N = dot.extent(1);
  Kokkos::parallel_for(
      "dmis::eval::density_counts", Kokkos::RangePolicy<Exec>(exec, 0, rows), KOKKOS_LAMBDA(int r) {
        const double nf = fake_norms(row0 + r);
        long c = 0;
        for (int i = 0; i < N; ++i) {
          const double d = nf + real_norms(i) - 2 * dot(r, i);
          c += (d > 0 ? d : 0) < radius2(i) ? 1 : 0;
        }
        inside(row0 + r) = c;
      });
  Kokkos::parallel_for(
      "dmis::eval::coverage_nearest", Kokkos::RangePolicy<Exec>(exec, 0, N), KOKKOS_LAMBDA(int i) {
        double m = nearest2(i);
        for (int r = 0; r < rows; ++r) {
          double d = fake_norms(row0 + r) + real_norms(i) - 2 * dot(r, i);
          d = d > 0 ? d : 0;
          m = d < m ? d : m;
        }
        nearest2(i) = m;
      });
}

template <class Exec>
void column_means(const Exec& exec, const Features<Exec>& f, const Vec<Exec>& mean) {
  const int N = f.extent(0);
  Kokkos::parallel_for(
      "dmis::eval::column_means", Kokkos::RangePolicy<Exec>(exec, 0, f.extent(1)),
      KOKKOS_LAMBDA(int c) {
        double s = 0;
        for (int r = 0; r < N; ++r)
          s += f(r, c); // fixed order
        mean(c) = s / N;
      });
}

template <class Exec>
void center(const Exec& exec, const Features<Exec>& f, const Vec<Exec>& mean,
            const Features<Exec>& out) {
  const int F = f.extent(1);
  Kokkos::parallel_for(
      "dmis::eval::center", Kokkos::RangePolicy<Exec>(exec, 0, f.extent(0) * F),
      KOKKOS_LAMBDA(size_t i) { out(i / F, i % F) = f(i / F, i % F) - mean(i % F); });
}

template <class Exec>
void gather_rows(const Exec& exec, const Features<Exec>& f,
                 const Kokkos::View<int*, Kokkos::LayoutRight, DeviceOf<Exec>>& rows,
                 const Features<Exec>& out) {
  const int F = f.extent(1);
  Kokkos::parallel_for(
      "dmis::eval::select_rows", Kokkos::RangePolicy<Exec>(exec, 0, out.extent(0) * F),
      KOKKOS_LAMBDA(size_t i) { out(i / F, i % F) = f(rows(i / F), i % F); });
}

std::vector<double> matmul(const std::vector<double>& a, const std::vector<double>& b, int n) {
  std::vector<double> c(static_cast<size_t>(n) * n, 0.0);
  for (int i = 0; i < n; ++i)
    for (int l = 0; l < n; ++l) {
      const double ail = a[i * n + l];
      for (int j = 0; j < n; ++j)
        c[i * n + j] += ail * b[l * n + j];
    }
  return c;
}
} // namespace

template <class Exec> Gaussian fit_gaussian(const Exec& exec, const Features<Exec>& f) {
  const int N = f.extent(0), F = f.extent(1);
  if (N < 2)
    throw InputError(cat("a Gaussian needs at least 2 feature vectors, got ", N));
  Vec<Exec> mean("dmis::eval::mean", F);
  Features<Exec> centered(Kokkos::view_alloc(Kokkos::WithoutInitializing, "dmis::eval::centered"),
                          N, F);
  Features<Exec> cov("dmis::eval::cov", F, F);
  column_means(exec, f, mean);
  center(exec, f, mean, centered);
  compat::gemm(exec, "T", "N", 1.0 / (N - 1), centered, centered, 0.0, cov);
  auto hm = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), mean);
  auto hc = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), cov);
  Gaussian g;
  g.dim = F;
  g.n = N;
  g.mean.assign(hm.data(), hm.data() + F);
  g.cov.resize(static_cast<size_t>(F) * F);
  for (int i = 0; i < F; ++i)
    for (int j = 0; j < F; ++j)
      g.cov[i * F + j] = 0.5 * (hc(i, j) + hc(j, i));
  return g;
}

template <class Exec>
Features<Exec> select_rows(const Exec& exec, const Features<Exec>& f,
                           const std::vector<int>& rows) {
  Kokkos::View<int*, Kokkos::LayoutRight, DeviceOf<Exec>> idx("dmis::eval::rows", rows.size());
  auto h = Kokkos::create_mirror_view(idx);
  for (size_t i = 0; i < rows.size(); ++i) {
    if (rows[i] < 0 || rows[i] >= static_cast<int>(f.extent(0)))
      throw Error(cat("select_rows: row ", rows[i], " outside [0, ", f.extent(0), ")"));
    h(i) = rows[i];
  }
  Kokkos::deep_copy(idx, h);
  Features<Exec> out(Kokkos::view_alloc(Kokkos::WithoutInitializing, "dmis::eval::selected"),
                     rows.size(), f.extent(1));
  if (!rows.empty())
    gather_rows(exec, f, idx, out);
  exec.fence();
  return out;
}

void symmetric_eigen(const std::vector<double>& a_in, int n, std::vector<double>& values,
                     std::vector<double>& vectors) {
  if (a_in.size() != static_cast<size_t>(n) * n)
    throw Error(cat("symmetric_eigen: ", a_in.size(), " entries for a ", n, " x ", n, " matrix"));
  std::vector<double> a(a_in);
  std::vector<double>& v = vectors;
  v.assign(static_cast<size_t>(n) * n, 0.0);
  for (int i = 0; i < n; ++i)
    v[i * n + i] = 1;
  double scale = 0;
  for (double x : a)
    scale = std::max(scale, std::fabs(x));
  for (int sweep = 0; sweep < 100; ++sweep) {
    double off = 0;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q)
        off += a[p * n + q] * a[p * n + q];
    if (off <= 1e-30 * scale * scale * n * n || scale == 0)
      break;
    for (int p = 0; p < n; ++p)
      for (int q = p + 1; q < n; ++q) {
        const double apq = a[p * n + q];
        if (std::fabs(apq) <= 1e-300)
          continue;
        // rotation that zeroes a[p][q] (Golub & Van Loan, Algorithm 8.5.1)
        const double theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const double t =
            (theta >= 0 ? 1.0 : -1.0) / (std::fabs(theta) + std::sqrt(theta * theta + 1));
        const double c = 1 / std::sqrt(t * t + 1), s = t * c;
        for (int k = 0; k < n; ++k) { // columns p, q
          const double akp = a[k * n + p], akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (int k = 0; k < n; ++k) { // rows p, q
          const double apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (int k = 0; k < n; ++k) {
          const double vkp = v[k * n + p], vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
  }
  // sort ascending, columns with them
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i)
    order[i] = i;
  std::sort(order.begin(), order.end(), [&](int x, int y) { return a[x * n + x] < a[y * n + y]; });
  values.resize(n);
  std::vector<double> sorted(static_cast<size_t>(n) * n);
  for (int j = 0; j < n; ++j) {
    values[j] = a[order[j] * n + order[j]];
    for (int k = 0; k < n; ++k)
      sorted[k * n + j] = v[k * n + order[j]];
  }
  v.swap(sorted);
}

double frechet_distance(const Gaussian& a, const Gaussian& b) {
  const int n = a.dim;
  if (b.dim != n || a.cov.size() != static_cast<size_t>(n) * n || b.cov.size() != a.cov.size())
    throw Error(cat("frechet_distance: Gaussians of dimension ", a.dim, " and ", b.dim));
  double d2 = 0, tr = 0;
  for (int i = 0; i < n; ++i) {
    d2 += (a.mean[i] - b.mean[i]) * (a.mean[i] - b.mean[i]);
    tr += a.cov[i * n + i] + b.cov[i * n + i];
  }
  std::vector<double> lam, V;
  symmetric_eigen(a.cov, n, lam, V);
  // S1^1/2 = V diag(sqrt(max(lambda, 0))) V^T
  std::vector<double> root(static_cast<size_t>(n) * n, 0.0);
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) {
      double s = 0;
      for (int k = 0; k < n; ++k)
        s += V[i * n + k] * std::sqrt(std::max(lam[k], 0.0)) * V[j * n + k];
      root[i * n + j] = s;
    }
  std::vector<double> m = matmul(matmul(root, b.cov, n), root, n);
  for (int i = 0; i < n; ++i)
    for (int j = i + 1; j < n; ++j)
      m[i * n + j] = m[j * n + i] = 0.5 * (m[i * n + j] + m[j * n + i]);
  std::vector<double> mu, W;
  symmetric_eigen(m, n, mu, W);
  double tr_root = 0;
  for (double x : mu)
    tr_root += std::sqrt(std::max(x, 0.0));
  return d2 + tr - 2 * tr_root;
}

template <class Exec>
DensityCoverage density_coverage(const Exec& exec, const Features<Exec>& real,
                                 const Features<Exec>& fake, int k) {
  const int N = real.extent(0), M = fake.extent(0), F = real.extent(1);
  if (k < 1 || k > kMaxK)
    throw InputError(cat("density/coverage: k must be in [1, ", kMaxK, "], got ", k));
  if (N <= k)
    throw InputError(cat("density/coverage: ", N, " real samples, need more than k = ", k));
  if (M < 1)
    throw InputError("density/coverage: no generated samples");
  if (static_cast<int>(fake.extent(1)) != F)
    throw Error(cat("density/coverage: features of ", F, " and ", fake.extent(1), " dimensions"));
  Vec<Exec> rn("dmis::eval::real_norms", N), fn("dmis::eval::fake_norms", M),
      radius2("dmis::eval::radius2", N), nearest2("dmis::eval::nearest2", N);
  Kokkos::View<long*, Kokkos::LayoutRight, DeviceOf<Exec>> inside("dmis::eval::inside", M);
  // distance blocks of at most 8 M doubles (64 MB)
  const int rows = std::max(1, std::min(std::max(N, M), static_cast<int>(8'000'000 / N)));
  Vec<Exec> buf(Kokkos::view_alloc(Kokkos::WithoutInitializing, "dmis::eval::distances"),
                static_cast<size_t>(rows) * N);
  row_norms2(exec, real, rn);
  row_norms2(exec, fake, fn);
  Kokkos::deep_copy(exec, nearest2, DBL_MAX);
  for (int r0 = 0; r0 < N; r0 += rows) {
    const int nr = std::min(rows, N - r0);
    kth_distance(exec, distance_gemm(exec, real, r0, nr, real, buf), r0, rn, k, radius2);
  }
  for (int r0 = 0; r0 < M; r0 += rows) {
    const int nr = std::min(rows, M - r0);
    fake_real_counts(exec, distance_gemm(exec, fake, r0, nr, real, buf), r0, fn, rn, radius2,
                     inside, nearest2);
  }
  long in_total = 0, covered = 0;
  Kokkos::parallel_reduce(
      "dmis::eval::density_total", Kokkos::RangePolicy<Exec>(exec, 0, M),
      KOKKOS_LAMBDA(int j, long& s) { s += inside(j); }, in_total);
  Kokkos::parallel_reduce(
      "dmis::eval::coverage_total", Kokkos::RangePolicy<Exec>(exec, 0, N),
      KOKKOS_LAMBDA(int i, long& s) { s += nearest2(i) < radius2(i) ? 1 : 0; }, covered);
  DensityCoverage out;
  out.k = k;
  out.density = static_cast<double>(in_total) / (static_cast<double>(k) * M);
  out.coverage = static_cast<double>(covered) / N;
  return out;
}

#define DMIS_INST(E, T) DMIS_INST_##T(E)
#define DMIS_INST_float(E)
#define DMIS_INST_double(E)                                                                        \
  template Gaussian fit_gaussian<E>(const E&, const Features<E>&);                                 \
  template Features<E> select_rows<E>(const E&, const Features<E>&, const std::vector<int>&);      \
  template DensityCoverage density_coverage<E>(const E&, const Features<E>&, const Features<E>&,   \
                                               int);
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

} // namespace dmis::eval
