import { describe, expect, it } from 'vitest';
import { anyKey, defaultsOf, describeValue, expectationOf, MAX_PROBLEMS, SchemaValidator, secretPaths, Type, withDefaults } from '../../src/schema/index.js';

const Detector = Type.Object({
  pixels: Type.Integer({ minimum: 1, maximum: 4096 }),
  energies: Type.Union([Type.Literal(1), Type.Literal(2)]),
  pitchMm: Type.Number({ exclusiveMinimum: 0, maximum: 100 }),
});
const Hello = Type.Object({
  portalId: Type.String({ pattern: '^[a-z]+$', expected: 'a lower-case id' }),
  token: Type.Optional(Type.String({ secret: true })),
  detector: Detector,
  codes: Type.Optional(Type.Array(Type.String({ pattern: '^[0-9]{2,10}$', expected: 'an HS code of 2-10 digits' }), { maxItems: 4 })),
});

describe('SchemaValidator', () => {
  const v = new SchemaValidator(Hello);

  it('accepts a valid value', () => {
    const ok = { portalId: 'lane', detector: { pixels: 2048, energies: 2, pitchMm: 2.5 } };
    expect(v.check(ok)).toBe(true);
    expect(v.problems(ok)).toEqual([]);
  });

  it('lists every problem at once, in schema order, in the house shape', () => {
    const bad = { token: 12, detector: { pixels: 0, energies: 3, pitchMm: 0 }, codes: ['12', 'x'] };
    expect(v.check(bad)).toBe(false);
    expect(v.problems(bad)).toEqual([
      'Expected a lower-case id for portalId but received undefined of type undefined',
      'Expected a string for token but received <redacted> of type number',
      'Expected an integer 1..4096 for detector.pixels but received 0 of type number',
      'Expected 1 or 2 for detector.energies but received 3 of type number',
      'Expected a number in (0, 100] for detector.pitchMm but received 0 of type number',
      'Expected an HS code of 2-10 digits for codes[1] but received "x" of type string',
    ]);
  });

  it('prefixes paths and runs cross-field rules only on fields that passed', () => {
    const rule = new SchemaValidator(Detector, {
      refine: (d, ctx) => {
        if (ctx.ok('pixels', 'pitchMm') && d.pixels * d.pitchMm > 5000) ctx.fail('pitchMm', `a pitch under ${5000 / d.pixels} mm`, d.pitchMm);
      },
    });
    expect(rule.problems({ pixels: 4096, energies: 1, pitchMm: 2 }, 'detector')).toEqual([
      'Expected a pitch under 1.220703125 mm for detector.pitchMm but received 2 of type number',
    ]);
    expect(rule.problems({ pixels: 'x', energies: 1, pitchMm: 2 }, 'detector')).toEqual([
      'Expected an integer 1..4096 for detector.pixels but received "x" of type string',
    ]);
    expect(rule.check({ pixels: 4096, energies: 1, pitchMm: 2 })).toBe(false);
  });

  it('names unknown keys of closed objects with the caller wording', () => {
    const closed = new SchemaValidator(Type.Object({ a: Type.Boolean() }, { additionalProperties: false }), { unknownKey: (p) => `Unknown option ${p}` });
    expect(closed.problems({ a: true, b: 1 })).toEqual(['Unknown option b']);
  });

  it('rejects NaN and Infinity as numbers', () => {
    expect(new SchemaValidator(Type.Number()).problems(Number.NaN)).toEqual(['Expected a number for the value but received NaN of type number']);
    expect(new SchemaValidator(Type.Number()).check(Number.POSITIVE_INFINITY)).toBe(false);
  });

  it('derives expectations and describes values', () => {
    expect(expectationOf(Type.Integer({ minimum: 0 }))).toBe('an integer of at least 0');
    expect(expectationOf(Type.Union([Type.Literal('json'), Type.Literal('pretty')]))).toBe('one of json, pretty');
    expect(expectationOf(Type.String({ maxLength: 500 }))).toBe('a string of at most 500 characters');
    expect(describeValue('x'.repeat(100))).toBe(`"${'x'.repeat(36)}... of type string`);
    expect(describeValue([1])).toBe('[1] of type array');
  });
});

