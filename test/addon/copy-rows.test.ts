/**
 * copyRows (the native per-row memmove the preview canvas places strips with) and copyRowsPortable (its JS
 * fallback): the same words land in the same places, untouched words stay, and bad arguments get
 * SCANLINE_ERR_STITCH_BUFFER from both. packRgbRows / packRgbRowsPortable (the canvas's RGB image for the PNG
 * encoder): the same, each word landing as its first three bytes.
 */
import { describe, expect, it } from 'vitest';
import { copyRows, copyRowsPortable, isNativeAddonAvailable, loadNativeAddon, packRgbRows, packRgbRowsPortable } from '../../src/addon/index.js';

type CopyRows = typeof copyRows;

/** One random layout of strided runs, with `random` for the caller's own extras (seeded: the same every run). */
interface RunLayout {
  rowWords: number;
  rows: number;
  srcStride: number;
  dstStride: number;
  srcStart: number;
  dstStart: number;
  /** Elements of src the runs reach (one past the last). */
  srcEnd: number;
  /** Elements of dst the runs reach (one past the last). */
  dstEnd: number;
  random: (n: number) => number;
}

/** `trials` random layouts of up to 30 runs of up to 40 words, strides and starts varied. */
function randomLayouts(seed: number, trials: number): RunLayout[] {
  const random = (n: number): number => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed % n;
  };
  return Array.from({ length: trials }, () => {
    const rowWords = 1 + random(40);
    const rows = 1 + random(30);
    const srcStride = rowWords + random(10);
    const dstStride = rowWords + random(300);
    const srcStart = random(20);
    const dstStart = random(20);
    const srcEnd = srcStart + (rows - 1) * srcStride + rowWords;
    const dstEnd = dstStart + (rows - 1) * dstStride + rowWords;
    return { rowWords, rows, srcStride, dstStride, srcStart, dstStart, srcEnd, dstEnd, random };
  });
}

/** What copyRows must do, written the obvious way. */
function expected(
  dst: Uint32Array,
  dstStart: number,
  dstStride: number,
  src: Uint32Array,
  srcStart: number,
  srcStride: number,
  rowWords: number,
  rows: number,
): Uint32Array {
  const out = dst.slice();
  for (let r = 0; r < rows; r++) for (let i = 0; i < rowWords; i++) out[dstStart + r * dstStride + i] = src[srcStart + r * srcStride + i];
  return out;
}

const implementations: Array<[string, CopyRows]> = [
  ['copyRows (native)', copyRows],
  ['copyRowsPortable', copyRowsPortable],
];

describe.each(implementations)('%s', (_name, impl) => {
  it('copies strided runs and leaves every other word alone', () => {
    for (const { rowWords, rows, srcStride, dstStride, srcStart, dstStart, srcEnd, dstEnd, random } of randomLayouts(99, 50)) {
      const src = Uint32Array.from({ length: srcEnd + random(5) }, (_, i) => 0x10000 + i);
      const dst = Uint32Array.from({ length: dstEnd + random(5) }, (_, i) => 0xdead0000 + i);
      const want = expected(dst, dstStart, dstStride, src, srcStart, srcStride, rowWords, rows);
      impl(dst, dstStart, dstStride, src, srcStart, srcStride, rowWords, rows);
      expect(dst).toEqual(want);
    }
  });

  it('copies into views at an offset of their buffer and accepts empty copies', () => {
    const backing = new Uint32Array(64).fill(7);
    const dst = new Uint32Array(backing.buffer, 16 * 4, 32);
    const src = Uint32Array.from([1, 2, 3, 4, 5, 6]);
    impl(dst, 1, 8, src, 0, 3, 3, 2);
    expect(Array.from(backing.subarray(16, 28))).toEqual([7, 1, 2, 3, 7, 7, 7, 7, 7, 4, 5, 6]);
    expect(backing[15]).toBe(7);
    impl(dst, 0, 0, src, 0, 0, 0, 5);
    impl(dst, 0, 4, src, 0, 4, 4, 0);
  });

  it.each([
    ['a run beyond dst', [new Uint32Array(10), 0, 5, new Uint32Array(20), 0, 5, 5, 3]],
    ['a run beyond src', [new Uint32Array(20), 0, 5, new Uint32Array(10), 0, 5, 5, 3]],
    ['a stride shorter than a run', [new Uint32Array(20), 0, 2, new Uint32Array(20), 0, 5, 3, 2]],
    ['a negative start', [new Uint32Array(20), -1, 5, new Uint32Array(20), 0, 5, 5, 2]],
    ['a fractional count', [new Uint32Array(20), 0, 5, new Uint32Array(20), 0, 5, 2.5, 2]],
    ['a Float32Array', [new Float32Array(20), 0, 5, new Uint32Array(20), 0, 5, 5, 2]],
  ])('refuses %s with SCANLINE_ERR_STITCH_BUFFER and writes nothing', (_what, args) => {
    const dst = args[0] as Uint32Array;
    const before = dst.slice();
    expect(() => (impl as (...a: unknown[]) => void)(...args)).toThrow(expect.objectContaining({ code: 'SCANLINE_ERR_STITCH_BUFFER' }));
    expect(dst).toEqual(before);
  });

  it('refuses src and dst in one buffer', () => {
    const backing = new Uint32Array(40);
    expect(() => impl(backing.subarray(0, 20), 0, 5, backing.subarray(20), 0, 5, 5, 2)).toThrow(
      expect.objectContaining({ code: 'SCANLINE_ERR_STITCH_BUFFER' }),
    );
  });
});

