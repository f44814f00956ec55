/**
 * The frontier: contiguous lines are calibrated, missing lines become gaps once the reorder window is exceeded or
 * the scan is finished, late lines are stored but not processed, jobs are capped at maxLinesPerJob. Both
 * implementations.
 */
import { describe, expect, it } from 'vitest';
import { createStitcher } from '../../src/stitch/index.js';
import { type StitcherImplementation, stitcherOf } from '../helpers/ts-stitcher.js';
import { buffersFor, makeScene, newCollected, pump, slice } from './helpers.js';

const scene = makeScene({
  pixels: 16,
  energies: 2,
  lines: 300,
  seed: 12,
  noise: 1,
  rects: [{ line0: 40, line1: 250, pixel0: 3, pixel1: 12, high: 1, low: 1.4 }],
});

function fresh(impl: StitcherImplementation, extra: Record<string, unknown> = {}) {
  const st = createStitcher(
    {
      pixels: 16,
      energies: 2,
      maxLines: 300,
      airLines: 8,
      reorderWindowLines: 20,
      maxLinesPerJob: 1000,
      tile: { size: 4, downsample: 2, strideLines: 8, overlapPixels: 0 },
      previewDownsample: 2,
      ...extra,
    },
    stitcherOf(impl),
  );
  const push = (first: number, count: number) => st.push(1, first, count, slice(scene, first, count));
  return { st, push, buffers: buffersFor(st, 64) };
}

describe.each(['native', 'typescript'] as const)('%s stitcher frontier', (impl) => {
  it('declares a gap once data arrives more than reorderWindowLines past the first missing line', async () => {
    const { st, push, buffers } = fresh(impl);
    push(0, 50);
    push(60, 5);
    let r = await st.process(buffers);
    expect(r).toMatchObject({ calibrated: [0, 50], frontier: 50, gaps: [], more: false, done: false });
    push(65, 5); // highestLine 70: 70 - 50 = 20, not more than the window
    r = await st.process(buffers);
    expect(r).toMatchObject({ calibrated: [50, 50], gaps: [] });
    push(70, 1); // 71 - 50 = 21 > 20
    r = await st.process(buffers);
    expect(r).toMatchObject({ calibrated: [50, 71], frontier: 71, gaps: [[50, 60]] });
    expect(st.stats()).toMatchObject({ gapLines: 10, lateLines: 0, storedLines: 61 });
    // The missing lines arrive late: stored (readRaw has them) and counted, never processed.
    expect(push(50, 3)).toEqual({ newLines: 3, duplicateLines: 0 });
    expect(st.stats().lateLines).toBe(3);
    const out = new Uint16Array(3 * 32);
    st.readRaw(50, 3, out);
    expect(out).toEqual(slice(scene, 50, 3));
    r = await st.process(buffers);
    expect(r.calibrated).toEqual([71, 71]);
    expect(r.gaps).toEqual([]);
  });

  it('finish() turns every missing line below totalLines into a gap and completes the scan', async () => {
    const { st, push, buffers } = fresh(impl);
    push(0, 30);
    push(40, 20);
    st.finish(70);
    const all = newCollected();
    const r = await pump(st, buffers, all);
    expect(r.done).toBe(true);
    expect(all.results.flatMap((x) => x.gaps)).toEqual([
      [30, 40],
      [60, 70],
    ]);
    expect(st.stats()).toMatchObject({ frontier: 70, gapLines: 20 });
    // Afterwards, process() reports nothing new and stays done.
    const again = await st.process(buffers);
    expect(again).toMatchObject({ calibrated: [70, 70], gaps: [], tiles: [], preview: null, more: false, done: true });
  });

  it('a long gap is declared whole, while the frontier crosses it maxLinesPerJob lines at a time', async () => {
    const { st, push, buffers } = fresh(impl, { maxLinesPerJob: 40, reorderWindowLines: 10 });
    push(0, 20);
    push(200, 10);
    let r = await st.process(buffers);
    expect(r).toMatchObject({ calibrated: [0, 40], gaps: [[20, 200]], more: true });
    expect(st.stats().gapLines).toBe(180);
    expect(push(150, 1).newLines).toBe(1); // inside the declared gap, ahead of the frontier: late all the same
    expect(st.stats().lateLines).toBe(1);
    const seen: Array<[number, number]> = [];
    do {
      r = await st.process(buffers);
      seen.push(r.calibrated);
      expect(r.calibrated[1] - r.calibrated[0]).toBeLessThanOrEqual(40);
      expect(r.gaps).toEqual([]);
    } while (r.more);
    expect(seen.at(-1)![1]).toBe(210);
  });

  it('caps each job at maxLinesPerJob and says more', async () => {
    const { st, push, buffers } = fresh(impl, { maxLinesPerJob: 64 });
    push(0, 150);
    const r1 = await st.process(buffers);
    expect(r1).toMatchObject({ calibrated: [0, 64], more: true });
    const r2 = await st.process(buffers);
    expect(r2).toMatchObject({ calibrated: [64, 128], more: true });
    const r3 = await st.process(buffers);
    expect(r3).toMatchObject({ calibrated: [128, 150], more: false, done: false });
  });

  it('lines pushed while a job runs wait for the next job', async () => {
    const { st, push, buffers } = fresh(impl);
    push(0, 40);
    const job = st.process(buffers);
    push(40, 40);
    expect((await job).calibrated).toEqual([0, 40]);
    expect((await st.process(buffers)).calibrated).toEqual([40, 80]);
  });
});
