#pragma once
// Checkpoints in HDF5. A training state holds everything a resumed run needs to continue exactly
// (parameters, Adam moments, EMA, step, images seen, method state, and the resolved deck); an
// EMA snapshot holds only the EMA weights, for sampling and classification. Both store the
// parameter layout, which is checked against the network before anything is loaded. Files are
// written to a temporary name and renamed: a crash never leaves a half-written checkpoint under
// the final name, and never replaces the last good one.
#include <cstdint>
#include <string>
#include <vector>

#include "core/params.hpp"

namespace dmis::io {

struct CheckpointData {
  std::string kind;                  // "training-state" or "ema-snapshot"
  long step = 0;
  double images_seen = 0;
  uint64_t seed = 0;
  std::string deck;                  // the resolved deck of the run (YAML)
  std::string preset;
  ParamTable table;
  std::vector<float> params, adam_m, adam_v, ema;  // flat, table layout (empty if absent)
  std::vector<float> prior;          // method state: class prior (K + 1)
  std::vector<int32_t> prior_counts; // method state: counts of the running epoch
  std::vector<float> transition;     // method state: DMIS noisy-label transition counts (K x K)
  std::vector<float> logit_scale;    // method state: DMIS's calibrated logit scale (1)
  std::vector<float> estep_params;   // method state: DMIS's frozen E-step weights (table layout;
                                     // method.estep_network warmup, once the DMIS terms ran)
};

/// Writes `data` to `path` atomically (path.tmp, then rename).
void write_checkpoint(const std::string& path, const CheckpointData& data);

/// Reads a checkpoint. When `expect` is given, its layout is compared with the stored one first
/// and a difference is an error naming the first differing tensor.
CheckpointData read_checkpoint(const std::string& path, const ParamTable* expect = nullptr);
/// The same comparison for a checkpoint already read from `path` (named in the error).
void check_layout(const CheckpointData& data, const std::string& path, const ParamTable& expect);

/// The complete checkpoints "<prefix>-<step>.h5" in a directory, oldest first.
std::vector<std::string> list_checkpoints(const std::string& dir, const std::string& prefix);

/// "<dir>/<prefix>-<step:08d>.h5".
std::string checkpoint_path(const std::string& dir, const std::string& prefix, long step);

}  // namespace dmis::io
