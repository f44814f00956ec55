// libFuzzer harness for the per-scan stitcher core (native/stitcher.h), linked without Node.
//
// An input is a stitcher config, decoded from the first bytes within the ranges of src/stitch/options.ts, then a
// sequence of calls made the way the binding (native/stitcher_binding.cc) makes them: pushes of image, dark and air
// lines, pushes with any kind, line range and payload length raw JS could pass (integers up to 2^53 in magnitude,
// the kind narrowed to [-1000, 1000] as the binding does), finish, process jobs split into BeginJob, pushes while the
// job "runs", ExecuteJob and EndJob (and, rarely, EndJob without ExecuteJob: the binding's path when the worker
// cannot be created), readRaw, readAttenuation, readMaterial, missingRanges and stats. At the end the scan is
// processed until its jobs say there is no more work.
//
// Every call must return or throw StitchError with a registered code; anything else is a crash: another exception,
// a sanitizer report (ASan: out-of-bounds, use-after-free; UBSan: overflow, bad shifts, float-to-int overflow), or a
// broken invariant (FUZZ_CHECK): pushes store and replay exactly what a shadow copy predicts; readRaw and
// missingRanges agree with it; a job never moves backwards, writes at most the tiles its buffer holds, plans tiles
// and a preview strip inside the frontier and the buffers, produces tiles in [0, attenuationMax] and a preview strip
// with every sample written; a job that says `more` made progress; once finished, a job without `more` is `done`.
//
// Sizes are kept small so an iteration takes microseconds: pixels 1..128 (or one of a few widths up to 4096, then
// with small tiles and jobs), and the wide ranges of maxLines, chunkLines, reorderWindowLines, maxLinesPerJob and
// the tile geometry only when a flag bit asks for them; the chunk table has at most 64 Ki entries, a chunk at most
// 2^24 samples, a push 2^20, and the tile stride, the tiles per job and the step between tile rows are raised until
// a scan's tile work is about 2^20 samples.
//
// Input layout (see FuzzInput in fuzz_input.h for how values are read):
//   config: gate u8 (flags u8 follows when its three top bits are set), pixels u8, energies u8, maxLines, chunkLines, reorderWindowLines, airLines, deadPixelFraction
//           u8, attenuationMax u8, maxLinesPerJob, material (3 + 3 u8), tile (size, downsample, strideLines,
//           overlapPixels), previewDownsample u8, tiles per job u8
//   then ops: op u8 (% 12) and its operands, until the input ends.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#include "../../../native/stitcher.h"
#include "fuzz_input.h"

using scanline::Job;
using scanline::PushResult;
using scanline::StitchError;
using scanline::Stitcher;
using scanline::StitcherConfig;
using scanline::StitcherStats;
using scanline_fuzz::DrawMaterial;
using scanline_fuzz::FuzzInput;

