#include "kernels/tensor_ops.hpp"

#include "kernels/eti.hpp"

namespace dmis::kernels {

template <class Exec, class T>
void Upsample2x<Exec, T>::forward(const Exec& exec, const CX& x, const X& y) {
  const int B = x.extent(0), C = x.extent(1), H = x.extent(2), W = x.extent(3);
  expect_shape("dmis::upsample::forward", "y", y, {B, C, 2 * H, 2 * W});
  Kokkos::parallel_for(
      "dmis::upsample::fwd", Kokkos::RangePolicy<Exec>(exec, 0, B * C * 2 * H),
      KOKKOS_LAMBDA(int r) {
        const int oh = r % (2 * H), c = (r / (2 * H)) % C, b = r / (2 * H * C);
        const T* in = &x(b, c, oh / 2, 0);
        T* out = &y(b, c, oh, 0);
        for (int ow = 0; ow < 2 * W; ++ow) out[ow] = in[ow / 2];
      });
}

template <class Exec, class T>
void Upsample2x<Exec, T>::backward(const Exec& exec, const CX& dy, const X& dx, GradMode mode) {
  const int B = dx.extent(0), C = dx.extent(1), H = dx.extent(2), W = dx.extent(3);
  expect_shape("dmis::upsample::backward", "dy", dy, {B, C, 2 * H, 2 * W});
  const bool accumulate = mode == GradMode::Accumulate;
  Kokkos::parallel_for(
      "dmis::upsample::bwd", Kokkos::RangePolicy<Exec>(exec, 0, B * C * H), KOKKOS_LAMBDA(int r) {
        const int h = r % H, c = (r / H) % C, b = r / (H * C);
        const T* r0 = &dy(b, c, 2 * h, 0);
        const T* r1 = &dy(b, c, 2 * h + 1, 0);
        T* out = &dx(b, c, h, 0);
        for (int w = 0; w < W; ++w) {
          const T g = (r0[2 * w] + r0[2 * w + 1]) + (r1[2 * w] + r1[2 * w + 1]);
          out[w] = accumulate ? out[w] + g : g;
        }
      });
}

template <class Exec, class T>
void Concat<Exec, T>::forward(const Exec& exec, const CX& a, const CX& b, const X& y) {
  const char* op = "dmis::concat::forward";
  const int B = a.extent(0), Ca = a.extent(1), H = a.extent(2), W = a.extent(3);
  const int Cb = b.extent(1);
  expect_shape(op, "b", b, {B, -1, H, W});
  expect_shape(op, "y", y, {B, Ca + Cb, H, W});
  const int HW = H * W, C = Ca + Cb;
  Kokkos::parallel_for(
      "dmis::concat::fwd", Kokkos::RangePolicy<Exec>(exec, 0, B * C), KOKKOS_LAMBDA(int r) {
        const int c = r % C, bi = r / C;
        const T* in = c < Ca ? &a(bi, c, 0, 0) : &b(bi, c - Ca, 0, 0);
        T* out = &y(bi, c, 0, 0);
        for (int i = 0; i < HW; ++i) out[i] = in[i];
      });
}

template <class Exec, class T>
void Concat<Exec, T>::backward(const Exec& exec, const CX& dy, const X& da, GradMode mode_a,
                               const X& db, GradMode mode_b) {
  const char* op = "dmis::concat::backward";
  const int B = da.extent(0), Ca = da.extent(1), H = da.extent(2), W = da.extent(3);
  const int Cb = db.extent(1);
  expect_shape(op, "db", db, {B, -1, H, W});
  expect_shape(op, "dy", dy, {B, Ca + Cb, H, W});
  const int HW = H * W, C = Ca + Cb;
  const bool acc_a = mode_a == GradMode::Accumulate, acc_b = mode_b == GradMode::Accumulate;
  Kokkos::parallel_for(
      "dmis::concat::bwd", Kokkos::RangePolicy<Exec>(exec, 0, B * C), KOKKOS_LAMBDA(int r) {
        const int c = r % C, bi = r / C;
        const T* in = &dy(bi, c, 0, 0);
        const bool first = c < Ca;
        T* out = first ? &da(bi, c, 0, 0) : &db(bi, c - Ca, 0, 0);
        const bool acc = first ? acc_a : acc_b;
        for (int i = 0; i < HW; ++i) out[i] = acc ? out[i] + in[i] : in[i];
      });
}

template <class Exec, class T>
void Add<Exec, T>::forward(const Exec& exec, const CV& a, const CV& b, const V& y) {
  const long n = static_cast<long>(a.extent(0));
  expect_shape("dmis::add::forward", "b", b, {n});
  expect_shape("dmis::add::forward", "y", y, {n});
  Kokkos::parallel_for(
      "dmis::add::fwd", Kokkos::RangePolicy<Exec>(exec, 0, a.extent(0)),
      KOKKOS_LAMBDA(size_t i) { y(i) = a(i) + b(i); });
}

template <class Exec, class T>
void Add<Exec, T>::backward(const Exec& exec, const CV& dy, const V& da, GradMode mode_a,
                            const V& db, GradMode mode_b) {
  const long n = static_cast<long>(dy.extent(0));
  expect_shape("dmis::add::backward", "da", da, {n});
  expect_shape("dmis::add::backward", "db", db, {n});
  const bool acc_a = mode_a == GradMode::Accumulate, acc_b = mode_b == GradMode::Accumulate;
  Kokkos::parallel_for(
      "dmis::add::bwd", Kokkos::RangePolicy<Exec>(exec, 0, dy.extent(0)), KOKKOS_LAMBDA(size_t i) {
        const T g = dy(i);
        da(i) = acc_a ? da(i) + g : g;
        db(i) = acc_b ? db(i) + g : g;
      });
}

template <class Exec, class T>
void AddTo<Exec, T>::apply(const Exec& exec, const CV& x, const V& y, GradMode mode) {
  expect_shape("dmis::add_to", "y", y, {static_cast<long>(x.extent(0))});
  const bool accumulate = mode == GradMode::Accumulate;
  Kokkos::parallel_for(
      "dmis::add_to", Kokkos::RangePolicy<Exec>(exec, 0, x.extent(0)),
      KOKKOS_LAMBDA(size_t i) { y(i) = accumulate ? y(i) + x(i) : x(i); });
}

template <class Exec, class T>
void ChannelAdd<Exec, T>::forward(const Exec& exec, const CX& x, const CM& e, const X& y) {
  const char* op = "dmis::channel_add::forward";
  const int B = x.extent(0), C = x.extent(1), H = x.extent(2), W = x.extent(3);
  expect_shape(op, "e", e, {B, C});
  expect_shape(op, "y", y, {B, C, H, W});
  const int HW = H * W;
  Kokkos::parallel_for(
      "dmis::channel_add::fwd", Kokkos::RangePolicy<Exec>(exec, 0, B * C), KOKKOS_LAMBDA(int r) {
        const int c = r % C, b = r / C;
        const T v = e(b, c);
        const T* in = &x(b, c, 0, 0);
        T* out = &y(b, c, 0, 0);
        for (int i = 0; i < HW; ++i) out[i] = in[i] + v;
      });
}

template <class Exec, class T>
void ChannelAdd<Exec, T>::backward(const Exec& exec, const CX& dy, const M& de, GradMode mode) {
  const int B = dy.extent(0), C = dy.extent(1), H = dy.extent(2), W = dy.extent(3);
  expect_shape("dmis::channel_add::backward", "de", de, {B, C});
  const int HW = H * W;
  const bool accumulate = mode == GradMode::Accumulate;
  using Policy = Kokkos::TeamPolicy<Exec>;
  Policy policy(exec, B * C, Kokkos::AUTO);
  policy.set_scratch_size(0, Kokkos::PerTeam(team_sum_scratch_bytes<T>()));
  Kokkos::parallel_for(
      "dmis::channel_add::bwd", policy, KOKKOS_LAMBDA(const typename Policy::member_type& team) {
        const int b = team.league_rank() / C, c = team.league_rank() % C;
        const T* g = &dy(b, c, 0, 0);
        const T s = team_sum(team, HW, team_partials<T>(team), [&](int i) { return g[i]; });
        Kokkos::single(Kokkos::PerTeam(team), [&]() { de(b, c) = accumulate ? de(b, c) + s : s; });
      });
}

#define DMIS_INST(E, T)                                                                          \
  template struct Upsample2x<E, T>;                                                              \
  template struct Concat<E, T>;                                                                  \
  template struct Add<E, T>;                                                                     \
  template struct AddTo<E, T>;                                                                   \
  template struct ChannelAdd<E, T>;
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

}  // namespace dmis::kernels
