// Tile geometry and tile extraction (pure C++, no N-API).
//
// A tile covers span = size * downsample raw lines and pixels and is the block average (by `downsample`, in both
// directions) of the attenuation, NCHW float32: C = energies (high first), H = detector pixel, W = scan line.
// Samples outside the scan (beyond the column's valid lines) or the detector count as 0 (zero padding); the
// average always divides by downsample^2.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "config.h"

namespace scanline {

// Pixel offsets of the tiles of one column: 0, step, 2 step, ... (step = span - overlapPixels) while the tile fits,
// plus pixels - span when the last full tile does not reach the bottom; just {0} when pixels < span.
std::vector<int> TileRowPixels(int pixels, const TileParams& tile);

struct TileSpec {
  int64_t line;         // first raw line
  int pixel;            // first raw pixel
  int64_t valid_lines;  // lines [line, line + valid_lines) hold data, the rest of the span is zero padding
};

// Runs on the worker thread. Computes `count` tiles of one column (pixel offsets row_pixels[0..count), increasing);
// tile k is written to out + k * energies * size * size. `column_sum(w)` returns energies * pixels floats: for
// output column w, the per-pixel sum over its `downsample` lines (zeros for padding and gap lines). Each tile then
// sums `downsample` pixels of that.
template <typename ColumnSum>
void ComputeColumnTiles(const TileParams& tile, int pixels, int energies, const int* row_pixels, int count,
                        float* out, ColumnSum&& column_sum) {
  const int size = tile.size;
  const int ds = tile.downsample;
  const float scale = 1.0f / static_cast<float>(ds * ds);
  const size_t tile_floats = static_cast<size_t>(energies) * size * size;
  for (int w = 0; w < size; ++w) {
    const float* sums = column_sum(w);
    for (int k = 0; k < count; ++k) {
      const int r = row_pixels[k];
      // Output rows h < full lie entirely on the detector; the others are (partly) zero padding.
      const int full = std::min(size, std::max(0, (pixels - r) / ds));
      for (int e = 0; e < energies; ++e) {
        const float* acc = sums + static_cast<size_t>(e) * pixels + r;
        float* plane = out + k * tile_floats + static_cast<size_t>(e) * size * size;
        for (int h = 0; h < full; ++h) {
          float s = 0.0f;
          for (int i = 0; i < ds; ++i) s += acc[h * ds + i];
          plane[static_cast<size_t>(h) * size + w] = s * scale;
        }
        for (int h = full; h < size; ++h) {
          float s = 0.0f;
          for (int i = 0; i < ds; ++i) {
            if (r + h * ds + i < pixels) s += acc[h * ds + i];
          }
          plane[static_cast<size_t>(h) * size + w] = s * scale;
        }
      }
    }
  }
}

}  // namespace scanline
