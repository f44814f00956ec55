#include "extract_plane.h"

#include <algorithm>
#include <string>

#include "config.h"

namespace scanline {

void CheckExtractPlane(int64_t lines, int64_t energies, int64_t pixels, int64_t energy, size_t src_length,
                       size_t out_length) {
  if (lines < 0 || pixels < 1 || pixels > 65536 || energies < 1 || energies > 2 || energy < 0 || energy >= energies) {
    throw StitchError(code::kSliceGeometry,
                      "extractPlane: expected lines >= 0, pixels >= 1, energies 1..2 and energy < energies");
  }
  const size_t need_src = static_cast<size_t>(lines) * energies * pixels;
  const size_t need_out = static_cast<size_t>(lines) * pixels;
  if (src_length < need_src || out_length < need_out) {
    throw StitchError(code::kStitchBuffer, "extractPlane: src needs " + std::to_string(need_src) + " samples and out " +
                                               std::to_string(need_out) + "; received " + std::to_string(src_length) +
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