namespace {

constexpr size_t kMaxPushSamples = size_t{1} << 20;
constexpr size_t kMaxChunkSamples = size_t{1} << 24;
constexpr size_t kMaxShadowSamples = size_t{1} << 22;

const char* const kCodes[] = {
    scanline::code::kSliceSize,          scanline::code::kSliceHeader,         scanline::code::kSliceGeometry,
    scanline::code::kSliceLineRange,     scanline::code::kSliceReplayMismatch, scanline::code::kSliceCalibrationLate,
    scanline::code::kStitchOptions,      scanline::code::kStitchClosed,        scanline::code::kStitchBusy,
    scanline::code::kStitchBuffer,       scanline::code::kStitchFailed,        scanline::code::kImageUnavailable,
};

void CheckCode(const StitchError& e) {
  bool known = false;
  for (const char* c : kCodes) known = known || (e.code != nullptr && std::strcmp(e.code, c) == 0);
  FUZZ_CHECK(known, "StitchError with an unregistered code %s: %s", e.code ? e.code : "(null)", e.what());
}

int NarrowKind(int64_t v) { return static_cast<int>(std::max<int64_t>(std::min<int64_t>(v, 1000), -1000)); }

StitcherConfig DecodeConfig(FuzzInput& in, int& tiles_per_job) {
  // The wide ranges cost time (a 2^24-line scan zeroes 32 MiB of line flags), so they need the three top bits set.
  const uint8_t flags = (in.U8() & 0xe0) == 0xe0 ? in.U8() : 0;
  const bool wide_lines = flags & 1, wide_window = flags & 2, wide_job = flags & 4, big_tile = flags & 8,
             wide_chunk = flags & 16, wide_air = flags & 32;
  StitcherConfig c;
  const uint8_t p = in.U8();
  static const int kLargePixels[8] = {2048, 4096, 4095, 1000, 1024, 3001, 2049, 257};
  const bool large_pixels = (p & 0xe0) == 0xe0;  // one pixels byte in eight: they cost the most
  c.pixels = large_pixels ? kLargePixels[p & 7] : 1 + (p & 0x7f);
  c.energies = 1 + (in.U8() & 1);
  // Wide: log-uniform up to 2^24 (16 Mi lines, the schema's maximum).
  c.max_lines = wide_lines ? std::min<int64_t>(int64_t{1} << 24, (int64_t{1} << in.Range(0, 24)) + in.U16()) : in.Range(1, 4096);
  c.chunk_lines = static_cast<int>(wide_chunk ? in.Range(1, 65536) : in.Range(1, 64));
  if (large_pixels) c.max_lines = std::min<int64_t>(c.max_lines, 64);  // wide lines: few of them
  c.reorder_window_lines = wide_window ? in.Range(0, int64_t{1} << 24) : in.Range(0, 64);
  c.air_lines = static_cast<int>(wide_air ? in.Range(1, 65536) : in.Range(1, 64));
  c.dead_pixel_fraction = in.U8() / 255.0;
  c.attenuation_max = (in.U8() + 1) / 256.0 * 30.0;
  c.max_lines_per_job = static_cast<int>(wide_job && !large_pixels ? in.Range(1, 65536) : in.Range(1, 256));
  DrawMaterial(in, c.material);
  const bool big = big_tile && !large_pixels;
  c.tile.size = static_cast<int>(big ? in.Range(1, 1024) : in.Range(1, 16));
  c.tile.downsample = static_cast<int>(big ? in.Range(1, 64) : in.Range(1, 8));
  c.tile.stride_lines = static_cast<int>(wide_lines ? in.Range(1, int64_t{1} << 24) : in.Range(1, 512));
  const int span = c.tile.size * c.tile.downsample;
  c.tile.overlap_pixels = static_cast<int>(in.Range(0, span - 1));
  c.preview_downsample = static_cast<int>(in.Range(1, 64));
  tiles_per_job = static_cast<int>(in.Range(1, big ? 2 : 8));
  // Keep the chunk table at most 64 Ki entries, a chunk (chunkLines x energies x pixels) and the tile block ring at
  // most a few tens of MiB.
  c.chunk_lines = static_cast<int>(std::max<int64_t>(c.chunk_lines, (c.max_lines + 65535) / 65536));
  const size_t samples = static_cast<size_t>(c.energies) * c.pixels;
  while (static_cast<size_t>(c.chunk_lines) * samples > kMaxChunkSamples) c.chunk_lines /= 2;
  // Tile work of a scan at most ~2^20 samples (~10 ms): per tile column, the recalibration of an unaligned column
  // for each job's tiles (jobs x tile width x line samples x downsample) and the tiles themselves (rows x tile area
  // x downsample x energies). A 1-line stride, 1 tile per job and 1000 tile rows on a 4096-pixel detector took
  // seconds per input. The stride is raised first, then the tiles per job, then the step between tile rows.
  const int64_t tile_floats = static_cast<int64_t>(c.energies) * c.tile.size * c.tile.size;
  const auto tile_work = [&] {
    const int64_t step = span - c.tile.overlap_pixels;
    const int64_t rows = c.pixels < span ? 1 : (c.pixels - span) / step + 2;
    const int64_t jobs = (rows + tiles_per_job - 1) / tiles_per_job;
    return (c.max_lines / c.tile.stride_lines + 1) *
           (jobs * c.tile.size * static_cast<int64_t>(samples) + rows * tile_floats) * c.tile.downsample;
  };
  constexpr int64_t kTileWork = int64_t{1} << 20;
  while (tile_work() > kTileWork && c.tile.stride_lines < (1 << 24)) {
    c.tile.stride_lines = std::min(c.tile.stride_lines * 2, 1 << 24);
  }
  while (tile_work() > kTileWork && tile_floats * tiles_per_job * 2 <= (int64_t{1} << 18)) tiles_per_job *= 2;
  while (tile_work() > kTileWork && c.tile.overlap_pixels > 0) c.tile.overlap_pixels /= 2;
  while (static_cast<size_t>(span + c.max_lines_per_job) / c.tile.downsample * samples > (size_t{1} << 24) &&
         c.max_lines_per_job > 1) {
    c.max_lines_per_job /= 2;
  }
  return c;
}

class Harness {
 public:
  Harness(const StitcherConfig& config, int tiles_per_job)
      : c_(config), s_(config), samples_(static_cast<size_t>(config.energies) * config.pixels) {
    // Not zeroed (a job writes every float of the tiles it reports, and only those are read): zeroing megabytes per
    // input was a tenth of the harness's time.
    tiles_length_ = s_.tile_floats() * tiles_per_job;
    tiles_.reset(new float[tiles_length_]);
    preview_.resize(s_.preview_bytes());
    if (static_cast<size_t>(c_.max_lines) * samples_ <= kMaxShadowSamples) {
      shadow_.resize(static_cast<size_t>(c_.max_lines) * samples_);
      have_.assign(static_cast<size_t>(c_.max_lines), 0);
    }
  }

