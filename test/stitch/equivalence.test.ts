/**
 * The native addon against the TypeScript reference on the same scans and the same sequence of calls: identical
 * bookkeeping (results, stats), and values equal within 1e-4 relative / 1e-5 absolute (attenuation, tiles), the same
 * material classes and preview colours (within 1 per channel) except right at a material decision boundary.
 */
import { describe, expect, it } from 'vitest';
import type { StitcherOptionsInput } from '../../src/stitch/index.js';
import { attenuation, gapLines, makeScene, mismatches, nearMaterialBoundary, play, type Rect, schedule } from './helpers.js';

type Overrides = Omit<StitcherOptionsInput, 'pixels' | 'energies'>;

const SMALL: Overrides = {
  maxLines: 600,
  chunkLines: 32,
  reorderWindowLines: 48,
  airLines: 16,
  maxLinesPerJob: 40,
  tile: { size: 8, downsample: 4, strideLines: 16, overlapPixels: 8 },
  previewDownsample: 3,
};

// Organic, mixed, inorganic, heavy metal and impenetrable blocks (ratios 1.5, 1.37, 1.27, 1.1), overlapping a bit.
const RECTS: Rect[] = [
  { line0: 40, line1: 200, pixel0: 5, pixel1: 40, high: 1.0, low: 1.5 },
  { line0: 120, line1: 330, pixel0: 30, pixel1: 70, high: 1.6, low: 2.19 },
  { line0: 250, line1: 420, pixel0: 60, pixel1: 90, high: 2.2, low: 2.8 },
  { line0: 300, line1: 380, pixel0: 10, pixel1: 25, high: 3.5, low: 3.85 },
  { line0: 430, line1: 460, pixel0: 40, pixel1: 50, high: 8.5, low: 9.0 },
];

async function compare(
  seed: number,
  spec: { pixels: number; energies: 1 | 2; lines: number; noise: number },
  options: Overrides,
  drop: Array<[number, number]>,
  tileCapacity: number,
  frames: { dark?: boolean; air?: boolean } = {},
): Promise<void> {
  const scene = makeScene({ ...spec, seed, rects: RECTS, deadPixels: [3, spec.pixels - 1] });
  const steps = schedule(scene, seed + 1, { maxSlice: 12, shuffleWindow: 5, drop, duplicates: 0.1 });
  const a = await play(scene, steps, options, 'native', tileCapacity, frames);
  const b = await play(scene, steps, options, 'typescript', tileCapacity, frames);

  // Bookkeeping is deterministic: identical results and stats (memory is implementation-specific).
  expect(a.collected.results).toEqual(b.collected.results);
  const { memoryBytes: _a, ...statsA } = a.st.stats();
  const { memoryBytes: _b, ...statsB } = b.st.stats();
  expect(statsA).toEqual(statsB);
  expect(statsA.frontier).toBe(scene.lines);
  expect(statsA.deadPixels).toBe(2 * spec.energies);
  if (drop.length > 0) expect(statsA.gapLines).toBeGreaterThanOrEqual(drop[0][1] - drop[0][0]);

  for (let e = 0; e < spec.energies; e++) {
    const x = attenuation(a.st, e, scene.lines);
    const y = attenuation(b.st, e, scene.lines);
    expect(mismatches(x, y)).toEqual([]);
  }
  if (spec.energies === 2) {
    const ma = new Uint8Array(scene.lines * spec.pixels);
    const mb = new Uint8Array(scene.lines * spec.pixels);
    a.st.readMaterial(0, scene.lines, ma);
    b.st.readMaterial(0, scene.lines, mb);
    const high = attenuation(b.st, 0, scene.lines);
    const low = attenuation(b.st, 1, scene.lines);
    const opts = b.st.options.material;
    const differing = [...ma.keys()].filter((i) => ma[i] !== mb[i]);
    expect(differing.filter((i) => !nearMaterialBoundary(high[i], low[i], opts))).toEqual([]);
    // Every class occurs, so the comparison means something.
    expect(new Set(mb)).toEqual(new Set([0, 1, 2, 3, 4, 5]));
  }

  expect(a.collected.tiles.length).toBe(b.collected.tiles.length);
  expect(a.collected.tiles.length).toBeGreaterThan(0);
  a.collected.tiles.forEach((t, i) => {
    expect(t.info).toEqual(b.collected.tiles[i].info);
    expect(mismatches(t.data, b.collected.tiles[i].data)).toEqual([]);
  });

  expect(a.collected.strips.map((s) => s.strip)).toEqual(b.collected.strips.map((s) => s.strip));
  const gaps = gapLines(b.collected.results);
  const high = attenuation(b.st, 0, scene.lines);
  const low = spec.energies === 2 ? attenuation(b.st, 1, scene.lines) : high;
  const d = b.st.options.previewDownsample;
  let boundary = 0;
  a.collected.strips.forEach(({ strip, rgba }, k) => {
    const ref = b.collected.strips[k].rgba;
    for (let i = 0; i < rgba.length; i += 4) {
      if ([0, 1, 2, 3].every((c) => Math.abs(rgba[i + c] - ref[i + c]) <= 1)) continue;
      // A class flip is only acceptable right at a decision boundary of the block-averaged values.
      const x = (i / 4) % strip.width;
      const y = Math.floor(i / 4 / strip.width);
      let sh = 0;
      let sl = 0;
      let n = 0;
      let gap = false;
      for (let l = strip.line + x * d; l < Math.min(strip.line + (x + 1) * d, strip.line + strip.lines); l++) {
        gap ||= gaps.has(l);
        for (let p = y * d; p < Math.min((y + 1) * d, spec.pixels); p++, n++) {
          sh += high[l * spec.pixels + p];
          sl += low[l * spec.pixels + p];
        }
      }

      expect(gap).toBe(false);
      expect(nearMaterialBoundary(sh / n, sl / n, b.st.options.material)).toBe(true);
      boundary++;
    }
  });
  expect(boundary).toBeLessThan(5);
  a.st.close();
  b.st.close();
}

describe('native stitcher matches the TypeScript reference', () => {
  it('dual energy, out-of-order slices with duplicates and a dropped range, air from leading lines, small jobs, 3-tile buffer', async () => {
    await compare(11, { pixels: 96, energies: 2, lines: 500, noise: 1 }, SMALL, [[200, 231]], 3, { dark: true });
  });

  it('another seed, dark and air frames, a gap at the very end', async () => {
    await compare(23, { pixels: 77, energies: 2, lines: 480, noise: 1.5 }, SMALL, [[470, 480]], 5, {
      dark: true,
      air: true,
    });
  });

  it('default options (64 x 4 tiles, 512-line jobs) on a 300-pixel detector', async () => {
    await compare(5, { pixels: 300, energies: 2, lines: 700, noise: 1 }, {}, [[350, 380]], 16, { dark: true });
  });

  it('single energy (grey preview), strideLines not a multiple of downsample', async () => {
    await compare(
      7,
      { pixels: 64, energies: 1, lines: 333, noise: 1 },
      { ...SMALL, tile: { size: 8, downsample: 3, strideLines: 20, overlapPixels: 5 }, previewDownsample: 2 },
      [[100, 120]],
      4,
    );
  });
});
