#include "kernels/conv2d.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>

#include "kernels/eti.hpp"
#include "kernels/mixed_gemm.hpp"

// Loops that convert fp32 to bf16: GCC vectorises them 32 wide and runs anything shorter in the
// scalar remainder; 8 lanes take more of them vectorised. The row-unfolded convolutions convert
// whole planes in blocks (for_each_converted_row), not each short row (W = 7-28) where it is
// written. Host compilers with OpenMP only.
#if defined(_OPENMP) && !defined(__CUDA_ARCH__) && !defined(__HIP_DEVICE_COMPILE__)
#define DMIS_SIMD8 _Pragma("omp simd simdlen(8)")
#else
#define DMIS_SIMD8
#endif

namespace dmis::kernels {

namespace {
ConvAlgorithm initial_conv_algorithm() {
  const char* env = std::getenv("DMIS_CONV_ALGO");
  return env && *env ? parse_conv_algorithm(env, "DMIS_CONV_ALGO") : ConvAlgorithm::Rows;
}
ConvAlgorithm& conv_algorithm_ref() {
  static ConvAlgorithm a = initial_conv_algorithm();
  return a;
}
}  // namespace

ConvAlgorithm conv_algorithm() { return conv_algorithm_ref(); }
void set_conv_algorithm(ConvAlgorithm a) { conv_algorithm_ref() = a; }
const char* conv_algorithm_name(ConvAlgorithm a) {
  return a == ConvAlgorithm::Winograd ? "winograd" : a == ConvAlgorithm::Rows ? "rows" : "gemm";
}
ConvAlgorithm parse_conv_algorithm(const std::string& s, const char* what) {
  if (s == "winograd") return ConvAlgorithm::Winograd;
  if (s == "gemm") return ConvAlgorithm::Gemm;
  if (s == "rows") return ConvAlgorithm::Rows;
  throw InputError(cat(what, ": expected gemm, rows or winograd, found '", s, "'"));
}

template <class Exec, class T>
Conv2dGeometry Conv2d<Exec, T>::geometry(const char* op, const CX& x, const CX& w, int stride) {
  const Conv2dGeometry g = Conv2dGeometry::make(
      static_cast<int>(x.extent(0)), static_cast<int>(x.extent(1)), static_cast<int>(x.extent(2)),
      static_cast<int>(x.extent(3)), static_cast<int>(w.extent(0)), static_cast<int>(w.extent(2)),
      stride);
  expect(stride == 1 || stride == 2, op, cat("stride must be 1 or 2, got ", stride));
  expect(g.k % 2 == 1, op, cat("kernel size must be odd, got ", g.k));
  expect_shape(op, "w", w, {-1, g.Cin, g.k, g.k});
  expect(g.B > 0 && g.Cin > 0 && g.H > 0 && g.W > 0 && g.Cout > 0, op,
         cat("empty tensor: x ", detail::shape_string(x), ", w ", detail::shape_string(w)));
  return g;
}

namespace {

// Winograd F(2x2, 3x3) applies to 3x3 stride-1 convolutions (pad 1, output = input size).
inline bool winograd_shape(const Conv2dGeometry& g) { return g.k == 3 && g.stride == 1; }
inline bool use_winograd(const Conv2dGeometry& g) {
  return winograd_shape(g) && conv_algorithm() == ConvAlgorithm::Winograd;
}
// 2x2 output tiles of one sample (odd sizes: the last row / column of tiles is half used)
inline size_t winograd_tiles(const Conv2dGeometry& g) {
  return static_cast<size_t>((g.Ho + 1) / 2) * ((g.Wo + 1) / 2);
}

// The row-unfolded path applies to the same shapes (ConvAlgorithm::Rows).
inline bool use_rows(const Conv2dGeometry& g) {
  return winograd_shape(g) && conv_algorithm() == ConvAlgorithm::Rows;
}
// Zero elements after the row-unfolded buffer: the GEMM of tap kx reads it from offset kx, so its
// last row runs up to 2 elements past the end (into columns that are not outputs).
constexpr size_t kRowsSlack = 16;

// Scratch per sample of a chunk: the unfolded input and the GEMM output, for the forward
// convolution and for backward's transposed one (input and output channels swapped); for a
// shape Winograd applies to, also room for its transformed input (16, Cin, tiles) and products
// (16, Cout, tiles), whose sum is the same for the transposed convolution. The size does not
// depend on the algorithm chosen, so scratch sized once serves both, with the same chunks
// (the weight gradient, im2col under both, is then bitwise the same).
inline size_t per_sample_scratch(const Conv2dGeometry& g) {
  const size_t cmax = static_cast<size_t>(std::max(g.Cin, g.Cout));
  const size_t gemm = static_cast<size_t>(g.P()) * (cmax * g.k * g.k + cmax);
  if (!winograd_shape(g)) return gemm;
  // rows: the unfolded rows (3 cmax, H (W + 2)), the slack, the GEMM output (cmax, H (W + 2))
  const size_t rows = 4 * cmax * static_cast<size_t>(g.H) * (g.W + 2) + kRowsSlack;
  return std::max({gemm, rows, 16 * winograd_tiles(g) * static_cast<size_t>(g.Cin + g.Cout)});
}
// The flipped weights of backward's transposed convolution, or Winograd's transformed weights
// (16, Cout, Cin), at the end of the scratch.
inline size_t weight_scratch(const Conv2dGeometry& g) {
  return static_cast<size_t>(g.Cin) * g.Cout * (winograd_shape(g) ? 16 : g.k * g.k);
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

// A value of the computation type T as stored for the GEMMs: T itself, or bf16 (train.precision).
template <class R, class T>
KOKKOS_INLINE_FUNCTION R stored(T v) {
  if constexpr (std::is_same<R, bf16>::value)
    return to_bf16(static_cast<float>(v));
  else
    return v;
}

// C (M, N) = alpha op(A) op(B) + beta C over contiguous row-major matrices (A stored (M, K) for
// 'N', (K, M) for 'T'; B likewise (K, N) or (N, K)): a Kokkos Kernels GEMM in T, or with R =
// bf16 the mixed GEMM (bf16 inputs, fp32 accumulation; kernels/mixed_gemm.hpp).
template <class Exec, class T, class R>
void gemm_as(const Exec& exec, char ta, char tb, int M, int N, int K, T alpha, const R* A,
             const R* B, T beta, T* C) {
  const int lda = ta == 'N' ? K : M, ldb = tb == 'N' ? N : K;
  if constexpr (std::is_same<R, bf16>::value) {
    if constexpr (std::is_same<T, float>::value)
      gemm_bf16(exec, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, N);
    else
      throw Error("dmis::conv2d: bf16 GEMMs accumulate in fp32 only");  // gemms_in_bf16 rules it out
  } else {
    compat::gemm(exec, ta == 'N' ? "N" : "T", tb == 'N' ? "N" : "T", alpha,
                 Tensor2<const T, Exec>(A, ta == 'N' ? M : K, lda),
                 Tensor2<const T, Exec>(B, tb == 'N' ? K : N, ldb), beta, Tensor2<T, Exec>(C, M, N));
  }
}

// Converts n values of T to R (bf16: the weights of a convolution whose GEMMs take bf16)
template <class Exec, class T, class R>
void convert_to(const Exec& exec, const T* src, R* dst, size_t n) {
  Kokkos::parallel_for(
      "dmis::conv2d::to_bf16", Kokkos::RangePolicy<Exec>(exec, 0, n),
      KOKKOS_LAMBDA(size_t i) { dst[i] = stored<R>(src[i]); });
}

// col (K, nb*P) <- unfold x[b0, b0+nb), stored as R (T, or bf16)
template <class Exec, class T, class R = T>
void im2col(const Exec& exec, const Conv2dGeometry& g, const Tensor4<const T, Exec>& x, int b0,
            int nb, R* col) {
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
        const R zero = stored<R>(T(0));
        R* out = col + static_cast<size_t>(kidx) * nb * P + static_cast<size_t>(bl) * P;
        if (s == 1) {
          // Stride 1: the plane shifted by one offset, copied in one long run, then the
          // positions whose input column or row falls outside the image set to zero.
          const int shift = (ky - pad) * W + (kx - pad);
          const int p0 = shift < 0 ? -shift : 0;
          const int p1 = shift > 0 ? P - shift : P;
          for (int p = 0; p < p0 && p < P; ++p) out[p] = zero;
          for (int p = p0; p < p1; ++p) out[p] = stored<R>(plane[p + shift]);
          for (int p = p1 > p0 ? p1 : p0; p < P; ++p) out[p] = zero;
          for (int oh = 0; oh < Ho; ++oh) {
            R* row = out + oh * Wo;
            for (int ow = 0; ow < lo && ow < Wo; ++ow) row[ow] = zero;
            for (int ow = mid_end; ow < Wo; ++ow) row[ow] = zero;
          }
          return;
        }
        for (int oh = 0; oh < Ho; ++oh, out += Wo) {
          const int ih = oh * s - pad + ky;
          if (ih < 0 || ih >= H) {
            for (int ow = 0; ow < Wo; ++ow) out[ow] = zero;
            continue;
          }
          const T* in = plane + ih * W;
          for (int ow = 0; ow < lo && ow < Wo; ++ow) out[ow] = zero;
          DMIS_SIMD8
          for (int ow = lo; ow < hi; ++ow) out[ow] = stored<R>(in[ow * s - pad + kx]);
          for (int ow = mid_end; ow < Wo; ++ow) out[ow] = zero;
        }
      });
}

// y (=, or += with accumulate) conv(x) + bias through im2col + GEMM, in chunks of `chunk`
// samples; w2 (Cout, K) are the weights as a matrix, col_space the scratch for col and tmp.
// R: the GEMM's input type (T, or bf16: w2 and col in bf16, tmp accumulated in fp32).
template <class Exec, class T, class R = T>
void conv_by_gemm(const Exec& exec, const Conv2dGeometry& g, const Tensor4<const T, Exec>& x,
                  const R* w2, const Tensor1<const T, Exec>& bias, const Tensor4<T, Exec>& y,
                  T* col_space, int chunk, bool accumulate) {
  const bool has_bias = bias.extent(0) != 0;
  const int K = g.K(), P = g.P(), Cout = g.Cout;
  for (int b0 = 0; b0 < g.B; b0 += chunk) {
    const int nb = std::min(chunk, g.B - b0);
    R* col = reinterpret_cast<R*>(col_space);                                          // (K, nb*P)
    Tensor2<T, Exec> tmp(col_space + static_cast<size_t>(K) * nb * P, Cout, nb * P);  // (Cout, nb*P)
    im2col<Exec, T, R>(exec, g, x, b0, nb, col);
    Kokkos::Profiling::pushRegion("dmis::conv2d::gemm_forward");
    gemm_as<Exec, T, R>(exec, 'N', 'N', Cout, nb * P, K, T(1), w2, col, T(0), tmp.data());
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

// ---- Winograd F(2x2, 3x3) -------------------------------------------------------------------
constexpr int kTileBlock = 16;  // tiles a transform iteration handles at once (local buffers)
// y_tile (2x2) = A^T [ U . V ] A with U = G w G^T (4x4 per channel pair), V = B^T d B (4x4 per
// input patch), summed over input channels: for each of the 16 positions xi of the 4x4 tile a
// GEMM M[xi] (O, tiles) = U[xi] (O, I) x V[xi] (I, tiles).
//   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
//   A^T = [1 1 1 0; 0 1 -1 -1].

// U (16, O, I) <- G w G^T for every (o, i). Forward: O = Cout, I = Cin, w(o, i). The input
// gradient's transposed convolution (flip): O = Cin, I = Cout, the kernel w(i, o) rotated by 180.
template <class Exec, class T>
void winograd_weights(const Exec& exec, const Tensor4<const T, Exec>& w, bool flip, T* U) {
  const int Cout = static_cast<int>(w.extent(0)), Cin = static_cast<int>(w.extent(1));
  const int O = flip ? Cin : Cout, I = flip ? Cout : Cin;
  const size_t plane = static_cast<size_t>(O) * I;
  Kokkos::parallel_for(
      "dmis::conv2d::winograd_weights", Kokkos::RangePolicy<Exec>(exec, 0, O * I),
      KOKKOS_LAMBDA(int r) {
        const int o = r / I, i = r % I;
        T g[3][3];
        for (int a = 0; a < 3; ++a)
          for (int b = 0; b < 3; ++b) g[a][b] = flip ? w(i, o, 2 - a, 2 - b) : w(o, i, a, b);
        T gg[4][3];  // G g
        for (int b = 0; b < 3; ++b) {
          gg[0][b] = g[0][b];
          gg[1][b] = T(0.5) * (g[0][b] + g[1][b] + g[2][b]);
          gg[2][b] = T(0.5) * (g[0][b] - g[1][b] + g[2][b]);
          gg[3][b] = g[2][b];
        }
        for (int a = 0; a < 4; ++a) {  // (G g) G^T
          T* u = U + (a * 4) * plane + r;
          u[0 * plane] = gg[a][0];
          u[1 * plane] = T(0.5) * (gg[a][0] + gg[a][1] + gg[a][2]);
          u[2 * plane] = T(0.5) * (gg[a][0] - gg[a][1] + gg[a][2]);
          u[3 * plane] = gg[a][2];
        }
      });
}

// y (=, or += with accumulate) the 3x3 stride-1 convolution of x by the transformed weights U
// (16, O, I) + bias, in chunks of `chunk` samples; x (B, I, H, W), y (B, O, H, W). space holds
// V (16, I, nb*tiles) then M (16, O, nb*tiles).
template <class Exec, class T>
void conv_winograd(const Exec& exec, const Tensor4<const T, Exec>& x, const T* U,
                   const Tensor1<const T, Exec>& bias, const Tensor4<T, Exec>& y, T* space,
                   int chunk, bool accumulate) {
  const bool has_bias = bias.extent(0) != 0;
  const int B = static_cast<int>(x.extent(0)), I = static_cast<int>(x.extent(1));
  const int H = static_cast<int>(x.extent(2)), W = static_cast<int>(x.extent(3));
  const int O = static_cast<int>(y.extent(1));
  const int th = (H + 1) / 2, tw = (W + 1) / 2, tps = th * tw;  // tiles per sample
  for (int b0 = 0; b0 < B; b0 += chunk) {
    const int nb = std::min(chunk, B - b0);
    const int nt = nb * tps;
    T* V = space;                                   // (16, I, nt)
    T* M = space + static_cast<size_t>(16) * I * nt;  // (16, O, nt)
    const size_t vplane = static_cast<size_t>(I) * nt, mplane = static_cast<size_t>(O) * nt;
    // V = B^T d B for each (sample, channel, tile); one row of tiles per iteration, in blocks
    // of kTileBlock tiles: the block's 4 input rows (zero-padded) are combined row-wise first
    // (B^T, contiguous), then column-wise per tile, and each of the 16 planes is written as a
    // contiguous run (every input element is loaded once, not once per overlapping patch).
    Kokkos::parallel_for(
        "dmis::conv2d::winograd_input", Kokkos::RangePolicy<Exec>(exec, 0, nb * I * th),
        KOKKOS_LAMBDA(int r) {
          const int ty = r % th, ci = (r / th) % I, bl = r / (th * I);
          const T* plane = &x(b0 + bl, ci, 0, 0);
          T* v = V + static_cast<size_t>(ci) * nt + static_cast<size_t>(bl) * tps + ty * tw;
          for (int t0 = 0; t0 < tw; t0 += kTileBlock) {
            const int nbt = tw - t0 < kTileBlock ? tw - t0 : kTileBlock;
            const int c0 = 2 * t0 - 1, ncol = 2 * nbt + 2;  // the block's input columns
            T d[4][2 * kTileBlock + 2];
            for (int a = 0; a < 4; ++a) {
              const int ih = 2 * ty - 1 + a;
              const bool row_in = ih >= 0 && ih < H;
              const T* in = plane + (row_in ? ih : 0) * W;
              for (int j = 0; j < ncol; ++j) {
                const int iw = c0 + j;
                d[a][j] = (row_in && iw >= 0 && iw < W) ? in[iw] : T(0);
              }
            }
            T e[4][2 * kTileBlock + 2];  // B^T d, all columns of the block
            for (int j = 0; j < ncol; ++j) {
              e[0][j] = d[0][j] - d[2][j];
              e[1][j] = d[1][j] + d[2][j];
              e[2][j] = d[2][j] - d[1][j];
              e[3][j] = d[1][j] - d[3][j];
            }
            for (int a = 0; a < 4; ++a) {  // (B^T d) B, tile by tile
              T* o0 = v + (a * 4 + 0) * vplane + t0;
              T* o1 = v + (a * 4 + 1) * vplane + t0;
              T* o2 = v + (a * 4 + 2) * vplane + t0;
              T* o3 = v + (a * 4 + 3) * vplane + t0;
              const T* q = e[a];
              for (int t = 0; t < nbt; ++t) {
                o0[t] = q[2 * t] - q[2 * t + 2];
                o1[t] = q[2 * t + 1] + q[2 * t + 2];
                o2[t] = q[2 * t + 2] - q[2 * t + 1];
                o3[t] = q[2 * t + 1] - q[2 * t + 3];
              }
            }
          }
        });
    Kokkos::Profiling::pushRegion("dmis::conv2d::gemm_winograd");
    for (int xi = 0; xi < 16; ++xi)
      compat::gemm(exec, "N", "N", T(1),
                   Tensor2<const T, Exec>(U + static_cast<size_t>(xi) * O * I, O, I),
                   Tensor2<const T, Exec>(V + xi * vplane, I, nt), T(0),
                   Tensor2<T, Exec>(M + xi * mplane, O, nt));
    Kokkos::Profiling::popRegion();
    // y tile = A^T m A (+ bias); one row of tiles per iteration, in blocks of kTileBlock
    // tiles: the 16 planes read as contiguous runs, the two output rows assembled in a buffer
    // and written (or added) contiguously
    Kokkos::parallel_for(
        "dmis::conv2d::winograd_output", Kokkos::RangePolicy<Exec>(exec, 0, nb * O * th),
        KOKKOS_LAMBDA(int r) {
          const int ty = r % th, co = (r / th) % O, bl = r / (th * O);
          const T bv = has_bias ? bias(co) : T(0);
          const T* m = M + static_cast<size_t>(co) * nt + static_cast<size_t>(bl) * tps + ty * tw;
          T* out = &y(b0 + bl, co, 0, 0);
          const int rows = 2 * ty + 1 < H ? 2 : 1;
          for (int t0 = 0; t0 < tw; t0 += kTileBlock) {
            const int nbt = tw - t0 < kTileBlock ? tw - t0 : kTileBlock;
            T s[2][4][kTileBlock];  // A^T m
            for (int b = 0; b < 4; ++b) {
              const T* m0 = m + (0 * 4 + b) * mplane + t0;
              const T* m1 = m + (1 * 4 + b) * mplane + t0;
              const T* m2 = m + (2 * 4 + b) * mplane + t0;
              const T* m3 = m + (3 * 4 + b) * mplane + t0;
              for (int t = 0; t < nbt; ++t) {
                s[0][b][t] = m0[t] + m1[t] + m2[t];
                s[1][b][t] = m1[t] - m2[t] - m3[t];
              }
            }
            const int ow0 = 2 * t0;
            const int ncol = (2 * nbt < W - ow0) ? 2 * nbt : W - ow0;
            for (int a = 0; a < rows; ++a) {
              T row[2 * kTileBlock];  // (A^T m) A for the block's tiles, interleaved
              for (int t = 0; t < nbt; ++t) {
                row[2 * t] = s[a][0][t] + s[a][1][t] + s[a][2][t] + bv;
                row[2 * t + 1] = s[a][1][t] - s[a][2][t] - s[a][3][t] + bv;
              }
              T* dst = out + (2 * ty + a) * W + ow0;
              if (accumulate)
                for (int j = 0; j < ncol; ++j) dst[j] += row[j];
              else
                for (int j = 0; j < ncol; ++j) dst[j] = row[j];
            }
          }
        });
  }
}

// ---- 3x3 stride-1 by row-unfolded GEMMs ("rows") ---------------------------------------------
// The input unfolded over the kernel's rows only: rows (3 I, nb Pp), Pp = H (W + 2); row
// (i, ky) holds, for each sample and output row h, the input row h + ky - 1 between two zero
// columns (all zeros outside the image). Tap column kx is the same buffer read from offset kx,
// a plain (3 I, nb Pp) matrix, so three GEMMs
//   y~ (O, nb Pp) (+)= Wk[kx] (O, 3 I) x rows[+kx] (3 I, nb Pp)
// give the convolution at every column of the padded rows; the two columns past W of each row
// are not outputs and the scatter drops them. 3 (W + 2) / W times the input is written instead
// of im2col's 9 times, for 2 / W more GEMM columns.

// Wk (3, O, 3 I): Wk[kx](o, 3 i + ky) = w(o, i, ky, kx); flip: the input gradient's
// transposed convolution (O = Cin, I = Cout, w(i, o) rotated by 180 degrees). R: T, or bf16.
template <class Exec, class T, class R = T>
void rows_weights(const Exec& exec, const Tensor4<const T, Exec>& w, bool flip, R* Wk) {
  const int Cout = static_cast<int>(w.extent(0)), Cin = static_cast<int>(w.extent(1));
  const int O = flip ? Cin : Cout, I = flip ? Cout : Cin;
  const size_t plane = static_cast<size_t>(O) * 3 * I;
  Kokkos::parallel_for(
      "dmis::conv2d::rows_weights", Kokkos::RangePolicy<Exec>(exec, 0, O * I), KOKKOS_LAMBDA(int r) {
        const int o = r / I, i = r % I;
        for (int ky = 0; ky < 3; ++ky)
          for (int kx = 0; kx < 3; ++kx)
            Wk[kx * plane + static_cast<size_t>(o) * 3 * I + 3 * i + ky] =
                stored<R>(flip ? w(i, o, 2 - ky, 2 - kx) : w(o, i, ky, kx));
      });
}

// The chunk's scratch: rows (3 I, N), the slack, then the GEMM's other (., N) matrix (in T's
// units: bf16 rows fill half of their region); tap kx of the rows is the buffer read from
// offset kx, a (3 I, N) matrix.
template <class T>
T* after_rows(T* space, int I, size_t N) { return space + 3 * I * N + kRowsSlack; }

// The host's bf16 paths of the row-unfolded convolutions (plane conversion, transposed GEMMs)
template <class Exec, class R>
constexpr bool host_bf16 = std::is_same<R, bf16>::value && detail::host_exec<Exec>;

// Host, bf16: a plane of H W values converted in whole-row blocks of up to kConvertBlock into a
// buffer on the stack, in long vectorised loops, and copied from there. Converting each short
// row where it is written (W = 7-28) ran mostly in the loops' scalar remainders: the row
// unfolding took 2.2-2.4x the fp32 one in the training step (docs/performance.md).
constexpr int kConvertBlock = 1024;

// Calls put(h, converted, src_row) for each row h of the plane src (H, W): converted holds the
// row's W values as R (nullptr for a row longer than the buffer, which put_row converts from
// src_row); host only (the buffer lives on the stack).
template <class T, class R, class Put>
KOKKOS_INLINE_FUNCTION void for_each_converted_row(const T* src, int H, int W, Put&& put) {
  R buf[kConvertBlock];
  const int per_block = W <= kConvertBlock ? kConvertBlock / W : 1;
  for (int h0 = 0; h0 < H; h0 += per_block) {
    const int hn = H - h0 < per_block ? H - h0 : per_block;
    if (W > kConvertBlock) {  // a row longer than the buffer: converted in place of the copy
      put(h0, static_cast<const R*>(nullptr), src + static_cast<size_t>(h0) * W);
      continue;
    }
    const int n = hn * W;
    const T* s = src + static_cast<size_t>(h0) * W;
    DMIS_SIMD8
    for (int j = 0; j < n; ++j) buf[j] = stored<R>(s[j]);
    for (int hh = 0; hh < hn; ++hh) put(h0 + hh, buf + hh * W, s + hh * W);
  }
}

// Calls put(h, row, nullptr) for each row h of the plane src (H, W) where R is T (a copy: no
// conversion buffer), for_each_converted_row's calls where it is not. A function, not a branch
// in the caller's lambda: nvcc rejects an extended lambda's first capture inside `if constexpr`.
template <class T, class R, class Put>
KOKKOS_INLINE_FUNCTION void for_each_row(const T* src, int H, int W, Put&& put) {
  if constexpr (std::is_same<R, T>::value) {
    for (int h = 0; h < H; ++h) put(h, src + static_cast<size_t>(h) * W, nullptr);
  } else {
    for_each_converted_row<T, R>(src, H, W, put);
  }
}

// dst[0, W) <- the row: the converted copy, or (rows longer than the buffer) converted here
template <class T, class R>
KOKKOS_INLINE_FUNCTION void put_row(R* dst, const R* converted, const T* src, int W) {
  if (converted)
    for (int j = 0; j < W; ++j) dst[j] = converted[j];
  else
    for (int j = 0; j < W; ++j) dst[j] = stored<R>(src[j]);
}

// rows (3 I, N = nb Pp) <- x[b0, b0+nb) unfolded over ky; the kRowsSlack elements after it
// zeroed. R: T, or bf16.
template <class Exec, class T, class R = T>
void rows_unfold(const Exec& exec, const Tensor4<const T, Exec>& x, int b0, int nb, R* rows) {
  const int I = static_cast<int>(x.extent(1)), H = static_cast<int>(x.extent(2)),
            W = static_cast<int>(x.extent(3));
  const int Wp = W + 2;
  const size_t Pp = static_cast<size_t>(H) * Wp, N = nb * Pp;
  if constexpr (detail::host_exec<Exec>) {
    // one task per (channel, sample): its plane written once into the ky 1 rows (the plane
    // with its two pad columns; bf16: converted in whole-row blocks first), then ky 0 and ky 2
    // copied from those as one long block each (ky 0: a zero row, then ky 1's rows 0..H-2;
    // ky 2: ky 1's rows 1..H-1, then a zero row). Writing each short row three times (W =
    // 7-28) ran in the loops' scalar remainders.
    Kokkos::parallel_for(
        "dmis::conv2d::rows_unfold", Kokkos::RangePolicy<Exec>(exec, 0, I * nb), KOKKOS_LAMBDA(int r) {
          const int i = r / nb, bl = r % nb;
          const R zero = stored<R>(T(0));
          R* d0 = rows + static_cast<size_t>(3 * i) * N + bl * Pp;  // ky 0: row h <- input h - 1
          R* d1 = d0 + N;                                            // ky 1: row h <- input h
          R* d2 = d1 + N;                                            // ky 2: row h <- input h + 1
          auto put = [&](int ih, const R* cv, const T* src) {
            R* d = d1 + static_cast<size_t>(ih) * Wp;
            d[0] = zero;
            d[W + 1] = zero;
            put_row(d + 1, cv, src, W);
          };
          for_each_row<T, R>(&x(b0 + bl, i, 0, 0), H, W, put);
          const size_t shifted = static_cast<size_t>(H - 1) * Wp;
          for (int j = 0; j < Wp; ++j) d0[j] = d2[shifted + j] = zero;
          std::memcpy(static_cast<void*>(d0 + Wp), d1, shifted * sizeof(R));
          std::memcpy(static_cast<void*>(d2), d1 + Wp, shifted * sizeof(R));
          if (r == 0)
            for (size_t j = 0; j < kRowsSlack; ++j) rows[3 * I * N + j] = zero;
        });
    return;
  }
  Kokkos::parallel_for(
      "dmis::conv2d::rows_unfold", Kokkos::RangePolicy<Exec>(exec, 0, 3 * I * nb), KOKKOS_LAMBDA(int r) {
        const int row = r / nb, bl = r % nb, i = row / 3, ky = row % 3;
        const R zero = stored<R>(T(0));
        R* dst = rows + row * N + bl * Pp;
        for (int h = 0; h < H; ++h, dst += Wp) {
          const int ih = h + ky - 1;
          dst[0] = zero;
          dst[W + 1] = zero;
          if (ih < 0 || ih >= H) {
            for (int j = 1; j <= W; ++j) dst[j] = zero;
          } else {
            const T* src = &x(b0 + bl, i, ih, 0);
            DMIS_SIMD8
            for (int j = 0; j < W; ++j) dst[j + 1] = stored<R>(src[j]);
          }
        }
        if (r == 0)
          for (size_t j = 0; j < kRowsSlack; ++j) rows[3 * I * N + j] = zero;
      });
}

// The training forward's unfolded inputs, kept for the weight gradient (Conv2d::saved_size):
// chunk by chunk of `chunk` samples, chunk c's rows (3 I, nb Pp) and their kRowsSlack from sample
// b0 = c chunk on, then room for backward's flipped weights (3, I, 3 O) (bf16 path). In R's
// units; null base: nothing kept.
template <class R>
struct SavedRows {
  R* base = nullptr;
  int I = 0, O = 0, B = 0, chunk = 1;
  size_t Pp = 0;
  static size_t elems(int I, int O, int B, size_t Pp) {
    return 3 * static_cast<size_t>(I) * Pp * B + kRowsSlack * static_cast<size_t>(B) +
           9 * static_cast<size_t>(I) * O;
  }
  R* block(int b0) const {
    return base + 3 * static_cast<size_t>(I) * Pp * b0 + kRowsSlack * static_cast<size_t>(b0 / chunk);
  }
  R* flipped() const { return base + 3 * static_cast<size_t>(I) * Pp * B + kRowsSlack * static_cast<size_t>(B); }
};

// rows_product with bf16 on the host where it is faster (mixed_gemm.hpp, Bf16Layout):
// the products transposed, y~^T (N, O) (+)= rows[+kx]^T Wk[kx]^T, the long dimension as M:
// oneDNN's bf16 GEMM with AMX runs these shapes 1.1-1.6x faster that way (O = 32-64, N = 3-11
// thousand, K = 3 I = 96-576; Xeon 6, 2026-12-07), without AMX 1.0-1.4x slower (Zen 5, the
// quickstart's E-step: its bf16 GEMMs 20 % faster plain; 2026-12-07)
template <class Exec, class T, class R>
void rows_product_transposed(const Exec& exec, const R* rows, const R* Wk, const Tensor1<const T, Exec>& bias,
                             const Tensor4<T, Exec>& y, int b0, int nb, int I, T* out, bool accumulate) {
  const bool has_bias = bias.extent(0) != 0;
  const int O = static_cast<int>(y.extent(1)), H = static_cast<int>(y.extent(2)),
            W = static_cast<int>(y.extent(3)), Wp = W + 2;
  const size_t Pp = static_cast<size_t>(H) * Wp, N = nb * Pp;
  T* tmpt = out;  // (N, O)
  Kokkos::Profiling::pushRegion("dmis::conv2d::gemm_rows");
  for (int kx = 0; kx < 3; ++kx)
    gemm_as<Exec, T, R>(exec, 'T', 'T', static_cast<int>(N), O, 3 * I, T(1), rows + kx,
                        Wk + static_cast<size_t>(kx) * O * 3 * I, T(kx == 0 ? 0 : 1), tmpt);
  Kokkos::Profiling::popRegion();
  // one task per (sample, output row): reads its W (N, O) rows contiguously
  Kokkos::parallel_for(
      "dmis::conv2d::rows_scatter", Kokkos::RangePolicy<Exec>(exec, 0, nb * H), KOKKOS_LAMBDA(int r) {
        const int h = r % H, bl = r / H;
        const T* src = tmpt + (bl * Pp + static_cast<size_t>(h) * Wp) * O;
        for (int o = 0; o < O; ++o) {
          const T bv = has_bias ? bias(o) : T(0);
          T* dst = &y(b0 + bl, o, h, 0);
          if (accumulate)
            for (int j = 0; j < W; ++j) dst[j] += src[static_cast<size_t>(j) * O + o] + bv;
          else
            for (int j = 0; j < W; ++j) dst[j] = src[static_cast<size_t>(j) * O + o] + bv;
        }
      });
}

// y(b0 .. b0 + nb) (=, or += with accumulate) the products of the chunk's unfolded rows
// (3 I, N = nb Pp) by Wk (3, O, 3 I) + bias; out: room for the GEMM's (O, N) output in T.
template <class Exec, class T, class R = T>
void rows_product(const Exec& exec, const R* rows, const R* Wk, const Tensor1<const T, Exec>& bias,
                  const Tensor4<T, Exec>& y, int b0, int nb, int I, T* out, bool accumulate) {
  if constexpr (host_bf16<Exec, R>) {
    if (bf16_layout() == Bf16Layout::Transposed)
      return rows_product_transposed<Exec, T, R>(exec, rows, Wk, bias, y, b0, nb, I, out, accumulate);
  }
  const bool has_bias = bias.extent(0) != 0;
  const int O = static_cast<int>(y.extent(1)), H = static_cast<int>(y.extent(2)),
            W = static_cast<int>(y.extent(3)), Wp = W + 2;
  const size_t Pp = static_cast<size_t>(H) * Wp, N = nb * Pp;
  Tensor2<T, Exec> tmp(out, O, N);  // (O, N)
  Kokkos::Profiling::pushRegion("dmis::conv2d::gemm_rows");
  for (int kx = 0; kx < 3; ++kx)
    gemm_as<Exec, T, R>(exec, 'N', 'N', O, static_cast<int>(N), 3 * I, T(1),
                        Wk + static_cast<size_t>(kx) * O * 3 * I, rows + kx, T(kx == 0 ? 0 : 1),
                        tmp.data());
  Kokkos::Profiling::popRegion();
  Kokkos::parallel_for(
      "dmis::conv2d::rows_scatter", Kokkos::RangePolicy<Exec>(exec, 0, O * nb * H),
      KOKKOS_LAMBDA(int r) {
        const int h = r % H, o = (r / H) % O, bl = r / (H * O);
        const T bv = has_bias ? bias(o) : T(0);
        const T* src = &tmp(o, bl * Pp + static_cast<size_t>(h) * Wp);
        T* dst = &y(b0 + bl, o, h, 0);
        if (accumulate)
          for (int j = 0; j < W; ++j) dst[j] += src[j] + bv;
        else
          for (int j = 0; j < W; ++j) dst[j] = src[j] + bv;
      });
}

// y (=, or += with accumulate) the 3x3 stride-1 convolution of x (B, I, H, W) by Wk (3, O, 3 I)
// + bias, y (B, O, H, W), in chunks of `chunk` samples; space holds rows, the slack and y~ (with
// saved rows, the rows go there instead and space holds y~ only).
// R: the GEMMs' input type (T, or bf16 with fp32 accumulation).
template <class Exec, class T, class R = T>
void conv_rows(const Exec& exec, const Tensor4<const T, Exec>& x, const R* Wk,
               const Tensor1<const T, Exec>& bias, const Tensor4<T, Exec>& y, T* space, int chunk,
               bool accumulate, const SavedRows<R>& saved = {}) {
  const int B = static_cast<int>(x.extent(0)), I = static_cast<int>(x.extent(1));
  const int H = static_cast<int>(x.extent(2)), W = static_cast<int>(x.extent(3));
  const size_t Pp = static_cast<size_t>(H) * (W + 2);
  for (int b0 = 0; b0 < B; b0 += chunk) {
    const int nb = std::min(chunk, B - b0);
    const size_t N = nb * Pp;
    R* rows = saved.base ? saved.block(b0) : reinterpret_cast<R*>(space);
    rows_unfold<Exec, T, R>(exec, x, b0, nb, rows);
    rows_product<Exec, T, R>(exec, rows, Wk, bias, y, b0, nb, I,
                             saved.base ? space : after_rows(space, I, N), accumulate);
  }
}

// dw (Cout, Cin, 3, 3) += G (3, Cout, 3 Cin), or G stored transposed (3, 3 Cin, Cout)
template <class Exec, class T>
void add_weight_grad(const Exec& exec, const T* G, const Tensor4<T, Exec>& dw, bool transposed) {
  const int Cout = static_cast<int>(dw.extent(0)), Cin = static_cast<int>(dw.extent(1));
  const size_t plane = static_cast<size_t>(Cout) * 3 * Cin;
  Kokkos::parallel_for(
      "dmis::conv2d::rows_weight_grad_add", Kokkos::RangePolicy<Exec>(exec, 0, Cout * Cin),
      KOKKOS_LAMBDA(int r) {
        const int o = r / Cin, i = r % Cin;
        for (int ky = 0; ky < 3; ++ky)
          for (int kx = 0; kx < 3; ++kx)
            dw(o, i, ky, kx) += transposed ? G[kx * plane + static_cast<size_t>(3 * i + ky) * Cout + o]
                                           : G[kx * plane + static_cast<size_t>(o) * 3 * Cin + 3 * i + ky];
      });
}

// dw (Cout, Cin, 3, 3) += the weight gradient of the 3x3 stride-1 convolution, through the same
// row-unfolded input: G[kx] (Cout, 3 Cin) = dy~ (Cout, nb Pp) x rows[+kx]^T summed over the
// chunks in order (dy~: dy in the padded rows' layout, zero in the columns that are not
// outputs, so the taps read past a row contribute nothing; the first chunk overwrites G), then
// added into dw. G lives in the weight scratch (3, Cout, 3 Cin). R: the GEMMs' input type (T,
// or bf16: dy~ and the rows stored in bf16, G accumulated in fp32).
template <class Exec, class T, class R = T>
void weight_grad_rows(const Exec& exec, const Conv2dGeometry& g, const Tensor4<const T, Exec>& dy,
                      const Tensor4<const T, Exec>& x, const Tensor4<T, Exec>& dw, T* space, T* G,
                      int chunk) {
  const int B = g.B, Cin = g.Cin, Cout = g.Cout, H = g.H, W = g.W, Wp = W + 2;
  const size_t Pp = static_cast<size_t>(H) * Wp, plane = static_cast<size_t>(Cout) * 3 * Cin;
  // bf16 on the host: G transposed, the product's M the 3 Cin rows of the unfolded input
  // (oneDNN's bf16 GEMM 1.4-1.7x faster on most of these shapes that way with AMX; measured
  // 2026-12-07). Not Bf16Layout's choice: without AMX (Zen 5) both ways measured within 4 %.
  constexpr bool transposed = host_bf16<Exec, R>;
  for (int b0 = 0; b0 < B; b0 += chunk) {
    const int nb = std::min(chunk, B - b0);
    const size_t N = nb * Pp;
    R* dyp = reinterpret_cast<R*>(after_rows(space, Cin, N));  // (Cout, N)
    R* rows = reinterpret_cast<R*>(space);
    rows_unfold<Exec, T, R>(exec, x, b0, nb, rows);
    if constexpr (host_bf16<Exec, R>) {
      // one task per (channel, sample), its plane converted in long loops (rows_unfold)
      Kokkos::parallel_for(
          "dmis::conv2d::rows_gather_dy", Kokkos::RangePolicy<Exec>(exec, 0, Cout * nb),
          KOKKOS_LAMBDA(int r) {
            const int o = r % Cout, bl = r / Cout;
            R* base = dyp + static_cast<size_t>(o) * N + bl * Pp;
            for_each_converted_row<T, R>(&dy(b0 + bl, o, 0, 0), H, W, [&](int h, const R* cv, const T* src) {
              R* dst = base + static_cast<size_t>(h) * Wp;
              put_row(dst, cv, src, W);
              dst[W] = stored<R>(T(0));
              dst[W + 1] = stored<R>(T(0));
            });
          });
    } else {
      Kokkos::parallel_for(
          "dmis::conv2d::rows_gather_dy", Kokkos::RangePolicy<Exec>(exec, 0, Cout * nb * H),
          KOKKOS_LAMBDA(int r) {
            const int h = r % H, o = (r / H) % Cout, bl = r / (H * Cout);
            const T* src = &dy(b0 + bl, o, h, 0);
            R* dst = dyp + static_cast<size_t>(o) * N + bl * Pp + static_cast<size_t>(h) * Wp;
            DMIS_SIMD8
            for (int j = 0; j < W; ++j) dst[j] = stored<R>(src[j]);
            dst[W] = stored<R>(T(0));
            dst[W + 1] = stored<R>(T(0));
          });
    }
    Kokkos::Profiling::pushRegion("dmis::conv2d::gemm_weight_grad");
    for (int kx = 0; kx < 3; ++kx) {
      if constexpr (transposed)  // G[kx]^T (3 Cin, Cout) = rows[+kx] dy~^T
        gemm_as<Exec, T, R>(exec, 'N', 'T', 3 * Cin, Cout, static_cast<int>(N), T(1), rows + kx, dyp,
                            T(b0 == 0 ? 0 : 1), G + kx * plane);
      else
        gemm_as<Exec, T, R>(exec, 'N', 'T', Cout, 3 * Cin, static_cast<int>(N), T(1), dyp, rows + kx,
                            T(b0 == 0 ? 0 : 1), G + kx * plane);
    }
    Kokkos::Profiling::popRegion();
  }
  add_weight_grad<Exec, T>(exec, G, dw, transposed);
}

// Backward of the 3x3 stride-1 row-unfolded convolution in bf16 with the forward's rows kept
// (saved): chunk by chunk, dy unfolded once serves both gradients. The input gradient is the
// convolution of dy by the flipped weights (kept at saved.flipped(), (3, Cin, 3 Cout)), as in
// conv_rows; the weight gradient's dy~ (dy in the padded rows' layout, zero in the two columns
// that are not outputs) is the unfolding's ky = 1 rows read from offset 1: row 3 o + 1 holds
// [0, dy row, 0] per output row, so from offset 1 it reads [dy row, 0, 0 of the next row], the
// last element of a channel the next row's leading zero; a (Cout, N) matrix of leading
// dimension 3 N. No x unfolding and no dy gather: the same products in the same order as
// weight_grad_rows + conv_rows, so bitwise the same gradients. G: the weight scratch.
template <class Exec, class T, std::enable_if_t<std::is_same<T, float>::value, int> = 0>
void backward_rows_saved(const Exec& exec, const Conv2dGeometry& g, const Tensor4<const T, Exec>& dy,
                         const Tensor4<const T, Exec>& w, const Tensor4<T, Exec>& dx, bool accumulate,
                         const Tensor4<T, Exec>& dw, T* space, T* G, int chunk, const SavedRows<bf16>& saved) {
  using R = bf16;
  const int B = g.B, Cin = g.Cin, Cout = g.Cout, Wp = g.W + 2;
  const size_t Pp = static_cast<size_t>(g.H) * Wp, plane = static_cast<size_t>(Cout) * 3 * Cin;
  const bool want_dx = dx.extent(0) != 0;
  constexpr bool transposed = host_bf16<Exec, R>;  // as weight_grad_rows
  R* Wf = saved.flipped();
  if (want_dx) rows_weights<Exec, T, R>(exec, w, /*flip=*/true, Wf);
  for (int b0 = 0; b0 < B; b0 += chunk) {
    const int nb = std::min(chunk, B - b0);
    const size_t N = nb * Pp;
    R* rdy = reinterpret_cast<R*>(space);  // (3 Cout, N) and the slack
    rows_unfold<Exec, T, R>(exec, dy, b0, nb, rdy);
    if (want_dx)
      rows_product<Exec, T, R>(exec, rdy, Wf, Tensor1<const T, Exec>(), dx, b0, nb, Cout,
                               after_rows(space, Cout, N), accumulate);
    const R* xrows = saved.block(b0);
    const R* dyt = rdy + N + 1;  // dy~ (Cout, N), leading dimension 3 N
    const int n = static_cast<int>(N), ld = 3 * n;
    Kokkos::Profiling::pushRegion("dmis::conv2d::gemm_weight_grad");
    for (int kx = 0; kx < 3; ++kx) {
      if constexpr (transposed)  // G[kx]^T (3 Cin, Cout) = rows[+kx] dy~^T
        gemm_bf16(exec, 'N', 'T', 3 * Cin, Cout, n, 1.0f, xrows + kx, n, dyt, ld, b0 == 0 ? 0.0f : 1.0f,
                  G + kx * plane, Cout);
      else  // G[kx] (Cout, 3 Cin) = dy~ rows[+kx]^T
        gemm_bf16(exec, 'N', 'T', Cout, 3 * Cin, n, 1.0f, dyt, ld, xrows + kx, n, b0 == 0 ? 0.0f : 1.0f,
                  G + kx * plane, 3 * Cin);
    }
    Kokkos::Profiling::popRegion();
  }
  add_weight_grad<Exec, T>(exec, G, dw, transposed);
}

// dyp (Cout, nb*P) <- dy[b0, b0+nb): the GEMM layout of the output gradient, stored as R
template <class Exec, class T, class R = T>
void gather_dy(const Exec& exec, const Conv2dGeometry& g, const Tensor4<const T, Exec>& dy, int b0,
               int nb, R* dyp) {
  const int Cout = g.Cout, P = g.P();
  Kokkos::parallel_for(
      "dmis::conv2d::gather_dy", Kokkos::RangePolicy<Exec>(exec, 0, Cout * nb), KOKKOS_LAMBDA(int r) {
        const int co = r % Cout, bl = r / Cout;
        const T* src = &dy(b0 + bl, co, 0, 0);
        R* dst = dyp + static_cast<size_t>(co) * nb * P + static_cast<size_t>(bl) * P;
        for (int p = 0; p < P; ++p) dst[p] = stored<R>(src[p]);
      });
}

// db(co) += sum over b (in order) of the fixed-order sum over p of dy(b, co, p)
template <class Exec, class T>
void bias_grad(const Exec& exec, const Conv2dGeometry& g, const Tensor4<const T, Exec>& dy,
               const Tensor1<T, Exec>& db) {
  const int B = g.B, P = g.P();
  using Policy = Kokkos::TeamPolicy<Exec>;
  Policy policy(exec, g.Cout, Kokkos::AUTO);
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

// dw2 (Cout, K) += dy (Cout, nb*P) x col^T (nb*P, K), chunk by chunk (fixed order); R: the
// GEMM's input type (T, or bf16 with fp32 accumulation)
template <class Exec, class T, class R = T>
void weight_grad(const Exec& exec, const Conv2dGeometry& g, const Tensor4<const T, Exec>& dy,
                 const Tensor4<const T, Exec>& x, const Tensor2<T, Exec>& dw2, T* scratch, int chunk) {
  const int K = g.K(), P = g.P(), Cout = g.Cout, B = g.B;
  for (int b0 = 0; b0 < B; b0 += chunk) {
    const int nb = std::min(chunk, B - b0);
    R* col = reinterpret_cast<R*>(scratch);                                    // (K, nb*P)
    R* dyp = reinterpret_cast<R*>(scratch + static_cast<size_t>(K) * nb * P);  // (Cout, nb*P)
    gather_dy<Exec, T, R>(exec, g, dy, b0, nb, dyp);
    im2col<Exec, T, R>(exec, g, x, b0, nb, col);
    Kokkos::Profiling::pushRegion("dmis::conv2d::gemm_weight_grad");
    gemm_as<Exec, T, R>(exec, 'N', 'T', Cout, K, nb * P, T(1), dyp, col, T(1), dw2.data());
    Kokkos::Profiling::popRegion();
  }
}

// stride 1: dx = conv(dy, w flipped by 180 degrees with in/out channels swapped), same padding:
// one more GEMM-shaped convolution, written straight into dx; wt (Cin, Cout, k, k) holds the
// flipped weights
template <class Exec, class T, class R = T>
void input_grad_transposed(const Exec& exec, const Conv2dGeometry& g, const Tensor4<const T, Exec>& dy,
                           const Tensor4<const T, Exec>& w, R* wt, const Tensor4<T, Exec>& dx, T* scratch,
                           int chunk, bool accumulate) {
  const int k = g.k, kk = g.k * g.k, Cin = g.Cin, Cout = g.Cout;
  Kokkos::parallel_for(
      "dmis::conv2d::flip_weights", Kokkos::RangePolicy<Exec>(exec, 0, Cin * Cout * kk), KOKKOS_LAMBDA(int r) {
        const int t = r % kk, co = (r / kk) % Cout, ci = r / (kk * Cout);
        wt[r] = stored<R>(w(co, ci, (k - 1) - t / k, (k - 1) - t % k));
      });
  Conv2dGeometry gt = g;
  gt.Cin = g.Cout;
  gt.Cout = g.Cin;
  gt.H = g.Ho;
  gt.W = g.Wo;
  gt.Ho = g.H;
  gt.Wo = g.W;
  conv_by_gemm<Exec, T, R>(exec, gt, dy, wt, Tensor1<const T, Exec>(), dx, scratch, chunk, accumulate);
}

// Longest input row the host's col2im sums on the stack (longer rows: pixel by pixel)
constexpr int kCol2imRow = 1024;

// Host: input row (bl, ci, ih) of col2im (the taps of col (K, nb P) reaching it) into out[0, W),
// tap by tap along the row: tap (ky, kx) reaches the pixels iw = s ow + kx - pad, so no division
// per pixel and tap; each pixel still sums its taps in (ky, kx) order from zero, then adds to out
// (bitwise the pixel-by-pixel loop of input_grad_col2im). Returns false, having done nothing, on
// devices and for rows longer than kCol2imRow. A function, not a branch in the caller's lambda:
// nvcc rejects an extended lambda's first capture inside `if constexpr`.
template <class Exec, class T, class Col>
KOKKOS_INLINE_FUNCTION bool col2im_row_by_tap(const Col& col, T* out, int ci, int ih, int bl, int W, int k,
                                              int s, int pad, int Ho, int Wo, int P, bool accumulate) {
  if constexpr (detail::host_exec<Exec>) {
    if (W > kCol2imRow) return false;
    const int kk = k * k;
    T acc[kCol2imRow];
    for (int iw = 0; iw < W; ++iw) acc[iw] = T(0);
    for (int ky = 0; ky < k; ++ky) {
      const int th = ih + pad - ky;
      if (th < 0 || th % s != 0 || th / s >= Ho) continue;
      const int oh = th / s;
      for (int kx = 0; kx < k; ++kx) {
        // ow with 0 <= s ow + kx - pad < W, ow < Wo
        const int lo = kx - pad >= 0 ? 0 : (pad - kx + s - 1) / s;
        const int last = W - 1 - kx + pad;  // s ow <= last
        const int hi = last < 0 ? 0 : (last / s + 1 < Wo ? last / s + 1 : Wo);
        const T* crow = &col(ci * kk + ky * k + kx, bl * P + oh * Wo);
        for (int ow = lo; ow < hi; ++ow) acc[s * ow + kx - pad] += crow[ow];
      }
    }
    for (int iw = 0; iw < W; ++iw) out[iw] = accumulate ? out[iw] + acc[iw] : acc[iw];
    return true;
  } else {
    return false;
  }
}

// stride 2: dcol = W^T dy, then col2im as a gather (each input pixel sums its taps)
template <class Exec, class T, class R = T>
void input_grad_col2im(const Exec& exec, const Conv2dGeometry& g, const Tensor4<const T, Exec>& dy,
                       const R* w2, const Tensor4<T, Exec>& dx, T* scratch, int chunk, bool accumulate) {
  const int K = g.K(), P = g.P(), Cout = g.Cout, B = g.B;
  const int kk = g.k * g.k, k = g.k, s = g.stride, pad = g.pad, H = g.H, W = g.W, Cin = g.Cin;
  const int Ho = g.Ho, Wo = g.Wo;
  for (int b0 = 0; b0 < B; b0 += chunk) {
    const int nb = std::min(chunk, B - b0);
    Tensor2<T, Exec> col(scratch, K, static_cast<size_t>(nb) * P);              // (K, nb*P)
    R* dyp = reinterpret_cast<R*>(scratch + static_cast<size_t>(K) * nb * P);  // (Cout, nb*P)
    gather_dy<Exec, T, R>(exec, g, dy, b0, nb, dyp);
    Kokkos::Profiling::pushRegion("dmis::conv2d::gemm_input_grad");
    gemm_as<Exec, T, R>(exec, 'T', 'N', K, nb * P, Cout, T(1), w2, dyp, T(0), col.data());
    Kokkos::Profiling::popRegion();
    Kokkos::parallel_for(
        "dmis::conv2d::col2im", Kokkos::RangePolicy<Exec>(exec, 0, nb * Cin * H),
        KOKKOS_LAMBDA(int r) {
          const int ih = r % H;
          const int ci = (r / H) % Cin;
          const int bl = r / (H * Cin);
          T* out = &dx(b0 + bl, ci, ih, 0);
          if (col2im_row_by_tap<Exec>(col, out, ci, ih, bl, W, k, s, pad, Ho, Wo, P, accumulate)) return;
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

// Whether the row-unfolded GEMMs take bf16 inputs (train.precision: bf16; fp32 computations only:
// the double instantiation is the gradient checks' reference)
template <class T>
bool gemms_in_bf16() {
  return std::is_same<T, float>::value && gemm_precision() == GemmPrecision::BF16;
}

// The saved rows of a convolution as R, when `saved` is big enough for them (Conv2d::saved_size)
template <class R, class T, class V>
SavedRows<R> saved_rows(const Conv2dGeometry& g, const V& saved, int chunk) {
  SavedRows<R> s;
  const size_t Pp = static_cast<size_t>(g.H) * (g.W + 2);
  if (!use_rows(g) || saved.extent(0) * sizeof(T) < SavedRows<R>::elems(g.Cin, g.Cout, g.B, Pp) * sizeof(R))
    return s;
  s.base = reinterpret_cast<R*>(saved.data());
  s.I = g.Cin, s.O = g.Cout, s.B = g.B, s.chunk = chunk, s.Pp = Pp;
  return s;
}

}  // namespace

template <class Exec, class T>
size_t Conv2d<Exec, T>::scratch_size(const Conv2dGeometry& g, int chunk) {
  return static_cast<size_t>(chunk) * per_sample_scratch(g) + weight_scratch(g);
}

template <class Exec, class T>
size_t Conv2d<Exec, T>::scratch_within(const Conv2dGeometry& g, double budget_elems) {
  const double one = static_cast<double>(scratch_size(g, 1));
  const int chunk = std::max(1, std::min(g.B, static_cast<int>(std::floor(budget_elems / one))));
  return scratch_size(g, chunk);
}


template <class Exec, class T>
size_t Conv2d<Exec, T>::saved_size(const Conv2dGeometry& g) {
  // bf16 only: in fp32 the kept rows (3x the input) gained 1 % of the step for 0.5 GB more
  // memory on unet-s at batch 64 (reading them back from memory costs about what unfolding x
  // again into the cache-sized scratch does); in bf16 5-6 % (measured 2026-12-07)
  if (!use_rows(g) || !gemms_in_bf16<T>()) return 0;
  const size_t Pp = static_cast<size_t>(g.H) * (g.W + 2);
  const size_t bytes = SavedRows<bf16>::elems(g.Cin, g.Cout, g.B, Pp) * sizeof(bf16);
  return (bytes + sizeof(T) - 1) / sizeof(T);
}

template <class Exec, class T>
void Conv2d<Exec, T>::forward(const Exec& exec, const CX& x, const CX& w, const CV1& bias,
                              int stride, const X& y, const V1& scratch, bool accumulate,
                              const V1& saved) {
  const char* op = "dmis::conv2d::forward";
  const Conv2dGeometry g = geometry(op, x, w, stride);
  expect_shape(op, "y", y, {g.B, g.Cout, g.Ho, g.Wo});
  if (bias.extent(0) != 0) expect_shape(op, "bias", bias, {g.Cout});
  const int chunk = chunk_for(op, g, scratch.extent(0));
  if (use_rows(g)) {
    T* Wk = scratch.data() + scratch.extent(0) - weight_scratch(g);  // (3, Cout, 3 Cin)
    if (gemms_in_bf16<T>()) {
      bf16* Wb = reinterpret_cast<bf16*>(Wk);
      rows_weights<Exec, T, bf16>(exec, w, /*flip=*/false, Wb);
      conv_rows<Exec, T, bf16>(exec, x, Wb, bias, y, scratch.data(), chunk, accumulate,
                               saved_rows<bf16, T>(g, saved, chunk));
      return;
    }
    rows_weights<Exec, T>(exec, w, /*flip=*/false, Wk);
    conv_rows<Exec, T>(exec, x, Wk, bias, y, scratch.data(), chunk, accumulate);
    return;
  }
  if (use_winograd(g)) {
    T* U = scratch.data() + scratch.extent(0) - weight_scratch(g);  // (16, Cout, Cin)
    winograd_weights<Exec, T>(exec, w, /*flip=*/false, U);
    conv_winograd<Exec, T>(exec, x, U, bias, y, scratch.data(), chunk, accumulate);
    return;
  }
  if (gemms_in_bf16<T>()) {
    bf16* wb = reinterpret_cast<bf16*>(scratch.data() + scratch.extent(0) - weight_scratch(g));  // (Cout, K)
    convert_to<Exec, T, bf16>(exec, w.data(), wb, w.size());
    conv_by_gemm<Exec, T, bf16>(exec, g, x, wb, bias, y, scratch.data(), chunk, accumulate);
    return;
  }
  conv_by_gemm<Exec, T>(exec, g, x, w.data(), bias, y, scratch.data(), chunk, accumulate);
}

template <class Exec, class T>
void Conv2d<Exec, T>::backward(const Exec& exec, const CX& dy, const CX& x, const CX& w,
                               int stride, const X& dx, GradMode mode, const X& dw, const V1& db,
                               const V1& scratch, const V1& saved) {
  const char* op = "dmis::conv2d::backward";
  const Conv2dGeometry g = geometry(op, x, w, stride);
  expect_shape(op, "dy", dy, {g.B, g.Cout, g.Ho, g.Wo});
  expect_shape(op, "dw", dw, {g.Cout, g.Cin, g.k, g.k});
  const bool want_dx = dx.extent(0) != 0;
  if (want_dx) expect_shape(op, "dx", dx, {g.B, g.Cin, g.H, g.W});
  if (db.extent(0) != 0) expect_shape(op, "db", db, {g.Cout});
  const int chunk = chunk_for(op, g, scratch.extent(0));

  if (db.extent(0) != 0) bias_grad<Exec, T>(exec, g, dy, db);
  T* wt = scratch.data() + scratch.extent(0) - weight_scratch(g);  // the transformed weights
  const bool accumulate = (mode == GradMode::Accumulate);
  if (use_rows(g) && gemms_in_bf16<T>()) {
    if constexpr (std::is_same<T, float>::value) {  // gemms_in_bf16: fp32 computations only
      if (const SavedRows<bf16> s = saved_rows<bf16, T>(g, saved, chunk); s.base) {
        backward_rows_saved<Exec, T>(exec, g, dy, w, dx, accumulate, dw, scratch.data(), wt, chunk, s);
        return;
      }
    }
    weight_grad_rows<Exec, T, bf16>(exec, g, dy, x, dw, scratch.data(), wt, chunk);
  } else if (use_rows(g)) {
    weight_grad_rows<Exec, T>(exec, g, dy, x, dw, scratch.data(), wt, chunk);
  } else {
    (gemms_in_bf16<T>() ? weight_grad<Exec, T, bf16> : weight_grad<Exec, T>)(
        exec, g, dy, x, Tensor2<T, Exec>(dw.data(), g.Cout, g.K()), scratch.data(), chunk);
  }
  if (!want_dx) return;
  if (use_rows(g) && gemms_in_bf16<T>()) {
    bf16* wb = reinterpret_cast<bf16*>(wt);  // (3, Cin, 3 Cout)
    rows_weights<Exec, T, bf16>(exec, w, /*flip=*/true, wb);
    conv_rows<Exec, T, bf16>(exec, dy, wb, Tensor1<const T, Exec>(), dx, scratch.data(), chunk, accumulate);
  } else if (use_rows(g)) {
    // dx = conv(dy, w rotated by 180 degrees with in/out channels swapped), row-unfolded
    rows_weights<Exec, T>(exec, w, /*flip=*/true, wt);  // (3, Cin, 3 Cout)
    conv_rows<Exec, T>(exec, dy, wt, Tensor1<const T, Exec>(), dx, scratch.data(), chunk, accumulate);
  } else if (use_winograd(g)) {
    // dx = conv(dy, w rotated by 180 degrees with in/out channels swapped), by Winograd
    winograd_weights<Exec, T>(exec, w, /*flip=*/true, wt);  // (16, Cin, Cout)
    conv_winograd<Exec, T>(exec, dy, wt, Tensor1<const T, Exec>(), dx, scratch.data(), chunk,
                           accumulate);
  } else if (g.stride == 1 && gemms_in_bf16<T>()) {
    input_grad_transposed<Exec, T, bf16>(exec, g, dy, w, reinterpret_cast<bf16*>(wt), dx, scratch.data(),
                                         chunk, accumulate);
  } else if (g.stride == 1) {
    input_grad_transposed<Exec, T>(exec, g, dy, w, wt, dx, scratch.data(), chunk, accumulate);
  } else if (gemms_in_bf16<T>()) {
    bf16* wb = reinterpret_cast<bf16*>(wt);  // (Cout, K)
    convert_to<Exec, T, bf16>(exec, w.data(), wb, w.size());
    input_grad_col2im<Exec, T, bf16>(exec, g, dy, wb, dx, scratch.data(), chunk, accumulate);
  } else {
    input_grad_col2im<Exec, T>(exec, g, dy, w.data(), dx, scratch.data(), chunk, accumulate);
  }
}

#define DMIS_INST(E, T) template struct Conv2d<E, T>;
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

}  // namespace dmis::kernels
