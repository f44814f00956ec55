/**
 * Preview strips: contiguous, covering [0, totalLines) once the scan is done, sized within previewBytes, and
 * coloured as documented (material palette, shading, red for gap lines, grey for single energy). Both
 * implementations.
 */
import { describe, expect, it } from 'vitest';
import { createStitcher, PREVIEW_GAP_COLOUR, PREVIEW_PALETTE } from '../../src/stitch/index.js';
import { stitcherOf } from '../helpers/ts-stitcher.js';
import { checkStrip, gapLines, makeScene, play, processedPlanes, type Rect, schedule } from './helpers.js';

const RECTS: Rect[] = [
  { line0: 20, line1: 80, pixel0: 2, pixel1: 20, high: 1.0, low: 1.5 }, // organic
  { line0: 60, line1: 140, pixel0: 22, pixel1: 40, high: 2.0, low: 2.74 }, // mixed
  { line0: 100, line1: 170, pixel0: 42, pixel1: 60, high: 2.2, low: 2.8 }, // inorganic
  { line0: 150, line1: 200, pixel0: 5, pixel1: 15, high: 3.0, low: 3.3 }, // heavy metal
];

describe.each(['native', 'typescript'] as const)('%s stitcher preview', (impl) => {
  it('strips are contiguous, cover [0, totalLines) and match the documented colours', async () => {
    const scene = makeScene({ pixels: 64, energies: 2, lines: 211, seed: 3, noise: 0.5, rects: RECTS });
    const steps = schedule(scene, 8, { maxSlice: 7, shuffleWindow: 3, drop: [[120, 126]] });
    const options = { maxLines: 300, airLines: 16, maxLinesPerJob: 25, reorderWindowLines: 16, previewDownsample: 3 };
    const { st, collected } = await play(scene, steps, { ...options, tile: { size: 4, downsample: 2, strideLines: 8, overlapPixels: 0 } }, impl, 8);
    const strips = collected.strips;
    expect(strips.length).toBeGreaterThan(4);
    let next = 0;
    for (const { strip } of strips) {
      expect(strip.line).toBe(next);
      expect(strip.line % 3).toBe(0);
      expect(strip.width).toBe(Math.ceil(strip.lines / 3));
      expect(strip.height).toBe(Math.ceil(64 / 3));
      expect(strip.width * strip.height * 4).toBeLessThanOrEqual(st.previewBytes);
      next = strip.line + strip.lines;
    }
    expect(next).toBe(211); // the last strip ends at totalLines, not at a multiple of 3
    const gaps = gapLines(collected.results);
    expect(gaps.size).toBeGreaterThanOrEqual(6);
    const planes = processedPlanes(st, scene.lines, gaps);
    let samples = 0;
    let boundary = 0;
    const colours = new Set<string>();
    for (const { strip, rgba } of strips) {
      const check = checkStrip(planes, gaps, strip, rgba, st);
      expect(check.bad).toEqual([]);
      samples += check.samples;
      boundary += check.boundary;
      for (let i = 0; i < rgba.length; i += 4) colours.add(`${rgba[i]},${rgba[i + 1]},${rgba[i + 2]}`);
    }
    expect(samples).toBe(Math.ceil(211 / 3) * 22);
    expect(boundary).toBeLessThan(3);
    expect(colours.has(PREVIEW_GAP_COLOUR.join(','))).toBe(true);
    expect(colours.has(PREVIEW_PALETTE[0].join(','))).toBe(true); // white air
  });

  it('single energy previews are grey', async () => {
    const scene = makeScene({ pixels: 20, energies: 1, lines: 90, seed: 4, rects: RECTS.slice(0, 1) });
    const steps = schedule(scene, 2, { maxSlice: 9, shuffleWindow: 1 });
    const { st, collected } = await play(scene, steps, { airLines: 8, previewDownsample: 2, maxLines: 100 }, impl, 8);
    const planes = processedPlanes(st, scene.lines, new Set());
    for (const { strip, rgba } of collected.strips) {
      expect(checkStrip(planes, new Set(), strip, rgba, st).bad).toEqual([]);
      for (let i = 0; i < rgba.length; i += 4) expect(rgba[i]).toBe(rgba[i + 2]);
    }
  });

  it('previewBytes follows ceil(maxLinesPerJob / d + 1) * ceil(pixels / d) * 4', () => {
    const st = createStitcher({ pixels: 101, energies: 2, maxLinesPerJob: 100, previewDownsample: 4 }, stitcherOf(impl));
    expect(st.previewBytes).toBe(Math.ceil(100 / 4 + 1) * Math.ceil(101 / 4) * 4);
    expect(st.tileFloats).toBe(2 * 64 * 64);
  });
});
