#include <algorithm>
#include <cmath>
#include <string>

#include "harness/exec_spaces.hpp"
#include "harness/gradcheck.hpp"
#include "harness/reference.hpp"
#include "harness/tensor.hpp"
#include "kernels/conv2d.hpp"
#include "kernels/mixed_gemm.hpp"

namespace {
using namespace dmis;
using namespace dmis::test;

template <class E>
class Conv2dTest : public ::testing::Test {};
TYPED_TEST_SUITE(Conv2dTest, ExecSpaces, ExecSpaceNames);

struct ConvCase {
  int B, Cin, Cout, H, W, k, stride, chunk;  // chunk: samples per GEMM allowed by the scratch
};

// Odd shapes on purpose: batch 1, channels not divisible by 8, 7x7 and non-square maps, stride 2
// on odd sizes, and scratch that forces several chunks.
const ConvCase kCases[] = {
    {2, 3, 5, 7, 7, 3, 1, 2},  {1, 5, 3, 7, 7, 3, 2, 1}, {3, 4, 6, 8, 6, 3, 2, 2},
    {2, 6, 9, 5, 7, 1, 1, 1},  {1, 1, 8, 28, 28, 3, 1, 1}, {4, 7, 5, 14, 14, 3, 2, 3},
    {2, 2, 3, 3, 1, 3, 2, 1},  // stride 2 on a one-pixel-wide map: taps that reach no pixel
};

template <class Exec, class T>
size_t scratch_for(const ConvCase& c) {
  const auto g = kernels::Conv2dGeometry::make(c.B, c.Cin, c.H, c.W, c.Cout, c.k, c.stride);
  return kernels::Conv2d<Exec, T>::scratch_size(g, c.chunk);
}

int out_size(int n, int k, int s) { return (n + 2 * ((k - 1) / 2) - k) / s + 1; }

// Sets the process-wide convolution algorithm for one scope (3x3 stride-1 convolutions take
// Winograd F(2x2, 3x3) or the unfolded GEMM; every other shape the GEMM either way).
struct AlgorithmScope {
  kernels::ConvAlgorithm saved = kernels::conv_algorithm();
  explicit AlgorithmScope(kernels::ConvAlgorithm a) { kernels::set_conv_algorithm(a); }
  ~AlgorithmScope() { kernels::set_conv_algorithm(saved); }
};
const kernels::ConvAlgorithm kAlgorithms[] = {kernels::ConvAlgorithm::Winograd,
                                              kernels::ConvAlgorithm::Rows,
                                              kernels::ConvAlgorithm::Gemm};

TYPED_TEST(Conv2dTest, ForwardMatchesReference) {
  using E = TypeParam;
  using Op = kernels::Conv2d<E, float>;
  E exec;
  for (const auto algo : kAlgorithms)
  for (const auto& c : kCases) {
    SCOPED_TRACE(kernels::conv_algorithm_name(algo));
    AlgorithmScope scope(algo);
    const int Ho = out_size(c.H, c.k, c.stride), Wo = out_size(c.W, c.k, c.stride);
    TestTensor<float, E> x("x", {c.B, c.Cin, c.H, c.W}), w("w", {c.Cout, c.Cin, c.k, c.k}),
        b("b", {c.Cout}), y("y", {c.B, c.Cout, Ho, Wo}), s("s", {int(scratch_for<E, float>(c))});
    x.randn(1);
    w.randn(2, 0.3);
    b.randn(3);
    Op::forward(exec, x.t4(), w.t4(), b.t1(), c.stride, y.t4(), s.t1());
    y.download();
    const auto want = ref::conv2d(x.values(), c.B, c.Cin, c.H, c.W, w.values(), c.Cout, c.k,
                                  b.values(), c.stride);
    EXPECT_TRUE(all_close(y.values(), want, 1e-5, 1e-5, "conv y"))
        << "B=" << c.B << " Cin=" << c.Cin << " Cout=" << c.Cout << " " << c.H << "x" << c.W
        << " k=" << c.k << " stride=" << c.stride;
    // no bias
    Op::forward(exec, x.t4(), w.t4(), none<Tensor1<const float, E>>(), c.stride, y.t4(), s.t1());
    y.download();
    const auto want_nb = ref::conv2d(x.values(), c.B, c.Cin, c.H, c.W, w.values(), c.Cout, c.k,
                                     {}, c.stride);
    EXPECT_TRUE(all_close(y.values(), want_nb, 1e-5, 1e-5, "conv y (no bias)"));
  }
}

TYPED_TEST(Conv2dTest, BackwardMatchesFiniteDifferences) {
  using E = TypeParam;
  using Op = kernels::Conv2d<E, double>;
  E exec;
  const ConvCase cases[] = {{2, 3, 4, 5, 5, 3, 1, 1}, {1, 2, 3, 7, 7, 3, 2, 1},
                            {2, 3, 2, 4, 5, 1, 1, 2}, {2, 2, 3, 6, 6, 3, 2, 2},
                            {3, 2, 3, 4, 7, 3, 1, 2}};
  for (const auto algo : kAlgorithms)
  for (const auto& c : cases) {
    SCOPED_TRACE(kernels::conv_algorithm_name(algo));
    AlgorithmScope scope(algo);
    const int Ho = out_size(c.H, c.k, c.stride), Wo = out_size(c.W, c.k, c.stride);
    TestTensor<double, E> x("x", {c.B, c.Cin, c.H, c.W}), w("w", {c.Cout, c.Cin, c.k, c.k}),
        b("b", {c.Cout}), y("y", {c.B, c.Cout, Ho, Wo}), r("r", {c.B, c.Cout, Ho, Wo}),
        dx("dx", {c.B, c.Cin, c.H, c.W}), dw("dw", {c.Cout, c.Cin, c.k, c.k}), db("db", {c.Cout}),
        s("s", {int(scratch_for<E, double>(c))});
    x.randn(11);
    w.randn(12, 0.5);
    b.randn(13);
    r.randn(14);
    dw.fill(0);
    db.fill(0);
    Op::backward(exec, r.t4(), x.t4(), w.t4(), c.stride, dx.t4(), GradMode::Overwrite, dw.t4(),
                 db.t1(), s.t1());
    dx.download();
    dw.download();
    db.download();
    const auto R = r.values();
    auto loss = [&]() {
      Op::forward(exec, x.t4(), w.t4(), b.t1(), c.stride, y.t4(), s.t1());
      y.download();
      return dot(y, R);
    };
    expect_gradients_match<E>({{"x", &x, &dx}, {"w", &w, &dw}, {"b", &b, &db}}, loss);
  }
}

TYPED_TEST(Conv2dTest, BackwardAccumulatesWhereAsked) {
  using E = TypeParam;
  using Op = kernels::Conv2d<E, double>;
  E exec;
  for (const ConvCase c : {ConvCase{2, 3, 4, 6, 6, 3, 2, 1}, ConvCase{2, 3, 4, 5, 6, 3, 1, 1}}) {
  const int Ho = out_size(c.H, c.k, c.stride), Wo = out_size(c.W, c.k, c.stride);
  TestTensor<double, E> x("x", {c.B, c.Cin, c.H, c.W}), w("w", {c.Cout, c.Cin, c.k, c.k}),
      r("r", {c.B, c.Cout, Ho, Wo}), dx("dx", {c.B, c.Cin, c.H, c.W}),
      dw("dw", {c.Cout, c.Cin, c.k, c.k}), db("db", {c.Cout}),
      s("s", {int(scratch_for<E, double>(c))});
  x.randn(1);
  w.randn(2);
  r.randn(3);
  dw.fill(0);
  db.fill(0);
  Op::backward(exec, r.t4(), x.t4(), w.t4(), c.stride, dx.t4(), GradMode::Overwrite, dw.t4(),
               db.t1(), s.t1());
  dx.download();
  dw.download();
  db.download();
  const auto dx1 = dx.values(), dw1 = dw.values(), db1 = db.values();
  dx.randn(4);  // prefill: Accumulate must add to it
  const auto prefill = dx.values();
  Op::backward(exec, r.t4(), x.t4(), w.t4(), c.stride, dx.t4(), GradMode::Accumulate, dw.t4(),
               db.t1(), s.t1());
  dx.download();
  dw.download();
  db.download();
  std::vector<double> want_dx(dx1.size()), want_dw(dw1.size()), want_db(db1.size());
  for (size_t i = 0; i < dx1.size(); ++i) want_dx[i] = prefill[i] + dx1[i];
  for (size_t i = 0; i < dw1.size(); ++i) want_dw[i] = 2 * dw1[i];  // parameter grads always add
  for (size_t i = 0; i < db1.size(); ++i) want_db[i] = 2 * db1[i];
  EXPECT_TRUE(all_close(dx.values(), want_dx, 1e-12, 1e-12, "dx accumulate"));
  EXPECT_TRUE(all_close(dw.values(), want_dw, 1e-12, 1e-12, "dw accumulate"));
  EXPECT_TRUE(all_close(db.values(), want_db, 1e-12, 1e-12, "db accumulate"));
  }
}

// Winograd and the row-unfolded GEMMs against the unfolded GEMM at the UNet's shapes (float, as
// trained): forward (with the residual accumulate), the input gradient and the weight gradient.
// F(2x2, 3x3)'s transforms add at most 4 terms with weights 1 or 1/2 before and after the
// products, so the two differ by a few float roundings of the largest partial sums: 1e-5
// relative to the output's scale. Rows sums the same products in another order (three GEMMs
// of 3 Cin terms, each column's taps of one input row together): the same bound holds.
TYPED_TEST(Conv2dTest, OtherAlgorithmsMatchTheUnfoldedGemm) {
  using E = TypeParam;
  using Op = kernels::Conv2d<E, float>;
  E exec;
  const kernels::ConvAlgorithm algos[] = {kernels::ConvAlgorithm::Gemm, kernels::ConvAlgorithm::Winograd,
                                          kernels::ConvAlgorithm::Rows};
  for (const ConvCase c : {ConvCase{3, 16, 32, 28, 28, 3, 1, 2}, ConvCase{2, 32, 32, 7, 7, 3, 1, 2},
                           ConvCase{2, 33, 17, 14, 9, 3, 1, 1}, ConvCase{3, 4, 5, 1, 6, 3, 1, 2}}) {
    TestTensor<float, E> x("x", {c.B, c.Cin, c.H, c.W}), w("w", {c.Cout, c.Cin, 3, 3}),
        b("b", {c.Cout}), y("y", {c.B, c.Cout, c.H, c.W}), dy("dy", {c.B, c.Cout, c.H, c.W}),
        dx("dx", {c.B, c.Cin, c.H, c.W}), dw("dw", {c.Cout, c.Cin, 3, 3}), db("db", {c.Cout}),
        s("s", {int(scratch_for<E, float>(c))});
    x.randn(21);
    w.randn(22, 0.1);
    b.randn(23);
    dy.randn(24);
    std::vector<double> yv[3], dxv[3], dwv[3];
    for (int a = 0; a < 3; ++a) {
      AlgorithmScope scope(algos[a]);
      y.fill(1);
      Op::forward(exec, x.t4(), w.t4(), b.t1(), 1, y.t4(), s.t1(), /*accumulate=*/true);
      dx.fill(0);
      dw.fill(0.5);  // the weight gradient adds to what is there
      db.fill(0);
      Op::backward(exec, dy.t4(), x.t4(), w.t4(), 1, dx.t4(), GradMode::Overwrite, dw.t4(),
                   db.t1(), s.t1());
      y.download();
      dx.download();
      dw.download();
      yv[a] = y.values();
      dxv[a] = dx.values();
      dwv[a] = dw.values();
    }
    for (int a = 1; a < 3; ++a) {
      const std::string name = kernels::conv_algorithm_name(algos[a]);
      EXPECT_TRUE(all_close(yv[a], yv[0], 1e-5, 1e-5, ("y: " + name + " vs gemm").c_str()))
          << c.Cin << "->" << c.Cout << " " << c.H << "x" << c.W;
      EXPECT_TRUE(all_close(dxv[a], dxv[0], 1e-5, 1e-5, ("dx: " + name + " vs gemm").c_str()))
          << c.Cin << "->" << c.Cout << " " << c.H << "x" << c.W;
    }
    // the weight gradient: Winograd's is the unfolded GEMM's; rows' its own sums of B H W
    // products each (up to 2352 here), so the bound is relative to the largest entry's scale
    EXPECT_EQ(dwv[1], dwv[0]);
    double scale = 0;
    for (double v : dwv[0]) scale = std::max(scale, std::abs(v));
    EXPECT_TRUE(all_close(dwv[2], dwv[0], 1e-5, 1e-5 * scale, "dw: rows vs gemm"))
        << c.Cin << "->" << c.Cout << " " << c.H << "x" << c.W;
  }
}

// Sets the process-wide GEMM precision for one scope.
struct PrecisionScope : kernels::GemmPrecisionScope {
  explicit PrecisionScope(kernels::GemmPrecision p) : kernels::GemmPrecisionScope(p, "test") {}
};
struct LayoutScope {
  kernels::Bf16Layout saved = kernels::bf16_layout();
  explicit LayoutScope(kernels::Bf16Layout l) { kernels::set_bf16_layout(l); }
  ~LayoutScope() { kernels::set_bf16_layout(saved); }
};

// train.precision: bf16 (every convolution's GEMMs: the row-unfolded 3x3 ones, im2col's for 1x1
// and stride 2, and the unfolded GEMM when it is asked for): the convolution, its input gradient
// and its weight gradient. Two checks per output, with S = sum |a| |b| over its K products (the
// same computation in fp32 on |x|, |w|, |dy|):
// - it is the fp32 computation of the inputs rounded to bf16 (products of two bf16 values are
//   exact in fp32), within fp32's accumulation error 2 (K + 4) 2^-24 S;
// - against fp32 on the inputs as given, within their rounding: bf16 keeps 8 significant bits
//   (unit roundoff 2^-8), so each product is off by at most (2^-7 + 2^-16) |a b|, plus the above.
TYPED_TEST(Conv2dTest, Bf16StaysWithinTheRoundingOfItsInputs) {
  using E = TypeParam;
  using Op = kernels::Conv2d<E, float>;
  std::string why;
  if (!kernels::gemm_bf16_available<E>(&why)) GTEST_SKIP() << why;
  E exec;
  struct Case {
    ConvCase c;
    kernels::ConvAlgorithm algo;
  };
  const kernels::ConvAlgorithm rows = kernels::ConvAlgorithm::Rows, gemm = kernels::ConvAlgorithm::Gemm;
  for (const Case cs : {Case{{3, 16, 32, 28, 28, 3, 1, 2}, rows}, Case{{2, 33, 17, 14, 9, 3, 1, 1}, rows},
                        Case{{2, 32, 32, 7, 7, 3, 1, 2}, rows}, Case{{2, 33, 17, 14, 9, 3, 1, 1}, gemm},
                        Case{{2, 6, 9, 5, 7, 1, 1, 1}, rows}, Case{{4, 7, 5, 14, 14, 3, 2, 3}, rows},
                        Case{{1, 5, 3, 7, 7, 3, 2, 1}, rows},
                        // planes converted in more than one block (40 x 30 > 1024 values), and
                        // rows longer than the block, converted where they are written
                        Case{{2, 3, 4, 40, 30, 3, 1, 2}, rows}, Case{{1, 2, 3, 3, 1030, 3, 1, 1}, rows}})
  // both layouts of the host's bf16 row products, whichever this CPU takes by default
  for (const kernels::Bf16Layout layout : {kernels::Bf16Layout::Plain, kernels::Bf16Layout::Transposed}) {
    const ConvCase c = cs.c;
    AlgorithmScope algo(cs.algo);
    LayoutScope layout_scope(layout);
    const int Ho = out_size(c.H, c.k, c.stride), Wo = out_size(c.W, c.k, c.stride);
    TestTensor<float, E> x("x", {c.B, c.Cin, c.H, c.W}), w("w", {c.Cout, c.Cin, c.k, c.k}),
        b("b", {c.Cout}), y("y", {c.B, c.Cout, Ho, Wo}), dy("dy", {c.B, c.Cout, Ho, Wo}),
        dx("dx", {c.B, c.Cin, c.H, c.W}), dw("dw", {c.Cout, c.Cin, c.k, c.k}), db("db", {c.Cout}),
        s("s", {int(scratch_for<E, float>(c))});
    x.randn(31);
    w.randn(32, 0.1);
    b.fill(0);
    dy.randn(34);
    // y, dx, dw of (x, w, dy) as the precision asks
    auto run = [&](std::vector<double> out[3]) {
      Op::forward(exec, x.t4(), w.t4(), b.t1(), c.stride, y.t4(), s.t1());
      dw.fill(0);
      Op::backward(exec, dy.t4(), x.t4(), w.t4(), c.stride, dx.t4(), GradMode::Overwrite, dw.t4(), db.t1(),
                   s.t1());
      y.download();
      dx.download();
      dw.download();
      out[0] = y.values(), out[1] = dx.values(), out[2] = dw.values();
    };
    std::vector<double> fp32[3], bf[3], mag[3], rounded[3];
    run(fp32);
    {
      PrecisionScope p(kernels::GemmPrecision::BF16);
      run(bf);
    }
    const std::vector<double> xv = x.values(), wv = w.values(), dyv = dy.values();
    for (auto* t : {&x, &w, &dy}) {  // the inputs rounded to bf16, in fp32
      std::vector<double> v = t->values();
      for (double& e : v) e = kernels::from_bf16(kernels::to_bf16(static_cast<float>(e)));
      t->set(v);
    }
    run(rounded);
    x.set(xv), w.set(wv), dy.set(dyv);
    for (auto* t : {&x, &w, &dy}) {
      std::vector<double> v = t->values();
      for (double& e : v) e = std::abs(e);
      t->set(v);
    }
    run(mag);
    const char* names[3] = {"y", "dx", "dw"};
    const int kk = c.k * c.k;
    const double K[3] = {double(kk) * c.Cin, double(kk) * c.Cout, double(c.B) * Ho * Wo};
    for (int q = 0; q < 3; ++q) {
      double worst_exact = 0, worst_rounding = 0, largest_diff = 0;
      for (size_t i = 0; i < fp32[q].size(); ++i) {
        // against the fp32 computation of the rounded inputs: fp32 accumulation error only
        const double acc = 2 * (K[q] + 4) * 0x1p-24 * mag[q][i] + 1e-30;
        worst_exact = std::max(worst_exact, std::abs(bf[q][i] - rounded[q][i]) / acc);
        // against fp32 on the inputs as given: the rounding of the inputs on top
        const double d = std::abs(bf[q][i] - fp32[q][i]);
        worst_rounding = std::max(worst_rounding, d / ((0x1p-7 + 0x1p-16) * mag[q][i] + acc));
        largest_diff = std::max(largest_diff, d);
      }
      const std::string what = cat(names[q], ", ", c.Cin, "->", c.Cout, " ", c.H, "x", c.W, " k", c.k, " s",
                                   c.stride, " ", kernels::conv_algorithm_name(cs.algo), " ",
                                   kernels::bf16_layout_name(layout));
      EXPECT_LE(worst_exact, 1.0) << what << ": not the fp32 result of the bf16-rounded inputs (worst "
                                  << worst_exact << " of fp32's accumulation bound)";
      EXPECT_LE(worst_rounding, 1.0) << what << ": off by more than the inputs' rounding allows (worst "
                                     << worst_rounding << " of the bound)";
      EXPECT_GT(largest_diff, 0.0) << what << ": bitwise the fp32 result: bf16 was not used";
    }
  }
}

// A training network keeps each row-unfolded convolution's unfolded input from forward for
// backward (Conv2d::saved_size): the outputs and gradients are bitwise those without it, and
// backward reads the kept rows, not x: x is overwritten with other values before backward and
// the gradients do not change. Several chunks (the blocks' offsets and slack), an accumulated
// input gradient, and a backward without input gradient. bf16 GEMMs only (whose backward also
// reads the output gradient's unfolding for the weight gradient); fp32 keeps nothing.
TYPED_TEST(Conv2dTest, KeptRowsGiveTheSameResultsAndAreRead) {
  using E = TypeParam;
  using Op = kernels::Conv2d<E, float>;
  E exec;
  AlgorithmScope algo(kernels::ConvAlgorithm::Rows);
  EXPECT_EQ(Op::saved_size(kernels::Conv2dGeometry::make(2, 3, 8, 8, 4, 3, 1)), 0u) << "fp32";
  std::string why;
  if (!kernels::gemm_bf16_available<E>(&why)) GTEST_SKIP() << why;
  const auto prec = kernels::GemmPrecision::BF16;
  for (const ConvCase c : {ConvCase{5, 3, 4, 7, 7, 3, 1, 2}, ConvCase{3, 16, 32, 28, 28, 3, 1, 2},
                           ConvCase{2, 5, 3, 9, 1, 3, 1, 1}, ConvCase{4, 6, 6, 14, 14, 3, 1, 4}}) {
    PrecisionScope p(prec);
    const auto g = kernels::Conv2dGeometry::make(c.B, c.Cin, c.H, c.W, c.Cout, 3, 1);
    const std::string what = cat(kernels::gemm_precision_name(prec), " ", c.B, "x", c.Cin, "->", c.Cout,
                                 " ", c.H, "x", c.W, " chunk ", c.chunk);
    const size_t n = Op::saved_size(g);
    ASSERT_GT(n, 0u) << what;
    TestTensor<float, E> x("x", {c.B, c.Cin, c.H, c.W}), x2("x2", {c.B, c.Cin, c.H, c.W}),
        w("w", {c.Cout, c.Cin, 3, 3}), b("b", {c.Cout}), y("y", {c.B, c.Cout, c.H, c.W}),
        dy("dy", {c.B, c.Cout, c.H, c.W}), dx("dx", {c.B, c.Cin, c.H, c.W}), dw("dw", {c.Cout, c.Cin, 3, 3}),
        db("db", {c.Cout}), s("s", {int(scratch_for<E, float>(c))}), kept("kept", {int(n)}),
        small("small", {int(n) - 1});
    w.randn(41, 0.2);
    b.randn(42);
    dy.randn(43);
    x2.randn(44);
    const std::vector<double> dx0 = [&] { dx.randn(45); return dx.values(); }();
    // y, dx (accumulated onto dx0, or none), dw, db; saved: kept / small / none
    auto run = [&](bool with_dx, const Tensor1<float, E>& saved, bool change_x) {
      x.randn(40);
      Op::forward(exec, x.t4(), w.t4(), b.t1(), 1, y.t4(), s.t1(), false, saved);
      if (change_x) x.set(x2.values());
      dx.set(dx0);
      dw.fill(0);
      db.fill(0);
      Op::backward(exec, dy.t4(), x.t4(), w.t4(), 1, with_dx ? dx.t4() : Tensor4<float, E>(),
                   GradMode::Accumulate, dw.t4(), db.t1(), s.t1(), saved);
      y.download(), dx.download(), dw.download(), db.download();
      return std::vector<std::vector<double>>{y.values(), dx.values(), dw.values(), db.values()};
    };
    for (const bool with_dx : {true, false}) {
      const auto plain = run(with_dx, Tensor1<float, E>(), false);
      EXPECT_EQ(run(with_dx, kept.t1(), true), plain) << what << (with_dx ? "" : ", no dx");
      // too small to hold them: ignored, so backward reads x (here changed: dw differs)
      EXPECT_NE(run(with_dx, small.t1(), true)[2], plain[2]) << what;
    }
  }
  // nothing to keep where the convolution is not row-unfolded
  PrecisionScope p(prec);
  EXPECT_EQ(Op::saved_size(kernels::Conv2dGeometry::make(2, 3, 8, 8, 4, 3, 2)), 0u);
  EXPECT_EQ(Op::saved_size(kernels::Conv2dGeometry::make(2, 3, 8, 8, 4, 1, 1)), 0u);
  AlgorithmScope gemm(kernels::ConvAlgorithm::Gemm);
  EXPECT_EQ(Op::saved_size(kernels::Conv2dGeometry::make(2, 3, 8, 8, 4, 3, 1)), 0u);
}

TEST(ConvAlgorithm, ParsesItsNamesAndRejectsOthers) {
  EXPECT_EQ(kernels::parse_conv_algorithm("winograd", "x"), kernels::ConvAlgorithm::Winograd);
  EXPECT_EQ(kernels::parse_conv_algorithm("gemm", "x"), kernels::ConvAlgorithm::Gemm);
  EXPECT_EQ(kernels::parse_conv_algorithm("rows", "x"), kernels::ConvAlgorithm::Rows);
  for (auto a : kAlgorithms)
    EXPECT_EQ(kernels::parse_conv_algorithm(kernels::conv_algorithm_name(a), "x"), a);
  try {
    kernels::parse_conv_algorithm("fft", "DMIS_CONV_ALGO");
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("DMIS_CONV_ALGO: expected gemm, rows or winograd, found 'fft'"),
              std::string::npos)
        << e.what();
  }
}