  void Run(FuzzInput& in) {
    while (!in.empty()) Step(in);
    if (s_.busy()) ExecuteAndEnd();
    Drain();
  }

 private:
  bool shadowed() const { return !have_.empty(); }

  void Step(FuzzInput& in) {
    const uint8_t op = in.U8() % 12;
    try {
      switch (op) {
        case 0:
        case 1:
          PushImage(in);
          break;
        case 2:
          PushCalibration(in);
          break;
        case 3:
          PushAnything(in);
          break;
        case 4:
          Finish(in);
          break;
        case 5:
          Begin(in);
          break;
        case 6:
          if (s_.busy()) ExecuteAndEnd();
          break;
        case 7:
          // The binding ends a job without running it only when its worker cannot be created (out of memory).
          if (s_.busy() && in.U8() % 8 == 0) {
            s_.EndJob();
            skipped_job_ = true;
          }
          break;
        case 8:
          ReadRaw(in);
          break;
        case 9:
          ReadAttenuation(in);
          break;
        case 10:
          ReadMaterial(in);
          break;
        default:
          Missing(in);
          break;
      }
    } catch (const StitchError& e) {
      CheckCode(e);
    }
  }

  std::vector<uint16_t>& Payload(size_t n) {
    payload_.resize(n);
    return payload_;
  }

  void PushImage(FuzzInput& in) {
    const StitcherStats st = s_.Stats();
    int64_t first;
    switch (in.U8() % 4) {
      case 0:
        first = st.highest_line;
        break;
      case 1:
        first = in.Range(0, c_.max_lines - 1);
        break;
      case 2:
        first = std::max<int64_t>(0, st.frontier - in.U8());
        break;
      default:
        first = in.JsInteger();
        break;
    }
    int64_t count = 1 + in.U8() % 32;
    count = std::min<int64_t>(count, static_cast<int64_t>(kMaxPushSamples / samples_));
    std::vector<uint16_t>& p = Payload(static_cast<size_t>(count) * samples_);
    in.Fill(p.data(), p.size());
    // A replay of stored lines, byte for byte, now and then.
    if (shadowed() && first >= 0 && first + count <= c_.max_lines && in.U8() % 4 == 0) {
      for (int64_t i = 0; i < count; ++i) {
        if (have_[first + i]) {
          std::memcpy(p.data() + i * samples_, shadow_.data() + (first + i) * samples_, samples_ * 2);
        }
      }
    }
    Push(1, first, count, p.data(), p.size());
  }

