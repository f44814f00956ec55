#include "preview.h"

#include <algorithm>
#include <cstring>

#include "calibration.h"
#include "simd.h"
#include "tiles.h"

namespace scanline {

namespace {

constexpr uint8_t kPalette[6][3] = {
    {255, 255, 255},  // Background
    {255, 140, 0},    // Organic
    {0, 170, 60},     // Mixed
    {30, 110, 255},   // Inorganic
    {150, 50, 210},   // HeavyMetal
    {24, 24, 24},     // Impenetrable
};
constexpr uint8_t kGap[4] = {255, 0, 0, 255};

inline uint8_t Shade(uint8_t base, float s) { return static_cast<uint8_t>(static_cast<float>(base) * s + 0.5f); }

SCANLINE_INLINE float Shading(float high, float max_att, float inv_max_att) {
  const float positive = high > 0.0f ? high : 0.0f;
  const float clamped = positive < max_att ? positive : max_att;
  return 0.15f + 0.85f * (1.0f - clamped * inv_max_att);
}


// Packs RGBA (alpha 255) into a uint32 whose memory order is R, G, B, A.
SCANLINE_INLINE uint32_t Pack(uint32_t r, uint32_t g, uint32_t b) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return (r << 24) | (g << 16) | (b << 8) | 0xffu;
#else
  return r | (g << 8) | (b << 16) | 0xff000000u;
#endif
}

// The same decisions and rounding as PreviewColour, written as selects so the loop vectorises.
SCANLINE_INLINE void DualColours_body(const float* __restrict mean_high, const float* __restrict mean_low, int n,
                                      float max_att, float min_a, float t0, float t1, float t2,
                                      uint32_t* __restrict out) {
  const float inv_max_att = 1.0f / max_att;
  for (int y = 0; y < n; ++y) {
    const float h = mean_high[y];
    const float l = mean_low[y];
    float shade = Shading(h, max_att, inv_max_att);
    // Class 4 (heavy metal) unless a ratio threshold is met, then impenetrable, then background take precedence.
    float r = kPalette[4][0], g = kPalette[4][1], b = kPalette[4][2];
    const bool c3 = l >= t2 * h, c2 = l >= t1 * h, c1 = l >= t0 * h, c5 = h > max_att, c0 = h < min_a;
    r = c3 ? kPalette[3][0] : r, g = c3 ? kPalette[3][1] : g, b = c3 ? kPalette[3][2] : b;
    r = c2 ? kPalette[2][0] : r, g = c2 ? kPalette[2][1] : g, b = c2 ? kPalette[2][2] : b;
    r = c1 ? kPalette[1][0] : r, g = c1 ? kPalette[1][1] : g, b = c1 ? kPalette[1][2] : b;
    const bool dark = c5 && !c0;
    r = c5 ? kPalette[5][0] : r, g = c5 ? kPalette[5][1] : g, b = c5 ? kPalette[5][2] : b;
    r = c0 ? kPalette[0][0] : r, g = c0 ? kPalette[0][1] : g, b = c0 ? kPalette[0][2] : b;
    shade = dark ? 1.0f : shade;
    // Values are in [0, 255.5]: the signed conversion is exact and vectorises directly.
    out[y] = Pack(static_cast<uint32_t>(static_cast<int32_t>(r * shade + 0.5f)),
                  static_cast<uint32_t>(static_cast<int32_t>(g * shade + 0.5f)),
                  static_cast<uint32_t>(static_cast<int32_t>(b * shade + 0.5f)));
  }
}
SCANLINE_MULTIVERSION(DualColours,
                      (const float* mean_high, const float* mean_low, int n, float max_att, float min_a, float t0,
                       float t1, float t2, uint32_t* out),
                      (mean_high, mean_low, n, max_att, min_a, t0, t1, t2, out))

SCANLINE_INLINE void GreyColours_body(const float* __restrict mean_high, int n, float max_att,
                                      uint32_t* __restrict out) {
  const float inv_max_att = 1.0f / max_att;
  for (int y = 0; y < n; ++y) {
    const uint32_t v =
        static_cast<uint32_t>(static_cast<int32_t>(255.0f * Shading(mean_high[y], max_att, inv_max_att) + 0.5f));
    out[y] = Pack(v, v, v);
  }
}
SCANLINE_MULTIVERSION(GreyColours, (const float* mean_high, int n, float max_att, uint32_t* out),
                      (mean_high, n, max_att, out))

}  // namespace

