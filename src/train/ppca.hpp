#pragma once
// DiffEM's lap-0 start for masked observations (diffem.start: ppca | ppca_mean): a Gaussian prior
// fitted to the observations by EM with the missing pixels integrated out, then one posterior
// draw (or the posterior mean) per observation. The DiffEM code starts the same way (a low-rank
// Gaussian fitted by EM, posterior samples under it); with most pixels missing, the per-pixel
// mean start leaves the first M-step almost nothing to learn from.
//
// Model (probabilistic PCA): x = mu + W z + e, z ~ N(0, I_r), e ~ N(0, v I), x of P = C * H * W
// values; an observation keeps the values of its observed pixels (all channels of a pixel
// together). EM for missing values (Ilin & Raiko, JMLR 11, 2010, section 3.2), with mu updated
// jointly with W as the loading of a constant latent:
//
//   E-step, observation i with observed values O_i:
//     M_i = v I + W_O^T W_O,  E z_i = M_i^-1 W_O^T (y_O - mu_O),  Cov z_i = v M_i^-1
//   M-step, value j observed in images I_j:
//     [w_j; mu_j - mu_j_old] = (sum_{I_j} E[z~ z~^T] + lambda I)^-1 sum_{I_j} E[z~] (y_ij - mu_j_old),
//     z~ = [z; 1]
//     v = (sum_i sum_{O_i} (y_ij - w_j^T E z_i - mu_j)^2 + w_j^T Cov z_i w_j) / (number observed)
//
// The sums over images and values are GEMMs (Kokkos Kernels), the r x r and (r+1) x (r+1)
// systems batched LU solves (KokkosBatched), everything on the device. A posterior draw is
// z_i = M_i^-1 (W_O^T (y_O - mu_O + sqrt(v) eps) + v xi) (perturb and solve: covariance
// v M_i^-1), then x = mu + W z_i + sqrt(v) eps' at the missing values; observed values are kept.
// Every draw is keyed by (seed, image, value): the same on any thread count.
#include <Kokkos_Core.hpp>
#include <cstdint>
#include <functional>

namespace dmis::train {

struct PpcaConfig {
  int rank = 16;         // r, the latent dimension
  int iters = 20;        // EM iterations
  bool sample = true;    // a posterior draw (true) or the posterior mean (false)
  uint64_t seed = 0;     // initial loadings and posterior draws
  float ridge = 1e-2f;   // lambda above: keeps a value observed in no image at w = 0, mu = its start
};

struct PpcaResult {
  double v = 0;                  // the noise variance of the fit
  double explained = 0;          // share of the observed values' variance the fit explains
};

using PpcaView = Kokkos::View<float*, Kokkos::LayoutRight, Kokkos::DefaultExecutionSpace::memory_space>;

/// y (N * C * HW): observations, 0 where missing; masks (N * HW): 1 where observed. Writes the
/// reconstructions to out (N * C * HW). progress(iteration, v) after each EM iteration.
PpcaResult ppca_start(const PpcaView& y, const PpcaView& masks, int N, int C, int HW,
                      const PpcaConfig& cfg, const PpcaView& out,
                      const std::function<void(int, double)>& progress = {});

}  // namespace dmis::train
