/**
 * push(): the raw store, replays (duplicates are idempotent, mismatches store nothing), calibration frames, and
 * caller errors with their codes. Runs against both implementations.
 */
import { describe, expect, it } from 'vitest';
import { type ErrorCode, ScanlineError } from '../../src/errors/index.js';
import { createStitcher, type Stitcher } from '../../src/stitch/index.js';
import { type StitcherImplementation, stitcherOf } from '../helpers/ts-stitcher.js';
import { buffersFor, makeScene, newCollected, play, pump, schedule, slice, attenuation } from './helpers.js';

function expectCode(fn: () => unknown, code: ErrorCode): ScanlineError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ScanlineError);
    expect((err as ScanlineError).code).toBe(code);
    return err as ScanlineError;
  }
  throw new Error(`expected ${code}`);
}

const scene = makeScene({
  pixels: 24,
  energies: 2,
  lines: 120,
  seed: 9,
  noise: 1,
  rects: [{ line0: 30, line1: 90, pixel0: 4, pixel1: 20, high: 1.2, low: 1.7 }],
});

function fresh(impl: StitcherImplementation, extra: Record<string, unknown> = {}): Stitcher {
  return createStitcher({ pixels: 24, energies: 2, maxLines: 100, airLines: 8, chunkLines: 16, ...extra }, stitcherOf(impl));
}

function raw(st: Stitcher, first: number, count: number): Uint16Array {
  const out = new Uint16Array(count * 48);
  st.readRaw(first, count, out);
  return out;
}

