#pragma once
// DiffEM's own keys (diffem.*, and the E-step sampler's sample.* levels), resolved once by
// make_plan for method.name diffem (the laps themselves: src/train/diffem.cpp).
#include <array>
#include <cstdint>
#include <string>

#include "deck/deck.hpp"
#include "diffusion/sampler.hpp"
#include "methods/method_choices.hpp"
#include "train/ppca.hpp"

namespace dmis::train {
/// diffem.start: lap 0's reconstructions.
enum class DiffemStart { Mean, Observation, Ppca, PpcaMean };
}  // namespace dmis::train

namespace dmis::methods {
template <>
struct Choices<train::DiffemStart> {
  static constexpr std::array<const char*, 4> names{"mean", "observation", "ppca", "ppca_mean"};
};
}  // namespace dmis::methods

namespace dmis::train {

struct DiffemPlan {
  int laps = 3;
  long lap_steps = 1;  // M-step steps per lap
  DiffemStart start = DiffemStart::Mean;
  PpcaConfig ppca;
  int sample_batch = 100;
  diffusion::SamplerConfig sampler;
  double final_kimg = 0;  // the final model's length (0: the deck's train length)
  deck::KeyRef start_key;  // diffem.start, for the checks that need the data
  std::string reconstructions;  // the last laps' reconstructions: the final model's data
  // the final model's record (deck.yaml, the checkpoints' deck): the deck with method.name
  // vanilla on the reconstructions, run.resume none ([0], a fresh start) or latest ([1])
  std::array<std::string, 2> final_record;
  bool ppca_start() const { return start == DiffemStart::Ppca || start == DiffemStart::PpcaMean; }
};

/// diffem.* of `d` for a run of global batch `batch` and seed `seed` in `run_dir`.
DiffemPlan plan_diffem(const deck::Deck& d, int batch, uint64_t seed, const std::string& run_dir);

}  // namespace dmis::train
