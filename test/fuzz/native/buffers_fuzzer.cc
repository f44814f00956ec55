// libFuzzer harness for the addon's entry points that take caller-sized buffers and geometry straight from JS,
// linked without Node: extractPlane (native/extract_plane.h: CheckExtractPlane, then ExtractPlane) and copyRows /
// packRgbRows (native/row_runs.h: CheckRowRuns, then CopyRows / PackRgbRows). Each op passes integers as the binding
// reads them (any |v| <= 2^53 - 1) and arrays of fuzzed lengths, allocated to exactly that length, so ASan reports
// any access past them. When a check passes, the result must match a plain reference loop and every element the
// call must not write keeps its sentinel; when it refuses, it throws StitchError with SCANLINE_ERR_SLICE_GEOMETRY or
// SCANLINE_ERR_STITCH_BUFFER.
//
// Input: ops until the input ends: op u8 (% 3: extractPlane, copyRows, packRgbRows) and its operands (FuzzInput).
#include <cstdint>
#include <cstring>
#include <vector>

#include "../../../native/config.h"
#include "../../../native/extract_plane.h"
#include "../../../native/row_runs.h"
#include "fuzz_input.h"

using scanline::StitchError;
using scanline_fuzz::FuzzInput;

namespace {

constexpr uint16_t kSentinel16 = 0xA5A5;
constexpr uint32_t kSentinel32 = 0xDEADBEEF;
constexpr uint8_t kSentinel8 = 0x5A;

bool Is(const StitchError& e, const char* code) { return e.code != nullptr && std::strcmp(e.code, code) == 0; }

// An array length: mostly near what the geometry needs, else anything up to 64 Ki elements.
size_t Length(FuzzInput& in, int64_t need) {
  const uint8_t mode = in.U8() % 4;
  if (mode < 2 && need >= 0 && need <= 65536) {
    const int64_t v = need + (mode == 0 ? 0 : static_cast<int64_t>(in.U8() % 3) - 1);
    return static_cast<size_t>(v < 0 ? 0 : v);
  }
  return static_cast<size_t>(in.Range(0, 65536));
}

void FuzzExtractPlane(FuzzInput& in) {
  const int64_t energies = in.JsInteger();
  const int64_t pixels = in.JsInteger();
  const int64_t energy = in.JsInteger();
  // Any integer, or one where lines x pixels or lines x energies x pixels crosses 2^32, 2^53 or 2^64.
  const uint8_t mode = in.U8() % 4;
  const int64_t per_line = (energies == 2 ? 2 : 1) * pixels;  // |pixels| <= 2^53: no overflow
  const int64_t lines = mode < 2 ? in.JsInteger() : in.CrossingCount(mode == 2 ? pixels : per_line);
  const bool small = lines >= 0 && lines <= 65536 && pixels >= 0 && pixels <= 65536 && energies >= 0 && energies <= 2;
  std::vector<uint16_t> src(Length(in, small ? lines * energies * pixels : -1));
  std::vector<uint16_t> out(Length(in, small ? lines * pixels : -1), kSentinel16);
  in.Fill(src.data(), src.size());
  try {
    scanline::CheckExtractPlane(lines, energies, pixels, energy, src.size(), out.size());
  } catch (const StitchError& e) {
    FUZZ_CHECK(Is(e, scanline::code::kSliceGeometry) || Is(e, scanline::code::kStitchBuffer), "code %s", e.code);
    return;
  }
  FUZZ_CHECK(lines >= 0 && pixels >= 1 && pixels <= 65536 && energies >= 1 && energies <= 2 && energy >= 0 &&
                 energy < energies,
             "extractPlane accepted lines %lld, energies %lld, pixels %lld, energy %lld", static_cast<long long>(lines),
             static_cast<long long>(energies), static_cast<long long>(pixels), static_cast<long long>(energy));
  // In 128 bits: the products of an accepted geometry must fit the arrays without wrapping around.
  using u128 = unsigned __int128;
  FUZZ_CHECK(static_cast<u128>(lines) * energies * pixels <= src.size() && static_cast<u128>(lines) * pixels <= out.size(),
             "extractPlane accepted %lld lines x %lld energies x %lld pixels with src %zu and out %zu",
             static_cast<long long>(lines), static_cast<long long>(energies), static_cast<long long>(pixels),
             src.size(), out.size());
  scanline::ExtractPlane(src.data(), lines, static_cast<int>(energies), static_cast<int>(pixels),
                         static_cast<int>(energy), out.data());
  for (int64_t l = 0; l < lines; ++l) {
    for (int64_t p = 0; p < pixels; ++p) {
      FUZZ_CHECK(out[p * lines + l] == src[(l * energies + energy) * pixels + p], "plane sample (%lld, %lld)",
                 static_cast<long long>(l), static_cast<long long>(p));
    }
  }
  for (size_t i = static_cast<size_t>(lines * pixels); i < out.size(); ++i) {
    FUZZ_CHECK(out[i] == kSentinel16, "extractPlane wrote out[%zu] past lines x pixels", i);
  }
}

scanline::RowRuns Runs(FuzzInput& in) {
  scanline::RowRuns r{};
  // Mostly small, consistent runs (strides >= rowWords), sometimes any integers.
  if (in.U8() % 4 != 0) {
    r.row_words = in.Range(0, 64);
    r.rows = in.Range(0, 64);
    r.dst_stride = r.row_words + in.Range(0, 16);
    r.src_stride = r.row_words + in.Range(0, 16);
    r.dst_start = in.Range(0, 256);
    r.src_start = in.Range(0, 256);
  } else {
    r.dst_start = in.JsInteger();
    r.dst_stride = in.JsInteger();
    r.src_start = in.JsInteger();
    r.src_stride = in.JsInteger();
    r.row_words = in.JsInteger();
    r.rows = in.JsInteger();
  }
  return r;
}

// One past the last element a set of runs reaches, in 128 bits (no overflow for any int64 inputs).
__int128 Reach(int64_t start, int64_t stride, const scanline::RowRuns& r) {
  return static_cast<__int128>(start) + static_cast<__int128>(r.rows - 1) * stride + r.row_words;
}

// The same as a length the arrays could have, or -1 when it is no such length.
int64_t Need(int64_t start, int64_t stride, const scanline::RowRuns& r) {
  if (r.rows < 1 || r.row_words < 0 || start < 0) return -1;
  const __int128 v = Reach(start, stride, r);
  return v >= 0 && v <= 65536 ? static_cast<int64_t>(v) : -1;
}

template <bool kPack>
void FuzzRows(FuzzInput& in) {
  const scanline::RowRuns r = Runs(in);
  const bool shared = in.U8() % 16 == 0;
  std::vector<uint32_t> src(Length(in, Need(r.src_start, r.src_stride, r)));
  const size_t dst_elements = Length(in, Need(r.dst_start, r.dst_stride, r));
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint32_t>(i * 2654435761u) ^ in.U8();
  // packRgbRows: dst is a Uint8Array of 3-byte pixels plus up to two spare bytes (floor(byteLength / 3) pixels).
  const size_t spare = kPack ? in.U8() % 3 : 0;
  std::vector<uint8_t> dst8(kPack ? dst_elements * 3 + spare : 0, kSentinel8);
  std::vector<uint32_t> dst32(kPack ? 0 : dst_elements, kSentinel32);
  const char* fn = kPack ? "packRgbRows" : "copyRows";
  try {
    scanline::CheckRowRuns(r, fn, static_cast<int64_t>(dst_elements), static_cast<int64_t>(src.size()), shared,
                           kPack ? "pixels" : "words");
  } catch (const StitchError& e) {
    FUZZ_CHECK(Is(e, scanline::code::kStitchBuffer), "code %s", e.code);
    return;
  }
  FUZZ_CHECK(r.dst_start >= 0 && r.src_start >= 0 && r.row_words >= 0 && r.rows >= 0 && r.dst_stride >= r.row_words &&
                 r.src_stride >= r.row_words,
             "%s accepted negative numbers or short strides", fn);
  if (r.empty()) {
    if (kPack) {
      scanline::PackRgbRows(dst8.data(), src.data(), r);
    } else {
      scanline::CopyRows(dst32.data(), src.data(), r);
    }
    for (uint8_t b : dst8) FUZZ_CHECK(b == kSentinel8, "%s wrote for empty runs", fn);
    for (uint32_t w : dst32) FUZZ_CHECK(w == kSentinel32, "%s wrote for empty runs", fn);
    return;
  }
  FUZZ_CHECK(!shared, "%s accepted a shared buffer", fn);
  FUZZ_CHECK(Reach(r.dst_start, r.dst_stride, r) <= static_cast<__int128>(dst_elements) &&
                 Reach(r.src_start, r.src_stride, r) <= static_cast<__int128>(src.size()),
             "%s accepted %lld rows of %lld words (dst start %lld stride %lld, src start %lld stride %lld) reaching "
             "beyond dst (%zu) or src (%zu)",
             fn, static_cast<long long>(r.rows), static_cast<long long>(r.row_words),
             static_cast<long long>(r.dst_start), static_cast<long long>(r.dst_stride),
             static_cast<long long>(r.src_start), static_cast<long long>(r.src_stride), dst_elements, src.size());
  // Which dst elements the runs cover (runs of one call never overlap each other: strides >= rowWords).
  std::vector<uint8_t> covered(dst_elements, 0);
  for (int64_t row = 0; row < r.rows; ++row) {
    for (int64_t i = 0; i < r.row_words; ++i) covered[r.dst_start + row * r.dst_stride + i] = 1;
  }
  if (kPack) {
    scanline::PackRgbRows(dst8.data(), src.data(), r);
    for (int64_t row = 0; row < r.rows; ++row) {
      for (int64_t i = 0; i < r.row_words; ++i) {
        const uint32_t w = src[r.src_start + row * r.src_stride + i];
        const uint8_t* px = dst8.data() + (r.dst_start + row * r.dst_stride + i) * 3;
        uint8_t want[4];
        std::memcpy(want, &w, 4);
        FUZZ_CHECK(std::memcmp(px, want, 3) == 0, "packRgbRows pixel (%lld, %lld)", static_cast<long long>(row),
                   static_cast<long long>(i));
      }
    }
    for (size_t i = 0; i < dst8.size(); ++i) {
      FUZZ_CHECK(i / 3 < dst_elements && covered[i / 3] ? true : dst8[i] == kSentinel8,
                 "packRgbRows wrote byte %zu outside its runs", i);
    }
  } else {
    scanline::CopyRows(dst32.data(), src.data(), r);
    for (int64_t row = 0; row < r.rows; ++row) {
      for (int64_t i = 0; i < r.row_words; ++i) {
        FUZZ_CHECK(dst32[r.dst_start + row * r.dst_stride + i] == src[r.src_start + row * r.src_stride + i],
                   "copyRows word (%lld, %lld)", static_cast<long long>(row), static_cast<long long>(i));
      }
    }
    for (size_t i = 0; i < dst32.size(); ++i) {
      FUZZ_CHECK(covered[i] || dst32[i] == kSentinel32, "copyRows wrote word %zu outside its runs", i);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput in(data, size);
  while (!in.empty()) {
    switch (in.U8() % 3) {
      case 0:
        FuzzExtractPlane(in);
        break;
      case 1:
        FuzzRows<false>(in);
        break;
      default:
        FuzzRows<true>(in);
        break;
    }
  }
  return 0;
}