TYPED_TEST(Conv2dTest, ChunkingDoesNotChangeTheResult) {
  using E = TypeParam;
  using Op = kernels::Conv2d<E, float>;
  E exec;
  ConvCase c{5, 3, 4, 7, 7, 3, 1, 5};
  TestTensor<float, E> x("x", {c.B, c.Cin, c.H, c.W}), w("w", {c.Cout, c.Cin, 3, 3}),
      b("b", {c.Cout}), y1("y1", {c.B, c.Cout, 7, 7}), y2("y2", {c.B, c.Cout, 7, 7}),
      big("big", {int(scratch_for<E, float>(c))});
  c.chunk = 2;  // 5 samples in chunks of 2, 2, 1
  TestTensor<float, E> small("small", {int(scratch_for<E, float>(c))});
  x.randn(5);
  w.randn(6);
  b.randn(7);
  for (const auto algo : kAlgorithms) {
    SCOPED_TRACE(kernels::conv_algorithm_name(algo));
    AlgorithmScope scope(algo);
    Op::forward(exec, x.t4(), w.t4(), b.t1(), 1, y1.t4(), big.t1());
    Op::forward(exec, x.t4(), w.t4(), b.t1(), 1, y2.t4(), small.t1());
    y1.download();
    y2.download();
    EXPECT_TRUE(all_close(y2.values(), y1.values(), 1e-6, 1e-6, "chunked vs whole batch"));
  }
}

