#pragma once
// Where `dmis sample` and `dmis classify` take their model from: a checkpoint file (its stored
// deck describes the network), or a deck (the newest EMA snapshot of its run).
#include <Kokkos_Core.hpp>
#include <string>

#include "deck/deck.hpp"
#include "deck_args.hpp"
#include "io/checkpoint.hpp"
#include "models/unet.hpp"

namespace dmis::cli {

struct ModelSource {
  deck::Deck deck;             // the run's deck, with --set overrides applied
  std::string checkpoint;      // the file the weights come from
  io::CheckpointData data;     // its contents
  models::UNetConfig net;      // the network it was written for
  std::string run_dir;         // where outputs go by default
};

/// DECK or CHECKPOINT (.h5) from the arguments.
ModelSource load_model_source(const DeckArgs& a);

/// The model's EMA (use_ema) or raw parameters on the device, in a view named `label`.
Kokkos::View<float*, Kokkos::LayoutRight, Kokkos::DefaultExecutionSpace::memory_space> device_weights(
    const ModelSource& m, bool use_ema, const std::string& label);

}  // namespace dmis::cli
