#include <Kokkos_Core.hpp>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>

#include "commands.hpp"
#include "core/error.hpp"
#include "data/corruption.hpp"
#include "data/dataset.hpp"
#include "deck/precision.hpp"
#include "dist/comm.hpp"
#include "io/h5.hpp"
#include "kernels/mixed_gemm.hpp"
#include "methods/classifier.hpp"
#include "model_source.hpp"
#include "train/device_data.hpp"

namespace dmis::cli {

namespace fs = std::filesystem;
using Exec = Kokkos::DefaultExecutionSpace;

namespace {

template <class T>
using DView = Kokkos::View<T, Kokkos::LayoutRight, Exec::memory_space>;

constexpr const char* kUsage =
    "usage: dmis classify DECK|CHECKPOINT [--data FILE] [--split test|train] "
    "[--limit N] [--out FILE.h5]\n                     [--corrupt SPEC [--corrupt-seed N]] "
    "[--set key=value ...]\n\n"
    "The diffusion classifier of the EMA weights (classify.* keys: timesteps "
    "window|uniform,\npoints K, window, batch) over a dataset split (default: "
    "the deck's data.path, test split,\ndata.test_limit images). Prints the "
    "accuracy against the clean labels and writes the\nper-image posteriors "
    "(posteriors (N, classes), predictions, labels) to posteriors.h5.\n\n"
    "  --corrupt SPEC     classify corrupted images instead (the channels of dmis "
    "import --corrupt:\n                     mask:P, box:S, blur:SIGMA, ...,noise:S), "
    "drawn per image on the device;\n                     a model with Ambient's "
    "mask channel is given the mask, other models see the\n                     "
    "observations as they are (0 where missing), as in training\n"
    "  --corrupt-seed N   seed of that corruption (default 1)\n";

/// The command line past the model (DECK or CHECKPOINT and --set).
struct ClassifyOptions {
  bool help = false;
  std::string data_path, out, split = "test";
  long limit = -1;  // -1: the deck's data.test_limit
  data::Corruption corruption;
  uint64_t corrupt_seed = 1;
};

ClassifyOptions parse_options(const std::vector<std::string>& rest) {
  ClassifyOptions o;
  std::string corrupt_spec;
  bool corrupt_seed_given = false;
  for (size_t i = 0; i < rest.size(); ++i) {
    const std::string& r = rest[i];
    auto value = [&]() -> const std::string& { return option_value(rest, i); };
    if (r == "--help" || r == "-h") {
      o.help = true;
      return o;
    } else if (r == "--data") {
      o.data_path = value();
    } else if (r == "--split") {
      o.split = value();
      if (o.split != "test" && o.split != "train")
        throw UsageError(cat("--split expects test or train, found '", o.split, "'"));
    } else if (r == "--limit") {
      const std::string v = value();
      try {
        o.limit = std::stol(v);
      } catch (const std::exception&) {
        o.limit = -2;
      }
      if (o.limit < 0) throw UsageError(cat("--limit expects a count >= 0, found '", v, "'"));
    } else if (r == "--out") {
      o.out = value();
    } else if (r == "--corrupt") {
      corrupt_spec = value();
    } else if (r == "--corrupt-seed") {
      o.corrupt_seed = parse_seed(r, value());
      corrupt_seed_given = true;
    } else {
      throw UsageError(cat("unknown option '", r, "'"));
    }
  }
  if (corrupt_seed_given && corrupt_spec.empty()) throw UsageError("--corrupt-seed needs --corrupt");
  if (!corrupt_spec.empty()) o.corruption = data::parse_corruption(corrupt_spec);
  return o;
}

/// classify.* (and the diffusion and logit-scale keys the classifier shares with training).
methods::ClassifierConfig classifier_config(const deck::Deck& d) {
  methods::ClassifierConfig cc;
  cc.points = static_cast<int>(d.get_int("classify.points"));
  cc.timesteps = methods::parse_choice<methods::ClassifierLevels>(d.get_string("classify.timesteps"), "classify.timesteps");
  cc.window = d.get_float("classify.window");
  cc.uniform_min = d.get_float("classify.uniform_min");
  cc.uniform_max = d.get_float("classify.uniform_max");
  cc.equal_weights = d.get_string("classify.weights") == "equal";
  cc.logit_scale = d.get_float("method.logit_scale");
  cc.edm.P_mean = d.get_float("diffusion.P_mean");
  cc.edm.P_std = d.get_float("diffusion.P_std");
  cc.edm.sigma_data = d.get_float("diffusion.sigma_data");
  return cc;
}

/// The split to classify, checked against the model's network.
const data::Split& checked_split(const data::Dataset& ds, const ClassifyOptions& o, const ModelSource& m) {
  if (o.split == "test" && !ds.has_test) throw InputError(cat("dataset '", o.data_path, "' has no test split"));
  const data::Split& sp = o.split == "test" ? ds.test : ds.train;
  data::require_images(sp, o.data_path, "dmis classify");
  if (ds.classes != m.net.classes)
    throw InputError(cat("dataset '", o.data_path, "' has ", ds.classes, " classes; the checkpoint's "
                         "network has ", m.net.classes));
  const std::string bad = data::image_shape_mismatch(sp, o.data_path, m.net.out_channels,
                                                     m.net.resolution, "the checkpoint's network");
  if (!bad.empty()) throw InputError(bad);
  return sp;
}

/// The posteriors (N, K), predictions and labels of this rank's images.
struct Classified {
  std::vector<float> post;
  std::vector<int32_t> pred, labels;
};

/// Classifies images [lo, hi) of the split by batches of B (the last one overlapping the one
/// before), with a progress line every 20 batches on rank 0.
Classified classify_share(const ModelSource& m, const ClassifyOptions& o, const methods::ClassifierConfig& cc,
                          const data::Split& sp, const std::vector<int32_t>& truth, size_t lo, size_t hi, int B,
                          bool root) {
  const deck::Deck& d = m.deck;
  const int Nr = static_cast<int>(hi - lo), K = m.net.classes;
  Exec exec;
  methods::DiffusionClassifier<Exec> cls(m.net, cc, B, K, /*inference_only=*/true);
  const bool use_ema = d.get_bool("classify.use_ema");
  if (!use_ema && m.data.params.empty()) d.fail("classify.use_ema", "the checkpoint holds no raw parameters");
  const DView<float*> params = device_weights(m, use_ema, "dmis::classify::params");
  const size_t n_img = static_cast<size_t>(sp.C) * sp.H * sp.W;
  std::vector<uint8_t> images(sp.images.begin() + lo * n_img, sp.images.begin() + hi * n_img);
  Classified c;
  c.labels.assign(truth.begin() + lo, truth.begin() + hi);
  train::DeviceData<Exec> dev(Nr, sp.C, sp.H, sp.W, K, images, c.labels, {}, {});
  DView<float****> x0("dmis::classify::x0", B, sp.C, sp.H, sp.W);
  // a model with Ambient's mask channel sees the clean test images fully: masks of ones
  const bool masked = m.net.in_channels == m.net.out_channels + 1;
  DView<float****> ones("dmis::classify::mask", masked ? B : 0, 1, sp.H, sp.W);
  Kokkos::deep_copy(ones, 1.0f);
  // --corrupt: observation and mask of each image, drawn from (seed, image index) on the device
  const bool corrupting = !o.corruption.none();
  const int Bc = corrupting ? B : 0;
  DView<int*> image_index("dmis::classify::image_index", Bc);
  DView<float****> obs("dmis::classify::obs", Bc, sp.C, sp.H, sp.W);
  DView<float****> obs_mask("dmis::classify::obs_mask", Bc, 1, sp.H, sp.W);
  const data::CorruptionKernel ck(o.corruption, sp.H, sp.W, o.corrupt_seed);
  DView<int**> classes("dmis::classify::classes", B, K);
  {
    auto h = Kokkos::create_mirror_view(classes);
    for (int b = 0; b < B; ++b)
      for (int k = 0; k < K; ++k) h(b, k) = k;
    Kokkos::deep_copy(classes, h);
  }
  c.post.resize(static_cast<size_t>(Nr) * K);
  c.pred.resize(Nr);
  const uint64_t seed = static_cast<uint64_t>(d.get_int("run.seed"));
  Kokkos::Timer timer;
  int correct = 0;
  for (int first = 0; first < Nr; first += B) {
    const int nb = std::min(B, Nr - first);
    const int base = std::max(0, std::min(first, Nr - B));  // the last batch overlaps the previous
    dev.gather_range(exec, base, x0);
    if (corrupting) {
      const int g0 = static_cast<int>(lo) + base;  // the images' indices in the split
      auto idx = image_index;
      Kokkos::parallel_for(
          "dmis::classify::image_index", Kokkos::RangePolicy<Exec>(exec, 0, B),
          KOKKOS_LAMBDA(int b) { idx(b) = g0 + b; });
      data::corrupt<Exec>(exec, ck, 0u, image_index, x0, obs, obs_mask);
    }
    cls.forward(exec, params, corrupting ? obs : x0, classes,
                Kokkos::View<const float*, Kokkos::LayoutRight, Exec::memory_space>(), seed, 0u,
                static_cast<uint32_t>(lo + base), corrupting && masked ? obs_mask : ones);
    auto lg = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), cls.logits());
    for (int b = first - base; b < first - base + nb; ++b) {
      const int i = base + b;
      double mx = lg(b, 0);
      for (int k = 1; k < K; ++k) mx = std::max<double>(mx, lg(b, k));
      double z = 0;
      for (int k = 0; k < K; ++k) z += std::exp(lg(b, k) - mx);
      int arg = 0;
      for (int k = 0; k < K; ++k) {
        c.post[static_cast<size_t>(i) * K + k] = static_cast<float>(std::exp(lg(b, k) - mx) / z);
        if (lg(b, k) > lg(b, arg)) arg = k;
      }
      c.pred[i] = arg;
      correct += arg == c.labels[i] ? 1 : 0;
    }
    if (root && ((first / B) % 20 == 0 || first + nb == Nr))
      std::cout << "  " << first + nb << "/" << Nr << " images" << (dist::size() > 1 ? " of rank 0" : "")
                << ", accuracy so far "
                << std::setprecision(4) << 100.0 * correct / (first + nb) << " %, "
                << static_cast<int>((first + nb) / timer.seconds()) << " img/s" << std::endl;
  }
  return c;
}