describe.each(['native', 'typescript'] as const)('%s stitcher push', (impl) => {
  it('stores lines and reads them back line-major, zeros where nothing arrived', () => {
    const st = fresh(impl);
    expect(st.push(1, 10, 5, slice(scene, 10, 5))).toEqual({ newLines: 5, duplicateLines: 0 });
    expect(st.push(1, 40, 3, slice(scene, 40, 3))).toEqual({ newLines: 3, duplicateLines: 0 });
    expect(raw(st, 10, 5)).toEqual(slice(scene, 10, 5));
    expect(raw(st, 40, 3)).toEqual(slice(scene, 40, 3));
    expect(raw(st, 15, 25).every((v) => v === 0)).toBe(true);
    const stats = st.stats();
    expect(stats.storedLines).toBe(8);
    expect(stats.highestLine).toBe(43);
    // Chunks are allocated on first write only: lines 10..14 and 40..42 touch chunks 0 and 2 of 16 lines.
    expect(stats.memoryBytes).toBeGreaterThan(2 * 16 * 48 * 2);
  });

  it('the payload may be reused by the caller as soon as push returns', () => {
    const st = fresh(impl);
    const payload = slice(scene, 0, 4).slice();
    st.push(1, 0, 4, payload);
    payload.fill(7);
    expect(raw(st, 0, 4)).toEqual(slice(scene, 0, 4));
  });

  it('replays are idempotent: duplicates are counted and change nothing', async () => {
    const st = fresh(impl);
    st.push(1, 0, 10, slice(scene, 0, 10));
    expect(st.push(1, 0, 10, slice(scene, 0, 10))).toEqual({ newLines: 0, duplicateLines: 10 });
    expect(st.push(1, 5, 10, slice(scene, 5, 10))).toEqual({ newLines: 5, duplicateLines: 5 });
    expect(st.stats().duplicateLines).toBe(15);
    expect(st.stats().storedLines).toBe(15);
    expect(raw(st, 0, 15)).toEqual(slice(scene, 0, 15));

    // A whole scan with 30% replayed slices gives the same image as one without replays.
    const steps = schedule(scene, 3, { maxSlice: 6, shuffleWindow: 1, duplicates: 0.3 });
    const clean = schedule(scene, 3, { maxSlice: 6, shuffleWindow: 1, duplicates: 0 });
    const opts = { maxLines: 200, airLines: 8, tile: { size: 4, downsample: 2, strideLines: 8, overlapPixels: 0 } };
    const a = await play(scene, steps, opts, impl, 4);
    const b = await play(scene, clean, opts, impl, 4);
    expect(a.st.stats().duplicateLines).toBeGreaterThan(0);
    expect(attenuation(a.st, 0, scene.lines)).toEqual(attenuation(b.st, 0, scene.lines));
    expect(a.collected.tiles.map((t) => t.data)).toEqual(b.collected.tiles.map((t) => t.data));
  });

  it('a replay with different values stores nothing and throws SLICE_REPLAY_MISMATCH', () => {
    const st = fresh(impl);
    st.push(1, 0, 10, slice(scene, 0, 10));
    const altered = slice(scene, 5, 10).slice();
    altered[2 * 48 + 7] ^= 1; // line 7
    const err = expectCode(() => st.push(1, 5, 10, altered), 'SCANLINE_ERR_SLICE_REPLAY_MISMATCH');
    expect(err.message).toContain('line 7');
    expect(st.stats().storedLines).toBe(10);
    expect(raw(st, 10, 5).every((v) => v === 0)).toBe(true); // the new lines 10..14 were not stored either
    expect(raw(st, 0, 10)).toEqual(slice(scene, 0, 10));
  });

  it('calibration frames are accepted before image slices only (SLICE_CALIBRATION_LATE)', () => {
    const st = fresh(impl);
    expect(st.push(2, 0, 16, scene.darkFrames)).toEqual({ newLines: 16, duplicateLines: 0 });
    expect(st.push(3, 0, 16, scene.airFrames)).toEqual({ newLines: 16, duplicateLines: 0 });
    st.push(1, 0, 1, slice(scene, 0, 1));
    expectCode(() => st.push(2, 0, 16, scene.darkFrames), 'SCANLINE_ERR_SLICE_CALIBRATION_LATE');
    expectCode(() => st.push(3, 0, 16, scene.airFrames), 'SCANLINE_ERR_SLICE_CALIBRATION_LATE');
  });

  it('lines beyond maxLines, or beyond totalLines after finish, throw SLICE_LINE_RANGE', () => {
    const st = fresh(impl);
    expectCode(() => st.push(1, 98, 3, slice(scene, 0, 3)), 'SCANLINE_ERR_SLICE_LINE_RANGE');
    expectCode(() => st.push(1, -1, 1, slice(scene, 0, 1)), 'SCANLINE_ERR_SLICE_LINE_RANGE');
    expectCode(() => st.push(1, 1.5, 1, slice(scene, 0, 1)), 'SCANLINE_ERR_SLICE_LINE_RANGE');
    expect(st.push(1, 97, 3, slice(scene, 0, 3)).newLines).toBe(3);
    const other = fresh(impl);
    other.push(1, 0, 10, slice(scene, 0, 10));
    expectCode(() => other.finish(5), 'SCANLINE_ERR_SLICE_LINE_RANGE'); // below the lines already stored
    expectCode(() => other.finish(101), 'SCANLINE_ERR_SLICE_LINE_RANGE');
    other.finish(20);
    other.finish(20); // idempotent
    expectCode(() => other.finish(21), 'SCANLINE_ERR_SLICE_LINE_RANGE');
    expectCode(() => other.push(1, 18, 3, slice(scene, 0, 3)), 'SCANLINE_ERR_SLICE_LINE_RANGE');
    expect(other.push(1, 17, 3, slice(scene, 17, 3)).newLines).toBe(3);
  });

  it('a payload of the wrong size throws SLICE_SIZE, a wrong kind SLICE_HEADER, a wrong type STITCH_BUFFER', () => {
    const st = fresh(impl);
    const err = expectCode(() => st.push(1, 0, 2, slice(scene, 0, 3)), 'SCANLINE_ERR_SLICE_SIZE');
    expect(err.message).toContain('2 lines x 2 energies x 24 pixels = 96');
    expectCode(() => st.push(2, 0, 1, new Uint16Array(47)), 'SCANLINE_ERR_SLICE_SIZE');
    expectCode(() => st.push(4 as 1, 0, 1, slice(scene, 0, 1)), 'SCANLINE_ERR_SLICE_HEADER');
    expectCode(() => st.push(1, 0, 1, new Uint8Array(96) as unknown as Uint16Array), 'SCANLINE_ERR_STITCH_BUFFER');
    expect(st.stats().storedLines).toBe(0);
  });

  it('a line count whose payload size wraps around 2^64 is a size error, not a read past the payload', () => {
    // Found by the stitcher fuzzer: 2^51 lines x 2 energies x 4096 pixels is 2^64 samples, which wrapped to the 0 of
    // an empty payload, and the air frame's loop read 2^51 lines from it (dark and air frames have no line range).
    const st = createStitcher({ pixels: 4096, energies: 2, maxLines: 100 }, stitcherOf(impl));
    for (const kind of [1, 2, 3] as const) {
      const err = expectCode(() => st.push(kind, 0, 2 ** 51, new Uint16Array(0)), 'SCANLINE_ERR_SLICE_SIZE');
      expect(err.message).toContain(`${2 ** 51} lines x 2 energies x 4096 pixels`);
    }
    // (2^52 + 1) x 8192 wraps to 8192: a payload of one line.
    expectCode(() => st.push(3, 0, 2 ** 52 + 1, new Uint16Array(8192)), 'SCANLINE_ERR_SLICE_SIZE');
    expect(st.stats().storedLines).toBe(0);
  });

  it('read* check their ranges and buffers', async () => {
    const st = fresh(impl);
    st.push(1, 0, 20, slice(scene, 0, 20));
    await pump(st, buffersFor(st, 2), newCollected());
    expectCode(() => st.readRaw(95, 10, new Uint16Array(480)), 'SCANLINE_ERR_SLICE_LINE_RANGE');
    expectCode(() => st.readRaw(0, 10, new Uint16Array(479)), 'SCANLINE_ERR_STITCH_BUFFER');
    expectCode(() => st.readAttenuation(2, 0, 1, new Float32Array(24)), 'SCANLINE_ERR_SLICE_GEOMETRY');
    expectCode(() => st.readAttenuation(0, 0, 2, new Float32Array(47)), 'SCANLINE_ERR_STITCH_BUFFER');
    expectCode(() => st.readMaterial(0, 2, new Uint8Array(47)), 'SCANLINE_ERR_STITCH_BUFFER');
    const single = createStitcher({ pixels: 24, energies: 1 }, stitcherOf(impl));
    expectCode(() => single.readMaterial(0, 1, new Uint8Array(24)), 'SCANLINE_ERR_SLICE_GEOMETRY');
  });
});

describe('missingRanges', () => {
  for (const impl of ['native', 'typescript'] as const) {
    it(`${impl}: lists the line ranges never stored, and drops lines that arrived late`, () => {
      const s = createStitcher({ pixels: 8, energies: 2, maxLines: 256, reorderWindowLines: 4, airLines: 4 }, stitcherOf(impl));
      const lines = (n: number) => new Uint16Array(n * 2 * 8).fill(1000);
      s.push(1, 0, 10, lines(10));
      s.push(1, 20, 10, lines(10));
      s.push(1, 40, 5, lines(5));
      expect(s.missingRanges(0, 50)).toEqual([
        [10, 20],
        [30, 40],
        [45, 50],
      ]);
      expect(s.missingRanges(12, 3)).toEqual([[12, 15]]);
      expect(s.missingRanges(0, 10)).toEqual([]);
      s.push(1, 12, 2, lines(2));
      expect(s.missingRanges(0, 20)).toEqual([
        [10, 12],
        [14, 20],
      ]);
      s.close();
    });
  }
});
