// dmis eval: the evaluator classifier (train-evaluator) and the sample-quality metrics in its
// features (metrics). docs/evaluation.md describes both.
#include <Kokkos_Core.hpp>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "commands.hpp"
#include "core/error.hpp"
#include "data/dataset.hpp"
#include "eval/image_classifier.hpp"
#include "eval/evaluator_file.hpp"
#include "eval/metrics.hpp"
#include "eval_common.hpp"
#include "io/h5.hpp"

namespace dmis::cli {

namespace {
using Exec = Kokkos::DefaultExecutionSpace;

const char* kEvalUsage =
    "usage: dmis eval train-evaluator --data FILE.h5 --out EVALUATOR.h5 [--epochs N] [--batch B]\n"
    "                 [--lr X] [--seed S] [--limit N] [--test-limit N] [--flip]\n"
    "       dmis eval [metrics] SAMPLES.h5 --evaluator EVALUATOR.h5 --data FILE.h5 [--json FILE]\n"
    "                 [--k K] [--no-cas] [--cas-steps N] [--cas-batch B] [--cas-seed S]\n"
    "                 [--test-limit N]\n";

/// dmis eval train-evaluator's command line.
struct EvaluatorOptions {
  bool help = false;
  std::string data_path, out;
  double epochs = 5, lr = 5e-3;
  long batch = 64, seed = 0, limit = 0, test_limit = 0;
  bool flip = false;
};

EvaluatorOptions parse_evaluator_options(const Args& args) {
  EvaluatorOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& r = args[i];
    auto value = [&]() -> const std::string& { return option_value(args, i); };
    if (r == "--help" || r == "-h") {
      o.help = true;
      return o;
    } else if (r == "--data") {
      o.data_path = value();
    } else if (r == "--out") {
      o.out = value();
    } else if (r == "--epochs") {
      o.epochs = parse_double(r, value(), 0);
    } else if (r == "--batch") {
      o.batch = parse_long(r, value(), 1);
    } else if (r == "--lr") {
      o.lr = parse_double(r, value(), 0);
    } else if (r == "--seed") {
      o.seed = parse_long(r, value(), 0);
    } else if (r == "--limit") {
      o.limit = parse_long(r, value(), 1);
    } else if (r == "--test-limit") {
      o.test_limit = parse_long(r, value(), 1);
    } else if (r == "--flip") {
      o.flip = true;
    } else {
      throw UsageError(cat("unknown option '", r, "'"));
    }
  }
  if (o.data_path.empty())
    throw UsageError("--data FILE.h5 is required");
  if (o.out.empty())
    throw UsageError("--out EVALUATOR.h5 is required");
  return o;
}

/// The training split's labels for the evaluator (clean_labels when kept, else labels), every
/// image labelled; `name` says which.
const std::vector<int32_t>& evaluator_labels(const data::Split& tr, const std::string& data_path,
                                             std::string& name) {
  const bool clean = !tr.clean_labels.empty();
  name = clean ? "clean_labels" : "labels";
  const auto& labels = clean ? tr.clean_labels : tr.labels;
  for (int i = 0; i < tr.N; ++i)
    if (labels[i] < 0)
      throw InputError(cat("dataset '", data_path, "' /train/", name, ": image ", i,
                           " has no label (", labels[i],
                           "); the evaluator needs every training "
                           "image labelled (import the dataset without supervision, or keep "
                           "/train/clean_labels)"));
  return labels;
}

/// What EVALUATOR.h5 keeps: the weights, the configuration, the test accuracy and how it was trained.
eval::EvaluatorFile evaluator_record(const models::EvaluatorConfig& cfg, const ParamStore<Exec, float>& store,
                                     const eval::Accuracy& acc, const EvaluatorOptions& o,
                                     const eval::TrainOptions& opt, const eval::TrainSummary& s,
                                     const std::string& labels_name, int train_images) {
  eval::EvaluatorFile e;
  e.config = cfg;
  e.params.resize(store.size());
  {
    auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), store.params);
    std::copy(h.data(), h.data() + store.size(), e.params.begin());
  }
  e.test_accuracy = acc.overall;
  e.test_per_class = acc.per_class;
  e.dataset = o.data_path;
  e.labels = labels_name;
  e.train_images = train_images;
  e.epochs = o.epochs;
  e.steps = s.steps;
  e.batch = std::min<int>(opt.batch, train_images);
  e.lr = o.lr;
  e.weight_decay = opt.weight_decay;
  e.seed = opt.seed;
  e.flip = o.flip;
  e.train_seconds = s.seconds;
  e.images_per_second = s.images_per_second;
  return e;
}

