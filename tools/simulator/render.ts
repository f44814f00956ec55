/**
 * Rendering a scene into detector lines, exactly as the wire carries them: line-major, for each line the high
 * energy's `pixels` u16 values then the low energy's.
 *
 * Per line the renderer visits only the primitives of that line's bucket (primitives are binned by line once per
 * scene and detector), and adds each primitive's mu * rho * path over its pixel interval with a difference array:
 * boxes, discs and upright cylinders cost O(1) per line, cylinders along x and spheres cost O(pixels covered).
 * Partial coverage is area-weighted: a box covering 30% of a line's travel or of a pixel's height contributes 30%
 * of its attenuation there (the attenuation, not the transmission, is averaged: thin heavy features come out a
 * little darker than a real detector would show them).
 *
 * Noise is seeded per line (scene.noiseSeed, detector.seed, line), so any split of a scan into slices renders the
 * same bytes.
 */
import type { Detector } from './detector.js';
import { Energy, linearAttenuation } from './physics.js';
import type { Primitive } from './primitives.js';
import { Rng, hashSeed, POISSON_EXACT_MAX_MEAN } from './random.js';
import { lineAt, type Scene } from './scene.js';

const SHAPE = { box: 0, hcyl: 1, vcyl: 2, zdisc: 3, sphere: 4 } as const;
const BUCKET_LINES = 16;

/** One primitive flattened for the inner loop (one hidden class for every shape). */
class Compiled {
  constructor(
    readonly shape: number,
    readonly kHigh: number,
    readonly kLow: number,
    readonly x0: number,
    readonly x1: number,
    readonly y0: number,
    readonly y1: number,
    readonly xc: number,
    readonly yc: number,
    readonly r: number,
    readonly ri: number,
    /** Path (box, zdisc) or count (hcyl, vcyl, sphere). */
    readonly a: number,
  ) {}
}

function compile(p: Primitive): Compiled {
  const kh = linearAttenuation(p.material, Energy.High, p.densityScale);
  const kl = linearAttenuation(p.material, Energy.Low, p.densityScale);
  switch (p.shape) {
    case 'box':
      return new Compiled(SHAPE.box, kh, kl, p.x0, p.x1, p.y0, p.y1, 0, 0, 0, 0, p.pathMm);
    case 'hcyl':
      return new Compiled(SHAPE.hcyl, kh, kl, p.x0, p.x1, p.y0, p.y1, 0, p.yc, p.r, p.ri, p.count);
    case 'vcyl':
      return new Compiled(SHAPE.vcyl, kh, kl, p.x0, p.x1, p.y0, p.y1, p.xc, 0, p.r, p.ri, p.count);
    case 'zdisc':
      return new Compiled(SHAPE.zdisc, kh, kl, p.x0, p.x1, p.y0, p.y1, p.xc, p.yc, p.r, p.ri, p.pathMm);
    case 'sphere':
      return new Compiled(SHAPE.sphere, kh, kl, p.x0, p.x1, p.y0, p.y1, p.xc, p.yc, p.r, 0, p.count);
  }
}

/**
 * Integral of the chord 2 sqrt(r^2 - t^2) for t from 0 to d (d clamped to [-r, r]): the area of a circle between
 * its centre line and d. Averages of a chord over an interval are differences of this.
 */
function chordIntegral(d: number, r: number): number {
  if (d >= r) return (Math.PI * r * r) / 2;
  if (d <= -r) return (-Math.PI * r * r) / 2;
  return d * Math.sqrt(r * r - d * d) + r * r * Math.asin(d / r);
}

/** Per scene and detector geometry: compiled primitives binned by line, and scratch buffers for one line. */
class Prepared {
  readonly prims: Compiled[];
  readonly buckets: Int32Array[];
  readonly accHigh: Float64Array;
  readonly accLow: Float64Array;
  readonly diffHigh: Float64Array;
  readonly diffLow: Float64Array;

