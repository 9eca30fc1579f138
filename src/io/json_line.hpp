#pragma once
// One JSON object on one line (a stats.jsonl record), built field by field:
//
//   io::JsonLine j;
//   j.add("step", 100).add("loss", 0.31).add("dmis", true).add("acc", std::nan(""));
//   file << j.str() << "\n";   // {"step": 100, "loss": 0.31, "dmis": true, "acc": null}
//
// Numbers are written with `precision` significant digits (9 by default: a float round-trips);
// a number that is not finite is written as null (JSON has no NaN). Keys are written as given:
// they are the program's own identifiers, never user text.
#include <cmath>
#include <iomanip>
#include <sstream>
#include <string>

namespace dmis::io {

/// A JSON number with `precision` significant digits; null where it is not finite. The one
/// rule for every number this program writes as JSON (stats.jsonl, eval and condense records).
inline std::string json_number(double v, int precision = 9) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream o;
  o << std::setprecision(precision) << v;
  return o.str();
}

class JsonLine {
public:
  JsonLine& add(const char* key, double v, int precision = 9) { return field(key, json_number(v, precision)); }
  JsonLine& add(const char* key, long v) { return field(key, std::to_string(v)); }
  JsonLine& add(const char* key, int v) { return field(key, std::to_string(v)); }
  JsonLine& add(const char* key, bool v) { return field(key, v ? "true" : "false"); }
  std::string str() const { return "{" + m_body + "}"; }

private:
  JsonLine& field(const char* key, const std::string& value) {
    if (!m_body.empty()) m_body += ", ";
    m_body += std::string("\"") + key + "\": " + value;
    return *this;
  }
  std::string m_body;
};

}  // namespace dmis::io
