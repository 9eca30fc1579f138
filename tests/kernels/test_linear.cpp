#include "harness/exec_spaces.hpp"
#include "harness/gradcheck.hpp"
#include "harness/reference.hpp"
#include "harness/tensor.hpp"
#include "kernels/linear.hpp"

namespace {
using namespace dmis;
using namespace dmis::test;

template <class E>
class LinearTest : public ::testing::Test {};
TYPED_TEST_SUITE(LinearTest, ExecSpaces, ExecSpaceNames);

TYPED_TEST(LinearTest, ForwardMatchesReference) {
  using E = TypeParam;
  using Op = kernels::Linear<E, float>;
  E exec;
  for (auto [B, In, Out] : {std::tuple{1, 7, 5}, {4, 32, 128}, {3, 13, 9}}) {
    TestTensor<float, E> x("x", {B, In}), w("w", {Out, In}), b("b", {Out}), y("y", {B, Out});
    x.randn(1);
    w.randn(2, 0.2);
    b.randn(3);
    Op::forward(exec, x.t2(), w.t2(), b.t1(), y.t2());
    y.download();
    EXPECT_TRUE(all_close(y.values(), ref::linear(x.values(), B, In, w.values(), Out, b.values()),
                          1e-5, 1e-5, "linear y"));
  }
}

TYPED_TEST(LinearTest, BackwardMatchesFiniteDifferences) {
  using E = TypeParam;
  using Op = kernels::Linear<E, double>;
  E exec;
  for (auto [B, In, Out] : {std::tuple{1, 5, 3}, {3, 6, 7}}) {
    TestTensor<double, E> x("x", {B, In}), w("w", {Out, In}), b("b", {Out}), y("y", {B, Out}),
        r("r", {B, Out}), dx("dx", {B, In}), dw("dw", {Out, In}), db("db", {Out});
    x.randn(1);
    w.randn(2);
    b.randn(3);
    r.randn(4);
    dw.fill(0);
    db.fill(0);
    Op::backward(exec, r.t2(), x.t2(), w.t2(), dx.t2(), GradMode::Overwrite, dw.t2(), db.t1());
    dx.download();
    dw.download();
    db.download();
    const auto R = r.values();
    auto loss = [&]() {
      Op::forward(exec, x.t2(), w.t2(), b.t1(), y.t2());
      y.download();
      return dot(y, R);
    };
    expect_gradients_match<E>({{"x", &x, &dx}, {"w", &w, &dw}, {"b", &b, &db}}, loss);

    // Accumulate adds to dx; parameter gradients always add.
    dx.randn(5);
    const auto pre = dx.values();
    std::vector<double> dx1(pre.size());
    {
      TestTensor<double, E> tmp("tmp", {B, In});
      TestTensor<double, E> dw2("dw2", {Out, In});
      dw2.fill(0);
      Op::backward(exec, r.t2(), x.t2(), w.t2(), tmp.t2(), GradMode::Overwrite, dw2.t2(),
                   none<Tensor1<double, E>>());
      tmp.download();
      dx1 = tmp.values();
    }
    Op::backward(exec, r.t2(), x.t2(), w.t2(), dx.t2(), GradMode::Accumulate, dw.t2(), db.t1());
    dx.download();
    for (size_t i = 0; i < pre.size(); ++i) dx1[i] += pre[i];
    EXPECT_TRUE(all_close(dx.values(), dx1, 1e-12, 1e-12, "dx accumulate"));
  }
}

TYPED_TEST(LinearTest, RejectsBadShapes) {
  using E = TypeParam;
  using Op = kernels::Linear<E, float>;
  E exec;
  TestTensor<float, E> x("x", {2, 4}), w("w", {3, 5}), b("b", {3}), y("y", {2, 3});
  try {
    Op::forward(exec, x.t2(), w.t2(), b.t1(), y.t2());
    FAIL() << "expected ShapeError";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'w' has shape (3, 5), expected (3, 4)"),
              std::string::npos)
        << e.what();
  }
  TestTensor<float, E> w2("w2", {3, 4}), b2("b2", {4});
  EXPECT_THROW(Op::forward(exec, x.t2(), w2.t2(), b2.t1(), y.t2()), ShapeError);
}

}  // namespace
