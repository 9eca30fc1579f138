#include "deck/deck.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

namespace dmis::deck {

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

const KeySpec* find_key(const std::string& path) {
  for (const auto& k : registry())
    if (k.path == path) return &k;
  return nullptr;
}

namespace {

std::string type_name(Type t) {
  switch (t) {
    case Type::Int: return "integer";
    case Type::Float: return "number";
    case Type::Bool: return "boolean (true or false)";
    case Type::String: return "string";
    case Type::IntList: return "list of integers";
  }
  return "?";
}

std::string fmt_number(double v) {
  std::ostringstream os;
  if (v == std::floor(v) && std::fabs(v) < 1e15)
    os << static_cast<long long>(v);
  else
    os << v;
  return os.str();
}

// "an integer in [1, 65536]", "one of vanilla, dmis", ...
std::string expectation(const KeySpec& k) {
  std::string s;
  if (!k.choices.empty()) {
    s = "one of ";
    for (size_t i = 0; i < k.choices.size(); ++i) s += (i ? ", " : "") + k.choices[i];
    return s;
  }
  s = (k.type == Type::Int ? "an " : "a ") + type_name(k.type);
  const bool lo = k.min > -1e299, hi = k.max < 1e299;
  if (k.type == Type::IntList && (lo || hi)) s += " each";
  if (lo && hi)
    s += " in [" + fmt_number(k.min) + ", " + fmt_number(k.max) + "]";
  else if (lo)
    s += " >= " + fmt_number(k.min);
  else if (hi)
    s += " <= " + fmt_number(k.max);
  return s;
}

bool parse_long(const std::string& t, long& v) {
  try {
    size_t used = 0;
    v = std::stol(t, &used);
    return used == t.size();
  } catch (const std::exception&) {
    return false;
  }
}

bool parse_double(const std::string& t, double& v) {
  try {
    size_t used = 0;
    v = std::stod(t, &used);
    return used == t.size() && std::isfinite(v);
  } catch (const std::exception&) {
    return false;
  }
}

bool parse_bool(std::string t, bool& v) {
  std::transform(t.begin(), t.end(), t.begin(), [](unsigned char c) { return std::tolower(c); });
  if (t == "true" || t == "yes" || t == "on") return v = true, true;
  if (t == "false" || t == "no" || t == "off") return v = false, true;
  return false;
}

std::string where_of(const std::string& file, const YAML::Mark& m) {
  if (m.line < 0) return file;
  return file + ":" + std::to_string(m.line + 1) + ":" + std::to_string(m.column + 1);
}

std::string closest(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  return best;
}

// Every key path and every section prefix ("train", "method", ...).
std::vector<std::string> all_paths() {
  std::set<std::string> s;
  for (const auto& k : registry()) {
    s.insert(k.path);
    for (size_t at = k.path.find('.'); at != std::string::npos; at = k.path.find('.', at + 1))
      s.insert(k.path.substr(0, at));
  }
  return {s.begin(), s.end()};
}

bool is_section(const std::string& path) {
  for (const auto& k : registry())
    if (k.path.size() > path.size() && k.path.compare(0, path.size(), path) == 0 &&
        k.path[path.size()] == '.')
      return true;
  return false;
}

// Splits "[1, 2, 3]" or "1,2,3" into items.
// The elements of a list written on a command line, "[a, b]" or "a, b" ("[]": empty), into
// out; "" when well formed, else what is wrong with it.
std::string split_list(std::string t, std::vector<std::string>& out) {
  out.clear();
  auto trim = [](std::string& x) {
    x.erase(0, x.find_first_not_of(" \t"));
    const auto e = x.find_last_not_of(" \t");
    x.erase(e == std::string::npos ? 0 : e + 1);
  };
  trim(t);
  const bool opens = !t.empty() && t.front() == '[', closes = !t.empty() && t.back() == ']';
  if (opens != closes) return opens ? "the '[' is not closed" : "a ']' without its '['";
  if (opens) t = t.substr(1, t.size() - 2);
  trim(t);
  if (t.empty()) return "";
  std::stringstream ss(t + ",");  // the last element ends with a comma too
  std::string item;
  while (std::getline(ss, item, ',')) {
    trim(item);
    if (item.empty()) return "an empty element (a stray comma?)";
    if (item.find_first_of("[]") != std::string::npos) return cat("element '", item, "' is not a number");
    out.push_back(item);
  }
  return "";
}

std::string join_list(const std::vector<std::string>& items) {
  std::string s = "[";
  for (size_t i = 0; i < items.size(); ++i) s += (i ? ", " : "") + items[i];
  return s + "]";
}

}  // namespace

void Deck::assign(const KeySpec& k, const std::string& text, const std::vector<std::string>& items,
                  bool is_list, const std::string& where) {
  auto bad = [&](const std::string& found) {
    throw DeckError(cat(where, ": ", k.path, ": expected ", expectation(k), ", found ", found));
  };
  auto quoted = [](const std::string& s) { return "'" + s + "'"; };
  if (k.type == Type::IntList) {
    if (!is_list) bad(cat(quoted(text), " (write a list, e.g. [1, 2, 2])"));
    for (const auto& it : items) {
      long v = 0;
      if (!parse_long(it, v)) bad(cat("element ", quoted(it)));
      if (v < k.min || v > k.max) bad(cat("element ", v));
    }
  } else {
    if (is_list) bad("a list");
    if (k.type == Type::Int) {
      long v = 0;
      if (!parse_long(text, v)) bad(quoted(text));
      if (v < k.min || v > k.max) bad(std::to_string(v));
    } else if (k.type == Type::Float) {
      double v = 0;
      if (!parse_double(text, v)) bad(quoted(text));
      if (v < k.min || v > k.max) bad(fmt_number(v));
    } else if (k.type == Type::Bool) {
      bool v = false;
      if (!parse_bool(text, v)) bad(quoted(text));
    } else if (!k.choices.empty() &&
               std::find(k.choices.begin(), k.choices.end(), text) == k.choices.end()) {
      const std::string hint = closest(text, k.choices);
      throw DeckError(cat(where, ": ", k.path, ": expected ", expectation(k), ", found ",
                          quoted(text), hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
    }
  }
  Value& v = m_values[k.path];
  v.text = k.type == Type::IntList ? join_list(items) : text;  // a list written as YAML reads it
  v.items = items;
  v.given = true;
  v.where = where;
}

namespace {
void walk(const YAML::Node& node, const std::string& prefix, const std::string& file,
          const std::function<void(const std::string&, const YAML::Node&, const YAML::Node&)>& leaf) {
  // YAML forbids a key twice in one map; yaml-cpp keeps both, and the later would silently win
  std::map<std::string, std::string> seen;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string key = it->first.as<std::string>();
    const std::string path = prefix.empty() ? key : prefix + "." + key;
    const YAML::Node& val = it->second;
    const std::string where = where_of(file, it->first.Mark());
    if (const auto [at, fresh] = seen.emplace(key, where); !fresh)
      throw DeckError(cat(where, ": '", path, "' is given twice (first at ", at->second,
                          "); a deck gives each ", is_section(path) && !find_key(path) ? "section" : "key",
                          " once"));
    if (!find_key(path) && !is_section(path)) {
      const std::string hint = closest(path, all_paths());
      throw DeckError(cat(where, ": unknown key '", path, "'",
                          hint.empty() ? "" : " (did you mean '" + hint + "'?)",
                          "; `dmis check-deck --keys` lists every key"));
    }
    if (is_section(path) && !find_key(path)) {
      if (!val.IsMap())
        throw DeckError(cat(where, ": ", path, ": expected a section (a map of keys), found ",
                            val.IsSequence() ? "a list" : "'" + val.as<std::string>("") + "'"));
      walk(val, path, file, leaf);
    } else {
      leaf(path, it->first, val);
    }
  }
}
}  // namespace

Deck Deck::parse(const std::string& text, const std::string& name,
                 const std::vector<std::string>& overrides) {
  Deck d;
  d.m_file = name;
  for (const auto& k : registry()) {
    Value v;
    v.text = k.fallback;
    if (k.type == Type::IntList) split_list(k.fallback, v.items);
    v.where = name;
    d.m_values[k.path] = v;
  }
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    throw DeckError(cat(where_of(name, e.mark), ": YAML syntax error: ", e.msg));
  }
  if (root.IsNull()) {
    // an empty deck: every key at its default
  } else if (!root.IsMap()) {
    throw DeckError(cat(name, ": expected a map of sections (run:, data:, train:, ...) at the top "
                              "level of the deck"));
  } else {
    // the start of every line, to look at a quoted value where it begins
    std::vector<size_t> line_start{0};
    for (size_t i = 0; i < text.size(); ++i)
      if (text[i] == '\n') line_start.push_back(i + 1);
    walk(root, "", name, [&](const std::string& path, const YAML::Node& key, const YAML::Node& val) {
      const KeySpec& k = *find_key(path);
      const std::string where = where_of(name, key.Mark());
      // a quoted value must end on the line it starts: YAML lets an unclosed quote run on to
      // the end of the file, swallowing the keys after it
      const YAML::Mark vm = val.Mark();
      if (val.IsScalar() && vm.line >= 0 && static_cast<size_t>(vm.line) < line_start.size()) {
        const size_t at = line_start[vm.line] + vm.column;
        const size_t eol = std::min(text.find('\n', at), text.size());
        if (at < text.size() && (text[at] == '"' || text[at] == '\'') &&
            text.find(text[at], at + 1) >= eol)
          throw DeckError(cat(where_of(name, vm), ": ", path, ": the quote ", text[at],
                              " is not closed on its line"));
      }
      if (val.IsMap())
        throw DeckError(cat(where, ": ", path, ": expected ", expectation(k), ", found a map"));
      if (val.IsNull())
        throw DeckError(cat(where, ": ", path, ": expected ", expectation(k), ", found nothing"));
      if (val.IsSequence()) {
        std::vector<std::string> items;
        for (const auto& e : val) {
          if (!e.IsScalar())
            throw DeckError(cat(where, ": ", path, ": expected ", expectation(k),
                                ", found a nested structure"));
          items.push_back(e.as<std::string>());
        }
        std::string flow = "[";
        for (size_t i = 0; i < items.size(); ++i) flow += (i ? ", " : "") + items[i];
        flow += "]";
        d.assign(k, flow, items, true, where);
      } else {
        d.assign(k, val.as<std::string>(), {}, false, where);
      }
    });
  }
  for (const auto& o : overrides) d.set(o);
  for (const auto& k : registry())
    if (k.required && !d.m_values[k.path].given)
      throw DeckError(cat(name, ": missing required key '", k.path, "' (", k.doc, ")"));
  return d;
}

Deck Deck::load(const std::string& path, const std::vector<std::string>& overrides) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw DeckError(cat("deck '", path, "' is a folder; expected a YAML file (e.g. inputs/quickstart.yaml)"));
  std::ifstream f(path);
  if (!f) throw DeckError(cat("cannot read deck '", path, "' (missing or not readable)"));
  std::stringstream ss;
  ss << f.rdbuf();
  return parse(ss.str(), path, overrides);
}

