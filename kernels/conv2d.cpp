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

namespace {

// Scratch per sample of a chunk: the unfolded input and the GEMM output, for the forward
// convolution and for backward's transposed one (input and output channels swapped).
inline size_t per_sample_scratch(const Conv2dGeometry& g) {
  const size_t cmax = static_cast<size_t>(std::max(g.Cin, g.Cout));
  return static_cast<size_t>(g.P()) * (cmax * g.k * g.k + cmax);
}
// The flipped weights of backward's transposed convolution, at the end of the scratch.
inline size_t weight_scratch(const Conv2dGeometry& g) {
  return static_cast<size_t>(g.Cin) * g.Cout * g.k * g.k;
}

// Samples per chunk that fit in the scratch.
inline int chunk_for(const char* op, const Conv2dGeometry& g, size_t scratch_elems) {
  const size_t per_sample = per_sample_scratch(g), fixed = weight_scratch(g);
  const size_t nb = scratch_elems > fixed ? (scratch_elems - fixed) / per_sample : 0;
  expect(nb >= 1, op,
         cat("scratch of ", scratch_elems, " elements is smaller than one sample needs (",
             per_sample + fixed, ")"));
  return static_cast<int>(std::min<size_t>(nb, static_cast<size_t>(g.B)));
}

// col (K, nb*P) <- unfold x[b0, b0+nb)
template <class Exec, class T>
void im2col(const Exec& exec, const Conv2dGeometry& g, const Tensor4<const T, Exec>& x, int b0,
            int nb, const Tensor2<T, Exec>& col) {
  const int kk = g.k * g.k, k = g.k, s = g.stride, pad = g.pad, H = g.H, W = g.W;
  const int Ho = g.Ho, Wo = g.Wo, P = g.P();
  // One (tap, sample) plane per iteration: the index arithmetic happens once per plane, the
  // rows inside are plain (mostly shifted) copies.
  Kokkos::parallel_for(
      "dmis::conv2d::im2col", Kokkos::RangePolicy<Exec>(exec, 0, g.K() * nb), KOKKOS_LAMBDA(int r) {
        const int kidx = r / nb, bl = r % nb;
        const int ci = kidx / kk, t = kidx % kk, ky = t / k, kx = t % k;
        // valid output columns: 0 <= ow*s - pad + kx < W
        const int lo = pad - kx > 0 ? (pad - kx + s - 1) / s : 0;
        int hi = W - 1 + pad - kx < 0 ? 0 : (W - 1 + pad - kx) / s + 1;
        if (hi > Wo) hi = Wo;
        const int mid_end = hi > lo ? hi : lo;
        const T* plane = &x(b0 + bl, ci, 0, 0);
        T* out = &col(kidx, bl * P);
        if (s == 1) {
          // Stride 1: the plane shifted by one offset, copied in one long run, then the
          // positions whose input column or row falls outside the image set to zero.
          const int shift = (ky - pad) * W + (kx - pad);
          const int p0 = shift < 0 ? -shift : 0;
          const int p1 = shift > 0 ? P - shift : P;
          for (int p = 0; p < p0 && p < P; ++p) out[p] = T(0);
          for (int p = p0; p < p1; ++p) out[p] = plane[p + shift];
          for (int p = p1 > p0 ? p1 : p0; p < P; ++p) out[p] = T(0);
          for (int oh = 0; oh < Ho; ++oh) {
            T* row = out + oh * Wo;
            for (int ow = 0; ow < lo && ow < Wo; ++ow) row[ow] = T(0);
            for (int ow = mid_end; ow < Wo; ++ow) row[ow] = T(0);
          }
          return;
        }
        for (int oh = 0; oh < Ho; ++oh, out += Wo) {
          const int ih = oh * s - pad + ky;
          if (ih < 0 || ih >= H) {
            for (int ow = 0; ow < Wo; ++ow) out[ow] = T(0);
            continue;
          }
          const T* in = plane + ih * W;
          for (int ow = 0; ow < lo && ow < Wo; ++ow) out[ow] = T(0);
          for (int ow = lo; ow < hi; ++ow) out[ow] = in[ow * s - pad + kx];
          for (int ow = mid_end; ow < Wo; ++ow) out[ow] = T(0);
        }
      });
}

// y (=, or += with accumulate) conv(x) + bias through im2col + GEMM, in chunks of `chunk`
// samples; w2 (Cout, K) are the weights as a matrix, col_space the scratch for col and tmp.
template <class Exec, class T>
void conv_by_gemm(const Exec& exec, const Conv2dGeometry& g, const Tensor4<const T, Exec>& x,
                  const Tensor2<const T, Exec>& w2, const Tensor1<const T, Exec>& bias,
                  const Tensor4<T, Exec>& y, T* col_space, int chunk, bool accumulate) {
  const bool has_bias = bias.extent(0) != 0;
  const int K = g.K(), P = g.P(), Cout = g.Cout;
  for (int b0 = 0; b0 < g.B; b0 += chunk) {
    const int nb = std::min(chunk, g.B - b0);
    Tensor2<T, Exec> col(col_space, K, static_cast<size_t>(nb) * P);                    // (K, nb*P)
    Tensor2<T, Exec> tmp(col_space + static_cast<size_t>(K) * nb * P, Cout, nb * P);  // (Cout, nb*P)
    im2col<Exec, T>(exec, g, x, b0, nb, col);
    Kokkos::Profiling::pushRegion("dmis::conv2d::gemm_forward");
    compat::gemm(exec, "N", "N", T(1), w2, Tensor2<const T, Exec>(col), T(0), tmp);
    Kokkos::Profiling::popRegion();
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

}  // namespace

template <class Exec, class T>
size_t Conv2d<Exec, T>::scratch_size(const Conv2dGeometry& g, int chunk) {
  return static_cast<size_t>(chunk) * per_sample_scratch(g) + weight_scratch(g);
}

template <class Exec, class T>
void Conv2d<Exec, T>::forward(const Exec& exec, const CX& x, const CX& w, const CV1& bias,
                              int stride, const X& y, const V1& scratch, bool accumulate) {
  const char* op = "dmis::conv2d::forward";
  const Conv2dGeometry g = geometry(op, x, w, stride);
  expect_shape(op, "y", y, {g.B, g.Cout, g.Ho, g.Wo});
  if (bias.extent(0) != 0) expect_shape(op, "bias", bias, {g.Cout});
  const int chunk = chunk_for(op, g, scratch.extent(0));
  conv_by_gemm<Exec, T>(exec, g, x, Tensor2<const T, Exec>(w.data(), g.Cout, g.K()), bias, y,
                        scratch.data(), chunk, accumulate);
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
    // db(co) += sum over b (in order) of the fixed-order sum over p of dy(b, co, p)
    using Policy = Kokkos::TeamPolicy<Exec>;
    Policy policy(exec, Cout, Kokkos::AUTO);
    policy.set_scratch_size(0, Kokkos::PerTeam(team_sum_scratch_bytes<T>()));
    Kokkos::parallel_for(
        "dmis::conv2d::bias_grad", policy, KOKKOS_LAMBDA(const typename Policy::member_type& team) {
          const int co = team.league_rank();
          T* partials = team_partials<T>(team);
          T s = 0;
          for (int b = 0; b < B; ++b) {
            const T* row = &dy(b, co, 0, 0);
            s += team_sum(team, P, partials, [&](int p) { return row[p]; });
          }
          Kokkos::single(Kokkos::PerTeam(team), [&]() { db(co) += s; });
        });
  }

  // dW (Cout, K) += dy (Cout, nb*P) x col^T (nb*P, K), chunk by chunk (fixed order)
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
    Kokkos::Profiling::pushRegion("dmis::conv2d::gemm_weight_grad");
    compat::gemm(exec, "N", "T", T(1), Tensor2<const T, Exec>(dyp), Tensor2<const T, Exec>(col),
                 T(1), dw2);
    Kokkos::Profiling::popRegion();
  }
  if (!want_dx) return;