int train_evaluator(const Args& args) {
  const EvaluatorOptions o = parse_evaluator_options(args);
  if (o.help) {
    std::cout
        << kEvalUsage << "\ntrain-evaluator trains the evaluator classifier ("
        << models::EvaluatorConfig().describe()
        << ")\non the training split of a dataset file, with its clean_labels when it has "
           "them (else labels),\nthen measures its accuracy on the test split and writes "
           "weights, configuration and test\naccuracy to EVALUATOR.h5. Defaults: 5 epochs, "
           "batch 64, AdamW lr 5e-3 (cosine), seed 0;\n--flip adds random horizontal flips.\n";
    return 0;
  }
  check_output_file("--out", o.out);
  const data::Dataset ds = data::read_dataset(o.data_path, /*with_test=*/true, o.limit);
  if (!ds.has_test)
    throw InputError(cat("dataset '", o.data_path,
                         "' has no test split (/test/images); the "
                         "evaluator's accuracy is measured there"));
  const data::Split& tr = ds.train;
  std::string labels_name;
  const auto& labels = evaluator_labels(tr, o.data_path, labels_name);
  models::EvaluatorConfig cfg;
  cfg.in_channels = tr.C;
  cfg.resolution = tr.H;
  cfg.classes = ds.classes;
  if (tr.H != tr.W)
    throw InputError(cat("dataset '", o.data_path, "' has images of ", tr.H, "x", tr.W,
                         "; the evaluator takes square images"));
  cfg.validate();
  Exec exec;
  const auto train =
      eval::upload_images<Exec>(tr.images, labels, tr.N, tr.C, tr.H, tr.W, ds.classes,
                                cat("dataset '", o.data_path, "' /train/", labels_name));
  std::string test_labels;
  const auto test = load_test_split(o.data_path, o.test_limit, ds.classes, &test_labels);

  eval::TrainOptions opt;
  opt.batch = static_cast<int>(o.batch);
  opt.steps = eval::steps_for_epochs(o.epochs, train.N, std::min<int>(opt.batch, train.N));
  opt.lr = o.lr;
  opt.seed = static_cast<uint64_t>(o.seed);
  opt.flip = o.flip;
  opt.what = "train-evaluator";
  models::Evaluator<Exec, float> net(cfg);
  ParamStore<Exec, float> store(net.table());
  std::cout << "dmis eval train-evaluator: " << cfg.describe() << ", " << net.table().total()
            << " parameters\n  " << train.N << " training images of " << o.data_path << " ("
            << labels_name << "), " << o.epochs << " epochs = " << opt.steps << " steps at batch "
            << std::min<int>(opt.batch, train.N) << ", AdamW lr " << o.lr << ", seed " << o.seed
            << (o.flip ? ", random flips" : "") << ", " << Exec().concurrency() << " threads ("
            << Exec::name() << ")" << std::endl;
  const eval::TrainSummary s = eval::train_classifier(exec, net, store, train, opt, &std::cout);
  const Tensor1<const float, Exec> params(store.params.data(), store.size());
  const eval::Accuracy acc = eval::classifier_accuracy(exec, net, params, test);
  std::cout << "dmis eval train-evaluator: trained in " << std::fixed << std::setprecision(1)
            << s.seconds << " s (" << std::setprecision(0) << s.images_per_second
            << " img/s); test accuracy " << std::setprecision(2) << 100 * acc.overall << " % on "
            << test.N << " test images (" << test_labels << ")\n  per class:";
  for (int k = 0; k < cfg.classes; ++k)
    std::cout << " " << std::setprecision(1) << 100 * acc.per_class[k];
  std::cout << std::defaultfloat << std::endl;

  eval::write_evaluator(o.out, evaluator_record(cfg, store, acc, o, opt, s, labels_name, train.N));
  std::cout << "dmis eval train-evaluator: wrote " << o.out << std::endl;
  return 0;
}

