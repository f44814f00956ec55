#include "row_runs.h"

#include <cstring>
#include <string>

#include "config.h"

namespace scanline {

void CheckRowRuns(const RowRuns& r, const char* fn, int64_t dst_elements, int64_t src_elements, bool shared_buffer,
                  const char* unit) {
  if (r.dst_start < 0 || r.src_start < 0 || r.row_words < 0 || r.rows < 0 || r.dst_stride < r.row_words ||
      r.src_stride < r.row_words) {
    throw StitchError(code::kStitchBuffer,
                      std::string(fn) + ": expected non-negative starts, rowWords and rows, and strides >= rowWords");
  }
  if (r.empty()) return;
  if (shared_buffer) throw StitchError(code::kStitchBuffer, std::string(fn) + ": src and dst share one buffer");
  // One past the last element touched, as int64 (no overflow: rows * stride is checked against INT64_MAX).
  const auto last = [&](int64_t start, int64_t stride) -> int64_t {
    if (stride > 0 && r.rows - 1 > (INT64_MAX - start - r.row_words) / stride) return INT64_MAX;
    return start + (r.rows - 1) * stride + r.row_words;
  };
  if (last(r.dst_start, r.dst_stride) > dst_elements || last(r.src_start, r.src_stride) > src_elements) {
    throw StitchError(code::kStitchBuffer,
                      std::string(fn) + ": " + std::to_string(r.rows) + " rows of " + std::to_string(r.row_words) +
                          " words reach beyond dst (" + std::to_string(dst_elements) + " " + unit + ") or src (" +
                          std::to_string(src_elements) + " words)");
  }
}

void CopyRows(uint32_t* dst, const uint32_t* src, const RowRuns& r) {
  if (r.empty()) return;
  uint32_t* d = dst + r.dst_start;
  const uint32_t* s = src + r.src_start;
  const size_t bytes = static_cast<size_t>(r.row_words) * sizeof(uint32_t);
  for (int64_t i = 0; i < r.rows; ++i) std::memmove(d + i * r.dst_stride, s + i * r.src_stride, bytes);
}

void PackRgbRows(uint8_t* dst, const uint32_t* src, const RowRuns& r) {
  if (r.empty()) return;
  for (int64_t row = 0; row < r.rows; ++row) {
    uint8_t* d = dst + (r.dst_start + row * r.dst_stride) * 3;
    const uint8_t* s = reinterpret_cast<const uint8_t*>(src + r.src_start + row * r.src_stride);
    // Four bytes per pixel with overlapping stores (the fourth is the next pixel's first, written next); the last
    // pixel of the run gets exactly three, so nothing past the run is touched.
    const int64_t n = r.row_words;
    for (int64_t i = 0; i + 1 < n; ++i) std::memcpy(d + 3 * i, s + 4 * i, 4);
    std::memcpy(d + 3 * (n - 1), s + 4 * (n - 1), 3);
  }
}

}  // namespace scanline
