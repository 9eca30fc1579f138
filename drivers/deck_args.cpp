#include "deck_args.hpp"

#include "core/error.hpp"

namespace dmis::cli {

DeckArgs split_deck_args(const Args& args) {
  DeckArgs a;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& s = args[i];
    if (s == "--set") {
      if (i + 1 >= args.size()) throw UsageError("--set needs key.path=value");
      a.sets.push_back(args[++i]);
    } else if (s.rfind("--set=", 0) == 0) {
      a.sets.push_back(s.substr(6));
    } else if (!s.empty() && s[0] != '-' && a.deck.empty() &&
               (a.rest.empty() || a.rest.back().rfind("--", 0) != 0 ||
                a.rest.back().find('=') != std::string::npos)) {
      a.deck = s;
    } else {
      a.rest.push_back(s);
    }
  }
  return a;
}

deck::Deck load_deck(const DeckArgs& a) {
  if (a.deck.empty()) throw UsageError("missing the deck file");
  return deck::Deck::load(a.deck, a.sets);
}

}  // namespace dmis::cli
