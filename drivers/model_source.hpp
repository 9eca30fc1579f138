#pragma once
// Where `dmis sample` and `dmis classify` take their model from: a checkpoint file (its stored
// deck describes the network), or a deck (the newest EMA snapshot of its run).
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

}  // namespace dmis::cli