  constructor(
    readonly scene: Scene,
    readonly pixels: number,
    readonly pitch: number,
    readonly top: number,
  ) {
    this.prims = scene.primitives.map(compile);
    const nb = Math.max(1, Math.ceil(scene.totalLines / BUCKET_LINES));
    const lists: number[][] = Array.from({ length: nb }, () => []);
    const d = scene.mmPerLine;
    this.prims.forEach((p, i) => {
      // Lines whose travel [x - d/2, x + d/2) can overlap [x0, x1) (with a varying speed, lineAt's lines).
      const first = Math.max(0, scene.lineEdgesMm ? Math.floor(lineAt(scene, p.x0)) - 2 : Math.floor(scene.leadingAirLines + p.x0 / d - 1) - 1);
      const last = Math.min(scene.totalLines - 1, scene.lineEdgesMm ? Math.ceil(lineAt(scene, p.x1)) + 1 : Math.ceil(scene.leadingAirLines + p.x1 / d) + 1);
      for (let k = Math.floor(first / BUCKET_LINES); k <= Math.floor(last / BUCKET_LINES) && k < nb; k++) lists[k].push(i);
    });
    this.buckets = lists.map((l) => Int32Array.from(l));
    this.accHigh = new Float64Array(pixels);
    this.accLow = new Float64Array(pixels);
    this.diffHigh = new Float64Array(pixels + 1);
    this.diffLow = new Float64Array(pixels + 1);
  }

  /** Adds constant values over heights [yLo, yHi), area-weighted at the end pixels. */
  private interval(yLo: number, yHi: number, vh: number, vl: number): void {
    const n = this.pixels;
    let ua = (this.top - yHi) / this.pitch;
    let ub = (this.top - yLo) / this.pitch;
    if (ua < 0) ua = 0;
    if (ub > n) ub = n;
    if (!(ub > ua)) return;
    const i0 = Math.floor(ua);
    const i1 = Math.floor(ub);
    const ah = this.accHigh;
    const al = this.accLow;
    if (i0 === i1) {
      const f = ub - ua;
      ah[i0] += f * vh;
      al[i0] += f * vl;
      return;
    }
    const f0 = i0 + 1 - ua;
    ah[i0] += f0 * vh;
    al[i0] += f0 * vl;
    this.diffHigh[i0 + 1] += vh;
    this.diffLow[i0 + 1] += vl;
    this.diffHigh[i1] -= vh;
    this.diffLow[i1] -= vl;
    if (i1 < n) {
      const f1 = ub - i1;
      ah[i1] += f1 * vh;
      al[i1] += f1 * vl;
    }
  }

  /** Adds mult * (chord(r) - chord(ri)) of the vertical distance to yc, averaged over each pixel's height. */
  private profile(yc: number, r: number, ri: number, mult: number, kh: number, kl: number): void {
    const n = this.pixels;
    const pitch = this.pitch;
    let pa = Math.floor((this.top - (yc + r)) / pitch);
    let pb = Math.ceil((this.top - (yc - r)) / pitch);
    if (pa < 0) pa = 0;
    if (pb > n) pb = n;
    if (pb <= pa) return;
    // Pixel p covers heights [top - (p + 1) pitch, top - p pitch); walk downwards from the top edge of pixel pa.
    let dUpper = this.top - pa * pitch - yc;
    let fUpper = chordIntegral(dUpper, r) - (ri > 0 ? chordIntegral(dUpper, ri) : 0);
    const scale = mult / pitch;
    for (let p = pa; p < pb; p++) {
      const dLower = dUpper - pitch;
      const fLower = chordIntegral(dLower, r) - (ri > 0 ? chordIntegral(dLower, ri) : 0);
      const path = (fUpper - fLower) * scale;
      this.accHigh[p] += path * kh;
      this.accLow[p] += path * kl;
      dUpper = dLower;
      fUpper = fLower;
    }
  }

