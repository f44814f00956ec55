// The per-scan stitcher core (pure C++, no N-API): raw line store, calibration, frontier/gap bookkeeping, tile and
// preview planning, and the job's pixel work.
//
// Memory: the raw store (u16, chunk by chunk) is the only full-scan copy. Calibrated lines are never kept: as the
// worker calibrates a line (into an L1-sized buffer) it adds it to (a) the ring of tile blocks, the per-pixel sums of
// each `tile.downsample` lines (aligned to multiples of downsample; enough blocks for a tile span behind the
// frontier plus one job), and (b) the preview accumulator of the current previewDownsample block, which is turned
// into a strip column as soon as it is complete. A tile column that does not start on a block boundary (the final
// column, or strideLines not a multiple of downsample) is summed from raw lines recalibrated on the fly.
//
// The semantics are those of src/stitch/types.ts. The TypeScript reference (test/helpers/ts-stitcher.ts) plans jobs
// exactly as BeginJob does; it keeps a window of calibrated lines instead of the block ring and accumulators.
//
// Threads: every public method runs on the JS thread except ExecuteJob, which runs on a libuv pool thread between
// BeginJob and EndJob. While a job runs, the JS thread may Push (it only writes lines that were not stored yet and
// chunk-table entries of chunks the job does not read) and Read* (they use the immutable calibration and their own
// scratch); everything the job reads was fixed by BeginJob.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "calibration.h"
#include "config.h"
#include "preview.h"
#include "tiles.h"

namespace scanline {

struct PushResult {
  int64_t new_lines = 0;
  int64_t duplicate_lines = 0;
};

struct TileInfo {
  int slot;
  int64_t line;
  int pixel;
  int64_t lines;
  int pixels;
};

struct StitcherStats {
  int64_t stored_lines;
  int64_t highest_line;
  int64_t frontier;
  int64_t gap_lines;
  int64_t late_lines;
  int64_t duplicate_lines;
  bool calibrated;
  int dead_pixels;
  int64_t tiles_emitted;
  int64_t memory_bytes;
};

// One process() job: planned by BeginJob, pixel work by ExecuteJob, reported after EndJob.
struct Job {
  struct Segment {
    int64_t start;
    int64_t end;
    bool gap;  // true: zero-filled; false: calibrated from the raw store
  };
  int64_t start = 0;  // frontier range covered by the job: [start, end)
  int64_t end = 0;
  std::vector<Segment> segments;
  std::vector<std::pair<int64_t, int64_t>> gaps;  // declared by this job
  std::vector<TileInfo> tiles;
  std::vector<TileSpec> tile_specs;
  bool has_preview = false;
  PreviewSpec preview{0, 0, 0, 0};
  bool more = false;
  bool done = false;
  // The caller's buffers; the binding keeps references to them until the job has been reported.
  float* tile_out = nullptr;
  uint8_t* preview_out = nullptr;
  // A tile-block ring allocated (untouched) since the last job: the worker zeroes these floats first. Decided by
  // BeginJob on the JS thread, so ExecuteJob never reads ring bookkeeping the JS thread may change.
  float* zero_ring = nullptr;
  size_t zero_ring_floats = 0;
  bool zero_ring_done = false;  // worker: set once zeroed; a job ended without running leaves the ring to the next
};

class Stitcher {
 public:
  // Throws StitchError(SCANLINE_ERR_STITCH_OPTIONS) for values that would make the core unsafe.
  explicit Stitcher(const StitcherConfig& config);
  // Returns the raw-store chunks to the process-wide pool for the next scan.
  ~Stitcher();
  Stitcher(const Stitcher&) = delete;
  Stitcher& operator=(const Stitcher&) = delete;

  const StitcherConfig& config() const { return config_; }
  size_t tile_floats() const { return tile_floats_; }
  size_t preview_bytes() const { return preview_bytes_; }
  bool busy() const { return busy_; }

  // `payload` is read before returning.
  PushResult Push(int kind, int64_t first_line, int64_t line_count, const uint16_t* payload, size_t payload_length);
  void Finish(int64_t total_lines);

  // JS thread: all bookkeeping for one job. The buffers must stay valid until EndJob.
  const Job& BeginJob(float* tiles, size_t tiles_length, uint8_t* preview, size_t preview_length);
  // Worker thread: pixel maths of the planned job only.
  void ExecuteJob();
  // JS thread: the job is over (its result has been read).
  void EndJob() {
    if (job_.zero_ring && !job_.zero_ring_done) blocks_zeroed_ = false;  // never ran: the next job zeroes the ring
    busy_ = false;
  }