/// The generated images of a samples file (dmis sample): images (N, C, H, W) float, labels (N).
eval::ImageSet<Exec> load_samples(const std::string& path, const models::EvaluatorConfig& cfg) {
  const h5::File f(path, h5::File::Mode::Read);
  for (const char* name : {"/images", "/labels"})
    if (!f.exists(name))
      throw InputError(
          cat("samples file '", path, "': dataset ", name,
              " is missing (expected "
              "images (N, C, H, W) in [-1, 1] and labels (N), as dmis sample writes)"));
  const auto img = f.read_float("/images");
  const auto lab = f.read_int("/labels");
  const auto& s = img.shape;
  if (s.size() != 4 || s[1] != static_cast<size_t>(cfg.in_channels) ||
      s[2] != static_cast<size_t>(cfg.resolution) || s[3] != static_cast<size_t>(cfg.resolution)) {
    std::string found = "(";
    for (size_t i = 0; i < s.size(); ++i)
      found += (i ? ", " : "") + std::to_string(s[i]);
    throw InputError(cat("samples file '", path, "': /images has shape ", found, "), expected (N, ",
                         cfg.in_channels, ", ", cfg.resolution, ", ", cfg.resolution,
                         ") for the evaluator"));
  }
  if (lab.shape.size() != 1 || lab.shape[0] != s[0])
    throw InputError(cat("samples file '", path, "': /labels has ", lab.size(),
                         " entries, /images ", s[0], " images"));
  if (s[0] < 2)
    throw InputError(
        cat("samples file '", path, "': ", s[0], " images; the metrics need at least 2"));
  return eval::upload_images<Exec>(img.data, lab.data, static_cast<int>(s[0]), cfg.in_channels,
                                   cfg.resolution, cfg.resolution, cfg.classes,
                                   cat("samples file '", path, "' /labels"));
}

std::vector<int>
rows_of_class(const Kokkos::View<int*, Kokkos::LayoutRight, DeviceOf<Exec>>& labels, int k) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), labels);
  std::vector<int> rows;
  for (size_t i = 0; i < h.extent(0); ++i)
    if (h(i) == k)
      rows.push_back(static_cast<int>(i));
  return rows;
}

/// dmis eval metrics' command line.
struct MetricsOptions {
  bool help = false;
  std::string samples, evaluator, data_path, json;
  long k = 3, cas_steps = 1000, cas_batch = 128, cas_seed = 0, test_limit = 0;
  bool cas = true;
};

MetricsOptions parse_metrics_options(const Args& args) {
  MetricsOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& r = args[i];
    auto value = [&]() -> const std::string& { return option_value(args, i); };
    if (r == "--help" || r == "-h") {
      o.help = true;
      return o;
    } else if (r == "--evaluator") {
      o.evaluator = value();
    } else if (r == "--data") {
      o.data_path = value();
    } else if (r == "--json") {
      o.json = value();
    } else if (r == "--k") {
      o.k = parse_long(r, value(), 1);
    } else if (r == "--no-cas") {
      o.cas = false;
    } else if (r == "--cas-steps") {
      o.cas_steps = parse_long(r, value(), 1);
    } else if (r == "--cas-batch") {
      o.cas_batch = parse_long(r, value(), 1);
    } else if (r == "--cas-seed") {
      o.cas_seed = parse_long(r, value(), 0);
    } else if (r == "--test-limit") {
      o.test_limit = parse_long(r, value(), 2);
    } else if (!r.empty() && r[0] == '-') {
      throw UsageError(cat("unknown option '", r, "'"));
    } else if (o.samples.empty()) {
      o.samples = r;
    } else {
      throw UsageError(cat("one samples file expected, found '", o.samples, "' and '", r, "'"));
    }
  }
  if (o.samples.empty())
    throw UsageError("which samples? SAMPLES.h5 (written by dmis sample) is required");
  if (o.evaluator.empty())
    throw UsageError("--evaluator EVALUATOR.h5 is required");
  if (o.data_path.empty())
    throw UsageError("--data FILE.h5 (the real test split) is required");
  return o;
}

