#include "deck/precision.hpp"

#include <Kokkos_Core.hpp>

#include "core/error.hpp"

namespace dmis::deck {

kernels::GemmPrecision gemm_precision(const Deck& d, const std::string& path) {
  const kernels::GemmPrecision p = kernels::parse_gemm_precision(d.get_string(path), path.c_str());
  std::string why;
  if (p == kernels::GemmPrecision::BF16 &&
      !kernels::gemm_bf16_available<Kokkos::DefaultExecutionSpace>(&why))
    d.fail(path, cat("bf16 needs a mixed-precision GEMM, and ", why));
  return p;
}

}  // namespace dmis::deck
