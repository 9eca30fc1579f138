#pragma once
// Image-classification datasets in one self-describing HDF5 file (docs/datasets.md):
//
//   /                      attributes format = "dmis-dataset", format_version = 1, name,
//                          classes (K), source
//   /class_names           (K) variable-length strings
//   /<split>/images        (N, C, H, W) uint8, split "train" (required) or "test" (optional)
//   /<split>/labels        (N) int32 in [0, K): the observed label; -1 only where
//                          /<split>/unlabeled is 1 or /<split>/candidates is present
//   /<split>/candidates    (N, K) uint8, optional: 1 = class in the candidate set, no empty row
//   /<split>/unlabeled     (N) uint8, optional: 1 = no label observed
//   /<split>/clean_labels  (N) int32, optional: the ground truth, for auditing only
//
// A corrupted training split (dmis import --corrupt; src/data/corruption.hpp) holds, instead of
// /train/images:
//
//   /train/observations    (N, C, H, W) float32 in the [-1, 1] scale, 0 where a pixel is missing
//   /train/masks           (N, 1, H, W) uint8, 1 = pixel observed
//   /train/clean_images    (N, C, H, W) uint8, optional (--keep-clean): the ground truth, for
//                          evaluating reconstructions only; training never reads it
//   /train attributes      corruption (the spec), corruption_seed
//
// and the importers that make such files from the published Fashion-MNIST and CIFAR-10 files.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace dmis::data {

/// One split of a dataset, in memory. Images are (N, C, H, W) row-major; candidates (N, K).
/// Optional arrays are empty when the file does not have them.
struct Split {
  int N = 0, C = 0, H = 0, W = 0;
  std::vector<uint8_t> images;       // (N, C, H, W)
  std::vector<int32_t> labels;       // (N) observed labels, -1 = none
  std::vector<int32_t> clean_labels; // (N) ground truth, or empty
  std::vector<uint8_t> candidates;   // (N, K) candidate sets, or empty
  std::vector<uint8_t> unlabeled;    // (N) 1 = no label observed, or empty
  std::string name;                  // "train" or "test" (names the split in messages)
  // a corrupted split holds observations and masks instead of images
  std::vector<float> observations;   // (N, C, H, W) in [-1, 1], 0 where missing
  std::vector<uint8_t> masks;        // (N, 1, H, W) 1 = observed
  std::vector<uint8_t> clean_images; // (N, C, H, W) ground truth, or empty (never read by training)
  std::string corruption;            // the corruption spec, or empty
  uint64_t corruption_seed = 0;
  bool corrupted() const { return !corruption.empty(); }
};

struct Dataset {
  std::string name, source;
  int classes = 0;
  std::vector<std::string> class_names; // (K)
  Split train, test;
  bool has_test = false; // the test split was read (the file has one and it was asked for)
};

inline constexpr const char* kDatasetFormat = "dmis-dataset";
inline constexpr int kDatasetFormatVersion = 1;

/// Reads and validates a dataset file. `with_test`: also read /test when present; `limit`: keep
/// only the first `limit` training images (0 = all). Throws InputError naming the file, the
/// dataset path, what was expected and what was found.
Dataset read_dataset(const std::string& path, bool with_test = true, size_t limit = 0);

/// Throws InputError unless `sp` holds clean images: `who` names what needs them (e.g.
/// "dmis classify"), and the message says which file and what it holds instead.
void require_images(const Split& sp, const std::string& path, const std::string& who);

/// What is wrong with `sp`'s images for a network of `channels` x `resolution` x `resolution`
/// ("dataset 'PATH' has images of 1x28x28 but <network> takes 3x32x32"; `network` names it, as
/// "the network 'ddpmpp-cifar'"), or "" when they fit. One check for training, DiffEM and
/// classify; each caller says which key or file to change.
std::string image_shape_mismatch(const Split& sp, const std::string& path, int channels,
                                 int resolution, const std::string& network = "the network");

/// Reads /train/clean_images of a corrupted dataset (for evaluating reconstructions); throws
/// InputError naming the file when it has none (import with --keep-clean).
std::vector<uint8_t> read_clean_images(const std::string& path, size_t limit = 0);

/// The corruption spec of a dataset's training split ("" when it holds clean images), from the
/// file's attributes only.
std::string read_train_corruption(const std::string& path);

/// Validates, then writes to `path`.tmp and renames it to `path`, so that a failure never damages
/// an existing file.
void write_dataset(const std::string& path, const Dataset& ds);

/// Checks the in-memory dataset: sizes consistent with N, C, H, W and K, labels in [0, K) (or -1
/// where allowed), no empty candidate row, K class names. `path` names the file in messages.
void validate(const Dataset& ds, const std::string& path);

/// Fashion-MNIST from the IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz,
/// t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz; gzip-compressed or not) in `dir`.
Dataset import_fashion_mnist(const std::string& dir);

/// CIFAR-10 from the binary version (data_batch_1.bin .. data_batch_5.bin, test_batch.bin:
/// records of 1 label byte + 3072 bytes CHW) in `dir` or `dir`/cifar-10-batches-bin; class names
/// from batches.meta.txt when present.
Dataset import_cifar10(const std::string& dir);

/// The default location of Debian's dataset-fashion-mnist package.
inline constexpr const char* kDebianFashionMnistDir = "/usr/share/datasets/fashion-mnist";

/// Per-class counts of the labels >= 0 (K entries).
std::vector<long> label_histogram(const std::vector<int32_t>& labels, int K);

} // namespace dmis::data
