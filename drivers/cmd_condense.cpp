// `dmis condense`: noisy dataset condensation (DMIS Table 3; spec/method.md section 6). From a
// model, generate IPC images per class, train the evaluator architecture on them only, and
// report its accuracy on the real test set, mean and standard deviation over seeds.
#include <Kokkos_Core.hpp>
#include <cmath>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "commands.hpp"
#include "core/error.hpp"
#include "dist/comm.hpp"
#include "eval/image_classifier.hpp"
#include "eval_common.hpp"
#include "generate.hpp"
#include "model_source.hpp"

namespace dmis::cli {

namespace {
using Exec = Kokkos::DefaultExecutionSpace;

const char* kHelp =
    "usage: dmis condense DECK|CHECKPOINT [--ipc 1,10,50,100] [--seeds N] [--epochs E]\n"
    "                     [--min-steps S] [--data FILE] [--test-limit N] [--json FILE]\n"
    "                     [--set key=value ...]\n"
    "\n"
    "Noisy dataset condensation (DMIS, Table 3): for each IPC, generate IPC images per class\n"
    "from the model (EMA weights, the deck's sample.* keys, sampler seed = sample.seed + seed),\n"
    "train the evaluator architecture (docs/evaluation.md) on them only, and test it on the\n"
    "real test split. Prints one JSON line per IPC with the accuracy of every seed, the mean and\n"
    "the standard deviation.\n"
    "\n"
    "  --ipc LIST        images per class (default 1,10,50,100)\n"
    "  --seeds N         generations and trainings per IPC (default 3)\n"
    "  --epochs E        passes over the condensed set (default 50), at least --min-steps\n"
    "  --min-steps S     optimizer steps (default 200)\n"
    "  --data FILE       the real test split (default: the deck's data.path)\n"
    "  --test-limit N    test on the first N images only (default: all)\n"
    "  --json FILE       also append the JSON lines to FILE\n";

std::vector<long> parse_list(const std::string& opt, const std::string& v) {
  std::vector<long> out;
  std::stringstream ss(v);
  for (std::string item; std::getline(ss, item, ',');) out.push_back(parse_long(opt, item, 1));
  if (out.empty()) throw UsageError(cat(opt, " expects a list like 1,10,50, found '", v, "'"));
  return out;
}

}  // namespace

int cmd_condense(const Args& args) {
  DeckArgs a = split_deck_args(args);
  std::vector<long> ipcs = {1, 10, 50, 100};
  long seeds = 3, min_steps = 200, test_limit = 0;
  double epochs = 50;
  std::string data_path, json;
  for (size_t i = 0; i < a.rest.size(); ++i) {
    const std::string& r = a.rest[i];
    auto value = [&]() -> const std::string& { return option_value(a.rest, i); };
    if (r == "--help" || r == "-h") {
      std::cout << kHelp;
      return 0;
    } else if (r == "--ipc") {
      ipcs = parse_list(r, value());
    } else if (r == "--seeds") {
      seeds = parse_long(r, value(), 1);
    } else if (r == "--epochs") {
      epochs = parse_double(r, value(), 0);
    } else if (r == "--min-steps") {
      min_steps = parse_long(r, value(), 1);
    } else if (r == "--data") {
      data_path = value();
    } else if (r == "--test-limit") {
      test_limit = parse_long(r, value(), 1);
    } else if (r == "--json") {
      json = value();
    } else {
      throw UsageError(cat("unknown option '", r, "'"));
    }
  }
  const ModelSource m = load_model_source(a);
  if (data_path.empty()) data_path = m.deck.get_string("data.path");
  const int K = m.net.classes;
  std::string labels_used;
  const auto real = load_test_split(data_path, test_limit, K, &labels_used);
  const long base_seed = m.deck.get_int("sample.seed") >= 0 ? m.deck.get_int("sample.seed")
                                                             : m.deck.get_int("run.seed");
  models::EvaluatorConfig cfg;
  cfg.in_channels = m.net.out_channels;
  cfg.resolution = m.net.resolution;
  cfg.classes = K;
  cfg.validate();
  Exec exec;
  const bool root = dist::rank() == 0;
  for (long ipc : ipcs) {
    std::vector<double> acc;
    double gen_seconds = 0, train_seconds = 0;
    for (long s = 0; s < seeds; ++s) {
      const Generation g = generate(m, static_cast<int>(ipc), base_seed + s, "dmis condense");
      gen_seconds += g.seconds;
      if (!root) continue;  // generation is shared over the ranks; training runs on rank 0
      const int N = static_cast<int>(g.labels.size());
      const auto set = eval::upload_images<Exec>(g.images, g.labels, N, cfg.in_channels,
                                                 cfg.resolution, cfg.resolution, K, "generated images");
      eval::TrainOptions opt;
      opt.batch = std::min(128, N);
      opt.steps = std::max(min_steps, eval::steps_for_epochs(epochs, N, opt.batch));
      opt.seed = static_cast<uint64_t>(s);
      opt.flip = false;
      opt.what = cat("condense ipc ", ipc, " seed ", s);
      opt.log_seconds = 30;
      models::Evaluator<Exec, float> net(cfg);
      ParamStore<Exec, float> store(net.table());
      const eval::TrainSummary ts = eval::train_classifier(exec, net, store, set, opt, &std::cerr);
      train_seconds += ts.seconds;
      const eval::Accuracy a_real = eval::classifier_accuracy(
          exec, net, Tensor1<const float, Exec>(store.params.data(), store.size()), real);
      acc.push_back(a_real.overall);
      std::cerr << "dmis condense: ipc " << ipc << " seed " << s << ": test accuracy "
                << std::fixed << std::setprecision(2) << 100 * a_real.overall << " % ("
                << opt.steps << " steps)" << std::endl;
    }
    if (!root) continue;
    double mean = 0, var = 0;
    for (double v : acc) mean += v / acc.size();
    for (double v : acc) var += (v - mean) * (v - mean) / std::max<size_t>(1, acc.size() - 1);
    emit_json(cat("{\"metric\": \"condense\", \"checkpoint\": ", json_string(m.checkpoint),
                  ", \"data\": ", json_string(data_path), ", \"labels\": ", json_string(labels_used),
                  ", \"n_test\": ", real.N, ", \"ipc\": ", ipc, ", \"seeds\": ", seeds,
                  ", \"accuracy\": ", json_array(acc), ", \"mean\": ", json_number(mean),
                  ", \"std\": ", json_number(acc.size() > 1 ? std::sqrt(var) : 0.0),
                  ", \"generate_seconds\": ", json_number(gen_seconds),
                  ", \"train_seconds\": ", json_number(train_seconds), "}"),
              json);
  }
  return 0;
}

}  // namespace dmis::cli
