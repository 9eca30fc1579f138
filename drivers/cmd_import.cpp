// `dmis import`: makes a dmis dataset file (docs/datasets.md) from the published Fashion-MNIST or
// CIFAR-10 files, optionally with generated imprecise supervision written into the training split
// the way a user's own noisy / partial / missing labels come in.
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "commands.hpp"
#include "core/error.hpp"
#include "data/corruption.hpp"
#include "data/dataset.hpp"
#include "data/supervision.hpp"
#include "dist/comm.hpp"

namespace dmis::cli {

namespace fs = std::filesystem;

namespace {

const char* kImportHelp =
    "usage: dmis import fmnist|cifar10 [--src DIR] --out FILE [--force]\n"
    "                   [--supervision SPEC [--seed N]]\n"
    "                   [--corrupt SPEC [--corrupt-seed N] [--keep-clean]]\n"
    "\n"
    "Converts a published dataset into one dmis dataset file (HDF5, docs/datasets.md) and\n"
    "prints a summary: images, shape, classes, label histogram.\n"
    "\n"
    "  fmnist        Fashion-MNIST IDX files (train-images-idx3-ubyte.gz, ...); --src defaults\n"
    "                to /usr/share/datasets/fashion-mnist (Debian: dataset-fashion-mnist)\n"
    "  cifar10       CIFAR-10 binary version (data_batch_1.bin .. data_batch_5.bin,\n"
    "                test_batch.bin); --src is required\n"
    "  --out FILE    the dataset file to write; an existing file is kept unless --force\n"
    "  --force       overwrite --out\n"
    "  --supervision SPEC\n"
    "                write generated imprecise labels into the training split, as a user's\n"
    "                own would come in (the true labels go to /train/clean_labels):\n"
    "                  clean\n"
    "                  noisy-symmetric[:RATE]   RATE of the labels become a random other class\n"
    "                  noisy-asymmetric[:RATE]  RATE of the labels of mapped classes flip\n"
    "                                           (fmnist 2->7, 3->8, 5<->6; cifar10 9->1, 2->0,\n"
    "                                           4->7, 3<->5)\n"
    "                  partial-random[:Q]       each wrong class joins the candidate set with\n"
    "                                           probability Q\n"
    "                  partial-class50          wrong classes at cyclic offsets 1, 2, 3, ...\n"
    "                                           join with probability 0.7, 0.5, 0.3, ...\n"
    "                  unlabeled[:FRACTION]     keep the labels of a class-balanced FRACTION\n"
    "                RATE and Q default to 0.4 and 0.5, FRACTION to 0.1\n"
    "  --seed N      seed of the generated supervision (default 1)\n"
    "  --corrupt SPEC\n"
    "                corrupt the training images (Ambient Diffusion, DiffEM): the split then\n"
    "                holds observations + masks instead of images (docs/datasets.md):\n"
    "                  mask:P                 every pixel missing with probability P\n"
    "                  box:S | box:HxW        one missing S x S (H x W) box per image\n"
    "                  box:FRAC               one missing square box of about FRAC of the area\n"
    "                  blur:SIGMA[,width:K]   Gaussian blur (K x K kernel, default 6 SIGMA + 1)\n"
    "                and optionally ,noise:SIGMA_Y (observation noise, [-1, 1] scale)\n"
    "  --corrupt-seed N  seed of the corruption (default 1)\n"
    "  --keep-clean  also store the clean training images as /train/clean_images (for\n"
    "                evaluating reconstructions; training never reads them)\n"
    "\n"
    "examples:\n"
    "  dmis import fmnist --out data/fmnist.h5\n"
    "  dmis import cifar10 --src cifar-10-batches-bin --out data/cifar10.h5\n"
    "  dmis import fmnist --out data/fmnist-sym40.h5 --supervision noisy-symmetric:0.4 --seed 7\n"
    "  dmis import fmnist --out data/fmnist-mask90.h5 --corrupt mask:0.9 --keep-clean\n";

double parse_unit(const std::string& spec, const std::string& value) {
  double v = 0;
  size_t used = 0;
  try {
    v = std::stod(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != value.size() || value.empty() || !(v >= 0.0 && v <= 1.0))
    throw UsageError(cat("--supervision ", spec, ": expected a number in [0, 1] after ':', found '",
                         value, "'"));
  return v;
}

data::SupervisionConfig parse_supervision(const std::string& spec) {
  const auto colon = spec.find(':');
  const std::string head = spec.substr(0, colon);
  const bool has_value = colon != std::string::npos;
  const std::string value = has_value ? spec.substr(colon + 1) : "";
  data::SupervisionConfig c;
  if (head == "clean") {
    c.kind = data::SupervisionKind::Clean;
  } else if (head == "noisy-symmetric" || head == "noisy-asymmetric") {
    c.kind = data::SupervisionKind::Noisy;
    c.noise = head == "noisy-symmetric" ? "symmetric" : "asymmetric";
    if (has_value)
      c.rate = parse_unit(spec, value);
    return c;
  } else if (head == "partial-random") {
    c.kind = data::SupervisionKind::Partial;
    c.partial = "random";
    if (has_value)
      c.q = parse_unit(spec, value);
    return c;
  } else if (head == "partial-class50") {
    c.kind = data::SupervisionKind::Partial;
    c.partial = "class50";
  } else if (head == "unlabeled") {
    c.kind = data::SupervisionKind::Unlabeled;
    if (has_value)
      c.labeled_fraction = parse_unit(spec, value);
    return c;
  } else {
    throw UsageError(cat("--supervision: unknown kind '", head,
                         "' (known: clean, noisy-symmetric:RATE, noisy-asymmetric:RATE, "
                         "partial-random:Q, partial-class50, unlabeled:FRACTION)"));
  }
  if (has_value)
    throw UsageError(cat("--supervision ", spec, ": '", head, "' takes no value"));
  return c;
}

void print_split(std::ostream& os, const char* what, const data::Split& sp) {
  os << "  " << std::left << std::setw(8) << what << sp.N << " images of " << sp.C << "x" << sp.H
     << "x" << sp.W << (sp.corrupted() ? " float32 observations + masks\n" : " uint8\n");
}

} // namespace

namespace {

/// dmis import's command line, checked.
struct ImportOptions {
  bool help = false;
  std::string which, src, out, spec;
  uint64_t seed = 1, corrupt_seed = 1;
  bool force = false, keep_clean = false;
  data::Corruption corruption;
};

ImportOptions parse_import_options(const Args& args) {
  ImportOptions o;
  std::string corrupt_spec;
  bool seed_given = false, corrupt_seed_given = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&]() -> const std::string& { return option_value(args, i); };
    if (a == "--help" || a == "-h") {
      o.help = true;
      return o;
    } else if (a == "--src") {
      o.src = value();
    } else if (a == "--out") {
      o.out = value();
    } else if (a == "--supervision") {
      o.spec = value();
    } else if (a == "--seed") {
      o.seed = parse_seed(a, value());
      seed_given = true;
    } else if (a == "--corrupt") {
      corrupt_spec = value();
    } else if (a == "--corrupt-seed") {
      o.corrupt_seed = parse_seed(a, value());
      corrupt_seed_given = true;
    } else if (a == "--keep-clean") {
      o.keep_clean = true;
    } else if (a == "--force") {
      o.force = true;
    } else if (!a.empty() && a[0] == '-') {
      throw UsageError(cat("unknown option '", a, "'"));
    } else if (o.which.empty()) {
      o.which = a;
    } else {
      throw UsageError(cat("one dataset at a time: '", o.which, "' and '", a, "'"));
    }
  }
  if (o.which.empty())
    throw UsageError("which dataset? fmnist or cifar10");
  if (o.which != "fmnist" && o.which != "fashion-mnist" && o.which != "cifar10")
    throw UsageError(cat("unknown dataset '", o.which, "' (known: fmnist, cifar10)"));
  if (o.out.empty())
    throw UsageError("--out FILE is required");
  check_output_file("--out", o.out);
  if (o.which == "cifar10" && o.src.empty())
    throw UsageError("cifar10 needs --src DIR (the unpacked binary version, cifar-10-batches-bin)");
  if (seed_given && o.spec.empty())
    throw UsageError("--seed goes with --supervision");
  if ((corrupt_seed_given || o.keep_clean) && corrupt_spec.empty())
    throw UsageError(cat(corrupt_seed_given ? "--corrupt-seed" : "--keep-clean",
                         " goes with --corrupt"));
  if (!corrupt_spec.empty())
    o.corruption = data::parse_corruption(corrupt_spec);
  return o;
}

/// The training images replaced by observations and masks through the corruption channel
/// (the clean images kept beside them with --keep-clean).
void corrupt_training_images(data::Dataset& ds, const ImportOptions& o) {
  data::Split& tr = ds.train;
  data::corrupt_images(o.corruption, o.corrupt_seed, tr.N, tr.C, tr.H, tr.W, tr.images,
                       tr.observations, tr.masks);
  tr.corruption = o.corruption.spec();
  tr.corruption_seed = o.corrupt_seed;
  if (o.keep_clean)
    tr.clean_images = std::move(tr.images);
  tr.images.clear();
  tr.images.shrink_to_fit();
  ds.source += cat("; training images corrupted: ", tr.corruption, " (seed ", o.corrupt_seed, ")");
}

/// What was written: the splits, the label histogram (observed, and clean when kept), the
/// candidate sets, the supervision and the corruption.
std::string import_summary(const data::Dataset& ds, const ImportOptions& o, const std::string& sup_summary) {
  std::ostringstream os;
  os << "wrote " << o.out << " (" << ds.name << ", from " << o.src << ")\n";
  print_split(os, "train", ds.train);
  if (ds.has_test)
    print_split(os, "test", ds.test);
  os << "  classes " << ds.classes << "\n";
  const auto hist = data::label_histogram(ds.train.labels, ds.classes);
  const bool with_clean = !ds.train.clean_labels.empty();
  const auto clean_hist = data::label_histogram(ds.train.clean_labels, ds.classes);
  os << "  training labels:  class" << std::string(11, ' ') << "observed"
     << (with_clean ? "     clean" : "") << "\n";
  for (int k = 0; k < ds.classes; ++k) {
    os << "    " << std::right << std::setw(3) << k << "  " << std::left << std::setw(18)
       << ds.class_names[k] << std::right << std::setw(10) << hist[k];
    if (with_clean)
      os << std::setw(10) << clean_hist[k];
    os << "\n";
  }
  long none = 0;
  for (int32_t y : ds.train.labels)
    none += y < 0 ? 1 : 0;
  if (none > 0)
    os << "    " << std::setw(3) << "-"
       << "  " << std::left << std::setw(18) << "(none)" << std::right << std::setw(10) << none
       << "\n";
  if (!ds.train.candidates.empty()) {
    double total = 0;
    for (uint8_t c : ds.train.candidates)
      total += c;
    os << "  candidate sets: mean size " << std::fixed << std::setprecision(3) << total / ds.train.N
       << "\n";
  }
  if (!sup_summary.empty())
    os << "  supervision: " << sup_summary << "\n";
  if (ds.train.corrupted()) {
    double seen = 0;
    for (uint8_t m : ds.train.masks)
      seen += m;
    os << "  corruption: " << ds.train.corruption << " (seed " << ds.train.corruption_seed
       << "), pixels observed " << std::fixed << std::setprecision(4)
       << seen / static_cast<double>(ds.train.masks.size()) << " (expected "
       << o.corruption.observed_fraction(ds.train.H, ds.train.W) << ")"
       << (ds.train.clean_images.empty() ? "" : "; clean images kept in /train/clean_images")
       << "\n";
  }
  return os.str();
}

} // namespace

