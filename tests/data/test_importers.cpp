// The Fashion-MNIST (IDX, gzip) and CIFAR-10 (binary) importers: tiny hand-made files written
// here with zlib, corrupted ones, and the real Fashion-MNIST when Debian's package is installed.
#include <gtest/gtest.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include "data/dataset.hpp"
#include "data_test_util.hpp"

namespace dmis::test {
namespace {

void put_be32(std::vector<uint8_t>& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8)
    b.push_back(static_cast<uint8_t>(v >> s));
}

void write_gz(const std::string& path, const std::vector<uint8_t>& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), int(bytes.size()));
  ASSERT_EQ(gzclose(f), Z_OK);
}

std::vector<uint8_t> idx_images(uint32_t magic, uint32_t n, uint32_t rows, uint32_t cols,
                                size_t drop = 0) {
  std::vector<uint8_t> b;
  put_be32(b, magic);
  put_be32(b, n);
  put_be32(b, rows);
  put_be32(b, cols);
  for (uint32_t i = 0; i < n * rows * cols; ++i)
    b.push_back(static_cast<uint8_t>(i * 3 + 1));
  b.resize(b.size() - drop);
  return b;
}

std::vector<uint8_t> idx_labels(uint32_t magic, const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> b;
  put_be32(b, magic);
  put_be32(b, static_cast<uint32_t>(labels.size()));
  b.insert(b.end(), labels.begin(), labels.end());
  return b;
}

// A tiny Fashion-MNIST: 3 training and 2 test images of 4x5.
void write_tiny_fmnist(const ScratchDir& d) {
  write_gz(d.file("train-images-idx3-ubyte.gz"), idx_images(0x803, 3, 4, 5));
  write_gz(d.file("train-labels-idx1-ubyte.gz"), idx_labels(0x801, {9, 0, 4}));
  write_gz(d.file("t10k-images-idx3-ubyte.gz"), idx_images(0x803, 2, 4, 5));
  write_gz(d.file("t10k-labels-idx1-ubyte.gz"), idx_labels(0x801, {1, 2}));
}

std::string import_error(const ScratchDir& d) {
  return input_error([&] { data::import_fashion_mnist(d.path().string()); });
}

TEST(ImportFashionMnist, TinyIdxFiles) {
  ScratchDir d("idx");
  write_tiny_fmnist(d);
  const data::Dataset ds = data::import_fashion_mnist(d.path().string());
  EXPECT_EQ(ds.name, "fashion-mnist");
  EXPECT_EQ(ds.classes, 10);
  ASSERT_EQ(ds.class_names.size(), 10u);
  EXPECT_EQ(ds.class_names[0], "T-shirt/top");
  EXPECT_EQ(ds.class_names[9], "Ankle boot");
  EXPECT_EQ(ds.train.N, 3);
  EXPECT_EQ(ds.train.C, 1);
  EXPECT_EQ(ds.train.H, 4);
  EXPECT_EQ(ds.train.W, 5);
  EXPECT_EQ(ds.train.labels, (std::vector<int32_t>{9, 0, 4}));
  ASSERT_EQ(ds.train.images.size(), 60u);
  EXPECT_EQ(ds.train.images[0], 1);
  EXPECT_EQ(ds.train.images[59], static_cast<uint8_t>(59 * 3 + 1));
  ASSERT_TRUE(ds.has_test);
  EXPECT_EQ(ds.test.N, 2);
  EXPECT_EQ(ds.test.labels, (std::vector<int32_t>{1, 2}));

  // and it writes and reads back as a dataset file
  const std::string out = d.file("fmnist.h5");
  data::write_dataset(out, ds);
  const data::Dataset back = data::read_dataset(out);
  EXPECT_EQ(back.train.images, ds.train.images);
  EXPECT_EQ(back.class_names, ds.class_names);
}

