#include "kernels/activation.hpp"

#include "kernels/eti.hpp"

namespace dmis::kernels {

template <class Exec, class T>
void SiLU<Exec, T>::forward(const Exec& exec, const CV& x, const V& y) {
  expect_shape("dmis::silu::forward", "y", y, {static_cast<long>(x.extent(0))});
  Kokkos::parallel_for(
      "dmis::silu::fwd", Kokkos::RangePolicy<Exec>(exec, 0, x.extent(0)), KOKKOS_LAMBDA(size_t i) {
        const T v = x(i);
        y(i) = v * compat::sigmoid(v);
      });
}

template <class Exec, class T>
void SiLU<Exec, T>::backward(const Exec& exec, const CV& dy, const CV& x, const V& dx,
                             GradMode mode) {
  const char* op = "dmis::silu::backward";
  expect_shape(op, "dy", dy, {static_cast<long>(x.extent(0))});
  expect_shape(op, "dx", dx, {static_cast<long>(x.extent(0))});
  const bool accumulate = mode == GradMode::Accumulate;
  Kokkos::parallel_for(
      "dmis::silu::bwd", Kokkos::RangePolicy<Exec>(exec, 0, x.extent(0)), KOKKOS_LAMBDA(size_t i) {
        const T v = x(i);
        const T sg = compat::sigmoid(v);
        const T g = dy(i) * sg * (T(1) + v * (T(1) - sg));
        dx(i) = accumulate ? dx(i) + g : g;
      });
}

#define DMIS_INST(E, T) template struct SiLU<E, T>;
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

}  // namespace dmis::kernels
