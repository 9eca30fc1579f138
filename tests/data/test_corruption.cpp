// Corruption channels (src/data/corruption.hpp): the spec grammar, each channel against an
// independent host computation, determinism, the device kernel against the host path, and the
// corrupted dataset layout (observations + masks, never images).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "data/corruption.hpp"
#include "data_test_util.hpp"
#include "io/h5.hpp"

namespace dmis::test {
namespace {

using data::Corruption;
using data::parse_corruption;

// Random-looking uint8 images (N, C, H, W), deterministic.
std::vector<uint8_t> images(int N, int C, int H, int W) {
  std::vector<uint8_t> v(static_cast<size_t>(N) * C * H * W);
  uint32_t s = 12345;
  for (auto& p : v) {
    s = s * 1664525u + 1013904223u;
    p = static_cast<uint8_t>(s >> 24);
  }
  return v;
}

float pixel(const std::vector<uint8_t>& im, size_t i) { return im[i] / 127.5f - 1.f; }

std::string usage_error(const std::string& spec) {
  try {
    parse_corruption(spec);
  } catch (const UsageError& e) {
    return e.what();
  }
  ADD_FAILURE() << "spec '" << spec << "' was accepted";
  return "";
}

TEST(Corruption, ParsesTheGrammarAndRoundTrips) {
  const Corruption m = parse_corruption("mask:0.9");
  EXPECT_EQ(m.kind, Corruption::Kind::Mask);
  EXPECT_DOUBLE_EQ(m.p, 0.9);
  EXPECT_EQ(m.spec(), "mask:0.9");
  const Corruption b = parse_corruption("box:14");
  EXPECT_EQ(b.kind, Corruption::Kind::Box);
  EXPECT_EQ(b.box_h, 14);
  EXPECT_EQ(b.box_w, 14);
  EXPECT_EQ(parse_corruption("box:10x6").box_w, 6);
  EXPECT_DOUBLE_EQ(parse_corruption("box:0.25").box_frac, 0.25);
  const Corruption g = parse_corruption("blur:1.5,noise:0.05");
  EXPECT_EQ(g.kind, Corruption::Kind::Blur);
  EXPECT_EQ(g.blur_width, 11);  // 2 ceil(4.5) + 1
  EXPECT_DOUBLE_EQ(g.noise, 0.05);
  EXPECT_EQ(parse_corruption("blur:2,width:5").blur_width, 5);
  for (const char* spec : {"mask:0.5,noise:0.001", "box:10x6", "box:0.25", "blur:1.5,width:7"})
    EXPECT_EQ(parse_corruption(parse_corruption(spec).spec()).spec(), parse_corruption(spec).spec())
        << spec;
  EXPECT_TRUE(parse_corruption("none").none());
}

TEST(Corruption, RejectsBadSpecsWithTheReason) {
  EXPECT_TRUE(contains_all(usage_error("mask:1.5"), {"mask:1.5", "mask rate expects [0, 1)"}));
  EXPECT_TRUE(contains_all(usage_error("mask:abc"), {"'mask' expects a number, found 'abc'"}));
  EXPECT_TRUE(contains_all(usage_error("holes:3"), {"unknown channel 'holes'", "known: mask:P"}));
  EXPECT_TRUE(contains_all(usage_error("blur:1,width:4"), {"odd integer, found 4"}));
  EXPECT_TRUE(contains_all(usage_error("mask:0.5,width:3"), {"'width' belongs to blur"}));
  EXPECT_TRUE(contains_all(usage_error("mask:0.5,noise:-1"), {"noise expects [0, 10]"}));
  EXPECT_TRUE(contains_all(usage_error("box:0"), {"positive integer"}));
  EXPECT_TRUE(contains_all(usage_error("mask"), {"expects KEY:VALUE"}));
}

TEST(Corruption, RandomMaskHasItsRateAndZeroesMissingPixels) {
  const int N = 64, C = 2, H = 28, W = 28;
  const auto im = images(N, C, H, W);
  std::vector<float> obs;
  std::vector<uint8_t> mask;
  data::corrupt_images(parse_corruption("mask:0.9"), 7, N, C, H, W, im, obs, mask);
  ASSERT_EQ(mask.size(), size_t(N) * H * W);
  const double seen = std::accumulate(mask.begin(), mask.end(), 0.0) / mask.size();
  EXPECT_NEAR(seen, 0.1, 0.01);  // 50176 Bernoulli(0.1) draws: sd 0.0013
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      for (int p = 0; p < H * W; ++p) {
        const size_t i = (size_t(n) * C + c) * H * W + p;
        const bool m = mask[size_t(n) * H * W + p];
        ASSERT_EQ(obs[i], m ? pixel(im, i) : 0.f) << "image " << n << " channel " << c;
      }
  // masks differ between images, and a different seed gives different masks
  int same = 0;
  for (int p = 0; p < H * W; ++p) same += mask[p] == mask[H * W + p];
  EXPECT_LT(same, H * W);
  std::vector<float> obs2;
  std::vector<uint8_t> mask2;
  data::corrupt_images(parse_corruption("mask:0.9"), 8, N, C, H, W, im, obs2, mask2);
  EXPECT_NE(mask, mask2);
  data::corrupt_images(parse_corruption("mask:0.9"), 7, N, C, H, W, im, obs2, mask2);
  EXPECT_EQ(mask, mask2);
  EXPECT_EQ(obs, obs2);
}

TEST(Corruption, MaskOfAnImageDoesNotDependOnTheOthers) {
  // image i's draws are keyed by its index: corrupting 10 images or the first 3 agrees
  const int C = 1, H = 7, W = 9;
  const auto im = images(10, C, H, W);
  std::vector<float> o10, o3;
  std::vector<uint8_t> m10, m3;
  const auto c = parse_corruption("mask:0.5");
  data::corrupt_images(c, 3, 10, C, H, W, im, o10, m10);
  data::corrupt_images(c, 3, 3, C, H, W, std::vector<uint8_t>(im.begin(), im.begin() + 3 * H * W),
                       o3, m3);
  EXPECT_TRUE(std::equal(m3.begin(), m3.end(), m10.begin()));
}

TEST(Corruption, BoxMasksOneContiguousBox) {
  const int N = 40, C = 1, H = 28, W = 28;
  const auto im = images(N, C, H, W);
  std::vector<float> obs;
  std::vector<uint8_t> mask;
  data::corrupt_images(parse_corruption("box:10x6"), 2, N, C, H, W, im, obs, mask);
  std::vector<int> tops;
  for (int n = 0; n < N; ++n) {
    int count = 0, top = H, bottom = -1, left = W, right = -1;
    for (int h = 0; h < H; ++h)
      for (int w = 0; w < W; ++w)
        if (!mask[(size_t(n) * H + h) * W + w]) {
          ++count;
          top = std::min(top, h);
          bottom = std::max(bottom, h);
          left = std::min(left, w);
          right = std::max(right, w);
        }
    ASSERT_EQ(count, 60) << "image " << n;
    EXPECT_EQ(bottom - top + 1, 10);
    EXPECT_EQ(right - left + 1, 6);
    tops.push_back(top);
  }
  std::sort(tops.begin(), tops.end());
  EXPECT_GT(std::unique(tops.begin(), tops.end()) - tops.begin(), 5) << "boxes do not move";
  // a fraction of the area: a square box of round(sqrt(0.25 * 784)) = 14
  data::corrupt_images(parse_corruption("box:0.25"), 2, 1, C, H, W,
                       std::vector<uint8_t>(im.begin(), im.begin() + H * W), obs, mask);
  EXPECT_EQ(std::count(mask.begin(), mask.end(), 0), 14 * 14);
}

TEST(Corruption, BlurMatchesADirectConvolutionAndKeepsAllPixels) {
  const int N = 3, C = 2, H = 9, W = 11;
  const auto im = images(N, C, H, W);
  std::vector<float> obs;
  std::vector<uint8_t> mask;
  const double sigma = 1.3;
  data::corrupt_images(parse_corruption("blur:1.3,width:5"), 1, N, C, H, W, im, obs, mask);
  EXPECT_EQ(std::count(mask.begin(), mask.end(), 1), N * H * W);
  // reference in double: normalised 5x5 Gaussian, edges replicated
  double worst = 0;
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      for (int h = 0; h < H; ++h)
        for (int w = 0; w < W; ++w) {
          double acc = 0, norm = 0;
          for (int dy = -2; dy <= 2; ++dy)
            for (int dx = -2; dx <= 2; ++dx) {
              const int y = std::clamp(h + dy, 0, H - 1), x = std::clamp(w + dx, 0, W - 1);
              const double g = std::exp(-(dx * dx + dy * dy) / (2 * sigma * sigma));
              acc += g * pixel(im, ((size_t(n) * C + c) * H + y) * W + x);
              norm += g;
            }
          worst = std::max(worst, std::abs(acc / norm - obs[((size_t(n) * C + c) * H + h) * W + w]));
        }
  EXPECT_LT(worst, 1e-5);
  // a constant image stays constant
  std::vector<uint8_t> flat(size_t(C) * H * W, 200);
  data::corrupt_images(parse_corruption("blur:2"), 1, 1, C, H, W, flat, obs, mask);
  for (float v : obs) ASSERT_NEAR(v, 200 / 127.5f - 1.f, 1e-5f);
}

TEST(Corruption, ObservationNoiseHasItsStandardDeviation) {
  const int N = 50, C = 1, H = 28, W = 28;
  const auto im = images(N, C, H, W);
  std::vector<float> obs;
  std::vector<uint8_t> mask;
  data::corrupt_images(parse_corruption("mask:0.5,noise:0.1"), 4, N, C, H, W, im, obs, mask);
  double s = 0, s2 = 0;
  long n = 0;
  for (size_t i = 0; i < obs.size(); ++i) {
    if (!mask[i]) {
      ASSERT_EQ(obs[i], 0.f);
      continue;
    }
    const double e = obs[i] - pixel(im, i);
    s += e;
    s2 += e * e;
    ++n;
  }
  const double mean = s / n, sd = std::sqrt(s2 / n - mean * mean);
  EXPECT_NEAR(mean, 0.0, 0.005);  // ~19600 draws: sd of the mean 0.0007
  EXPECT_NEAR(sd, 0.1, 0.003);
}

TEST(Corruption, DeviceKernelEqualsTheHostPath) {
  using Exec = Kokkos::DefaultExecutionSpace;
  const int N = 5, C = 1, H = 12, W = 10;
  const auto im = images(N, C, H, W);
  for (const char* spec : {"mask:0.7,noise:0.02", "box:4x3", "blur:0.8"}) {
    const auto c = parse_corruption(spec);
    std::vector<float> obs;
    std::vector<uint8_t> mask;
    data::corrupt_images(c, 11, N, C, H, W, im, obs, mask);
    Kokkos::View<float****, Kokkos::LayoutRight, Exec::memory_space> x("x", N, C, H, W),
        o("o", N, C, H, W), m("m", N, 1, H, W);
    Kokkos::View<int*, Kokkos::LayoutRight, Exec::memory_space> idx("idx", N);
    auto hx = Kokkos::create_mirror_view(x);
    auto hi = Kokkos::create_mirror_view(idx);
    for (size_t i = 0; i < im.size(); ++i) hx.data()[i] = pixel(im, i);
    for (int b = 0; b < N; ++b) hi(b) = b;
    Kokkos::deep_copy(x, hx);
    Kokkos::deep_copy(idx, hi);
    const data::CorruptionKernel k(c, H, W, 11);
    data::corrupt<Exec>(Exec(), k, 0u, Tensor1<const int, Exec>(idx.data(), N),
                        Tensor4<const float, Exec>(x.data(), N, C, H, W),
                        Tensor4<float, Exec>(o.data(), N, C, H, W),
                        Tensor4<float, Exec>(m.data(), N, 1, H, W));
    auto ho = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), o);
    auto hm = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), m);
    for (size_t i = 0; i < obs.size(); ++i) ASSERT_NEAR(ho.data()[i], obs[i], 1e-6f) << spec;
    for (size_t i = 0; i < mask.size(); ++i) ASSERT_EQ(hm.data()[i], float(mask[i])) << spec;
    // a later round (DiffEM's fresh corruption) draws other masks
    if (c.kind == Corruption::Kind::Mask) {
      data::corrupt<Exec>(Exec(), k, 1u, Tensor1<const int, Exec>(idx.data(), N),
                          Tensor4<const float, Exec>(x.data(), N, C, H, W),
                          Tensor4<float, Exec>(o.data(), N, C, H, W),
                          Tensor4<float, Exec>(m.data(), N, 1, H, W));
      Kokkos::deep_copy(hm, m);
      int differ = 0;
      for (size_t i = 0; i < mask.size(); ++i) differ += hm.data()[i] != float(mask[i]);
      EXPECT_GT(differ, 0);
    }
  }
}