void Deck::set(const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw DeckError(cat("--set '", assignment, "': expected key.path=value"));
  const std::string path = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  const KeySpec* k = find_key(path);
  if (!k) {
    const std::string hint = closest(path, all_paths());
    throw DeckError(cat("--set: unknown key '", path, "'",
                        hint.empty() ? "" : " (did you mean '" + hint + "'?)"));
  }
  const bool is_list = k->type == Type::IntList;
  std::vector<std::string> items;
  if (is_list) {
    const std::string why = split_list(text, items);
    if (!why.empty())
      throw DeckError(cat("--set ", path, ": expected a list like [1, 2, 2], found '", text, "': ", why));
  }
  assign(*k, text, items, is_list, "--set " + path);
}

const Deck::Value& Deck::value(const std::string& path) const {
  auto it = m_values.find(path);
  if (it == m_values.end()) throw Error(cat("internal: deck key '", path, "' is not registered"));
  return it->second;
}

long Deck::get_int(const std::string& path) const {
  long v = 0;
  parse_long(value(path).text, v);
  return v;
}
double Deck::get_float(const std::string& path) const {
  double v = 0;
  parse_double(value(path).text, v);
  return v;
}
bool Deck::get_bool(const std::string& path) const {
  bool v = false;
  parse_bool(value(path).text, v);
  return v;
}
const std::string& Deck::get_string(const std::string& path) const { return value(path).text; }
std::vector<long> Deck::get_ints(const std::string& path) const {
  std::vector<long> out;
  for (const auto& it : value(path).items) {
    long v = 0;
    parse_long(it, v);
    out.push_back(v);
  }
  return out;
}
bool Deck::given(const std::string& path) const { return value(path).given; }
std::string Deck::where(const std::string& path) const { return value(path).where; }

