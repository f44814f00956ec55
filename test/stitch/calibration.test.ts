/**
 * Calibration against known ground truth (Beer-Lambert scenes): dark and air from frames or from the leading lines,
 * dead-pixel interpolation, and waiting for the air lines. Runs against both implementations.
 */
import { describe, expect, it } from 'vitest';
import { ScanlineError } from '../../src/errors/index.js';
import { createStitcher, type Stitcher } from '../../src/stitch/index.js';
import { type StitcherImplementation, stitcherOf } from '../helpers/ts-stitcher.js';
import { attenuation, buffersFor, makeScene, newCollected, pump, type Rect, type Scene, slice } from './helpers.js';

const RECTS: Rect[] = [
  { line0: 40, line1: 120, pixel0: 10, pixel1: 50, high: 0.7, low: 1.0 },
  { line0: 80, line1: 160, pixel0: 40, pixel1: 90, high: 2.5, low: 3.1 },
  { line0: 130, line1: 150, pixel0: 60, pixel1: 70, high: 2.4, low: 2.6 },
];
const OPTIONS = { airLines: 32, maxLines: 400, maxLinesPerJob: 64, tile: { size: 8, downsample: 2, strideLines: 16, overlapPixels: 4 } };

async function run(
  impl: StitcherImplementation,
  scene: Scene,
  frames: { dark?: boolean; air?: boolean },
  options: Record<string, unknown> = OPTIONS,
): Promise<Stitcher> {
  const st = createStitcher({ ...options, pixels: scene.pixels, energies: scene.energies }, stitcherOf(impl));
  if (frames.dark) st.push(2, 0, scene.frameLines, scene.darkFrames);
  if (frames.air) st.push(3, 0, scene.frameLines, scene.airFrames);
  for (let l = 0; l < scene.lines; l += 10) st.push(1, l, Math.min(10, scene.lines - l), slice(scene, l, Math.min(10, scene.lines - l)));
  st.finish(scene.lines);
  const r = await pump(st, buffersFor(st, 8), newCollected());
  expect(r.done).toBe(true);
  return st;
}

/** Largest |A - truth| / (rounding bound 0.5 / (I - dark)), over every sample (1 means exactly at the bound). */
function worstNoiselessError(st: Stitcher, scene: Scene): number {
  let worst = 0;
  for (let e = 0; e < scene.energies; e++) {
    const a = attenuation(st, e, scene.lines);
    for (let l = 0; l < scene.lines; l++) {
      for (let p = 0; p < scene.pixels; p++) {
        const truth = scene.truth[(l * scene.energies + e) * scene.pixels + p];
        const k = e * scene.pixels + p;
        const signal = (scene.air[k] - scene.dark[k]) * Math.exp(-truth);
        worst = Math.max(worst, Math.abs(a[l * scene.pixels + p] - truth) / (0.5 / signal + 1e-5));
      }
    }
  }
  return worst;
}

