import { describe, expect, it } from 'vitest';
import { ScanlineError } from '../../../src/errors/index.js';
import { CARGO_CATEGORIES, CARGO_CATEGORY_INFO, type CargoCategory } from '../../../tools/simulator/cargo.js';
import { createDetector } from '../../../tools/simulator/detector.js';
import { Energy, MATERIALS } from '../../../tools/simulator/physics.js';
import { renderLines, trueAttenuation } from '../../../tools/simulator/render.js';
import { declarationMessage, generateStepWedge, generateTruck, vehicleInfo, type Scene } from '../../../tools/simulator/scene.js';
import { THREAT_KINDS } from '../../../tools/simulator/threats.js';
import { truthLabels } from '../../../tools/simulator/truth.js';
import { VEHICLE_KINDS } from '../../../tools/simulator/vehicle.js';

const det = createDetector({ pixels: 256 });

/** Mean high-energy attenuation over lines [a, b) and pixels [p0, p1). */
function meanAttenuation(scene: Scene, a: number, b: number, p0: number, p1: number, step = 3): number {
  const t = new Float32Array(det.pixels);
  let sum = 0;
  let count = 0;
  for (let line = a; line < b; line += step) {
    trueAttenuation(scene, det, line, Energy.High, t);
    for (let p = p0; p < p1; p++) {
      sum += t[p];
      count++;
    }
  }
  return sum / count;
}

function pixelOf(heightMm: number): number {
  return Math.min(det.pixels, Math.max(0, Math.floor((det.topMm - heightMm) / det.pitchMm)));
}

