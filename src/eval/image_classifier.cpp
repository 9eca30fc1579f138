#include "eval/image_classifier.hpp"

#include <cmath>
#include <iomanip>
#include <ostream>
#include <sstream>

#include "core/error.hpp"
#include "core/rng.hpp"
#include "kernels/cross_entropy.hpp"
#include "kernels/eti.hpp"
#include "optim/optimizer.hpp"
#include "train/device_data.hpp"

namespace dmis::eval {

namespace {

template <class Exec, class S>
ImageSet<Exec> upload(const std::vector<S>& images, const std::vector<int32_t>& labels, int N,
                      int C, int H, int W, int K, const std::string& what) {
  const size_t n = static_cast<size_t>(N) * C * H * W;
  if (N < 1 || images.size() != n || labels.size() != static_cast<size_t>(N))
    throw InputError(cat(what, ": ", images.size(), " pixel values and ", labels.size(),
                         " labels, expected ", n, " and ", N, " for ", N, " images of ", C, "x", H,
                         "x", W));
  for (int i = 0; i < N; ++i)
    if (labels[i] < 0 || labels[i] >= K)
      throw InputError(cat(what, ": label of image ", i, " is ", labels[i],
                           ", expected a class in [0, ", K, ")"));
  ImageSet<Exec> s;
  s.N = N, s.C = C, s.H = H, s.W = W, s.K = K;
  s.images =
      decltype(s.images)(Kokkos::view_alloc(Kokkos::WithoutInitializing, "dmis::eval::images"), n);
  s.labels = decltype(s.labels)("dmis::eval::labels", N);
  auto hi = Kokkos::create_mirror_view(s.images);
  auto hl = Kokkos::create_mirror_view(s.labels);
  for (size_t i = 0; i < n; ++i) {
    float v;
    if constexpr (std::is_same_v<S, uint8_t>)
      v = static_cast<float>(images[i]) / 127.5f - 1.0f;
    else
      v = images[i] < -1.0f ? -1.0f : images[i] > 1.0f ? 1.0f : images[i];
    if constexpr (!std::is_same_v<S, uint8_t>)
      if (!std::isfinite(images[i]))
        throw InputError(cat(what, ": pixel value ", i, " is not a finite number"));
    hi(i) = v;
  }
  for (int i = 0; i < N; ++i)
    hl(i) = labels[i];
  Kokkos::deep_copy(s.images, hi);
  Kokkos::deep_copy(s.labels, hl);
  return s;
}

// x (B, C, H, W), y (B) <- the samples at stream positions first + b of the keyed per-epoch
// permutation, mirrored left-right with probability 1/2 when `flip`.
template <class Exec>
void gather_batch(const Exec& exec, const ImageSet<Exec>& d, uint64_t seed, uint64_t first,
                  bool flip, const Tensor4<float, Exec>& x, const Tensor1<int, Exec>& y) {
  const int B = x.extent(0), C = d.C, H = d.H, W = d.W;
  const uint32_t N = static_cast<uint32_t>(d.N);
  const size_t n = d.image_size();
  auto images = d.images;
  auto labels = d.labels;
  const rng::Philox gen(seed, rng::kAugment);
  Kokkos::parallel_for(
      "dmis::eval::gather", Kokkos::RangePolicy<Exec>(exec, 0, B * C * H), KOKKOS_LAMBDA(int r) {
        const int b = r / (C * H), row = r % (C * H);
        const uint64_t pos = first + static_cast<uint64_t>(b);
        const uint32_t i = train::DeviceData<Exec>::index_at(pos, N, seed);
        const bool mirror = flip && rng::uniform<float>(gen, static_cast<uint32_t>(pos >> 32),
                                                        static_cast<uint32_t>(pos), 0u) < 0.5f;
        const float* src = &images(i * n + static_cast<size_t>(row) * W);
        float* dst = &x(b, 0, 0, 0) + static_cast<size_t>(row) * W;
        for (int w = 0; w < W; ++w)
          dst[w] = src[mirror ? W - 1 - w : w];
        if (row == 0)
          y(b) = labels(i);
      });
}

// stats (2) += (loss of this step, right answers of this step)
template <class Exec>
void accumulate_stats(const Exec& exec, const Tensor1<const float, Exec>& loss,
                      const Tensor1<const int, Exec>& pred, const Tensor1<const int, Exec>& y,
                      const Kokkos::View<double*, Kokkos::LayoutRight, DeviceOf<Exec>>& stats) {
  const int B = pred.extent(0);
  Kokkos::parallel_for(
      "dmis::eval::stats", Kokkos::RangePolicy<Exec>(exec, 0, 1), KOKKOS_LAMBDA(int) {
        int right = 0;
        for (int b = 0; b < B; ++b)
          right += pred(b) == y(b) ? 1 : 0;
        stats(0) += loss(0);
        stats(1) += right;
      });
}

// counts (2K): [k] right answers, [K + k] images of class k
template <class Exec>
void count_right(const Exec& exec, const Tensor1<const int, Exec>& pred,
                 const Tensor1<const int, Exec>& y, int K,
                 const Kokkos::View<long*, Kokkos::LayoutRight, DeviceOf<Exec>>& counts) {
  Kokkos::parallel_for(
      "dmis::eval::count_right", Kokkos::RangePolicy<Exec>(exec, 0, pred.extent(0)),
      KOKKOS_LAMBDA(int b) {
        Kokkos::atomic_add(&counts(K + y(b)), 1L); // integers: the order does not matter
        if (pred(b) == y(b))
          Kokkos::atomic_add(&counts(y(b)), 1L);
      });
}

template <class Exec>
void copy_features(const Exec& exec, const Tensor2<const float, Exec>& f, int first,
                   const Kokkos::View<double**, Kokkos::LayoutRight, DeviceOf<Exec>>& out) {
  const int n = f.extent(0), F = f.extent(1);
  Kokkos::parallel_for(
      "dmis::eval::copy_features", Kokkos::RangePolicy<Exec>(exec, 0, n * F),
      KOKKOS_LAMBDA(int i) { out(first + i / F, i % F) = f(i / F, i % F); });
}

std::string duration(double s) {
  const long t = static_cast<long>(s + 0.5);
  std::ostringstream os;
  if (t >= 3600)
    os << t / 3600 << "h" << std::setw(2) << std::setfill('0') << (t / 60) % 60 << "m";
  else if (t >= 60)
    os << t / 60 << "m" << std::setw(2) << std::setfill('0') << t % 60 << "s";
  else
    os << t << "s";
  return os.str();
}

} // namespace

template <class Exec>
ImageSet<Exec> upload_images(const std::vector<uint8_t>& images, const std::vector<int32_t>& labels,
                             int N, int C, int H, int W, int K, const std::string& what) {
  return upload<Exec>(images, labels, N, C, H, W, K, what);
}
template <class Exec>
ImageSet<Exec> upload_images(const std::vector<float>& images, const std::vector<int32_t>& labels,
                             int N, int C, int H, int W, int K, const std::string& what) {
  return upload<Exec>(images, labels, N, C, H, W, K, what);
}

long steps_for_epochs(double epochs, long n, int batch) {
  const double s = std::ceil(epochs * static_cast<double>(n) / std::max(1, batch));
  return std::max(1L, static_cast<long>(s));
}

template <class Exec>
TrainSummary train_classifier(const Exec& exec, models::Evaluator<Exec, float>& net,
                              ParamStore<Exec, float>& store, const ImageSet<Exec>& data,
                              const TrainOptions& opt, std::ostream* progress) {
  using Opt = optim::Optimizer<Exec, float>;
  using Xent = kernels::SoftmaxCrossEntropy<Exec, float>;
  const auto& cfg = net.config();
  if (data.C != cfg.in_channels || data.H != cfg.resolution || data.W != cfg.resolution ||
      data.K != cfg.classes)
    throw InputError(cat(opt.what, ": images of ", data.C, "x", data.H, "x", data.W, " in ", data.K,
                         " classes; the classifier takes ", cfg.in_channels, "x", cfg.resolution,
                         "x", cfg.resolution, " in ", cfg.classes));
  if (opt.steps < 1)
    throw InputError(cat(opt.what, ": steps must be >= 1, got ", opt.steps));
  if (!(opt.lr > 0))
    throw InputError(cat(opt.what, ": learning rate must be > 0, got ", opt.lr));
  const int B = std::min(opt.batch, data.N), K = cfg.classes;
  net.prepare(B);
  // every buffer of the loop, allocated once
  Buffer1<float, Exec> xbuf(Kokkos::view_alloc(Kokkos::WithoutInitializing, "dmis::eval::x"),
                            static_cast<size_t>(B) * data.image_size());
  Buffer1<float, Exec> probs("dmis::eval::probs", static_cast<size_t>(B) * K),
      per_sample("dmis::eval::loss_per_sample", B), total("dmis::eval::loss", 1);
  Kokkos::View<int*, Kokkos::LayoutRight, DeviceOf<Exec>> ybuf("dmis::eval::y", B),
      pbuf("dmis::eval::pred", B);
  Kokkos::View<double*, Kokkos::LayoutRight, DeviceOf<Exec>> stats("dmis::eval::stats", 2);
  auto stats_h = Kokkos::create_mirror_view(stats);
  const Tensor4<float, Exec> x(xbuf.data(), B, data.C, data.H, data.W);
  const Tensor1<int, Exec> y(ybuf.data(), B), pred(pbuf.data(), B);
  const Tensor2<float, Exec> P(probs.data(), B, K);
  const Tensor1<float, Exec> params(store.params.data(), store.size()),
      grads(store.grads.data(), store.size()), m(store.adam_m.data(), store.size()),
      v(store.adam_v.data(), store.size());
  models::init_evaluator_params(exec, net.table(), params, opt.seed);
  Opt::fill(exec, m, 0.0f);
  Opt::fill(exec, v, 0.0f);

  optim::AdamWConfig ac;
  ac.lr = opt.lr;
  ac.weight_decay = opt.weight_decay;
  const long warm = std::min<long>(200, std::max<long>(1, opt.steps / 20));
  auto lr_at = [&](long step) { // step counts from 0
    if (step < warm)
      return opt.lr * static_cast<double>(step + 1) / warm;
    const double t = static_cast<double>(step - warm) / std::max<long>(1, opt.steps - warm);
    return opt.lr * 0.5 * (1.0 + std::cos(3.14159265358979323846 * t));
  };
  const long per_epoch = steps_for_epochs(1.0, data.N, B);
  const long epochs = (opt.steps + per_epoch - 1) / per_epoch;

  TrainSummary sum;
  Kokkos::Timer timer;
  double t_log = 0;
  long since = 0;
  const Tensor4<const float, Exec> cx = x;
  const Tensor1<const int, Exec> cy = y;
  for (long step = 0; step < opt.steps; ++step) {
    gather_batch(exec, data, opt.seed, static_cast<uint64_t>(step) * B, opt.flip, x, y);
    net.forward(exec, params, cx);
    Xent::forward(exec, net.logits(B), cy, P, per_sample, total);
    Xent::argmax(exec, net.logits(B), pred);
    accumulate_stats<Exec>(exec, total, pred, cy, stats);
    Xent::backward(exec, 1.0f, P, cy, P, GradMode::Overwrite); // probs become dlogits
    Opt::fill(exec, grads, 0.0f);
    net.backward(exec, params, cx, P, grads);
    Opt::adamw(exec, ac, lr_at(step), step + 1, params, grads, m, v, Tensor1<const float, Exec>());
    ++since;
    const bool last = step + 1 == opt.steps;
    if (opt.log_seconds >= 0 && (last || timer.seconds() - t_log >= opt.log_seconds)) {
      Kokkos::deep_copy(stats_h, stats); // waits for the step
      const double now = timer.seconds();
      sum.final_loss = stats_h(0) / since;
      sum.final_accuracy = stats_h(1) / (static_cast<double>(since) * B);
      Kokkos::deep_copy(stats, 0.0); // (stats_h may be stats itself on a host backend)
      if (!std::isfinite(sum.final_loss))
        throw Error(cat(opt.what, ": step ", step + 1,
                        ": the loss is not a number; lower the "
                        "learning rate (--lr)"));
      const double rate = (step + 1) * static_cast<double>(B) / now;
      if (progress) {
        *progress << opt.what << ": epoch " << step / per_epoch + 1 << "/" << epochs << " | step "
                  << step + 1 << "/" << opt.steps << " | loss " << std::fixed
                  << std::setprecision(4) << sum.final_loss << " | acc " << std::setprecision(3)
                  << sum.final_accuracy << " | " << std::setprecision(0) << rate << " img/s | lr "
                  << std::defaultfloat << std::setprecision(3) << lr_at(step) << " | ETA "
                  << duration((opt.steps - step - 1) * B / rate) << std::endl;
      }
      t_log = now;
      since = 0;
    }
  }
  exec.fence();
  sum.steps = opt.steps;
  sum.seconds = timer.seconds();
  sum.images_per_second = opt.steps * static_cast<double>(B) / sum.seconds;
  return sum;
}

template <class Exec>
Accuracy classifier_accuracy(const Exec& exec, models::Evaluator<Exec, float>& net,
                             const Tensor1<const float, Exec>& params, const ImageSet<Exec>& data) {
  using Xent = kernels::SoftmaxCrossEntropy<Exec, float>;
  const int B = net.batch(), K = net.config().classes;
  if (data.K != K)
    throw InputError(cat("accuracy: images in ", data.K, " classes, the classifier has ", K));
  Kokkos::View<long*, Kokkos::LayoutRight, DeviceOf<Exec>> counts("dmis::eval::counts", 2 * K);
  Kokkos::View<int*, Kokkos::LayoutRight, DeviceOf<Exec>> pbuf("dmis::eval::pred", B);
  for (int first = 0; first < data.N; first += B) {
    const int n = std::min(B, data.N - first);
    net.forward(exec, params, data.batch(first, n));
    const Tensor1<int, Exec> pred(pbuf.data(), n);
    Xent::argmax(exec, net.logits(n), pred);
    count_right<Exec>(exec, pred, data.batch_labels(first, n), K, counts);
  }
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), counts);
  Accuracy a;
  a.n = data.N;
  long right = 0;
  for (int k = 0; k < K; ++k) {
    right += h(k);
    a.count.push_back(h(K + k));
    a.per_class.push_back(h(K + k) > 0 ? static_cast<double>(h(k)) / h(K + k) : std::nan(""));
  }
  a.overall = static_cast<double>(right) / data.N;
  return a;
}

