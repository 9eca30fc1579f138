#pragma once
// Why a write to a file failed, in words a user can act on: a full file system says so (neither
// HDF5 nor the C++ streams do), otherwise the last errno.
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "core/error.hpp"

namespace dmis {

inline std::string write_failure_cause(const std::string& path) {
  const int err = errno;
  std::error_code ec;
  const auto parent = std::filesystem::absolute(path, ec).parent_path();
  const auto space = std::filesystem::space(parent, ec);
  if (!ec && space.available < (1u << 20))
    return cat("no space left on device (", space.available, " bytes free in '", parent.string(), "')");
  return err ? std::string(std::strerror(err)) : std::string("an I/O error");
}

}  // namespace dmis
