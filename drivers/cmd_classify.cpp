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
#include "dist/comm.hpp"
#include "io/h5.hpp"
#include "methods/classifier.hpp"
#include "model_source.hpp"
#include "train/device_data.hpp"

namespace dmis::cli {

namespace fs = std::filesystem;
using Exec = Kokkos::DefaultExecutionSpace;

int cmd_classify(const Args& args) {
  DeckArgs a = split_deck_args(args);
  std::string data_path, out, split = "test", corrupt_spec;
  uint64_t corrupt_seed = 1;
  bool corrupt_seed_given = false;
  long limit = -1;
  for (size_t i = 0; i < a.rest.size(); ++i) {
    const std::string& r = a.rest[i];
    auto value = [&]() -> const std::string& { return option_value(a.rest, i); };
    if (r == "--help" || r == "-h") {
      std::cout << "usage: dmis classify DECK|CHECKPOINT [--data FILE] [--split test|train] "
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
      return 0;
    } else if (r == "--data") {
      data_path = value();
    } else if (r == "--split") {
      split = value();
      if (split != "test" && split != "train")
        throw UsageError(cat("--split expects test or train, found '", split, "'"));
    } else if (r == "--limit") {
      const std::string v = value();
      try {
        limit = std::stol(v);
      } catch (const std::exception&) {
        limit = -2;
      }
      if (limit < 0) throw UsageError(cat("--limit expects a count >= 0, found '", v, "'"));
    } else if (r == "--out") {
      out = value();
    } else if (r == "--corrupt") {
      corrupt_spec = value();
    } else if (r == "--corrupt-seed") {
      corrupt_seed = parse_seed(r, value());
      corrupt_seed_given = true;
    } else {
      throw UsageError(cat("unknown option '", r, "'"));
    }
  }
  if (corrupt_seed_given && corrupt_spec.empty()) throw UsageError("--corrupt-seed needs --corrupt");
  const data::Corruption corruption =
      corrupt_spec.empty() ? data::Corruption{} : data::parse_corruption(corrupt_spec);
  const ModelSource m = load_model_source(a);
  const deck::Deck& d = m.deck;
  if (data_path.empty()) data_path = d.get_string("data.path");
  if (limit < 0) limit = d.get_int("data.test_limit");
  if (out.empty()) out = (fs::path(m.run_dir) / "posteriors.h5").string();
  check_output_file("--out", out);

  const data::Dataset ds = data::read_dataset(data_path, split == "test", split == "train" ? limit : 0);
  if (split == "test" && !ds.has_test)
    throw InputError(cat("dataset '", data_path, "' has no test split"));
  const data::Split& sp = split == "test" ? ds.test : ds.train;
  data::require_images(sp, data_path, "dmis classify");
  if (ds.classes != m.net.classes)
    throw InputError(cat("dataset '", data_path, "' has ", ds.classes, " classes; the checkpoint's "
                         "network has ", m.net.classes));
  const std::string bad = data::image_shape_mismatch(sp, data_path, m.net.out_channels,
                                                     m.net.resolution, "the checkpoint's network");
  if (!bad.empty()) throw InputError(bad);
  const int N = limit > 0 ? static_cast<int>(std::min<long>(limit, sp.N)) : sp.N;
  const std::vector<int32_t>& truth = sp.clean_labels.empty() ? sp.labels : sp.clean_labels;

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
  const bool use_ema = d.get_bool("classify.use_ema");
  // ranks share the images: rank r classifies [lo, hi), noise keyed by the global index
  const auto [lo, hi] = dist::share(N);
  const int Nr = static_cast<int>(hi - lo);
  const int K = m.net.classes,
            B = std::max(1, std::min<int>(static_cast<int>(d.get_int("classify.batch")), Nr));
  std::vector<double> sig, wts;
  methods::classifier_levels(cc, sig, wts);
  const bool root = dist::rank() == 0;
  if (root) {
    std::cout << "dmis classify: " << N << " " << split << " images of " << data_path << ", "
              << K << " classes x " << cc.points << " noise levels (" << methods::name_of(cc.timesteps) << ": sigma";
    for (double s : sig) std::cout << " " << std::setprecision(4) << s;
    std::cout << "), " << (use_ema ? "EMA" : "raw") << " weights of " << m.checkpoint;
    if (!corruption.none())
      std::cout << "; images corrupted by " << corruption.spec() << " (seed " << corrupt_seed << ")";
    if (dist::size() > 1) std::cout << ", over " << dist::size() << " ranks";
    std::cout << std::endl;
  }

  Exec exec;
  methods::DiffusionClassifier<Exec> cls(m.net, cc, B, K, /*inference_only=*/true);
  Kokkos::View<float*, Kokkos::LayoutRight, Exec::memory_space> params("dmis::classify::params",
                                                                        m.data.table.total());
  {
    const auto& src = use_ema ? m.data.ema : m.data.params;
    if (src.empty()) d.fail("classify.use_ema", "the checkpoint holds no raw parameters");
    auto h = Kokkos::create_mirror_view(params);
    for (size_t i = 0; i < src.size(); ++i) h(i) = src[i];
    Kokkos::deep_copy(params, h);
  }
  const size_t n_img = static_cast<size_t>(sp.C) * sp.H * sp.W;
  std::vector<uint8_t> images(sp.images.begin() + lo * n_img, sp.images.begin() + hi * n_img);
  std::vector<int32_t> labels(truth.begin() + lo, truth.begin() + hi);
  train::DeviceData<Exec> dev(Nr, sp.C, sp.H, sp.W, K, images, labels, {}, {});
  Kokkos::View<float****, Kokkos::LayoutRight, Exec::memory_space> x0("dmis::classify::x0", B, sp.C, sp.H, sp.W);
  // a model with Ambient's mask channel sees the clean test images fully: masks of ones
  const bool masked = m.net.in_channels == m.net.out_channels + 1;
  Kokkos::View<float****, Kokkos::LayoutRight, Exec::memory_space> ones("dmis::classify::mask",
                                                                        masked ? B : 0, 1, sp.H, sp.W);
  Kokkos::deep_copy(ones, 1.0f);
  // --corrupt: observation and mask of each image, drawn from (seed, image index) on the device
  const bool corrupting = !corruption.none();
  const int Bc = corrupting ? B : 0;
  Kokkos::View<int*, Kokkos::LayoutRight, Exec::memory_space> image_index("dmis::classify::image_index", Bc);
  Kokkos::View<float****, Kokkos::LayoutRight, Exec::memory_space> obs("dmis::classify::obs", Bc, sp.C, sp.H, sp.W);
  Kokkos::View<float****, Kokkos::LayoutRight, Exec::memory_space> obs_mask("dmis::classify::obs_mask", Bc, 1, sp.H, sp.W);
  const data::CorruptionKernel ck(corruption, sp.H, sp.W, corrupt_seed);
  Kokkos::View<int**, Kokkos::LayoutRight, Exec::memory_space> classes("dmis::classify::classes", B, K);
  {
    auto h = Kokkos::create_mirror_view(classes);
    for (int b = 0; b < B; ++b)
      for (int k = 0; k < K; ++k) h(b, k) = k;
    Kokkos::deep_copy(classes, h);
  }
  std::vector<float> post(static_cast<size_t>(Nr) * K);
  std::vector<int32_t> pred(Nr);
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
        post[static_cast<size_t>(i) * K + k] = static_cast<float>(std::exp(lg(b, k) - mx) / z);
        if (lg(b, k) > lg(b, arg)) arg = k;
      }
      pred[i] = arg;
      correct += arg == labels[i] ? 1 : 0;
    }
    if (root && ((first / B) % 20 == 0 || first + nb == Nr))
      std::cout << "  " << first + nb << "/" << Nr << " images" << (dist::size() > 1 ? " of rank 0" : "")
                << ", accuracy so far "
                << std::setprecision(4) << 100.0 * correct / (first + nb) << " %, "
                << static_cast<int>((first + nb) / timer.seconds()) << " img/s" << std::endl;
  }
  // every rank's share, in order, on rank 0
  post = dist::gather(post);
  pred = dist::gather(pred);
  labels = dist::gather(labels);
  correct = 0;
  std::vector<int> per_class_total(K, 0), per_class_correct(K, 0);
  for (size_t i = 0; i < pred.size(); ++i) {
    correct += pred[i] == labels[i] ? 1 : 0;
    per_class_total[labels[i]] += 1;
    per_class_correct[labels[i]] += pred[i] == labels[i] ? 1 : 0;
  }
  if (!root) return 0;
  const double acc = static_cast<double>(correct) / N;
  // the binomial standard error of the accuracy over the N test images
  const double se = std::sqrt(acc * (1 - acc) / N);
  {
    h5::write_atomic(out, [&](h5::File& f) {
      f.write("/posteriors", {static_cast<size_t>(N), static_cast<size_t>(K)}, post.data());
      f.write("/predictions", {static_cast<size_t>(N)}, pred.data());
      f.write("/labels", {static_cast<size_t>(N)}, labels.data());
      f.set_attr("/", "accuracy", acc);
      f.set_attr("/", "accuracy_se", se);
      f.set_attr("/", "checkpoint", m.checkpoint);
      f.set_attr("/", "step", int64_t(m.data.step));
      f.set_attr("/", "data", data_path);
      f.set_attr("/", "split", split);
      f.set_attr("/", "timesteps", std::string(methods::name_of(cc.timesteps)));
      f.set_attr("/", "points", int64_t(cc.points));
      f.set_attr("/", "corruption", corruption.none() ? std::string("none") : corruption.spec());
      if (!corruption.none()) f.set_attr("/", "corruption_seed", int64_t(corrupt_seed));
    });
  }
  std::cout << "dmis classify: accuracy " << std::fixed << std::setprecision(2) << 100 * acc
            << " % (" << correct << "/" << N << ") on the " << split << " split (standard error "
            << 100 * se << " %); per class:";
  for (int k = 0; k < K; ++k)
    std::cout << " " << std::setprecision(1)
              << (per_class_total[k] ? 100.0 * per_class_correct[k] / per_class_total[k] : 0.0);
  std::cout << "\ndmis classify: posteriors in " << out << std::endl;
  return 0;
}

}  // namespace dmis::cli
