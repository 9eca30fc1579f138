#include <iostream>

#include "commands.hpp"
#include "core/error.hpp"
#include "deck_args.hpp"
#include "dist/comm.hpp"
#include "train/trainer.hpp"

namespace dmis::cli {

int cmd_check_deck(const Args& args) {
  bool keys = false, markdown = false;
  const DeckArgs a = split_deck_args(args);
  for (const auto& r : a.rest) {
    if (r == "--help" || r == "-h") {
      std::cout << "usage: dmis check-deck DECK [--set key.path=value ...]\n"
                   "       dmis check-deck --keys [--markdown]\n\n"
                   "Validates a deck (its keys, and the checks across keys that `dmis train` makes\n"
                   "before reading the dataset) and prints it resolved (every key, defaults filled in).\n"
                   "Errors name file:line:column, the key, what was expected and what was "
                   "found,\nand exit with status 2. --keys lists every key the decks understand "
                   "(--markdown:\nthe reference in docs/decks.md).\n";
      return 0;
    } else if (r == "--keys") {
      keys = true;
    } else if (r == "--markdown") {
      markdown = true;
    } else {
      throw UsageError(cat("unknown option '", r, "'"));
    }
  }
  if (keys) {
    if (dist::rank() != 0) return 0;
    if (markdown) {
      std::cout << deck::markdown_reference();
    } else {
      for (const auto& k : deck::registry())
        std::cout << k.path << (k.required ? "  (required)" : "") << "\n    " << k.doc << "\n";
    }
    return 0;
  }
  const deck::Deck d = load_deck(a);
  // the plan's checks across keys too (method, schedule, ranks), as `dmis train` makes them
  // before it reads the dataset
  (void)train::make_plan(d);
  if (dist::rank() == 0)
    std::cout << d.resolved_yaml() << "# run directory: " << train::run_directory(d) << "\n# "
              << d.file() << ": valid\n";
  return 0;
}

}  // namespace dmis::cli
