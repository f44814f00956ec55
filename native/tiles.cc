#include "tiles.h"

#include "simd.h"

namespace scanline {

SCANLINE_INLINE void BlockMeans_body(const float* __restrict sum, float* __restrict mean, int n, int d, float inv) {
  if (d == 1) {
    for (int y = 0; y < n; ++y) mean[y] = sum[y] * inv;
  } else if (d == 2) {
    for (int y = 0; y < n; ++y) mean[y] = (sum[2 * y] + sum[2 * y + 1]) * inv;
  } else if (d == 4) {
    for (int y = 0; y < n; ++y) mean[y] = (sum[4 * y] + sum[4 * y + 1] + sum[4 * y + 2] + sum[4 * y + 3]) * inv;
  } else {
    for (int y = 0; y < n; ++y) {
      float s = 0.0f;
      for (int i = 0; i < d; ++i) s += sum[y * d + i];
      mean[y] = s * inv;
    }
  }
}
SCANLINE_MULTIVERSION(BlockMeans, (const float* sum, float* mean, int n, int d, float inv), (sum, mean, n, d, inv))


std::vector<int> TileRowPixels(int pixels, const TileParams& tile) {
  const int span = tile.size * tile.downsample;
  const int step = span - tile.overlap_pixels;
  std::vector<int> rows;
  if (pixels < span) {
    rows.push_back(0);
    return rows;
  }
  int r = 0;
  for (; r + span <= pixels; r += step) rows.push_back(r);
  if (rows.back() + span < pixels) rows.push_back(pixels - span);
  return rows;
}

}  // namespace scanline
