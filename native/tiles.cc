#include "tiles.h"

namespace scanline {

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
