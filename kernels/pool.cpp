#include "kernels/pool.hpp"

#include "kernels/eti.hpp"

namespace dmis::kernels {

template <class Exec, class T>
void GlobalAvgPool<Exec, T>::forward(const Exec& exec, const CX& x, const M& y) {
  const char* op = "dmis::avgpool::forward";
  const int B = x.extent(0), C = x.extent(1), H = x.extent(2), W = x.extent(3);
  expect(B > 0 && C > 0 && H * W > 0, op, cat("empty tensor x ", detail::shape_string(x)));
  expect_shape(op, "y", y, {B, C});
  const int n = H * W;
  const T inv = T(1) / T(n);
  Kokkos::parallel_for(
      "dmis::avgpool::fwd", Kokkos::RangePolicy<Exec>(exec, 0, B * C), KOKKOS_LAMBDA(int r) {
        const T* p = &x(r / C, r % C, 0, 0);
        T s = 0;
        for (int i = 0; i < n; ++i)
          s += p[i]; // fixed order: deterministic
        y(r / C, r % C) = s * inv;
      });
}

template <class Exec, class T>
void GlobalAvgPool<Exec, T>::backward(const Exec& exec, const CM& dy, const X& dx, GradMode mode) {
  const char* op = "dmis::avgpool::backward";
  const int B = dx.extent(0), C = dx.extent(1), H = dx.extent(2), W = dx.extent(3);
  expect(B > 0 && C > 0 && H * W > 0, op, cat("empty tensor dx ", detail::shape_string(dx)));
  expect_shape(op, "dy", dy, {B, C});
  const int n = H * W;
  const T inv = T(1) / T(n);
  const bool accumulate = mode == GradMode::Accumulate;
  Kokkos::parallel_for(
      "dmis::avgpool::bwd", Kokkos::RangePolicy<Exec>(exec, 0, B * C), KOKKOS_LAMBDA(int r) {
        const T g = dy(r / C, r % C) * inv;
        T* out = &dx(r / C, r % C, 0, 0);
        for (int i = 0; i < n; ++i)
          out[i] = accumulate ? out[i] + g : g;
      });
}

#define DMIS_INST(E, T) template struct GlobalAvgPool<E, T>;
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

} // namespace dmis::kernels
