// The training stream's batches (src/train/device_data.hpp): the single stream over all images,
// and data.labeled_share's two streams (a fixed count of labelled images in every batch, each
// stream a permutation an epoch), checked on the indices the gather writes.
#include <gtest/gtest.h>

#include <map>
#include <vector>

#include "core/error.hpp"
#include "train/device_data.hpp"

namespace {
using namespace dmis;
using Exec = Kokkos::DefaultExecutionSpace;
using Data = train::DeviceData<Exec>;

constexpr int kN = 100, kC = 1, kH = 2, kW = 2, kK = 10;

// 100 images, those with i % 10 == 3 labelled (10 of them), the rest unlabelled (observed -1)
Data make_data(bool all_labeled = false) {
  std::vector<uint8_t> images(static_cast<size_t>(kN) * kC * kH * kW);
  for (size_t i = 0; i < images.size(); ++i) images[i] = static_cast<uint8_t>(i % 251);
  std::vector<int32_t> observed(kN);
  for (int i = 0; i < kN; ++i) observed[i] = all_labeled || i % 10 == 3 ? i % kK : -1;
  return Data(kN, kC, kH, kW, kK, images, observed, {}, {});
}

struct Gathered {
  std::vector<int> index;
  std::vector<uint8_t> labeled;
};

// the samples of step `step` at global positions ids(b), b < B
Gathered gather(const Data& d, int global_batch, long step, rng::SampleIds ids, int B, uint64_t seed = 7) {
  Kokkos::View<float****, Kokkos::LayoutRight, Exec::memory_space> x0("x0", B, kC, kH, kW);
  Kokkos::View<int*, Kokkos::LayoutRight, Exec::memory_space> observed("obs", B), index("idx", B);
  Kokkos::View<uint8_t**, Kokkos::LayoutRight, Exec::memory_space> cand("cand", B, kK);
  Kokkos::View<uint8_t*, Kokkos::LayoutRight, Exec::memory_space> lab("lab", B);
  d.gather(Exec(), seed, static_cast<uint64_t>(step) * global_batch, ids,
           Tensor4<float, Exec>(x0.data(), B, kC, kH, kW), Tensor1<int, Exec>(observed.data(), B),
           Tensor2<uint8_t, Exec>(cand.data(), B, kK), Tensor1<uint8_t, Exec>(lab.data(), B),
           Tensor1<int, Exec>(index.data(), B));
  auto hi = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), index);
  auto hl = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), lab);
  Gathered g;
  for (int b = 0; b < B; ++b) g.index.push_back(hi(b)), g.labeled.push_back(hl(b));
  return g;
}

TEST(DeviceDataStream, ShareZeroIsOneStreamOverAllImages) {
  Data d = make_data();
  d.set_labeled_share(16, 0);
  EXPECT_EQ(d.labeled_slots(), 0);
  for (long s = 0; s < 3; ++s) {
    const auto g = gather(d, 16, s, rng::SampleIds(0, 1), 16);
    for (int b = 0; b < 16; ++b)
      EXPECT_EQ(static_cast<uint32_t>(g.index[b]), Data::index_at(s * 16 + b, kN, 7)) << "step " << s;
  }
}

TEST(DeviceDataStream, LabelledShareFixesTheCountAndKeepsEachStreamAnEpochPermutation) {
  Data d = make_data();
  d.set_labeled_share(16, 0.25);  // 4 labelled slots of 16
  ASSERT_EQ(d.labeled_slots(), 4);
  std::vector<int> lab_draws, unl_draws;
  for (long s = 0; s < 15; ++s) {  // 60 labelled draws (6 epochs of 10), 180 unlabelled (2 of 90)
    const auto g = gather(d, 16, s, rng::SampleIds(0, 1), 16);
    int nl = 0;
    for (int b = 0; b < 16; ++b) {
      const bool is_lab = g.index[b] % 10 == 3;
      EXPECT_EQ(g.labeled[b] != 0, is_lab) << "the labelled flag of image " << g.index[b];
      (is_lab ? lab_draws : unl_draws).push_back(g.index[b]);
      nl += is_lab;
    }
    EXPECT_EQ(nl, 4) << "labelled images in the batch of step " << s;
  }
  // every epoch of a stream is a permutation of its images
  auto check_epochs = [](const std::vector<int>& draws, int n, const char* what) {
    for (size_t e = 0; e + n <= draws.size(); e += n) {
      std::map<int, int> count;
      for (size_t j = e; j < e + n; ++j) ++count[draws[j]];
      EXPECT_EQ(static_cast<int>(count.size()), n) << what << " epoch from draw " << e;
    }
  };
  check_epochs(lab_draws, 10, "labelled");
  check_epochs(unl_draws, 90, "unlabelled");
  // not the same order every epoch
  EXPECT_NE(std::vector<int>(lab_draws.begin(), lab_draws.begin() + 10),
            std::vector<int>(lab_draws.begin() + 10, lab_draws.begin() + 20));
}

TEST(DeviceDataStream, LabelledShareShardsAsTheGlobalBatch) {
  Data d = make_data();
  d.set_labeled_share(16, 0.125);
  for (long s : {0L, 5L}) {
    const auto whole = gather(d, 16, s, rng::SampleIds(0, 1), 16);
    for (int r = 0; r < 2; ++r) {  // two ranks, interleaved shards
      const auto shard = gather(d, 16, s, rng::SampleIds(r, 2), 8);
      for (int b = 0; b < 8; ++b) EXPECT_EQ(shard.index[b], whole.index[r + 2 * b]) << "rank " << r;
    }
  }
}

TEST(DeviceDataStream, LabelledShareRefusesWhatCannotHoldIt) {
  Data all = make_data(/*all_labeled=*/true);
  EXPECT_THROW(all.set_labeled_share(16, 0.25), InputError);
  Data d = make_data();
  EXPECT_THROW(d.set_labeled_share(4, 0.9), InputError);  // 4 of 4 slots: no unlabelled one
  EXPECT_THROW(d.set_labeled_share(16, 1.0), InputError);
  d.set_labeled_share(64, 0.001);  // rounds to 0 slots: at least one
  EXPECT_EQ(d.labeled_slots(), 1);
}

}  // namespace