int cmd_import(const Args& args) {
  ImportOptions o = parse_import_options(args);
  if (o.help) {
    std::cout << kImportHelp;
    return 0;
  }
  data::SupervisionConfig config;
  if (!o.spec.empty())
    config = parse_supervision(o.spec);
  config.seed = o.seed;
  if (fs::exists(o.out) && !o.force)
    throw InputError(cat("'", o.out, "' exists; pass --force to overwrite it"));
  if (o.src.empty())
    o.src = data::kDebianFashionMnistDir;

  data::Dataset ds =
      o.which == "cifar10" ? data::import_cifar10(o.src) : data::import_fashion_mnist(o.src);
  std::string sup_summary;
  if (!o.spec.empty()) {
    config.dataset_name = ds.name;
    const std::vector<int32_t> clean = ds.train.labels;
    const data::Supervision sup = data::generate_supervision(clean, ds.classes, config);
    data::apply_to_split(sup, clean, ds.train);
    ds.source += cat("; training labels: ", data::summary(sup));
    sup_summary = data::summary(sup);
  }
  if (!o.corruption.none())
    corrupt_training_images(ds, o);
  if (dist::rank() != 0)
    return 0;
  data::write_dataset(o.out, ds);
  std::cout << import_summary(ds, o, sup_summary);
  return 0;
}

} // namespace dmis::cli
