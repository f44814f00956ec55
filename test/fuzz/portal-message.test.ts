/**
 * Property-based fuzz of the portal control message parser (src/protocol/portal.ts, parsePortalMessage): any text
 * either parses to the JSON it holds, of a known type that passed its schema, or throws a ScanlineError with one of
 * the protocol codes (with every problem listed and the portal's token never shown); valid messages round-trip.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ErrorCode } from '../../src/errors/index.js';
import { PORTAL_MESSAGE_SCHEMAS, type PortalMessage, parsePortalMessage } from '../../src/protocol/index.js';
import { FUZZ_TEST_TIMEOUT_MS, checkProperty, resultOrCodedError } from './fuzz.js';

const CODES: ErrorCode[] = ['SCANLINE_ERR_PROTO_JSON', 'SCANLINE_ERR_PROTO_INVALID', 'SCANLINE_ERR_PROTO_UNKNOWN_TYPE'];

const id = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/);
const u32 = fc.nat({ max: 0xffff_ffff });

/** Valid portal messages of every type. */
const validMessage: fc.Arbitrary<PortalMessage> = fc.oneof(
  fc.record(
    {
      type: fc.constant('hello' as const),
      portalId: id,
      token: fc.string(),
      protocol: fc.integer(),
      detector: fc.record({
        pixels: fc.integer({ min: 1, max: 4096 }),
        energies: fc.constantFrom(1 as const, 2 as const),
        bitDepth: fc.constant(16 as const),
        pitchMm: fc.double({ min: 0.001, max: 100, noNaN: true }),
        lineRateHz: fc.double({ min: 0.001, max: 20_000, noNaN: true }),
      }),
    },
    { requiredKeys: ['type', 'portalId', 'detector'] },
  ),
  fc.record(
    {
      type: fc.constant('scan.start' as const),
      streamId: u32,
      scanId: id,
      vehicle: fc.record({ plate: fc.jsonValue(), kind: fc.jsonValue() }, { requiredKeys: [] }),
      declaration: fc.record({ hsCodes: fc.array(fc.stringMatching(/^[0-9]{2,10}$/), { maxLength: 64 }) }),
    },
    { requiredKeys: ['type', 'streamId'] },
  ),
  fc.record({ type: fc.constant('scan.end' as const), streamId: u32, totalLines: u32 }),
  fc.record({ type: fc.constant('scan.abort' as const), streamId: u32, reason: fc.string({ maxLength: 500 }) }),
  fc.record({ type: fc.constant('scan.resume' as const), streamId: u32, scanId: id }),
);

/** A valid message with some of its fields (nested ones included) replaced by any JSON value or removed. */
const nearValid = fc
  .tuple(validMessage, fc.array(fc.tuple(fc.nat(), fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: undefined })), { maxLength: 3 }))
  .map(([message, edits]) => {
    const m = structuredClone(message) as Record<string, unknown>;
    for (const [pick, value] of edits) {
      // Objects of the message (itself, detector, declaration, vehicle), then one of their keys.
      const objects = [m, ...Object.values(m).filter((v): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v))];
      const target = objects[pick % objects.length];
      const keys = [...Object.keys(target), 'extra'];
      const key = keys[Math.floor(pick / objects.length) % keys.length];
      if (value === undefined) delete target[key];
      else target[key] = value;
    }
    return m;
  });

/** Parses `text`; on success the result is the JSON `text` holds, of a known type. */
function check(text: string): void {
  const m = resultOrCodedError(() => parsePortalMessage(text), CODES);
  if (m === undefined) return;
  expect(Object.keys(PORTAL_MESSAGE_SCHEMAS)).toContain(m.type);
  expect(m).toEqual(JSON.parse(text));
}

describe('portal control messages (fuzz)', () => {
  it(
    'any text parses to its JSON of a known type or throws a protocol code',
    () => checkProperty('portal-message-text', fc.property(fc.oneof(fc.string({ maxLength: 300 }), fc.json({ maxDepth: 3 })), check), 2000),
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'messages with fields replaced or removed parse or are refused with every problem listed and the token never shown',
    () =>
      checkProperty(
        'portal-message-near-valid',
        fc.property(nearValid, fc.stringMatching(/^[a-z]{12}$/), (m, secret) => {
          if (m.type === 'hello') m.token = `tok-${secret}`;
          const text = JSON.stringify(m);
          check(text);
          try {
            parsePortalMessage(text);
          } catch (err) {
            const shown = JSON.stringify({ message: (err as Error).message, details: (err as { details?: unknown }).details });
            expect(shown).not.toContain(secret);
            const details = (err as { code: string; details: { problems?: unknown } }).details;
            if ((err as { code: string }).code === 'SCANLINE_ERR_PROTO_INVALID' && details.problems !== undefined) {
              expect(Array.isArray(details.problems) && details.problems.length > 0).toBe(true);
            }
          }
        }),
        2000,
      ),
    FUZZ_TEST_TIMEOUT_MS,
  );

  it(
    'valid messages round-trip through JSON',
    () =>
      checkProperty(
        'portal-message-round-trip',
        fc.property(validMessage, (m) => {
          expect(parsePortalMessage(JSON.stringify(m))).toEqual(JSON.parse(JSON.stringify(m)));
        }),
        1000,
      ),
    FUZZ_TEST_TIMEOUT_MS,
  );
});