void PreviewColour(float high, float low, bool dual, const StitcherConfig& config, uint8_t* rgba) {
  const float m = static_cast<float>(config.material.max_attenuation);
  const float s = Shading(high, m, 1.0f / m);
  rgba[3] = 255;
  if (!dual) {
    rgba[0] = rgba[1] = rgba[2] = Shade(255, s);
    return;
  }
  const uint8_t cls = ClassifyMaterial(high, low, config.material);
  const uint8_t* base = kPalette[cls];
  for (int c = 0; c < 3; ++c) rgba[c] = cls == 5 ? base[c] : Shade(base[c], s);
}

void PreviewAccumulator::Init(const StitcherConfig& config) {
  config_ = config;
  sum_.assign(static_cast<size_t>(config.energies) * config.pixels, 0.0f);
  lines_ = 0;
  gap_ = false;
}

void PreviewAccumulator::AddLine(const float* line) {
  AddInto(sum_.data(), line, sum_.size());
  ++lines_;
}

void PreviewAccumulator::EmitColumn(uint8_t* strip, size_t row_bytes, int x, int height) {
  if (strip == nullptr || height <= 0) {
    std::fill(sum_.begin(), sum_.end(), 0.0f);
    lines_ = 0;
    gap_ = false;
    return;
  }
  if (pending_count_ > 0 &&
      (strip != pending_strip_ || x != pending_x0_ + pending_count_ || height != pending_height_)) {
    Flush();
  }
  if (pending_count_ == 0) {
    pending_strip_ = strip;
    pending_row_bytes_ = row_bytes;
    pending_x0_ = x;
    pending_height_ = height;
    pending_.resize(static_cast<size_t>(kGroup) * height);
  }
  uint32_t* colours = pending_.data() + static_cast<size_t>(pending_count_) * height;
  const int d = config_.preview_downsample;
  const int pixels = config_.pixels;
  const bool dual = config_.energies == 2;
  if (gap_) {
    uint32_t gap;
    std::memcpy(&gap, kGap, 4);
    for (int y = 0; y < height; ++y) colours[y] = gap;
  } else {
    mean_high_.resize(height);
    mean_low_.resize(height);
    const float* high = sum_.data();
    const float* low = dual ? high + pixels : high;
    // Block means: full blocks first, then the partial block at the bottom of the detector.
    const int full = std::min(height, pixels / d);
    const float inv = 1.0f / (static_cast<float>(lines_) * static_cast<float>(d));
    BlockMeans(high, mean_high_.data(), full, d, inv);
    BlockMeans(low, mean_low_.data(), full, d, inv);
    if (full < height) {
      const int p0 = full * d;
      float sh = 0.0f, sl = 0.0f;
      for (int p = p0; p < pixels; ++p) {
        sh += high[p];
        sl += low[p];
      }
      const float n = static_cast<float>(lines_) * static_cast<float>(pixels - p0);
      mean_high_[full] = sh / n;
      mean_low_[full] = sl / n;
    }
    const MaterialParams& m = config_.material;
    const float max_att = static_cast<float>(m.max_attenuation);
    if (dual) {
      DualColours(mean_high_.data(), mean_low_.data(), height, max_att, static_cast<float>(m.min_attenuation),
                  static_cast<float>(m.ratio_thresholds[0]), static_cast<float>(m.ratio_thresholds[1]),
                  static_cast<float>(m.ratio_thresholds[2]), colours);
    } else {
      GreyColours(mean_high_.data(), height, max_att, colours);
    }
  }
  if (++pending_count_ == kGroup) Flush();
  std::fill(sum_.begin(), sum_.end(), 0.0f);
  lines_ = 0;
  gap_ = false;
}

void PreviewAccumulator::Flush() {
  if (pending_count_ == 0) return;
  const int count = pending_count_;
  const int height = pending_height_;
  for (int y = 0; y < height; ++y) {
    uint8_t* row = pending_strip_ + y * pending_row_bytes_ + static_cast<size_t>(pending_x0_) * 4;
    for (int k = 0; k < count; ++k) std::memcpy(row + k * 4, &pending_[static_cast<size_t>(k) * height + y], 4);
  }
  pending_count_ = 0;
}

}  // namespace scanline
