#include "kernels/loss.hpp"

#include "kernels/eti.hpp"

namespace dmis::kernels {

template <class Exec, class T>
void MSE<Exec, T>::forward(const Exec& exec, const CX& pred, const CX& target, const CV1& weight,
                           const V1& per_sample, const V1& total) {
  const char* op = "dmis::mse::forward";
  const int B = pred.extent(0), C = pred.extent(1), H = pred.extent(2), W = pred.extent(3);
  expect(B > 0 && C * H * W > 0, op, cat("empty tensor pred ", detail::shape_string(pred)));
  expect_shape(op, "target", target, {B, C, H, W});
  const bool weighted = weight.extent(0) != 0;
  if (weighted) expect_shape(op, "weight", weight, {B});
  expect_shape(op, "per_sample", per_sample, {B});
  expect_shape(op, "total", total, {1});
  const int n = C * H * W;
  using Policy = Kokkos::TeamPolicy<Exec>;
  Policy policy(exec, B, Kokkos::AUTO);
  policy.set_scratch_size(0, Kokkos::PerTeam(team_sum_scratch_bytes<T>()));
  Kokkos::parallel_for(
      "dmis::mse::fwd_per_sample", policy, KOKKOS_LAMBDA(const typename Policy::member_type& team) {
        const int b = team.league_rank();
        const T* p = &pred(b, 0, 0, 0);
        const T* t = &target(b, 0, 0, 0);
        const T s = team_sum(team, n, team_partials<T>(team), [&](int i) {
          const T d = p[i] - t[i];
          return d * d;
        });
        Kokkos::single(Kokkos::PerTeam(team),
                       [&]() { per_sample(b) = (weighted ? weight(b) : T(1)) * s / T(n); });
      });
  Kokkos::parallel_for(
      "dmis::mse::fwd_total", Kokkos::RangePolicy<Exec>(exec, 0, 1), KOKKOS_LAMBDA(int) {
        T s = 0;
        for (int b = 0; b < B; ++b) s += per_sample(b);
        total(0) = s / T(B);
      });
}

template <class Exec, class T>
void MSE<Exec, T>::backward(const Exec& exec, T dloss, const CX& pred, const CX& target,
                            const CV1& weight, const X& dpred, GradMode mode) {
  const char* op = "dmis::mse::backward";
  const int B = pred.extent(0), C = pred.extent(1), H = pred.extent(2), W = pred.extent(3);
  expect_shape(op, "target", target, {B, C, H, W});
  expect_shape(op, "dpred", dpred, {B, C, H, W});
  const bool weighted = weight.extent(0) != 0;
  if (weighted) expect_shape(op, "weight", weight, {B});
  const int n = C * H * W;
  const T scale = dloss * T(2) / (T(n) * T(B));
  const bool accumulate = mode == GradMode::Accumulate;
  Kokkos::parallel_for(
      "dmis::mse::bwd", Kokkos::RangePolicy<Exec>(exec, 0, B * C * H), KOKKOS_LAMBDA(int r) {
        const int b = r / (C * H);
        const T s = scale * (weighted ? weight(b) : T(1));
        const T* p = &pred(b, 0, 0, 0) + (r % (C * H)) * W;
        const T* t = &target(b, 0, 0, 0) + (r % (C * H)) * W;
        T* out = &dpred(b, 0, 0, 0) + (r % (C * H)) * W;
        for (int w = 0; w < W; ++w) {
          const T g = s * (p[w] - t[w]);
          out[w] = accumulate ? out[w] + g : g;
        }
      });
}

#define DMIS_INST(E, T) template struct MSE<E, T>;
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

}  // namespace dmis::kernels
