// The rule behind dmis's warning about OpenBLAS kernels below the CPU (core/version.hpp).
#include <gtest/gtest.h>

#include "core/version.hpp"

namespace {
const char* kXeon6 = "fpu sse sse2 ssse3 sse4_1 sse4_2 avx fma avx2 avx512f avx512bw avx512_fp16";
const char* kAvx2 = "fpu sse sse2 ssse3 sse4_1 sse4_2 avx fma avx2";
const char* kSse = "fpu sse sse2 ssse3 sse4_1 sse4_2";
}  // namespace

TEST(BlasCheck, FallbackKernelsOnAvx512NameSkylakeX) {
  const std::string w = dmis::blas_warning_for("Prescott", kXeon6, nullptr);
  EXPECT_NE(w.find("'Prescott' kernels on a CPU with AVX-512"), std::string::npos) << w;
  EXPECT_NE(w.find("it does not know this CPU"), std::string::npos) << w;
  EXPECT_NE(w.find("Set OPENBLAS_CORETYPE=SkylakeX"), std::string::npos) << w;
}

TEST(BlasCheck, FallbackKernelsOnAvx2NameHaswell) {
  const std::string w = dmis::blas_warning_for("Sandybridge", kAvx2, nullptr);
  EXPECT_NE(w.find("on a CPU with AVX2 "), std::string::npos) << w;
  EXPECT_NE(w.find("Set OPENBLAS_CORETYPE=Haswell"), std::string::npos) << w;
}

TEST(BlasCheck, ASetVariableIsNamed) {
  const std::string w = dmis::blas_warning_for("Nehalem", kXeon6, "Nehalem");
  EXPECT_NE(w.find("(OPENBLAS_CORETYPE=Nehalem)"), std::string::npos) << w;
}

TEST(BlasCheck, Avx2KernelsAreQuiet) {
  for (const char* core : {"Haswell", "Zen", "SkylakeX", "COOPERLAKE", "SapphireRapids"})
    EXPECT_EQ(dmis::blas_warning_for(core, kXeon6, nullptr), "") << core;
  EXPECT_EQ(dmis::blas_warning_for("Haswell", kAvx2, nullptr), "");
}

TEST(BlasCheck, NothingToGainOrNotOpenBlas) {
  EXPECT_EQ(dmis::blas_warning_for("Prescott", kSse, nullptr), "");   // the CPU has no AVX2
  EXPECT_EQ(dmis::blas_warning_for("Prescott", "", nullptr), "");     // flags unknown
  EXPECT_EQ(dmis::blas_warning_for("", kXeon6, nullptr), "");         // not OpenBLAS
  // whole words only: avx2 inside another flag's name is not AVX2
  EXPECT_EQ(dmis::blas_warning_for("Prescott", "sse avx2x", nullptr), "");
}
