// Global average pooling and softmax cross-entropy: forward against naive host references in
// double, backward against central finite differences with a random cotangent.
#include "harness/exec_spaces.hpp"
#include "harness/gradcheck.hpp"
#include "harness/reference.hpp"
#include "harness/tensor.hpp"
#include "kernels/cross_entropy.hpp"
#include "kernels/pool.hpp"

namespace {
using namespace dmis;
using namespace dmis::test;

template <class E> using IntView = Kokkos::View<int*, Kokkos::LayoutRight, DeviceOf<E>>;

template <class E> IntView<E> upload_labels(const std::vector<int>& v) {
  IntView<E> d("dmis::test::labels", v.size());
  auto h = Kokkos::create_mirror_view(d);
  for (size_t i = 0; i < v.size(); ++i)
    h(i) = v[i];
  Kokkos::deep_copy(d, h);
  return d;
}

template <class E> class PoolXentTest : public ::testing::Test {};
TYPED_TEST_SUITE(PoolXentTest, ExecSpaces, ExecSpaceNames);

TYPED_TEST(PoolXentTest, AvgPoolForwardMatchesReference) {
  using E = TypeParam;
  using Op = kernels::GlobalAvgPool<E, float>;
  E exec;
  for (auto [B, C, H, W] : {std::tuple{1, 3, 7, 7}, {4, 13, 5, 3}, {2, 128, 7, 7}}) {
    TestTensor<float, E> x("x", {B, C, H, W}), y("y", {B, C});
    x.randn(1, 1.0, 0.5);
    Op::forward(exec, x.t4(), y.t2());
    y.download();
    EXPECT_TRUE(all_close(y.values(), ref::global_avg_pool(x.values(), B, C, H * W), 1e-5, 1e-6,
                          "avgpool y"));
  }
}

TYPED_TEST(PoolXentTest, AvgPoolBackwardMatchesFiniteDifferences) {
  using E = TypeParam;
  using Op = kernels::GlobalAvgPool<E, double>;
  E exec;
  const int B = 2, C = 3, H = 4, W = 5;
  TestTensor<double, E> x("x", {B, C, H, W}), y("y", {B, C}), r("r", {B, C}),
      dx("dx", {B, C, H, W});
  x.randn(1);
  r.randn(2);
  Op::backward(exec, r.t2(), dx.t4(), GradMode::Overwrite);
  dx.download();
  const auto R = r.values();
  expect_gradients_match<E>({{"x", &x, &dx}}, [&]() {
    Op::forward(exec, x.t4(), y.t2());
    y.download();
    return dot(y, R);
  });
  // Accumulate adds to what is there.
  const auto once = dx.values();
  Op::backward(exec, r.t2(), dx.t4(), GradMode::Accumulate);
  dx.download();
  std::vector<double> twice(once.size());
  for (size_t i = 0; i < once.size(); ++i)
    twice[i] = 2 * once[i];
  EXPECT_TRUE(all_close(dx.values(), twice, 1e-14, 1e-14, "dx accumulate"));
}

TYPED_TEST(PoolXentTest, AvgPoolRejectsBadShapes) {
  using E = TypeParam;
  using Op = kernels::GlobalAvgPool<E, float>;
  E exec;
  TestTensor<float, E> x("x", {2, 4, 3, 3}), y("y", {2, 5}), dx("dx", {3, 4, 3, 3});
  try {
    Op::forward(exec, x.t4(), y.t2());
    FAIL() << "no error for a wrong output shape";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'y' has shape (2, 5), expected (2, 4)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(Op::backward(exec, y.t2(), dx.t4(), GradMode::Overwrite), ShapeError);
}

TYPED_TEST(PoolXentTest, CrossEntropyForwardMatchesReference) {
  using E = TypeParam;
  using Op = kernels::SoftmaxCrossEntropy<E, float>;
  E exec;
  const int B = 5, K = 10;
  const std::vector<int> lv = {3, 0, 9, 3, 7};
  auto labels = upload_labels<E>(lv);
  Tensor1<const int, E> L(labels.data(), B);
  TestTensor<float, E> logits("logits", {B, K}), probs("probs", {B, K}), ps("ps", {B}),
      tot("tot", {1});
  logits.randn(1, 3.0);
  logits[7] = 80.0f; // a large logit: the max subtraction keeps exp finite
  logits.upload();
  Op::forward(exec, logits.t2(), L, probs.t2(), ps.t1(), tot.t1());
  probs.download();
  ps.download();
  tot.download();
  std::vector<double> ref_probs, ref_loss;
  ref::softmax_xent(logits.values(), B, K, lv, ref_probs, ref_loss);
  EXPECT_TRUE(all_close(probs.values(), ref_probs, 1e-5, 1e-7, "softmax"));
  EXPECT_TRUE(all_close(ps.values(), ref_loss, 1e-5, 1e-5, "loss per sample"));
  double mean = 0;
  for (double v : ref_loss)
    mean += v / B;
  EXPECT_NEAR(tot[0], mean, 1e-5 * (1 + mean));

  Kokkos::View<int*, Kokkos::LayoutRight, DeviceOf<E>> pred("dmis::test::pred", B);
  Op::argmax(exec, logits.t2(), Tensor1<int, E>(pred.data(), B));
  auto hp = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), pred);
  for (int b = 0; b < B; ++b) {
    int best = 0;
    for (int k = 1; k < K; ++k)
      if (logits[b * K + k] > logits[b * K + best])
        best = k;
    EXPECT_EQ(hp(b), best) << "sample " << b;
  }
  EXPECT_EQ(hp(0), 7);
  EXPECT_EQ(Op::count_out_of_range(exec, L, K), 0);
  EXPECT_EQ(Op::count_out_of_range(exec, L, 9), 1); // label 9 is outside [0, 9)
}

