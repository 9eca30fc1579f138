#include "kernels/dropout.hpp"

#include "kernels/eti.hpp"

namespace dmis::kernels {

namespace {
template <class Exec, class T>
void apply(const char* label, const Exec& exec, const Tensor4<const T, Exec>& in,
           const Tensor4<T, Exec>& out, bool accumulate, float p, uint64_t seed, uint32_t step,
           rng::SampleIds ids) {
  const int B = in.extent(0), n = in.extent(1) * in.extent(2) * in.extent(3);
  expect_shape(label, "output", out, {B, static_cast<long>(in.extent(1)),
                                      static_cast<long>(in.extent(2)),
                                      static_cast<long>(in.extent(3))});
  expect(p >= 0 && p < 1, label, cat("dropout probability must be in [0, 1), got ", p));
  const rng::Philox gen(seed, rng::kDropout);
  const T keep_scale = T(1) / (T(1) - T(p));
  const T pt = T(p);
  Kokkos::parallel_for(
      label, Kokkos::RangePolicy<Exec>(exec, 0, static_cast<size_t>(B) * n),
      KOKKOS_LAMBDA(size_t r) {
        const int b = static_cast<int>(r / n), i = static_cast<int>(r % n);
        const bool keep = rng::uniform<T>(gen, step, ids(b), i) >= pt;
        const T v = keep ? (&in(b, 0, 0, 0))[i] * keep_scale : T(0);
        T& o = (&out(b, 0, 0, 0))[i];
        o = accumulate ? o + v : v;
      });
}
}  // namespace

template <class Exec, class T>
void Dropout<Exec, T>::forward(const Exec& exec, const CX& x, const X& y, float p, uint64_t seed,
                               uint32_t step, rng::SampleIds ids) {
  apply<Exec, T>("dmis::dropout::fwd", exec, x, y, false, p, seed, step, ids);
}

template <class Exec, class T>
void Dropout<Exec, T>::backward(const Exec& exec, const CX& dy, const X& dx, GradMode mode,
                                float p, uint64_t seed, uint32_t step, rng::SampleIds ids) {
  apply<Exec, T>("dmis::dropout::bwd", exec, dy, dx, mode == GradMode::Accumulate, p, seed, step,
                 ids);
}

#define DMIS_INST(E, T) template struct Dropout<E, T>;
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

}  // namespace dmis::kernels