  // Line ranges [start, end) within [first_line, first_line + line_count) that were never stored.

  std::vector<std::pair<int64_t, int64_t>> MissingRanges(int64_t first_line, int64_t line_count) const;

  void ReadRaw(int64_t first_line, int64_t line_count, uint16_t* out, size_t out_length) const;
  void ReadAttenuation(int energy, int64_t first_line, int64_t line_count, float* out, size_t out_length);
  void ReadMaterial(int64_t first_line, int64_t line_count, uint8_t* out, size_t out_length);
  StitcherStats Stats() const;

 private:
  const uint16_t* Line(int64_t line) const {
    return chunks_[static_cast<size_t>(line / config_.chunk_lines)].get() +
           static_cast<size_t>(line % config_.chunk_lines) * line_samples_;
  }
  uint16_t* MutableLine(int64_t line);
  bool CalibrationReady() const;
  void FixCalibrationIfReady();
  void CheckReadRange(int64_t first_line, int64_t line_count) const;
  float* BlockSlot(int64_t block) {
    return blocks_.get() + static_cast<size_t>(block % block_capacity_) * line_samples_;
  }
  void PlanTiles(Job& job, size_t capacity, bool& pending);
  void EmitPreviewBlock(int64_t block_start, int64_t block_end);  // worker

  StitcherConfig config_;
  size_t line_samples_;  // energies * pixels
  int span_;             // tile.size * tile.downsample
  size_t tile_floats_;
  size_t preview_bytes_;
  int64_t ring_lines_;      // lines the planner keeps available behind the frontier (span + maxLinesPerJob + d)
  int64_t block_capacity_;  // tile blocks held: enough for ring_lines_
  std::vector<int> tile_rows_;

  // Raw store: the chunk table is sized for maxLines at construction and never moves; chunks on first write.
  std::vector<std::unique_ptr<uint16_t[]>> chunks_;
  int64_t chunks_allocated_ = 0;
  std::vector<uint8_t> stored_;    // per line
  std::vector<uint8_t> gap_flag_;  // per line: declared a gap and passed by the frontier (JS thread only writes)
  int64_t stored_lines_ = 0;
  int64_t highest_line_ = 0;  // 1 + highest stored line
  int64_t duplicate_lines_ = 0;
  int64_t late_lines_ = 0;
  bool image_seen_ = false;

  // Calibration frames.
  std::vector<uint64_t> dark_sum_;
  std::vector<uint64_t> air_sum_;
  int64_t dark_count_ = 0;
  int64_t air_count_ = 0;
  std::unique_ptr<Calibration> calibration_;

  // Frontier and gaps.
  bool finished_ = false;
  int64_t total_lines_ = 0;
  int64_t frontier_ = 0;
  int64_t gap_until_ = 0;  // end of the last declared gap
  int64_t gap_lines_ = 0;

  // Tiles.
  int64_t next_column_ = 0;  // index of the next regular column (starts at next_column_ * strideLines)
  bool has_column_ = false;  // a column is being emitted (tile capacity ran out in the middle of it)
  int64_t column_line_ = 0;
  int64_t column_lines_ = 0;
  size_t column_row_ = 0;
  int64_t last_column_line_ = -1;
  bool final_done_ = false;
  int64_t tiles_emitted_ = 0;

  // Preview.
  int64_t preview_end_ = 0;

  // Tile blocks (allocated with the calibration), job state and scratch. The ring is allocated on the JS thread
  // without being touched (new[] of ~1.6 MB is an untouched mmap) and zeroed by the first job on the pool thread:
  // the first-touch page faults of a fresh ring, once per scan, used to land on the event loop
  // (bench/RESULTS.md, 'Tile ring zeroed on the pool thread').
  std::unique_ptr<float[]> blocks_;  // blocks_floats_ = block_capacity_ * energies * pixels
  size_t blocks_floats_ = 0;
  bool blocks_zeroed_ = false;  // JS thread: a job has been told to zero the ring (Job::zero_ring)
  Job job_;
  bool busy_ = false;
  PreviewAccumulator preview_acc_;    // worker
  int64_t preview_emitted_ = 0;       // worker: end of the last preview block written
  std::vector<float> line_buf_;       // worker: one calibrated line
  std::vector<float> column_buf_;     // worker: line sums of an unaligned tile column
  std::vector<float> zeros_;          // worker: padding
  std::vector<float> tile_means_;     // worker: block means of one tile column (ComputeColumnTiles scratch)
  std::vector<int> tile_group_rows_;  // worker
  std::vector<float> read_scratch_;   // JS thread (Read*)
};

}  // namespace scanline
