// The bf16 type's rounding and the mixed-precision GEMM (bf16 inputs, fp32 accumulation) against
// a double reference of the rounded inputs.
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include <gtest/gtest.h>

#include "core/error.hpp"
#include "kernels/mixed_gemm.hpp"

namespace {
using namespace dmis;
using kernels::bf16;

uint32_t bits_of(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
}
float float_of(uint32_t u) {
  float x;
  std::memcpy(&x, &u, 4);
  return x;
}

// The nearest bf16 by arithmetic, not by bit tricks: the two bf16 values around x (its upper 16
// bits, and the next one away from zero), the closer one, the even one on a tie.
uint16_t reference_round(float x) {
  const uint32_t u = bits_of(x);
  const uint16_t lo = static_cast<uint16_t>(u >> 16), hi = static_cast<uint16_t>(lo + 1);
  const double dl = std::abs(static_cast<double>(x) - float_of(static_cast<uint32_t>(lo) << 16));
  const double dh = std::abs(static_cast<double>(float_of(static_cast<uint32_t>(hi) << 16)) - x);
  if (dl < dh) return lo;
  if (dh < dl) return hi;
  return (lo & 1) ? hi : lo;
}

TEST(Bf16, RoundsToNearestEven) {
  auto r = [](float x) { return kernels::to_bf16(x).bits; };
  EXPECT_EQ(r(1.0f), 0x3f80);
  EXPECT_EQ(r(-2.0f), 0xc000);
  EXPECT_EQ(r(1.0f + 0x1p-8f), 0x3f80);                // halfway, 0x3f80 is even
  EXPECT_EQ(r(1.0f + 3 * 0x1p-8f), 0x3f82);            // halfway, 0x3f82 is even
  EXPECT_EQ(r(1.0f + 0x1p-8f + 0x1p-20f), 0x3f81);     // just above halfway
  EXPECT_EQ(r(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_EQ(r(-std::numeric_limits<float>::infinity()), 0xff80);
  EXPECT_EQ(r(std::numeric_limits<float>::max()), 0x7f80);  // rounds past the largest bf16
  EXPECT_EQ(r(0.0f), 0x0000);
  EXPECT_EQ(r(-0.0f), 0x8000);
  EXPECT_TRUE(std::isnan(kernels::from_bf16(kernels::to_bf16(std::nanf("")))));
  // a signalling NaN whose payload lies in the low bits only stays a NaN (not infinity)
  EXPECT_TRUE(std::isnan(kernels::from_bf16(kernels::to_bf16(float_of(0x7f800001u)))));
  std::mt19937 gen(5);
  std::uniform_int_distribution<uint32_t> any;
  for (int i = 0; i < 200000; ++i) {
    const float x = float_of(any(gen));
    if (std::isnan(x) || std::isinf(x) || std::abs(x) >= 0x1.fefffep127f) continue;
    ASSERT_EQ(r(x), reference_round(x)) << std::hexfloat << x;
    ASSERT_EQ(kernels::from_bf16(bf16{r(x)}), float_of(static_cast<uint32_t>(r(x)) << 16));
  }
}

TEST(GemmPrecision, ParsesItsNamesAndRejectsOthers) {
  EXPECT_EQ(kernels::parse_gemm_precision("fp32", "x"), kernels::GemmPrecision::FP32);
  EXPECT_EQ(kernels::parse_gemm_precision("bf16", "x"), kernels::GemmPrecision::BF16);
  try {
    kernels::parse_gemm_precision("fp16", "train.precision");
    FAIL() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("train.precision: expected fp32 or bf16, found 'fp16'"), std::string::npos)
        << e.what();
  }
  std::string why;
  if (!kernels::gemm_bf16_available<Kokkos::DefaultExecutionSpace>(&why)) {
    // no mixed GEMM here: asking for bf16 says which key asked and what is missing
    try {
      kernels::set_gemm_precision(kernels::GemmPrecision::BF16, "train.precision");
      FAIL() << "expected an InputError";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("train.precision: bf16 needs a mixed-precision GEMM"), std::string::npos)
          << e.what();
    }
    EXPECT_EQ(kernels::gemm_precision(), kernels::GemmPrecision::FP32);
  }
}

// gemm_bf16 on execution space Exec with host vectors: copied to Exec's memory and back
template <class Exec>
void gemm_bf16_on(char ta, char tb, int M, int N, int K, float alpha, const std::vector<bf16>& A, int lda,
                  const std::vector<bf16>& B, int ldb, float beta, std::vector<float>& C) {
  using Mem = typename Exec::memory_space;
  using U = Kokkos::MemoryTraits<Kokkos::Unmanaged>;
  Kokkos::View<bf16*, Mem> a("a", A.size()), b("b", B.size());
  Kokkos::View<float*, Mem> c("c", C.size());
  Kokkos::deep_copy(a, Kokkos::View<const bf16*, Kokkos::HostSpace, U>(A.data(), A.size()));
  Kokkos::deep_copy(b, Kokkos::View<const bf16*, Kokkos::HostSpace, U>(B.data(), B.size()));
  Kokkos::deep_copy(c, Kokkos::View<const float*, Kokkos::HostSpace, U>(C.data(), C.size()));
  const Exec exec;
  kernels::gemm_bf16(exec, ta, tb, M, N, K, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), N);
  exec.fence();
  Kokkos::deep_copy(Kokkos::View<float*, Kokkos::HostSpace, U>(C.data(), C.size()), c);
}

