#pragma once
// Class-conditional generation from a model source (a checkpoint or a deck's newest EMA
// snapshot) with the deck's sample.* keys: what `dmis sample` writes and what `dmis condense`
// trains on. Ambient models get the fixed-mask sampler. The images are shared over the ranks and
// gathered on rank 0.
#include <cstdint>
#include <string>
#include <vector>

#include "diffusion/sampler.hpp"
#include "model_source.hpp"

namespace dmis::cli {

struct Generation {
  int per_class = 0;
  std::vector<float> images;    // (K * per_class, C, R, R) in [-1, 1], class-major; rank 0 only
  std::vector<int32_t> labels;  // (K * per_class)
  size_t clipped = 0;           // values outside [-1, 1] before clipping (all ranks)
  diffusion::SamplerConfig sampler;
  bool use_ema = true;
  double seconds = 0;
};

/// per_class images of every class; `seed` >= 0 replaces the sampler seed (sample.seed, or
/// run.seed). Progress lines go to stdout on rank 0, prefixed by `who`.
Generation generate(const ModelSource& m, int per_class, long seed, const std::string& who);

}  // namespace dmis::cli