type PackRgbRows = typeof packRgbRows;

/** What packRgbRows must do, written the obvious way: pixel p of dst is bytes 3p..3p+2. */
function expectedRgb(
  dst: Uint8Array,
  dstStart: number,
  dstStride: number,
  src: Uint32Array,
  srcStart: number,
  srcStride: number,
  rowWords: number,
  rows: number,
): Uint8Array {
  const out = dst.slice();
  const bytes = new Uint8Array(src.buffer, src.byteOffset, src.byteLength);
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < rowWords; i++) {
      const d = (dstStart + r * dstStride + i) * 3;
      const s = (srcStart + r * srcStride + i) * 4;
      out[d] = bytes[s];
      out[d + 1] = bytes[s + 1];
      out[d + 2] = bytes[s + 2];
    }
  }
  return out;
}

const packers: Array<[string, PackRgbRows]> = [
  ['packRgbRows (native)', packRgbRows],
  ['packRgbRowsPortable', packRgbRowsPortable],
];

describe.each(packers)('%s', (_name, impl) => {
  it('packs strided runs of RGBA words into RGB pixels and leaves every other byte alone', () => {
    for (const { rowWords, rows, srcStride, dstStride, srcStart, dstStart, srcEnd, dstEnd, random } of randomLayouts(7, 50)) {
      // Every byte distinct within a word, alpha included, so a swapped or shifted byte shows.
      const src = Uint32Array.from({ length: srcEnd + random(5) }, (_, i) => (0x11000000 + i * 0x010203) >>> 0);
      // The run may end exactly at dst's end (no byte after it to spare) or a few bytes short of a whole pixel.
      const dstPixels = dstEnd + random(3);
      const dst = Uint8Array.from({ length: dstPixels * 3 + random(3) }, (_, i) => (i * 7 + 3) & 0xff);
      const want = expectedRgb(dst, dstStart, dstStride, src, srcStart, srcStride, rowWords, rows);
      impl(dst, dstStart, dstStride, src, srcStart, srcStride, rowWords, rows);
      expect(dst).toEqual(want);
    }
  });

  it('writes nothing past the last pixel of a run into a view of a larger buffer', () => {
    const backing = new Uint8Array(32).fill(0xee);
    const dst = new Uint8Array(backing.buffer, 4, 6); // two pixels
    impl(dst, 0, 2, Uint32Array.from([0x44332211, 0x88776655]), 0, 2, 2, 1);
    expect(Array.from(backing.subarray(0, 12))).toEqual([0xee, 0xee, 0xee, 0xee, 0x11, 0x22, 0x33, 0x55, 0x66, 0x77, 0xee, 0xee]);
    impl(dst, 0, 0, new Uint32Array(4), 0, 0, 0, 3);
  });

  it.each([
    ['a run beyond dst', [new Uint8Array(14), 0, 5, new Uint32Array(20), 0, 5, 5, 1]],
    ['a run beyond src', [new Uint8Array(60), 0, 5, new Uint32Array(10), 0, 5, 5, 3]],
    ['a stride shorter than a run', [new Uint8Array(60), 0, 2, new Uint32Array(20), 0, 5, 3, 2]],
    ['a negative start', [new Uint8Array(60), -1, 5, new Uint32Array(20), 0, 5, 5, 2]],
    ['a Uint32Array dst', [new Uint32Array(60), 0, 5, new Uint32Array(20), 0, 5, 5, 2]],
    ['a Uint8Array src', [new Uint8Array(60), 0, 5, new Uint8Array(80), 0, 5, 5, 2]],
  ])('refuses %s with SCANLINE_ERR_STITCH_BUFFER and writes nothing', (_what, args) => {
    const dst = args[0] as Uint8Array;
    const before = dst.slice();
    expect(() => (impl as (...a: unknown[]) => void)(...args)).toThrow(expect.objectContaining({ code: 'SCANLINE_ERR_STITCH_BUFFER' }));
    expect(dst).toEqual(before);
  });

  it('refuses src and dst in one buffer', () => {
    const backing = new Uint32Array(40);
    expect(() => impl(new Uint8Array(backing.buffer, 0, 60), 0, 5, backing.subarray(20), 0, 5, 5, 2)).toThrow(
      expect.objectContaining({ code: 'SCANLINE_ERR_STITCH_BUFFER' }),
    );
  });
});

it('runs natively here (CI builds the addon)', () => {
  expect(isNativeAddonAvailable()).toBe(true);
  // The wrappers fall back to JS silently when an older addon lacks a function: the "(native)" cases above would
  // then test the portable code.
  const addon = loadNativeAddon();
  expect(typeof addon.copyRows).toBe('function');
  expect(typeof addon.packRgbRows).toBe('function');
});
