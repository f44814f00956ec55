import { describe, expect, it } from 'vitest';
import type { ScanlineError } from '../../src/errors/index.js';
import { parsePortalMessage } from '../../src/protocol/index.js';

const hello = { type: 'hello', portalId: 'lane-1', detector: { pixels: 1024, energies: 2, bitDepth: 16, pitchMm: 4.4, lineRateHz: 500 } };

function error(text: string): ScanlineError {
  try {
    parsePortalMessage(text);
  } catch (err) {
    return err as ScanlineError;
  }
  throw new Error('expected a throw');
}

describe('portal control messages', () => {
  it('accepts every well-formed v1 message', () => {
    expect(parsePortalMessage(JSON.stringify(hello)).type).toBe('hello');
    expect(parsePortalMessage('{"type":"scan.start","streamId":1,"declaration":{"hsCodes":["4407","240220"]}}').type).toBe('scan.start');
    expect(parsePortalMessage('{"type":"scan.end","streamId":1,"totalLines":3000}').type).toBe('scan.end');
    expect(parsePortalMessage('{"type":"scan.abort","streamId":1,"reason":"truck reversed"}').type).toBe('scan.abort');
    expect(parsePortalMessage('{"type":"scan.resume","streamId":2,"scanId":"lane-1-x"}').type).toBe('scan.resume');
  });

  it('distinguishes bad JSON, unknown types and schema violations', () => {
    expect(error('{"type":').code).toBe('SCANLINE_ERR_PROTO_JSON');
    expect(error('{"type":"scan.teleport","streamId":4}').code).toBe('SCANLINE_ERR_PROTO_UNKNOWN_TYPE');
    expect(error('{"type":"scan.teleport","streamId":4}').details.streamId).toBe(4);
    expect(error('[1,2]').code).toBe('SCANLINE_ERR_PROTO_INVALID');
  });

  it('lists every problem of an invalid message at once', () => {
    const e = error(JSON.stringify({ ...hello, portalId: '', detector: { pixels: 5000, energies: 3, bitDepth: 8, pitchMm: 0, lineRateHz: -1 } }));
    expect(e.code).toBe('SCANLINE_ERR_PROTO_INVALID');
    expect(e.details.problems).toHaveLength(6);
    expect(e.message).toContain('Expected an integer 1..4096 for detector.pixels but received 5000 of type number');
  });

  it('checks stream ids, line counts and HS codes', () => {
    expect(error('{"type":"scan.start","streamId":-1}').code).toBe('SCANLINE_ERR_PROTO_INVALID');
    expect(error('{"type":"scan.start","streamId":1,"declaration":{"hsCodes":["44O7"]}}').details.problems).toEqual([
      'Expected an HS code of 2-10 digits for declaration.hsCodes[0] but received "44O7" of type string',
    ]);
    expect(error('{"type":"scan.end","streamId":1,"totalLines":1.5}').code).toBe('SCANLINE_ERR_PROTO_INVALID');
    expect(error('{"type":"scan.end","streamId":1,"totalLines":1.5}').details.streamId).toBe(1);
  });

  it('names nested paths and shows an oversized list by its value', () => {
    expect(error('{"type":"scan.start","streamId":1,"declaration":{"hsCodes":"4407"}}').details.problems).toEqual([
      'Expected an array of at most 64 HS codes for declaration.hsCodes but received "4407" of type string',
    ]);
    const many = JSON.stringify({ type: 'scan.start', streamId: 1, declaration: { hsCodes: Array.from({ length: 70 }, () => '4407') } });
    expect(error(many).details.problems).toEqual([
      'Expected an array of at most 64 HS codes for declaration.hsCodes but received ["4407","4407","4407","4407","4407","... of type array',
    ]);
    expect(error('{"type":"scan.start","streamId":1,"declaration":null}').details.problems).toEqual([
      'Expected an object with an hsCodes array for declaration but received null of type null',
    ]);
  });

  it('never shows the token, refuses non-finite numbers and keeps open objects open', () => {
    const e = error(JSON.stringify({ ...hello, token: 12345 }));
    expect(e.details.problems).toEqual(['Expected a string of at most 256 characters for token but received <redacted> of type number']);
    expect(e.message).not.toContain('12345');
    // JSON.parse reads 1e400 as Infinity.
    const infinite = error(JSON.stringify(hello).replace('"pitchMm":4.4', '"pitchMm":1e400'));
    expect(infinite.details.problems).toEqual([expect.stringMatching(/^Expected a number in \(0, 100\] for detector\.pitchMm but received /)]);
    // Unknown keys are ignored (forward compatibility) and a vehicle's fields are free-form, as before the schemas.
    expect(parsePortalMessage(JSON.stringify({ ...hello, firmware: '2.1', detector: { ...hello.detector, vendor: 'x' } })).type).toBe('hello');
    expect(parsePortalMessage('{"type":"scan.start","streamId":1,"vehicle":{"plate":42,"axles":5},"declaration":{"hsCodes":[],"ref":"T1"}}')).toMatchObject({
      vehicle: { plate: 42, axles: 5 },
      declaration: { ref: 'T1' },
    });
  });
});
