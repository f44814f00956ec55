import { describe, expect, it } from 'vitest';
import type { ScanlineError } from '../../src/errors/index.js';
import { parseClientMessage } from '../../src/protocol/index.js';
import { SubscribeSchema } from '../../src/protocol/index.js';

function error(text: string): ScanlineError {
  try {
    parseClientMessage(text);
  } catch (err) {
    return err as ScanlineError;
  }
  throw new Error('expected a throw');
}

describe('operator feed messages from screens', () => {
  it('accepts each message type and returns subscription lists present and distinct', () => {
    expect(parseClientMessage('{"type":"hello","protocol":1}')).toEqual({ type: 'hello', protocol: 1 });
    expect(parseClientMessage('{"type":"subscribe","portals":["*","lane-1","lane-1"]}')).toEqual({ type: 'subscribe', portals: ['*', 'lane-1'], scans: [] });
    expect(parseClientMessage('{"type":"unsubscribe","scans":["s1"]}')).toEqual({ type: 'unsubscribe', portals: [], scans: ['s1'] });
    expect(parseClientMessage('{"type":"resync","scanId":"s1"}')).toEqual({ type: 'resync', scanId: 's1' });
    expect(SubscribeSchema.additionalProperties).toBe(false);
  });

  it('refuses bad JSON, non-objects and unknown types with one coded message', () => {
    expect(error('not json').message).toMatch(/^operator message is not valid JSON/);
    expect(error('[1]').message).toBe('Expected a JSON object for the message but received [1] of type array');
    expect(error('{"type":"dance"}').message).toBe('Expected one of hello, subscribe, unsubscribe, resync for type but received "dance" of type string');
    expect(error('{"type":"dance"}').code).toBe('SCANLINE_ERR_OPERATOR_MESSAGE');
  });

  it('lists every problem: each bad entry by its index, unknown fields, wrong nested types', () => {
    const e = error('{"type":"subscribe","portals":[42,"lane 2","ok"],"scans":"s1","extra":1}');
    expect(e.code).toBe('SCANLINE_ERR_OPERATOR_MESSAGE');
    expect(e.details.problems).toEqual([
      'Expected a portal id of 1-64 characters A-Za-z0-9._:- or "*" for portals[0] but received 42 of type number',
      'Expected a portal id of 1-64 characters A-Za-z0-9._:- or "*" for portals[1] but received "lane 2" of type string',
      'Expected an array of at most 256 scan ids for scans but received "s1" of type string',
      'Unknown field extra',
    ]);
    expect(e.message).toBe(`invalid subscribe message:\n  - ${(e.details.problems as string[]).join('\n  - ')}`);
    expect(error('{"type":"hello","protocol":1.5}').details.problems).toEqual(['Expected an integer for protocol but received 1.5 of type number']);
    expect(error('{"type":"resync","scanId":""}').details.problems).toEqual(['Expected a scan id for scanId but received "" of type string']);
  });

  it('refuses a subscription that names nothing, once its lists are valid', () => {
    expect(error('{"type":"subscribe","portals":[]}').details.problems).toEqual([
      'Expected at least one entry here or in scans for portals but received [] of type array',
    ]);
    expect(error('{"type":"unsubscribe","scans":[""]}').details.problems).toEqual([
      'Expected a scan id of 1-256 characters for scans[0] but received "" of type string',
    ]);
  });
});
