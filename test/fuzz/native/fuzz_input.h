// Shared by the libFuzzer harnesses in this folder (not part of the addon): reads a fuzz input front to back and
// stops a harness on a broken invariant.
//
// Every byte string is a valid input: past the end every read returns 0 and `empty()` turns true, so the harness
// loops end. Reads take the bytes they need in order, which keeps seed inputs easy to write by hand (docs/fuzzing.md).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace scanline_fuzz {

// Largest magnitude of an integer the binding accepts from JS (ToInteger: Number.MAX_SAFE_INTEGER).
constexpr int64_t kMaxSafeInteger = (int64_t{1} << 53) - 1;

class FuzzInput {
 public:
  FuzzInput(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  bool empty() const { return pos_ >= size_; }

  uint8_t U8() { return pos_ < size_ ? data_[pos_++] : 0; }
  uint16_t U16() { return static_cast<uint16_t>(U8() | (U8() << 8)); }
  uint32_t U32() { return static_cast<uint32_t>(U16()) | (static_cast<uint32_t>(U16()) << 16); }
  uint64_t U64() { return static_cast<uint64_t>(U32()) | (static_cast<uint64_t>(U32()) << 32); }
  bool Bit() { return (U8() & 1) != 0; }

  // An integer as the binding reads one from a JS number (|v| <= 2^53 - 1). One tag byte picks the form, so short
  // inputs give small values and the whole range stays reachable. tag % 16:
  //   0-7: u8 | 8-9: u16 | 10: u32 | 11: minus a u8 (small negatives)
  //   12-13: 8 bytes, little-endian: bit 63 the sign, bits 0-52 the magnitude (2^51: 00 00 00 00 00 00 08 00)
  //   14-15: a power of two and its neighbours, where products of sizes wrap around (as AFL's "interesting
  //          values"): one byte b, 2^min(b & 63, 53), minus 1 when b & 64, plus 1 when b & 128; tag 15 negates it.
  int64_t JsInteger() {
    const uint8_t tag = U8() % 16;
    if (tag < 8) return U8();
    switch (tag) {
      case 8:
      case 9:
        return U16();
      case 10:
        return U32();
      case 11:
        return -static_cast<int64_t>(U8());
      case 12:
      case 13: {
        const uint64_t v = U64();
        const int64_t magnitude = static_cast<int64_t>(v & static_cast<uint64_t>(kMaxSafeInteger));
        return (v >> 63) != 0 ? -magnitude : magnitude;
      }
      default: {
        const uint8_t b = U8();
        const int shift = (b & 63) < 53 ? (b & 63) : 53;
        int64_t v = int64_t{1} << shift;
        if (b & 64) v -= 1;
        if (b & 128 && v < kMaxSafeInteger) v += 1;
        return tag == 15 ? -v : v;
      }
    }
  }

  // A count whose product with `factor` (>= 1) lands just below, on or just above 2^32, 2^53 or 2^64: where a size
  // computed as count x factor in 32-bit, double or 64-bit arithmetic wraps or loses precision. Kept within what the
  // binding accepts (|v| <= 2^53 - 1). One byte: the power (% 3) and the offset (-1, 0, +1).
  int64_t CrossingCount(int64_t factor) {
    const uint8_t b = U8();
    const int power = b % 3 == 0 ? 32 : b % 3 == 1 ? 53 : 64;
    const unsigned __int128 target = static_cast<unsigned __int128>(1) << power;
    const unsigned __int128 f = factor < 1 ? 1 : static_cast<unsigned __int128>(factor);
    unsigned __int128 v = (target + f - 1) / f + ((b / 3) % 3) - 1;
    if (v > static_cast<unsigned __int128>(kMaxSafeInteger)) v = kMaxSafeInteger;
    return static_cast<int64_t>(v);
  }

  // A value in [lo, hi] from one byte (two when the range is wider than 256).
  int64_t Range(int64_t lo, int64_t hi) {
    const uint64_t span = static_cast<uint64_t>(hi - lo) + 1;
    const uint64_t raw = span <= 256 ? U8() : span <= 65536 ? U16() : U32();
    return lo + static_cast<int64_t>(raw % span);
  }

  // Fills `n` samples: one mode byte, then constant (u16), ramp (u16 start, u8 step) or bytes taken from the input
  // (at most 64 samples' worth, repeated), so big payloads do not need big inputs.
  void Fill(uint16_t* out, size_t n) {
    const uint8_t mode = U8() % 3;
    if (mode == 0) {
      const uint16_t v = U16();
      for (size_t i = 0; i < n; ++i) out[i] = v;
    } else if (mode == 1) {
      const uint16_t start = U16();
      const uint8_t step = U8();
      for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint16_t>(start + i * step);
    } else {
      uint16_t pattern[64];
      const size_t k = 1 + U8() % 64;
      for (size_t i = 0; i < k; ++i) pattern[i] = U16();
      for (size_t i = 0; i < n; ++i) out[i] = pattern[i % k];
    }
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

/**
 * Draws a material classification config the stitcher accepts (attenuation range within 0..30, ratio thresholds
 * strictly decreasing), 6 bytes, for every harness that needs one. `Material` is the addon's material config.
 */
template <typename Material>
void DrawMaterial(FuzzInput& in, Material& m) {
  m.min_attenuation = in.U8() / 256.0 * 30.0;
  m.max_attenuation = m.min_attenuation + (in.U8() + 1) / 256.0 * (30.0 - m.min_attenuation);
  const double t2 = (in.U8() + 1) / 64.0;
  const double t1 = t2 + (in.U8() + 1) / 64.0;
  m.ratio_thresholds[0] = t1 + (in.U8() + 1) / 64.0;
  m.ratio_thresholds[1] = t1;
  m.ratio_thresholds[2] = t2;
}

}  // namespace scanline_fuzz

// A broken invariant: says which and aborts, so libFuzzer saves the input as a crash.
#define FUZZ_CHECK(cond, ...)                                                   \
  do {                                                                          \
    if (!(cond)) {                                                              \
      std::fprintf(stderr, "%s:%d: invariant failed: %s: ", __FILE__, __LINE__, #cond); \
      std::fprintf(stderr, __VA_ARGS__);                                        \
      std::fputc('\n', stderr);                                                 \
      std::abort();                                                             \
    }                                                                           \
  } while (0)
