// Operator preview strips (pure C++, no N-API).
//
// A strip is RGBA 8-bit, row-major (y * width + x) * 4, x along the scan, y down the detector. Each sample is the
// block average over previewDownsample lines x pixels (partial blocks at the scan end and the detector bottom
// average the samples that exist). Palette (dual energy), by the material class of the block-averaged attenuations:
//   Background   (0) white          255,255,255
//   Organic      (1) orange         255,140,  0
//   Mixed        (2) green            0,170, 60
//   Inorganic    (3) blue            30,110,255
//   HeavyMetal   (4) violet         150, 50,210
//   Impenetrable (5) near-black      24, 24, 24 (not shaded)
//   gap lines        red            255,  0,  0 (a block containing any line declared a gap; not shaded)
// Shading: channel = round(base * s), s = 0.15 + 0.85 * (1 - min(max(A_high, 0), M) / M), M =
// material.maxAttenuation: more high-energy attenuation is darker. Single energy: grey 255 * s (same shading).
// Alpha is always 255.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "config.h"

namespace scanline {

struct PreviewSpec {
  int64_t line;   // first raw line, a multiple of previewDownsample
  int64_t lines;  // raw lines covered
  int width;      // ceil(lines / d)
  int height;     // ceil(pixels / d)
};

// Writes the RGBA colour of one preview sample.
void PreviewColour(float high, float low, bool dual, const StitcherConfig& config, uint8_t* rgba);

// Sums the calibrated lines of the current preview block (previewDownsample lines) as they are calibrated and turns
// each complete block into one strip column. Columns are buffered and written 16 at a time (64-byte runs per strip
// row) because single columns of a row-major strip would touch one cache line per row. Worker thread only; the
// block sums carry over from one job to the next (a block may straddle two jobs), buffered columns do not: call
// Flush() before the job ends.
class PreviewAccumulator {
 public:
  void Init(const StitcherConfig& config);
  // `line`: energies * pixels calibrated floats.
  void AddLine(const float* line);
  void AddGapLine() {
    ++lines_;
    gap_ = true;
  }
  // The current block is complete: it becomes column x of `strip` (row_bytes per strip row, `height` rows; null
  // strip: drop it). Starts the next block.
  void EmitColumn(uint8_t* strip, size_t row_bytes, int x, int height);
  // Writes the buffered columns.
  void Flush();

 private:
  static constexpr int kGroup = 16;

  StitcherConfig config_;
  std::vector<float> sum_;  // energies * pixels
  int lines_ = 0;
  bool gap_ = false;
  std::vector<float> mean_high_, mean_low_;  // height
  std::vector<uint32_t> pending_;            // kGroup columns of `height` colours (RGBA in memory order)
  int pending_count_ = 0;
  int pending_x0_ = 0;
  int pending_height_ = 0;
  uint8_t* pending_strip_ = nullptr;
  size_t pending_row_bytes_ = 0;
};

}  // namespace scanline
