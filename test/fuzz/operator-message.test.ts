/**
 * Property-based fuzz of what operator screens send and receive (src/protocol/operator.ts): parseClientMessage turns
 * any text into a checked message or throws SCANLINE_ERR_OPERATOR_MESSAGE; decodeImageFrame turns any bytes into a
 * header and image that describe exactly those bytes or throws RangeError (its documented contract: it is the
 * screens' and tests' decoder, the gateway only encodes); valid messages and image frames round-trip.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  IMAGE_FRAME_FIXED_BYTES,
  IMAGE_FRAME_MAGIC,
  type ImageFrameHeader,
  OPERATOR_CLIENT_MESSAGE_SCHEMAS,
  decodeImageFrame,
  encodeImageFrame,
  parseClientMessage,
} from '../../src/protocol/index.js';
import { FUZZ_TEST_TIMEOUT_MS, checkProperty, resultOrCodedError } from './fuzz.js';

const portalEntry = fc.oneof(fc.constant('*'), fc.stringMatching(/^[A-Za-z0-9._:-]{1,64}$/));
const scanEntry = fc.string({ minLength: 1, maxLength: 256 });

/** Valid screen messages; subscribe and unsubscribe with at least one entry. */
const validClientMessage = fc.oneof(
  fc.record({ type: fc.constant('hello'), protocol: fc.integer() }),
  ...(['subscribe', 'unsubscribe'] as const).map((type) =>
    fc
      .record(
        { type: fc.constant(type), portals: fc.array(portalEntry, { maxLength: 256 }), scans: fc.array(scanEntry, { maxLength: 256 }) },
        { requiredKeys: ['type'] },
      )
      .filter((m) => (m.portals?.length ?? 0) + (m.scans?.length ?? 0) > 0),
  ),
  fc.record({ type: fc.constant('resync'), scanId: fc.string({ minLength: 1 }) }),
);

const nearValidClientMessage = fc
  .tuple(validClientMessage, fc.array(fc.tuple(fc.nat(), fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: undefined })), { maxLength: 3 }))
  .map(([message, edits]) => {
    const m = structuredClone(message) as Record<string, unknown>;
    for (const [pick, value] of edits) {
      const keys = [...Object.keys(m), 'extra'];
      const key = keys[pick % keys.length];
      if (value === undefined) delete m[key];
      else m[key] = value;
    }
    return m;
  });

function checkClientText(text: string): void {
  const m = resultOrCodedError(() => parseClientMessage(text), ['SCANLINE_ERR_OPERATOR_MESSAGE']);
  if (m === undefined) return;
  expect(Object.keys(OPERATOR_CLIENT_MESSAGE_SCHEMAS)).toContain(m.type);
  const sent = JSON.parse(text) as Record<string, unknown>;
  if (m.type === 'subscribe' || m.type === 'unsubscribe') {
    // Lists present, distinct, and the entries sent (in order of first appearance).
    expect(m.portals).toEqual([...new Set((sent.portals as string[] | undefined) ?? [])]);
    expect(m.scans).toEqual([...new Set((sent.scans as string[] | undefined) ?? [])]);
    expect(m.portals.length + m.scans.length).toBeGreaterThan(0);
  } else {
    expect(m).toEqual(sent);
  }
}

const imageHeader: fc.Arbitrary<ImageFrameHeader> = fc.record({
  kind: fc.constantFrom(1 as const, 2 as const),
  format: fc.nat({ max: 255 }),
  downsample: fc.nat({ max: 255 }),
  seq: fc.nat({ max: 0xffff_ffff }),
  line: fc.nat({ max: 0xffff_ffff }),
  lines: fc.nat({ max: 0xffff_ffff }),
  width: fc.nat({ max: 0xffff_ffff }),
  height: fc.nat({ max: 0xffff }),
  // Well-formed text (UTF-8 round-trips) of 1..255 bytes.
  scanId: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 }).filter((s) => Buffer.byteLength(s) <= 255),
});

