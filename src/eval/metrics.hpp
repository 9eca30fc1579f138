#pragma once
// Sample-quality metrics in evaluator features (docs/evaluation.md):
//
// - Frechet distance between Gaussians fitted to two feature sets,
//     FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr((S1^1/2 S2 S1^1/2)^1/2),
//   the matrix square roots from a symmetric Jacobi eigen-decomposition on the host in double
//   (F x F with F = 128: evaluation, not a hot path). The symmetric form equals
//   tr((S1 S2)^1/2) of the usual definition and needs no non-symmetric square root.
// - Density and Coverage (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for
//   Generative Models"), with k nearest neighbours: r_i is the distance from real sample i to
//   its k-th nearest other real sample;
//     density  = 1 / (k M) sum_j sum_i 1[ |f_j - x_i| < r_i ],
//     coverage = 1 / N sum_i 1[ min_j |f_j - x_i| < r_i ],
//   as the authors' prdc package. Pairwise distances come from Kokkos Kernels GEMM in double,
//   |a - b|^2 = |a|^2 + |b|^2 - 2 a.b, in row blocks (no N x N matrix is ever stored).
#include <vector>

#include "core/types.hpp"

namespace dmis::eval {

template <class Exec>
using Features = Kokkos::View<double**, Kokkos::LayoutRight, DeviceOf<Exec>>; // (N, F)

/// A Gaussian fitted to N feature vectors: mean (F), covariance (F, F) with divisor N - 1.
struct Gaussian {
  int dim = 0;
  long n = 0;
  std::vector<double> mean, cov; // cov row-major
};

/// Mean and covariance of the rows of `f` (N >= 2), on the device (GEMM), returned to the host.
template <class Exec> Gaussian fit_gaussian(const Exec& exec, const Features<Exec>& f);

/// The rows of `f` whose index is listed, in that order (a new device array).
template <class Exec>
Features<Exec> select_rows(const Exec& exec, const Features<Exec>& f, const std::vector<int>& rows);

/// Eigen-decomposition of the symmetric n x n matrix `a` (row-major) by cyclic Jacobi
/// rotations: eigenvalues (n, ascending) and eigenvectors as the columns of `vectors` (n x n).
void symmetric_eigen(const std::vector<double>& a, int n, std::vector<double>& values,
                     std::vector<double>& vectors);

/// The Frechet distance between two Gaussians of the same dimension.
double frechet_distance(const Gaussian& a, const Gaussian& b);

struct DensityCoverage {
  double density = 0, coverage = 0;
  int k = 0;
};

/// Density and coverage of `fake` (M, F) against `real` (N, F), N > k.
template <class Exec>
DensityCoverage density_coverage(const Exec& exec, const Features<Exec>& real,
                                 const Features<Exec>& fake, int k);

} // namespace dmis::eval