void Deck::fail(const std::string& path, const std::string& message) const { ref(path).fail(message); }

void KeyRef::fail(const std::string& message) const { throw DeckError(cat(where, ": ", key, ": ", message)); }

std::string Deck::resolved_yaml() const {
  std::ostringstream os;
  os << "# resolved deck (" << m_file << "): every key, defaults filled in\n";
  std::string section;
  for (const auto& k : registry()) {
    const auto dot = k.path.find('.');
    const std::string sec = k.path.substr(0, dot), key = k.path.substr(dot + 1);
    if (sec != section) {
      os << sec << ":\n";
      section = sec;
    }
    const Value& v = value(k.path);
    std::string text = v.text;
    if (k.type == Type::String) {
      // quote strings YAML would read as something else
      bool plain = !text.empty() && text.find_first_of(":#{}[],&*!|>'\"%@`") == std::string::npos;
      double d;
      long l;
      bool b;
      if (parse_double(text, d) || parse_long(text, l) || parse_bool(text, b) || text == "null")
        plain = false;
      if (!plain) text = "\"" + text + "\"";
    }
    os << "  " << key << ": " << text << (v.given ? "" : "  # default") << "\n";
  }
  return os.str();
}

std::string markdown_reference() {
  std::ostringstream os;
  os << "# Input deck reference\n\n"
     << "Generated from the key registry (`src/deck/keys.cpp`) by `dmis check-deck --keys "
        "--markdown`;\ndo not edit by hand. A deck is a YAML file of sections; every key below "
        "is optional\nunless marked required. `dmis check-deck DECK` validates a deck and prints "
        "it resolved;\n`--set key.path=value` overrides a key on any command line.\n";
  std::string section;
  for (const auto& k : registry()) {
    const std::string sec = k.path.substr(0, k.path.find('.'));
    if (sec != section) {
      os << "\n## " << sec << "\n\n| key | type | default | allowed | meaning |\n|---|---|---|---|---|\n";
      section = sec;
    }
    std::string allowed;
    if (!k.choices.empty()) {
      for (size_t i = 0; i < k.choices.size(); ++i) allowed += (i ? ", " : "") + k.choices[i];
    } else {
      const bool lo = k.min > -1e299, hi = k.max < 1e299;
      if (lo && hi)
        allowed = "[" + fmt_number(k.min) + ", " + fmt_number(k.max) + "]";
      else if (lo)
        allowed = ">= " + fmt_number(k.min);
      else if (hi)
        allowed = "<= " + fmt_number(k.max);
    }
    const std::string def = k.required ? "**required**"
                            : !k.default_doc.empty() ? k.default_doc
                                                     : (k.fallback.empty() ? "\"\"" : "`" + k.fallback + "`");
    os << "| `" << k.path << "` | " << type_name(k.type) << " | " << def << " | " << allowed
       << " | " << k.doc << " |\n";
  }
  return os.str();
}

}  // namespace dmis::deck