function atOffset(bytes: Uint8Array, offset: number): Uint8Array {
  const buffer = new Uint8Array(offset + bytes.byteLength + 3).fill(0xee);
  buffer.set(bytes, offset);
  return buffer.subarray(offset, offset + bytes.byteLength);
}

function checkImageFrame(bytes: Uint8Array): void {
  let decoded: ReturnType<typeof decodeImageFrame>;
  try {
    decoded = decodeImageFrame(bytes);
  } catch (err) {
    expect(err).toBeInstanceOf(RangeError);
    return;
  }
  const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  expect(b.readUInt32LE(0)).toBe(IMAGE_FRAME_MAGIC);
  const idBytes = b.readUInt8(7);
  expect(bytes.byteLength).toBe(IMAGE_FRAME_FIXED_BYTES + idBytes + b.readUInt32LE(28));
  expect(decoded.header.scanId).toBe(b.toString('utf8', IMAGE_FRAME_FIXED_BYTES, IMAGE_FRAME_FIXED_BYTES + idBytes));
  // The image is a view of the frame's own bytes, right after the scan id.
  expect(decoded.image.buffer).toBe(bytes.buffer);
  expect(decoded.image.byteOffset).toBe(bytes.byteOffset + IMAGE_FRAME_FIXED_BYTES + idBytes);
  expect(decoded.image.byteLength).toBe(b.readUInt32LE(28));
}

describe('operator feed messages and image frames (fuzz)', () => {
  it(
    'any text parses to a checked screen message or throws SCANLINE_ERR_OPERATOR_MESSAGE',
    () =>
      checkProperty(
        'operator-message-text',
        fc.property(
          fc.oneof(
            fc.string({ maxLength: 300 }),
            fc.json({ maxDepth: 3 }),
            nearValidClientMessage.map((m) => JSON.stringify(m)),
          ),
          checkClientText,
        ),
        2000,
      ),
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'valid screen messages round-trip (subscription lists made distinct)',
    () =>
      checkProperty(
        'operator-message-round-trip',
        fc.property(validClientMessage, (m) => {
          expect(resultOrCodedError(() => parseClientMessage(JSON.stringify(m)), [])).toBeDefined();
          checkClientText(JSON.stringify(m));
        }),
        500,
      ),
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'any bytes, and image frames with edited, cut or extended bytes, decode consistently or throw RangeError',
    () =>
      checkProperty(
        'image-frame-bytes',
        fc.property(
          fc.oneof(
            fc.uint8Array({ maxLength: 120 }),
            fc
              .tuple(
                imageHeader,
                fc.uint8Array({ maxLength: 64 }),
                fc.array(fc.tuple(fc.nat({ max: 47 }), fc.nat({ max: 255 })), { maxLength: 3 }),
                fc.integer({ min: -8, max: 8 }),
              )
              .map(([h, image, edits, resize]) => {
                const frame = new Uint8Array(encodeImageFrame(h, image));
                for (const [i, v] of edits) if (i < frame.length) frame[i] = v;
                const out = new Uint8Array(Math.max(0, frame.length + resize));
                out.set(frame.subarray(0, Math.min(out.length, frame.length)));
                return out;
              }),
          ),
          fc.nat({ max: 7 }),
          (bytes, off) => checkImageFrame(atOffset(bytes, off)),
        ),
        2000,
      ),
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'encodeImageFrame then decodeImageFrame gives the header and image back',
    () =>
      checkProperty(
        'image-frame-round-trip',
        fc.property(imageHeader, fc.uint8Array({ maxLength: 256 }), fc.nat({ max: 7 }), (h, image, off) => {
          const decoded = decodeImageFrame(atOffset(encodeImageFrame(h, image), off));
          expect(decoded.header).toEqual(h);
          expect(decoded.image).toEqual(image);
        }),
        1000,
      ),
    FUZZ_TEST_TIMEOUT_MS,
  );
});
