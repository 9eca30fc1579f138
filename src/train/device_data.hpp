#pragma once
// The training set on the device (images as uint8, the observed supervision) and the batch
// gather: which images a step sees is a pure function of (seed, step, position in the global
// batch), through a keyed permutation per epoch. No data order needs saving, a resumed run sees
// the same batches, and a rank only computes its own shard.
#include <cstdint>
#include <vector>

#include "core/rng.hpp"
#include "core/types.hpp"

namespace dmis::train {

/// A bijection of [0, n) keyed by `key`: a 4-round Feistel network on the smallest even
/// power of two >= n, with cycle walking.
KOKKOS_INLINE_FUNCTION uint32_t permute_index(uint32_t i, uint32_t n, uint64_t key) {
  if (n <= 1) return 0;
  int bits = 0;
  while ((1u << bits) < n) ++bits;
  if (bits % 2) ++bits;
  if (bits < 2) bits = 2;
  const int half = bits / 2;
  const uint32_t mask = (1u << half) - 1u;
  const rng::Philox gen(key, rng::kDataOrder);
  uint32_t x = i;
  do {
    uint32_t l = x >> half, r = x & mask;
    for (uint32_t round = 0; round < 4; ++round) {
      const uint32_t f = gen.bits(r, round, 0u, 0u).v[0] & mask;
      const uint32_t nl = r;
      r = l ^ f;
      l = nl;
    }
    x = (l << half) | r;
  } while (x >= n);
  return x;
}

template <class Exec>
class DeviceData {
public:
  using T = float;
  /// images (N, C, H, W) uint8; observed (N) label or -1; candidates (N, K) uint8 (may be
  /// empty: one-hot of observed); labeled (N) uint8 (may be empty: all labelled).
  DeviceData(int N, int C, int H, int W, int K, const std::vector<uint8_t>& images,
             const std::vector<int32_t>& observed, const std::vector<uint8_t>& candidates,
             const std::vector<uint8_t>& labeled);
  /// A corrupted training set: observations (N, C, H, W) in [-1, 1] (0 where missing) and
  /// masks (N, 1, H, W), 1 = observed, instead of images.
  DeviceData(int N, int C, int H, int W, int K, const std::vector<float>& observations,
             const std::vector<uint8_t>& masks, const std::vector<int32_t>& observed,
             const std::vector<uint8_t>& candidates, const std::vector<uint8_t>& labeled);

  bool corrupted() const { return m_obs.extent(0) > 0; }

  int size() const { return m_N; }
  int classes() const { return m_K; }

  /// data.labeled_share: of every global batch of `global_batch` samples, round(share x
  /// global_batch) slots (at least 1) draw from the labelled images and the rest from the
  /// unlabelled ones, each its own stream of epochs (a keyed permutation an epoch, as below),
  /// the labelled slots spread evenly over the global batch: slot g is labelled where
  /// floor((g + 1) L / B) steps up. Which rank holds them follows from the interleaved shards
  /// (with an even stride B / L, as 64 / 8, all on the odd ranks); the global batch, and so the
  /// reduced gradient, is the same for any rank count. Share 0: the single stream over all
  /// images. Still a pure function of (seed, step, position). Throws an
  /// InputError when the training set lacks labelled or unlabelled images or the batch has no
  /// room for both.
  void set_labeled_share(int global_batch, double share);
  /// Labelled slots of a global batch (0: one stream over all images).
  int labeled_slots() const { return m_share_L; }

  /// Dataset index of the sample at `position` of the training stream (position = step *
  /// global batch + the sample's index in the global batch).
  static KOKKOS_INLINE_FUNCTION uint32_t index_at(uint64_t position, uint32_t n, uint64_t seed) {
    const uint64_t epoch = position / n;
    return permute_index(static_cast<uint32_t>(position % n), n,
                         seed ^ (0x9E3779B97F4A7C15ull * (epoch + 1)));
  }

  /// Gathers the B samples at stream positions first + ids(b): x0 (B, C, H, W) in [-1, 1]
  /// (the observations of a corrupted set), observed (B), candidates (B, K), labeled (B),
  /// index (B), and, when `mask` (B, 1, H, W) is not empty, the pixel masks (all ones for a
  /// clean set).
  void gather(const Exec& exec, uint64_t seed, uint64_t first, rng::SampleIds ids,
              const Tensor4<T, Exec>& x0,
              const Tensor1<int, Exec>& observed, const Tensor2<uint8_t, Exec>& candidates,
              const Tensor1<uint8_t, Exec>& labeled, const Tensor1<int, Exec>& index,
              const Tensor4<T, Exec>& mask = Tensor4<T, Exec>()) const;
  /// Samples [first, first + B) in dataset order (evaluation).
  void gather_range(const Exec& exec, int first, const Tensor4<T, Exec>& x0) const;

private:
  void upload_supervision(const std::vector<int32_t>& observed,
                          const std::vector<uint8_t>& candidates,
                          const std::vector<uint8_t>& labeled);
  int m_N, m_C, m_H, m_W, m_K;
  Kokkos::View<uint8_t*, Kokkos::LayoutRight, DeviceOf<Exec>> m_images, m_masks;
  Kokkos::View<float*, Kokkos::LayoutRight, DeviceOf<Exec>> m_obs;
  Kokkos::View<int*, Kokkos::LayoutRight, DeviceOf<Exec>> m_observed;
  Kokkos::View<uint8_t*, Kokkos::LayoutRight, DeviceOf<Exec>> m_candidates, m_labeled;
  // data.labeled_share: the dataset indices of the labelled images, then the unlabelled ones
  // (m_n_labeled of them first); m_share_L labelled slots of a global batch of m_share_B
  Kokkos::View<uint32_t*, Kokkos::LayoutRight, DeviceOf<Exec>> m_by_label;
  int m_n_labeled = 0, m_share_L = 0, m_share_B = 0;
};

}  // namespace dmis::train
