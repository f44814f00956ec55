/**
 * Deterministic synthetic scans for the stitcher tests: a seeded PRNG and Beer-Lambert on rectangles of known
 * attenuation, plus a driver that runs a stitcher to the end and collects every tile and preview strip.
 */
import { createStitcher, type ProcessResult, type PreviewStrip, type Stitcher, type StitcherOptionsInput, type TileInfo } from '../../src/stitch/index.js';
import { type StitcherImplementation, stitcherOf } from '../helpers/ts-stitcher.js';

/** mulberry32: small, fast, seeded; returns floats in [0, 1). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal from two uniforms (Box-Muller). */
export function gaussian(random: () => number): number {
  const u = Math.max(random(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

export interface Rect {
  line0: number;
  line1: number;
  pixel0: number;
  pixel1: number;
  /** Attenuation -ln(T) at the high energy and at the low energy. */
  high: number;
  low: number;
}

export interface SceneSpec {
  pixels: number;
  energies: 1 | 2;
  lines: number;
  seed: number;
  rects: Rect[];
  /** Gaussian noise with sigma = noise * sqrt(counts); 0 = noiseless (values rounded only). */
  noise?: number;
  /** Per energy: dark level (integer); 0 gives a dark-free detector. */
  darkLevel?: number;
  /** Pixels whose air - dark is almost nothing (dead). */
  deadPixels?: number[];
}

export interface Scene extends SceneSpec {
  /** True dark and air per (energy, pixel), integers. */
  dark: Float64Array;
  air: Float64Array;
  /** True attenuation, line-major like raw: (line * energies + e) * pixels + p. */
  truth: Float64Array;
  raw: Uint16Array;
  /** Dark and air calibration frames (16 lines each) drawn with the same noise. */
  darkFrames: Uint16Array;
  airFrames: Uint16Array;
  frameLines: number;
}

export function makeScene(spec: SceneSpec): Scene {
  const { pixels, energies, lines } = spec;
  const random = rng(spec.seed);
  const noise = spec.noise ?? 0;
  const n = energies * pixels;
  const dark = new Float64Array(n);
  const air = new Float64Array(n);
  for (let e = 0; e < energies; e++) {
    for (let p = 0; p < pixels; p++) {
      dark[e * pixels + p] = (spec.darkLevel ?? 200) + (spec.darkLevel === 0 ? 0 : Math.floor(random() * 40));
      air[e * pixels + p] = dark[e * pixels + p] + 30_000 + Math.floor(random() * 20_000) - e * 8_000;
    }
  }
  for (const p of spec.deadPixels ?? []) for (let e = 0; e < energies; e++) air[e * pixels + p] = dark[e * pixels + p] + 20;
  const sample = (mean: number): number => {
    const v = noise > 0 ? mean + noise * Math.sqrt(Math.max(mean, 1)) * gaussian(random) : mean;
    return Math.min(65535, Math.max(0, Math.round(v)));
  };
  const truth = new Float64Array(lines * n);
  const raw = new Uint16Array(lines * n);
  for (let l = 0; l < lines; l++) {
    for (let e = 0; e < energies; e++) {
      for (let p = 0; p < pixels; p++) {
        let a = 0;
        for (const r of spec.rects) {
          if (l >= r.line0 && l < r.line1 && p >= r.pixel0 && p < r.pixel1) a += e === 0 ? r.high : r.low;
        }
        const i = (l * energies + e) * pixels + p;
        truth[i] = a;
        const k = e * pixels + p;
        raw[i] = sample(dark[k] + (air[k] - dark[k]) * Math.exp(-a));
      }
    }
  }
  const frameLines = 16;
  const darkFrames = new Uint16Array(frameLines * n);
  const airFrames = new Uint16Array(frameLines * n);
  for (let l = 0; l < frameLines; l++) {
    for (let i = 0; i < n; i++) {
      darkFrames[l * n + i] = sample(dark[i]);
      airFrames[l * n + i] = sample(air[i]);
    }
  }
  return { ...spec, dark, air, truth, raw, darkFrames, airFrames, frameLines };
}

/** Lines [first, first + count) of the scene's raw data (a view). */
export function slice(scene: Scene, first: number, count: number): Uint16Array {
  const n = scene.energies * scene.pixels;
  return scene.raw.subarray(first * n, (first + count) * n);
}

export interface Collected {
  results: ProcessResult[];
  tiles: Array<{ info: TileInfo; data: Float32Array }>;
  strips: Array<{ strip: PreviewStrip; rgba: Uint8Array }>;
}

export function newCollected(): Collected {
  return { results: [], tiles: [], strips: [] };
}

/** Runs process() while it reports more work (and once at least), copying tiles and strips out of the buffers. */
export async function pump(st: Stitcher, buffers: { tiles: Float32Array; preview: Uint8Array }, into: Collected): Promise<ProcessResult> {
  for (;;) {
    const r = await st.process(buffers);
    into.results.push(r);
    for (const info of r.tiles) {
      into.tiles.push({
        info,
        data: buffers.tiles.slice(info.slot * st.tileFloats, (info.slot + 1) * st.tileFloats),
      });
    }
    if (r.preview) {
      into.strips.push({ strip: r.preview, rgba: buffers.preview.slice(0, r.preview.width * r.preview.height * 4) });
    }
    if (!r.more) return r;
  }
}

export function buffersFor(st: Stitcher, tileCapacity: number): { tiles: Float32Array; preview: Uint8Array } {
  return { tiles: new Float32Array(st.tileFloats * tileCapacity), preview: new Uint8Array(st.previewBytes) };
}

/** One step of a push schedule: a slice of image lines, or a process() call, or finish. */
export type Step = { push: [number, number] } | { process: true } | { finish: number };

/**
 * A schedule that delivers the scene in random slices (1..maxSlice lines), shuffled within `shuffleWindow`
 * slices, replays some slices (duplicates), never sends the lines in `drop`, and calls process() now and then.
 */
export function schedule(
  scene: Scene,
  seed: number,
  opts: { maxSlice: number; shuffleWindow: number; drop?: Array<[number, number]>; duplicates?: number },
): Step[] {
  const random = rng(seed);
  const slices: Array<[number, number]> = [];
  for (let l = 0; l < scene.lines; ) {
    const count = Math.min(scene.lines - l, 1 + Math.floor(random() * opts.maxSlice));
    slices.push([l, count]);
    l += count;
  }
  // Split slices at dropped ranges and remove the dropped lines.
  const kept: Array<[number, number]> = [];
  for (const [first, count] of slices) {
    let runStart = -1;
    for (let l = first; l <= first + count; l++) {
      const inside = l < first + count && !(opts.drop ?? []).some(([a, b]) => l >= a && l < b);
      if (inside && runStart < 0) runStart = l;
      if (!inside && runStart >= 0) {
        kept.push([runStart, l - runStart]);
        runStart = -1;
      }
    }
  }
  // Local shuffle: each slice moves at most shuffleWindow places.
  for (let i = 0; i < kept.length; i++) {
    const j = Math.min(kept.length - 1, i + Math.floor(random() * opts.shuffleWindow));
    [kept[i], kept[j]] = [kept[j], kept[i]];
  }
  const steps: Step[] = [];
  for (const s of kept) {
    steps.push({ push: s });
    if (random() < (opts.duplicates ?? 0)) steps.push({ push: s });
    if (random() < 0.25) steps.push({ process: true });
  }
  steps.push({ finish: scene.lines });
  return steps;
}

/** Plays a schedule on a fresh stitcher and drains it to done. */
export async function play(
  scene: Scene,
  steps: Step[],
  options: Omit<StitcherOptionsInput, 'pixels' | 'energies'>,
  implementation: StitcherImplementation,
  tileCapacity: number,
  frames: { dark?: boolean; air?: boolean } = {},
): Promise<{ st: Stitcher; collected: Collected }> {
  const st = createStitcher({ ...options, pixels: scene.pixels, energies: scene.energies }, stitcherOf(implementation));
  if (frames.dark) st.push(2, 0, scene.frameLines, scene.darkFrames);
  if (frames.air) st.push(3, 0, scene.frameLines, scene.airFrames);
  const buffers = buffersFor(st, tileCapacity);
  const collected = newCollected();
  for (const step of steps) {
    if ('push' in step) st.push(1, step.push[0], step.push[1], slice(scene, step.push[0], step.push[1]));
    else if ('process' in step) await pump(st, buffers, collected);
    else st.finish(step.finish);
  }
  const last = await pump(st, buffers, collected);
  if (!last.done) throw new Error('stitcher did not finish');
  return { st, collected };
}

/** Attenuation of one energy for all lines, [line][pixel]. */
export function attenuation(st: Stitcher, energy: number, lines: number): Float32Array {
  const out = new Float32Array(lines * st.options.pixels);
  st.readAttenuation(energy, 0, lines, out);
  return out;
}

export function closeEnough(a: number, b: number, rel = 1e-4, abs = 1e-5): boolean {
  return Math.abs(a - b) <= abs + rel * Math.abs(b);
}

/** Indices where two float arrays differ beyond the tolerance (at most `limit` of them). */
export function mismatches(a: ArrayLike<number>, b: ArrayLike<number>, rel = 1e-4, abs = 1e-5, limit = 10): number[] {
  const out: number[] = [];
  if (a.length !== b.length) return [-1];
  for (let i = 0; i < a.length && out.length < limit; i++) if (!closeEnough(a[i], b[i], rel, abs)) out.push(i);
  return out;
}

/** True when (high, low) lies within `eps` of a material decision boundary (float vs double may disagree there). */
export function nearMaterialBoundary(
  high: number,
  low: number,
  material: { minAttenuation: number; maxAttenuation: number; ratioThresholds: readonly number[] },
  eps = 1e-4,
): boolean {
  if (Math.abs(high - material.minAttenuation) < eps || Math.abs(high - material.maxAttenuation) < eps) return true;
  return material.ratioThresholds.some((t) => Math.abs(low - t * high) < eps * Math.max(1, high));
}

/** Lines inside any gap reported by the results (the stitcher treats them as attenuation 0 in tiles and preview). */
export function gapLines(results: ProcessResult[]): Set<number> {
  const lines = new Set<number>();
  for (const r of results) for (const [a, b] of r.gaps) for (let l = a; l < b; l++) lines.add(l);
  return lines;
}

/** Attenuation planes [energy][line * pixels + pixel] with gap lines zeroed: what tiles and preview are made of. */
export function processedPlanes(st: Stitcher, lines: number, gaps: Set<number>): Float32Array[] {
  const planes: Float32Array[] = [];
  for (let e = 0; e < st.options.energies; e++) {
    const plane = attenuation(st, e, lines);
    for (const l of gaps) plane.fill(0, l * st.options.pixels, (l + 1) * st.options.pixels);
    planes.push(plane);
  }
  return planes;
}

/** A tile computed independently from attenuation planes: block average with zero padding, NCHW. */
export function oracleTile(planes: Float32Array[], info: TileInfo, totalLines: number, st: Stitcher): Float64Array {
  const { size, downsample: ds } = st.options.tile;
  const pixels = st.options.pixels;
  const out = new Float64Array(planes.length * size * size);
  for (let e = 0; e < planes.length; e++) {
    for (let h = 0; h < size; h++) {
      for (let w = 0; w < size; w++) {
        let s = 0;
        for (let j = 0; j < ds; j++) {
          const l = info.line + w * ds + j;
          if (l >= info.line + info.lines || l >= totalLines) continue;
          for (let i = 0; i < ds; i++) {
            const p = info.pixel + h * ds + i;
            if (p < pixels) s += planes[e][l * pixels + p];
          }
        }
        out[(e * size + h) * size + w] = s / (ds * ds);
      }
    }
  }
  return out;
}

/** Preview palette as documented (native/preview.h); the test's own copy, so it checks the documentation too. */
const PALETTE = [
  [255, 255, 255],
  [255, 140, 0],
  [0, 170, 60],
  [30, 110, 255],
  [150, 50, 210],
  [24, 24, 24],
];

export function oracleClass(high: number, low: number, m: { minAttenuation: number; maxAttenuation: number; ratioThresholds: readonly number[] }): number {
  if (high < m.minAttenuation) return 0;
  if (high > m.maxAttenuation) return 5;
  const r = low / high;
  if (r >= m.ratioThresholds[0]) return 1;
  if (r >= m.ratioThresholds[1]) return 2;
  if (r >= m.ratioThresholds[2]) return 3;
  return 4;
}

export interface PreviewCheck {
  /** Samples compared. */
  samples: number;
  /** Samples whose colour differs by more than 1 per channel and are not next to a material decision boundary. */
  bad: Array<{ x: number; y: number; got: number[]; want: number[] }>;
  /** Samples that differ but sit within 1e-4 of a material boundary (float vs double may classify them apart). */
  boundary: number;
}

/** Checks a preview strip against colours computed independently from the attenuation planes. */
export function checkStrip(planes: Float32Array[], gaps: Set<number>, strip: PreviewStrip, rgba: Uint8Array, st: Stitcher): PreviewCheck {
  const o = st.options;
  const d = o.previewDownsample;
  const m = o.material;
  const result: PreviewCheck = { samples: 0, bad: [], boundary: 0 };
  for (let x = 0; x < strip.width; x++) {
    const l0 = strip.line + x * d;
    const l1 = Math.min(l0 + d, strip.line + strip.lines);
    let gap = false;
    for (let l = l0; l < l1; l++) gap ||= gaps.has(l);
    for (let y = 0; y < strip.height; y++) {
      const p0 = y * d;
      const p1 = Math.min(p0 + d, o.pixels);
      let sh = 0;
      let sl = 0;
      for (let l = l0; l < l1; l++) {
        for (let p = p0; p < p1; p++) {
          sh += planes[0][l * o.pixels + p];
          sl += planes[o.energies === 2 ? 1 : 0][l * o.pixels + p];
        }
      }
      const n = (l1 - l0) * (p1 - p0);
      const high = sh / n;
      const low = sl / n;
      const s = 0.15 + 0.85 * (1 - Math.min(Math.max(high, 0), m.maxAttenuation) / m.maxAttenuation);
      let want: number[];
      if (gap) want = [255, 0, 0, 255];
      else if (o.energies === 1) want = [Math.round(255 * s), Math.round(255 * s), Math.round(255 * s), 255];
      else {
        const cls = oracleClass(high, low, m);
        want = cls === 5 ? [...PALETTE[5], 255] : [...PALETTE[cls].map((c) => Math.round(c * s)), 255];
      }
      const at = (y * strip.width + x) * 4;
      const got = [rgba[at], rgba[at + 1], rgba[at + 2], rgba[at + 3]];
      result.samples++;
      if (got.every((v, i) => Math.abs(v - want[i]) <= 1)) continue;
      if (!gap && o.energies === 2 && nearMaterialBoundary(high, low, m)) result.boundary++;
      else result.bad.push({ x, y, got, want });
    }
  }
  return result;
}