data::Dataset corrupted_dataset(bool keep_clean) {
  data::Dataset ds;
  ds.name = "tiny";
  ds.classes = 2;
  ds.class_names = {"a", "b"};
  auto& tr = ds.train;
  tr.name = "train";
  tr.N = 4;
  tr.C = 1;
  tr.H = tr.W = 6;
  tr.labels = {0, 1, 1, 0};
  const auto im = images(tr.N, tr.C, tr.H, tr.W);
  data::corrupt_images(parse_corruption("mask:0.5"), 3, tr.N, tr.C, tr.H, tr.W, im,
                       tr.observations, tr.masks);
  tr.corruption = "mask:0.5";
  tr.corruption_seed = 3;
  if (keep_clean) tr.clean_images = im;
  return ds;
}

TEST(CorruptedDataset, RoundTripsWithoutImages) {
  ScratchDir dir("corrupt");
  const std::string path = dir.file("c.h5");
  const data::Dataset ds = corrupted_dataset(true);
  data::write_dataset(path, ds);
  {
    h5::File f(path, h5::File::Mode::Read);
    EXPECT_FALSE(f.exists("/train/images"));
    EXPECT_TRUE(f.exists("/train/observations"));
    EXPECT_TRUE(f.exists("/train/clean_images"));
  }
  const data::Dataset back = data::read_dataset(path);
  EXPECT_TRUE(back.train.corrupted());
  EXPECT_EQ(back.train.corruption, "mask:0.5");
  EXPECT_EQ(back.train.corruption_seed, 3u);
  EXPECT_EQ(back.train.observations, ds.train.observations);
  EXPECT_EQ(back.train.masks, ds.train.masks);
  EXPECT_TRUE(back.train.images.empty());
  EXPECT_TRUE(back.train.clean_images.empty()) << "read_dataset must not load the ground truth";
  EXPECT_EQ(data::read_clean_images(path), ds.train.clean_images);
  EXPECT_EQ(data::read_dataset(path, true, 2).train.observations.size(), 2u * 36);
  EXPECT_TRUE(contains_all(input_error([&] { data::require_images(back.train, path, "dmis classify"); }),
                           {path, "/train", "corrupted observations", "mask:0.5", "dmis classify"}));
}

