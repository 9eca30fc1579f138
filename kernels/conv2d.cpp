#include "kernels/conv2d.hpp"

#include <algorithm>

#include "kernels/eti.hpp"

namespace dmis::kernels {

template <class Exec, class T>
Conv2dGeometry Conv2d<Exec, T>::geometry(const char* op, const CX& x, const CX& w, int stride) {
  Conv2dGeometry g{};
  g.B = static_cast<int>(x.extent(0));
  g.Cin = static_cast<int>(x.extent(1));
  g.H = static_cast<int>(x.extent(2));
  g.W = static_cast<int>(x.extent(3));
  g.Cout = static_cast<int>(w.extent(0));
  g.k = static_cast<int>(w.extent(2));
  expect(stride == 1 || stride == 2, op, cat("stride must be 1 or 2, got ", stride));
  expect(g.k % 2 == 1, op, cat("kernel size must be odd, got ", g.k));
  expect_shape(op, "w", w, {-1, g.Cin, g.k, g.k});
  expect(g.B > 0 && g.Cin > 0 && g.H > 0 && g.W > 0 && g.Cout > 0, op,
         cat("empty tensor: x ", detail::shape_string(x), ", w ", detail::shape_string(w)));
  g.stride = stride;
  g.pad = (g.k - 1) / 2;
  g.Ho = (g.H + 2 * g.pad - g.k) / stride + 1;
  g.Wo = (g.W + 2 * g.pad - g.k) / stride + 1;
  return g;
}

template <class Exec, class T>
size_t Conv2d<Exec, T>::scratch_size(const Conv2dGeometry& g, int chunk) {
  return static_cast<size_t>(chunk) * g.P() * (static_cast<size_t>(g.K()) + g.Cout);
}

namespace {

// Samples per chunk that fit in the scratch.
inline int chunk_for(const char* op, const Conv2dGeometry& g, size_t scratch_elems) {
  const size_t per_sample = static_cast<size_t>(g.P()) * (static_cast<size_t>(g.K()) + g.Cout);
  const size_t nb = scratch_elems / per_sample;
  expect(nb >= 1, op,
         cat("scratch of ", scratch_elems, " elements is smaller than one sample needs (",
             per_sample, ")"));
  return static_cast<int>(std::min<size_t>(nb, static_cast<size_t>(g.B)));
}

// col (K, nb*P) <- unfold x[b0, b0+nb)
template <class Exec, class T>
void im2col(const Exec& exec, const Conv2dGeometry& g, const Tensor4<const T, Exec>& x, int b0,
            int nb, const Tensor2<T, Exec>& col) {
  const int kk = g.k * g.k, k = g.k, s = g.stride, pad = g.pad, H = g.H, W = g.W;
  const int Ho = g.Ho, Wo = g.Wo, P = g.P();
  const int rows = g.K() * nb * Ho;  // one (tap, sample, output row) per iteration
  Kokkos::parallel_for(
      "dmis::conv2d::im2col", Kokkos::RangePolicy<Exec>(exec, 0, rows), KOKKOS_LAMBDA(int r) {
        const int oh = r % Ho;
        const int bl = (r / Ho) % nb;
        const int kidx = r / (Ho * nb);
        const int ci = kidx / kk, t = kidx % kk, ky = t / k, kx = t % k;
        const int ih = oh * s - pad + ky;
        T* out = &col(kidx, bl * P + oh * Wo);
        if (ih < 0 || ih >= H) {
          for (int ow = 0; ow < Wo; ++ow) out[ow] = T(0);
          return;
        }
        const T* in = &x(b0 + bl, ci, ih, 0);
        for (int ow = 0; ow < Wo; ++ow) {
          const int iw = ow * s - pad + kx;
          out[ow] = (iw >= 0 && iw < W) ? in[iw] : T(0);
        }
      });
}

}  // namespace

template <class Exec, class T>
void Conv2d<Exec, T>::forward(const Exec& exec, const CX& x, const CX& w, const CV1& bias,
                              int stride, const X& y, const V1& scratch, bool accumulate) {
  const char* op = "dmis::conv2d::forward";
  const Conv2dGeometry g = geometry(op, x, w, stride);
  expect_shape(op, "y", y, {g.B, g.Cout, g.Ho, g.Wo});
  if (bias.extent(0) != 0) expect_shape(op, "bias", bias, {g.Cout});
  const int chunk = chunk_for(op, g, scratch.extent(0));
  const bool has_bias = bias.extent(0) != 0;
  const int K = g.K(), P = g.P(), Cout = g.Cout;
  Tensor2<const T, Exec> w2(w.data(), Cout, K);  // (Cout, K)

  for (int b0 = 0; b0 < g.B; b0 += chunk) {
    const int nb = std::min(chunk, g.B - b0);
    Tensor2<T, Exec> col(scratch.data(), K, static_cast<size_t>(nb) * P);                    // (K, nb*P)
    Tensor2<T, Exec> tmp(scratch.data() + static_cast<size_t>(K) * nb * P, Cout, nb * P);  // (Cout, nb*P)
    im2col<Exec, T>(exec, g, x, b0, nb, col);
    compat::gemm(exec, "N", "N", T(1), w2, Tensor2<const T, Exec>(col), T(0), tmp);
    Kokkos::parallel_for(
        "dmis::conv2d::scatter_bias", Kokkos::RangePolicy<Exec>(exec, 0, Cout * nb),
        KOKKOS_LAMBDA(int r) {
          const int co = r % Cout, bl = r / Cout;
          const T bv = has_bias ? bias(co) : T(0);
          const T* src = &tmp(co, bl * P);
          T* dst = &y(b0 + bl, co, 0, 0);
          if (accumulate)
            for (int p = 0; p < P; ++p) dst[p] += src[p] + bv;
          else
            for (int p = 0; p < P; ++p) dst[p] = src[p] + bv;
        });
  }
}

template <class Exec, class T>
void Conv2d<Exec, T>::backward(const Exec& exec, const CX& dy, const CX& x, const CX& w,
                               int stride, const X& dx, GradMode mode, const X& dw, const V1& db,
                               const V1& scratch) {
  const char* op = "dmis::conv2d::backward";
  const Conv2dGeometry g = geometry(op, x, w, stride);
  expect_shape(op, "dy", dy, {g.B, g.Cout, g.Ho, g.Wo});
  expect_shape(op, "dw", dw, {g.Cout, g.Cin, g.k, g.k});
  const bool want_dx = dx.extent(0) != 0;
  if (want_dx) expect_shape(op, "dx", dx, {g.B, g.Cin, g.H, g.W});
  const bool has_bias = db.extent(0) != 0;
  if (has_bias) expect_shape(op, "db", db, {g.Cout});
  const int chunk = chunk_for(op, g, scratch.extent(0));
  const int K = g.K(), P = g.P(), Cout = g.Cout, B = g.B;
  const int kk = g.k * g.k, k = g.k, s = g.stride, pad = g.pad, H = g.H, W = g.W, Cin = g.Cin;
  const int Ho = g.Ho, Wo = g.Wo;
  Tensor2<const T, Exec> w2(w.data(), Cout, K);  // (Cout, K)
  Tensor2<T, Exec> dw2(dw.data(), Cout, K);      // (Cout, K)

  if (has_bias) {
    // db(co) += sum over (b, p) of dy(b, co, p), in a fixed order.
    using Policy = Kokkos::TeamPolicy<Exec>;
    Policy policy(exec, Cout, Kokkos::AUTO);
    policy.set_scratch_size(0, Kokkos::PerTeam(team_sum_scratch_bytes<T>()));
    Kokkos::parallel_for(
        "dmis::conv2d::bias_grad", policy, KOKKOS_LAMBDA(const typename Policy::member_type& team) {
          const int co = team.league_rank();
          T* partials = team_partials<T>(team);
          const T s = team_sum(team, B * P, partials,
                               [&](int i) { return dy(i / P, co, (i % P) / Wo, i % Wo); });
          Kokkos::single(Kokkos::PerTeam(team), [&]() { db(co) += s; });
        });
  }

  const bool accumulate = (mode == GradMode::Accumulate);
  for (int b0 = 0; b0 < B; b0 += chunk) {
    const int nb = std::min(chunk, B - b0);
    Tensor2<T, Exec> col(scratch.data(), K, static_cast<size_t>(nb) * P);                    // (K, nb*P)
    Tensor2<T, Exec> dyp(scratch.data() + static_cast<size_t>(K) * nb * P, Cout, nb * P);  // (Cout, nb*P)
    Kokkos::parallel_for(
        "dmis::conv2d::gather_dy", Kokkos::RangePolicy<Exec>(exec, 0, Cout * nb),
        KOKKOS_LAMBDA(int r) {
          const int co = r % Cout, bl = r / Cout;
          const T* src = &dy(b0 + bl, co, 0, 0);
          T* dst = &dyp(co, bl * P);
          for (int p = 0; p < P; ++p) dst[p] = src[p];
        });
    im2col<Exec, T>(exec, g, x, b0, nb, col);
    // dW (Cout, K) += dyp (Cout, nb*P) x col^T (nb*P, K)
    compat::gemm(exec, "N", "T", T(1), Tensor2<const T, Exec>(dyp), Tensor2<const T, Exec>(col),
                 T(1), dw2);
    if (!want_dx) continue;
    // dcol (K, nb*P) = W^T (K, Cout) x dyp (Cout, nb*P); overwrites col, which is no longer needed
    compat::gemm(exec, "T", "N", T(1), w2, Tensor2<const T, Exec>(dyp), T(0), col);
    // col2im as a gather: each input pixel sums the taps that read it (no atomics).
    Kokkos::parallel_for(
        "dmis::conv2d::col2im", Kokkos::RangePolicy<Exec>(exec, 0, nb * Cin * H),
        KOKKOS_LAMBDA(int r) {
          const int ih = r % H;
          const int ci = (r / H) % Cin;
          const int bl = r / (H * Cin);
          T* out = &dx(b0 + bl, ci, ih, 0);
          for (int iw = 0; iw < W; ++iw) {
            T acc = 0;
            for (int ky = 0; ky < k; ++ky) {
              const int th = ih + pad - ky;
              if (th < 0 || th % s != 0) continue;
              const int oh = th / s;
              if (oh >= Ho) continue;
              for (int kx = 0; kx < k; ++kx) {
                const int tw = iw + pad - kx;
                if (tw < 0 || tw % s != 0) continue;
                const int ow = tw / s;
                if (ow >= Wo) continue;
                acc += col(ci * kk + ky * k + kx, bl * P + oh * Wo + ow);
              }
            }
            out[iw] = accumulate ? out[iw] + acc : acc;
          }
        });
  }
}

#define DMIS_INST(E, T) template struct Conv2d<E, T>;
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

}  // namespace dmis::kernels
