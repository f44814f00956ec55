/**
 * copyRows (the native per-row memmove the preview canvas places strips with) and copyRowsPortable (its JS
 * fallback): the same words land in the same places, untouched words stay, and bad arguments get
 * SCANLINE_ERR_STITCH_BUFFER from both.
 */
import { describe, expect, it } from 'vitest';
import { copyRows, copyRowsPortable, isNativeStitcherAvailable } from '../../src/stitch/index.js';

type CopyRows = typeof copyRows;

/** What copyRows must do, written the obvious way. */
function expected(dst: Uint32Array, dstStart: number, dstStride: number, src: Uint32Array, srcStart: number, srcStride: number, rowWords: number, rows: number): Uint32Array {
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
    let seed = 99;
    const random = (n: number): number => {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      return seed % n;
    };
    for (let trial = 0; trial < 50; trial++) {
      const rowWords = 1 + random(40);
      const rows = 1 + random(30);
      const srcStride = rowWords + random(10);
      const dstStride = rowWords + random(300);
      const srcStart = random(20);
      const dstStart = random(20);
      const src = Uint32Array.from({ length: srcStart + (rows - 1) * srcStride + rowWords + random(5) }, (_, i) => 0x10000 + i);
      const dst = Uint32Array.from({ length: dstStart + (rows - 1) * dstStride + rowWords + random(5) }, (_, i) => 0xdead0000 + i);
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
    expect(() => impl(backing.subarray(0, 20), 0, 5, backing.subarray(20), 0, 5, 5, 2)).toThrow(expect.objectContaining({ code: 'SCANLINE_ERR_STITCH_BUFFER' }));
  });
});

it('runs natively here (CI builds the addon)', () => {
  expect(isNativeStitcherAvailable()).toBe(true);
});