// A corrupted split written piece by piece, so that each piece can be broken.
void write_raw(const std::string& path, bool with_images, std::vector<size_t> mask_shape) {
  h5::File f(path, h5::File::Mode::Create);
  f.set_attr("/", "format", std::string("dmis-dataset"));
  f.set_attr("/", "format_version", int64_t(1));
  f.set_attr("/", "classes", int64_t(2));
  f.set_attr("/", "name", std::string("raw"));
  std::vector<float> obs(4 * 36, 0.5f);
  std::vector<uint8_t> m(4 * 36, 1);
  std::vector<int32_t> labels = {0, 1, 1, 0};
  f.write("/train/observations", {4, 1, 6, 6}, obs.data());
  if (!mask_shape.empty()) f.write("/train/masks", mask_shape, m.data());
  if (with_images) f.write("/train/images", {4, 1, 6, 6}, m.data());
  f.write("/train/labels", {4}, labels.data());
}

TEST(CorruptedDataset, BadFilesAreNamed) {
  ScratchDir dir("corrupt-bad");
  const std::string path = dir.file("c.h5");
  data::write_dataset(path, corrupted_dataset(false));
  EXPECT_TRUE(contains_all(input_error([&] { data::read_clean_images(path); }),
                           {path, "/train/clean_images", "--keep-clean"}));
  write_raw(path, false, {4, 1, 6, 6});
  EXPECT_EQ(data::read_dataset(path).train.corruption, "unknown");  // readable, spec not recorded
  write_raw(path, true, {4, 1, 6, 6});
  EXPECT_TRUE(contains_all(input_error([&] { data::read_dataset(path); }),
                           {path, "/train", "both images and observations"}));
  write_raw(path, false, {4, 6, 6});
  EXPECT_TRUE(contains_all(input_error([&] { data::read_dataset(path); }),
                           {path, "/train/masks", "expected shape (4, 1, 6, 6)", "found (4, 6, 6)"}));
  write_raw(path, false, {});
  EXPECT_TRUE(contains_all(input_error([&] { data::read_dataset(path); }),
                           {path, "/train/masks", "missing", "corrupted split needs masks"}));
}

}  // namespace
}  // namespace dmis::test
