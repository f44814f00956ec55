import { describe, expect, it } from 'vitest';
import { ScanlineError } from '../../src/errors/index.js';
import { SLICE_HEADER_BYTES, SLICE_MAGIC, SliceKind, decodeSliceHeader, encodeSliceFrame } from '../../src/protocol/index.js';

function frame(lines = 2, pixels = 5, energies = 2): Uint8Array {
  const values = new Uint16Array(lines * energies * pixels).map((_, i) => (i * 977) & 0xffff);
  return encodeSliceFrame({ kind: SliceKind.Image, energies, streamId: 7, seq: 3, firstLine: 100, pixels, acquiredAtUs: 1_790_000_000_000_123n }, values);
}

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ScanlineError);
    return (err as ScanlineError).code;
  }
  throw new Error('expected a throw');
}

describe('slice frames', () => {
  it('round-trips the documented header layout byte for byte', () => {
    const f = frame();
    const v = new DataView(f.buffer);
    expect(v.getUint32(0, true)).toBe(SLICE_MAGIC);
    expect(String.fromCharCode(...f.subarray(0, 4))).toBe('XSL1');
    expect(v.getUint16(4, true)).toBe(32);
    expect(f[6]).toBe(1);
    expect(f[7]).toBe(2);
    expect(v.getUint32(8, true)).toBe(7);
    expect(v.getUint32(12, true)).toBe(3);
    expect(v.getUint32(16, true)).toBe(100);
    expect(v.getUint16(20, true)).toBe(2);
    expect(v.getUint16(22, true)).toBe(5);
    expect(v.getBigUint64(24, true)).toBe(1_790_000_000_000_123n);
    expect(f.byteLength).toBe(SLICE_HEADER_BYTES + 2 * 2 * 5 * 2);
    expect(decodeSliceHeader(f)).toEqual({
      kind: 1,
      energies: 2,
      streamId: 7,
      seq: 3,
      firstLine: 100,
      lineCount: 2,
      pixels: 5,
      acquiredAtUs: 1_790_000_000_000_123n,
    });
    // payload is line-major, high energy first, little-endian
    expect(new DataView(f.buffer).getUint16(32 + 2, true)).toBe(977);
  });

  it('refuses each kind of malformed frame with its code', () => {
    expect(codeOf(() => decodeSliceHeader(frame().subarray(0, 31)))).toBe('SCANLINE_ERR_SLICE_TRUNCATED');
    const badMagic = frame();
    badMagic[0] = 0;
    expect(codeOf(() => decodeSliceHeader(badMagic))).toBe('SCANLINE_ERR_SLICE_MAGIC');
    const badHeader = frame();
    new DataView(badHeader.buffer).setUint16(4, 40, true);
    expect(codeOf(() => decodeSliceHeader(badHeader))).toBe('SCANLINE_ERR_SLICE_HEADER');
    const badKind = frame();
    badKind[6] = 9;
    expect(codeOf(() => decodeSliceHeader(badKind))).toBe('SCANLINE_ERR_SLICE_HEADER');
    expect(codeOf(() => decodeSliceHeader(frame().subarray(0, 40)))).toBe('SCANLINE_ERR_SLICE_SIZE');
    const zeroLines = frame();
    new DataView(zeroLines.buffer).setUint16(20, 0, true);
    expect(codeOf(() => decodeSliceHeader(zeroLines.subarray(0, 32)))).toBe('SCANLINE_ERR_SLICE_SIZE');
  });

  it('keeps streamId and seq on errors found after they are readable', () => {
    const f = frame();
    try {
      decodeSliceHeader(f.subarray(0, f.byteLength - 2));
      throw new Error('no throw');
    } catch (err) {
      expect((err as ScanlineError).details).toMatchObject({ streamId: 7, seq: 3 });
    }
  });
});
