/**
 * Facts of the stitcher's output that other stages read: the preview palette (the operator image renderer draws its
 * legend and overlays with it) and where the tile rows of a column start (eval scores tiles on the same grid). The
 * native stitcher (native/preview.h, native/tiles.h) and the TypeScript reference (test/helpers/ts-stitcher.ts) both
 * follow them.
 */

/**
 * Preview palette (RGB) by material class, then the gap colour; the same as native/preview.h:
 * Background white, Organic orange, Mixed green, Inorganic blue, HeavyMetal violet, Impenetrable near-black
 * (not shaded), gap lines red (not shaded). Shading: round(base * s), s = 0.15 + 0.85 * (1 - min(max(A_high, 0), M)
 * / M) with M = material.maxAttenuation. Single energy: grey 255 * s. Alpha 255.
 */
export const PREVIEW_PALETTE: ReadonlyArray<readonly [number, number, number]> = Object.freeze([
  [255, 255, 255],
  [255, 140, 0],
  [0, 170, 60],
  [30, 110, 255],
  [150, 50, 210],
  [24, 24, 24],
] as const);
export const PREVIEW_GAP_COLOUR: readonly [number, number, number] = Object.freeze([255, 0, 0] as const);

/** Pixel offsets of the tile rows of one column (see native/tiles.h). */
export function tileRowPixels(pixels: number, span: number, overlapPixels: number): number[] {
  if (pixels < span) return [0];
  const step = span - overlapPixels;
  const rows: number[] = [];
  for (let r = 0; r + span <= pixels; r += step) rows.push(r);
  if (rows[rows.length - 1] + span < pixels) rows.push(pixels - span);
  return rows;
}
