/**
 * The frame path fuzzed end to end, on the real gateway (uWS, decodeSliceHeader, the connection's checks, the scan's
 * seq bookkeeping and the native stitcher on 127.0.0.1): sequences of binary frames, mostly well formed with fuzzed
 * seq, lines, kinds, geometry and payloads, some with edited or cut bytes, interleaved with scan.end and arbitrary
 * control messages. Every answer must be an ack or an error with a registered code other than SCANLINE_ERR_INTERNAL
 * (the code of a failure nobody anticipated), the connection stays open, and the scan still ends when asked.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isErrorCode } from '../../src/errors/index.js';
import { SLICE_HEADER_BYTES, type SliceHeader, encodeSliceFrame } from '../../src/protocol/index.js';
import { type TestGateway, startTestGateway } from '../helpers/gateway.js';
import { RawPortal } from '../helpers/raw-portal.js';
import { FUZZ_TEST_TIMEOUT_MS, checkProperty } from './fuzz.js';

const PIXELS = 8;
const ENERGIES = 2;
const MAX_LINES = 4096;

/** A frame to send: its header fields, `next` meaning the scan's next seq or the line after the last one sent. */
interface FrameStep {
  kind: 'frame';
  header: Omit<SliceHeader, 'streamId' | 'seq' | 'firstLine'> & { seq: number | 'next'; firstLine: number | 'next'; otherStream: boolean };
  values: number;
  edits: Array<[number, number]>;
  resize: number;
}
type Step = FrameStep | { kind: 'end'; totalLines: number } | { kind: 'control'; text: string };

/** Mostly `usual`, now and then `rare`. */
const mostly = <T, U>(usual: fc.Arbitrary<T>, rare: fc.Arbitrary<U>): fc.Arbitrary<T | U> =>
  fc.oneof({ weight: 9, arbitrary: usual }, { weight: 1, arbitrary: rare });

const frameStep: fc.Arbitrary<FrameStep> = fc.record({
  kind: fc.constant('frame' as const),
  header: fc.record({
    kind: mostly(fc.constant(1 as const), fc.constantFrom(2 as const, 3 as const)),
    energies: mostly(fc.constant(ENERGIES), fc.nat({ max: 3 })),
    pixels: mostly(fc.constant(PIXELS), fc.nat({ max: 16 })),
    seq: mostly(fc.constant('next' as const), fc.oneof(fc.nat({ max: 16 }), fc.nat({ max: 0xffff_ffff }))),
    firstLine: mostly(
      fc.constant('next' as const),
      fc.oneof(fc.nat({ max: 96 }), fc.constantFrom(MAX_LINES - 8, MAX_LINES - 1, MAX_LINES, 0xffff_ffff, 0xffff_0000)),
    ),
    lineCount: mostly(fc.integer({ min: 1, max: 8 }), fc.nat({ max: 0xffff })),
    acquiredAtUs: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
    otherStream: mostly(fc.constant(false), fc.constant(true)),
  }),
  // A few payload patterns, so replays of a seq or of lines sometimes carry the same values and sometimes not.
  values: mostly(fc.constant(0), fc.nat({ max: 2 })),
  edits: mostly(fc.constant([]), fc.array(fc.tuple(fc.nat({ max: 40 }), fc.nat({ max: 255 })), { minLength: 1, maxLength: 2 })),
  resize: mostly(fc.constant(0), fc.integer({ min: -40, max: 4 })),
});

const step: fc.Arbitrary<Step> = fc.oneof(
  { weight: 14, arbitrary: frameStep },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('end' as const), totalLines: fc.oneof(fc.nat({ max: 96 }), fc.nat({ max: 0xffff_ffff })) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('control' as const), text: fc.oneof(fc.string({ maxLength: 60 }), fc.json({ maxDepth: 2 })) }) },
);

/** Where the scan's next frame goes. */
interface Cursor {
  seq: number;
  line: number;
}

