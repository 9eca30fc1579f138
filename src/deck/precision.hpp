#pragma once
// A deck key naming a GEMM precision (train.precision, method.estep_precision,
// classify.precision): parsed, and checked against what this build and machine can run.

#include <string>

#include "deck/deck.hpp"
#include "kernels/mixed_gemm.hpp"

namespace dmis::deck {

/// The precision at `path`: fp32, or bf16 where a mixed-precision GEMM is available for the
/// default execution space. Fails naming the key, what it needs and why it is missing
/// (checked at deck time, before a run writes anything).
kernels::GemmPrecision gemm_precision(const Deck& d, const std::string& path);

}  // namespace dmis::deck
