// Per-pixel calibration of one scan and the per-line attenuation kernel (pure C++, no N-API).
//
// Attenuation A = -ln((I - dark) / (air - dark)) = ln(air - dark) - ln(I - dark), clamped to [0, attenuationMax];
// I - dark <= 0 gives attenuationMax. ln(air - dark) is precomputed per pixel (double, stored as float); ln(I - dark)
// uses FastLog, a branch-free float logarithm (Cephes logf polynomial on the mantissa plus exponent * ln 2; measured
// error <= 7.8e-8 relative, <= 5e-7 absolute, for x in [1e-6, 1e6]) so the loop vectorises (8 lanes with AVX2+FMA,
// picked at load time, else SSE2). I - dark is computed as float(I - floor(dark)) - frac(dark): the integer part is
// exact, so a fractional dark of ~1000 counts loses no precision. Against the double-precision TypeScript reference
// (Math.log) the attenuation agrees to about 2e-6 absolute; the tests allow 1e-4 relative + 1e-5 absolute.
//
// Dead pixels ((air - dark) <= 0, or below deadPixelFraction * the energy's median (air - dark)) get the attenuation
// linearly interpolated from the nearest live neighbours on the same line (copied from the one neighbour at an
// edge; 0 when the energy has no live pixel at all), clamped to attenuationMax like every sample.
//
// Lifetime and threads: built once on the JS thread when the first job needs it, immutable afterwards, then read
// concurrently by the worker thread (jobs) and the JS thread (readAttenuation/readMaterial).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "config.h"

namespace scanline {

struct DeadPixelFix {
  int32_t pixel;
  int32_t left;   // nearest live pixel below, or the only live neighbour; -1: no live pixel (attenuation 0)
  int32_t right;  // nearest live pixel above; == left at an edge
  float left_weight;
  float right_weight;
};

class Calibration {
 public:
  // `dark` and `air` are means per (energy, pixel), index e * pixels + p.
  Calibration(int pixels, int energies, const std::vector<double>& dark, const std::vector<double>& air,
              double dead_pixel_fraction, double attenuation_max);

  // Calibrates one raw line (energies * pixels u16, energies interleaved high first) into `out` (same layout).
  void CalibrateLine(const uint16_t* raw, float* out) const;

  int dead_pixels() const { return dead_pixels_; }
  size_t memory_bytes() const;

 private:
  int pixels_;
  int energies_;
  float attenuation_max_;
  std::vector<int32_t> dark_int_;      // floor(dark)
  std::vector<float> dark_frac_;       // dark - floor(dark), in [0, 1)
  std::vector<float> ln_air_dark_;     // ln(air - dark) for live pixels, 0 for dead ones
  std::vector<std::vector<DeadPixelFix>> fixes_;  // per energy
  int dead_pixels_ = 0;
};

// "avx2" or "baseline": the build of the hot loops this CPU runs.
const char* KernelIsa();

// dst[i] += src[i] for i < n (vectorised; the arrays must not overlap).
void AddInto(float* dst, const float* src, size_t n);

// Natural logarithm of a positive, finite, normal float; branch-free (vectorises).
float FastLog(float x);

// Material class of one sample (values of MaterialClass in src/stitch/types.ts).
inline uint8_t ClassifyMaterial(float high, float low, const MaterialParams& m) {
  if (high < static_cast<float>(m.min_attenuation)) return 0;
  if (high > static_cast<float>(m.max_attenuation)) return 5;
  // R = low / high >= t compared as low >= t * high (high >= minAttenuation >= 0 here; no division by zero).
  if (low >= static_cast<float>(m.ratio_thresholds[0]) * high) return 1;
  if (low >= static_cast<float>(m.ratio_thresholds[1]) * high) return 2;
  if (low >= static_cast<float>(m.ratio_thresholds[2]) * high) return 3;
  return 4;
}

}  // namespace scanline
