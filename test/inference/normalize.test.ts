import { describe, expect, it } from 'vitest';
import { createNormalizer, packTile } from '../../src/inference/index.js';

describe('packTile', () => {
  const norm = createNormalizer({ shape: [-1, 2, 2, 2], normalization: { offset: [1.5, 1.75], scale: [0.5, 0.25], clampMin: -4, clampMax: 4 } });

  it("applies x' = clamp((x - offset[c]) * scale[c], clampMin, clampMax) per channel at the given slot", () => {
    const src = Float32Array.from([2, 1.5, 100, -100, 2, 1.75, 100, -100]);
    const dst = new Float32Array(3 * 8).fill(7);
    packTile(dst, 8, src, norm);
    expect(Array.from(dst.subarray(0, 8))).toEqual(Array(8).fill(7));
    expect(Array.from(dst.subarray(8, 16))).toEqual([0.25, 0, 4, -4, 0.0625, 0, 4, -4]);
    expect(Array.from(dst.subarray(16))).toEqual(Array(8).fill(7));
  });

  it('computes in float32 at every step, as the training code does in numpy', () => {
    // (0.1f - 1.5f) * 0.5f in float32 differs in the last bit from the same computed in float64 and rounded once.
    const x = Math.fround(0.1);
    const f32 = Math.fround(Math.fround(x - Math.fround(1.5)) * Math.fround(0.5));
    const dst = new Float32Array(8);
    packTile(dst, 0, Float32Array.from([x, 0, 0, 0, 0, 0, 0, 0]), norm);
    expect(dst[0]).toBe(f32);
  });
});