TYPED_TEST(Conv2dTest, RejectsBadShapes) {
  using E = TypeParam;
  using Op = kernels::Conv2d<E, float>;
  E exec;
  TestTensor<float, E> x("x", {2, 3, 8, 8}), w("w", {4, 3, 3, 3}), wbad("wbad", {4, 2, 3, 3}),
      b("b", {4}), y("y", {2, 4, 8, 8}), ybad("ybad", {2, 4, 4, 4}), s("s", {100000}),
      tiny("tiny", {10});
  // weights with the wrong input channels
  try {
    Op::forward(exec, x.t4(), wbad.t4(), b.t1(), 1, y.t4(), s.t1());
    FAIL() << "expected a ShapeError";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("'w' has shape (4, 2, 3, 3), expected (*, 3, 3, 3)"),
              std::string::npos)
        << e.what();
  }
  // output for stride 2 passed to a stride 1 convolution
  EXPECT_THROW(Op::forward(exec, x.t4(), w.t4(), b.t1(), 1, ybad.t4(), s.t1()), ShapeError);
  EXPECT_THROW(Op::forward(exec, x.t4(), w.t4(), b.t1(), 3, y.t4(), s.t1()), ShapeError);
  EXPECT_THROW(Op::forward(exec, x.t4(), w.t4(), b.t1(), 1, y.t4(), tiny.t1()), ShapeError);
  EXPECT_THROW(Op::backward(exec, ybad.t4(), x.t4(), w.t4(), 1, x.t4(), GradMode::Overwrite,
                            w.t4(), b.t1(), s.t1()),
               ShapeError);
}

}  // namespace