  /** Fills accHigh / accLow with the noiseless attenuation of `line`. */
  attenuation(line: number): void {
    const ah = this.accHigh;
    const al = this.accLow;
    ah.fill(0);
    al.fill(0);
    this.diffHigh.fill(0);
    this.diffLow.fill(0);
    const scene = this.scene;
    if (line < 0 || line >= scene.totalLines) return;
    const edges = scene.lineEdgesMm;
    // A varying speed: this line's own travel.
    const d = edges ? edges[line + 1] - edges[line] : scene.mmPerLine;
    const x = edges ? (edges[line] + edges[line + 1]) / 2 : (line - scene.leadingAirLines + 0.5) * d;
    const xa = x - d / 2;
    const xb = x + d / 2;
    const bucket = this.buckets[Math.floor(line / BUCKET_LINES)];
    const prims = this.prims;
    for (let k = 0; k < bucket.length; k++) {
      const p = prims[bucket[k]];
      if (p.x1 <= xa || p.x0 >= xb) continue;
      switch (p.shape) {
        case SHAPE.box: {
          const w = ((p.x1 < xb ? p.x1 : xb) - (p.x0 > xa ? p.x0 : xa)) / d;
          const v = p.a * w;
          this.interval(p.y0, p.y1, v * p.kHigh, v * p.kLow);
          break;
        }
        case SHAPE.hcyl: {
          const w = ((p.x1 < xb ? p.x1 : xb) - (p.x0 > xa ? p.x0 : xa)) / d;
          this.profile(p.yc, p.r, p.ri, p.a * w, p.kHigh, p.kLow);
          break;
        }
        case SHAPE.vcyl: {
          // Chord averaged over the line's travel.
          const a = xa - p.xc;
          const b = xb - p.xc;
          let L = chordIntegral(b, p.r) - chordIntegral(a, p.r);
          if (p.ri > 0) L -= chordIntegral(b, p.ri) - chordIntegral(a, p.ri);
          const v = (L / d) * p.a;
          if (v > 0) this.interval(p.y0, p.y1, v * p.kHigh, v * p.kLow);
          break;
        }
        case SHAPE.zdisc: {
          const dx = x - p.xc;
          const ax = dx < 0 ? -dx : dx;
          if (ax >= p.r) break;
          const h = Math.sqrt(p.r * p.r - dx * dx);
          const vh = p.a * p.kHigh;
          const vl = p.a * p.kLow;
          if (ax < p.ri) {
            const hi = Math.sqrt(p.ri * p.ri - dx * dx);
            this.interval(p.yc - h, p.yc - hi, vh, vl);
            this.interval(p.yc + hi, p.yc + h, vh, vl);
          } else {
            this.interval(p.yc - h, p.yc + h, vh, vl);
          }
          break;
        }
        case SHAPE.sphere: {
          const dx = x - p.xc;
          if (dx >= p.r || dx <= -p.r) break;
          this.profile(p.yc, Math.sqrt(p.r * p.r - dx * dx), 0, p.a, p.kHigh, p.kLow);
          break;
        }
      }
    }
    let runH = 0;
    let runL = 0;
    const dh = this.diffHigh;
    const dl = this.diffLow;
    for (let i = 0; i < this.pixels; i++) {
      runH += dh[i];
      runL += dl[i];
      ah[i] += runH;
      al[i] += runL;
    }
  }
}

const cache = new WeakMap<Scene, Prepared>();

function prepared(scene: Scene, detector: Detector): Prepared {
  const p = cache.get(scene);
  if (p && p.pixels === detector.pixels && p.pitch === detector.pitchMm && p.top === detector.topMm) return p;
  const fresh = new Prepared(scene, detector.pixels, detector.pitchMm, detector.topMm);
  cache.set(scene, fresh);
  return fresh;
}

function checkOut(name: string, out: { length: number }, needed: number): void {
  if (out.length < needed) throw new RangeError(`${name} holds ${out.length} values; ${needed} are needed`);
}