// C = alpha op(A) op(B) + beta C for every op, odd sizes: within fp32 accumulation of the exact
// products of the bf16-rounded inputs (each product is exact in fp32: 8 + 8 significant bits),
// and bitwise the same when repeated. On Exec's own GEMM (the host's oneDNN; cuBLAS GemmEx in
// CUDA builds, whose row-major mapping this checks).
template <class Exec>
void check_mixed_gemm() {
  std::string why;
  if (!kernels::gemm_bf16_available<Exec>(&why)) GTEST_SKIP() << why;
  std::mt19937 gen(11);
  std::normal_distribution<float> n01;
  for (const char ta : {'N', 'T'})
    for (const char tb : {'N', 'T'})
      for (const auto& [M, N, K] : {std::array<int, 3>{13, 29, 1}, std::array<int, 3>{13, 29, 37},
                                    std::array<int, 3>{13, 29, 300}, std::array<int, 3>{45, 147, 5},
                                    std::array<int, 3>{45, 49, 5}, std::array<int, 3>{16, 1000, 48}}) {
        const float alpha = 0.75f, beta = ta == tb ? 0.0f : -0.5f;
        std::vector<bf16> A(static_cast<size_t>(M) * K), B(static_cast<size_t>(K) * N);
        for (auto& a : A) a = kernels::to_bf16(n01(gen));
        for (auto& b : B) b = kernels::to_bf16(n01(gen));
        std::vector<float> C0(static_cast<size_t>(M) * N);
        for (auto& c : C0) c = n01(gen);
        const int lda = ta == 'N' ? K : M, ldb = tb == 'N' ? N : K;
        auto a_at = [&](int i, int k) { return kernels::from_bf16(ta == 'N' ? A[i * lda + k] : A[k * lda + i]); };
        auto b_at = [&](int k, int j) { return kernels::from_bf16(tb == 'N' ? B[k * ldb + j] : B[j * ldb + k]); };
        std::vector<float> C = C0, C2 = C0;
        gemm_bf16_on<Exec>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C);
        gemm_bf16_on<Exec>(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C2);
        ASSERT_EQ(C, C2) << "not reproducible: " << ta << tb << " K " << K;
        for (int i = 0; i < M; ++i)
          for (int j = 0; j < N; ++j) {
            double ref = 0, mag = 0;
            for (int k = 0; k < K; ++k) {
              ref += static_cast<double>(a_at(i, k)) * b_at(k, j);
              mag += std::abs(static_cast<double>(a_at(i, k)) * b_at(k, j));
            }
            ref = alpha * ref + beta * C0[i * N + j];
            mag = alpha * mag + std::abs(beta * C0[i * N + j]);
            // fp32 accumulation of K exact products: at most about K ulp(2^-24) of the magnitude
            EXPECT_NEAR(C[i * N + j], ref, (K + 2) * 0x1p-24 * mag + 1e-30)
                << Exec::name() << " " << ta << tb << " K " << K << " at " << i << "," << j;
          }
      }
}

TEST(MixedGemm, MatchesADoubleReferenceOfTheRoundedInputs) {
  check_mixed_gemm<Kokkos::DefaultHostExecutionSpace>();
}

// The device's own mixed GEMM (a GPU build; the same as above where the default space is the host)
TEST(MixedGemm, OnTheDefaultSpaceMatchesADoubleReferenceOfTheRoundedInputs) {
  if (std::is_same<Kokkos::DefaultExecutionSpace, Kokkos::DefaultHostExecutionSpace>::value)
    GTEST_SKIP() << "the default execution space is the host's (the test above)";
  check_mixed_gemm<Kokkos::DefaultExecutionSpace>();
}

}  // namespace
