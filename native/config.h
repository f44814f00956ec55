// Plain configuration structs and the error type shared by the native core (no N-API in here).
// The options are validated once in TypeScript (src/stitch/options.ts); the binding copies them into
// StitcherConfig at construction and the core only guards against values that would make it unsafe.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace scanline {

// Stable error codes; the same strings as ERROR_CODES in src/errors/index.ts.
namespace code {
constexpr const char* kSliceSize = "SCANLINE_ERR_SLICE_SIZE";
constexpr const char* kSliceHeader = "SCANLINE_ERR_SLICE_HEADER";
constexpr const char* kSliceGeometry = "SCANLINE_ERR_SLICE_GEOMETRY";
constexpr const char* kSliceLineRange = "SCANLINE_ERR_SLICE_LINE_RANGE";
constexpr const char* kSliceReplayMismatch = "SCANLINE_ERR_SLICE_REPLAY_MISMATCH";
constexpr const char* kSliceCalibrationLate = "SCANLINE_ERR_SLICE_CALIBRATION_LATE";
constexpr const char* kStitchOptions = "SCANLINE_ERR_STITCH_OPTIONS";
constexpr const char* kStitchClosed = "SCANLINE_ERR_STITCH_CLOSED";
constexpr const char* kStitchBusy = "SCANLINE_ERR_STITCH_BUSY";
constexpr const char* kStitchBuffer = "SCANLINE_ERR_STITCH_BUFFER";
constexpr const char* kStitchFailed = "SCANLINE_ERR_STITCH_FAILED";
constexpr const char* kImageUnavailable = "SCANLINE_ERR_IMAGE_UNAVAILABLE";
constexpr const char* kStorageWrite = "SCANLINE_ERR_STORAGE_WRITE";
constexpr const char* kStorageRead = "SCANLINE_ERR_STORAGE_READ";
constexpr const char* kInferWorkerStart = "SCANLINE_ERR_INFER_WORKER_START";
}  // namespace code

// Thrown by the core; the binding turns it into a JS Error whose `code` property is `code`.
class StitchError : public std::runtime_error {
 public:
  StitchError(const char* error_code, const std::string& message)
      : std::runtime_error(message), code(error_code) {}
  const char* code;
};

struct MaterialParams {
  double min_attenuation = 0.05;
  double max_attenuation = 7.5;
  double ratio_thresholds[3] = {1.41, 1.34, 1.2};  // decreasing
};

struct TileParams {
  int size = 64;
  int downsample = 4;
  int stride_lines = 128;
  int overlap_pixels = 64;
};

// Mirrors StitcherOptions (src/stitch/types.ts); units and meaning are documented there.
struct StitcherConfig {
  int pixels = 0;
  int energies = 0;
  int64_t max_lines = 0;
  int chunk_lines = 0;
  int64_t reorder_window_lines = 0;
  int air_lines = 0;
  double dead_pixel_fraction = 0;
  double attenuation_max = 0;
  int max_lines_per_job = 0;
  MaterialParams material;
  TileParams tile;
  int preview_downsample = 1;
};

}  // namespace scanline
