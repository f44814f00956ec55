// Transposes one energy of line-major raw data into image layout (pure C++, no N-API).
#pragma once

#include <cstddef>
#include <cstdint>

namespace scanline {

// out[pixel * lines + line] = src[(line * energies + energy) * pixels + pixel]: row = detector pixel, column = line.
// The caller checks the sizes.
void ExtractPlane(const uint16_t* src, int64_t lines, int energies, int pixels, int energy, uint16_t* out);

}  // namespace scanline
