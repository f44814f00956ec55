// libFuzzer harness for the stitcher's pixel kernels with odd geometry, linked without Node: tile planning and
// extraction (native/tiles.h: TileRowPixels, ComputeColumnTiles), preview strips (native/preview.h:
// PreviewAccumulator) and calibration (native/calibration.h: Calibration, CalibrateLine). Geometry covers the whole
// range of src/stitch/options.ts where it is cheap (pixels 1..4096 for row planning; smaller for the pixel work),
// including detectors that are not a multiple of the downsample factor, tiles larger than the detector and any
// overlap below the tile span. Scratch and output buffers are allocated to exactly the size the contracts state, so
// ASan reports a kernel that strays past them.
//
// Checked against the contracts in the headers: tile rows are increasing, inside the detector and leave no pixel
// uncovered; each tile equals a plain sum over its block (zero padding, divided by downsample^2); every preview
// sample is written, gap blocks are red and the others have the material class of their block means and the
// shading of PreviewColour (to 1 unit of rounding); calibrated attenuations are finite and in [0, attenuationMax].
//
// Input: ops until the input ends: op u8 (% 3: tiles, preview, calibration) and its operands (FuzzInput).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "../../../native/calibration.h"
#include "../../../native/preview.h"
#include "../../../native/tiles.h"
#include "fuzz_input.h"

using scanline_fuzz::DrawMaterial;
using scanline_fuzz::FuzzInput;