  void PushCalibration(FuzzInput& in) {
    const int kind = 2 + (in.U8() & 1);
    const int64_t count = in.Range(0, 4);
    std::vector<uint16_t>& p = Payload(static_cast<size_t>(count) * samples_);
    in.Fill(p.data(), p.size());
    Push(kind, in.Range(0, 3), count, p.data(), p.size());
  }

  void PushAnything(FuzzInput& in) {
    // A valid kind with hostile lines and lengths, or any kind.
    const int kind = in.Bit() ? static_cast<int>(in.Range(1, 3)) : NarrowKind(in.JsInteger());
    const int64_t first = in.JsInteger();
    // Any integer, or one where count x energies x pixels crosses 2^32, 2^53 or 2^64.
    const int64_t count = in.Bit() ? in.JsInteger() : in.CrossingCount(static_cast<int64_t>(samples_));
    size_t length;
    switch (in.U8() % 3) {
      case 0:
        length = count >= 0 && static_cast<uint64_t>(count) <= kMaxPushSamples / samples_ ? count * samples_ : 0;
        break;
      case 1:
        length = static_cast<size_t>(in.Range(0, 4096));
        break;
      default:
        length = 0;
        break;
    }
    std::vector<uint16_t>& p = Payload(length);
    in.Fill(p.data(), p.size());
    Push(kind, first, count, p.data(), p.size());
  }

  void Push(int kind, int64_t first, int64_t count, const uint16_t* payload, size_t length) {
    // What a successful image push must do, by the shadow copy.
    bool mismatch = false;
    int64_t expect_new = 0;
    const bool in_range = kind == 1 && first >= 0 && count >= 0 && first + count <= c_.max_lines &&
                          length == static_cast<size_t>(count) * samples_;
    if (shadowed() && in_range) {
      for (int64_t i = 0; i < count; ++i) {
        const size_t l = static_cast<size_t>(first + i);
        if (!have_[l]) {
          ++expect_new;
        } else if (std::memcmp(shadow_.data() + l * samples_, payload + i * samples_, samples_ * 2) != 0) {
          mismatch = true;
        }
      }
    }
    PushResult r;
    try {
      r = s_.Push(kind, first, count, payload, length);
    } catch (const StitchError& e) {
      CheckCode(e);
      if (shadowed() && in_range && mismatch && !finished_) {
        FUZZ_CHECK(std::strcmp(e.code, scanline::code::kSliceReplayMismatch) == 0, "expected a replay mismatch, got %s",
                   e.code);
      }
      return;
    }
    FUZZ_CHECK(kind >= 1 && kind <= 3 && first >= 0 && count >= 0, "push(%d, %lld, %lld) accepted", kind,
               static_cast<long long>(first), static_cast<long long>(count));
    FUZZ_CHECK(length == static_cast<size_t>(count) * samples_ && length / samples_ == static_cast<size_t>(count),
               "push of %lld lines accepted a payload of %zu samples (%zu per line)", static_cast<long long>(count),
               length, samples_);
    if (kind != 1) {
      FUZZ_CHECK(r.new_lines == count && r.duplicate_lines == 0, "calibration push counted %lld new lines of %lld",
                 static_cast<long long>(r.new_lines), static_cast<long long>(count));
      return;
    }
    FUZZ_CHECK(first + count <= (finished_ ? total_ : c_.max_lines), "push beyond the scan accepted");
    FUZZ_CHECK(r.new_lines + r.duplicate_lines == count, "push counted %lld + %lld of %lld lines",
               static_cast<long long>(r.new_lines), static_cast<long long>(r.duplicate_lines),
               static_cast<long long>(count));
    if (!shadowed()) return;
    FUZZ_CHECK(!mismatch, "a replay with different values was accepted");
    FUZZ_CHECK(r.new_lines == expect_new, "push stored %lld new lines, the shadow expected %lld",
               static_cast<long long>(r.new_lines), static_cast<long long>(expect_new));
    for (int64_t i = 0; i < count; ++i) {
      const size_t l = static_cast<size_t>(first + i);
      if (!have_[l]) std::memcpy(shadow_.data() + l * samples_, payload + i * samples_, samples_ * 2);
      have_[l] = 1;
    }
  }

