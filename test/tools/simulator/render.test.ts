import { describe, expect, it } from 'vitest';
import { createDetector, type Detector } from '../../../tools/simulator/detector.js';
import { Energy, slabAttenuation } from '../../../tools/simulator/physics.js';
import { SceneBuilder } from '../../../tools/simulator/primitives.js';
import { renderAir, renderDark, renderLines, trueAttenuation, trueAttenuationLines } from '../../../tools/simulator/render.js';
import { generateTruck, sceneFromPrimitives } from '../../../tools/simulator/scene.js';
import { truthLabels } from '../../../tools/simulator/truth.js';

/** Byte equality of two typed arrays (vitest's deep equality is far too slow for megabytes). */
function sameBytes(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

function renderAll(scene: ReturnType<typeof generateTruck>, det: Detector, chunk: number): Uint16Array {
  const out = new Uint16Array(scene.totalLines * 2 * det.pixels);
  const tmp = new Uint16Array(chunk * 2 * det.pixels);
  for (let first = 0; first < scene.totalLines; first += chunk) {
    const count = Math.min(chunk, scene.totalLines - first);
    renderLines(scene, det, first, count, tmp);
    out.set(tmp.subarray(0, count * 2 * det.pixels), first * 2 * det.pixels);
  }
  return out;
}

describe('renderLines', () => {
  const det = createDetector({ pixels: 256 });

  it('renders byte-identical lines and labels for the same seed, however the scan is sliced', () => {
    const a = generateTruck(11, det);
    const b = generateTruck(11, det);
    expect(JSON.stringify(truthLabels(a, det))).toBe(JSON.stringify(truthLabels(b, det)));
    const whole = renderAll(a, det, a.totalLines);
    expect(sameBytes(renderAll(b, det, 16), whole)).toBe(true);
    expect(sameBytes(renderAll(a, det, 37), whole)).toBe(true);
  });

  it('renders different scans for different seeds', () => {
    const a = generateTruck(11, det, { vehicleKind: 'curtainsider', categories: ['timber'] });
    const b = generateTruck(12, det, { vehicleKind: 'curtainsider', categories: ['timber'] });
    expect(JSON.stringify(a.primitives)).not.toBe(JSON.stringify(b.primitives));
    const lines = Math.min(a.totalLines, b.totalLines);
    expect(sameBytes(renderAll(a, det, 64).subarray(0, lines * 512), renderAll(b, det, 64).subarray(0, lines * 512))).toBe(false);
    // Same truck on another portal (detector seed): same scene, different detector noise and gains.
    const other = createDetector({ pixels: 256, seed: 2 });
    const x = new Uint16Array(512);
    const y = new Uint16Array(512);
    renderLines(a, det, 10, 1, x);
    renderLines(a, other, 10, 1, y);
    expect(sameBytes(x, y)).toBe(false);
  });

  it('without noise, -ln((I - dark) / (I0 * gain)) reproduces trueAttenuation within quantisation error', () => {
    const clean = createDetector({ pixels: 512, noise: false });
    const scene = generateTruck(21, clean, { categories: ['beverages', 'machinery'], threats: ['firearm'] });
    const n = clean.pixels;
    const raw = new Uint16Array(2 * n);
    const truth = new Float32Array(n);
    let checked = 0;
    let worst = -Infinity; // measured error minus allowed error; must stay <= 0
    let deadWrong = 0;
    for (let line = 0; line < scene.totalLines; line += 7) {
      renderLines(scene, clean, line, 1, raw);
      for (const e of [Energy.High, Energy.Low]) {
        trueAttenuation(scene, clean, line, e, truth);
        for (let p = 0; p < n; p++) {
          const g = clean.gain[p];
          const i = raw[e * n + p];
          if (g === 0) {
            if (i !== Math.round(clean.dark[p])) deadWrong++;
            continue;
          }
          const signal = i - clean.dark[p];
          if (signal < 20) continue; // nearly opaque: only the rounding floor is left
          const measured = -Math.log(signal / (clean.airCounts[e] * g));
          // Rounding to an integer count moves the signal by at most 0.5; float32 truth adds ~1e-7 relative.
          worst = Math.max(worst, Math.abs(measured - truth[p]) - (0.5 / (signal - 0.5) + 1e-6 * (1 + truth[p])));
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(100_000);
    expect(worst).toBeLessThanOrEqual(0);
    expect(deadWrong).toBe(0);
  });

  it('with noise, the mean over many lines matches the truth (counts within 4 standard errors, attenuation within 0.003)', () => {
    const noisy = createDetector({ pixels: 128 });
    const b = new SceneBuilder();
    const lines = 600;
    // Two slabs across the whole scan: 60 mm steel (att ~1.6, Gaussian regime) and 280 mm steel (att ~7.3,
    // exact Poisson regime below 64 counts in the low channel).
    b.box('steel', 0, lines * noisy.mmPerLine, 3_000, 4_000, 60);
    b.box('steel', 0, lines * noisy.mmPerLine, 1_000, 2_000, 280);
    const scene = sceneFromPrimitives(noisy, b.primitives, { leadingAirLines: 0, trailingAirLines: 0, seed: 3 });
    const n = noisy.pixels;
    const raw = new Uint16Array(lines * 2 * n);
    renderLines(scene, noisy, 0, lines, raw);
    const truth = new Float32Array(n);
    for (const [pixel, e] of [
      [20, Energy.High],
      [20, Energy.Low],
      [80, Energy.High],
      [80, Energy.Low],
    ] as const) {
      if (noisy.gain[pixel] === 0) continue;
      trueAttenuation(scene, noisy, 300, e, truth);
      const expected = noisy.airCounts[e] * noisy.gain[pixel] * Math.exp(-truth[pixel]);
      let sum = 0;
      let sum2 = 0;
      for (let l = 0; l < lines; l++) {
        const s = raw[(l * 2 + e) * n + pixel] - noisy.dark[pixel];
        sum += s;
        sum2 += s * s;
      }
      const mean = sum / lines;
      const variance = sum2 / lines - mean * mean;
      const sigma2 = expected + noisy.readNoise ** 2 + 1 / 12;
      expect(Math.abs(mean - expected), `pixel ${pixel} energy ${e}`).toBeLessThan(4 * Math.sqrt(sigma2 / lines));
      expect(variance / sigma2).toBeGreaterThan(0.75);
      expect(variance / sigma2).toBeLessThan(1.25);
      expect(Math.abs(-Math.log(mean / (noisy.airCounts[e] * noisy.gain[pixel])) - truth[pixel])).toBeLessThan(expected > 1_000 ? 0.003 : 0.03);
    }
    trueAttenuation(scene, noisy, 10, Energy.High, truth);
    expect(truth[20]).toBeCloseTo(slabAttenuation('steel', 60, Energy.High), 5);
    expect(truth[80]).toBeCloseTo(slabAttenuation('steel', 280, Energy.High), 4);
  });

  it('writes every line high energy first, clamped to u16, and renders air outside the scan', () => {
    const scene = generateTruck(5, det);
    const n = det.pixels;
    const out = new Uint16Array(2 * n);
    const att = new Float32Array(2 * 2 * n);
    trueAttenuationLines(scene, det, 0, 2, att);
    expect(att.every((v) => v === 0)).toBe(true);
    renderLines(scene, det, scene.totalLines + 5, 1, out);
    const mid = out.subarray(0, n).reduce((s, v) => s + v, 0) / n;
    const low = out.subarray(n).reduce((s, v) => s + v, 0) / n;
    expect(mid).toBeGreaterThan(45_000); // high channel ~ 50000 + dark
    expect(low).toBeGreaterThan(36_000);
    expect(low).toBeLessThan(42_000); // low channel ~ 40000 + dark
    expect(() => renderLines(scene, det, 0, 2, new Uint16Array(10))).toThrow(RangeError);
  });
});

describe('calibration frames', () => {
  const det = createDetector({ pixels: 256, seed: 4 });

  it('dark frames average to the dark offset; air frames to dark + I0 * gain; dead pixels read dark', () => {
    const lines = 64;
    const n = det.pixels;
    const dark = new Uint16Array(lines * 2 * n);
    const air = new Uint16Array(lines * 2 * n);
    renderDark(det, lines, dark, 9);
    renderAir(det, lines, air, 9);
    for (const p of [0, 17, 100, det.deadPixels[0]]) {
      for (const e of [Energy.High, Energy.Low]) {
        let d = 0;
        let a = 0;
        for (let l = 0; l < lines; l++) {
          d += dark[(l * 2 + e) * n + p];
          a += air[(l * 2 + e) * n + p];
        }
        d /= lines;
        a /= lines;
        expect(Math.abs(d - det.dark[p])).toBeLessThan(1.5);
        const expectedAir = det.dark[p] + det.airCounts[e] * det.gain[p];
        expect(Math.abs(a - expectedAir)).toBeLessThan(4 * Math.sqrt((expectedAir + 10) / lines) + 1);
      }
    }
    const again = new Uint16Array(lines * 2 * n);
    renderAir(det, lines, again, 9);
    expect(sameBytes(again, air)).toBe(true);
  });
});

describe('reference scan', () => {
  it('keeps the bytes of a reference scan stable (golden digest of truck 1, 256 pixels)', async () => {
    const { createHash } = await import('node:crypto');
    const det = createDetector({ pixels: 256 });
    const scene = generateTruck(1, det);
    const out = new Uint16Array(scene.totalLines * 2 * det.pixels);
    renderLines(scene, det, 0, scene.totalLines, out);
    // A change here changes every simulated scan (physics, scene, detector or noise); update only on purpose.
    expect({ lines: scene.totalLines, sha256: createHash('sha256').update(new Uint8Array(out.buffer)).digest('hex').slice(0, 16) }).toMatchInlineSnapshot(`
      {
        "lines": 3864,
        "sha256": "296a063664901d9d",
      }
    `);
  });
});