/// posteriors.h5 (atomically), then the accuracy line with its standard error and per class.
void report(const Classified& c, const ModelSource& m, const ClassifyOptions& o,
            const methods::ClassifierConfig& cc, int N, int K) {
  int correct = 0;
  std::vector<int> per_class_total(K, 0), per_class_correct(K, 0);
  for (size_t i = 0; i < c.pred.size(); ++i) {
    correct += c.pred[i] == c.labels[i] ? 1 : 0;
    per_class_total[c.labels[i]] += 1;
    per_class_correct[c.labels[i]] += c.pred[i] == c.labels[i] ? 1 : 0;
  }
  const double acc = static_cast<double>(correct) / N;
  // the binomial standard error of the accuracy over the N test images
  const double se = std::sqrt(acc * (1 - acc) / N);
  h5::write_atomic(o.out, [&](h5::File& f) {
    f.write("/posteriors", {static_cast<size_t>(N), static_cast<size_t>(K)}, c.post.data());
    f.write("/predictions", {static_cast<size_t>(N)}, c.pred.data());
    f.write("/labels", {static_cast<size_t>(N)}, c.labels.data());
    f.set_attr("/", "accuracy", acc);
    f.set_attr("/", "accuracy_se", se);
    f.set_attr("/", "checkpoint", m.checkpoint);
    f.set_attr("/", "step", int64_t(m.data.step));
    f.set_attr("/", "data", o.data_path);
    f.set_attr("/", "split", o.split);
    f.set_attr("/", "timesteps", std::string(methods::name_of(cc.timesteps)));
    f.set_attr("/", "points", int64_t(cc.points));
    f.set_attr("/", "corruption", o.corruption.none() ? std::string("none") : o.corruption.spec());
    if (!o.corruption.none()) f.set_attr("/", "corruption_seed", int64_t(o.corrupt_seed));
  });
  std::cout << "dmis classify: accuracy " << std::fixed << std::setprecision(2) << 100 * acc
            << " % (" << correct << "/" << N << ") on the " << o.split << " split (standard error "
            << 100 * se << " %); per class:";
  for (int k = 0; k < K; ++k)
    std::cout << " " << std::setprecision(1)
              << (per_class_total[k] ? 100.0 * per_class_correct[k] / per_class_total[k] : 0.0);
  std::cout << "\ndmis classify: posteriors in " << o.out << std::endl;
}

}  // namespace