  void Finish(FuzzInput& in) {
    const StitcherStats st = s_.Stats();
    int64_t total;
    switch (in.U8() % 3) {
      case 0:
        total = st.highest_line;
        break;
      case 1:
        total = st.highest_line + in.U8();
        break;
      default:
        total = in.JsInteger();
        break;
    }
    s_.Finish(total);
    FUZZ_CHECK(total >= st.highest_line && total <= c_.max_lines && (!finished_ || total == total_),
               "finish(%lld) accepted", static_cast<long long>(total));
    finished_ = true;
    total_ = total;
  }

  void Begin(FuzzInput& in) {
    size_t tiles_length = tiles_length_;
    size_t preview_length = preview_.size();
    const uint8_t mode = in.U8();
    if (mode % 16 == 1) tiles_length = static_cast<size_t>(in.Range(0, static_cast<int64_t>(s_.tile_floats()) - 1));
    if (mode % 16 == 2) preview_length = static_cast<size_t>(in.Range(0, static_cast<int64_t>(preview_.size())));
    const bool was_busy = s_.busy();
    const StitcherStats before = s_.Stats();
    const Job& job = s_.BeginJob(tiles_.get(), tiles_length, preview_.data(), preview_length);
    FUZZ_CHECK(!was_busy, "BeginJob on a busy stitcher");
    CheckPlan(job, before, tiles_length / s_.tile_floats());
  }

  void CheckPlan(const Job& job, const StitcherStats& before, size_t capacity) {
    const StitcherStats st = s_.Stats();
    const int64_t span = static_cast<int64_t>(c_.tile.size) * c_.tile.downsample;
    FUZZ_CHECK(job.start == before.frontier && job.end == st.frontier && job.start <= job.end,
               "job [%lld, %lld) after frontier %lld", static_cast<long long>(job.start),
               static_cast<long long>(job.end), static_cast<long long>(before.frontier));
    FUZZ_CHECK(job.end - job.start <= c_.max_lines_per_job, "job of %lld lines",
               static_cast<long long>(job.end - job.start));
    FUZZ_CHECK(job.end <= (finished_ ? total_ : c_.max_lines), "frontier %lld beyond the scan",
               static_cast<long long>(job.end));
    int64_t covered = job.start;
    for (const Job::Segment& seg : job.segments) {
      FUZZ_CHECK(seg.start == covered && seg.end > seg.start, "segments not contiguous");
      if (!seg.gap && shadowed()) {
        for (int64_t l = seg.start; l < seg.end; ++l) FUZZ_CHECK(have_[l], "segment line %lld never stored", static_cast<long long>(l));
      }
      covered = seg.end;
    }
    FUZZ_CHECK(covered == job.end, "segments end at %lld, the job at %lld", static_cast<long long>(covered),
               static_cast<long long>(job.end));
    FUZZ_CHECK(job.tiles.size() <= capacity && job.tiles.size() == job.tile_specs.size(), "%zu tiles for %zu slots",
               job.tiles.size(), capacity);
    for (size_t i = 0; i < job.tiles.size(); ++i) {
      const scanline::TileInfo& t = job.tiles[i];
      FUZZ_CHECK(t.slot == static_cast<int>(i) && t.line >= 0 && t.lines >= 1 && t.lines <= span &&
                     t.line + t.lines <= job.end && t.pixel >= 0 && t.pixel + t.pixels <= c_.pixels,
                 "tile %zu at line %lld (%lld lines), pixel %d (%d pixels), frontier %lld", i,
                 static_cast<long long>(t.line), static_cast<long long>(t.lines), t.pixel, t.pixels,
                 static_cast<long long>(job.end));
    }
    if (job.has_preview) {
      const int d = c_.preview_downsample;
      const scanline::PreviewSpec& p = job.preview;
      FUZZ_CHECK(p.line == preview_end_ && p.line % d == 0 && p.lines >= 1 && p.line + p.lines <= job.end &&
                     p.width == (p.lines + d - 1) / d && p.height == (c_.pixels + d - 1) / d &&
                     static_cast<size_t>(p.width) * p.height * 4 <= preview_.size(),
                 "preview strip at %lld, %lld lines, %d x %d, buffer %zu bytes, previous end %lld",
                 static_cast<long long>(p.line), static_cast<long long>(p.lines), p.width, p.height, preview_.size(),
                 static_cast<long long>(preview_end_));
      preview_end_ = p.line + p.lines;
      // Cleared so ExecuteAndEnd can tell that every sample of the strip was written.
      std::fill(preview_.begin(), preview_.begin() + static_cast<size_t>(p.width) * p.height * 4, uint8_t{0});
    }
    if (job.more) {
      FUZZ_CHECK(job.end > job.start || !job.tiles.empty() || job.has_preview || !job.gaps.empty(),
                 "a job said more but did nothing (frontier %lld)", static_cast<long long>(job.end));
    } else if (finished_) {
      FUZZ_CHECK(job.done, "finished scan: a job said no more work but not done (frontier %lld of %lld)",
                 static_cast<long long>(job.end), static_cast<long long>(total_));
    }
    planned_ = &job;
  }

