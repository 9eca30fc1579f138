#include "io/png.hpp"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/error.hpp"
#include "io/atomic_file.hpp"

#if defined(DMIS_HAVE_PNG)
#include <png.h>
#endif

namespace dmis::png {

namespace {

/// v in [-1, 1] to 0..255; out-of-range values are clamped, NaN becomes 0.
uint8_t to_byte(float v) {
  if (!(v >= -1.0f))
    return 0;
  if (v >= 1.0f)
    return 255;
  return static_cast<uint8_t>(std::lround((static_cast<double>(v) + 1.0) * 127.5));
}

} // namespace

void write_grid(const std::string& path, const std::vector<float>& images, int N, int C, int H,
                int W, int rows, int cols, int pad) {
  if (C != 1 && C != 3)
    throw InputError(cat("PNG '", path, "': images must have 1 or 3 channels (found ", C, ")"));
  if (N < 1 || H < 1 || W < 1 || rows < 1 || cols < 1 || pad < 0)
    throw InputError(cat("PNG '", path,
                         "': need N, H, W, rows, cols >= 1 and pad >= 0 (found N=", N, ", H=", H,
                         ", W=", W, ", rows=", rows, ", cols=", cols, ", pad=", pad, ")"));
  if (static_cast<long>(rows) * cols < N)
    throw InputError(
        cat("PNG '", path, "': a ", rows, "x", cols, " grid cannot hold ", N, " images"));
  const size_t per_image = static_cast<size_t>(C) * H * W;
  if (images.size() != static_cast<size_t>(N) * per_image)
    throw InputError(cat("PNG '", path, "': ", images.size(),
                         " values given, expected N*C*H*W = ", static_cast<size_t>(N) * per_image));
#if !defined(DMIS_HAVE_PNG)
  throw InputError(cat("cannot write '", path, "': dmis was built without libpng"));
#else
  const long width = static_cast<long>(cols) * W + static_cast<long>(cols + 1) * pad;
  const long height = static_cast<long>(rows) * H + static_cast<long>(rows + 1) * pad;
  if (width > 1000000 || height > 1000000)
    throw InputError(cat("PNG '", path, "': a ", width, "x", height, " image is too large"));
  std::vector<uint8_t> pixels(static_cast<size_t>(width) * height * C, 0); // black background
  for (int k = 0; k < N; ++k) {
    const long top = pad + static_cast<long>(k / cols) * (H + pad);
    const long left = pad + static_cast<long>(k % cols) * (W + pad);
    const float* img = images.data() + k * per_image; // (C, H, W)
    for (int c = 0; c < C; ++c)
      for (int y = 0; y < H; ++y)
        for (int x = 0; x < W; ++x)
          pixels[((top + y) * width + left + x) * C + c] =
              to_byte(img[(static_cast<size_t>(c) * H + y) * W + x]);
  }

  io::AtomicFile out(path);
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  image.width = static_cast<png_uint_32>(width);
  image.height = static_cast<png_uint_32>(height);
  image.format = C == 1 ? PNG_FORMAT_GRAY : PNG_FORMAT_RGB;
  const int ok = png_image_write_to_file(&image, out.tmp().c_str(), 0, pixels.data(), 0, nullptr);
  const std::string message = image.message;
  png_image_free(&image);
  if (!ok) throw InputError(cat("cannot write PNG '", path, "': ", message));
  out.commit();
#endif
}

std::vector<uint8_t> read_png(const std::string& path, int& width, int& height, int& channels) {
#if !defined(DMIS_HAVE_PNG)
  (void)width, (void)height, (void)channels;
  throw InputError(cat("cannot read '", path, "': dmis was built without libpng"));
#else
  png_image image;
  std::memset(&image, 0, sizeof(image));
  image.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&image, path.c_str())) {
    const std::string message = image.message;
    png_image_free(&image);
    throw InputError(cat("cannot read PNG '", path, "': ", message));
  }
  // keep the file's own channels: gray or RGB, with alpha if it has one; 8 bits each
  image.format &= PNG_FORMAT_FLAG_COLOR | PNG_FORMAT_FLAG_ALPHA;
  std::vector<uint8_t> pixels(PNG_IMAGE_SIZE(image));
  if (!png_image_finish_read(&image, nullptr, pixels.data(), 0, nullptr)) {
    const std::string message = image.message;
    png_image_free(&image);
    throw InputError(cat("cannot read PNG '", path, "': ", message));
  }
  width = static_cast<int>(image.width);
  height = static_cast<int>(image.height);
  channels = static_cast<int>(PNG_IMAGE_PIXEL_CHANNELS(image.format));
  png_image_free(&image);
  return pixels;
#endif
}

} // namespace dmis::png
