#pragma once
// The subcommands of the `dmis` executable. Each takes the arguments after its name and returns
// the process exit code; user errors are thrown as dmis::InputError / UsageError (exit 2).
#include <cstdint>
#include <exception>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace dmis::cli {

using Args = std::vector<std::string>;

/// The value of the option at args[i] (args[i + 1]); moves i onto it. A missing value is a
/// UsageError that names the option.
inline const std::string& option_value(const Args& args, size_t& i) {
  if (i + 1 >= args.size()) throw UsageError(cat(args[i], " needs a value"));
  return args[++i];
}

/// An integer >= 0 given to option `opt` (a seed); anything else is a UsageError naming both.
inline uint64_t parse_seed(const std::string& opt, const std::string& v) {
  size_t used = 0;
  uint64_t seed = 0;
  try {
    if (!v.empty() && v[0] != '-') seed = std::stoull(v, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != v.size() || v.empty())
    throw UsageError(cat(opt, " expects an integer >= 0, found '", v, "'"));
  return seed;
}

/// An output file named by option `opt` must be a file name in an existing folder: checked
/// before any work, so that a bad path fails at once and replaces nothing.
inline void check_output_file(const std::string& opt, const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (path.empty()) throw UsageError(cat(opt, " needs a file name, found ''"));
  if (path.back() == '/' || fs::is_directory(path, ec))
    throw UsageError(cat(opt, " '", path, "': is a folder; expected a file name in it"));
  const fs::path parent = fs::path(path).parent_path();
  if (!parent.empty() && !fs::is_directory(parent, ec))
    throw UsageError(cat(opt, " '", path, "': the folder '", parent.string(), "' does not exist"));
}

struct Command {
  const char* name;
  const char* summary;
  const char* usage;  // the arguments, e.g. "[--preset NAME]"
  int (*run)(const Args& args);
};

int cmd_info(const Args& args);
int cmd_check_deck(const Args& args);
int cmd_import(const Args& args);
int cmd_train(const Args& args);
int cmd_sample(const Args& args);
int cmd_classify(const Args& args);
int cmd_eval(const Args& args);
int cmd_condense(const Args& args);

/// Every subcommand, in the order `dmis --help` lists them.
const std::vector<Command>& commands();

/// "usage: dmis <command> ..." with the list of commands.
std::string usage();

}  // namespace dmis::cli