/** Frame bytes for one step; a lineCount too large for a test frame is sent with a short payload (a size error). */
function frameBytes(s: FrameStep, streamId: number, cursor: Cursor): Uint8Array {
  const h = s.header;
  const seq = h.seq === 'next' ? cursor.seq++ : h.seq;
  const firstLine = h.firstLine === 'next' ? cursor.line : h.firstLine;
  if (h.kind === 1 && h.firstLine === 'next') cursor.line += h.lineCount;
  const header = { ...h, seq, firstLine: h.kind === 1 ? firstLine : 0, streamId: h.otherStream ? streamId + 1 : streamId };
  const samples = h.lineCount * h.energies * h.pixels;
  // Values depend on the line, so lines sent twice (replays, overlaps) carry the same values unless `values` differs.
  const lines = new Uint16Array(Math.min(samples, 4096)).map(
    (_, i) => 1000 + ((((firstLine + i / (h.energies * h.pixels || 1)) | 0) * 31 + i * 7 + s.values * 1013) % 50_000),
  );
  let frame: Uint8Array;
  if (samples <= 4096) {
    frame = encodeSliceFrame(header, lines);
  } else {
    frame = encodeSliceFrame({ ...header, lineCount: 1, energies: 1, pixels: lines.length }, lines);
    new DataView(frame.buffer).setUint16(20, h.lineCount, true);
    new DataView(frame.buffer).setUint8(7, h.energies);
    new DataView(frame.buffer).setUint16(22, h.pixels, true);
  }
  for (const [i, v] of s.edits) if (i < SLICE_HEADER_BYTES) frame[i] = v;
  if (s.resize === 0) return frame;
  return frame.slice(0, Math.max(0, frame.length + s.resize));
}

describe('the frame path on the real gateway (fuzz)', () => {
  let g: TestGateway;
  let portal: RawPortal;
  let nextStream = 1;

  beforeAll(async () => {
    g = await startTestGateway({ stitch: { maxLines: MAX_LINES }, portal: { maxOpenScans: 8, reorderWindowSlices: 8 } });
    portal = await RawPortal.hello(g.portalUrl, 'fuzz-lane', { pixels: PIXELS, energies: ENERGIES });
  });

  afterAll(async () => {
    portal?.close();
    await g?.dispose();
  });

  it(
    'fuzzed frames and control messages get acks or registered error codes, never SCANLINE_ERR_INTERNAL, and the scan still ends',
    () =>
      checkProperty(
        'portal-frames',
        fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 24 }), async (steps) => {
          const streamId = nextStream;
          nextStream += 2; // the odd one after it is the "other stream" of misdirected frames
          const start = portal.messages.length;
          portal.json({ type: 'scan.start', streamId });
          const accepted = await portal.next((m) => (m.type === 'scan.accepted' && m.streamId === streamId) || m.type === 'error', 10_000, start);
          expect(accepted.type, JSON.stringify(accepted)).toBe('scan.accepted');
          const from = portal.messages.length;
          const cursor: Cursor = { seq: 0, line: 0 };
          for (const s of steps) {
            if (s.kind === 'frame') portal.binary(frameBytes(s, streamId, cursor));
            else if (s.kind === 'end') portal.json({ type: 'scan.end', streamId, totalLines: s.totalLines });
            else portal.json(s.text);
          }
          // Every answer to the steps comes before the answer to this (the connection handles messages in order).
          portal.json('{"type": "fuzz.sync"}');
          await portal.next((m) => m.type === 'error' && m.code === 'SCANLINE_ERR_PROTO_UNKNOWN_TYPE' && m.message.includes('fuzz.sync'), 10_000, from);
          portal.json({ type: 'scan.abort', streamId, reason: 'fuzz' });
          await portal.next((m) => (m.type === 'scan.aborted' || m.type === 'scan.completed') && m.streamId === streamId, 10_000, from);
          for (const m of portal.messages.slice(from)) {
            if (m.type !== 'error') continue;
            expect(isErrorCode(m.code), `${m.code}: ${m.message}`).toBe(true);
            expect(m.code, m.message).not.toBe('SCANLINE_ERR_INTERNAL');
          }
          expect(portal.closeCode).toBeNull();
        }),
        40,
      ),
    FUZZ_TEST_TIMEOUT_MS,
  );
});
