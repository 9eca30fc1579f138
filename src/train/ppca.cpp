#include "train/ppca.hpp"

#include <KokkosBatched_LU_Decl.hpp>
#include <KokkosBatched_LU_Serial_Impl.hpp>
#include <KokkosBatched_SolveLU_Decl.hpp>
#include <KokkosBlas3_gemm.hpp>
#include <cmath>

#include "core/error.hpp"
#include "core/kokkos_compat.hpp"
#include "core/rng.hpp"

namespace dmis::train {

namespace {

using Exec = Kokkos::DefaultExecutionSpace;
using Mem = Exec::memory_space;
template <class T>
using V = Kokkos::View<T, Kokkos::LayoutRight, Mem>;
using U2 = Kokkos::View<float**, Kokkos::LayoutRight, Mem, Kokkos::MemoryTraits<Kokkos::Unmanaged>>;

using LU = KokkosBatched::SerialLU<KokkosBatched::Algo::LU::Unblocked>;
using SolveLU = KokkosBatched::SerialSolveLU<KokkosBatched::Trans::NoTranspose,
                                             KokkosBatched::Algo::SolveLU::Unblocked>;

/// The PPCA fit's state on the device, allocated once: loadings W (P, r), mean mu (P), and
/// per image the centred observations, the posterior's moments and the small solves; per pixel
/// the M-step's normal equations. Each stage is one method (Kokkos kernels and GEMMs).
struct Ppca {
  int N, C, HW, P, r, q, r2, q2;
  float ridge;
  rng::Philox gen;
  Exec exec;
  U2 Y, Mp, Out;  // (N, P) observations, (N, HW) masks, (N, P) output
  V<float**> W, Wt, WWp, G;
  V<float*> mu;
  V<float**> Yc, Bz, St, Ezt;
  V<float***> Lu, Sol;
  V<float**> A, Bw;
  V<float***> Alu, Rhs;
  double n_obs = 0, total = 0, v = 0;

  Ppca(const PpcaView& y, const PpcaView& masks, const PpcaView& out, int N_, int C_, int HW_,
       const PpcaConfig& cfg)
      : N(N_), C(C_), HW(HW_), P(C_ * HW_), r(cfg.rank), q(r + 1), r2(r * r), q2(q * q), ridge(cfg.ridge),
        gen(cfg.seed, rng::kPpca), Y(y.data(), N, P), Mp(masks.data(), N, HW), Out(out.data(), N, P),
        W("ppca::W", P, r), Wt("ppca::Wt", P, q), WWp("ppca::WWp", HW, r2), G("ppca::G", N, r2),
        mu("ppca::mu", P), Yc("ppca::Yc", N, P), Bz("ppca::Bz", N, r), St("ppca::St", N, q2),
        Ezt("ppca::Ezt", N, q), Lu("ppca::Lu", N, r, r), Sol("ppca::Sol", N, r, r + 1), A("ppca::A", HW, q2),
        Bw("ppca::Bw", P, q), Alu("ppca::Alu", HW, q, q), Rhs("ppca::Rhs", HW, q, C) {}

