#pragma once
// 2-D convolution, square kernel k (1 or 3 in the UNet), stride s, zero padding (k-1)/2, as
// PyTorch's nn.Conv2d(cin, cout, k, stride=s, padding=(k-1)/2). Weights (Cout, Cin, k, k).
//
// Explicit GEMM: the batch is processed in chunks of nb samples; for each chunk the input is
// unfolded (im2col) into col (Cin*k*k, nb*P), P = Ho*Wo, and one Kokkos Kernels GEMM computes
// W (Cout, Cin*k*k) x col -> tmp (Cout, nb*P), which is permuted into y with the bias added.
// The chunk size follows from the scratch the caller provides (see scratch_size).
//
// 3x3 stride-1 convolutions (most of the UNet's) take, by default, row-unfolded GEMMs
// (ConvAlgorithm::Rows): the input is unfolded over the kernel's rows only, each input row
// between two zero columns, and the three kernel columns are three GEMMs that read that buffer
// at offsets 0, 1, 2 (3 (W + 2) / W times the input written instead of im2col's 9 times, for
// 2 / W more GEMM columns, dropped by the scatter); forward, input gradient (the transposed
// convolution, itself 3x3 stride 1) and weight gradient. 5-18 % faster training step than the
// unfolded GEMM on the project's 2-core CPU (docs/performance.md).
//
// They can also take Winograd's F(2x2, 3x3) (ConvAlgorithm::Winograd; not faster there: its
// transforms move about as many bytes as im2col), for the forward pass and the input gradient:
// each 2x2 output tile is A^T [ (G w G^T) . (B^T d B) ] A over the 4x4 input patch d, so the
// products become 16 GEMMs (Cout, Cin) x (Cin, tiles), 2.25x fewer multiplies than the unfolded
// GEMM. Every path's transforms are Kokkos kernels and its GEMMs go through Kokkos Kernels.
//
// With train.precision: bf16 (kernels/mixed_gemm.hpp) the GEMMs of the row-unfolded and im2col
// paths (not Winograd's) take bf16 inputs and accumulate in fp32: the unfolded inputs and output
// gradients are written in bf16 as they are unfolded, the weights converted per call, and the
// products go to the vendor's mixed GEMM (oneDNN on CPUs). float only; double stays exact.
#include "kernels/common.hpp"

namespace dmis::kernels {

/// How 3x3 stride-1 convolutions are computed: rows (the default): the input unfolded over the
/// kernel's rows only (3x the input instead of 9x) and one GEMM per kernel column reading it at
/// a shifted offset; the unfolded GEMM of every other convolution; or Winograd F(2x2, 3x3).
/// Process-wide; the environment variable DMIS_CONV_ALGO (gemm | rows | winograd) sets the
/// initial value. They differ in rounding only.
enum class ConvAlgorithm { Gemm, Winograd, Rows };
ConvAlgorithm conv_algorithm();
void set_conv_algorithm(ConvAlgorithm a);
/// "gemm" / "rows" / "winograd"; parse throws InputError naming `what` for anything else.
const char* conv_algorithm_name(ConvAlgorithm a);
ConvAlgorithm parse_conv_algorithm(const std::string& s, const char* what);

struct Conv2dGeometry {
  int B, Cin, H, W;    // input (B, Cin, H, W)
  int Cout, k, stride, pad;
  int Ho, Wo;          // output (B, Cout, Ho, Wo)
  int K() const { return Cin * k * k; }
  int P() const { return Ho * Wo; }
  /// The geometry of input (B, Cin, H, W), Cout output channels, a k x k kernel, stride s and
  /// the padding (k - 1) / 2 of every convolution here (no checks: Conv2d::geometry checks).
  static Conv2dGeometry make(int B, int Cin, int H, int W, int Cout, int k, int stride) {
    const int pad = (k - 1) / 2;
    return {B, Cin, H, W, Cout, k, stride, pad, (H + 2 * pad - k) / stride + 1,
            (W + 2 * pad - k) / stride + 1};
  }
};

template <class Exec, class T>
struct Conv2d {
  using X = Tensor4<T, Exec>;
  using CX = Tensor4<const T, Exec>;
  using V1 = Tensor1<T, Exec>;
  using CV1 = Tensor1<const T, Exec>;

  /// Output geometry for input (B, Cin, H, W) and weights (Cout, Cin, k, k); checks the shapes.
  static Conv2dGeometry geometry(const char* op, const CX& x, const CX& w, int stride);

  /// Scratch elements needed to process `chunk` samples per GEMM (chunk >= 1).
  static size_t scratch_size(const Conv2dGeometry& g, int chunk);
  /// Scratch elements for the largest chunk (at least one sample, at most the batch) whose
  /// scratch fits in `budget_elems`: what a network sizes its shared convolution scratch by.
  static size_t scratch_within(const Conv2dGeometry& g, double budget_elems);

  /// Elements of a buffer that keeps the forward's row-unfolded input for backward (`saved`
  /// below): 1.5 (W + 2) / W times the input and room for backward's flipped weights, for a
  /// row-unfolded convolution with bf16 GEMMs; 0 otherwise (fp32 gains too little for its 3x
  /// the input). Depends on the convolution algorithm and GEMM precision in force: size it
  /// after setting them.
  static size_t saved_size(const Conv2dGeometry& g);

  /// y (B, Cout, Ho, Wo) = conv(x (B, Cin, H, W), w (Cout, Cin, k, k)) + bias (Cout), or
  /// y += ... with `accumulate` (a residual sum without another pass). bias may be empty (no
  /// bias). scratch: at least scratch_size(g, 1) elements. saved (optional, a training
  /// network's, saved_size(g) elements): the row-unfolded input is written there instead of
  /// the scratch, for backward to read (with the same scratch size) instead of unfolding x
  /// again; it and x must stay unchanged until then. Ignored when empty, smaller than
  /// saved_size(g) (the algorithm or precision changed since it was sized) or 0-sized.
  static void forward(const Exec& exec, const CX& x, const CX& w, const CV1& bias, int stride,
                      const X& y, const V1& scratch, bool accumulate = false, const V1& saved = V1());

  /// From dy (B, Cout, Ho, Wo): dx (B, Cin, H, W) (written by `mode`; pass an empty view when
  /// not needed), dw (Cout, Cin, k, k) += , db (Cout) += (empty if no bias). saved: the
  /// buffer the forward pass of the same x wrote (or empty); the results are bitwise those
  /// without it.
  static void backward(const Exec& exec, const CX& dy, const CX& x, const CX& w, int stride,
                       const X& dx, GradMode mode, const X& dw, const V1& db, const V1& scratch,
                       const V1& saved = V1());
};

}  // namespace dmis::kernels
