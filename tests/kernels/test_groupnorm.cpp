#include "harness/exec_spaces.hpp"
#include "harness/gradcheck.hpp"
#include "harness/reference.hpp"
#include "harness/tensor.hpp"
#include "kernels/groupnorm.hpp"

namespace {
using namespace dmis;
using namespace dmis::test;

template <class E>
class GroupNormTest : public ::testing::Test {};
TYPED_TEST_SUITE(GroupNormTest, ExecSpaces, ExecSpaceNames);

struct GnCase {
  int B, C, H, W, G;
};

TYPED_TEST(GroupNormTest, ForwardMatchesReference) {
  using E = TypeParam;
  using Op = kernels::GroupNorm<E, float>;
  E exec;
  for (const auto& c : {GnCase{2, 8, 7, 7, 4}, GnCase{1, 6, 5, 3, 3}, GnCase{3, 32, 14, 14, 8},
                        GnCase{2, 5, 7, 7, 5}, GnCase{1, 12, 28, 28, 1}}) {
    TestTensor<float, E> x("x", {c.B, c.C, c.H, c.W}), g("g", {c.C}), b("b", {c.C}),
        y("y", {c.B, c.C, c.H, c.W}), m("m", {c.B, c.G}), r("r", {c.B, c.G});
    x.randn(1, 2.0, 3.0);  // offset mean: a one-pass variance would lose accuracy here
    g.randn(2, 0.5, 1.0);
    b.randn(3);
    const auto want = ref::groupnorm(x.values(), c.B, c.C, c.H, c.W, c.G, g.values(), b.values(),
                                     1e-5);
    Op::forward(exec, x.t4(), g.t1(), b.t1(), c.G, 1e-5f, y.t4(), m.t2(), r.t2());
    y.download();
    EXPECT_TRUE(all_close(y.values(), want, 1e-4, 1e-4, "groupnorm y"))
        << c.B << "x" << c.C << "x" << c.H << "x" << c.W << " G=" << c.G;
    Op::forward(exec, x.t4(), g.t1(), b.t1(), c.G, 1e-5f, y.t4(), m.t2(), r.t2(), kernels::Activation::Silu);
    y.download();
    EXPECT_TRUE(all_close(y.values(), ref::silu(want), 1e-4, 1e-4, "silu(groupnorm) y"));
  }
}

TYPED_TEST(GroupNormTest, BackwardMatchesFiniteDifferences) {
  using E = TypeParam;
  using Op = kernels::GroupNorm<E, double>;
  E exec;
  for (const auto act : {kernels::Activation::None, kernels::Activation::Silu})
  for (const auto& c : {GnCase{2, 6, 3, 3, 3}, GnCase{1, 4, 5, 4, 2}, GnCase{2, 5, 3, 3, 5}}) {
    const bool silu = act == kernels::Activation::Silu;
    SCOPED_TRACE(silu ? "fused SiLU" : "plain");
    TestTensor<double, E> x("x", {c.B, c.C, c.H, c.W}), g("g", {c.C}), b("b", {c.C}),
        y("y", {c.B, c.C, c.H, c.W}), m("m", {c.B, c.G}), rs("rs", {c.B, c.G}),
        r("r", {c.B, c.C, c.H, c.W}), dx("dx", {c.B, c.C, c.H, c.W}), dg("dg", {c.C}),
        db("db", {c.C}), s("s", {int(Op::scratch_size(c.B, c.C, c.G))});
    x.randn(1, 1.0, 0.5);
    g.randn(2, 0.5, 1.0);
    b.randn(3);
    r.randn(4);
    dg.fill(0);
    db.fill(0);
    Op::forward(exec, x.t4(), g.t1(), b.t1(), c.G, 1e-5, y.t4(), m.t2(), rs.t2(), act);
    Op::backward(exec, r.t4(), x.t4(), g.t1(), b.t1(), m.t2(), rs.t2(), dx.t4(),
                 GradMode::Overwrite, dg.t1(), db.t1(), s.t1(), act);
    dx.download();
    dg.download();
    db.download();
    const auto R = r.values();
    auto loss = [&]() {
      Op::forward(exec, x.t4(), g.t1(), b.t1(), c.G, 1e-5, y.t4(), m.t2(), rs.t2(), act);
      y.download();
      return dot(y, R);
    };
    expect_gradients_match<E>({{"x", &x, &dx}, {"gamma", &g, &dg}, {"beta", &b, &db}}, loss);
    if (silu) {  // keeping the SiLU gradient in dy's own buffer gives the same result
      TestTensor<double, E> r2("r2", {c.B, c.C, c.H, c.W}), dx2("dx2", {c.B, c.C, c.H, c.W}),
          dg2("dg2", {c.C}), db2("db2", {c.C});
      r2.set(r.values());
      dg2.fill(0);
      db2.fill(0);
      Op::forward(exec, x.t4(), g.t1(), b.t1(), c.G, 1e-5, y.t4(), m.t2(), rs.t2(), act);
      Op::backward(exec, r2.t4(), x.t4(), g.t1(), b.t1(), m.t2(), rs.t2(), dx2.t4(),
                   GradMode::Overwrite, dg2.t1(), db2.t1(), s.t1(), act, r2.t4());
      dx2.download();
      dg2.download();
      EXPECT_TRUE(all_close(dx2.values(), dx.values(), 1e-12, 1e-12, "dx with work == dy"));
      EXPECT_TRUE(all_close(dg2.values(), dg.values(), 1e-12, 1e-12, "dgamma with work == dy"));
    }

    // Accumulate
    Op::forward(exec, x.t4(), g.t1(), b.t1(), c.G, 1e-5, y.t4(), m.t2(), rs.t2(), act);
    const auto dx1 = dx.values();
    dx.randn(9);
    const auto pre = dx.values();
    Op::backward(exec, r.t4(), x.t4(), g.t1(), b.t1(), m.t2(), rs.t2(), dx.t4(),
                 GradMode::Accumulate, dg.t1(), db.t1(), s.t1(), act);
    dx.download();
    std::vector<double> want(pre.size());
    for (size_t i = 0; i < pre.size(); ++i) want[i] = pre[i] + dx1[i];
    EXPECT_TRUE(all_close(dx.values(), want, 1e-12, 1e-12, "dx accumulate"));
  }
}

TYPED_TEST(GroupNormTest, RejectsBadShapes) {
  using E = TypeParam;
  using Op = kernels::GroupNorm<E, float>;
  E exec;
  TestTensor<float, E> x("x", {2, 6, 4, 4}), g("g", {6}), b("b", {6}), y("y", {2, 6, 4, 4}),
      m("m", {2, 4}), r("r", {2, 4}), g5("g5", {5});
  try {
    Op::forward(exec, x.t4(), g.t1(), b.t1(), 4, 1e-5f, y.t4(), m.t2(), r.t2());
    FAIL() << "expected ShapeError";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("channels (6) must be a positive multiple of groups (4)"),
              std::string::npos)
        << e.what();
  }
  TestTensor<float, E> m3("m3", {2, 3}), r3("r3", {2, 3});
  EXPECT_THROW(Op::forward(exec, x.t4(), g5.t1(), b.t1(), 3, 1e-5f, y.t4(), m3.t2(), r3.t2()),
               ShapeError);
  EXPECT_THROW(Op::forward(exec, x.t4(), g.t1(), b.t1(), 3, 1e-5f, y.t4(), m.t2(), r.t2()),
               ShapeError);
}

}  // namespace