/** Writes one energy's counts for one line into out[offset .. offset + pixels). */
function countsInto(detector: Detector, acc: Float64Array, energy: Energy, rng: Rng, out: Uint16Array, offset: number): void {
  const n = detector.pixels;
  const i0 = detector.airCounts[energy];
  const dark = detector.dark;
  const gain = detector.gain;
  const noise = detector.noise;
  const rn = detector.readNoise;
  const rn2 = rn * rn;
  // Attenuation is piecewise constant over most of a line (air, walls, boxes): reuse the last exp().
  let lastA = 0;
  let lastT = 1;
  for (let p = 0; p < n; p++) {
    const a = acc[p];
    if (a !== lastA) {
      lastA = a;
      lastT = Math.exp(-a);
    }
    const mean = i0 * gain[p] * lastT;
    let v: number;
    if (!noise) v = dark[p] + mean;
    else if (mean <= POISSON_EXACT_MAX_MEAN) v = dark[p] + rng.poisson(mean) + rn * rng.normal();
    else v = dark[p] + mean + Math.sqrt(mean + rn2) * rng.normal();
    v = Math.round(v);
    out[offset + p] = v < 0 ? 0 : v > 65_535 ? 65_535 : v;
  }
}

/** Periods, in lines, of the three waves a detector board's gain drift is made of (moduleDrift). */
const DRIFT_PERIODS = [410, 1_330, 3_710] as const;
/** Lines a hot pixel stays in one state (on or off) at least. */
const HOT_STATE_LINES = 200;

/** Per detector: each board's phases of the drift waves and each hot pixel's offset. */
interface EffectsState {
  phases: Float64Array;
  hotOffsets: Int32Array;
}
const effectsStates = new WeakMap<Detector, EffectsState>();

function effectsState(detector: Detector): EffectsState {
  let st = effectsStates.get(detector);
  if (st) return st;
  const modules = Math.ceil(detector.pixels / detector.options.modulePixels);
  const rng = new Rng(hashSeed(detector.seed, 'detector', 'drift'));
  const phases = new Float64Array(modules * DRIFT_PERIODS.length);
  for (let i = 0; i < phases.length; i++) phases[i] = 2 * Math.PI * rng.uniform();
  const hotOffsets = new Int32Array(detector.hotPixels.length);
  for (let i = 0; i < hotOffsets.length; i++) hotOffsets[i] = rng.int(HOT_STATE_LINES);
  st = { phases, hotOffsets };
  effectsStates.set(detector, st);
  return st;
}

/**
 * The signal scale of every pixel on line `line`: the source pulse (`pulse`, both energies alike) times each board's
 * drift at that line. Deterministic per line, so any split of a scan into slices renders the same bytes.
 */
function signalScale(detector: Detector, line: number, pulse: number, out: Float64Array): void {
  const o = detector.options;
  const st = effectsState(detector);
  const waves = DRIFT_PERIODS.length;
  // Three unit sine waves have variance 3/2: scaled so that the drift's standard deviation is moduleDrift.
  const amplitude = o.moduleDrift * Math.sqrt(2 / waves);
  for (let m = 0, p = 0; p < detector.pixels; m++) {
    let drift = 0;
    if (amplitude > 0) for (let w = 0; w < waves; w++) drift += Math.sin((2 * Math.PI * line) / DRIFT_PERIODS[w] + st.phases[m * waves + w]);
    const f = pulse * (1 + amplitude * drift);
    const end = Math.min(detector.pixels, p + o.modulePixels);
    for (; p < end; p++) out[p] = f;
  }
}

/** Dark counts a hot pixel adds on `line` (0 while it is off). */
function hotCounts(detector: Detector, index: number, line: number): number {
  const st = effectsState(detector);
  const block = Math.floor((line + st.hotOffsets[index]) / HOT_STATE_LINES);
  return (hashSeed(detector.seed, 'hot', detector.hotPixels[index], block) & 3) === 0 ? detector.options.hotPixelCounts : 0;
}

