/**
 * The harder simulator (tools/simulator/realism.ts): its scenes (texture, clutter, mixed loads, concealment) and its
 * detector effects (pulse jitter, board drift, hot pixels, afterglow), each seen in what it renders; and the basic
 * simulator left as it was.
 */
import { describe, expect, it } from 'vitest';
import { createDetector } from '../../../tools/simulator/detector.js';
import { SceneBuilder } from '../../../tools/simulator/primitives.js';
import { Energy } from '../../../tools/simulator/physics.js';
import { hardDetectorOptions, varyingSpeedEdges } from '../../../tools/simulator/realism.js';
import { renderAir, renderDark, renderLines, trueAttenuation } from '../../../tools/simulator/render.js';
import { Rng } from '../../../tools/simulator/random.js';
import { generateTruck, lineAt, sceneFromPrimitives, xOfLine } from '../../../tools/simulator/scene.js';
import { evalTruck } from '../../../tools/eval/trucks.js';
import { simulatorFingerprint } from '../../../tools/dataset/index.js';

const det = createDetector({ pixels: 128, seed: 3 });

const sd = (xs: number[]): number => {
  const m = xs.reduce((a, b) => a + b, 0) / xs.length;
  return Math.sqrt(xs.reduce((a, b) => a + (b - m) ** 2, 0) / xs.length);
};

describe('hard scenes', () => {
  it('load two or more categories in most loaded trucks, where the basic simulator loads one in most', () => {
    const mixedShare = (realism: 'basic' | 'hard'): number => {
      let loaded = 0;
      let mixed = 0;
      for (let seed = 0; seed < 300; seed++) {
        const cargo = generateTruck(seed, det, { realism }).cargo;
        if (cargo[0].category === 'empty') continue;
        loaded++;
        if (cargo.length >= 2) mixed++;
      }
      return mixed / loaded;
    };
    expect(mixedShare('basic')).toBeLessThan(0.4);
    expect(mixedShare('hard')).toBeGreaterThan(0.55);
  });

  it('add loose items of other materials to the goods and vary their density', () => {
    const options = { vehicleKind: 'curtainsider' as const, categories: ['paper' as const], threats: [] };
    const basic = generateTruck(21, det, options);
    const hard = generateTruck(21, det, { ...options, realism: 'hard' });
    const cargo = (s: typeof basic) => s.primitives.filter((p) => p.tag === 'cargo');
    const materials = (s: typeof basic) => new Set(cargo(s).map((p) => p.material));
    // Clutter: items of materials the paper load does not have.
    expect(cargo(hard).length).toBeGreaterThan(cargo(basic).length + 3);
    expect([...materials(hard)].some((m) => !materials(basic).has(m))).toBe(true);
    // Texture: the same loader's primitives get densities spread around their basic values by ~15%.
    const logs = cargo(basic).map((p, i) => Math.log(cargo(hard)[i].densityScale / p.densityScale));
    expect(sd(logs)).toBeGreaterThan(0.1);
    expect(sd(logs)).toBeLessThan(0.2);
  });

  it('hide threats in the load, in its densest goods, by the front wall and rear doors, and under the floor', () => {
    const seen = new Map<string, number>();
    for (let seed = 0; seed < 200; seed++) {
      const scene = generateTruck(seed, det, { realism: 'hard', threats: ['narcotics'], vehicleKind: 'box-trailer' });
      const bay = scene.cargoBay;
      if (!bay) throw new Error('a box trailer has a cargo bay');
      for (const t of scene.threats) {
        seen.set(t.concealment, (seen.get(t.concealment) ?? 0) + 1);
        if (t.concealment === 'under-floor') {
          expect(t.segment).toBe(-1);
          expect(t.y0).toBeLessThan(bay.y0);
        }
        if (t.concealment === 'front-wall') expect(t.x0).toBeLessThan(bay.x0 + 450);
        if (t.concealment === 'rear-doors') expect(t.x1).toBeGreaterThan(bay.x1 - 450);
        if (t.concealment === 'dense-load') {
          const loaded = scene.cargo.filter((c) => c.category !== 'empty').map((c) => c.category);
          // The densest category of the load comes first in the smugglers' order.
          if (loaded.includes('steel')) expect(scene.cargo[t.segment].category).toBe('steel');
        }
      }
    }
    expect([...seen.keys()].sort()).toEqual(['dense-load', 'front-wall', 'in-load', 'rear-doors', 'under-floor']);
    // The basic simulator's threats are all in the load.
    expect(generateTruck(5, det, { threats: ['firearm'] }).threats[0].concealment).toBe('in-load');
  });

  it('leave the basic simulator as the committed models were trained on it', () => {
    // The fingerprint (raw lines of a fixed noiseless truck) in models/*/model.json: a change to the basic path shows
    // here, not as a silent drop in held-out figures.
    expect(simulatorFingerprint()).toBe('501cdec7bef67d8b1e457f18444c92f9e38226583c270590662592b29e88add7');
    expect(simulatorFingerprint('hard')).not.toBe(simulatorFingerprint());
  });

  it("vary the truck's speed through the portal: lines travel 84-116% of the nominal, and the image follows", () => {
    const hard = generateTruck(8, det, { realism: 'hard' });
    const edges = hard.lineEdgesMm;
    if (!edges) throw new Error('a hard scene has line edges');
    expect(edges.length).toBe(hard.totalLines + 1);
    expect(edges[hard.leadingAirLines]).toBe(0);
    const travel = Array.from({ length: hard.totalLines }, (_, l) => (edges[l + 1] - edges[l]) / det.mmPerLine);
    expect(Math.min(...travel)).toBeGreaterThan(0.83);
    expect(Math.max(...travel)).toBeLessThan(1.17);
    expect(Math.max(...travel) - Math.min(...travel)).toBeGreaterThan(0.1);
    // Line and position agree both ways.
    for (const l of [0, 100, 1234, hard.totalLines - 1]) expect(lineAt(hard, xOfLine(hard, l))).toBeCloseTo(l + 0.5, 9);
    expect(generateTruck(8, det).lineEdgesMm).toBeUndefined();

    // A thin plate renders on the line lineAt puts it on, and a 4 m block covers the lines the edges say, not 4 m at
    // the nominal speed.
    const b = new SceneBuilder();
    b.box('steel', 5_000, 5_004, 0, 4_000, 100);
    b.box('steel', 10_000, 14_000, 0, 4_000, 100);
    const plain = sceneFromPrimitives(det, b.primitives, { lengthMm: 16_000 });
    const scene = { ...plain, lineEdgesMm: varyingSpeedEdges(new Rng(5), det.mmPerLine, plain.leadingAirLines, plain.trailingAirLines, 16_000) };
    const totalLines = scene.lineEdgesMm.length - 1;
    const hit = (line: number): boolean => {
      const out = new Float32Array(det.pixels);
      trueAttenuation({ ...scene, totalLines }, det, line, Energy.High, out);
      return out[det.pixels - 10] > 0;
    };
    const plate = Math.floor(lineAt(scene, 5_002));
    expect(hit(plate)).toBe(true);
    expect(hit(plate - 2) || hit(plate + 2)).toBe(false);
    const blockLines = Array.from({ length: totalLines }, (_, l) => l).filter((l) => l > plate + 2 && hit(l)).length;
    const expected = lineAt(scene, 14_000) - lineAt(scene, 10_000);
    expect(Math.abs(blockLines - expected)).toBeLessThanOrEqual(2);
    expect(Math.abs(expected - 4_000 / det.mmPerLine)).toBeGreaterThan(20);
  });

  it('reject an unknown realism with the CLI usage code', () => {
    expect(() => generateTruck(1, det, { realism: 'harder' as never })).toThrow(expect.objectContaining({ code: 'SCANLINE_ERR_CLI_USAGE' }));
  });
});

