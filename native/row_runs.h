// Row-run copies of the operator preview canvas, copyRows and packRgbRows (pure C++, no N-API): their argument checks
// and the copies. The binding (addon.cc) reads the JS arguments (integers of at most 2^53 in magnitude, the arrays'
// element counts) and calls these, so a harness can call exactly what JS reaches.
#pragma once

#include <cstdint>

namespace scanline {

// Runs of words to move, as copyRows and packRgbRows take them (element indices and counts): run r goes from
// src[src_start + r * src_stride] to dst[dst_start + r * dst_stride].
struct RowRuns {
  int64_t dst_start, dst_stride, src_start, src_stride, row_words, rows;
  bool empty() const { return rows == 0 || row_words == 0; }
};

// Throws StitchError(SCANLINE_ERR_STITCH_BUFFER, message prefixed with `fn`) for negative numbers, strides shorter
// than a run, a shared buffer, or runs beyond either array (`dst_elements` counted in `unit`, `src_elements` words).
// Empty runs pass every check but the first.
void CheckRowRuns(const RowRuns& r, const char* fn, int64_t dst_elements, int64_t src_elements, bool shared_buffer,
                  const char* unit);

// The copies, after CheckRowRuns passed. CopyRows: a memmove per run. PackRgbRows: each source word (RGBA in memory
// order) becomes its first three bytes; dst indices and strides count pixels of 3 bytes.
void CopyRows(uint32_t* dst, const uint32_t* src, const RowRuns& r);
void PackRgbRows(uint8_t* dst, const uint32_t* src, const RowRuns& r);

}  // namespace scanline
