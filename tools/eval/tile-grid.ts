/**
 * The tile grid the gateway's stitcher produces for a scan, computed from the scan's length and the detector's
 * pixels alone (no pixels rendered), so the evaluator can label every tile position the models were asked about.
 *
 * Columns (mirrors the stitcher's tile planning, native/tiles.h and the TypeScript reference test/helpers/ts-stitcher.ts): a column every `strideLines` raw
 * lines while it fits inside the scan (line + span <= totalLines, span = size * downsample), then one last column
 * flush with the scan's end (line = max(0, totalLines - span), min(span, totalLines) lines) when the previous one
 * stopped short of it. Rows: `tileRowPixels` (span-high tiles overlapping by `overlapPixels`, the last one flush
 * with the detector's end). The evaluator checks the count against the report's `tilesProduced`.
 */
import { tileRowPixels } from '../../src/stitch/index.js';

export interface TileGridGeometry {
  /** Tile edge in samples. */
  size: number;
  /** Raw lines and pixels per sample edge. */
  downsample: number;
  /** Raw lines between two columns. */
  strideLines: number;
  /** Raw pixels two rows of a column share. */
  overlapPixels: number;
}

/** One tile position: its first raw line and pixel, and the raw lines it covers (span, or less in a short scan). */
export interface GridTile {
  line: number;
  lines: number;
  pixel: number;
}

/** Every tile of a scan of `totalLines` lines on a `pixels`-element detector, column by column, top row first. */
export function tileGrid(totalLines: number, pixels: number, tile: TileGridGeometry): GridTile[] {
  const span = tile.size * tile.downsample;
  const rows = tileRowPixels(pixels, span, tile.overlapPixels);
  const columns: Array<{ line: number; lines: number }> = [];
  let last = -1;
  for (let line = 0; line + span <= totalLines; line += tile.strideLines) {
    columns.push({ line, lines: span });
    last = line;
  }
  if (totalLines > 0 && (last < 0 || last + span < totalLines)) {
    columns.push({ line: Math.max(0, totalLines - span), lines: Math.min(span, totalLines) });
  }
  const out: GridTile[] = [];
  for (const c of columns) for (const pixel of rows) out.push({ line: c.line, lines: c.lines, pixel });
  return out;
}