  void ExecuteAndEnd() {
    s_.ExecuteJob();
    const Job& job = *planned_;
    const float limit = static_cast<float>(c_.attenuation_max) * 1.0001f;
    const size_t floats = job.tiles.size() * s_.tile_floats();
    const float* tiles = tiles_.get();
    for (size_t i = 0; i < floats; ++i) {
      const float v = tiles[i];
      FUZZ_CHECK(v >= 0.0f && v <= limit, "tile value %g at float %zu, attenuationMax %g", static_cast<double>(v), i,
                 c_.attenuation_max);
    }
    if (job.has_preview && !skipped_job_) {
      const size_t n = static_cast<size_t>(job.preview.width) * job.preview.height;
      for (size_t i = 0; i < n; ++i) {
        FUZZ_CHECK(preview_[i * 4 + 3] == 255, "preview sample %zu of %d x %d not written", i, job.preview.width,
                   job.preview.height);
      }
    }
    s_.EndJob();
  }

  void ReadRaw(FuzzInput& in) {
    const int64_t first = in.Bit() ? in.Range(0, c_.max_lines) : in.JsInteger();
    const int64_t count = in.Bit() ? in.Range(0, 64) : in.JsInteger();
    const size_t need = count > 0 && count <= 64 ? static_cast<size_t>(count) * samples_ : 0;
    const size_t length = in.U8() % 8 == 0 ? static_cast<size_t>(in.Range(0, 256)) : need;
    std::vector<uint16_t> out(std::min(length, kMaxPushSamples));
    s_.ReadRaw(first, count, out.data(), out.size());
    FUZZ_CHECK(first >= 0 && count >= 0 && first + count <= c_.max_lines && out.size() >= need, "readRaw accepted");
    if (!shadowed()) return;
    for (int64_t i = 0; i < count; ++i) {
      const size_t l = static_cast<size_t>(first + i);
      for (size_t k = 0; k < samples_; ++k) {
        const uint16_t want = have_[l] ? shadow_[l * samples_ + k] : 0;
        FUZZ_CHECK(out[i * samples_ + k] == want, "readRaw line %zu sample %zu: %u, stored %u", l, k,
                   out[i * samples_ + k], want);
      }
    }
  }

  void ReadAttenuation(FuzzInput& in) {
    const int energy = NarrowKind(in.Bit() ? in.Range(0, 1) : in.JsInteger());
    const int64_t first = in.Bit() ? in.Range(0, c_.max_lines) : in.JsInteger();
    const int64_t count = in.Bit() ? in.Range(0, 64) : in.JsInteger();
    const size_t need = count > 0 && count <= 64 ? static_cast<size_t>(count) * c_.pixels : 0;
    const size_t length = in.U8() % 8 == 0 ? static_cast<size_t>(in.Range(0, 256)) : need;
    std::vector<float> out(std::min(length, kMaxPushSamples));
    s_.ReadAttenuation(energy, first, count, out.data(), out.size());
    const float limit = static_cast<float>(c_.attenuation_max) * 1.0001f;
    for (size_t i = 0; i < need; ++i) {
      FUZZ_CHECK(out[i] >= 0.0f && out[i] <= limit, "attenuation %g", static_cast<double>(out[i]));
    }
  }

