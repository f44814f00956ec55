import { describe, expect, it } from 'vitest';
import { ScanlineError } from '../../../src/errors/index.js';
import { airSignal, createDetector, detectorInfo, pixelCentreHeight, pixelCoordinate } from '../../../tools/simulator/detector.js';
import { Energy } from '../../../tools/simulator/physics.js';

describe('createDetector', () => {
  it('has the documented defaults', () => {
    const d = createDetector();
    expect(d.pixels).toBe(1024);
    expect(d.pitchMm).toBeCloseTo(4.5, 10);
    expect(d.lineRateHz).toBe(500);
    expect(d.mmPerLine).toBeCloseTo(4.5, 10); // 2.25 m/s / 500 Hz
    expect(d.airCounts).toEqual([50_000, 40_000]);
    expect(d.deadPixels.length).toBe(3);
    expect(d.topMm).toBeCloseTo(4608, 6);
    expect(detectorInfo(d)).toEqual({ pixels: 1024, energies: 2, bitDepth: 16, pitchMm: d.pitchMm, lineRateHz: 500 });
  });

  it('has seeded dark offsets, gains within +-5% and dead pixels, the same for the same seed', () => {
    const a = createDetector({ seed: 5 });
    const b = createDetector({ seed: 5 });
    const c = createDetector({ seed: 6 });
    expect(Buffer.from(a.gain.buffer)).toEqual(Buffer.from(b.gain.buffer));
    expect(Buffer.from(a.dark.buffer)).toEqual(Buffer.from(b.dark.buffer));
    expect(a.deadPixels).toEqual(b.deadPixels);
    expect(Buffer.from(a.gain.buffer)).not.toEqual(Buffer.from(c.gain.buffer));
    for (let p = 0; p < a.pixels; p++) {
      if (a.deadPixels.includes(p)) {
        expect(a.gain[p]).toBe(0);
        continue;
      }
      expect(a.gain[p]).toBeGreaterThanOrEqual(0.95 - 1e-6);
      expect(a.gain[p]).toBeLessThanOrEqual(1.05 + 1e-6);
      expect(Math.abs(a.dark[p] - 200)).toBeLessThan(50);
    }
    expect(airSignal(a, Energy.Low, 10)).toBeCloseTo(40_000 * a.gain[10], 6);
  });

  it.each([800, 1024, 2048, 4096])('supports %i pixels on the same column height', (pixels) => {
    const d = createDetector({ pixels });
    expect(d.pixels).toBe(pixels);
    expect(d.pixels * d.pitchMm).toBeCloseTo(4608, 6);
    expect(d.dark.length).toBe(pixels);
  });

  it('maps pixel 0 to the top of the column', () => {
    const d = createDetector({ pixels: 100, pitchMm: 10, bottomMm: 500 });
    expect(pixelCentreHeight(d, 0)).toBe(1495);
    expect(pixelCentreHeight(d, 99)).toBe(505);
    expect(pixelCoordinate(d, 1500)).toBe(0);
    expect(pixelCoordinate(d, 500)).toBe(100);
  });

  it('rejects invalid options with SCANLINE_ERR_CLI_USAGE and the house message shape', () => {
    const bad: Array<Record<string, unknown>> = [
      { pixels: 0 },
      { pixels: 5000 },
      { pixels: 10.5 },
      { lineRateHz: -1 },
      { airCountsHigh: 64_000 },
      { noise: 'yes' },
    ];
    for (const options of bad) {
      let err: unknown;
      try {
        createDetector(options);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(options)).toBeInstanceOf(ScanlineError);
      expect((err as ScanlineError).code).toBe('SCANLINE_ERR_CLI_USAGE');
      expect((err as ScanlineError).message).toMatch(/^Expected .+ for .+ but received .+ of type .+$/);
    }
  });
});