/** The line's source pulse factor, from its own stream (the noise stream of the basic path stays as it was). */
function pulseOf(detector: Detector, ...seedParts: Array<number | string>): number {
  const j = detector.options.pulseJitter;
  return j > 0 ? Math.max(0.5, 1 + j * new Rng(hashSeed(...seedParts, 'pulse')).normal()) : 1;
}

/** Noiseless signal (without dark) of one energy on one line: air counts x gain x transmission x scale. */
function meanSignal(detector: Detector, acc: Float64Array, energy: Energy, scale: Float64Array, out: Float64Array): void {
  const i0 = detector.airCounts[energy];
  const gain = detector.gain;
  let lastA = Number.NaN;
  let lastT = 1;
  for (let p = 0; p < detector.pixels; p++) {
    const a = acc[p];
    if (a !== lastA) {
      lastA = a;
      lastT = Math.exp(-a);
    }
    out[p] = i0 * gain[p] * lastT * scale[p];
  }
}

/** Counts from a line's noiseless signal plus afterglow of the previous one, dark and hot pixels, with noise. */
function effectCountsInto(detector: Detector, mean: Float64Array, previous: Float64Array, line: number, rng: Rng, out: Uint16Array, offset: number): void {
  const dark = detector.dark;
  const glow = detector.options.afterglow;
  const rn = detector.readNoise;
  const rn2 = rn * rn;
  const hot = detector.hotPixels;
  let h = 0;
  for (let p = 0; p < detector.pixels; p++) {
    const signal = mean[p] + glow * previous[p];
    let d = dark[p];
    if (h < hot.length && hot[h] === p) d += hotCounts(detector, h++, line);
    let v: number;
    if (!detector.noise) v = d + signal;
    else if (signal <= POISSON_EXACT_MAX_MEAN) v = d + rng.poisson(signal) + rn * rng.normal();
    else v = d + signal + Math.sqrt(signal + rn2) * rng.normal();
    v = Math.round(v);
    out[offset + p] = v < 0 ? 0 : v > 65_535 ? 65_535 : v;
  }
}

/** renderLines with the detector's effects (pulse jitter, board drift, hot pixels, afterglow). */
function renderLinesWithEffects(scene: Scene, detector: Detector, prep: Prepared, firstLine: number, lineCount: number, out: Uint16Array): void {
  const n = detector.pixels;
  const scale = new Float64Array(n);
  const now = [new Float64Array(n), new Float64Array(n)];
  let before = [new Float64Array(n), new Float64Array(n)];
  const lineMeans = (line: number, into: Float64Array[]): void => {
    prep.attenuation(line);
    signalScale(detector, line, pulseOf(detector, scene.noiseSeed, detector.seed, line), scale);
    meanSignal(detector, prep.accHigh, Energy.High, scale, into[0]);
    meanSignal(detector, prep.accLow, Energy.Low, scale, into[1]);
  };
  // The line before the first: what its afterglow adds to the first (so slices render as the whole scan does).
  if (detector.options.afterglow > 0) lineMeans(firstLine - 1, before);
  let current = now;
  for (let k = 0; k < lineCount; k++) {
    const line = firstLine + k;
    lineMeans(line, current);
    const rng = new Rng(hashSeed(scene.noiseSeed, detector.seed, line));
    const base = k * 2 * n;
    effectCountsInto(detector, current[0], before[0], line, rng, out, base);
    effectCountsInto(detector, current[1], before[1], line, rng, out, base + n);
    [before, current] = [current, before];
  }
}

/**
 * Renders lines [firstLine, firstLine + lineCount) of `scene` into `out` (line-major, high energy then low energy,
 * `pixels` values each): raw detector counts as a portal would send them. Lines outside the scan render as air.
 */
