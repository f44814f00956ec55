#include "extract_plane.h"

#include <algorithm>
#include <cstdint>
#include <string>

#include "config.h"

namespace scanline {

void CheckExtractPlane(int64_t lines, int64_t energies, int64_t pixels, int64_t energy, size_t src_length,
                       size_t out_length) {
  if (lines < 0 || pixels < 1 || pixels > 65536 || energies < 1 || energies > 2 || energy < 0 || energy >= energies) {
    throw StitchError(code::kSliceGeometry,
                      "extractPlane: expected lines >= 0, pixels >= 1, energies 1..2 and energy < energies");
  }
  // lines * energies * pixels exceeds 2^64 for lines near 2^53: the sizes are compared by division, so no product
  // wraps around (2^48 lines of 65536 pixels would otherwise pass with empty arrays).
  const uint64_t src_per_line = static_cast<uint64_t>(energies) * static_cast<uint64_t>(pixels);
  const uint64_t out_per_line = static_cast<uint64_t>(pixels);
  const uint64_t n = static_cast<uint64_t>(lines);
  if (n > src_length / src_per_line || n > out_length / out_per_line) {
    const auto need = [n](uint64_t per_line) {
      return n <= UINT64_MAX / per_line ? std::to_string(n * per_line) : "2^64 or more";
    };
    throw StitchError(code::kStitchBuffer, "extractPlane: src needs " + need(src_per_line) + " samples and out " +
                                               need(out_per_line) + "; received " + std::to_string(src_length) +
                                               " and " + std::to_string(out_length));
  }
}

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