  /// The per-value mean and variance of the observed values, small random loadings.
  void start(const char* op) {
    const int N = this->N, HW = this->HW, P = this->P, r = this->r;
    const U2 Y = this->Y, Mp = this->Mp;
    const auto mu = this->mu;
    const auto W = this->W;
    const rng::Philox gen = this->gen;
    Kokkos::parallel_reduce(
        "dmis::ppca::count", Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(N) * HW),
        KOKKOS_LAMBDA(size_t k, double& s) { s += Mp(k / HW, k % HW); }, n_obs);
    n_obs *= C;
    if (n_obs < 1) throw InputError(cat(op, ": the observations have no observed pixel"));
    Kokkos::parallel_for(
        "dmis::ppca::mean", Kokkos::RangePolicy<Exec>(exec, 0, P), KOKKOS_LAMBDA(int j) {
          const int p = j % HW;
          double s = 0, n = 0;
          for (int i = 0; i < N; ++i) {
            s += Mp(i, p) * Y(i, j);
            n += Mp(i, p);
          }
          mu(j) = n > 0 ? static_cast<float>(s / n) : 0.f;
        });
    Kokkos::parallel_reduce(
        "dmis::ppca::total", Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(N) * P),
        KOKKOS_LAMBDA(size_t k, double& s) {
          const int i = static_cast<int>(k / P), j = static_cast<int>(k % P);
          const double d = Y(i, j) - mu(j);
          s += Mp(i, j % HW) * d * d;
        },
        total);
    v = std::max(total / n_obs, 1e-6);
    const float w0 = static_cast<float>(std::sqrt(v / r));
    Kokkos::parallel_for(
        "dmis::ppca::init_w", Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(P) * r),
        KOKKOS_LAMBDA(size_t k) {
          W(k / r, k % r) = w0 * rng::normal<float>(gen, 0u, static_cast<uint32_t>(k / r),
                                                     static_cast<uint32_t>(k % r));
        });
  }

  /// WWp(p) = sum over the channels of value (c, p) of w w^T; G = Mp WWp: W_O^T W_O per image.
  void gram() {
    const int HW = this->HW, r = this->r, r2 = this->r2, C = this->C;
    const auto W = this->W;
    const auto WWp = this->WWp;
    Kokkos::parallel_for(
        "dmis::ppca::ww", Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(HW) * r2),
        KOKKOS_LAMBDA(size_t k) {
          const int p = static_cast<int>(k / r2), a = static_cast<int>(k % r2) / r,
                    b = static_cast<int>(k % r2) % r;
          float s = 0;
          for (int c = 0; c < C; ++c) s += W(c * HW + p, a) * W(c * HW + p, b);
          WWp(p, a * r + b) = s;
        });
    compat::gemm(exec, "N", "N", 1.f, Mp, WWp, 0.f, G);
  }

  /// E-step: Yc = the observed values centred, Ez (Sol(:, :, 0)) and M^-1 (Sol(:, :, 1..r)) per
  /// image; with `draw`, the perturbed right-hand side of a posterior sample (streams 1: eps,
  /// 2: xi).
  void e_step(bool draw) {
    const int P = this->P, HW = this->HW, r = this->r, q = this->q;
    const U2 Y = this->Y, Mp = this->Mp;
    const auto mu = this->mu;
    const auto Yc = this->Yc;
    const auto G = this->G;
    const auto Bz = this->Bz;
    const auto Ezt = this->Ezt;
    const auto St = this->St;
    const auto Lu = this->Lu;
    const auto Sol = this->Sol;
    const rng::Philox gen = this->gen;
    const float vf = static_cast<float>(v), sv = static_cast<float>(std::sqrt(v));
    Kokkos::parallel_for(
        "dmis::ppca::centre", Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(N) * P),
        KOKKOS_LAMBDA(size_t k) {
          const int i = static_cast<int>(k / P), j = static_cast<int>(k % P);
          float d = Y(i, j) - mu(j);
          if (draw) d += sv * rng::normal<float>(gen, 1u, static_cast<uint32_t>(i), static_cast<uint32_t>(j));
          Yc(i, j) = Mp(i, j % HW) * d;
        });
    compat::gemm(exec, "N", "N", 1.f, Yc, W, 0.f, Bz);
    Kokkos::parallel_for(
        "dmis::ppca::posterior", Kokkos::RangePolicy<Exec>(exec, 0, N), KOKKOS_LAMBDA(int i) {
          auto Li = Kokkos::subview(Lu, i, Kokkos::ALL(), Kokkos::ALL());
          auto Si = Kokkos::subview(Sol, i, Kokkos::ALL(), Kokkos::ALL());
          for (int a = 0; a < r; ++a) {
            for (int b = 0; b < r; ++b) {
              Li(a, b) = G(i, a * r + b) + (a == b ? vf : 0.f);
              Si(a, 1 + b) = a == b ? 1.f : 0.f;
            }
            Si(a, 0) = Bz(i, a);
            if (draw) Si(a, 0) += vf * rng::normal<float>(gen, 2u, static_cast<uint32_t>(i),
                                                        static_cast<uint32_t>(a));
          }
          LU::invoke(Li);
          SolveLU::invoke(Li, Si);
          // z~ = [z; 1] and E[z~ z~^T] = [[Ez Ez^T + v M^-1, Ez], [Ez^T, 1]]
          for (int a = 0; a < r; ++a) {
            Ezt(i, a) = Si(a, 0);
            for (int b = 0; b < r; ++b) St(i, a * q + b) = Si(a, 0) * Si(b, 0) + vf * Si(a, 1 + b);
            St(i, a * q + r) = Si(a, 0);
            St(i, r * q + a) = Si(a, 0);
          }
          Ezt(i, r) = 1.f;
          St(i, r * q + r) = 1.f;
        });
  }

  /// M-step: per pixel p, A_p = sum over its images of E[z~ z~^T] (+ ridge), one solve for the
  /// C values of the pixel, right-hand sides sum over the images of E[z~] (y - mu): the
  /// regression of the centred values gives W and the change of mu (Yc is zero at missing
  /// values whatever the file stores there).
  void m_step() {
    const int HW = this->HW, C = this->C, r = this->r, q = this->q;
    const float ridge = this->ridge;
    const auto A = this->A;
    const auto Bw = this->Bw;
    const auto W = this->W;
    const auto mu = this->mu;
    const auto Alu = this->Alu;
    const auto Rhs = this->Rhs;
    compat::gemm(exec, "T", "N", 1.f, Mp, St, 0.f, A);
    compat::gemm(exec, "T", "N", 1.f, Yc, Ezt, 0.f, Bw);
    Kokkos::parallel_for(
        "dmis::ppca::loadings", Kokkos::RangePolicy<Exec>(exec, 0, HW), KOKKOS_LAMBDA(int p) {
          auto Ap = Kokkos::subview(Alu, p, Kokkos::ALL(), Kokkos::ALL());
          auto Bp = Kokkos::subview(Rhs, p, Kokkos::ALL(), Kokkos::ALL());
          for (int a = 0; a < q; ++a) {
            for (int b = 0; b < q; ++b) Ap(a, b) = A(p, a * q + b) + (a == b ? ridge : 0.f);
            for (int c = 0; c < C; ++c) Bp(a, c) = Bw(c * HW + p, a);
          }
          LU::invoke(Ap);
          SolveLU::invoke(Ap, Bp);
          for (int c = 0; c < C; ++c) {
            for (int a = 0; a < r; ++a) W(c * HW + p, a) = Bp(a, c);
            mu(c * HW + p) += Bp(r, c);
          }
        });
  }

  /// Yc <- E[z~]^T [W mu]^T: the posterior-mean reconstruction of every value.
  void reconstruct() {
    const int q = this->q, r = this->r;
    const auto Wt = this->Wt;
    const auto W = this->W;
    const auto mu = this->mu;
    Kokkos::parallel_for(
        "dmis::ppca::wt", Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(P) * q),
        KOKKOS_LAMBDA(size_t k) {
          const int j = static_cast<int>(k / q), a = static_cast<int>(k % q);
          Wt(j, a) = a < r ? W(j, a) : mu(j);
        });
    compat::gemm(exec, "N", "T", 1.f, Ezt, Wt, 0.f, Yc);
  }

  /// The new v: the residual of the fit at the observed values plus the posterior spread
  /// sum_i <v_old M_i^-1, W_O^T W_O (new W)>. Returns the residual.
  double update_variance() {
    const int P = this->P, HW = this->HW, r = this->r, r2 = this->r2;
    const U2 Y = this->Y, Mp = this->Mp;
    const auto Yc = this->Yc;
    const auto Sol = this->Sol;
    const auto G = this->G;
    double res = 0, spread = 0;
    Kokkos::parallel_reduce(
        "dmis::ppca::residual", Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(N) * P),
        KOKKOS_LAMBDA(size_t k, double& s) {
          const int i = static_cast<int>(k / P), j = static_cast<int>(k % P);
          const double d = Y(i, j) - Yc(i, j);
          s += Mp(i, j % HW) * d * d;
        },
        res);
    const float vf = static_cast<float>(v);
    Kokkos::parallel_reduce(
        "dmis::ppca::spread", Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(N) * r2),
        KOKKOS_LAMBDA(size_t k, double& s) {
          const int i = static_cast<int>(k / r2), a = static_cast<int>(k % r2) / r,
                    b = static_cast<int>(k % r2) % r;
          s += static_cast<double>(vf) * Sol(i, a, 1 + b) * G(i, b * r + a);
        },
        spread);
    v = std::max((res + spread) / n_obs, 1e-6);
    return res;
  }

  /// The reconstructions: observed values kept, missing ones from the posterior (its mean, or
  /// with `draw` a sample: stream 3).
  void fill(bool draw) {
    const int P = this->P, HW = this->HW;
    const U2 Y = this->Y, Mp = this->Mp, Out = this->Out;
    const auto Yc = this->Yc;
    const rng::Philox gen = this->gen;
    const float sv = static_cast<float>(std::sqrt(v));
    Kokkos::parallel_for(
        "dmis::ppca::fill", Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(N) * P),
        KOKKOS_LAMBDA(size_t k) {
          const int i = static_cast<int>(k / P), j = static_cast<int>(k % P);
          float x = Yc(i, j);
          if (draw) x += sv * rng::normal<float>(gen, 3u, static_cast<uint32_t>(i), static_cast<uint32_t>(j));
          Out(i, j) = Mp(i, j % HW) > 0.5f ? Y(i, j) : x;
        });
  }
};

}  // namespace