export function renderLines(scene: Scene, detector: Detector, firstLine: number, lineCount: number, out: Uint16Array): void {
  const n = detector.pixels;
  checkOut('out', out, lineCount * 2 * n);
  const prep = prepared(scene, detector);
  if (detector.effects) {
    renderLinesWithEffects(scene, detector, prep, firstLine, lineCount, out);
    return;
  }
  for (let k = 0; k < lineCount; k++) {
    const line = firstLine + k;
    prep.attenuation(line);
    const rng = new Rng(hashSeed(scene.noiseSeed, detector.seed, line));
    const base = k * 2 * n;
    countsInto(detector, prep.accHigh, Energy.High, rng, out, base);
    countsInto(detector, prep.accLow, Energy.Low, rng, out, base + n);
  }
}

/** Noiseless attenuation sum(mu * rho * L) of one line and energy, per pixel, into out[0 .. pixels). */
export function trueAttenuation(scene: Scene, detector: Detector, line: number, energy: Energy, out: Float32Array): void {
  checkOut('out', out, detector.pixels);
  const prep = prepared(scene, detector);
  prep.attenuation(line);
  const acc = energy === Energy.High ? prep.accHigh : prep.accLow;
  for (let p = 0; p < detector.pixels; p++) out[p] = acc[p];
}

/** Noiseless attenuation of several lines in the wire layout (line, energy high then low, pixel). */
export function trueAttenuationLines(scene: Scene, detector: Detector, firstLine: number, lineCount: number, out: Float32Array): void {
  const n = detector.pixels;
  checkOut('out', out, lineCount * 2 * n);
  const prep = prepared(scene, detector);
  for (let k = 0; k < lineCount; k++) {
    prep.attenuation(firstLine + k);
    out.set(prep.accHigh, k * 2 * n);
    out.set(prep.accLow, k * 2 * n + n);
  }
}

/** A dark calibration frame (beam off): dark offset plus read noise, `lineCount` lines in the wire layout. */
export function renderDark(detector: Detector, lineCount: number, out: Uint16Array, seed = 0): void {
  calibrationFrame(detector, lineCount, out, seed, 'dark');
}

/** An air calibration frame (beam on, nothing in the portal), `lineCount` lines in the wire layout. */
export function renderAir(detector: Detector, lineCount: number, out: Uint16Array, seed = 0): void {
  calibrationFrame(detector, lineCount, out, seed, 'air');
}

function calibrationFrame(detector: Detector, lineCount: number, out: Uint16Array, seed: number, kind: 'dark' | 'air'): void {
  const n = detector.pixels;
  checkOut('out', out, lineCount * 2 * n);
  const zero = new Float64Array(n);
  const dark = detector.dark;
  const effects = detector.effects ? { scale: new Float64Array(n), mean: new Float64Array(n), glow: new Float64Array(n) } : null;
  for (let k = 0; k < lineCount; k++) {
    const rng = new Rng(hashSeed(seed, detector.seed, kind, k));
    const base = k * 2 * n;
    if (effects) {
      // Taken before the scan (lines -1000 and earlier of the drift and the hot pixels); air in steady state reads
      // its afterglow too.
      const line = -1000 - k;
      for (let e = 0; e < 2; e++) {
        if (kind === 'air') {
          signalScale(detector, line, pulseOf(detector, seed, detector.seed, kind, k), effects.scale);
          meanSignal(detector, zero, e === 0 ? Energy.High : Energy.Low, effects.scale, effects.mean);
          effects.glow.set(effects.mean);
        } else {
          effects.mean.fill(0);
          effects.glow.fill(0);
        }
        effectCountsInto(detector, effects.mean, effects.glow, line, rng, out, base + e * n);
      }
      continue;
    }
    if (kind === 'air') {
      countsInto(detector, zero, Energy.High, rng, out, base);
      countsInto(detector, zero, Energy.Low, rng, out, base + n);
      continue;
    }
    for (let e = 0; e < 2; e++) {
      for (let p = 0; p < n; p++) {
        const v = Math.round(dark[p] + (detector.noise ? detector.readNoise * rng.normal() : 0));
        out[base + e * n + p] = v < 0 ? 0 : v > 65_535 ? 65_535 : v;
      }
    }
  }
}
