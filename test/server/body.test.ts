import { describe, expect, it } from 'vitest';
import type { ScanlineError } from '../../src/errors/index.js';
import { DecisionRequestSchema } from '../../src/operator/index.js';
import { EnrolmentRequestSchema, refineEnrolmentRequest } from '../../src/results/index.js';
import { bodyValidator, parseBody, parseQuery } from '../../src/server/body.js';
import { OperatorImageQuerySchema } from '../../src/server/operator-image.js';
import { ScanImageQuerySchema, ScanListQuerySchema } from '../../src/server/scans-api.js';
import { SchemaValidator } from '../../src/schema/index.js';

function thrown(f: () => unknown): ScanlineError {
  try {
    f();
  } catch (err) {
    return err as ScanlineError;
  }
  throw new Error('expected a throw');
}

describe('decision bodies', () => {
  const decision = bodyValidator(DecisionRequestSchema);

  it('accepts a decision and lists every problem of a bad one', () => {
    const ok = { verdict: 'inspect', comment: 'seal broken', suggestions: { g0: 'accept', t1: 'reject' } };
    expect(parseBody(decision, ok, 'decision')).toBe(ok);
    const e = thrown(() => parseBody(decision, { verdict: 'maybe', comment: 5, extra: true }, 'decision'));
    expect([e.code, e.status]).toEqual(['SCANLINE_ERR_HTTP_BAD_BODY', 400]);
    expect(e.details.problems).toEqual([
      'Expected "clear" or "inspect" for verdict but received "maybe" of type string',
      'Expected a string of at most 2000 characters for comment but received 5 of type number',
      'Unknown field extra',
    ]);
    expect(e.message).toBe(`invalid decision:\n  - ${(e.details.problems as string[]).join('\n  - ')}`);
  });

  it('names a non-object body, nested wrong types and too many ratings', () => {
    expect(thrown(() => parseBody(decision, [1], 'decision')).message).toBe('Expected a JSON object for the body but received [1] of type array');
    expect(thrown(() => parseBody(decision, { verdict: 'clear', suggestions: ['g0'] }, 'decision')).details.problems).toEqual([
      'Expected an object of at most 256 suggestion ids for suggestions but received ["g0"] of type array',
    ]);
    expect(thrown(() => parseBody(decision, { verdict: 'clear', suggestions: { g0: 'maybe', g1: null } }, 'decision')).details.problems).toEqual([
      'Expected "accept" or "reject" for suggestions.g0 but received "maybe" of type string',
      'Expected "accept" or "reject" for suggestions.g1 but received null of type null',
    ]);
    const many = Object.fromEntries(Array.from({ length: 257 }, (_, i) => [`g${i}`, 'accept']));
    expect(thrown(() => parseBody(decision, { verdict: 'clear', suggestions: many }, 'decision')).details.problems).toEqual([
      expect.stringMatching(/^Expected an object of at most 256 suggestion ids for suggestions but received \{"g0"/),
    ]);
  });
});

describe('enrolment bodies', () => {
  const enrolment = bodyValidator(EnrolmentRequestSchema, refineEnrolmentRequest);
  const region = { scanId: 's1', lineStart: 0, lineEnd: 512 };
  const ok = { id: 'cigarettes-x', name: 'Cigarettes, brand X', hsCodes: ['240220'], minSimilarity: 0.85, samples: [region] };

  it('accepts an enrolment and lists every problem of a bad one', () => {
    expect(parseBody(enrolment, ok, 'enrolment')).toBe(ok);
    const e = thrown(() => parseBody(enrolment, { id: 'Bad Id', name: ' ', hsCodes: ['24'], minSimilarity: 1, samples: [], x: 1 }, 'enrolment'));
    expect(e.details.problems).toEqual([
      'Expected an id of 1-64 characters a-z 0-9 . _ - (starting with a letter or digit) for id but received "Bad Id" of type string',
      'Expected a name of 1-128 characters for name but received " " of type string',
      'Expected an HS code of 4-10 digits for hsCodes[0] but received "24" of type string',
      'Expected a number 0.5..<1 for minSimilarity but received 1 of type number',
      'Expected an array of 1..64 scan regions for samples but received [] of type array',
      'Unknown field x',
    ]);
  });

  it('checks each region, its fields together only once each has passed', () => {
    const samples = [
      { scanId: 's1', lineStart: 10, lineEnd: 10 },
      { scanId: '', lineStart: 'x', lineEnd: 5 },
      { ...region, pixelStart: 100, pixelEnd: 50 },
      'region',
    ];
    expect(thrown(() => parseBody(enrolment, { ...ok, samples }, 'enrolment')).details.problems).toEqual([
      'Expected an integer above lineStart for samples[0].lineEnd but received 10 of type number',
      'Expected a scan id for samples[1].scanId but received "" of type string',
      'Expected an integer >= 0 for samples[1].lineStart but received "x" of type string',
      'Expected an integer above pixelStart for samples[2].pixelEnd but received 50 of type number',
      'Expected a scan region {scanId, lineStart, lineEnd} for samples[3] but received "region" of type string',
    ]);
  });
});

describe('query strings', () => {
  const list = new SchemaValidator(ScanListQuerySchema);
  const image = new SchemaValidator(ScanImageQuerySchema);
  const view = new SchemaValidator(OperatorImageQuerySchema);
  const q = (text: string) => new URLSearchParams(text);

  it('reads numbers as numbers, fills defaults and ignores other parameters', () => {
    expect(parseQuery(list, q(''))).toEqual({ limit: 50 });
    expect(parseQuery(list, q('limit=20&state=completed&portal=lane-1&x=1'))).toEqual({ limit: 20, state: 'completed', portal: 'lane-1' });
    expect(parseQuery(image, q('energy=low'))).toEqual({ energy: 'low', format: 'png16' });
    expect(parseQuery(view, q('view=grey'))).toEqual({ view: 'grey', format: 'png', overlays: '1' });
  });

  it('lists every problem, showing what was sent', () => {
    const e = thrown(() => parseQuery(list, q('limit=eighty&state=lost')));
    expect([e.code, e.status]).toEqual(['SCANLINE_ERR_HTTP_BAD_QUERY', 400]);
    expect(e.details.problems).toEqual([
      'Expected an integer 1..1000 for limit but received "eighty" of type string',
      'Expected one of receiving, completed, aborted, interrupted for state but received "lost" of type string',
    ]);
    expect(e.message).toBe((e.details.problems as string[]).join('; '));
    for (const limit of ['1.5', '0', '1001', '', 'Infinity'])
      expect(thrown(() => parseQuery(list, q(`limit=${limit}`))).code).toBe('SCANLINE_ERR_HTTP_BAD_QUERY');
    expect(thrown(() => parseQuery(image, q('energy=mid&format=png'))).details.problems).toEqual([
      'Expected "high" or "low" for energy but received "mid" of type string',
      'Expected "png16" for format but received "png" of type string',
    ]);
    expect(thrown(() => parseQuery(view, q('view=colour&format=png16&overlays=yes'))).details.problems).toEqual([
      'Expected "material" or "grey" for view but received "colour" of type string',
      'Expected "webp", "jpeg" or "png" (with view=) for format but received "png16" of type string',
      'Expected "0" or "1" for overlays but received "yes" of type string',
    ]);
  });
});
