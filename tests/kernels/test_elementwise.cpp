// SiLU, upsampling, concatenation, residual add and the channel broadcast add.
#include "harness/exec_spaces.hpp"
#include "harness/gradcheck.hpp"
#include "harness/reference.hpp"
#include "harness/tensor.hpp"
#include "kernels/activation.hpp"
#include "kernels/tensor_ops.hpp"

namespace {
using namespace dmis;
using namespace dmis::test;

template <class E>
class ElementwiseTest : public ::testing::Test {};
TYPED_TEST_SUITE(ElementwiseTest, ExecSpaces, ExecSpaceNames);

// Accumulate mode adds the Overwrite result to what was there. `run(dx, mode)` calls backward.
template <class E, class Run>
void expect_accumulates(TestTensor<double, E>& dx, const Run& run, const char* what) {
  run(dx, GradMode::Overwrite);
  dx.download();
  const auto once = dx.values();
  dx.randn(77);
  const auto pre = dx.values();
  run(dx, GradMode::Accumulate);
  dx.download();
  std::vector<double> want(pre.size());
  for (size_t i = 0; i < pre.size(); ++i) want[i] = pre[i] + once[i];
  EXPECT_TRUE(all_close(dx.values(), want, 1e-12, 1e-12, what));
}

TYPED_TEST(ElementwiseTest, SiLU) {
  using E = TypeParam;
  E exec;
  {
    TestTensor<float, E> x("x", {3, 5, 7, 7}), y("y", {3, 5, 7, 7});
    x.randn(1, 3.0);
    kernels::SiLU<E, float>::forward(exec, x.t1(), y.t1());
    y.download();
    EXPECT_TRUE(all_close(y.values(), ref::silu(x.values()), 1e-6, 1e-6, "silu"));
  }
  using Op = kernels::SiLU<E, double>;
  TestTensor<double, E> x("x", {2, 3, 4, 5}), y("y", {2, 3, 4, 5}), r("r", {2, 3, 4, 5}),
      dx("dx", {2, 3, 4, 5});
  x.randn(2, 3.0);
  r.randn(3);
  Op::backward(exec, r.t1(), x.t1(), dx.t1(), GradMode::Overwrite);
  dx.download();
  const auto R = r.values();
  expect_gradients_match<E>({{"x", &x, &dx}}, [&]() {
    Op::forward(exec, x.t1(), y.t1());
    y.download();
    return dot(y, R);
  });
  expect_accumulates<E>(
      dx, [&](auto& d, GradMode m) { Op::backward(exec, r.t1(), x.t1(), d.t1(), m); }, "silu dx");
  TestTensor<float, E> a("a", {10}), b("b", {11});
  EXPECT_THROW((kernels::SiLU<E, float>::forward(exec, a.t1(), b.t1())), ShapeError);
}

TYPED_TEST(ElementwiseTest, Upsample2x) {
  using E = TypeParam;
  E exec;
  {
    TestTensor<float, E> x("x", {2, 3, 7, 7}), y("y", {2, 3, 14, 14});
    x.randn(1);
    kernels::Upsample2x<E, float>::forward(exec, x.t4(), y.t4());
    y.download();
    EXPECT_TRUE(all_close(y.values(), ref::upsample2x(x.values(), 2, 3, 7, 7), 0, 0, "upsample"));
  }
  using Op = kernels::Upsample2x<E, double>;
  TestTensor<double, E> x("x", {1, 3, 3, 2}), y("y", {1, 3, 6, 4}), r("r", {1, 3, 6, 4}),
      dx("dx", {1, 3, 3, 2});
  x.randn(2);
  r.randn(3);
  Op::backward(exec, r.t4(), dx.t4(), GradMode::Overwrite);
  dx.download();
  const auto R = r.values();
  expect_gradients_match<E>({{"x", &x, &dx}}, [&]() {
    Op::forward(exec, x.t4(), y.t4());
    y.download();
    return dot(y, R);
  });
  expect_accumulates<E>(
      dx, [&](auto& d, GradMode m) { Op::backward(exec, r.t4(), d.t4(), m); }, "upsample dx");
  TestTensor<double, E> bad("bad", {1, 3, 6, 5});
  EXPECT_THROW(Op::forward(exec, x.t4(), bad.t4()), ShapeError);
}

TYPED_TEST(ElementwiseTest, Concat) {
  using E = TypeParam;
  E exec;
  {
    TestTensor<float, E> a("a", {2, 3, 7, 7}), b("b", {2, 5, 7, 7}), y("y", {2, 8, 7, 7});
    a.randn(1);
    b.randn(2);
    kernels::Concat<E, float>::forward(exec, a.t4(), b.t4(), y.t4());
    y.download();
    EXPECT_TRUE(all_close(y.values(), ref::concat(a.values(), 3, b.values(), 5, 2, 49), 0, 0,
                          "concat"));
  }
  using Op = kernels::Concat<E, double>;
  TestTensor<double, E> a("a", {2, 2, 3, 3}), b("b", {2, 3, 3, 3}), y("y", {2, 5, 3, 3}),
      r("r", {2, 5, 3, 3}), da("da", {2, 2, 3, 3}), db("db", {2, 3, 3, 3});
  a.randn(1);
  b.randn(2);
  r.randn(3);
  Op::backward(exec, r.t4(), da.t4(), GradMode::Overwrite, db.t4(), GradMode::Overwrite);
  da.download();
  db.download();
  const auto R = r.values();
  expect_gradients_match<E>({{"a", &a, &da}, {"b", &b, &db}}, [&]() {
    Op::forward(exec, a.t4(), b.t4(), y.t4());
    y.download();
    return dot(y, R);
  });
  // each half honours its own mode
  db.download();
  const auto db_once = db.values();
  expect_accumulates<E>(
      da,
      [&](auto& d, GradMode m) {
        Op::backward(exec, r.t4(), d.t4(), m, db.t4(), GradMode::Overwrite);
      },
      "concat da");
  db.download();
  EXPECT_TRUE(all_close(db.values(), db_once, 0, 0, "concat db stays overwritten"));
  TestTensor<double, E> bad("bad", {2, 3, 3, 4});
  EXPECT_THROW(Op::forward(exec, a.t4(), bad.t4(), y.t4()), ShapeError);
}

TYPED_TEST(ElementwiseTest, AddAndChannelAdd) {
  using E = TypeParam;
  E exec;
  using Add = kernels::Add<E, double>;
  TestTensor<double, E> a("a", {2, 3, 4, 4}), b("b", {2, 3, 4, 4}), y("y", {2, 3, 4, 4}),
      r("r", {2, 3, 4, 4}), da("da", {2, 3, 4, 4}), db("db", {2, 3, 4, 4});
  a.randn(1);
  b.randn(2);
  r.randn(3);
  Add::forward(exec, a.t1(), b.t1(), y.t1());
  y.download();
  for (size_t i = 0; i < y.size(); ++i) ASSERT_DOUBLE_EQ(y[i], a[i] + b[i]);
  Add::backward(exec, r.t1(), da.t1(), GradMode::Overwrite, db.t1(), GradMode::Overwrite);
  da.download();
  db.download();
  const auto R = r.values();
  expect_gradients_match<E>({{"a", &a, &da}, {"b", &b, &db}}, [&]() {
    Add::forward(exec, a.t1(), b.t1(), y.t1());
    y.download();
    return dot(y, R);
  });
  expect_accumulates<E>(
      db,
      [&](auto& d, GradMode m) {
        Add::backward(exec, r.t1(), da.t1(), GradMode::Overwrite, d.t1(), m);
      },
      "add db");

  using CA = kernels::ChannelAdd<E, double>;
  TestTensor<double, E> x("x", {2, 3, 5, 3}), e("e", {2, 3}), z("z", {2, 3, 5, 3}),
      rz("rz", {2, 3, 5, 3}), de("de", {2, 3});
  x.randn(4);
  e.randn(5);
  rz.randn(6);
  CA::forward(exec, x.t4(), e.t2(), z.t4());
  z.download();
  EXPECT_TRUE(all_close(z.values(), ref::channel_add(x.values(), e.values(), 2, 3, 15), 1e-15,
                        1e-15, "channel add"));
  CA::backward(exec, rz.t4(), de.t2(), GradMode::Overwrite);
  de.download();
  const auto RZ = rz.values();
  expect_gradients_match<E>({{"e", &e, &de}}, [&]() {
    CA::forward(exec, x.t4(), e.t2(), z.t4());
    z.download();
    return dot(z, RZ);
  });
  expect_accumulates<E>(
      de, [&](auto& d, GradMode m) { CA::backward(exec, rz.t4(), d.t2(), m); }, "channel add de");
  TestTensor<double, E> ebad("ebad", {2, 4});
  EXPECT_THROW(CA::forward(exec, x.t4(), ebad.t2(), z.t4()), ShapeError);
  TestTensor<double, E> short_b("short_b", {5});
  EXPECT_THROW(Add::forward(exec, a.t1(), short_b.t1(), y.t1()), ShapeError);
}

}  // namespace
