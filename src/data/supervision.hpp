#pragma once
// Imprecise supervision (spec/method.md section 2): noisy labels, partial (candidate-set) labels
// and supplementary-unlabeled data, either read from the dataset file (the user's own labels) or
// generated from clean labels with the project's Philox stream rng::kCorruption, keyed by the
// seed and the sample index (host-side: it runs once per run). The result is saved with the run
// (write_supervision), so that a run can be audited and repeated.
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.hpp"

namespace dmis::data {

enum class SupervisionKind { Clean, Noisy, Partial, Unlabeled };

/// "clean", "noisy", "partial", "unlabeled".
const char* kind_name(SupervisionKind kind);
/// The inverse of kind_name; InputError listing the kinds otherwise.
SupervisionKind parse_kind(const std::string& name);

struct SupervisionConfig {
  SupervisionKind kind = SupervisionKind::Clean;
  std::string noise = "symmetric"; // noisy: symmetric | asymmetric
  double rate = 0.4;               // noisy: probability that a label is corrupted
  std::string partial = "random";  // partial: random | class50
  double q = 0.5;                  // partial random: probability that a wrong class joins
  double labeled_fraction = 0.1;   // unlabeled: class-balanced fraction that keeps its label
  uint64_t seed = 1;
  std::string dataset_name; // picks the asymmetric class map
  /// Asymmetric noise: class_map[c] = the class c turns into (c or -1: c is never changed).
  /// Empty: the map of dataset_name (fashion-mnist, cifar10).
  std::vector<int> class_map;
};

struct SupervisionStats {
  double noise_rate = 0;       // fraction of labelled samples with observed != clean (NaN: unknown)
  double mean_candidates = 0;  // mean candidate-set size
  double labeled_fraction = 0; // fraction of samples with supervision
  double true_label_in_candidates = 0; // fraction whose set holds the clean label (NaN: unknown)
};

struct Supervision {
  SupervisionKind kind = SupervisionKind::Clean;
  int N = 0, K = 0;
  /// (N) the observed label: the clean or noisy label; for unlabelled samples and for partial
  /// labels (the candidate set is the observation) -1.
  std::vector<int32_t> observed;
  /// (N, K) the candidate set of every sample: partial = the set; clean, noisy and labelled =
  /// one-hot of the observed label; unlabelled = all ones.
  std::vector<uint8_t> candidates;
  std::vector<uint8_t> labeled; // (N) 1 = the sample has supervision (0: unlabelled)
  SupervisionStats stats;
  SupervisionConfig config;
  std::string source; // "generated" or "dataset"
};

/// The asymmetric class map of a dataset (by name: fashion-mnist, cifar10), K entries; throws
/// InputError for other datasets.
std::vector<int> asymmetric_class_map(const std::string& dataset_name, int K);

/// Generates supervision of config.kind from clean labels in [0, K). Deterministic in
/// (config, clean): the same on every machine and thread count.
Supervision generate_supervision(const std::vector<int32_t>& clean, int K,
                                 const SupervisionConfig& config);

/// The user's own imprecise labels from a dataset split: noisy (or clean) labels from /labels,
/// candidate sets from /candidates, missing labels from /unlabeled. Statistics against
/// /clean_labels when the split has it. InputError naming what is missing.
Supervision supervision_from_split(const Split& split, int K, SupervisionKind kind);

/// Writes the supervision into a split as a user would: /labels = observed, /candidates
/// (partial), /unlabeled (unlabelled kind); `clean` (if not empty) becomes /clean_labels.
void apply_to_split(const Supervision& sup, const std::vector<int32_t>& clean, Split& split);

/// Recomputes sup.stats (against `clean` when not empty).
void compute_stats(Supervision& sup, const std::vector<int32_t>& clean);

/// One human-readable paragraph: kind, parameters, actual noise rate, mean candidate-set size,
/// labelled fraction.
std::string summary(const Supervision& sup);

inline constexpr const char* kSupervisionFormat = "dmis-supervision";
inline constexpr int kSupervisionFormatVersion = 1;

/// HDF5, self-describing: /observed (N) int32, /candidates (N, K) uint8, /labeled (N) uint8;
/// root attributes format, format_version, kind, source, N, K, summary; /config and /stats
/// attributes with every field. Written to `path`.tmp, then renamed.
void write_supervision(const std::string& path, const Supervision& sup);
Supervision read_supervision(const std::string& path);

} // namespace dmis::data
