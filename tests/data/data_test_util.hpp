#pragma once
// Helpers for the data tests: a scratch directory, small synthetic datasets, and checks on the
// text of InputError messages.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <initializer_list>
#include <string>

#include "core/error.hpp"
#include "data/dataset.hpp"

namespace dmis::test {

/// A fresh directory under the system temp dir, removed with everything in it at scope exit.
class ScratchDir {
public:
  explicit ScratchDir(const std::string& tag) {
    namespace fs = std::filesystem;
    m_path = fs::temp_directory_path() / ("dmis-test-" + tag + "-" + std::to_string(::getpid()) +
                                          "-" + std::to_string(counter()++));
    fs::remove_all(m_path);
    fs::create_directories(m_path);
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(m_path, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string file(const std::string& name) const { return (m_path / name).string(); }
  const std::filesystem::path& path() const { return m_path; }

private:
  static int& counter() {
    static int c = 0;
    return c;
  }
  std::filesystem::path m_path;
};

/// The message of the InputError that f throws (a test failure, and "", if it throws none).
inline std::string input_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected an InputError, got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected an InputError, nothing was thrown";
  return "";
}

/// Every piece appears in the message.
inline ::testing::AssertionResult contains_all(const std::string& msg,
                                               std::initializer_list<std::string> pieces) {
  for (const auto& p : pieces)
    if (msg.find(p) == std::string::npos)
      return ::testing::AssertionFailure() << "message lacks \"" << p << "\": " << msg;
  return ::testing::AssertionSuccess();
}

/// A small dataset: N images of C x H x W with pixel (i, c, y, x) = (i * 7 + c * 5 + y * 3 + x)
/// mod 256 and label i mod K.
inline data::Dataset synthetic_dataset(int N, int C, int H, int W, int K, int N_test = 0) {
  data::Dataset ds;
  ds.name = "synthetic";
  ds.source = "tests/data";
  ds.classes = K;
  for (int k = 0; k < K; ++k)
    ds.class_names.push_back("class " + std::to_string(k));
  auto fill = [&](data::Split& sp, int n, const char* name, int offset) {
    sp.name = name;
    sp.N = n;
    sp.C = C;
    sp.H = H;
    sp.W = W;
    for (int i = 0; i < n; ++i) {
      sp.labels.push_back((i + offset) % K);
      for (int c = 0; c < C; ++c)
        for (int y = 0; y < H; ++y)
          for (int x = 0; x < W; ++x)
            sp.images.push_back(static_cast<uint8_t>(((i + offset) * 7 + c * 5 + y * 3 + x) % 256));
    }
  };
  fill(ds.train, N, "train", 0);
  if (N_test > 0) {
    fill(ds.test, N_test, "test", 1);
    ds.has_test = true;
  }
  return ds;
}

} // namespace dmis::test