PpcaResult ppca_start(const PpcaView& y_flat, const PpcaView& masks_flat, int N, int C, int HW,
                      const PpcaConfig& cfg, const PpcaView& out_flat,
                      const std::function<void(int, double)>& progress) {
  const int P = C * HW, r = cfg.rank;
  const char* op = "dmis::diffem::ppca";
  if (r < 1 || cfg.iters < 0)
    throw InputError(cat(op, ": rank must be >= 1 and iterations >= 0, found rank ", r,
                         ", iterations ", cfg.iters));
  if (y_flat.extent(0) != static_cast<size_t>(N) * P || out_flat.extent(0) != y_flat.extent(0) ||
      masks_flat.extent(0) != static_cast<size_t>(N) * HW)
    throw Error(cat(op, ": buffers of ", y_flat.extent(0), " / ", masks_flat.extent(0), " / ",
                    out_flat.extent(0), " values for ", N, " images of ", C, " x ", HW));
  Ppca fit(y_flat, masks_flat, out_flat, N, C, HW, cfg);
  fit.start(op);
  double residual = fit.total;
  fit.gram();
  for (int it = 1; it <= cfg.iters; ++it) {
    fit.e_step(false);
    fit.m_step();
    fit.reconstruct();
    fit.gram();
    residual = fit.update_variance();
    if (progress) progress(it, fit.v);
  }
  fit.e_step(cfg.sample);
  fit.reconstruct();
  fit.fill(cfg.sample);
  fit.exec.fence();
  PpcaResult result;
  result.v = fit.v;
  result.explained = fit.total > 0 ? 1.0 - residual / fit.total : 0.0;
  return result;
}

}  // namespace dmis::train