TYPED_TEST(PoolXentTest, CrossEntropyBackwardMatchesFiniteDifferences) {
  using E = TypeParam;
  using Op = kernels::SoftmaxCrossEntropy<E, double>;
  E exec;
  const int B = 4, K = 6;
  auto labels = upload_labels<E>({5, 0, 2, 2});
  Tensor1<const int, E> L(labels.data(), B);
  TestTensor<double, E> logits("logits", {B, K}), probs("probs", {B, K}), ps("ps", {B}),
      tot("tot", {1}), dl("dl", {B, K});
  logits.randn(3, 2.0);
  const double dloss = 1.7;
  Op::forward(exec, logits.t2(), L, probs.t2(), ps.t1(), tot.t1());
  Op::backward(exec, dloss, probs.t2(), L, dl.t2(), GradMode::Overwrite);
  dl.download();
  expect_gradients_match<E>({{"logits", &logits, &dl}}, [&]() {
    Op::forward(exec, logits.t2(), L, probs.t2(), ps.t1(), tot.t1());
    tot.download();
    return dloss * tot[0];
  });
  // Accumulate: twice the gradient after a second call.
  Op::forward(exec, logits.t2(), L, probs.t2(), ps.t1(), tot.t1());
  const auto once = dl.values();
  Op::backward(exec, dloss, probs.t2(), L, dl.t2(), GradMode::Accumulate);
  dl.download();
  std::vector<double> twice(once.size());
  for (size_t i = 0; i < once.size(); ++i)
    twice[i] = 2 * once[i];
  EXPECT_TRUE(all_close(dl.values(), twice, 1e-14, 1e-14, "dlogits accumulate"));
}

TYPED_TEST(PoolXentTest, CrossEntropyRejectsBadShapes) {
  using E = TypeParam;
  using Op = kernels::SoftmaxCrossEntropy<E, float>;
  E exec;
  auto labels = upload_labels<E>({1, 2, 0});
  Tensor1<const int, E> L(labels.data(), 3);
  TestTensor<float, E> logits("logits", {3, 4}), probs("probs", {3, 5}), ps("ps", {3}),
      tot("tot", {1}), ps_bad("ps_bad", {2});
  try {
    Op::forward(exec, logits.t2(), L, probs.t2(), ps.t1(), tot.t1());
    FAIL() << "no error for a wrong probs shape";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'probs' has shape (3, 5), expected (3, 4)"),
              std::string::npos)
        << e.what();
  }
  TestTensor<float, E> probs_ok("probs_ok", {3, 4});
  EXPECT_THROW(Op::forward(exec, logits.t2(), L, probs_ok.t2(), ps_bad.t1(), tot.t1()), ShapeError);
  Tensor1<const int, E> L2(labels.data(), 2);
  EXPECT_THROW(Op::backward(exec, 1.0f, probs_ok.t2(), L2, probs_ok.t2(), GradMode::Overwrite),
               ShapeError);
}

} // namespace
