#include "kernels/embedding.hpp"

#include <cmath>

#include "kernels/eti.hpp"

namespace dmis::kernels {

template <class Exec, class T>
void SinusoidalEmbedding<Exec, T>::forward(const Exec& exec, const CV1& c, const M& y) {
  const char* op = "dmis::sinusoidal::forward";
  const int B = c.extent(0), D = y.extent(1);
  expect(D > 0 && D % 2 == 0, op, cat("embedding width must be even and > 0, got ", D));
  expect_shape(op, "y", y, {B, D});
  const int half = D / 2;
  const T k = -std::log(T(10000)) / T(half);
  Kokkos::parallel_for(
      "dmis::sinusoidal::fwd", Kokkos::RangePolicy<Exec>(exec, 0, B * half), KOKKOS_LAMBDA(int r) {
        const int b = r / half, i = r % half;
        const T arg = c(b) * compat::exp(k * T(i));
        y(b, i) = compat::cos(arg);
        y(b, half + i) = compat::sin(arg);
      });
}

template <class Exec, class T>
void SinusoidalEmbedding<Exec, T>::backward(const Exec& exec, const CM& dy, const CV1& c,
                                            const V1& dc, GradMode mode) {
  const char* op = "dmis::sinusoidal::backward";
  const int B = c.extent(0), D = dy.extent(1);
  expect(D > 0 && D % 2 == 0, op, cat("embedding width must be even and > 0, got ", D));
  expect_shape(op, "dy", dy, {B, D});
  expect_shape(op, "dc", dc, {B});
  const int half = D / 2;
  const T k = -std::log(T(10000)) / T(half);
  const bool accumulate = mode == GradMode::Accumulate;
  Kokkos::parallel_for(
      "dmis::sinusoidal::bwd", Kokkos::RangePolicy<Exec>(exec, 0, B), KOKKOS_LAMBDA(int b) {
        T s = 0;
        for (int i = 0; i < half; ++i) {
          const T f = compat::exp(k * T(i));
          const T arg = c(b) * f;
          s += f * (dy(b, half + i) * compat::cos(arg) - dy(b, i) * compat::sin(arg));
        }
        dc(b) = accumulate ? dc(b) + s : s;
      });
}

template <class Exec, class T>
void ClassEmbedding<Exec, T>::forward(const Exec& exec, const L& labels, const CM& table,
                                      const M& y, GradMode mode) {
  const char* op = "dmis::class_embedding::forward";
  const int B = labels.extent(0), rows = table.extent(0), D = table.extent(1);
  expect_shape(op, "y", y, {B, D});
  const bool accumulate = mode == GradMode::Accumulate;
  Kokkos::parallel_for(
      "dmis::class_embedding::fwd", Kokkos::RangePolicy<Exec>(exec, 0, B * D),
      KOKKOS_LAMBDA(int r) {
        const int b = r / D, d = r % D, l = labels(b);
        const T v = (l >= 0 && l < rows) ? table(l, d) : T(0);
        y(b, d) = accumulate ? y(b, d) + v : v;
      });
}

template <class Exec, class T>
void ClassEmbedding<Exec, T>::backward(const Exec& exec, const CM& dy, const L& labels,
                                       const M& dtable) {
  const char* op = "dmis::class_embedding::backward";
  const int B = labels.extent(0), rows = dtable.extent(0), D = dtable.extent(1);
  expect_shape(op, "dy", dy, {B, D});
  Kokkos::parallel_for(
      "dmis::class_embedding::bwd", Kokkos::RangePolicy<Exec>(exec, 0, rows * D),
      KOKKOS_LAMBDA(int r) {
        const int k = r / D, d = r % D;
        T s = 0;
        for (int b = 0; b < B; ++b)
          if (labels(b) == k) s += dy(b, d);
        dtable(k, d) += s;
      });
}

template <class Exec, class T>
int ClassEmbedding<Exec, T>::count_out_of_range(const Exec& exec, const L& labels, int rows) {
  int bad = 0;
  Kokkos::parallel_reduce(
      "dmis::class_embedding::check_labels", Kokkos::RangePolicy<Exec>(exec, 0, labels.extent(0)),
      KOKKOS_LAMBDA(int b, int& acc) { acc += (labels(b) < 0 || labels(b) >= rows) ? 1 : 0; }, bad);
  return bad;
}

#define DMIS_INST(E, T)                                                                          \
  template struct SinusoidalEmbedding<E, T>;                                                     \
  template struct ClassEmbedding<E, T>;
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

}  // namespace dmis::kernels
