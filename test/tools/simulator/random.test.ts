import { describe, expect, it } from 'vitest';
import { POISSON_EXACT_MAX_MEAN, Rng, hashSeed } from '../../../tools/simulator/random.js';

function stats(values: number[]): { mean: number; variance: number } {
  const mean = values.reduce((s, v) => s + v, 0) / values.length;
  const variance = values.reduce((s, v) => s + (v - mean) ** 2, 0) / (values.length - 1);
  return { mean, variance };
}

describe('Rng', () => {
  it('is deterministic by seed and pinned to known values (same on every platform)', () => {
    const a = new Rng(42);
    const b = new Rng(42);
    const seqA = Array.from({ length: 8 }, () => a.nextU32());
    const seqB = Array.from({ length: 8 }, () => b.nextU32());
    expect(seqA).toEqual(seqB);
    // Golden values: a change here changes every simulated scan; update only on purpose.
    expect(seqA.slice(0, 4)).toMatchInlineSnapshot(`
      [
        2837322924,
        544945897,
        479756282,
        3500138142,
      ]
    `);
    expect(hashSeed(1, 'portal', 0)).toMatchInlineSnapshot(`2334903762`);
  });

  it('gives different sequences for different seeds', () => {
    const a = Array.from({ length: 4 }, (_, i) => new Rng(1).nextU32() + i);
    const b = Array.from({ length: 4 }, (_, i) => new Rng(2).nextU32() + i);
    expect(a).not.toEqual(b);
    expect(hashSeed(1, 2)).not.toBe(hashSeed(2, 1));
    expect(hashSeed('a', 1)).not.toBe(hashSeed('a', 2));
    expect(hashSeed(2 ** 40)).not.toBe(hashSeed(0));
  });

  it('draws uniforms in [0, 1) with the right mean', () => {
    const r = new Rng(7);
    const v = Array.from({ length: 50_000 }, () => r.uniform());
    expect(Math.min(...v)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...v)).toBeLessThan(1);
    const { mean, variance } = stats(v);
    expect(mean).toBeCloseTo(0.5, 2);
    expect(variance).toBeCloseTo(1 / 12, 2);
  });

  it('draws standard normals (ziggurat) with mean 0, variance 1 and normal tails', () => {
    const r = new Rng(8);
    const v = Array.from({ length: 200_000 }, () => r.normal());
    const { mean, variance } = stats(v);
    expect(Math.abs(mean)).toBeLessThan(0.01);
    expect(Math.abs(variance - 1)).toBeLessThan(0.02);
    const beyond2 = v.filter((x) => Math.abs(x) > 2).length / v.length;
    expect(beyond2).toBeGreaterThan(0.0455 - 0.004);
    expect(beyond2).toBeLessThan(0.0455 + 0.004);
    expect(v.some((x) => Math.abs(x) > 3.5)).toBe(true); // the tail beyond the ziggurat base is reached
    const scaled = new Rng(8).normal(10, 2);
    expect(scaled).toBeCloseTo(10 + 2 * v[0], 10);
  });

  it.each([0.5, 5, 30, POISSON_EXACT_MAX_MEAN, 500, 40_000])('draws Poisson deviates with mean = variance = %s', (lambda) => {
    const r = new Rng(9);
    const n = 40_000;
    const v = Array.from({ length: n }, () => r.poisson(lambda));
    expect(v.every((x) => Number.isInteger(x) && x >= 0)).toBe(true);
    const { mean, variance } = stats(v);
    expect(Math.abs(mean - lambda)).toBeLessThan(5 * Math.sqrt(lambda / n));
    expect(Math.abs(variance / lambda - 1)).toBeLessThan(0.05);
    expect(new Rng(1).poisson(0)).toBe(0);
  });

  it('chooses uniformly and by weight', () => {
    const r = new Rng(10);
    const counts = { a: 0, b: 0, c: 0 };
    for (let i = 0; i < 30_000; i++)
      counts[
        r.weighted([
          ['a', 1],
          ['b', 2],
          ['c', 0],
        ] as const)
      ]++;
    expect(counts.c).toBe(0);
    expect(counts.b / counts.a).toBeGreaterThan(1.85);
    expect(counts.b / counts.a).toBeLessThan(2.15);
    const seen = new Set(Array.from({ length: 200 }, () => r.choice(['x', 'y', 'z'])));
    expect(seen.size).toBe(3);
    expect(() => r.choice([])).toThrow(RangeError);
    expect(() => r.weighted([['a', 0]])).toThrow(RangeError);
    expect(r.shuffle([1, 2, 3, 4, 5]).sort()).toEqual([1, 2, 3, 4, 5]);
  });
});
