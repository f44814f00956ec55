/**
 * Property-based fuzz of the binary slice frame decoder (src/protocol/slice-frame.ts): any bytes, at any offset in
 * their buffer, either decode to a header that describes exactly those bytes or throw a ScanlineError with one of
 * the frame codes; valid frames round-trip through encodeSliceFrame.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ErrorCode } from '../../src/errors/index.js';
import { SLICE_HEADER_BYTES, SLICE_MAGIC, type SliceHeader, decodeSliceHeader, encodeSliceFrame, writeSliceHeader } from '../../src/protocol/index.js';
import { FUZZ_TEST_TIMEOUT_MS, checkProperty, resultOrCodedError } from './fuzz.js';

const FRAME_CODES: ErrorCode[] = ['SCANLINE_ERR_SLICE_TRUNCATED', 'SCANLINE_ERR_SLICE_MAGIC', 'SCANLINE_ERR_SLICE_HEADER', 'SCANLINE_ERR_SLICE_SIZE'];

/** `bytes` copied into a larger buffer at `offset`, as transports hand frames over (odd offsets included). */
function atOffset(bytes: Uint8Array, offset: number): Uint8Array {
  const buffer = new Uint8Array(offset + bytes.byteLength + 3).fill(0xee);
  buffer.set(bytes, offset);
  return buffer.subarray(offset, offset + bytes.byteLength);
}

/** The decoder's oracle: a header it returns describes exactly `bytes`, read field by field. */
function checkDecoded(bytes: Uint8Array): void {
  const h = resultOrCodedError(() => decodeSliceHeader(bytes), FRAME_CODES);
  if (h === undefined) return;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  expect(view.getUint32(0, true)).toBe(SLICE_MAGIC);
  expect(view.getUint16(4, true)).toBe(SLICE_HEADER_BYTES);
  expect([1, 2, 3]).toContain(h.kind);
  expect(h.lineCount).toBeGreaterThan(0);
  expect(bytes.byteLength).toBe(SLICE_HEADER_BYTES + h.lineCount * h.energies * h.pixels * 2);
  expect(h).toEqual({
    kind: view.getUint8(6),
    energies: view.getUint8(7),
    streamId: view.getUint32(8, true),
    seq: view.getUint32(12, true),
    firstLine: view.getUint32(16, true),
    lineCount: view.getUint16(20, true),
    pixels: view.getUint16(22, true),
    acquiredAtUs: view.getBigUint64(24, true),
  });
}

/** Headers of small valid frames (energies and pixels 0 included: the decoder leaves geometry to the connection). */
const header: fc.Arbitrary<SliceHeader> = fc.record({
  kind: fc.constantFrom(1 as const, 2 as const, 3 as const),
  energies: fc.integer({ min: 0, max: 3 }),
  streamId: fc.nat({ max: 0xffff_ffff }),
  seq: fc.nat({ max: 0xffff_ffff }),
  firstLine: fc.nat({ max: 0xffff_ffff }),
  lineCount: fc.integer({ min: 1, max: 16 }),
  pixels: fc.integer({ min: 0, max: 48 }),
  acquiredAtUs: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
});

/** A frame for `h` whose payload is seeded pseudo-random values. */
function frameOf(h: SliceHeader, seed: number): Uint8Array {
  const lines = new Uint16Array(h.lineCount * h.energies * h.pixels).map((_, i) => (i * 40503 + seed) & 0xffff);
  return encodeSliceFrame(h, lines);
}

describe('slice frames (fuzz)', () => {
  it(
    'arbitrary bytes at any offset decode to a header of exactly those bytes or throw a frame code',
    () =>
      checkProperty(
        'slice-frame-bytes',
        fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat({ max: 7 }), (b, off) => checkDecoded(atOffset(b, off))),
        2000,
      ),
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'valid frames with edited, cut or extended bytes decode consistently or throw a frame code',
    () =>
      checkProperty(
        'slice-frame-mutated',
        fc.property(
          header,
          fc.nat(),
          fc.array(fc.tuple(fc.nat({ max: 63 }), fc.nat({ max: 255 })), { maxLength: 4 }),
          fc.integer({ min: -40, max: 8 }),
          fc.nat({ max: 7 }),
          (h, seed, edits, resize, off) => {
            const frame = frameOf(h, seed);
            for (const [i, v] of edits) if (i < frame.length) frame[i] = v;
            const length = Math.max(0, frame.length + resize);
            const bytes = new Uint8Array(length);
            bytes.set(frame.subarray(0, Math.min(length, frame.length)));
            checkDecoded(atOffset(bytes, off));
          },
        ),
        2000,
      ),
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'encodeSliceFrame then decodeSliceHeader gives the header back, with the payload after it',
    () =>
      checkProperty(
        'slice-frame-round-trip',
        fc.property(header, fc.nat(), fc.nat({ max: 7 }), (h, seed, off) => {
          const frame = frameOf(h, seed);
          const bytes = atOffset(frame, off);
          expect(decodeSliceHeader(bytes)).toEqual(h);
          const payload = new Uint8Array(frame.buffer, SLICE_HEADER_BYTES);
          expect(Buffer.compare(bytes.subarray(SLICE_HEADER_BYTES), payload)).toBe(0);
          // writeSliceHeader over the decoded header reproduces the header bytes.
          const again = new Uint8Array(SLICE_HEADER_BYTES);
          writeSliceHeader(again, decodeSliceHeader(bytes));
          expect(Buffer.compare(again, bytes.subarray(0, SLICE_HEADER_BYTES))).toBe(0);
        }),
        1000,
      ),
    FUZZ_TEST_TIMEOUT_MS,
  );
});
