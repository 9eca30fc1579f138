#pragma once
// Deck arguments shared by the commands that take a deck: DECK [--set key=value ...].
#include <string>
#include <vector>

#include "commands.hpp"
#include "deck/deck.hpp"

namespace dmis::cli {

struct DeckArgs {
  std::string deck;                 // the deck file ("" if none was given)
  std::vector<std::string> sets;    // "key=value" overrides, in order
  std::vector<std::string> rest;    // other arguments, for the command to parse
};

/// Splits DECK, --set k=v (or --set=k=v) and the rest.
DeckArgs split_deck_args(const Args& args);

/// Loads the deck and applies the overrides.
deck::Deck load_deck(const DeckArgs& a);

}  // namespace dmis::cli