  void ReadMaterial(FuzzInput& in) {
    const int64_t first = in.Bit() ? in.Range(0, c_.max_lines) : in.JsInteger();
    const int64_t count = in.Bit() ? in.Range(0, 64) : in.JsInteger();
    const size_t need = count > 0 && count <= 64 ? static_cast<size_t>(count) * c_.pixels : 0;
    const size_t length = in.U8() % 8 == 0 ? static_cast<size_t>(in.Range(0, 256)) : need;
    std::vector<uint8_t> out(std::min(length, kMaxPushSamples));
    s_.ReadMaterial(first, count, out.data(), out.size());
    for (size_t i = 0; i < need; ++i) FUZZ_CHECK(out[i] <= 5, "material class %u", out[i]);
  }

  void Missing(FuzzInput& in) {
    const int64_t first = in.Bit() ? in.Range(0, c_.max_lines) : in.JsInteger();
    const int64_t count = in.Bit() ? in.Range(0, 4096) : in.JsInteger();
    const StitcherStats st = s_.Stats();
    FUZZ_CHECK(st.frontier <= c_.max_lines && st.highest_line <= c_.max_lines && st.stored_lines <= st.highest_line,
               "stats: frontier %lld, highest %lld, stored %lld", static_cast<long long>(st.frontier),
               static_cast<long long>(st.highest_line), static_cast<long long>(st.stored_lines));
    const std::vector<std::pair<int64_t, int64_t>> ranges = s_.MissingRanges(first, count);
    if (!shadowed()) return;
    int64_t l = first;
    for (const auto& range : ranges) {
      FUZZ_CHECK(range.first >= l && range.first < range.second && range.second <= first + count, "missing range");
      for (; l < range.first; ++l) FUZZ_CHECK(have_[l], "line %lld stored but not reported", static_cast<long long>(l));
      for (; l < range.second; ++l) FUZZ_CHECK(!have_[l], "line %lld reported missing", static_cast<long long>(l));
    }
    for (; l < first + count; ++l) FUZZ_CHECK(have_[l], "line %lld missing but not reported", static_cast<long long>(l));
  }

  // Processes until the jobs say there is nothing more to do. Bounded (4096 jobs, and lines of at most 2^20 samples
  // in all: a 2^24-line scan declared finished is millions of gap lines, each costing a preview column).
  void Drain() {
    const int64_t start = s_.Stats().frontier;
    const int64_t max_lines = std::max<int64_t>(256, static_cast<int64_t>((size_t{1} << 20) / samples_));
    for (int i = 0; i < 4096 && s_.Stats().frontier - start < max_lines; ++i) {
      const StitcherStats before = s_.Stats();
      const Job& job = s_.BeginJob(tiles_.get(), tiles_length_, preview_.data(), preview_.size());
      CheckPlan(job, before, tiles_length_ / s_.tile_floats());
      const bool more = job.more;
      ExecuteAndEnd();
      if (!more) break;
    }
  }

  const StitcherConfig c_;
  Stitcher s_;
  const size_t samples_;
  std::unique_ptr<float[]> tiles_;
  size_t tiles_length_;
  std::vector<uint8_t> preview_;
  std::vector<uint16_t> payload_;
  std::vector<uint16_t> shadow_;  // line-major copy of what was stored (empty when maxLines is too large)
  std::vector<uint8_t> have_;
  const Job* planned_ = nullptr;
  bool finished_ = false;
  int64_t total_ = 0;
  int64_t preview_end_ = 0;
  bool skipped_job_ = false;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput in(data, size);
  int tiles_per_job = 1;
  const StitcherConfig config = DecodeConfig(in, tiles_per_job);
  std::unique_ptr<Harness> h;
  try {
    h = std::make_unique<Harness>(config, tiles_per_job);
  } catch (const StitchError& e) {
    FUZZ_CHECK(false, "a config within the schema's ranges was refused: %s", e.what());
  }
  h->Run(in);
  return 0;
}
