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

// Means of `d` neighbouring values for y < n: mean[y] = (sum[y*d] + ... + sum[y*d + d - 1]) * inv. Small factors have
// their own loops so they vectorise (AVX2 where the CPU has it).
void BlockMeans(const float* sum, float* mean, int n, int d, float inv);

// Runs on the worker thread. Computes `count` tiles of one column (pixel offsets row_pixels[0..count), increasing);
// tile k is written to out + k * energies * size * size. `column_sum(w)` returns energies * pixels floats: for
// output column w, the per-pixel sum over its `downsample` lines (zeros for padding and gap lines). Each tile then
// sums `downsample` pixels of that. `means` is scratch of energies * ceil(pixels / downsample) floats.
//
// When every tile starts on a block boundary (row pixel a multiple of downsample, as with the default geometry),
// the block means of the whole column are computed once per energy, vectorised, and the tiles (which overlap) copy
// theirs; otherwise each tile sums its own pixels.
template <typename ColumnSum>
void ComputeColumnTiles(const TileParams& tile, int pixels, int energies, const int* row_pixels, int count,
                        float* out, float* means, ColumnSum&& column_sum) {
  const int size = tile.size;
  const int ds = tile.downsample;
  const float scale = 1.0f / static_cast<float>(ds * ds);
  const size_t tile_floats = static_cast<size_t>(energies) * size * size;
  const int full_blocks = pixels / ds;
  const int blocks = (pixels + ds - 1) / ds;
  bool aligned = true;
  for (int k = 0; k < count; ++k) aligned = aligned && row_pixels[k] % ds == 0;
  for (int w = 0; w < size; ++w) {
    const float* sums = column_sum(w);
    if (aligned) {
      for (int e = 0; e < energies; ++e) {
        const float* acc = sums + static_cast<size_t>(e) * pixels;
        float* m = means + static_cast<size_t>(e) * blocks;
        BlockMeans(acc, m, full_blocks, ds, scale);
        if (blocks > full_blocks) {
          // The detector's last, partial block: the pixels that exist, still divided by downsample^2.
          float s = 0.0f;
          for (int p = full_blocks * ds; p < pixels; ++p) s += acc[p];
          m[full_blocks] = s * scale;
        }
      }
      for (int k = 0; k < count; ++k) {
        const int b0 = row_pixels[k] / ds;
        const int on_detector = std::min(size, blocks - b0);
        for (int e = 0; e < energies; ++e) {
          const float* m = means + static_cast<size_t>(e) * blocks + b0;
          float* plane = out + k * tile_floats + static_cast<size_t>(e) * size * size + w;
          for (int h = 0; h < on_detector; ++h) plane[static_cast<size_t>(h) * size] = m[h];
          for (int h = on_detector; h < size; ++h) plane[static_cast<size_t>(h) * size] = 0.0f;
        }
      }
      continue;
    }
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