TEST(ImportFashionMnist, UncompressedFilesToo) {
  ScratchDir d("idx");
  write_tiny_fmnist(d);
  namespace fs = std::filesystem;
  // replace one .gz by its plain version
  const auto bytes = idx_labels(0x801, {9, 0, 4});
  fs::remove(d.file("train-labels-idx1-ubyte.gz"));
  std::ofstream(d.file("train-labels-idx1-ubyte"), std::ios::binary)
      .write(reinterpret_cast<const char*>(bytes.data()),
             static_cast<std::streamsize>(bytes.size()));
  EXPECT_EQ(data::import_fashion_mnist(d.path().string()).train.labels,
            (std::vector<int32_t>{9, 0, 4}));
}

TEST(ImportFashionMnist, CorruptedMagic) {
  ScratchDir d("idx");
  write_tiny_fmnist(d);
  write_gz(d.file("train-images-idx3-ubyte.gz"), idx_images(0x804, 3, 4, 5));
  EXPECT_TRUE(contains_all(import_error(d), {d.file("train-images-idx3-ubyte.gz"),
                                             "magic number 0x00000804", "expected 0x00000803"}));
  write_tiny_fmnist(d);
  write_gz(d.file("t10k-labels-idx1-ubyte.gz"), idx_labels(0x803, {1, 2}));
  EXPECT_TRUE(contains_all(import_error(d), {d.file("t10k-labels-idx1-ubyte.gz"),
                                             "magic number 0x00000803", "expected 0x00000801"}));
}

TEST(ImportFashionMnist, TruncatedCountMismatchBadLabelMissingFile) {
  ScratchDir d("idx");
  write_tiny_fmnist(d);
  write_gz(d.file("train-images-idx3-ubyte.gz"), idx_images(0x803, 3, 4, 5, /*drop=*/7));
  EXPECT_TRUE(contains_all(import_error(d), {d.file("train-images-idx3-ubyte.gz"), "truncated",
                                             "expected 60 bytes", "found 53"}));
  write_tiny_fmnist(d);
  write_gz(d.file("train-labels-idx1-ubyte.gz"), idx_labels(0x801, {9, 0}));
  EXPECT_TRUE(contains_all(import_error(d), {"holds 3 images", "holds 2 labels"}));
  write_tiny_fmnist(d);
  write_gz(d.file("train-labels-idx1-ubyte.gz"), idx_labels(0x801, {9, 10, 4}));
  EXPECT_TRUE(contains_all(import_error(d), {"label 10 at index 1 is outside [0, 10)"}));
  write_tiny_fmnist(d);
  std::filesystem::remove(d.file("t10k-images-idx3-ubyte.gz"));
  EXPECT_TRUE(contains_all(
      import_error(d), {"neither", d.file("t10k-images-idx3-ubyte.gz"), "dataset-fashion-mnist"}));
  EXPECT_TRUE(contains_all(input_error([&] { data::import_fashion_mnist(d.file("nodir")); }),
                           {d.file("nodir"), "is not a directory"}));
}