describe.each(['native', 'typescript'] as const)('%s stitcher calibration', (impl) => {
  it('recovers the true attenuation of a noiseless scan within the rounding of the raw counts (dark + air frames)', async () => {
    const scene = makeScene({ pixels: 100, energies: 2, lines: 200, seed: 1, rects: RECTS });
    const st = await run(impl, scene, { dark: true, air: true });
    expect(worstNoiselessError(st, scene)).toBeLessThanOrEqual(1.05);
    // ... and a rectangle reads as its attenuation (spot check, independent of the bound above).
    const a = attenuation(st, 0, scene.lines);
    expect(a[100 * 100 + 45]).toBeCloseTo(0.7 + 2.5, 2);
    expect(st.stats().calibrated).toBe(true);
  });

  it('air from the leading lines gives the same attenuation as air frames', async () => {
    const scene = makeScene({ pixels: 100, energies: 2, lines: 200, seed: 2, rects: RECTS });
    const framed = await run(impl, scene, { dark: true, air: true });
    const leading = await run(impl, scene, { dark: true });
    expect(worstNoiselessError(leading, scene)).toBeLessThanOrEqual(1.05);
    for (let e = 0; e < 2; e++) {
      const x = attenuation(framed, e, scene.lines);
      const y = attenuation(leading, e, scene.lines);
      let diff = 0;
      for (let i = 0; i < x.length; i++) diff = Math.max(diff, Math.abs(x[i] - y[i]));
      expect(diff).toBeLessThan(1e-5);
    }
  });

  it('without dark frames the dark level is 0 (right for a dark-free detector, biased otherwise)', async () => {
    const clean = makeScene({ pixels: 64, energies: 1, lines: 200, seed: 3, rects: RECTS, darkLevel: 0 });
    expect(worstNoiselessError(await run(impl, clean, {}), clean)).toBeLessThanOrEqual(1.05);
    const dark = makeScene({ pixels: 64, energies: 1, lines: 200, seed: 3, rects: RECTS });
    expect(worstNoiselessError(await run(impl, dark, {}), dark)).toBeGreaterThan(10);
  });

  it('with Poisson-like noise the error matches the expected noise (no bias)', async () => {
    const scene = makeScene({ pixels: 100, energies: 2, lines: 200, seed: 4, rects: RECTS, noise: 1 });
    const st = await run(impl, scene, { dark: true, air: true });
    const a = attenuation(st, 0, scene.lines);
    let sumZ2 = 0;
    let sumErr = 0;
    let n = 0;
    for (let l = 80; l < 120; l++) {
      for (let p = 40; p < 50; p++) {
        const truth = 3.2;
        const k = p;
        const signal = (scene.air[k] - scene.dark[k]) * Math.exp(-truth);
        const sigma = Math.sqrt(signal + scene.dark[k]) / signal; // counting noise of I, in attenuation
        const err = a[l * scene.pixels + p] - truth;
        sumZ2 += (err / sigma) ** 2;
        sumErr += err;
        n++;
      }
    }
    const rmsZ = Math.sqrt(sumZ2 / n);
    expect(rmsZ).toBeGreaterThan(0.8);
    expect(rmsZ).toBeLessThan(1.3);
    expect(Math.abs(sumErr / n)).toBeLessThan(0.01); // sigma ~0.025 per sample, 400 samples
  });

  it('interpolates dead pixels from the nearest live neighbours (linear inside, copied at the edges)', async () => {
    const scene = makeScene({ pixels: 96, energies: 2, lines: 200, seed: 5, rects: RECTS, deadPixels: [0, 37, 38, 95], noise: 1 });
    const st = await run(impl, scene, { dark: true, air: true });
    expect(st.stats().deadPixels).toBe(8);
    for (let e = 0; e < 2; e++) {
      const a = attenuation(st, e, scene.lines);
      for (const l of [10, 90, 145]) {
        const at = (p: number): number => a[l * 96 + p];
        expect(at(0)).toBeCloseTo(at(1), 5);
        expect(at(95)).toBeCloseTo(at(94), 5);
        expect(at(37)).toBeCloseTo(at(36) + (at(39) - at(36)) / 3, 5);
        expect(at(38)).toBeCloseTo(at(36) + ((at(39) - at(36)) * 2) / 3, 5);
      }
    }
    // Without interpolation a dead pixel reads garbage (its air - dark is ~20 counts): it reads its neighbourhood.
    const a = attenuation(st, 0, scene.lines);
    expect(a[100 * 96 + 37]).toBeGreaterThan(0.6);
    expect(a[100 * 96 + 37]).toBeLessThan(0.8);
  });

  it('keeps an interpolated dead pixel within attenuationMax when both neighbours are saturated', async () => {
    // Found by the kernels fuzzer (test/fuzz/corpus/kernels/regress-dead-pixel-above-attenuation-max): pixels 1-6 are
    // dead, 0 and 7 saturated (raw 0 reads attenuationMax); the float weights 6/7 and 1/7 of pixel 1 mixed two 7.5s
    // into 7.5000005.
    const st = createStitcher({ pixels: 8, energies: 1, attenuationMax: 7.5, maxLines: 16 }, stitcherOf(impl));
    st.push(3, 0, 1, Uint16Array.from([50_000, 0, 0, 0, 0, 0, 0, 50_000]));
    st.push(1, 0, 1, new Uint16Array(8));
    const a = new Float32Array(8);
    st.readAttenuation(0, 0, 1, a);
    expect(st.stats().deadPixels).toBe(6);
    for (const v of a) expect(v).toBeLessThanOrEqual(7.5);
    expect([...a]).toEqual(Array(8).fill(7.5));
  });

  it('waits for the air lines, and uses what exists once the reorder window passes a missing one', async () => {
    const scene = makeScene({ pixels: 40, energies: 1, lines: 120, seed: 6, rects: [] });
    const st = createStitcher({ pixels: 40, energies: 1, airLines: 16, reorderWindowLines: 20, maxLines: 200 }, stitcherOf(impl));
    const buffers = buffersFor(st, 4);
    st.push(1, 0, 5, slice(scene, 0, 5));
    st.push(1, 6, 10, slice(scene, 6, 10)); // line 5 missing, 16 lines < airLines present
    let r = await st.process(buffers);
    expect(r.calibrated).toEqual([0, 0]);
    expect(st.stats().calibrated).toBe(false);
    expect(() => st.readAttenuation(0, 0, 1, new Float32Array(40))).toThrow(
      expect.objectContaining({ code: 'SCANLINE_ERR_IMAGE_UNAVAILABLE' }) as unknown as Error,
    );
    st.push(1, 16, 10, slice(scene, 16, 10)); // highestLine 26: 26 - 5 = 21 > 20, line 5 is given up
    r = await st.process(buffers);
    expect(st.stats().calibrated).toBe(true);
    expect(r.gaps).toEqual([[5, 6]]);
    expect(r.calibrated).toEqual([0, 26]);
    const a = attenuation(st, 0, 26);
    expect(Math.max(...a.subarray(0, 5 * 40))).toBeLessThan(1e-3); // air reads as 0 attenuation
    expect(Math.max(...a.subarray(5 * 40, 6 * 40))).toBe(0); // a line never received reads 0
    st.push(1, 5, 1, slice(scene, 5, 1)); // arrives late: stored, counted, not processed
    expect(st.stats().lateLines).toBe(1);
  });

  it('readAttenuation before calibration is a coded error', () => {
    const st = createStitcher({ pixels: 8, energies: 2 }, stitcherOf(impl));
    try {
      st.readAttenuation(0, 0, 1, new Float32Array(8));
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(ScanlineError);
      expect((err as ScanlineError).code).toBe('SCANLINE_ERR_IMAGE_UNAVAILABLE');
    }
  });
});