  const bool accumulate = (mode == GradMode::Accumulate);
  if (s == 1) {
    // dx = conv(dy, w flipped by 180 degrees with in/out channels swapped), same padding: one
    // more GEMM-shaped convolution, written straight into dx.
    T* wt = scratch.data() + scratch.extent(0) - weight_scratch(g);  // (Cin, Cout, k, k)
    Kokkos::parallel_for(
        "dmis::conv2d::flip_weights", Kokkos::RangePolicy<Exec>(exec, 0, Cin * Cout * kk),
        KOKKOS_LAMBDA(int r) {
          const int t = r % kk, co = (r / kk) % Cout, ci = r / (kk * Cout);
          wt[r] = w(co, ci, (k - 1) - t / k, (k - 1) - t % k);
        });
    Conv2dGeometry gt = g;
    gt.Cin = g.Cout;
    gt.Cout = g.Cin;
    gt.H = g.Ho;
    gt.W = g.Wo;
    gt.Ho = g.H;
    gt.Wo = g.W;
    conv_by_gemm<Exec, T>(exec, gt, dy, Tensor2<const T, Exec>(wt, Cin, Cout * kk),
                          Tensor1<const T, Exec>(), dx, scratch.data(), chunk, accumulate);
    return;
  }
  // stride 2: dcol = W^T dy, then col2im as a gather (each input pixel sums its taps)
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
    Kokkos::Profiling::pushRegion("dmis::conv2d::gemm_input_grad");
    compat::gemm(exec, "T", "N", T(1), w2, Tensor2<const T, Exec>(dyp), T(0), col);
    Kokkos::Profiling::popRegion();
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