TEST(ImportFashionMnist, RealDebianPackage) {
  const std::string dir = data::kDebianFashionMnistDir;
  if (!std::filesystem::exists(std::filesystem::path(dir) / "train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << dir << " is not installed (Debian package dataset-fashion-mnist)";
  const data::Dataset ds = data::import_fashion_mnist(dir);
  EXPECT_EQ(ds.train.N, 60000);
  EXPECT_EQ(ds.test.N, 10000);
  for (const data::Split* sp : {&ds.train, &ds.test}) {
    EXPECT_EQ(sp->C, 1);
    EXPECT_EQ(sp->H, 28);
    EXPECT_EQ(sp->W, 28);
    EXPECT_EQ(sp->images.size(), static_cast<size_t>(sp->N) * 28 * 28);
  }
  EXPECT_EQ(data::label_histogram(ds.train.labels, 10), std::vector<long>(10, 6000));
  EXPECT_EQ(data::label_histogram(ds.test.labels, 10), std::vector<long>(10, 1000));
  long bright = 0;
  for (uint8_t p : ds.train.images)
    bright += p > 0 ? 1 : 0;
  EXPECT_GT(bright, 60000L * 784 / 10); // real images, not zeros
}

// ---- CIFAR-10 -----------------------------------------------------------------------------

std::vector<uint8_t> cifar_records(const std::vector<uint8_t>& labels, uint8_t seed) {
  std::vector<uint8_t> b;
  for (size_t r = 0; r < labels.size(); ++r) {
    b.push_back(labels[r]);
    for (int j = 0; j < 3072; ++j)
      b.push_back(static_cast<uint8_t>(seed + r * 11 + j));
  }
  return b;
}

void write_bin(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

void write_tiny_cifar(const std::string& dir) {
  for (int k = 1; k <= 5; ++k)
    write_bin(dir + "/data_batch_" + std::to_string(k) + ".bin",
              cifar_records({uint8_t(k), uint8_t(k + 4)}, uint8_t(k)));
  write_bin(dir + "/test_batch.bin", cifar_records({3}, 100));
}

TEST(ImportCifar10, TinyBinaryFiles) {
  ScratchDir d("cifar");
  write_tiny_cifar(d.path().string());
  data::Dataset ds = data::import_cifar10(d.path().string());
  EXPECT_EQ(ds.name, "cifar10");
  EXPECT_EQ(ds.train.N, 10);
  EXPECT_EQ(ds.train.C, 3);
  EXPECT_EQ(ds.train.H, 32);
  EXPECT_EQ(ds.train.W, 32);
  EXPECT_EQ(ds.train.labels, (std::vector<int32_t>{1, 5, 2, 6, 3, 7, 4, 8, 5, 9}));
  ASSERT_EQ(ds.train.images.size(), 10u * 3072);
  // record 1 of batch 2 is image 3: channel-major bytes as stored
  EXPECT_EQ(ds.train.images[3 * 3072 + 0], uint8_t(2 + 11));
  EXPECT_EQ(ds.train.images[3 * 3072 + 1024 + 5], uint8_t(2 + 11 + 1024 + 5));
  EXPECT_EQ(ds.test.N, 1);
  EXPECT_EQ(ds.test.labels, (std::vector<int32_t>{3}));
  EXPECT_EQ(ds.class_names[0], "airplane");
  EXPECT_EQ(ds.class_names[9], "truck");

  // class names from batches.meta.txt; the cifar-10-batches-bin subdirectory is found
  ScratchDir top("cifar");
  const std::string sub = top.file("cifar-10-batches-bin");
  std::filesystem::create_directories(sub);
  write_tiny_cifar(sub);
  std::ofstream(sub + "/batches.meta.txt") << "a0\na1\na2\na3\na4\na5\na6\na7\na8\na9\n\n";
  ds = data::import_cifar10(top.path().string());
  EXPECT_EQ(ds.class_names[7], "a7");
  EXPECT_EQ(ds.train.N, 10);
}

TEST(ImportCifar10, BadFiles) {
  ScratchDir d("cifar");
  const std::string dir = d.path().string();
  auto error = [&] { return input_error([&] { data::import_cifar10(dir); }); };
  write_tiny_cifar(dir);
  auto rec = cifar_records({1, 2}, 0);
  rec.pop_back();
  write_bin(dir + "/data_batch_3.bin", rec);
  EXPECT_TRUE(contains_all(error(),
                           {dir + "/data_batch_3.bin", "6145 bytes", "positive multiple of 3073"}));
  write_tiny_cifar(dir);
  write_bin(dir + "/test_batch.bin", cifar_records({4, 10}, 0));
  EXPECT_TRUE(contains_all(error(), {dir + "/test_batch.bin", "label 10 in record 1"}));
  write_tiny_cifar(dir);
  std::filesystem::remove(dir + "/data_batch_5.bin");
  EXPECT_TRUE(contains_all(error(), {dir + "/data_batch_5.bin", "is missing"}));
  write_tiny_cifar(dir);
  std::ofstream(dir + "/batches.meta.txt") << "only\nthree\nnames\n";
  EXPECT_TRUE(contains_all(error(), {"batches.meta.txt", "3 non-empty lines, expected 10"}));
}

} // namespace
} // namespace dmis::test