describe('SchemaValidator against hostile values', () => {
  const List = Type.Object({
    items: Type.Array(Type.Object({ a: Type.Integer(), b: Type.Integer() }), { maxItems: 4 }),
    tags: Type.Array(Type.Integer()),
  });
  const v = new SchemaValidator(List, {
    refine: (value, ctx) => {
      if (!Array.isArray(value.items)) return;
      value.items.forEach((item, i) => {
        if (ctx.ok(`items[${i}].a`, `items[${i}].b`) && item.b < item.a) ctx.fail(`items[${i}].b`, 'an integer of at least a', item.b);
      });
    },
  });

  it('reports a list over its limit once, not once per item, and runs no rule inside it', () => {
    const items = Array.from({ length: 20_000 }, () => ({ a: 'x', b: 1 }));
    const started = performance.now();
    const problems = v.problems({ items, tags: [] });
    expect(problems).toEqual(['Expected an array (at most 4 items) for items but received [{"a":"x","b":1},{"a":"x","b":1},{"a"... of type array']);
    expect(performance.now() - started).toBeLessThan(2_000); // quadratic work took minutes here; linear takes ms
  });

  it('lists at most MAX_PROBLEMS problems and says that more were left out', () => {
    const problems = v.problems({ items: [], tags: Array.from({ length: 1_000 }, () => 'x') });
    expect(problems).toHaveLength(MAX_PROBLEMS + 1);
    expect(problems[0]).toBe('Expected an integer for tags[0] but received "x" of type string');
    expect(problems.at(-1)).toBe(`(further problems not listed: the first ${MAX_PROBLEMS} are)`);
  });

  it('runs a rule only where its fields and their parents passed', () => {
    expect(
      v.problems({
        items: [
          { a: 2, b: 1 },
          { a: 'x', b: 0 },
        ],
        tags: [],
      }),
    ).toEqual([
      'Expected an integer of at least a for items[0].b but received 1 of type number',
      'Expected an integer for items[1].a but received "x" of type string',
    ]);
  });

  it('checks record values whatever their keys, line breaks included', () => {
    const r = new SchemaValidator(Type.Record(anyKey(), Type.Literal('accept')));
    expect(r.problems({ 'a\nb': { x: 1 } })).toHaveLength(1);
  });

  it('never shows a value that holds a secret, even when it is not the expected shape', () => {
    const s = new SchemaValidator(Type.Object({ tokens: Type.Array(Type.String({ secret: true })) }));
    expect(s.problems({ tokens: 'supersecret-token-1' })).toEqual(['Expected an array for tokens but received <redacted> of type string']);
    expect([...secretPaths(Type.Object({ p: Type.Object({ tokens: Type.Array(Type.String({ secret: true })), n: Type.Integer() }) }))]).toEqual(['p.tokens']);
  });
});

describe('withDefaults and defaultsOf', () => {
  const S = Type.Object({
    n: Type.Integer({ default: 3 }),
    t: Type.Tuple([Type.Number(), Type.Number(), Type.Number()], { default: [3, 2, 1] }),
    o: Type.Object({ x: Type.Boolean({ default: true }) }, { default: {} }),
  });

  it('fills what is missing and repairs nothing that is there', () => {
    expect(defaultsOf(S)).toEqual({ n: 3, t: [3, 2, 1], o: { x: true } });
    expect(withDefaults(S, { t: [9, 8] })).toEqual({ n: 3, t: [9, 8], o: { x: true } });
    expect(withDefaults(S, { o: [] })).toEqual({ n: 3, t: [3, 2, 1], o: [] });
    const input = { o: {} };
    withDefaults(S, input);
    expect(input).toEqual({ o: {} }); // the input is not written to
  });
});