namespace {

scanline::TileParams DecodeTile(FuzzInput& in, bool small) {
  scanline::TileParams t;
  t.size = static_cast<int>(small ? in.Range(1, 16) : in.Range(1, 1024));
  t.downsample = static_cast<int>(small ? in.Range(1, 9) : in.Range(1, 64));
  t.stride_lines = 1;
  t.overlap_pixels = static_cast<int>(in.Range(0, t.size * t.downsample - 1));
  return t;
}

void CheckRows(const std::vector<int>& rows, int pixels, const scanline::TileParams& t) {
  const int span = t.size * t.downsample;
  FUZZ_CHECK(!rows.empty(), "no tile rows for %d pixels", pixels);
  if (pixels < span) {
    FUZZ_CHECK(rows.size() == 1 && rows[0] == 0, "a detector narrower than a tile has one row at 0");
    return;
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    FUZZ_CHECK(rows[i] >= 0 && rows[i] + span <= pixels, "row %d of span %d on %d pixels", rows[i], span, pixels);
    if (i > 0) FUZZ_CHECK(rows[i] > rows[i - 1] && rows[i] <= rows[i - 1] + span, "rows %d then %d", rows[i - 1], rows[i]);
  }
  FUZZ_CHECK(rows[0] == 0 && rows.back() + span == pixels, "rows from %d to %d of span %d on %d pixels", rows[0],
             rows.back(), span, pixels);
}

void FuzzTiles(FuzzInput& in) {
  // Row planning over the full ranges.
  {
    const int pixels = static_cast<int>(in.Range(1, 4096));
    const scanline::TileParams t = DecodeTile(in, false);
    CheckRows(scanline::TileRowPixels(pixels, t), pixels, t);
  }
  // Tile extraction on a small geometry.
  const int pixels = static_cast<int>(in.Range(1, 300));
  const int energies = 1 + (in.U8() & 1);
  const scanline::TileParams t = DecodeTile(in, true);
  const std::vector<int> rows = scanline::TileRowPixels(pixels, t);
  CheckRows(rows, pixels, t);
  const int first = static_cast<int>(in.Range(0, static_cast<int64_t>(rows.size()) - 1));
  const int count = static_cast<int>(in.Range(1, static_cast<int64_t>(rows.size()) - first));
  const size_t samples = static_cast<size_t>(energies) * pixels;
  // Column sums of `downsample` calibrated lines: values in [0, downsample * 30].
  std::vector<float> sums(static_cast<size_t>(t.size) * samples);
  for (float& v : sums) v = static_cast<float>(in.U8()) / 255.0f * 30.0f * t.downsample;
  const size_t tile_floats = static_cast<size_t>(energies) * t.size * t.size;
  std::vector<float> out(count * tile_floats, -1.0f);
  std::vector<float> means(static_cast<size_t>(energies) * ((pixels + t.downsample - 1) / t.downsample));
  scanline::ComputeColumnTiles(t, pixels, energies, rows.data() + first, count, out.data(), means.data(),
                               [&](int w) -> const float* { return sums.data() + static_cast<size_t>(w) * samples; });
  const float scale = 1.0f / static_cast<float>(t.downsample * t.downsample);
  for (int k = 0; k < count; ++k) {
    const int r = rows[first + k];
    for (int e = 0; e < energies; ++e) {
      for (int h = 0; h < t.size; ++h) {
        for (int w = 0; w < t.size; ++w) {
          double s = 0;
          for (int i = 0; i < t.downsample; ++i) {
            const int p = r + h * t.downsample + i;
            if (p < pixels) s += sums[static_cast<size_t>(w) * samples + static_cast<size_t>(e) * pixels + p];
          }
          const double want = s * scale;
          const float got = out[k * tile_floats + static_cast<size_t>(e) * t.size * t.size + static_cast<size_t>(h) * t.size + w];
          FUZZ_CHECK(std::fabs(got - want) <= 1e-4 * want + 1e-5, "tile %d (row %d) e %d h %d w %d: %g, expected %g", k,
                     r, e, h, w, static_cast<double>(got), want);
        }
      }
    }
  }
}

void FuzzPreview(FuzzInput& in) {
  scanline::StitcherConfig c;
  c.pixels = static_cast<int>(in.Range(1, 300));
  c.energies = 1 + (in.U8() & 1);
  c.preview_downsample = static_cast<int>(in.Range(1, 64));
  DrawMaterial(in, c.material);
  const float att_max = (in.U8() + 1) / 256.0f * 30.0f;
  const int d = c.preview_downsample;
  const int height = (c.pixels + d - 1) / d;
  const int width = static_cast<int>(in.Range(1, 40));
  const size_t samples = static_cast<size_t>(c.energies) * c.pixels;
  scanline::PreviewAccumulator acc;
  acc.Init(c);
  std::vector<uint8_t> strip(static_cast<size_t>(width) * height * 4, 0);
  std::vector<float> line(samples);
  struct Block {
    std::vector<float> sum;
    int lines;
    bool gap;
  };
  std::vector<Block> blocks;
  for (int x = 0; x < width; ++x) {
    // One block: 1..d lines (a scan may end inside a block), some of them gap lines.
    Block b{std::vector<float>(samples, 0.0f), static_cast<int>(in.Range(1, d)), false};
    for (int l = 0; l < b.lines; ++l) {
      if (in.U8() % 16 == 0) {
        acc.AddGapLine();
        b.gap = true;
        continue;
      }
      const uint8_t base = in.U8();
      const uint8_t step = in.U8();
      for (size_t i = 0; i < samples; ++i) {
        line[i] = static_cast<float>(static_cast<uint8_t>(base + i * step)) / 255.0f * att_max;
        b.sum[i] += line[i];
      }
      acc.AddLine(line.data());
    }
    acc.EmitColumn(strip.data(), static_cast<size_t>(width) * 4, x, height);
    if (in.U8() % 8 == 0) acc.Flush();  // a job may end after any block
    blocks.push_back(std::move(b));
  }
  acc.Flush();
  for (int x = 0; x < width; ++x) {
    const Block& b = blocks[x];
    for (int y = 0; y < height; ++y) {
      const uint8_t* px = strip.data() + (static_cast<size_t>(y) * width + x) * 4;
      FUZZ_CHECK(px[3] == 255, "preview sample (%d, %d) not written", x, y);
      if (b.gap) {
        FUZZ_CHECK(px[0] == 255 && px[1] == 0 && px[2] == 0, "gap block (%d, %d) not red", x, y);
        continue;
      }
      // Block means exactly as the accumulator forms them (same float operations, same order).
      const float* high = b.sum.data();
      const float* low = c.energies == 2 ? high + c.pixels : high;
      float mh, ml;
      const int full = std::min(height, c.pixels / d);
      if (y < full) {
        const float inv = 1.0f / (static_cast<float>(b.lines) * static_cast<float>(d));
        float sh = 0.0f, sl = 0.0f;
        for (int i = 0; i < d; ++i) {
          sh += high[y * d + i];
          sl += low[y * d + i];
        }
        mh = sh * inv;
        ml = sl * inv;
      } else {
        float sh = 0.0f, sl = 0.0f;
        for (int p = full * d; p < c.pixels; ++p) {
          sh += high[p];
          sl += low[p];
        }
        const float n = static_cast<float>(b.lines) * static_cast<float>(c.pixels - full * d);
        mh = sh / n;
        ml = sl / n;
      }
      uint8_t want[4];
      scanline::PreviewColour(mh, ml, c.energies == 2, c, want);
      for (int ch = 0; ch < 3; ++ch) {
        FUZZ_CHECK(std::abs(px[ch] - want[ch]) <= 1, "preview (%d, %d) channel %d: %u, PreviewColour says %u (means %g, %g)",
                   x, y, ch, px[ch], want[ch], static_cast<double>(mh), static_cast<double>(ml));
      }
    }
  }
}

void FuzzCalibration(FuzzInput& in) {
  const int pixels = static_cast<int>(in.Range(1, 256));
  const int energies = 1 + (in.U8() & 1);
  const size_t samples = static_cast<size_t>(energies) * pixels;
  const double dead_fraction = in.U8() / 255.0;
  const double att_max = (in.U8() + 1) / 256.0 * 30.0;
  // Means of u16 frames: dark and air per sample, each a u16 plus a fraction (from patterns, so inputs stay short).
  std::vector<uint16_t> raw(samples);
  std::vector<double> dark(samples), air(samples);
  in.Fill(raw.data(), samples);
  const uint8_t dark_frac = in.U8();
  for (size_t i = 0; i < samples; ++i) dark[i] = raw[i] + ((dark_frac + i) % 256) / 256.0;
  in.Fill(raw.data(), samples);
  const uint8_t air_frac = in.U8();
  for (size_t i = 0; i < samples; ++i) air[i] = raw[i] + ((air_frac + i * 7) % 256) / 256.0;
  const scanline::Calibration cal(pixels, energies, dark, air, dead_fraction, att_max);
  FUZZ_CHECK(cal.dead_pixels() >= 0 && static_cast<size_t>(cal.dead_pixels()) <= samples, "%d dead pixels of %zu",
             cal.dead_pixels(), samples);
  std::vector<float> out(samples);
  const int lines = static_cast<int>(in.Range(1, 8));
  for (int l = 0; l < lines; ++l) {
    in.Fill(raw.data(), samples);
    cal.CalibrateLine(raw.data(), out.data());
    for (size_t i = 0; i < samples; ++i) {
      FUZZ_CHECK(std::isfinite(out[i]) && out[i] >= 0.0f && out[i] <= static_cast<float>(att_max),
                 "attenuation %g at sample %zu (raw %u, dark %g, air %g, attenuationMax %g)",
                 static_cast<double>(out[i]), i, raw[i], dark[i], air[i], att_max);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzInput in(data, size);
  while (!in.empty()) {
    switch (in.U8() % 3) {
      case 0:
        FuzzTiles(in);
        break;
      case 1:
        FuzzPreview(in);
        break;
      default:
        FuzzCalibration(in);
        break;
    }
  }
  return 0;
}
