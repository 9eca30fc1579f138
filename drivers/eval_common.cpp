#include "eval_common.hpp"

#include <cmath>
#include <fstream>
#include <iostream>
#include <sstream>

#include "core/error.hpp"
#include "data/dataset.hpp"

namespace dmis::cli {

long parse_long(const std::string& option, const std::string& v, long min) {
  long x = 0;
  size_t used = 0;
  try {
    x = std::stol(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || v.empty() || x < min)
    throw UsageError(cat(option, " expects an integer >= ", min, ", found '", v, "'"));
  return x;
}

double parse_double(const std::string& option, const std::string& v, double min_exclusive) {
  double x = 0;
  size_t used = 0;
  try {
    x = std::stod(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || v.empty() || !std::isfinite(x) || !(x > min_exclusive))
    throw UsageError(cat(option, " expects a number > ", min_exclusive, ", found '", v, "'"));
  return x;
}

eval::ImageSet<Kokkos::DefaultExecutionSpace>
load_test_split(const std::string& path, long limit, int classes, std::string* labels_used) {
  const data::Dataset ds = data::read_dataset(path, /*with_test=*/true, /*limit=*/1);
  if (!ds.has_test)
    throw InputError(cat("dataset '", path, "' has no test split (/test/images)"));
  if (ds.classes != classes)
    throw InputError(
        cat("dataset '", path, "' has ", ds.classes, " classes; the evaluator has ", classes));
  const data::Split& sp = ds.test;
  const bool clean = !sp.clean_labels.empty();
  const int N = limit > 0 ? static_cast<int>(std::min<long>(limit, sp.N)) : sp.N;
  std::vector<uint8_t> images(sp.images.begin(),
                              sp.images.begin() + static_cast<size_t>(N) * sp.C * sp.H * sp.W);
  const auto& all = clean ? sp.clean_labels : sp.labels;
  std::vector<int32_t> labels(all.begin(), all.begin() + N);
  if (labels_used)
    *labels_used = clean ? "clean_labels" : "labels";
  return eval::upload_images<Kokkos::DefaultExecutionSpace>(
      images, labels, N, sp.C, sp.H, sp.W, ds.classes,
      cat("dataset '", path, "' /test/", clean ? "clean_labels" : "labels"));
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\')
      out += '\\', out += c;
    else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else
      out += c;
  }
  return out + "\"";
}

std::string json_array(const std::vector<double>& v) {
  std::string out = "[";
  for (size_t i = 0; i < v.size(); ++i)
    out += (i ? ", " : "") + json_number(v[i]);
  return out + "]";
}

void emit_json(const std::string& line, const std::string& path) {
  std::cout << line << std::endl;
  if (path.empty())
    return;
  std::ofstream f(path, std::ios::app);
  if (!f)
    throw InputError(cat("cannot open '", path, "' for appending (--json)"));
  f << line << "\n";
  if (!f)
    throw InputError(cat("cannot write to '", path, "' (--json)"));
}

} // namespace dmis::cli
