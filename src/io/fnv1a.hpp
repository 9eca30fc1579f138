#pragma once
// FNV-1a over 64-bit words (h ^= w; h *= prime, mod 2^64): the one mixing step behind both
// digests of a checkpoint, the file digest of its bytes (file_digest.cpp) and the content
// digest of the values it returns (checkpoint.cpp).
#include <cstdint>

namespace dmis::io {

constexpr uint64_t kFnvPrime = 1099511628211ull;
/// The standard FNV-1a 64-bit offset basis (the file digest's).
constexpr uint64_t kFnvBasis = 14695981039346656037ull;
/// The content digest's basis: the standard one with a digit dropped, as every checkpoint of
/// format 3 was written with it (changing it would refuse all of them as damaged).
constexpr uint64_t kFnvBasisContent = 1469598103934665603ull;

struct Fnv1a64 {
  uint64_t h;
  explicit constexpr Fnv1a64(uint64_t basis = kFnvBasis) : h(basis) {}
  constexpr void mix(uint64_t w) {
    h ^= w;
    h *= kFnvPrime;
  }
};

}  // namespace dmis::io
