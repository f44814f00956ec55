/**
 * The harder simulator (`realism: 'hard'`): what makes real cargo scans harder than the clean geometric loads of the
 * basic one, as scene and detector changes that the training recipe and `scanline eval` switch on together.
 *
 * Scene (generateTruck):
 * - texture: every cargo primitive's density varies (packing, moisture, fill level), lognormal with 15% spread;
 * - clutter: loose items between and on top of the goods (cartons, drums, bags, tools, spare parts) in every loaded
 *   segment, of materials of their own;
 * - mixed loads: two or more categories in most loaded trailers (the basic simulator loads one in 70%);
 * - concealment: threats inside the densest goods of the load, or behind the vehicle's structure: against the front
 *   wall, by the rear doors, or under the floor between the chassis beams (a false floor), where steel overlaps them.
 * - speed: the truck's speed varies through the portal (varyingSpeedEdges), so the image is stretched and squeezed.
 * Detector (hardDetectorOptions): pulse-to-pulse source jitter, board gain drift (banding), hot pixels switching on and
 * off, scintillator afterglow, more read noise, gain spread and dead pixels (detector.ts, render.ts).
 *
 * The basic simulator's scenes and bytes are unchanged by any of this: the committed models, their held-out figures
 * and the tests that pin seeds stay valid (test/tools/simulator/realism.test.ts pins its fingerprint).
 */
import type { MaterialId } from './physics.js';
import type { CargoCategory } from './cargo.js';
import type { DetectorOptions } from './detector.js';
import type { Primitive, SceneBuilder } from './primitives.js';
import type { Rng } from './random.js';
import type { ThreatRegion } from './threats.js';
import type { CargoBay } from './vehicle.js';

export const REALISM_LEVELS = ['basic', 'hard'] as const;
export type Realism = (typeof REALISM_LEVELS)[number];

/** How many categories a loaded truck of the hard simulator carries, with weights (basic: 0.7 / 0.25 / 0.05). */
export const HARD_CATEGORY_COUNTS: ReadonlyArray<readonly [number, number]> = [
  [1, 0.35],
  [2, 0.4],
  [3, 0.25],
];

/** Density spread of cargo primitives (sd of the log). */
const TEXTURE_SPREAD = 0.15;

/** The detector options a simulator level adds (none for 'basic'), over the caller's geometry and seed. */
export function realismDetectorOptions(realism: Realism | undefined, pixels: number): DetectorOptions {
  return realism === 'hard' ? hardDetectorOptions(pixels) : {};
}

/** Detector options of the hard simulator, over the dataset's geometry (pixels, line rate, speed, seed stay the caller's). */
export function hardDetectorOptions(pixels: number): DetectorOptions {
  return {
    readNoise: 6,
    gainSpread: 0.08,
    deadPixels: Math.max(2, Math.round(pixels / 150)),
    pulseJitter: 0.01,
    moduleDrift: 0.004,
    modulePixels: 32,
    hotPixels: Math.max(1, Math.round(pixels / 400)),
    hotPixelCounts: 1500,
    afterglow: 0.015,
  };
}

/** Multiplies the density of every cargo primitive from index `from` by a lognormal factor. */
export function textureCargo(primitives: Primitive[], from: number, rng: Rng): void {
  for (let i = from; i < primitives.length; i++) {
    const p = primitives[i];
    if (p.tag !== 'cargo') continue;
    p.densityScale *= Math.exp(TEXTURE_SPREAD * rng.normal() - (TEXTURE_SPREAD * TEXTURE_SPREAD) / 2);
  }
}

const CLUTTER_MATERIALS: ReadonlyArray<readonly [MaterialId, number]> = [
  ['cardboard', 3],
  ['plastic', 2],
  ['wood', 2],
  ['textile', 1.5],
  ['steel', 1],
  ['aluminium', 1],
  ['water', 1],
  ['glass', 0.5],
  ['rubber', 0.5],
];

/**
 * Loose items in a loaded segment [x0, x1) x [y0, y1) of a bay `widthMm` wide: 4-20 of them, boxes, drums and bags
 * of various materials and sizes, anywhere in the segment (in the gaps of the load, on top of it, against the walls).
 * Tagged as the segment's cargo by the caller's builder state.
 */
export function addClutter(b: SceneBuilder, rng: Rng, seg: { x0: number; x1: number; y0: number; y1: number }, widthMm: number): void {
  const n = rng.intRange(4, 20);
  for (let i = 0; i < n; i++) {
    const material = rng.weighted(CLUTTER_MATERIALS);
    const metal = material === 'steel' || material === 'aluminium';
    const w = rng.range(100, metal ? 500 : 1_000);
    const h = rng.range(80, metal ? 400 : 900);
    const x = rng.range(seg.x0, Math.max(seg.x0, seg.x1 - w));
    const y = rng.range(seg.y0, Math.max(seg.y0, seg.y1 - h));
    const depth = rng.range(0.05, metal ? 0.15 : 0.5) * widthMm;
    const shape = rng.int(3);
    if (shape === 0) b.shell(material, x, x + w, y, y + h, metal ? 3 : 8, depth);
    else if (shape === 1) b.vcyl(material, x + w / 2, w / 2, metal ? w / 2 - 2 : 0, y, y + h, 1, metal ? 1 : 0.5);
    else b.box(material, x, x + w, y, y + h, depth, metal ? 0.3 : rng.range(0.2, 0.8));
  }
}

