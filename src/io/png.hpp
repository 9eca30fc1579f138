#pragma once
// Sample grids as 8-bit PNG files (libpng). Without libpng at build time (DMIS_HAVE_PNG not
// defined) the functions throw InputError saying so.
#include <cstdint>
#include <string>
#include <vector>

namespace dmis::png {

/// Writes N images (N, C, H, W) in [-1, 1] (host memory) as a grid of rows x cols cells, filled
/// row-major, with `pad` black pixels around and between cells: grayscale for C = 1, RGB for
/// C = 3. A value v becomes round((clamp(v, -1, 1) + 1) * 127.5). The file is written to
/// path + ".tmp" and renamed, so a failure never damages an existing file. Throws InputError
/// naming the file for an unwritable path, and for wrong sizes (C not 1 or 3, rows * cols < N,
/// images.size() != N C H W).
void write_grid(const std::string& path, const std::vector<float>& images, int N, int C, int H,
                int W, int rows, int cols, int pad = 2);

/// Reads an 8-bit grayscale, gray+alpha, RGB or RGBA PNG as interleaved bytes, row by row
/// (height x width x channels). Throws InputError naming the file if it cannot be read.
std::vector<uint8_t> read_png(const std::string& path, int& width, int& height, int& channels);

} // namespace dmis::png
