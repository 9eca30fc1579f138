#pragma once
// Shared by `dmis eval` and `dmis condense`: option parsing helpers, the real test split as an
// ImageSet, and JSON output.
#include <string>
#include <vector>

#include "eval/image_classifier.hpp"
#include "io/json_line.hpp"

namespace dmis::cli {

/// An integer / a number from an option value; UsageError naming the option otherwise.
long parse_long(const std::string& option, const std::string& v, long min);
double parse_double(const std::string& option, const std::string& v, double min_exclusive);

/// The test split of a dataset file (clean_labels when present), at most `limit` images
/// (0 = all), on the device. `labels_used` says which labels were taken.
eval::ImageSet<Kokkos::DefaultExecutionSpace>
load_test_split(const std::string& path, long limit, int classes, std::string* labels_used);

/// A JSON number of an eval or condense record: 8 significant digits (null for NaN or infinity).
inline std::string json_number(double v) { return io::json_number(v, 8); }
/// A JSON string literal.
std::string json_string(const std::string& s);
/// [a, b, ...] of numbers.
std::string json_array(const std::vector<double>& v);

/// Prints one JSON line to stdout and, when `path` is not empty, appends it to that file.
void emit_json(const std::string& line, const std::string& path);

} // namespace dmis::cli