/**
 * Line edges of a truck whose speed varies through the portal (the driver eases off, speeds up; the line rate stays
 * fixed): each line travels mmPerLine x (1 + 12% x a slow wave + 4% x a faster one), the waves' periods and phases
 * drawn from `rng`. Line `leading` starts at x = 0; the vehicle's `lengthMm` is covered, then `trailing` air lines.
 * Returns the totalLines + 1 edges (Scene.lineEdgesMm). The image comes out stretched where the truck slowed down and
 * squeezed where it sped up, as a real portal's does: the gateway knows only the nominal speed.
 */
export function varyingSpeedEdges(rng: Rng, mmPerLine: number, leading: number, trailing: number, lengthMm: number): Float64Array {
  const slow = { period: rng.range(1_500, 4_000), phase: 2 * Math.PI * rng.uniform() };
  const fast = { period: rng.range(300, 800), phase: 2 * Math.PI * rng.uniform() };
  const travel = (l: number): number =>
    mmPerLine * (1 + 0.12 * Math.sin((2 * Math.PI * l) / slow.period + slow.phase) + 0.04 * Math.sin((2 * Math.PI * l) / fast.period + fast.phase));
  const ahead: number[] = [0];
  while (ahead[ahead.length - 1] < lengthMm) ahead.push(ahead[ahead.length - 1] + travel(leading + ahead.length - 1));
  const vehicleLines = ahead.length - 1;
  const total = leading + vehicleLines + trailing;
  const edges = new Float64Array(total + 1);
  for (let l = leading - 1; l >= 0; l--) edges[l] = edges[l + 1] - travel(l);
  for (let l = leading + 1; l <= total; l++) edges[l] = edges[l - 1] + travel(l - 1);
  return edges;
}

/** Categories whose loads hide a threat best (dense, cluttered), in the order a smuggler would pick them. */
const DENSE: readonly CargoCategory[] = ['steel', 'machinery', 'tyres', 'beverages', 'timber', 'electronics', 'paper'];

export type Concealment = 'in-load' | 'dense-load' | 'front-wall' | 'rear-doors' | 'under-floor';

/**
 * Where the hard simulator hides a threat: a region and the cargo segment it counts for (-1: none). `segments` are
 * the truck's cargo segments (category and bounds), `bay` its cargo bay.
 */
export function concealmentRegion(
  rng: Rng,
  bay: CargoBay,
  segments: ReadonlyArray<{ category: CargoCategory; x0: number; x1: number; y0: number; y1: number }>,
): { how: Concealment; region: ThreatRegion; segment: number } {
  const loaded = segments.map((s, k) => [s, k] as const).filter(([s]) => s.category !== 'empty');
  const how = rng.weighted<Concealment>([
    ['in-load', loaded.length > 0 ? 0.35 : 0],
    ['dense-load', loaded.length > 0 ? 0.3 : 0],
    ['front-wall', 0.12],
    ['rear-doors', 0.1],
    ['under-floor', 0.13],
  ]);
  const inside = (k: number): ThreatRegion => {
    const s = segments[k];
    return { x0: s.x0, x1: s.x1, y0: Math.max(s.y0, bay.y0), y1: Math.min(s.y1, bay.y1) };
  };
  const segmentAt = (x: number): number => segments.findIndex((s) => s.category !== 'empty' && x >= s.x0 && x < s.x1);
  switch (how) {
    case 'in-load': {
      const [, k] = rng.choice(loaded);
      return { how, region: inside(k), segment: k };
    }
    case 'dense-load': {
      const rank = (c: CargoCategory): number => {
        const i = DENSE.indexOf(c);
        return i < 0 ? DENSE.length : i;
      };
      const [, k] = [...loaded].sort(([a], [b]) => rank(a.category) - rank(b.category))[0];
      return { how, region: inside(k), segment: k };
    }
    case 'front-wall': {
      // Within 1.2 m of the floor: what is hidden against a wall sits on the floor or on a low shelf, never mid-air.
      const region = { x0: bay.x0, x1: bay.x0 + 450, y0: bay.y0, y1: Math.min(bay.y1, bay.y0 + 1_200) };
      return { how, region, segment: segmentAt(region.x0 + 1) };
    }
    case 'rear-doors': {
      const region = { x0: bay.x1 - 450, x1: bay.x1, y0: bay.y0, y1: Math.min(bay.y1, bay.y0 + 1_200) };
      return { how, region, segment: segmentAt(region.x1 - 1) };
    }
    case 'under-floor': {
      // Between the chassis beams under the deck (the floor, 40-90 mm, above it): a compartment 250 mm deep,
      // anywhere along the bay.
      return { how, region: { x0: bay.x0 + 300, x1: bay.x1 - 300, y0: bay.y0 - 340, y1: bay.y0 - 90 }, segment: -1 };
    }
  }
}
