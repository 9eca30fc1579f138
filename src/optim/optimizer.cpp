#include "optim/optimizer.hpp"

#include <cmath>

#include "kernels/common.hpp"
#include "kernels/eti.hpp"

namespace dmis::optim {

using kernels::expect_shape;

namespace {
constexpr size_t kNormBlock = 8192;  // elements per partial sum
}

template <class Exec, class T>
size_t Optimizer<Exec, T>::norm_scratch_size(size_t n) {
  return (n + kNormBlock - 1) / kNormBlock;
}

template <class Exec, class T>
void Optimizer<Exec, T>::grad_norm2(const Exec& exec, const CV1& grads, const V1& scratch,
                                    const V1& norm2) {
  const char* op = "dmis::optim::grad_norm2";
  const size_t n = grads.extent(0), blocks = norm_scratch_size(n);
  kernels::expect(scratch.extent(0) >= blocks, op,
                  cat("scratch has ", scratch.extent(0), " elements, needs ", blocks));
  expect_shape(op, "norm2", norm2, {1});
  using Policy = Kokkos::TeamPolicy<Exec>;
  Policy policy(exec, static_cast<int>(blocks), Kokkos::AUTO);
  policy.set_scratch_size(0, Kokkos::PerTeam(kernels::team_sum_scratch_bytes<T>()));
  Kokkos::parallel_for(
      "dmis::optim::grad_norm_partials", policy,
      KOKKOS_LAMBDA(const typename Policy::member_type& team) {
        const size_t first = static_cast<size_t>(team.league_rank()) * kNormBlock;
        const int len = static_cast<int>(n - first < kNormBlock ? n - first : kNormBlock);
        const T s = kernels::team_sum(team, len, kernels::team_partials<T>(team), [&](int i) {
          const T g = grads(first + i);
          return g * g;
        });
        Kokkos::single(Kokkos::PerTeam(team), [&]() { scratch(team.league_rank()) = s; });
      });
  Kokkos::parallel_for(
      "dmis::optim::grad_norm_total", Kokkos::RangePolicy<Exec>(exec, 0, 1), KOKKOS_LAMBDA(int) {
        T s = 0;
        for (size_t b = 0; b < blocks; ++b) s += scratch(b);
        norm2(0) = s;
      });
}

template <class Exec, class T>
void Optimizer<Exec, T>::adamw(const Exec& exec, const AdamWConfig& cfg, double lr, long step,
                               const V1& params, const CV1& grads, const V1& m, const V1& v,
                               const CV1& norm2) {
  const char* op = "dmis::optim::adamw";
  const long n = static_cast<long>(params.extent(0));
  expect_shape(op, "grads", grads, {n});
  expect_shape(op, "adam_m", m, {n});
  expect_shape(op, "adam_v", v, {n});
  kernels::expect(step >= 1, op, cat("step must count from 1, got ", step));
  const bool clip = cfg.grad_clip > 0;
  if (clip) expect_shape(op, "norm2", norm2, {1});
  const T b1 = T(cfg.beta1), b2 = T(cfg.beta2), eps = T(cfg.eps), max_norm = T(cfg.grad_clip);
  const T bc1 = T(1.0 - std::pow(cfg.beta1, static_cast<double>(step)));
  const T bc2_sqrt = T(std::sqrt(1.0 - std::pow(cfg.beta2, static_cast<double>(step))));
  const T step_size = T(lr) / bc1;
  const T decay = T(1.0 - lr * cfg.weight_decay);
  Kokkos::parallel_for(
      "dmis::optim::adamw", Kokkos::RangePolicy<Exec>(exec, 0, params.extent(0)),
      KOKKOS_LAMBDA(size_t i) {
        T scale = T(1);
        if (clip) {
          const T norm = compat::sqrt(norm2(0));
          const T c = max_norm / (norm + T(1e-6));
          scale = c < T(1) ? c : T(1);
        }
        const T g = grads(i) * scale;
        const T mi = b1 * m(i) + (T(1) - b1) * g;
        const T vi = b2 * v(i) + (T(1) - b2) * g * g;
        m(i) = mi;
        v(i) = vi;
        params(i) = params(i) * decay - step_size * mi / (compat::sqrt(vi) / bc2_sqrt + eps);
      });
}

template <class Exec, class T>
void Optimizer<Exec, T>::ema_update(const Exec& exec, double beta, const CV1& params,
                                    const V1& ema) {
  expect_shape("dmis::optim::ema", "ema", ema, {static_cast<long>(params.extent(0))});
  const T b = T(beta);
  Kokkos::parallel_for(
      "dmis::optim::ema", Kokkos::RangePolicy<Exec>(exec, 0, params.extent(0)),
      KOKKOS_LAMBDA(size_t i) { ema(i) = b * ema(i) + (T(1) - b) * params(i); });
}

template <class Exec, class T>
void Optimizer<Exec, T>::fill(const Exec& exec, const V1& x, T value) {
  Kokkos::parallel_for(
      "dmis::optim::fill", Kokkos::RangePolicy<Exec>(exec, 0, x.extent(0)),
      KOKKOS_LAMBDA(size_t i) { x(i) = value; });
}

template <class Exec, class T>
void Optimizer<Exec, T>::copy(const Exec& exec, const CV1& src, const V1& dst) {
  expect_shape("dmis::optim::copy", "dst", dst, {static_cast<long>(src.extent(0))});
  Kokkos::parallel_for(
      "dmis::optim::copy", Kokkos::RangePolicy<Exec>(exec, 0, src.extent(0)),
      KOKKOS_LAMBDA(size_t i) { dst(i) = src(i); });
}

#define DMIS_INST(E, T) template struct Optimizer<E, T>;
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

}  // namespace dmis::optim