using Features = eval::Features<Exec>;

/// The "fd" line: FD of all generated against all real features, and class-wise (CW-FD: the
/// mean over the classes with at least 2 images on both sides; the others null).
std::string fd_line(const Exec& exec, const Features& ffake, const Features& freal,
                    const eval::ImageSet<Exec>& fake, const eval::ImageSet<Exec>& real, int K,
                    const std::string& common) {
  const double fd =
      eval::frechet_distance(eval::fit_gaussian(exec, ffake), eval::fit_gaussian(exec, freal));
  std::vector<double> per_class(K, std::nan(""));
  double cw_sum = 0;
  int cw_n = 0;
  for (int c = 0; c < K; ++c) {
    const auto rf = rows_of_class(fake.labels, c), rr = rows_of_class(real.labels, c);
    if (rf.size() < 2 || rr.size() < 2)
      continue; // no covariance: reported as null
    per_class[c] =
        eval::frechet_distance(eval::fit_gaussian(exec, eval::select_rows(exec, ffake, rf)),
                               eval::fit_gaussian(exec, eval::select_rows(exec, freal, rr)));
    cw_sum += per_class[c];
    ++cw_n;
  }
  return cat("{\"metric\": \"fd\", ", common, ", \"fd\": ", json_number(fd),
             ", \"cw_fd\": ", json_number(cw_n ? cw_sum / cw_n : std::nan("")),
             ", \"cw_fd_classes\": ", cw_n, ", \"per_class\": ", json_array(per_class), "}");
}

/// The "cas" line: a fresh classifier trained on the generated pairs, tested on the real split.
std::string cas_line(const Exec& exec, const models::EvaluatorConfig& cfg, const MetricsOptions& o,
                     const eval::ImageSet<Exec>& fake, const eval::ImageSet<Exec>& real,
                     const std::string& common) {
  eval::TrainOptions opt;
  opt.steps = o.cas_steps;
  opt.batch = static_cast<int>(o.cas_batch);
  opt.seed = static_cast<uint64_t>(o.cas_seed);
  opt.what = "cas";
  models::Evaluator<Exec, float> cnet(cfg);
  ParamStore<Exec, float> store(cnet.table());
  const eval::TrainSummary s = eval::train_classifier(exec, cnet, store, fake, opt, &std::cerr);
  const eval::Accuracy ca = eval::classifier_accuracy(
      exec, cnet, Tensor1<const float, Exec>(store.params.data(), store.size()), real);
  return cat("{\"metric\": \"cas\", ", common, ", \"cas\": ", json_number(ca.overall),
             ", \"per_class\": ", json_array(ca.per_class), ", \"steps\": ", s.steps,
             ", \"batch\": ", std::min<long>(o.cas_batch, fake.N), ", \"seed\": ", o.cas_seed,
             ", \"train_seconds\": ", json_number(s.seconds), "}");
}

