// Sinusoidal embedding, class-embedding lookup and the weighted MSE loss.
#include "harness/exec_spaces.hpp"
#include "harness/gradcheck.hpp"
#include "harness/reference.hpp"
#include "harness/tensor.hpp"
#include "kernels/embedding.hpp"
#include "kernels/loss.hpp"

namespace {
using namespace dmis;
using namespace dmis::test;

template <class E>
class EmbeddingLossTest : public ::testing::Test {};
TYPED_TEST_SUITE(EmbeddingLossTest, ExecSpaces, ExecSpaceNames);

TYPED_TEST(EmbeddingLossTest, Sinusoidal) {
  using E = TypeParam;
  E exec;
  {
    TestTensor<float, E> c("c", {5}), y("y", {5, 32});
    c.randn(1, 1.5);
    kernels::SinusoidalEmbedding<E, float>::forward(exec, c.t1(), y.t2());
    y.download();
    EXPECT_TRUE(all_close(y.values(), ref::sinusoidal(c.values(), 32), 1e-5, 1e-5, "sinusoid"));
  }
  using Op = kernels::SinusoidalEmbedding<E, double>;
  TestTensor<double, E> c("c", {3}), y("y", {3, 8}), r("r", {3, 8}), dc("dc", {3});
  c.randn(2, 1.5);
  r.randn(3);
  Op::backward(exec, r.t2(), c.t1(), dc.t1(), GradMode::Overwrite);
  dc.download();
  const auto R = r.values();
  expect_gradients_match<E>({{"c_noise", &c, &dc}}, [&]() {
    Op::forward(exec, c.t1(), y.t2());
    y.download();
    return dot(y, R);
  });
  TestTensor<double, E> odd("odd", {3, 7});
  EXPECT_THROW(Op::forward(exec, c.t1(), odd.t2()), ShapeError);
  TestTensor<double, E> wrongb("wrongb", {4, 8});
  EXPECT_THROW(Op::forward(exec, c.t1(), wrongb.t2()), ShapeError);
}

TYPED_TEST(EmbeddingLossTest, ClassEmbedding) {
  using E = TypeParam;
  E exec;
  using Op = kernels::ClassEmbedding<E, double>;
  const int B = 6, K1 = 4, D = 5;  // K = 3 classes plus the "no label" row
  Kokkos::View<int*, Kokkos::LayoutRight, DeviceOf<E>> labels("dmis::test::labels", B);
  auto lh = Kokkos::create_mirror_view(labels);
  const int lv[B] = {2, 0, 3, 2, 1, 2};
  for (int b = 0; b < B; ++b) lh(b) = lv[b];
  Kokkos::deep_copy(labels, lh);
  Tensor1<const int, E> L(labels.data(), B);
  TestTensor<double, E> table("table", {K1, D}), y("y", {B, D}), r("r", {B, D}),
      dt("dt", {K1, D});
  table.randn(1);
  r.randn(2);
  y.randn(3);
  const auto y0 = y.values();
  Op::forward(exec, L, table.t2(), y.t2(), GradMode::Accumulate);  // emb += table[label]
  y.download();
  for (int b = 0; b < B; ++b)
    for (int d = 0; d < D; ++d)
      ASSERT_DOUBLE_EQ(y[b * D + d], y0[b * D + d] + table[lv[b] * D + d]);
  dt.fill(0);
  Op::backward(exec, r.t2(), L, dt.t2());
  dt.download();
  const auto R = r.values();
  expect_gradients_match<E>({{"table", &table, &dt}}, [&]() {
    Op::forward(exec, L, table.t2(), y.t2(), GradMode::Overwrite);
    y.download();
    return dot(y, R);
  });
  EXPECT_EQ(Op::count_out_of_range(exec, L, K1), 0);
  EXPECT_EQ(Op::count_out_of_range(exec, L, 3), 1);  // label 3 is outside [0, 3)
  TestTensor<double, E> bad("bad", {B, D + 1});
  EXPECT_THROW(Op::forward(exec, L, table.t2(), bad.t2(), GradMode::Overwrite), ShapeError);
}

TYPED_TEST(EmbeddingLossTest, MSE) {
  using E = TypeParam;
  E exec;
  const int B = 3, C = 2, H = 5, W = 3;
  {
    using Op = kernels::MSE<E, float>;
    TestTensor<float, E> p("p", {B, C, H, W}), t("t", {B, C, H, W}), w("w", {B}), ps("ps", {B}),
        tot("tot", {1});
    p.randn(1);
    t.randn(2);
    w.randn(3, 1.0, 2.0);
    Op::forward(exec, p.t4(), t.t4(), w.t1(), ps.t1(), tot.t1());
    ps.download();
    tot.download();
    const auto want = ref::mse_per_sample(p.values(), t.values(), w.values(), B);
    EXPECT_TRUE(all_close(ps.values(), want, 1e-5, 1e-6, "mse per sample"));
    EXPECT_NEAR(tot[0], (want[0] + want[1] + want[2]) / 3, 1e-5);
  }
  using Op = kernels::MSE<E, double>;
  TestTensor<double, E> p("p", {B, C, H, W}), t("t", {B, C, H, W}), w("w", {B}), ps("ps", {B}),
      tot("tot", {1}), dp("dp", {B, C, H, W});
  p.randn(1);
  t.randn(2);
  w.randn(3, 1.0, 2.0);
  const double dloss = 0.7;
  Op::backward(exec, dloss, p.t4(), t.t4(), w.t1(), dp.t4(), GradMode::Overwrite);
  dp.download();
  expect_gradients_match<E>({{"pred", &p, &dp}}, [&]() {
    Op::forward(exec, p.t4(), t.t4(), w.t1(), ps.t1(), tot.t1());
    tot.download();
    return dloss * tot[0];
  });
  TestTensor<double, E> tbad("tbad", {B, C, H, W + 1}), wbad("wbad", {B + 1});
  EXPECT_THROW(Op::forward(exec, p.t4(), tbad.t4(), w.t1(), ps.t1(), tot.t1()), ShapeError);
  EXPECT_THROW(Op::forward(exec, p.t4(), t.t4(), wbad.t1(), ps.t1(), tot.t1()), ShapeError);
}

}  // namespace
