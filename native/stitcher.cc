#include "stitcher.h"

#include "chunk_pool.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace scanline {

namespace {

std::string Range(int64_t first, int64_t count) {
  return "[" + std::to_string(first) + ", " + std::to_string(first + count) + ")";
}

void Require(bool ok, const char* what) {
  if (!ok) {
    throw StitchError(code::kStitchOptions,
                      std::string("invalid stitcher option ") + what + " (validate with validateStitcherOptions)");
  }
}

int64_t CeilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace

Stitcher::Stitcher(const StitcherConfig& config) : config_(config) {
  const StitcherConfig& c = config_;
  Require(c.pixels >= 1 && c.pixels <= 4096, "pixels");
  Require(c.energies == 1 || c.energies == 2, "energies");
  Require(c.max_lines >= 1 && c.max_lines <= (int64_t{1} << 24), "maxLines");
  Require(c.chunk_lines >= 1 && c.chunk_lines <= 65536, "chunkLines");
  Require(c.reorder_window_lines >= 0, "reorderWindowLines");
  Require(c.air_lines >= 1, "airLines");
  Require(c.dead_pixel_fraction >= 0 && c.dead_pixel_fraction <= 1, "deadPixelFraction");
  Require(c.attenuation_max > 0 && c.attenuation_max <= 30, "attenuationMax");
  Require(c.max_lines_per_job >= 1 && c.max_lines_per_job <= 65536, "maxLinesPerJob");
  Require(c.material.min_attenuation >= 0 && c.material.max_attenuation > c.material.min_attenuation, "material");
  Require(c.tile.size >= 1 && c.tile.size <= 1024 && c.tile.downsample >= 1 && c.tile.downsample <= 64, "tile.size");
  Require(c.tile.stride_lines >= 1, "tile.strideLines");
  Require(c.tile.overlap_pixels >= 0 && c.tile.overlap_pixels < c.tile.size * c.tile.downsample, "tile.overlapPixels");
  Require(c.preview_downsample >= 1 && c.preview_downsample <= 64, "previewDownsample");

  line_samples_ = static_cast<size_t>(c.energies) * c.pixels;
  span_ = c.tile.size * c.tile.downsample;
  tile_floats_ = static_cast<size_t>(c.energies) * c.tile.size * c.tile.size;
  const int d = c.preview_downsample;
  preview_bytes_ = static_cast<size_t>(CeilDiv(c.max_lines_per_job, d) + 1) * CeilDiv(c.pixels, d) * 4;
  // Lines a job may need: a tile span behind the old frontier, a preview block, and the job's own lines.
  ring_lines_ = static_cast<int64_t>(span_) + c.max_lines_per_job + d;
  block_capacity_ = ring_lines_ / c.tile.downsample + 3;
  tile_rows_ = TileRowPixels(c.pixels, c.tile);

  chunks_.resize(static_cast<size_t>(CeilDiv(c.max_lines, c.chunk_lines)));
  stored_.assign(static_cast<size_t>(c.max_lines), 0);
  gap_flag_.assign(static_cast<size_t>(c.max_lines), 0);
  dark_sum_.assign(line_samples_, 0);
  air_sum_.assign(line_samples_, 0);
  read_scratch_.assign(line_samples_, 0.0f);
  line_buf_.assign(line_samples_, 0.0f);
  column_buf_.assign(line_samples_, 0.0f);
  zeros_.assign(line_samples_, 0.0f);
  tile_means_.assign(static_cast<size_t>(config_.energies) * ((config_.pixels + config_.tile.downsample - 1) / config_.tile.downsample), 0.0f);
  preview_acc_.Init(c);
}

Stitcher::~Stitcher() {
  const size_t samples = static_cast<size_t>(config_.chunk_lines) * line_samples_;
  for (std::unique_ptr<uint16_t[]>& chunk : chunks_) ChunkPool::Instance().Give(std::move(chunk), samples);
}

uint16_t* Stitcher::MutableLine(int64_t line) {
  std::unique_ptr<uint16_t[]>& chunk = chunks_[static_cast<size_t>(line / config_.chunk_lines)];
  if (!chunk) {
    // Uninitialised on purpose: a line is read only once `stored_` says it was written.
    chunk = ChunkPool::Instance().Take(static_cast<size_t>(config_.chunk_lines) * line_samples_);
    ++chunks_allocated_;
  }
  return chunk.get() + static_cast<size_t>(line % config_.chunk_lines) * line_samples_;
}

PushResult Stitcher::Push(int kind, int64_t first_line, int64_t line_count, const uint16_t* payload,
                          size_t payload_length) {
  if (kind < 1 || kind > 3) {
    throw StitchError(code::kSliceHeader, "Expected 1, 2 or 3 for kind but received " + std::to_string(kind));
  }
  if (first_line < 0 || line_count < 0) {
    throw StitchError(code::kSliceLineRange, "slice lines " + Range(first_line, line_count) + " are not valid");
  }
  // line_count may be up to 2^53 (the binding's integers), so line_count * line_samples_ could wrap around to the
  // payload's length: it is compared by division first (dark and air frames have no line range to stop them).
  const bool fits = static_cast<uint64_t>(line_count) <= payload_length / line_samples_;
  if (!fits || payload_length != static_cast<size_t>(line_count) * line_samples_) {
    const bool representable = static_cast<uint64_t>(line_count) <= SIZE_MAX / line_samples_;
    throw StitchError(code::kSliceSize,
                      "slice payload has " + std::to_string(payload_length) + " samples, expected " +
                          std::to_string(line_count) + " lines x " + std::to_string(config_.energies) + " energies x " +
                          std::to_string(config_.pixels) + " pixels = " +
                          (representable ? std::to_string(static_cast<size_t>(line_count) * line_samples_)
                                         : std::string("2^64 or more")));
  }
  PushResult result;
  if (kind != 1) {
    if (image_seen_ || calibration_ || finished_) {
      throw StitchError(code::kSliceCalibrationLate,
                        std::string(kind == 2 ? "dark" : "air") + " frame received after image slices of the scan");
    }
    std::vector<uint64_t>& sum = kind == 2 ? dark_sum_ : air_sum_;
    for (int64_t l = 0; l < line_count; ++l) {
      const uint16_t* src = payload + static_cast<size_t>(l) * line_samples_;
      for (size_t i = 0; i < line_samples_; ++i) sum[i] += src[i];
    }
    (kind == 2 ? dark_count_ : air_count_) += line_count;
    result.new_lines = line_count;
    return result;
  }
  const int64_t limit = finished_ ? total_lines_ : config_.max_lines;
  if (first_line + line_count > limit) {
    throw StitchError(code::kSliceLineRange, "slice lines " + Range(first_line, line_count) + " exceed the scan's " +
                                                 std::to_string(limit) + " lines" +
                                                 (finished_ ? " (finish() was called)" : " (maxLines)"));
  }
  const size_t line_bytes = line_samples_ * sizeof(uint16_t);
  // Pass 1: every line already stored must match, else nothing is stored.
  for (int64_t i = 0; i < line_count; ++i) {
    const int64_t l = first_line + i;
    if (stored_[l] && std::memcmp(Line(l), payload + static_cast<size_t>(i) * line_samples_, line_bytes) != 0) {
      throw StitchError(code::kSliceReplayMismatch,
                        "line " + std::to_string(l) + " was already stored with different values");
    }
  }
  // Pass 2: store the new lines. A line below the declared frontier was declared a gap: stored, counted late.
  const int64_t declared = std::max(frontier_, gap_until_);
  for (int64_t i = 0; i < line_count; ++i) {
    const int64_t l = first_line + i;
    if (stored_[l]) {
      ++result.duplicate_lines;
      continue;
    }
    std::memcpy(MutableLine(l), payload + static_cast<size_t>(i) * line_samples_, line_bytes);
    stored_[l] = 1;
    ++result.new_lines;
    if (l < declared) ++late_lines_;
    highest_line_ = std::max(highest_line_, l + 1);
  }
  stored_lines_ += result.new_lines;
  duplicate_lines_ += result.duplicate_lines;
  if (line_count > 0) image_seen_ = true;
  return result;
}

void Stitcher::Finish(int64_t total_lines) {
  if (total_lines < highest_line_ || total_lines > config_.max_lines) {
    throw StitchError(code::kSliceLineRange, "totalLines " + std::to_string(total_lines) + " must be within [" +
                                                 std::to_string(highest_line_) + ", " +
                                                 std::to_string(config_.max_lines) + "] (stored lines .. maxLines)");
  }
  if (finished_) {
    if (total_lines == total_lines_) return;
    throw StitchError(code::kSliceLineRange,
                      "finish() was already called with totalLines " + std::to_string(total_lines_));
  }
  finished_ = true;
  total_lines_ = total_lines;
}

bool Stitcher::CalibrationReady() const {
  if (air_count_ > 0 || finished_) return true;
  const int64_t a = std::min<int64_t>(config_.air_lines, config_.max_lines);
  for (int64_t l = a - 1; l >= 0; --l) {
    if (!stored_[l]) return highest_line_ - l > config_.reorder_window_lines;  // past the window: it will be a gap
  }
  return true;
}

void Stitcher::FixCalibrationIfReady() {
  if (calibration_ || !(stored_lines_ > 0 || finished_) || !CalibrationReady()) return;
  std::vector<double> dark(line_samples_, 0.0), air(line_samples_, 0.0);
  if (dark_count_ > 0) {
    for (size_t i = 0; i < line_samples_; ++i) dark[i] = static_cast<double>(dark_sum_[i]) / dark_count_;
  }
  if (air_count_ > 0) {
    for (size_t i = 0; i < line_samples_; ++i) air[i] = static_cast<double>(air_sum_[i]) / air_count_;
  } else {
    // The leading lines of the scan (before the vehicle) that exist; full scale when there are none.
    std::vector<uint64_t> sum(line_samples_, 0);
    int64_t count = 0;
    const int64_t a = std::min<int64_t>(config_.air_lines, config_.max_lines);
    for (int64_t l = 0; l < a; ++l) {
      if (!stored_[l]) continue;
      const uint16_t* src = Line(l);
      for (size_t i = 0; i < line_samples_; ++i) sum[i] += src[i];
      ++count;
    }
    for (size_t i = 0; i < line_samples_; ++i) {
      air[i] = count > 0 ? static_cast<double>(sum[i]) / count : 65535.0;
    }
  }
  calibration_ = std::make_unique<Calibration>(config_.pixels, config_.energies, dark, air,
                                               config_.dead_pixel_fraction, config_.attenuation_max);
  blocks_floats_ = static_cast<size_t>(block_capacity_) * line_samples_;
  blocks_.reset(new float[blocks_floats_]);  // not touched here: the next job zeroes it on the pool thread
  blocks_zeroed_ = false;
}

const Job& Stitcher::BeginJob(float* tiles, size_t tiles_length, uint8_t* preview, size_t preview_length) {
  if (busy_) throw StitchError(code::kStitchBusy, "a processing job is already running on this stitcher");
  if (tiles_length < tile_floats_) {
    throw StitchError(code::kStitchBuffer, "tiles buffer holds " + std::to_string(tiles_length) +
                                               " floats, at least one tile (" + std::to_string(tile_floats_) +
                                               " floats) is needed");
  }
  if (preview_length < preview_bytes_) {
    throw StitchError(code::kStitchBuffer, "preview buffer holds " + std::to_string(preview_length) +
                                               " bytes, previewBytes is " + std::to_string(preview_bytes_));
  }
  FixCalibrationIfReady();
  Job& job = job_;
  job.segments.clear();
  job.gaps.clear();
  job.tiles.clear();
  job.tile_specs.clear();
  job.has_preview = false;
  job.tile_out = tiles;
  job.preview_out = preview;
  job.zero_ring = nullptr;
  job.zero_ring_floats = 0;
  job.zero_ring_done = false;
  if (blocks_ && !blocks_zeroed_) {
    job.zero_ring = blocks_.get();
    job.zero_ring_floats = blocks_floats_;
    blocks_zeroed_ = true;
  }
  job.start = job.end = frontier_;

  const int64_t end_limit = finished_ ? total_lines_ : config_.max_lines;
  const int64_t window = config_.reorder_window_lines;
  bool more_lines = false;
  if (calibration_) {
    // The frontier stays within ring_lines_ of the oldest line still needed: the pending tile column, a span behind
    // the old frontier (a final column may start there) and the unfinished preview block. The tile block ring is
    // sized for that window. (The preview block term only matters to the TypeScript reference, which keeps calibrated
    // lines; it is kept here so both plan identical jobs.)
    const int64_t old = frontier_;
    int64_t ring_start = std::min(preview_end_, std::max<int64_t>(0, old - span_));
    if (has_column_) {
      ring_start = std::min(ring_start, column_line_);
    } else if (!final_done_) {
      ring_start = std::min(ring_start, next_column_ * config_.tile.stride_lines);
    }
    const int64_t limit = std::min({old + config_.max_lines_per_job, ring_start + ring_lines_, end_limit});
    int64_t f = old;
    while (f < limit) {
      if (f < gap_until_) {
        const int64_t g = std::min(gap_until_, limit);
        job.segments.push_back({f, g, true});
        std::fill(gap_flag_.begin() + f, gap_flag_.begin() + g, uint8_t{1});
        f = g;
      } else if (stored_[f]) {
        int64_t g = f;
        while (g < limit && stored_[g]) ++g;
        job.segments.push_back({f, g, false});
        f = g;
      } else if (finished_ || highest_line_ - f > window) {
        int64_t g = f + 1;
        while (g < end_limit && !stored_[g]) ++g;  // up to the next stored line (or the end of the scan)
        gap_until_ = g;
        gap_lines_ += g - f;
        job.gaps.emplace_back(f, g);
      } else {
        break;
      }
    }
    frontier_ = f;
    job.end = f;
    more_lines = f < end_limit && (f < gap_until_ || stored_[f] || finished_ || highest_line_ - f > window);
  }

  bool tiles_pending = false;
  PlanTiles(job, tiles_length / tile_floats_, tiles_pending);

  const int64_t d = config_.preview_downsample;
  const bool at_end = finished_ && frontier_ == total_lines_;
  const int64_t target = at_end ? total_lines_ : (frontier_ / d) * d;
  // The frontier moves at most maxLinesPerJob lines per job and the previous strip ended at the last complete block
  // below it, so the strip is at most ceil(maxLinesPerJob / d) + 1 samples wide: previewBytes always suffices.
  const int64_t p1 = target;
  if (p1 > preview_end_) {
    job.has_preview = true;
    job.preview = PreviewSpec{preview_end_, p1 - preview_end_, static_cast<int>(CeilDiv(p1 - preview_end_, d)),
                              static_cast<int>(CeilDiv(config_.pixels, d))};
    preview_end_ = p1;
  }
  job.more = more_lines || tiles_pending;
  job.done = at_end && final_done_ && !has_column_ && preview_end_ == total_lines_;
  tiles_emitted_ += static_cast<int64_t>(job.tiles.size());
  busy_ = true;
  return job;
}

void Stitcher::PlanTiles(Job& job, size_t capacity, bool& pending) {
  const int64_t stride = config_.tile.stride_lines;
  const int span = span_;
  for (;;) {
    if (has_column_) {
      while (column_row_ < tile_rows_.size() && job.tiles.size() < capacity) {
        const int pixel = tile_rows_[column_row_++];
        const int slot = static_cast<int>(job.tiles.size());
        job.tiles.push_back(TileInfo{slot, column_line_, pixel, column_lines_, std::min(span, config_.pixels)});
        job.tile_specs.push_back(TileSpec{column_line_, pixel, column_lines_});
      }
      if (column_row_ < tile_rows_.size()) {
        pending = true;
        return;
      }
      has_column_ = false;
    }
    const int64_t c = next_column_ * stride;
    if (c + span <= frontier_) {
      has_column_ = true;
      column_line_ = c;
      column_lines_ = span;
      column_row_ = 0;
      last_column_line_ = c;
      ++next_column_;
      continue;
    }
    if (finished_ && frontier_ == total_lines_ && !final_done_) {
      final_done_ = true;
      if (total_lines_ > 0 && (last_column_line_ < 0 || last_column_line_ + span < total_lines_)) {
        has_column_ = true;
        column_line_ = std::max<int64_t>(0, total_lines_ - span);
        column_lines_ = std::min<int64_t>(span, total_lines_);
        column_row_ = 0;
        last_column_line_ = column_line_;
        continue;
      }
    }
    return;
  }
}

void Stitcher::EmitPreviewBlock(int64_t block_start, int64_t block_end) {
  const Job& job = job_;
  const int64_t x = job.has_preview ? (block_start - job.preview.line) / config_.preview_downsample : -1;
  const bool inside = x >= 0 && x < job.preview.width;  // always, by construction
  preview_acc_.EmitColumn(inside ? job.preview_out : nullptr, static_cast<size_t>(job.preview.width) * 4,
                          static_cast<int>(x), job.preview.height);
  preview_emitted_ = block_end;
}

void Stitcher::ExecuteJob() {
  const Job& job = job_;
  if (job.zero_ring) {
    std::fill(job.zero_ring, job.zero_ring + job.zero_ring_floats, 0.0f);
    job_.zero_ring_done = true;
  }
  const int ds = config_.tile.downsample;
  const int64_t d = config_.preview_downsample;
  const size_t n = line_samples_;
  float* __restrict line = line_buf_.data();
  const int64_t preview_end = job.has_preview ? job.preview.line + job.preview.lines : -1;
  for (const Job::Segment& s : job.segments) {
    for (int64_t l = s.start; l < s.end; ++l) {
      float* __restrict block = BlockSlot(l / ds);
      if (l % ds == 0) std::fill(block, block + n, 0.0f);
      if (s.gap) {
        preview_acc_.AddGapLine();  // gap lines add 0 to the tile block
      } else {
        calibration_->CalibrateLine(Line(l), line);
        AddInto(block, line, n);
        preview_acc_.AddLine(line);
      }
      if ((l + 1) % d == 0 || l + 1 == preview_end) {
        // A preview block is complete: it is column x of this job's strip (BeginJob planned [p0, p1) to match).
        EmitPreviewBlock(l / d * d, l + 1);
      }
    }
  }
  if (job.has_preview && preview_emitted_ < preview_end) {
    // The scan ended inside a block whose lines were all calibrated by earlier jobs (finish() came later).
    EmitPreviewBlock(preview_emitted_, preview_end);
  }
  preview_acc_.Flush();
  // Consecutive tiles of the same column are computed together (one pass over the column's blocks).
  for (size_t i = 0; i < job.tile_specs.size();) {
    const TileSpec& first = job.tile_specs[i];
    size_t k = i;
    tile_group_rows_.clear();
    while (k < job.tile_specs.size() && job.tile_specs[k].line == first.line) {
      tile_group_rows_.push_back(job.tile_specs[k].pixel);
      ++k;
    }
    const int64_t c = first.line;
    const int64_t valid = first.valid_lines;
    const bool aligned = c % ds == 0;
    auto column_sum = [&](int w) -> const float* {
      const int64_t offset = static_cast<int64_t>(w) * ds;
      if (offset >= valid) return zeros_.data();
      // A block at the end of a short scan holds only the lines that exist: the rest is the zero padding.
      if (aligned) return BlockSlot((c + offset) / ds);
      float* __restrict sum = column_buf_.data();
      std::fill(sum, sum + n, 0.0f);
      for (int j = 0; j < ds && offset + j < valid; ++j) {
        const int64_t l = c + offset + j;
        if (gap_flag_[l]) continue;
        calibration_->CalibrateLine(Line(l), line);
        AddInto(sum, line, n);
      }
      return sum;
    };
    ComputeColumnTiles(config_.tile, config_.pixels, config_.energies, tile_group_rows_.data(),
                       static_cast<int>(k - i), job.tile_out + i * tile_floats_, tile_means_.data(), column_sum);
    i = k;
  }
}

void Stitcher::CheckReadRange(int64_t first_line, int64_t line_count) const {
  if (first_line < 0 || line_count < 0 || first_line + line_count > config_.max_lines) {
    throw StitchError(code::kSliceLineRange, "Expected lines within [0, " + std::to_string(config_.max_lines) +
                                                 ") but received " + Range(first_line, line_count));
  }
}

std::vector<std::pair<int64_t, int64_t>> Stitcher::MissingRanges(int64_t first_line, int64_t line_count) const {
  CheckReadRange(first_line, line_count);
  std::vector<std::pair<int64_t, int64_t>> ranges;
  int64_t start = -1;
  for (int64_t l = first_line; l < first_line + line_count; ++l) {
    if (!stored_[l] && start < 0) start = l;
    if (stored_[l] && start >= 0) {
      ranges.emplace_back(start, l);
      start = -1;
    }
  }
  if (start >= 0) ranges.emplace_back(start, first_line + line_count);
  return ranges;
}

void Stitcher::ReadRaw(int64_t first_line, int64_t line_count, uint16_t* out, size_t out_length) const {
  CheckReadRange(first_line, line_count);
  if (out_length < static_cast<size_t>(line_count) * line_samples_) {
    throw StitchError(code::kStitchBuffer, "readRaw output holds " + std::to_string(out_length) + " samples, " +
                                               std::to_string(line_count * line_samples_) + " needed");
  }
  for (int64_t i = 0; i < line_count; ++i) {
    uint16_t* dst = out + static_cast<size_t>(i) * line_samples_;
    const int64_t l = first_line + i;
    if (stored_[l]) {
      std::memcpy(dst, Line(l), line_samples_ * sizeof(uint16_t));
    } else {
      std::fill(dst, dst + line_samples_, uint16_t{0});
    }
  }
}

void Stitcher::ReadAttenuation(int energy, int64_t first_line, int64_t line_count, float* out, size_t out_length) {
  if (energy < 0 || energy >= config_.energies) {
    throw StitchError(code::kSliceGeometry, "Expected an energy index 0.." + std::to_string(config_.energies - 1) +
                                                 " but received " + std::to_string(energy));
  }
  CheckReadRange(first_line, line_count);
  const size_t pixels = static_cast<size_t>(config_.pixels);
  if (out_length < static_cast<size_t>(line_count) * pixels) {
    throw StitchError(code::kStitchBuffer, "readAttenuation output holds " + std::to_string(out_length) +
                                               " floats, " + std::to_string(line_count * pixels) + " needed");
  }
  FixCalibrationIfReady();
  if (!calibration_) {
    throw StitchError(code::kImageUnavailable, "calibration is not ready yet (waiting for air lines or an air frame)");
  }
  for (int64_t i = 0; i < line_count; ++i) {
    float* dst = out + static_cast<size_t>(i) * pixels;
    const int64_t l = first_line + i;
    if (!stored_[l]) {
      std::fill(dst, dst + pixels, 0.0f);
      continue;
    }
    calibration_->CalibrateLine(Line(l), read_scratch_.data());
    std::memcpy(dst, read_scratch_.data() + energy * pixels, pixels * sizeof(float));
  }
}

void Stitcher::ReadMaterial(int64_t first_line, int64_t line_count, uint8_t* out, size_t out_length) {
  if (config_.energies != 2) {
    throw StitchError(code::kSliceGeometry, "readMaterial needs a dual-energy scan (energies is 1)");
  }
  CheckReadRange(first_line, line_count);
  const size_t pixels = static_cast<size_t>(config_.pixels);
  if (out_length < static_cast<size_t>(line_count) * pixels) {
    throw StitchError(code::kStitchBuffer, "readMaterial output holds " + std::to_string(out_length) + " bytes, " +
                                               std::to_string(line_count * pixels) + " needed");
  }
  FixCalibrationIfReady();
  if (!calibration_) {
    throw StitchError(code::kImageUnavailable, "calibration is not ready yet (waiting for air lines or an air frame)");
  }
  for (int64_t i = 0; i < line_count; ++i) {
    uint8_t* dst = out + static_cast<size_t>(i) * pixels;
    const int64_t l = first_line + i;
    if (!stored_[l]) {
      std::fill(dst, dst + pixels, uint8_t{0});
      continue;
    }
    calibration_->CalibrateLine(Line(l), read_scratch_.data());
    const float* high = read_scratch_.data();
    const float* low = high + pixels;
    for (size_t p = 0; p < pixels; ++p) dst[p] = ClassifyMaterial(high[p], low[p], config_.material);
  }
}

StitcherStats Stitcher::Stats() const {
  StitcherStats s{};
  s.stored_lines = stored_lines_;
  s.highest_line = highest_line_;
  s.frontier = frontier_;
  s.gap_lines = gap_lines_;
  s.late_lines = late_lines_;
  s.duplicate_lines = duplicate_lines_;
  s.calibrated = calibration_ != nullptr;
  s.dead_pixels = calibration_ ? calibration_->dead_pixels() : 0;
  s.tiles_emitted = tiles_emitted_;
  const size_t chunk_bytes = static_cast<size_t>(config_.chunk_lines) * line_samples_ * sizeof(uint16_t);
  size_t bytes = static_cast<size_t>(chunks_allocated_) * chunk_bytes + chunks_.size() * sizeof(void*) +
                 stored_.size() + gap_flag_.size() + (dark_sum_.size() + air_sum_.size()) * sizeof(uint64_t) +
                 (blocks_floats_ + 5 * line_samples_) * sizeof(float);
  if (calibration_) bytes += calibration_->memory_bytes();
  s.memory_bytes = static_cast<int64_t>(bytes);
  return s;
}

}  // namespace scanline
