#pragma once
// Counter-based random numbers (Philox-4x32-10, Salmon et al. 2011). A draw is a pure function
// of (seed, stream, step, sample, element): the same on every backend, thread count and rank
// count, and nothing needs saving in a checkpoint beyond the seed and the step.
#include <Kokkos_Core.hpp>
#include <cstdint>

#include "core/kokkos_compat.hpp"

namespace dmis::rng {

/// Independent streams: each use of randomness has its own, so that adding one never shifts
/// the draws of another.
enum Stream : uint32_t {
  kTrainNoise = 1,   // epsilon of x_sigma = x0 + sigma * epsilon
  kTrainSigma = 2,   // ln(sigma) ~ N(P_mean, P_std^2)
  kLabelDrop = 3,    // classifier-free guidance label dropout
  kDropout = 4,      // dropout masks
  kDataOrder = 5,    // the per-epoch permutation of the dataset
  kSampler = 6,      // sampler initial noise and churn
  kClassifier = 7,   // diffusion-classifier timesteps and noise
  kCorruption = 8,   // generated label noise, candidate sets, pixel masks
  kInit = 9,         // parameter initialisation
  kCandidate = 10,   // vanilla training on partial labels: the candidate used this step
  kAmbient = 11,     // Ambient Diffusion: the further mask of each image and the sampler's masks
  kAugment = 12,     // evaluator / classifier training: random horizontal flips
  kPpca = 13,        // DiffEM's PPCA start: initial loadings and posterior samples
  kPseudoLabel = 14, // DMIS: the class drawn from the posterior for the generative term
  kRampLabel = 15,   // DMIS ramp-in: whether a sample's generative class comes from the posterior
  kTest = 100,       // tests
};

struct Counter {
  uint32_t v[4];
};

/// The global index of local sample b: offset + b * stride. A rank's shard of a global batch
/// is interleaved (rank r of R holds samples r, r + R, r + 2R, ...), so a sample keeps its index,
/// and with it every draw keyed by it, whatever the rank count. Converts from a plain offset
/// (stride 1: a contiguous range).
struct SampleIds {
  uint32_t offset = 0, stride = 1;
  KOKKOS_INLINE_FUNCTION SampleIds() {}
  KOKKOS_INLINE_FUNCTION SampleIds(uint32_t first) : offset(first) {}  // NOLINT: implicit
  KOKKOS_INLINE_FUNCTION SampleIds(uint32_t first, uint32_t step_) : offset(first), stride(step_) {}
  KOKKOS_INLINE_FUNCTION uint32_t operator()(int b) const {
    return offset + static_cast<uint32_t>(b) * stride;
  }
};

KOKKOS_INLINE_FUNCTION void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * b;
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

/// Philox-4x32 with 10 rounds.
KOKKOS_INLINE_FUNCTION Counter philox4x32(Counter c, uint32_t k0, uint32_t k1) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(M0, c.v[0], hi0, lo0);
    mulhilo(M1, c.v[2], hi1, lo1);
    c = Counter{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
    k0 += W0;
    k1 += W1;
  }
  return c;
}

/// A keyed generator: key = (seed, stream).
struct Philox {
  uint32_t k0 = 0, k1 = 0;
  Philox() = default;
  KOKKOS_INLINE_FUNCTION Philox(uint64_t seed, uint32_t stream)
      : k0(static_cast<uint32_t>(seed) ^ (stream * 0x85EBCA6Bu)),
        k1(static_cast<uint32_t>(seed >> 32) + stream) {}

  /// Four 32-bit words for counter (a, b, c, d).
  KOKKOS_INLINE_FUNCTION Counter bits(uint32_t a, uint32_t b, uint32_t c, uint32_t d) const {
    return philox4x32(Counter{{a, b, c, d}}, k0, k1);
  }
};

/// Uniform in (0, 1): never 0, so that log() is safe.
template <class T>
KOKKOS_INLINE_FUNCTION T uniform_open(uint32_t u) {
  return (static_cast<T>(u >> 8) + T(0.5)) * T(1.0 / 16777216.0);
}

/// Two standard normals from two 32-bit words (Box-Muller).
template <class T>
KOKKOS_INLINE_FUNCTION void normal2(uint32_t a, uint32_t b, T& z0, T& z1) {
  const T u1 = uniform_open<T>(a), u2 = uniform_open<T>(b);
  const T r = compat::sqrt(T(-2) * compat::log(u1));
  const T t = T(6.283185307179586) * u2;
  z0 = r * compat::cos(t);
  z1 = r * compat::sin(t);
}

/// Standard normal number `index` of the sequence keyed by (gen, step, sample).
template <class T>
KOKKOS_INLINE_FUNCTION T normal(const Philox& gen, uint32_t step, uint32_t sample, uint32_t index) {
  const Counter c = gen.bits(index / 2, sample, step, 0u);
  T z0, z1;
  normal2<T>(c.v[0], c.v[1], z0, z1);
  return (index % 2 == 0) ? z0 : z1;
}

/// Uniform in (0, 1) number `index` of the sequence keyed by (gen, step, sample).
template <class T>
KOKKOS_INLINE_FUNCTION T uniform(const Philox& gen, uint32_t step, uint32_t sample, uint32_t index) {
  const Counter c = gen.bits(index / 4, sample, step, 1u);
  return uniform_open<T>(c.v[index % 4]);
}

}  // namespace dmis::rng