template <class Exec>
Kokkos::View<double**, Kokkos::LayoutRight, DeviceOf<Exec>>
extract_features(const Exec& exec, models::Evaluator<Exec, float>& net,
                 const Tensor1<const float, Exec>& params, const ImageSet<Exec>& data) {
  const int B = net.batch(), F = net.config().features();
  Kokkos::View<double**, Kokkos::LayoutRight, DeviceOf<Exec>> out(
      Kokkos::view_alloc(Kokkos::WithoutInitializing, "dmis::eval::features"), data.N, F);
  for (int first = 0; first < data.N; first += B) {
    const int n = std::min(B, data.N - first);
    net.forward(exec, params, data.batch(first, n));
    copy_features<Exec>(exec, net.features(n), first, out);
  }
  exec.fence();
  return out;
}

#define DMIS_INST(E, T) DMIS_INST_##T(E)
#define DMIS_INST_double(E)
#define DMIS_INST_float(E)                                                                         \
  template struct ImageSet<E>;                                                                     \
  template ImageSet<E> upload_images<E>(const std::vector<uint8_t>&, const std::vector<int32_t>&,  \
                                        int, int, int, int, int, const std::string&);              \
  template ImageSet<E> upload_images<E>(const std::vector<float>&, const std::vector<int32_t>&,    \
                                        int, int, int, int, int, const std::string&);              \
  template TrainSummary train_classifier<E>(const E&, models::Evaluator<E, float>&,                \
                                            ParamStore<E, float>&, const ImageSet<E>&,             \
                                            const TrainOptions&, std::ostream*);                   \
  template Accuracy classifier_accuracy<E>(const E&, models::Evaluator<E, float>&,                 \
                                           const Tensor1<const float, E>&, const ImageSet<E>&);    \
  template Kokkos::View<double**, Kokkos::LayoutRight, DeviceOf<E>> extract_features<E>(           \
      const E&, models::Evaluator<E, float>&, const Tensor1<const float, E>&, const ImageSet<E>&);
DMIS_FOR_EACH_EXEC_AND_SCALAR(DMIS_INST)
#undef DMIS_INST

} // namespace dmis::eval