int metrics(const Args& args) {
  const MetricsOptions o = parse_metrics_options(args);
  if (o.help) {
    std::cout << kEvalUsage
              << "\nmetrics judges generated images (a samples.h5 of dmis sample) in the "
                 "features of an evaluator\n(dmis eval train-evaluator) against the real test "
                 "split of FILE.h5, and prints one JSON line\nper metric set: accuracy "
                 "(generated-sample accuracy, overall and per class), fd (Frechet\ndistance, "
                 "pooled and class-wise), density_coverage (Naeem et al. 2020, k = 3) and cas\n"
                 "(a fresh classifier trained on the generated pairs only, tested on the real "
                 "test split;\n--no-cas skips it; default 1000 steps at batch 128). Every line "
                 "carries the evaluator's own\ntest accuracy. Progress goes to stderr; --json "
                 "FILE also appends the lines to FILE.\n";
    return 0;
  }
  const eval::EvaluatorFile ef = eval::read_evaluator(o.evaluator);
  const auto& cfg = ef.config;
  const auto fake = load_samples(o.samples, cfg);
  std::string test_labels;
  const auto real = load_test_split(o.data_path, o.test_limit, cfg.classes, &test_labels);
  std::cerr << "dmis eval: " << fake.N << " generated images of " << o.samples << " against "
            << real.N << " test images of " << o.data_path << ", in the features of " << o.evaluator
            << " (test accuracy " << std::fixed << std::setprecision(2) << 100 * ef.test_accuracy
            << " %)" << std::defaultfloat << std::endl;

  Exec exec;
  models::Evaluator<Exec, float> net(cfg);
  net.prepare(256, /*inference_only=*/true);
  Kokkos::View<float*, Kokkos::LayoutRight, Exec::memory_space> pbuf("dmis::eval::params",
                                                                     ef.params.size());
  {
    auto h = Kokkos::create_mirror_view(pbuf);
    for (size_t i = 0; i < ef.params.size(); ++i)
      h(i) = ef.params[i];
    Kokkos::deep_copy(pbuf, h);
  }
  const Tensor1<const float, Exec> params(pbuf.data(), pbuf.extent(0));
  const std::string common =
      cat("\"samples\": ", json_string(o.samples), ", \"evaluator\": ", json_string(o.evaluator),
          ", \"evaluator_test_accuracy\": ", json_number(ef.test_accuracy),
          ", \"n_generated\": ", fake.N, ", \"n_real\": ", real.N);

  // generated-sample accuracy
  const eval::Accuracy acc = eval::classifier_accuracy(exec, net, params, fake);
  emit_json(cat("{\"metric\": \"accuracy\", ", common, ", \"accuracy\": ", json_number(acc.overall),
                ", \"per_class\": ", json_array(acc.per_class), "}"),
            o.json);
  // FD (pooled and class-wise), density and coverage in the evaluator's features
  Kokkos::Timer timer;
  const auto freal = eval::extract_features(exec, net, params, real);
  const auto ffake = eval::extract_features(exec, net, params, fake);
  emit_json(fd_line(exec, ffake, freal, fake, real, cfg.classes, common), o.json);
  const eval::DensityCoverage dc = eval::density_coverage(exec, freal, ffake, static_cast<int>(o.k));
  emit_json(cat("{\"metric\": \"density_coverage\", ", common, ", \"k\": ", o.k, ", \"density\": ",
                json_number(dc.density), ", \"coverage\": ", json_number(dc.coverage), "}"),
            o.json);
  std::cerr << "dmis eval: features, FD, density and coverage in " << std::setprecision(3)
            << timer.seconds() << " s" << std::endl;
  if (o.cas) emit_json(cas_line(exec, cfg, o, fake, real, common), o.json);
  return 0;
}
} // namespace

int cmd_eval(const Args& args) {
  if (args.empty())
    throw UsageError("which evaluation? train-evaluator or metrics");
  const std::string& sub = args[0];
  if (sub == "--help" || sub == "-h") {
    std::cout << kEvalUsage
              << "\n`dmis eval train-evaluator --help` and `dmis eval metrics --help` describe "
                 "each; docs/evaluation.md\ndefines the metrics.\n";
    return 0;
  }
  if (sub == "train-evaluator")
    return train_evaluator(Args(args.begin() + 1, args.end()));
  if (sub == "metrics")
    return metrics(Args(args.begin() + 1, args.end()));
  if (!sub.empty() && sub[0] == '-')
    return metrics(args); // options before the samples file
  if (sub.size() > 3 && sub.substr(sub.size() - 3) == ".h5")
    return metrics(args);
  throw UsageError(cat("unknown evaluation '", sub,
                       "' (known: train-evaluator, metrics, or a "
                       "samples .h5 file)"));
}

} // namespace dmis::cli
