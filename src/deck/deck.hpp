#pragma once
// Input decks (YAML). One registry of keys (type, default, range or choices, one line of doc)
// feeds the validator, `dmis check-deck`, and the reference in docs/decks.md. Errors name the
// file, line and column, the key path, what was expected and what was found; unknown keys are
// rejected with a suggestion.
#include <map>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace dmis::deck {

enum class Type { Int, Float, Bool, String, IntList };

struct KeySpec {
  std::string path;           // "train.batch"
  Type type = Type::String;
  std::string fallback;       // default, as YAML text; "" with `required` = must be given
  bool required = false;
  double min = -1e300, max = 1e300;  // inclusive range for numbers (and list elements)
  std::vector<std::string> choices;  // allowed values of a string key (empty: any)
  std::string doc;
  std::string default_doc;    // how the default reads in the docs when it is not a plain value
};

/// All keys dmis understands, in the order the reference lists them.
const std::vector<KeySpec>& registry();
const KeySpec* find_key(const std::string& path);
/// docs/decks.md: every key with type, default, allowed values and doc.
std::string markdown_reference();

/// A user-input error in a deck (exit 2).
class DeckError : public InputError {
public:
  explicit DeckError(const std::string& what) : InputError(what) {}
};

/// A key's place in its deck, kept by a plan for the checks that need the data first (the
/// network against the images, the noise transition of the supervision): errors from those
/// read like Deck::fail's, without the deck.
struct KeyRef {
  std::string key, where;
  /// A DeckError "where: key: message".
  [[noreturn]] void fail(const std::string& message) const;
};

/// A loaded, validated deck: every registry key has a value (given or default).
class Deck {
public:
  Deck() = default;  // empty: no keys (use load or parse)
  /// Parses and validates a YAML file, then applies the overrides ("key.path=value", as given
  /// by --set) before checking required keys; throws DeckError.
  static Deck load(const std::string& path, const std::vector<std::string>& overrides = {});
  /// Same from text (tests); `name` stands in for the file name in messages.
  static Deck parse(const std::string& text, const std::string& name,
                    const std::vector<std::string>& overrides = {});

  /// Applies an override "key.path=value" (command line --set), validated like the file.
  void set(const std::string& assignment);

  long get_int(const std::string& path) const;
  double get_float(const std::string& path) const;
  bool get_bool(const std::string& path) const;
  const std::string& get_string(const std::string& path) const;
  std::vector<long> get_ints(const std::string& path) const;
  /// True when the deck (or --set) gave the key, false when it holds the default.
  bool given(const std::string& path) const;
  /// "file:line:col" of a given key, or the file name for defaults and overrides.
  std::string where(const std::string& path) const;
  /// A DeckError for a cross-key check, located at `path`.
  [[noreturn]] void fail(const std::string& path, const std::string& message) const;
  /// `path` and its location, for a later fail.
  KeyRef ref(const std::string& path) const { return KeyRef{path, where(path)}; }

  const std::string& file() const { return m_file; }
  /// The resolved deck as YAML (every key, defaults filled), grouped by section.
  std::string resolved_yaml() const;

private:
  struct Value {
    std::string text;        // scalar text, or flow list "[1, 2]"
    std::vector<std::string> items;  // list elements
    bool given = false;
    std::string where;
  };
  void assign(const KeySpec& spec, const std::string& text, const std::vector<std::string>& items,
              bool is_list, const std::string& where);
  const Value& value(const std::string& path) const;

  std::string m_file;
  std::map<std::string, Value> m_values;
};

/// Levenshtein distance (for "did you mean").
size_t edit_distance(const std::string& a, const std::string& b);

}  // namespace dmis::deck