int cmd_classify(const Args& args) {
  DeckArgs a = split_deck_args(args);
  ClassifyOptions o = parse_options(a.rest);
  if (o.help) {
    std::cout << kUsage;
    return 0;
  }
  const ModelSource m = load_model_source(a);
  const deck::Deck& d = m.deck;
  if (o.data_path.empty()) o.data_path = d.get_string("data.path");
  if (o.limit < 0) o.limit = d.get_int("data.test_limit");
  if (o.out.empty()) o.out = (fs::path(m.run_dir) / "posteriors.h5").string();
  check_output_file("--out", o.out);

  const data::Dataset ds =
      data::read_dataset(o.data_path, o.split == "test", o.split == "train" ? o.limit : 0);
  const data::Split& sp = checked_split(ds, o, m);
  const int N = o.limit > 0 ? static_cast<int>(std::min<long>(o.limit, sp.N)) : sp.N;
  const std::vector<int32_t>& truth = sp.clean_labels.empty() ? sp.labels : sp.clean_labels;
  const methods::ClassifierConfig cc = classifier_config(d);
  // classify.precision: process-wide, like train.precision in training
  const kernels::GemmPrecision precision = deck::gemm_precision(d, "classify.precision");
  kernels::set_gemm_precision(precision, "classify.precision");
  // ranks share the images: rank r classifies [lo, hi), noise keyed by the global index
  const auto [lo, hi] = dist::share(N);
  const int Nr = static_cast<int>(hi - lo);
  const int K = m.net.classes,
            B = std::max(1, std::min<int>(static_cast<int>(d.get_int("classify.batch")), Nr));
  std::vector<double> sig, wts;
  methods::classifier_levels(cc, sig, wts);
  const bool root = dist::rank() == 0;
  if (root) {
    std::cout << "dmis classify: " << N << " " << o.split << " images of " << o.data_path << ", "
              << K << " classes x " << cc.points << " noise levels (" << methods::name_of(cc.timesteps) << ": sigma";
    for (double s : sig) std::cout << " " << std::setprecision(4) << s;
    std::cout << "), " << (d.get_bool("classify.use_ema") ? "EMA" : "raw") << " weights of " << m.checkpoint;
    if (precision == kernels::GemmPrecision::BF16) std::cout << ", bf16 GEMMs";
    if (!o.corruption.none())
      std::cout << "; images corrupted by " << o.corruption.spec() << " (seed " << o.corrupt_seed << ")";
    if (dist::size() > 1) std::cout << ", over " << dist::size() << " ranks";
    std::cout << std::endl;
  }
  Classified c = classify_share(m, o, cc, sp, truth, lo, hi, B, root);
  // every rank's share, in order, on rank 0
  c.post = dist::gather(c.post);
  c.pred = dist::gather(c.pred);
  c.labels = dist::gather(c.labels);
  if (root) report(c, m, o, cc, N, K);
  return 0;
}

}  // namespace dmis::cli
