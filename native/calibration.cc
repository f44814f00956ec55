#include "calibration.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "simd.h"

namespace scanline {

namespace {

SCANLINE_INLINE float FastLogInline(float x) {
  // Split x = 2^k * m with m in [sqrt(1/2), sqrt(2)), then ln(x) = k ln 2 + ln(m) with the Cephes logf polynomial
  // for ln(1 + f), f = m - 1. ln 2 is split in two parts so k ln 2 adds no rounding error.
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  const int32_t shifted = static_cast<int32_t>(bits) - 0x3f3504f3;
  const int32_t k = shifted >> 23;
  const uint32_t mantissa_bits = static_cast<uint32_t>(shifted & 0x007fffff) + 0x3f3504f3u;
  float m;
  std::memcpy(&m, &mantissa_bits, sizeof m);
  const float f = m - 1.0f;
  const float z = f * f;
  float y = 7.0376836292e-2f;
  y = y * f - 1.1514610310e-1f;
  y = y * f + 1.1676998740e-1f;
  y = y * f - 1.2420140846e-1f;
  y = y * f + 1.4249322787e-1f;
  y = y * f - 1.6668057665e-1f;
  y = y * f + 2.0000714765e-1f;
  y = y * f - 2.4999993993e-1f;
  y = y * f + 3.3333331174e-1f;
  y = y * f * z;
  const float fk = static_cast<float>(k);
  y += fk * -2.12194440e-4f;
  y += -0.5f * z;
  return f + y + fk * 0.693359375f;
}

// The hot loop: one energy of one line. Branch-free (selects only) so it vectorises; needs -fno-trapping-math for
// GCC to if-convert the float selects (set in binding.gyp).
SCANLINE_INLINE void AttenuationKernel_body(const uint16_t* __restrict in, const int32_t* __restrict dark_int,
                                     const float* __restrict dark_frac, const float* __restrict ln_air_dark,
                                     float* __restrict out, int n, float attenuation_max) {
  for (int p = 0; p < n; ++p) {
    const float x = static_cast<float>(static_cast<int32_t>(in[p]) - dark_int[p]) - dark_frac[p];
    const bool positive = x > 0.0f;
    const float safe = positive ? x : 1.0f;
    float a = ln_air_dark[p] - FastLogInline(safe);
    a = a > 0.0f ? a : 0.0f;
    a = a < attenuation_max ? a : attenuation_max;
    out[p] = positive ? a : attenuation_max;
  }
}

SCANLINE_MULTIVERSION(AttenuationKernel,
                      (const uint16_t* in, const int32_t* dark_int, const float* dark_frac, const float* ln_air_dark,
                       float* out, int n, float attenuation_max),
                      (in, dark_int, dark_frac, ln_air_dark, out, n, attenuation_max))

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  const size_t n = values.size();
  std::sort(values.begin(), values.end());
  return n % 2 == 1 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

}  // namespace

bool UseAvx2() {
#ifdef SCANLINE_HAVE_AVX2
  // Initialised when the addon is loaded, before any worker thread runs.
  static const bool avx2 = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return avx2;
#else
  return false;
#endif
}

const char* KernelIsa() { return UseAvx2() ? "avx2" : "baseline"; }

SCANLINE_INLINE void AddInto_body(float* __restrict dst, const float* __restrict src, size_t n) {
  for (size_t i = 0; i < n; ++i) dst[i] += src[i];
}
SCANLINE_MULTIVERSION(AddInto, (float* dst, const float* src, size_t n), (dst, src, n))

float FastLog(float x) { return FastLogInline(x); }

Calibration::Calibration(int pixels, int energies, const std::vector<double>& dark, const std::vector<double>& air,
                         double dead_pixel_fraction, double attenuation_max)
    : pixels_(pixels),
      energies_(energies),
      attenuation_max_(static_cast<float>(attenuation_max)),
      dark_int_(static_cast<size_t>(pixels) * energies),
      dark_frac_(static_cast<size_t>(pixels) * energies),
      ln_air_dark_(static_cast<size_t>(pixels) * energies),
      fixes_(energies) {
  std::vector<double> air_dark(pixels);
  std::vector<uint8_t> dead(pixels);
  for (int e = 0; e < energies; ++e) {
    const size_t base = static_cast<size_t>(e) * pixels;
    for (int p = 0; p < pixels; ++p) air_dark[p] = air[base + p] - dark[base + p];
    const double threshold = dead_pixel_fraction * Median(air_dark);
    for (int p = 0; p < pixels; ++p) {
      const double d = dark[base + p];
      const double fl = std::floor(d);
      dark_int_[base + p] = static_cast<int32_t>(fl);
      dark_frac_[base + p] = static_cast<float>(d - fl);
      dead[p] = !(air_dark[p] > 0) || air_dark[p] < threshold;
      ln_air_dark_[base + p] = dead[p] ? 0.0f : static_cast<float>(std::log(air_dark[p]));
    }
    // Nearest live neighbours of every dead pixel, found with one pass each way.
    std::vector<int32_t> left(pixels, -1), right(pixels, -1);
    int32_t last = -1;
    for (int p = 0; p < pixels; ++p) {
      left[p] = last;
      if (!dead[p]) last = p;
    }
    last = -1;
    for (int p = pixels - 1; p >= 0; --p) {
      right[p] = last;
      if (!dead[p]) last = p;
    }
    for (int p = 0; p < pixels; ++p) {
      if (!dead[p]) continue;
      ++dead_pixels_;
      DeadPixelFix fix{p, left[p], right[p], 1.0f, 0.0f};
      if (fix.left >= 0 && fix.right >= 0) {
        const double span = fix.right - fix.left;
        fix.left_weight = static_cast<float>((fix.right - p) / span);
        fix.right_weight = static_cast<float>((p - fix.left) / span);
      } else if (fix.left < 0) {
        fix.left = fix.right;  // edge (or -1 when no pixel is live)
        fix.right = fix.right;
      } else {
        fix.right = fix.left;
      }
      fixes_[e].push_back(fix);
    }
  }
}

void Calibration::CalibrateLine(const uint16_t* raw, float* out) const {
  for (int e = 0; e < energies_; ++e) {
    const size_t base = static_cast<size_t>(e) * pixels_;
    float* row = out + base;
    AttenuationKernel(raw + base, dark_int_.data() + base, dark_frac_.data() + base, ln_air_dark_.data() + base, row, pixels_,
            attenuation_max_);
    for (const DeadPixelFix& fix : fixes_[e]) {
      // The float weights may sum to 1 + 2^-24: between two neighbours at attenuationMax the mix would land one ulp
      // above it, so it is clamped like every other sample.
      row[fix.pixel] = fix.left < 0 ? 0.0f
                                    : std::min(fix.left_weight * row[fix.left] + fix.right_weight * row[fix.right],
                                               attenuation_max_);
    }
  }
}

size_t Calibration::memory_bytes() const {
  size_t fixes = 0;
  for (const auto& f : fixes_) fixes += f.capacity() * sizeof(DeadPixelFix);
  return dark_int_.size() * (sizeof(int32_t) + 2 * sizeof(float)) + fixes;
}

}  // namespace scanline
