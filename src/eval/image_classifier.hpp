#pragma once
// Training and running the evaluator architecture (models/evaluator.hpp) as an image
// classifier: on the clean training split (the evaluator itself), on generated (image, label)
// pairs (CAS, dataset condensation), and evaluation passes (accuracy, features).
//
// Images live on the device as float in [-1, 1]. A training step gathers its batch through the
// keyed per-epoch permutation of train/device_data.hpp (a pure function of seed and step), runs
// forward, softmax cross-entropy, backward and AdamW as device kernels over buffers allocated
// once; the host only reads the running loss when it prints progress.
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "core/params.hpp"
#include "core/types.hpp"
#include "models/evaluator.hpp"

namespace dmis::eval {

/// Labelled images on the device: images (N, C, H, W) in [-1, 1], labels (N) in [0, K).
template <class Exec> struct ImageSet {
  int N = 0, C = 0, H = 0, W = 0, K = 0;
  Kokkos::View<float*, Kokkos::LayoutRight, DeviceOf<Exec>> images;
  Kokkos::View<int*, Kokkos::LayoutRight, DeviceOf<Exec>> labels;

  size_t image_size() const { return static_cast<size_t>(C) * H * W; }
  /// Images [first, first + n) as a (n, C, H, W) view.
  Tensor4<const float, Exec> batch(int first, int n) const {
    return Tensor4<const float, Exec>(images.data() + first * image_size(), n, C, H, W);
  }
  Tensor1<const int, Exec> batch_labels(int first, int n) const {
    return Tensor1<const int, Exec>(labels.data() + first, n);
  }
};

/// From uint8 pixels (v / 127.5 - 1) or from floats in [-1, 1] (clamped). Labels must lie in
/// [0, K): otherwise InputError naming `what` (the file and dataset), the index and the value.
template <class Exec>
ImageSet<Exec> upload_images(const std::vector<uint8_t>& images, const std::vector<int32_t>& labels,
                             int N, int C, int H, int W, int K, const std::string& what);
template <class Exec>
ImageSet<Exec> upload_images(const std::vector<float>& images, const std::vector<int32_t>& labels,
                             int N, int C, int H, int W, int K, const std::string& what);

struct TrainOptions {
  long steps = 0;             // optimizer steps
  int batch = 128;            // images per step (capped at the set size)
  double lr = 2e-3;           // peak AdamW learning rate: linear warm-up, then cosine to 0
  double weight_decay = 5e-4; // decoupled
  uint64_t seed = 0;          // initialisation, data order and flips
  bool flip = true;           // random horizontal flips
  double log_seconds = 5;     // progress every this many seconds (and at the end); <0: never
  std::string what = "train"; // names the run in progress lines
};

/// Steps for `epochs` passes over `n` images at batch `batch` (at least 1).
long steps_for_epochs(double epochs, long n, int batch);

struct TrainSummary {
  long steps = 0;
  double seconds = 0, images_per_second = 0;
  double final_loss = 0, final_accuracy = 0; // running means since the last progress line
};

/// Initialises store.params from opt.seed and trains `net` (prepared here for
/// min(opt.batch, data.N)) on `data`. Progress lines go to `progress` when not null.
template <class Exec>
TrainSummary train_classifier(const Exec& exec, models::Evaluator<Exec, float>& net,
                              ParamStore<Exec, float>& store, const ImageSet<Exec>& data,
                              const TrainOptions& opt, std::ostream* progress);

struct Accuracy {
  long n = 0;
  double overall = 0;
  std::vector<double> per_class; // (K) share right among images of class k (NaN: none)
  std::vector<long> count;       // (K) images of class k
};

/// Accuracy of argmax(logits) against data.labels; net must be prepared (any batch).
template <class Exec>
Accuracy classifier_accuracy(const Exec& exec, models::Evaluator<Exec, float>& net,
                             const Tensor1<const float, Exec>& params, const ImageSet<Exec>& data);

/// Evaluator features (N, F) in double of every image of `data`, in order.
template <class Exec>
Kokkos::View<double**, Kokkos::LayoutRight, DeviceOf<Exec>>
extract_features(const Exec& exec, models::Evaluator<Exec, float>& net,
                 const Tensor1<const float, Exec>& params, const ImageSet<Exec>& data);

} // namespace dmis::eval
