#include "extract_plane.h"

#include <algorithm>

namespace scanline {

void ExtractPlane(const uint16_t* src, int64_t lines, int energies, int pixels, int energy, uint16_t* out) {
  // 64 x 64 blocks keep both the reads and the strided writes in cache.
  constexpr int64_t kBlock = 64;
  for (int64_t l0 = 0; l0 < lines; l0 += kBlock) {
    const int64_t l1 = std::min(lines, l0 + kBlock);
    for (int64_t p0 = 0; p0 < pixels; p0 += kBlock) {
      const int64_t p1 = std::min<int64_t>(pixels, p0 + kBlock);
      for (int64_t l = l0; l < l1; ++l) {
        const uint16_t* row = src + (static_cast<size_t>(l) * energies + energy) * pixels;
        for (int64_t p = p0; p < p1; ++p) out[static_cast<size_t>(p) * lines + l] = row[p];
      }
    }
  }
}

}  // namespace scanline
