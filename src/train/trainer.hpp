#pragma once
// `dmis train`: a run from a deck. Resolves the deck into a plan (every cross-key check names
// the key and its location), prepares the run directory, the data and the supervision, then
// trains with progress lines, stats.jsonl and atomic checkpoints; `run.resume: latest`
// continues exactly where the last complete checkpoint left off.
#include <cstdint>
#include <optional>
#include <string>

#include "data/supervision.hpp"
#include "deck/deck.hpp"
#include "kernels/mixed_gemm.hpp"
#include "methods/method_step.hpp"
#include "models/unet.hpp"
#include "train/diffem_plan.hpp"
#include "train/run_files.hpp"

namespace dmis::train {

/// A deck resolved once (make_plan): nothing after it reads deck keys or compares names.
struct RunPlan {
  std::string deck_file, name, out_dir, run_dir;
  Resume resume;  // run.resume
  std::string deck_text;  // the resolved deck, written to deck.yaml and into checkpoints
  uint64_t seed = 1;
  long log_every = 50, checkpoint_every = 500, keep = 2;
  std::string data_path;
  size_t train_limit = 0, test_limit = 0;
  double labeled_share = 0;  // data.labeled_share
  data::SupervisionConfig supervision;
  bool supervision_from_dataset = false;  // supervision.source: dataset (else generated)
  // the network: preset plus overrides; classes (and the checks) once the data is read
  // (resolve_network)
  models::UNetConfig net;
  models::InitScheme init = models::InitScheme::Adm;
  methods::TrainStepConfig step;
  methods::MethodConfig method;
  int batch = 64;
  long steps = 0;
  double conv_scratch_mb = 0;
  kernels::GemmPrecision precision = kernels::GemmPrecision::FP32;  // train.precision
  std::optional<DiffemPlan> diffem;  // method.name diffem: its laps
  // where the keys of the checks that need the data (or the run directory) are
  deck::KeyRef precision_key, preset_key, transition_key, resume_key, method_key, labeled_share_key;
};

/// The network a deck describes (preset plus overrides), for `classes` classes.
models::UNetConfig network_from_deck(const deck::Deck& d, int classes);

/// `net` for `classes` classes, checked (the levels, the GroupNorm divisibility of every
/// layer); a DeckError at `preset_key` where it does not hold.
models::UNetConfig resolve_network(models::UNetConfig net, int classes, const deck::KeyRef& preset_key);

/// Everything a run needs, from a validated deck. Throws DeckError located at the key.
RunPlan make_plan(const deck::Deck& d);

/// Runs (or resumes) the training described by the deck; returns the exit code. A pipeline in
/// one direction: method.name diffem runs its EM laps (diffem_laps), then the final model from
/// the plan they return; every other method is one run (train_run).
int train(const deck::Deck& d);

/// One training run of vanilla, dmis or ambient from its plan (not diffem: see train).
int train_run(RunPlan plan);

/// DiffEM (src/train/diffem.cpp): the EM laps of a posterior denoiser on corrupted images, into
/// the run directory's diffem/ (resumed after the last finished lap), for a plan with `diffem`.
/// Returns the final model's plan: vanilla on the last reconstructions, in the
/// same run directory (its record, deck.yaml and the checkpoints' deck, says so).
RunPlan diffem_laps(const RunPlan& plan);

/// The run directory a deck's run writes to: run.out_dir / (run.name or the deck's stem).
std::string run_directory(const deck::Deck& d);

}  // namespace dmis::train
