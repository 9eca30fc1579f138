#include "kernels/groupnorm.hpp"

#include "kernels/eti.hpp"

namespace dmis::kernels {

namespace {
template <class CX>
void check_groups(const char* op, const CX& x, int groups) {
  const long C = static_cast<long>(x.extent(1));
  expect(groups > 0 && C % groups == 0, op,
         cat("channels (", C, ") must be a positive multiple of groups (", groups, ")"));
  expect(x.extent(0) > 0 && x.extent(2) > 0 && x.extent(3) > 0, op,
         cat("empty tensor x ", detail::shape_string(x)));
}
}  // namespace

template <class Exec, class T>
void GroupNorm<Exec, T>::forward(const Exec& exec, const CX& x, const CV1& gamma, const CV1& beta,
                                 int groups, T eps, const X& y, const M& mean, const M& rstd,
                                 Activation act) {
  const char* op = "dmis::groupnorm::forward";
  const bool silu = act == Activation::Silu;
  check_groups(op, x, groups);
  const int B = x.extent(0), C = x.extent(1), H = x.extent(2), W = x.extent(3), G = groups;
  expect_shape(op, "gamma", gamma, {C});
  expect_shape(op, "beta", beta, {C});
  expect_shape(op, "y", y, {B, C, H, W});
  expect_shape(op, "mean", mean, {B, G});
  expect_shape(op, "rstd", rstd, {B, G});
  const int cpg = C / G, HW = H * W, n = cpg * HW;
  using Policy = Kokkos::TeamPolicy<Exec>;
  Policy policy(exec, B * G, Kokkos::AUTO);
  policy.set_scratch_size(0, Kokkos::PerTeam(team_sum_scratch_bytes<T>()));
  Kokkos::parallel_for(
      "dmis::groupnorm::fwd", policy, KOKKOS_LAMBDA(const typename Policy::member_type& team) {
        const int b = team.league_rank() / G, g = team.league_rank() % G;
        const T* xg = &x(b, g * cpg, 0, 0);  // the group is contiguous: cpg * HW elements
        T* yg = &y(b, g * cpg, 0, 0);
        T* partials = team_partials<T>(team);
        // two passes (mean, then centred variance), as the PyTorch reference computes it
        const T m = team_sum(team, n, partials, [&](int i) { return xg[i]; }) / T(n);
        const T v = team_sum(team, n, partials, [&](int i) {
                      const T d = xg[i] - m;
                      return d * d;
                    }) / T(n);
        const T r = T(1) / compat::sqrt(v + eps);
        Kokkos::single(Kokkos::PerTeam(team), [&]() {
          mean(b, g) = m;
          rstd(b, g) = r;
        });
        // normalise channel by channel (no index division per element)
        Kokkos::parallel_for(Kokkos::TeamThreadRange(team, cpg), [&](int cl) {
          const int c = g * cpg + cl;
          const int n_hw = HW;  // a local copy: the loop bound must not be reloaded (vectorises)
          const T scale = gamma(c) * r, shift = beta(c) - gamma(c) * r * m;
          const T* xc = xg + cl * n_hw;
          T* yc = yg + cl * n_hw;
          if (silu) {
            for (int i = 0; i < n_hw; ++i) {
              const T a = scale * xc[i] + shift;
              yc[i] = a * compat::sigmoid(a);
            }
          } else {
            for (int i = 0; i < n_hw; ++i) yc[i] = scale * xc[i] + shift;
          }
        });
      });
}

template <class Exec, class T>
void GroupNorm<Exec, T>::backward(const Exec& exec, const CX& dy, const CX& x, const CV1& gamma,
                                  const CV1& beta, const CM& mean, const CM& rstd, const X& dx,
                                  GradMode mode, const V1& dgamma, const V1& dbeta,
                                  const V1& scratch, Activation act, const X& work) {
  const char* op = "dmis::groupnorm::backward";
  const bool silu = act == Activation::Silu;
  const int G = static_cast<int>(mean.extent(1));
  check_groups(op, x, G);
  const int B = x.extent(0), C = x.extent(1), H = x.extent(2), W = x.extent(3);
  expect_shape(op, "dy", dy, {B, C, H, W});
  expect_shape(op, "gamma", gamma, {C});
  expect_shape(op, "beta", beta, {C});
  expect_shape(op, "mean", mean, {B, G});
  expect_shape(op, "rstd", rstd, {B, G});
  expect_shape(op, "dx", dx, {B, C, H, W});
  expect_shape(op, "dgamma", dgamma, {C});
  expect_shape(op, "dbeta", dbeta, {C});
  expect(scratch.extent(0) >= scratch_size(B, C, G), op,
         cat("scratch has ", scratch.extent(0), " elements, needs ", scratch_size(B, C, G)));
  const bool keep = silu && work.extent(0) != 0;
  if (keep) expect_shape(op, "work", work, {B, C, H, W});
  const int cpg = C / G, HW = H * W;
  M s1(scratch.data(), B, C);               // (B, C) sum_hw dy
  M s2(scratch.data() + B * C, B, C);       // (B, C) sum_hw dy * (x - mean)
  M coef(scratch.data() + 2 * B * C, B, 2 * G);  // (B, 2G) per-group mean(dxhat), mean(dxhat*xhat)

  using Policy = Kokkos::TeamPolicy<Exec>;
  Policy policy(exec, B * C, Kokkos::AUTO);
  policy.set_scratch_size(0, Kokkos::PerTeam(team_sum_scratch_bytes<T>()));
  Kokkos::parallel_for(
      "dmis::groupnorm::bwd_channel_sums", policy,
      KOKKOS_LAMBDA(const typename Policy::member_type& team) {
        const int b = team.league_rank() / C, c = team.league_rank() % C;
        const T m = mean(b, c / cpg), r = rstd(b, c / cpg), gc = gamma(c), bc = beta(c);
        const T* dyc = &dy(b, c, 0, 0);
        const T* xc = &x(b, c, 0, 0);
        T* partials = team_partials<T>(team);
        // gradient with respect to the GroupNorm output (through SiLU when fused)
        T* kept = keep ? &work(b, c, 0, 0) : nullptr;
        auto g_out = [&](int i) {
          if (!silu) return dyc[i];
          const T a = gc * (xc[i] - m) * r + bc;
          const T sg = compat::sigmoid(a);
          return dyc[i] * sg * (T(1) + a * (T(1) - sg));
        };
        T a, d;
        team_sum2(
            team, HW, partials,
            [&](int i, T& u, T& v) {
              u = g_out(i);
              if (keep) kept[i] = u;  // read dy[i], then write: safe when work is dy
              v = u * (xc[i] - m);
            },
            a, d);
        Kokkos::single(Kokkos::PerTeam(team), [&]() {
          s1(b, c) = a;
          s2(b, c) = d;
        });
      });
  // Per group: sum(dxhat) = sum_c gamma_c s1, sum(dxhat*xhat) = sum_c gamma_c r s2.
  const T inv_n = T(1) / T(cpg * HW);
  Kokkos::parallel_for(
      "dmis::groupnorm::bwd_group_coef", Kokkos::RangePolicy<Exec>(exec, 0, B * G),
      KOKKOS_LAMBDA(int i) {
        const int b = i / G, g = i % G;
        const T r = rstd(b, g);
        T a = 0, d = 0;
        for (int c = g * cpg; c < (g + 1) * cpg; ++c) {
          a += gamma(c) * s1(b, c);
          d += gamma(c) * r * s2(b, c);
        }
        coef(b, 2 * g) = a * inv_n;
        coef(b, 2 * g + 1) = d * inv_n;
      });
  const bool accumulate = mode == GradMode::Accumulate;
  Kokkos::parallel_for(
      "dmis::groupnorm::bwd_dx", Kokkos::RangePolicy<Exec>(exec, 0, B * C), KOKKOS_LAMBDA(int i) {
        const int c = i % C, b = i / C, g = c / cpg;
        const T m = mean(b, g), r = rstd(b, g), gc = gamma(c), bc = beta(c);
        const T mdx = coef(b, 2 * g), mdxx = coef(b, 2 * g + 1);
        const T* dyr = keep ? &work(b, c, 0, 0) : &dy(b, c, 0, 0);
        const T* xr = &x(b, c, 0, 0);
        T* out = &dx(b, c, 0, 0);
        for (int w = 0; w < HW; ++w) {
          const T xhat = (xr[w] - m) * r;
          T go = dyr[w];
          if (silu && !keep) {
            const T a = gc * xhat + bc;
            const T sg = compat::sigmoid(a);
            go *= sg * (T(1) + a * (T(1) - sg));
          }
          const T v = r * (gc * go - mdx - xhat * mdxx);
          out[w] = accumulate ? out[w] + v : v;
        }
      });
  Kokkos::parallel_for(
      "dmis::groupnorm::bwd_affine", Kokkos::RangePolicy<Exec>(exec, 0, C), KOKKOS_LAMBDA(int c) {
        const int g = c / cpg;
        T dg = 0, db = 0;
        for (int b = 0; b < B; ++b) {  // fixed order over the batch: deterministic
          dg += rstd(b, g) * s2(b, c);
          db += s1(b, c);
        }
        dgamma(c) += dg;
        dbeta(c) += db;
      });
}

#define DMIS_INST(E, T) template struct GroupNorm<E, T>;
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

}  // namespace dmis::kernels
