import { describe, expect, it } from 'vitest';
import { plattScaling, reliability } from '../../../tools/fit/index.js';
import { Rng } from '../../../tools/simulator/index.js';

const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

describe('scanline fit-opinion pieces', () => {
  it('measures the expected calibration error and the reliability bins', () => {
    // Ten at 0.95 of which five right: |0.5 - 0.95| over all; ten at 0.25 of which two or three right.
    const conf = [...new Array(10).fill(0.95), ...new Array(10).fill(0.25)];
    const right = [...new Array(10).fill(0).map((_, i) => i < 5), ...new Array(10).fill(0).map((_, i) => i < 2)];
    const r = reliability(conf, right);
    expect(r.ece).toBeCloseTo((10 * 0.45 + 10 * 0.05) / 20, 4);
    expect(r.bins).toEqual([
      { from: 0.2, to: 0.3, count: 10, confidence: 0.25, accuracy: 0.2 },
      { from: 0.9, to: 1, count: 10, confidence: 0.95, accuracy: 0.5 },
    ]);
  });

  it('recovers a known Platt mapping from seeded samples', () => {
    const rng = new Rng(7);
    const x: number[] = [];
    const y: number[] = [];
    for (let i = 0; i < 20_000; i++) {
      const v = 8 * rng.uniform() - 2;
      x.push(v);
      y.push(rng.uniform() < sigmoid(0.4 * v - 1.1) ? 1 : 0);
    }
    const fit = plattScaling(x, y);
    expect(fit.slope).toBeCloseTo(0.4, 1);
    expect(fit.intercept).toBeCloseTo(-1.1, 1);
  });

  it('fits only the level when every peak is the same (saturated at the float32 top), instead of running away', () => {
    const x = new Array(96).fill(16.1181);
    const y = x.map((_, i) => (i < 51 ? 1 : 0));
    const fit = plattScaling(x, y);
    expect(fit.slope).toBe(1);
    // (51 + 1) / (96 + 2) right: the mapping gives that rate at x.
    expect(sigmoid(fit.slope * x[0] + fit.intercept)).toBeCloseTo(52 / 98, 4);
  });
});
