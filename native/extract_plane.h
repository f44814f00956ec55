// Transposes one energy of line-major raw data into image layout (pure C++, no N-API).
#pragma once

#include <cstddef>
#include <cstdint>

namespace scanline {

// The checks of extractPlane's arguments, as the binding reads them (integers of at most 2^53 in magnitude, the
// arrays' element counts): throws StitchError(SCANLINE_ERR_SLICE_GEOMETRY) unless lines >= 0, 1 <= pixels <= 65536,
// energies 1..2 and 0 <= energy < energies, and StitchError(SCANLINE_ERR_STITCH_BUFFER) when src or out is too short.
void CheckExtractPlane(int64_t lines, int64_t energies, int64_t pixels, int64_t energy, size_t src_length,
                       size_t out_length);

// out[pixel * lines + line] = src[(line * energies + energy) * pixels + pixel]: row = detector pixel, column = line.
// Only after CheckExtractPlane passed.
void ExtractPlane(const uint16_t* src, int64_t lines, int energies, int pixels, int energy, uint16_t* out);

}  // namespace scanline
