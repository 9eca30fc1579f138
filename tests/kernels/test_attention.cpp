#include "harness/exec_spaces.hpp"
#include "harness/gradcheck.hpp"
#include "harness/reference.hpp"
#include "harness/tensor.hpp"
#include "kernels/attention.hpp"

namespace {
using namespace dmis;
using namespace dmis::test;

template <class E>
class AttentionTest : public ::testing::Test {};
TYPED_TEST_SUITE(AttentionTest, ExecSpaces, ExecSpaceNames);

TYPED_TEST(AttentionTest, ForwardMatchesReference) {
  using E = TypeParam;
  using Op = kernels::Attention<E, float>;
  E exec;
  for (auto [B, C, H, W] : {std::tuple{2, 8, 7, 7}, {1, 5, 3, 4}, {3, 64, 7, 7}, {1, 12, 14, 14}}) {
    const int N = H * W;
    TestTensor<float, E> qkv("qkv", {B, 3 * C, H, W}), h("h", {B, C, H, W}), a("a", {B, N, N});
    qkv.randn(1);
    Op::forward(exec, qkv.t4(), h.t4(), a.t3());
    h.download();
    EXPECT_TRUE(all_close(h.values(), ref::attention(qkv.values(), B, C, N), 1e-4, 1e-5,
                          "attention h"))
        << B << "x" << C << "x" << H << "x" << W;
    // the saved probabilities are transposed: each column sums to one
    a.download();
    for (int r = 0; r < B * N; ++r) {
      const size_t b = r / N, i = r % N;
      double s = 0;
      for (int j = 0; j < N; ++j) s += a[(b * N + j) * N + i];
      ASSERT_NEAR(s, 1.0, 1e-5) << "column " << i << " of sample " << b;
    }
  }
}

TYPED_TEST(AttentionTest, BackwardMatchesFiniteDifferences) {
  using E = TypeParam;
  using Op = kernels::Attention<E, double>;
  E exec;
  for (auto [B, C, H, W] : {std::tuple{2, 3, 2, 3}, {1, 4, 3, 3}}) {
    const int N = H * W;
    TestTensor<double, E> qkv("qkv", {B, 3 * C, H, W}), h("h", {B, C, H, W}), a("a", {B, N, N}),
        r("r", {B, C, H, W}), dqkv("dqkv", {B, 3 * C, H, W}),
        s("s", {int(Op::scratch_size(B, N))});
    qkv.randn(1);
    r.randn(2);
    Op::forward(exec, qkv.t4(), h.t4(), a.t3());
    Op::backward(exec, r.t4(), qkv.t4(), a.t3(), dqkv.t4(), GradMode::Overwrite, s.t1());
    dqkv.download();
    const auto R = r.values();
    auto loss = [&]() {
      Op::forward(exec, qkv.t4(), h.t4(), a.t3());
      h.download();
      return dot(h, R);
    };
    expect_gradients_match<E>({{"qkv", &qkv, &dqkv}}, loss);

    Op::forward(exec, qkv.t4(), h.t4(), a.t3());
    const auto d1 = dqkv.values();
    dqkv.randn(3);
    const auto pre = dqkv.values();
    Op::backward(exec, r.t4(), qkv.t4(), a.t3(), dqkv.t4(), GradMode::Accumulate, s.t1());
    dqkv.download();
    std::vector<double> want(pre.size());
    for (size_t i = 0; i < pre.size(); ++i) want[i] = pre[i] + d1[i];
    EXPECT_TRUE(all_close(dqkv.values(), want, 1e-12, 1e-12, "dqkv accumulate"));
  }
}

TYPED_TEST(AttentionTest, RejectsBadShapes) {
  using E = TypeParam;
  using Op = kernels::Attention<E, float>;
  E exec;
  TestTensor<float, E> qkv("qkv", {2, 7, 3, 3}), h("h", {2, 2, 3, 3}), a("a", {2, 9, 9});
  try {
    Op::forward(exec, qkv.t4(), h.t4(), a.t3());
    FAIL() << "expected ShapeError";
  } catch (const ShapeError& e) {
    EXPECT_NE(std::string(e.what()).find("qkv must have 3*C channels, got 7"), std::string::npos)
        << e.what();
  }
  TestTensor<float, E> qkv2("qkv2", {2, 6, 3, 3}), a2("a2", {2, 9, 8});
  EXPECT_THROW(Op::forward(exec, qkv2.t4(), h.t4(), a2.t3()), ShapeError);
}

}  // namespace
