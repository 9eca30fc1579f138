#include <iostream>

#include "commands.hpp"
#include "core/error.hpp"
#include "deck_args.hpp"
#include "train/trainer.hpp"

namespace dmis::cli {

int cmd_train(const Args& args) {
  const DeckArgs a = split_deck_args(args);
  for (const auto& r : a.rest) {
    if (r == "--help" || r == "-h") {
      std::cout
          << "usage: dmis train DECK [--set key.path=value ...]\n\n"
             "Trains the method of the deck (vanilla or dmis) on its dataset and supervision.\n"
             "Writes into run.out_dir/run.name: deck.yaml (resolved), log.txt, stats.jsonl,\n"
             "supervision.h5, checkpoints ckpt-<step>.h5 (full state) and ema-<step>.h5 (EMA\n"
             "weights for sampling). run.resume: latest continues a run exactly.\n"
             "See docs/decks.md for every key.\n";
      return 0;
    }
    throw UsageError(cat("unknown option '", r, "'"));
  }
  return train::train(load_deck(a));
}

}  // namespace dmis::cli
