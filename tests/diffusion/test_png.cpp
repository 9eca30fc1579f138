// PNG sample grids: layout, value mapping, padding, channels, and errors that name the file and
// leave nothing behind.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include <unistd.h>

#include "core/error.hpp"
#include "io/png.hpp"

namespace {

namespace fs = std::filesystem;
using dmis::InputError;

/// A fresh directory under the system temp dir, removed with everything in it at the end.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) {
    path = fs::temp_directory_path() / (name + "-" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

std::vector<float> random_images(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(-1.2f, 1.2f); // some values outside [-1, 1]: clamped
  std::vector<float> v(n);
  for (auto& x : v)
    x = u(gen);
  return v;
}

/// The mapping the grid promises, written independently: round((clamp(v) + 1) * 127.5).
int expected_byte(float v) {
  const double c = std::min(1.0, std::max(-1.0, double(v)));
  return static_cast<int>(std::floor((c + 1) * 127.5 + 0.5));
}

std::vector<char> file_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<char>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

#if defined(DMIS_HAVE_PNG)

/// Writes N images of C x 5 x 5 as a 2 x 3 grid with pad 2 and checks every pixel read back.
void check_grid(int N, int C, const fs::path& file) {
  const int H = 5, W = 5, rows = 2, cols = 3, pad = 2;
  const auto images = random_images(static_cast<size_t>(N) * C * H * W, 17 + C);
  dmis::png::write_grid(file.string(), images, N, C, H, W, rows, cols, pad);
  int width = 0, height = 0, channels = 0;
  const auto px = dmis::png::read_png(file.string(), width, height, channels);
  ASSERT_EQ(width, cols * W + (cols + 1) * pad);  // 23
  ASSERT_EQ(height, rows * H + (rows + 1) * pad); // 16
  ASSERT_EQ(channels, C);
  ASSERT_EQ(px.size(), static_cast<size_t>(width) * height * C);
  auto at = [&](int y, int x, int c) {
    return int(px[(static_cast<size_t>(y) * width + x) * C + c]);
  };

  // a few positions by hand: image 0's top-left pixel at (2, 2), image 4 (row 1, column 1) at
  // (2 + 7, 2 + 7), padding at the corner, between cells and on the last row
  for (int c = 0; c < C; ++c) {
    EXPECT_EQ(at(2, 2, c), expected_byte(images[c * H * W]));
    if (N > 4) {
      EXPECT_EQ(at(9, 9, c), expected_byte(images[(4 * C + c) * H * W]));
    }
    EXPECT_EQ(at(0, 0, c), 0);
    EXPECT_EQ(at(3, 7, c), 0); // between columns 0 and 1
    EXPECT_EQ(at(8, 4, c), 0); // between rows 0 and 1
    EXPECT_EQ(at(height - 1, width - 1, c), 0);
  }
  // and every pixel: inside a used cell the image, everywhere else black
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < C; ++c) {
        int want = 0;
        const int cy = (y - pad) / (H + pad), iy = (y - pad) % (H + pad);
        const int cx = (x - pad) / (W + pad), ix = (x - pad) % (W + pad);
        const int k = cy * cols + cx;
        if (y >= pad && x >= pad && iy < H && ix < W && cy < rows && cx < cols && k < N)
          want = expected_byte(images[((static_cast<size_t>(k) * C + c) * H + iy) * W + ix]);
        ASSERT_EQ(at(y, x, c), want) << "pixel (" << y << ", " << x << ") channel " << c;
      }
  EXPECT_FALSE(fs::exists(file.string() + ".tmp"));
}

TEST(Png, GrayscaleGrid) {
  TempDir dir("dmis-png-test");
  check_grid(6, 1, dir.path / "gray.png");
}

TEST(Png, RgbGridWithAnEmptyCell) {
  TempDir dir("dmis-png-test");
  check_grid(5, 3, dir.path / "rgb.png");
}

TEST(Png, ExactValuesAtTheEnds) {
  TempDir dir("dmis-png-test");
  const fs::path file = dir.path / "ends.png";
  const std::vector<float> v{-1.f, -0.5f, 0.f, 0.5f, 1.f, 3.f, -3.f, NAN, 0.0039215f};
  dmis::png::write_grid(file.string(), v, 1, 1, 1, 9, 1, 1, 0);
  int w, h, c;
  const auto px = dmis::png::read_png(file.string(), w, h, c);
  ASSERT_EQ(w, 9);
  ASSERT_EQ(h, 1);
  EXPECT_EQ(px, (std::vector<uint8_t>{0, 64, 128, 191, 255, 255, 0, 0, 128}));
}

TEST(Png, ErrorsNameTheFileAndLeaveNothingBehind) {
  TempDir dir("dmis-png-test");
  const auto images = random_images(6 * 25, 3);
  auto expect_error = [](const std::function<void()>& f, const std::string& needle) {
    try {
      f();
      ADD_FAILURE() << "no error (expected one naming " << needle << ")";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  const std::string bad = (dir.path / "no-such-dir" / "grid.png").string();
  expect_error([&] { dmis::png::write_grid(bad, images, 6, 1, 5, 5, 2, 3); }, bad);
  EXPECT_FALSE(fs::exists(bad + ".tmp"));
  EXPECT_FALSE(fs::exists(bad));

  const std::string ok = (dir.path / "grid.png").string();
  expect_error([&] { dmis::png::write_grid(ok, images, 6, 1, 5, 5, 2, 2); }, ok); // 4 < 6
  expect_error([&] { dmis::png::write_grid(ok, images, 3, 2, 5, 5, 2, 3); }, ok); // C = 2
  expect_error([&] { dmis::png::write_grid(ok, images, 5, 1, 5, 5, 2, 3); }, ok); // wrong size
  EXPECT_FALSE(fs::exists(ok));
  EXPECT_FALSE(fs::exists(ok + ".tmp"));

  // a failure while writing does not damage an existing file: block the .tmp with a directory
  dmis::png::write_grid(ok, images, 6, 1, 5, 5, 2, 3);
  const auto before = file_bytes(ok);
  fs::create_directories(ok + ".tmp/blocker");
  expect_error([&] { dmis::png::write_grid(ok, random_images(6 * 25, 4), 6, 1, 5, 5, 2, 3); }, ok);
  EXPECT_EQ(file_bytes(ok), before);
  int w, h, c;
  EXPECT_NO_THROW(dmis::png::read_png(ok, w, h, c));

  expect_error([&] { dmis::png::read_png((dir.path / "missing.png").string(), w, h, c); },
               (dir.path / "missing.png").string());
}

#else

TEST(Png, WithoutLibpngWriteGridSaysSo) {
  const std::vector<float> images(25, 0.f);
  try {
    dmis::png::write_grid("/tmp/dmis-never.png", images, 1, 1, 5, 5, 1, 1);
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("without libpng"), std::string::npos) << e.what();
  }
}

#endif

} // namespace
