#include "kernels/linear.hpp"

#include "kernels/eti.hpp"

namespace dmis::kernels {

template <class Exec, class T>
void Linear<Exec, T>::forward(const Exec& exec, const CM& x, const CM& w, const CV1& b,
                              const M& y) {
  const char* op = "dmis::linear::forward";
  const int B = static_cast<int>(x.extent(0)), In = static_cast<int>(x.extent(1));
  const int Out = static_cast<int>(w.extent(0));
  expect(B > 0 && In > 0 && Out > 0, op, "empty tensor");
  expect_shape(op, "w", w, {Out, In});
  expect_shape(op, "y", y, {B, Out});
  const bool has_bias = b.extent(0) != 0;
  if (has_bias) expect_shape(op, "b", b, {Out});
  compat::gemm(exec, "N", "T", T(1), x, w, T(0), y);
  if (!has_bias) return;
  Kokkos::parallel_for(
      "dmis::linear::bias", Kokkos::RangePolicy<Exec>(exec, 0, B * Out),
      KOKKOS_LAMBDA(int i) { y(i / Out, i % Out) += b(i % Out); });
}

template <class Exec, class T>
void Linear<Exec, T>::backward(const Exec& exec, const CM& dy, const CM& x, const CM& w,
                               const M& dx, GradMode mode, const M& dw, const V1& db) {
  const char* op = "dmis::linear::backward";
  const int B = static_cast<int>(x.extent(0)), In = static_cast<int>(x.extent(1));
  const int Out = static_cast<int>(w.extent(0));
  expect_shape(op, "w", w, {Out, In});
  expect_shape(op, "dy", dy, {B, Out});
  expect_shape(op, "dw", dw, {Out, In});
  const bool want_dx = dx.extent(0) != 0;
  if (want_dx) expect_shape(op, "dx", dx, {B, In});
  const bool has_bias = db.extent(0) != 0;
  if (has_bias) expect_shape(op, "db", db, {Out});
  // dw (Out, In) += dy^T (Out, B) x (B, In)
  compat::gemm(exec, "T", "N", T(1), dy, x, T(1), dw);
  // dx (B, In) = dy (B, Out) w (Out, In)
  if (want_dx)
    compat::gemm(exec, "N", "N", T(1), dy, w, mode == GradMode::Accumulate ? T(1) : T(0), dx);
  if (!has_bias) return;
  Kokkos::parallel_for(
      "dmis::linear::bias_grad", Kokkos::RangePolicy<Exec>(exec, 0, Out), KOKKOS_LAMBDA(int o) {
        T s = 0;
        for (int bi = 0; bi < B; ++bi) s += dy(bi, o);  // fixed order: deterministic
        db(o) += s;
      });
}

#define DMIS_INST(E, T) template struct Linear<E, T>;
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

}  // namespace dmis::kernels