describe('detector effects', () => {
  const pixels = 96;
  /** An empty portal (air only) and a scene with a block, both 400 lines. */
  const air = (d: ReturnType<typeof createDetector>) => sceneFromPrimitives(d, [], { lengthMm: 400 * d.mmPerLine, leadingAirLines: 0, trailingAirLines: 0 });
  const render = (scene: ReturnType<typeof air>, d: ReturnType<typeof createDetector>): Uint16Array => {
    const out = new Uint16Array(scene.totalLines * 2 * d.pixels);
    renderLines(scene, d, 0, scene.totalLines, out);
    return out;
  };
  const at = (v: Uint16Array, d: ReturnType<typeof createDetector>, line: number, pixel: number, energy = 0): number =>
    v[(line * 2 + energy) * d.pixels + pixel] - d.dark[pixel];

  it('off by default: the basic detector takes the basic path', () => {
    expect(createDetector({ pixels }).effects).toBe(false);
    expect(createDetector({ pixels, ...hardDetectorOptions(pixels) }).effects).toBe(true);
  });

  it('pulse jitter scales whole lines alike, both energies, by about its spread', () => {
    const d = createDetector({ pixels, noise: false, deadPixels: 0, pulseJitter: 0.01 });
    const v = render(air(d), d);
    const ratios = Array.from({ length: 400 }, (_, l) => at(v, d, l, 10) / (d.airCounts[0] * d.gain[10]));
    expect(sd(ratios)).toBeGreaterThan(0.007);
    expect(sd(ratios)).toBeLessThan(0.013);
    // The same factor for every pixel and both energies of a line.
    for (const l of [3, 77, 300]) {
      const f = at(v, d, l, 10) / (d.airCounts[0] * d.gain[10]);
      expect(at(v, d, l, 60) / (d.airCounts[0] * d.gain[60])).toBeCloseTo(f, 3);
      expect(at(v, d, l, 60, 1) / (d.airCounts[1] * d.gain[60])).toBeCloseTo(f, 3);
    }
  });

  it("board drift moves each board's gain slowly along the scan: bands across the image", () => {
    const d = createDetector({ pixels, noise: false, deadPixels: 0, moduleDrift: 0.01, modulePixels: 32 });
    const v = render(air(d), d);
    const rel = (l: number, p: number): number => at(v, d, l, p) / (d.airCounts[0] * d.gain[p]);
    // Pixels of one board share the factor; boards differ.
    expect(rel(200, 1)).toBeCloseTo(rel(200, 30), 3);
    expect(Math.abs(rel(200, 1) - rel(200, 40))).toBeGreaterThan(1e-4);
    // Slow: neighbouring lines nearly equal, far ones apart; spread about moduleDrift.
    expect(Math.abs(rel(100, 5) - rel(101, 5))).toBeLessThan(0.002);
    const series = Array.from({ length: 400 }, (_, l) => rel(l, 5));
    expect(Math.max(...series) - Math.min(...series)).toBeGreaterThan(0.005);
  });

  it('hot pixels switch on and off during the scan, in dark frames too', () => {
    const d = createDetector({ pixels, noise: false, hotPixels: 2, hotPixelCounts: 1500 });
    expect(d.hotPixels).toHaveLength(2);
    const p = d.hotPixels[0];
    const lines = 2000;
    const dark = new Uint16Array(lines * 2 * pixels);
    renderDark(d, lines, dark);
    const readings = new Set(Array.from({ length: lines }, (_, l) => dark[l * 2 * pixels + p] - Math.round(d.dark[p])));
    expect([...readings].sort((a, b) => a - b)).toEqual([0, 1500]);
    const cold = (p + 1) % pixels;
    expect(new Set(Array.from({ length: lines }, (_, l) => dark[l * 2 * pixels + cold])).size).toBe(1);
  });

  it("afterglow adds a fraction of the previous line's signal: a dark edge leaves a dimmer first air line", () => {
    const d = createDetector({ pixels, noise: false, deadPixels: 0, afterglow: 0.02 });
    const b = new SceneBuilder();
    // Opaque from 0 to 200 lines' travel, air after.
    b.box('steel', 0, 200 * d.mmPerLine, -1000, 10_000, 500);
    const scene = sceneFromPrimitives(d, b.primitives, { lengthMm: 400 * d.mmPerLine, leadingAirLines: 0, trailingAirLines: 0 });
    const v = render(scene, d);
    const open = d.airCounts[0] * d.gain[20];
    // Steady air reads (1 + afterglow) x the open signal; the first air line after the steel reads about 1x.
    expect(at(v, d, 350, 20) / open).toBeCloseTo(1.02, 2);
    expect(at(v, d, 200, 20) / open).toBeCloseTo(1, 2);
    // The air calibration frame reads steady air, afterglow included.
    const frame = new Uint16Array(4 * 2 * pixels);
    renderAir(d, 4, frame);
    expect((frame[20] - d.dark[20]) / open).toBeCloseTo(1.02, 2);
  });

  it('renders the same bytes however the scan is sliced, every effect and the noise on', () => {
    const d = createDetector({ pixels, seed: 9, ...hardDetectorOptions(pixels) });
    const scene = generateTruck(31, d, { realism: 'hard', threatProbability: 1 });
    const whole = render(scene, d);
    const sliced = new Uint16Array(whole.length);
    const tmp = new Uint16Array(37 * 2 * pixels);
    for (let first = 0; first < scene.totalLines; first += 37) {
      const count = Math.min(37, scene.totalLines - first);
      renderLines(scene, d, first, count, tmp);
      sliced.set(tmp.subarray(0, count * 2 * pixels), first * 2 * pixels);
    }
    expect(Buffer.from(sliced.buffer).equals(Buffer.from(whole.buffer))).toBe(true);
  });

  it("eval's hard trucks come with the hard detector", () => {
    const t = evalTruck(5000, { threatProbability: 1, realism: 'hard' });
    expect(t.detector.effects).toBe(true);
    expect(t.scene.threats.length).toBeGreaterThan(0);
    expect(evalTruck(5000, { threatProbability: 1 }).detector.effects).toBe(false);
  });
});
