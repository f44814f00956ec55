/** validateStitcherOptions: defaults merged, every problem reported at once, the result frozen. */
import { describe, expect, it } from 'vitest';
import { ScanlineError } from '../../src/errors/index.js';
import { createStitcher, DEFAULT_STITCHER_OPTIONS, validateStitcherOptions } from '../../src/stitch/index.js';

function problems(input: unknown): string[] {
  try {
    validateStitcherOptions(input as Parameters<typeof validateStitcherOptions>[0]);
  } catch (err) {
    expect(err).toBeInstanceOf(ScanlineError);
    expect((err as ScanlineError).code).toBe('SCANLINE_ERR_STITCH_OPTIONS');
    expect((err as ScanlineError).callerError).toBe(true);
    return (err as ScanlineError).details.problems ?? [];
  }
  return [];
}

describe('validateStitcherOptions', () => {
  it('merges the defaults (nested ones too) and freezes the result', () => {
    const o = validateStitcherOptions({ pixels: 2048, energies: 2, tile: { size: 32 }, material: { maxAttenuation: 8 } });
    expect(o).toEqual({
      ...DEFAULT_STITCHER_OPTIONS,
      pixels: 2048,
      energies: 2,
      tile: { ...DEFAULT_STITCHER_OPTIONS.tile, size: 32 },
      material: { ...DEFAULT_STITCHER_OPTIONS.material, maxAttenuation: 8 },
    });
    expect(Object.isFrozen(o)).toBe(true);
    expect(Object.isFrozen(o.tile)).toBe(true);
    expect(Object.isFrozen(o.material.ratioThresholds)).toBe(true);
    expect(validateStitcherOptions(o)).toEqual(o); // idempotent
  });

  it('lists every problem in one error, in the house message shape', () => {
    const list = problems({
      pixels: 5000,
      energies: 3,
      maxLines: 0,
      deadPixelFraction: -0.1,
      attenuationMax: Number.NaN,
      material: { minAttenuation: 2, maxAttenuation: 1, ratioThresholds: [1.2, 1.3, 1.1] },
      tile: { size: 0, overlapPixels: -1 },
      previewDownsample: 2.5,
      colour: 'red',
    });
    expect(list).toEqual(
      expect.arrayContaining([
        'Expected an integer 1..4096 for pixels but received 5000 of type number',
        'Expected 1 or 2 for energies but received 3 of type number',
        'Expected an integer 1..16777216 for maxLines but received 0 of type number',
        'Expected a number 0..1 for deadPixelFraction but received -0.1 of type number',
        'Expected a number in (0, 30] for attenuationMax but received NaN of type number',
        'Expected a number above material.minAttenuation and at most 30 for material.maxAttenuation but received 1 of type number',
        'Expected an array of 3 strictly decreasing positive numbers for material.ratioThresholds but received [1.2,1.3,1.1] of type array',
        'Expected an integer 1..1024 for tile.size but received 0 of type number',
        'Expected an integer 0..65535 for tile.overlapPixels but received -1 of type number',
        'Expected an integer 1..64 for previewDownsample but received 2.5 of type number',
        'Unknown option colour',
      ]),
    );
    expect(list).toHaveLength(11);
  });

  it('checks the overlap against the tile span, and missing geometry', () => {
    expect(problems({ pixels: 64, energies: 1, tile: { size: 8, downsample: 2, overlapPixels: 16 } })).toEqual([
      'Expected an integer 0..15 for tile.overlapPixels but received 16 of type number',
    ]);
    expect(problems({})).toEqual([
      'Expected an integer 1..4096 for pixels but received undefined of type undefined',
      'Expected 1 or 2 for energies but received undefined of type undefined',
    ]);
    expect(problems(null)).toHaveLength(1);
  });

  it('createStitcher validates too', () => {
    expect(() => createStitcher({ pixels: 0, energies: 2 })).toThrow(/pixels/);
  });
});