describe('generateTruck', () => {
  it('starts and ends with air: the leading lines (>= 64) and trailing lines render as air', () => {
    for (const seed of [1, 2, 3]) {
      const scene = generateTruck(seed, det);
      expect(scene.leadingAirLines).toBeGreaterThanOrEqual(64);
      const n = det.pixels;
      const raw = new Uint16Array(scene.leadingAirLines * 2 * n);
      renderLines(scene, det, 0, scene.leadingAirLines, raw);
      // Every live pixel of every leading line is within 6 sigma of dark + I0 * gain.
      let worst = 0;
      for (let l = 0; l < scene.leadingAirLines; l++) {
        for (const e of [Energy.High, Energy.Low]) {
          for (let p = 0; p < n; p++) {
            if (det.gain[p] === 0) continue;
            const expected = det.dark[p] + det.airCounts[e] * det.gain[p];
            worst = Math.max(worst, Math.abs(raw[(l * 2 + e) * n + p] - expected) / Math.sqrt(expected));
          }
        }
      }
      expect(worst).toBeLessThan(6);
      expect(meanAttenuation(scene, 0, scene.leadingAirLines, 0, n, 1)).toBe(0);
      expect(meanAttenuation(scene, scene.totalLines - scene.trailingAirLines, scene.totalLines, 0, n, 1)).toBe(0);
    }
  });

  it.each(VEHICLE_KINDS)('draws a %s that appears right after the leading air', (vehicleKind) => {
    const scene = generateTruck(4, det, { vehicleKind });
    const labels = truthLabels(scene, det);
    expect(scene.vehicle?.kind).toBe(vehicleKind);
    const [v0, v1] = labels.vehicleLines as [number, number];
    expect(v0).toBe(scene.leadingAirLines);
    expect(v1).toBeLessThanOrEqual(scene.totalLines - scene.trailingAirLines);
    // Wheels, engine and chassis make parts of the vehicle nearly opaque; the body is clearly visible.
    const t = new Float32Array(det.pixels);
    let maxAtt = 0;
    for (let line = v0; line < v1; line += 5) {
      trueAttenuation(scene, det, line, Energy.High, t);
      maxAtt = Math.max(maxAtt, ...t);
    }
    expect(maxAtt).toBeGreaterThan(5);
    expect(scene.vehicle!.heightMm).toBeLessThanOrEqual(4_200);
    expect(scene.vehicle!.lengthMm).toBeLessThanOrEqual(19_000);
    const bay = scene.cargoBay!;
    expect(bay.x1 - bay.x0).toBeGreaterThan(5_000);
    expect(bay.y1 - bay.y0).toBeGreaterThan(2_200);
  });

  const bayPixels = (scene: Scene): [number, number] => [pixelOf(scene.cargoBay!.y1), pixelOf(scene.cargoBay!.y0)];

  it.each(CARGO_CATEGORIES.filter((c) => c !== 'empty'))('can load %s, whose lines differ visibly from an empty truck', (category) => {
    const options = { vehicleKind: 'curtainsider' as const, threats: [] };
    const loaded = generateTruck(77, det, { ...options, categories: [category] });
    const empty = generateTruck(77, det, { ...options, categories: ['empty'] });
    const labels = truthLabels(loaded, det);
    expect(labels.cargoSegments).toHaveLength(1);
    const seg = labels.cargoSegments[0];
    expect(seg.category).toBe(category);
    expect(seg.hsCode).toBe(CARGO_CATEGORY_INFO[category].hsCode);
    expect(seg.endLine - seg.startLine).toBeGreaterThan(500);
    const [p0, p1] = bayPixels(loaded);
    const withCargo = meanAttenuation(loaded, seg.startLine, seg.endLine, p0, p1);
    const without = meanAttenuation(empty, seg.startLine, seg.endLine, p0, p1);
    expect(withCargo - without, `${category}: ${withCargo} vs ${without}`).toBeGreaterThan(0.25);
    expect(loaded.primitives.filter((p) => p.tag === 'cargo').length).toBeGreaterThan(5);
    // Each category uses its own materials.
    const materials = new Set(loaded.primitives.filter((p) => p.tag === 'cargo').map((p) => p.material));
    const signature: Record<Exclude<CargoCategory, 'empty'>, string> = {
      timber: 'wood',
      paper: 'cardboard|paper',
      clothing: 'textile',
      footwear: 'rubber',
      beverages: 'beverage',
      tobacco: 'tobacco',
      fruit: 'fruit',
      tyres: 'rubber',
      steel: 'steel',
      machinery: 'cast-iron',
      electronics: 'circuit-board|battery-cell|glass',
    };
    expect([...materials].some((m) => new RegExp(`^(${signature[category as Exclude<CargoCategory, 'empty'>]})$`).test(m))).toBe(true);
  });

  it('loads nothing for empty and labels the whole bay as empty without an HS code', () => {
    const scene = generateTruck(77, det, { categories: ['empty'], threats: [] });
    expect(scene.primitives.some((p) => p.tag === 'cargo')).toBe(false);
    const labels = truthLabels(scene, det);
    expect(labels.cargoSegments).toEqual([expect.objectContaining({ category: 'empty', hsCode: null })]);
    expect(labels.declaration?.hsCodes).toEqual(labels.declaration?.mismatch ? expect.any(Array) : []);
  });

  it('loads mixed cargo front to rear in the order asked', () => {
    const scene = generateTruck(8, det, { categories: ['tyres', 'paper', 'fruit'], vehicleKind: 'box-trailer' });
    const segs = truthLabels(scene, det).cargoSegments;
    expect(segs.map((s) => s.category)).toEqual(['tyres', 'paper', 'fruit']);
    for (let i = 1; i < segs.length; i++) expect(segs[i].startLine).toBeGreaterThanOrEqual(segs[i - 1].endLine - 1);
  });

  it.each(THREAT_KINDS)('places a %s inside the cargo, with a box within the scan that raises attenuation', (kind) => {
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      const scene = generateTruck(seed, det, { threats: [kind], categories: seed % 2 ? ['clothing'] : undefined });
      const labels = truthLabels(scene, det);
      expect(labels.threats).toHaveLength(1);
      const t = labels.threats[0];
      const truth = scene.threats[0];
      expect(t.kind).toBe(kind);
      const [v0, v1] = labels.vehicleLines!;
      expect(t.lineStart).toBeGreaterThanOrEqual(v0);
      expect(t.lineEnd).toBeLessThanOrEqual(v1);
      expect(t.lineEnd).toBeGreaterThan(t.lineStart);
      expect(t.pixelStart).toBeGreaterThanOrEqual(0);
      expect(t.pixelEnd).toBeLessThanOrEqual(det.pixels);
      expect(t.pixelEnd).toBeGreaterThan(t.pixelStart);
      const bay = scene.cargoBay!;
      expect(truth.x0).toBeGreaterThanOrEqual(bay.x0 - 1);
      expect(truth.x1).toBeLessThanOrEqual(bay.x1 + 1);
      expect(truth.y0).toBeGreaterThanOrEqual(bay.y0 - 1);
      expect(truth.y1).toBeLessThanOrEqual(bay.y1 + 1);
      // The same scene without the threat's primitives: attenuation inside the box must be higher with it.
      const clean: Scene = { ...scene, threats: [], primitives: scene.primitives.filter((p) => p.tag !== 'threat') };
      const withThreat = meanAttenuation(scene, t.lineStart, t.lineEnd, t.pixelStart, t.pixelEnd, 1);
      const withoutThreat = meanAttenuation(clean, t.lineStart, t.lineEnd, t.pixelStart, t.pixelEnd, 1);
      expect(withThreat - withoutThreat, `seed ${seed}`).toBeGreaterThan(0.1);
      // Outside the box nothing changes.
      expect(meanAttenuation(scene, t.lineEnd + 2, t.lineEnd + 40, 0, det.pixels, 1)).toBeCloseTo(
        meanAttenuation(clean, t.lineEnd + 2, t.lineEnd + 40, 0, det.pixels, 1),
        9,
      );
    }
  });

  it('carries threats at roughly the configured probability', () => {
    let withThreats = 0;
    for (let seed = 0; seed < 300; seed++) if (generateTruck(seed, det, { threatProbability: 0.3 }).threats.length > 0) withThreats++;
    expect(withThreats / 300).toBeGreaterThan(0.3 - 0.08);
    expect(withThreats / 300).toBeLessThan(0.3 + 0.08);
    expect(generateTruck(3, det, { threatProbability: 0 }).threats).toEqual([]);
  });

  it('declares the cargo, and lies about it at roughly the configured rate', () => {
    const trials = 600;
    let lies = 0;
    for (let seed = 0; seed < trials; seed++) {
      const scene = generateTruck(seed, det, { mismatchProbability: 0.2 });
      const d = scene.declaration!;
      const real = new Set(scene.cargo.map((c) => c.hsCode).filter((c): c is string => c !== null));
      const same = d.hsCodes.length === real.size && d.hsCodes.every((c) => real.has(c));
      expect(same, `seed ${seed}`).toBe(!d.mismatch);
      for (const code of d.hsCodes) expect(code).toMatch(/^[0-9]{4}$/);
      if (d.mismatch) lies++;
    }
    // Binomial(600, 0.2): sd = 0.016; 3 sd.
    expect(lies / trials).toBeGreaterThan(0.2 - 0.05);
    expect(lies / trials).toBeLessThan(0.2 + 0.05);
    for (let seed = 0; seed < 50; seed++) {
      expect(generateTruck(seed, det, { mismatchProbability: 0 }).declaration!.mismatch).toBe(false);
      expect(generateTruck(seed, det, { mismatchProbability: 1 }).declaration!.mismatch).toBe(true);
    }
  });

  it('builds the scan.start vehicle and declaration objects', () => {
    const scene = generateTruck(9, det, { categories: ['tobacco'], mismatchProbability: 0 });
    expect(vehicleInfo(scene)).toEqual({ plate: expect.stringMatching(/^[A-Z]{2}-\d{3}-[A-Z]{2}$/), kind: scene.vehicle!.kind });
    expect(declarationMessage(scene)).toEqual({ hsCodes: ['2402'], description: CARGO_CATEGORY_INFO.tobacco.description });
  });

  it('honours cargoMix weights', () => {
    const seen = new Set<string>();
    for (let seed = 0; seed < 40; seed++) {
      const scene = generateTruck(seed, det, { cargoMix: Object.fromEntries(CARGO_CATEGORIES.map((c) => [c, c === 'fruit' ? 1 : 0])) });
      for (const c of scene.cargo) seen.add(c.category);
    }
    expect([...seen]).toEqual(['fruit']);
  });

  it('honours the body length and keeps scans below the gateway default of 16384 lines', () => {
    const short = generateTruck(1, det, { vehicleKind: 'curtainsider', bodyLengthMm: 7_000 });
    const long = generateTruck(1, det, { vehicleKind: 'curtainsider', bodyLengthMm: 13_600 });
    expect(long.vehicle!.lengthMm - short.vehicle!.lengthMm).toBeCloseTo(6_600, -1);
    const fast = createDetector({ pixels: 64, lineRateHz: 1_000 });
    for (let seed = 0; seed < 20; seed++) expect(generateTruck(seed, fast).totalLines).toBeLessThan(16_384);
  });

  it('rejects invalid options with SCANLINE_ERR_CLI_USAGE', () => {
    const bad: Array<Record<string, unknown>> = [
      { vehicleKind: 'bicycle' },
      { categories: [] },
      { categories: ['empty', 'timber'] },
      { categories: ['gold'] },
      { threatProbability: 2 },
      { mismatchProbability: -0.1 },
      { threats: ['nuke'] },
      { leadingAirLines: 10 },
      { bodyLengthMm: 100 },
      { cargoMix: { timber: -1 } },
    ];
    for (const options of bad) {
      let err: unknown;
      try {
        generateTruck(1, det, options);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(options)).toBeInstanceOf(ScanlineError);
      expect((err as ScanlineError).code).toBe('SCANLINE_ERR_CLI_USAGE');
    }
    expect(() => generateTruck(-1, det)).toThrow(ScanlineError);
  });
});

describe('generateStepWedge', () => {
  it('lays out slabs of known materials whose attenuation is exactly Beer-Lambert', () => {
    const scene = generateStepWedge(det, { materials: ['water', 'steel', 'lead'], thicknessesMm: [20, 100] });
    expect(scene.steps).toHaveLength(6);
    const t = new Float32Array(det.pixels);
    for (const step of scene.steps!) {
      const line = Math.floor(scene.leadingAirLines + (step.x0 + step.x1) / 2 / scene.mmPerLine);
      trueAttenuation(scene, det, line, Energy.Low, t);
      const m = MATERIALS[step.material];
      expect(t[pixelOf(2_000)]).toBeCloseTo(
        m.density * step.thicknessMm * 0.1 * (step.material === 'water' ? 0.0494 : step.material === 'steel' ? 0.0426 : 0.0461),
        4,
      );
    }
  });
});
