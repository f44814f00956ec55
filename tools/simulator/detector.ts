/**
 * The simulated detector column: geometry (pixels, pitch, line rate, vehicle speed) and the per-pixel imperfections
 * a real portal's calibration has to remove (dark offset, gain non-uniformity, dead pixels, noise).
 *
 * Geometry: a vertical column of `pixels` elements of `pitchMm` each, from `bottomMm` above the ground up to
 * `bottomMm + pixels * pitchMm`. Pixel 0 is the TOP element, so a line read in pixel order runs down the column and
 * an image (lines as columns, pixels as rows) shows the vehicle upright. Parallel beam along the vehicle's width.
 * The vehicle moves `speedMps / lineRateHz` metres per line.
 *
 * Counts per reading: dark[p] + Poisson(airCounts[e] * gain[p] * exp(-attenuation)) + read noise, rounded and
 * clamped to 0..65535. Dead pixels have gain 0 (they read dark).
 */
import { invalidArgument } from '../../src/errors/index.js';
import type { DetectorInfo } from '../../src/protocol/index.js';
import type { Energy } from './physics.js';
import { Rng, hashSeed } from './random.js';

export interface DetectorOptions {
  /** Detector elements per line; 1..4096 (real columns: 800-4096). Default 1024. */
  pixels?: number;
  /** Element pitch, mm (protocol limit 100). Default min(100, 4608 / pixels): a 4.6 m column, 4.5 mm at 1024. */
  pitchMm?: number;
  /** Lines per second. Default 500. */
  lineRateHz?: number;
  /** Vehicle speed through the portal, m/s. Default 2.25 (8.1 km/h: square 4.5 mm samples at 500 Hz). */
  speedMps?: number;
  /** Height of the bottom of the column above the ground, mm. Default 0. */
  bottomMm?: number;
  /** Mean air counts of the high-energy channel (before gain and dark). Default 50000. */
  airCountsHigh?: number;
  /** Mean air counts of the low-energy channel. Default 40000. */
  airCountsLow?: number;
  /** Mean dark offset, counts. Default 200. */
  darkOffset?: number;
  /** Pixel-to-pixel standard deviation of the dark offset, counts. Default 6. */
  darkSpread?: number;
  /** Read noise per reading (standard deviation), counts. Default 2.5. */
  readNoise?: number;
  /** Gain non-uniformity: gains are uniform in [1 - gainSpread, 1 + gainSpread]. Default 0.05. */
  gainSpread?: number;
  /** Number of dead pixels at seeded positions. Default max(1, round(pixels / 340)): 3 at 1024. */
  deadPixels?: number;
  /** False renders noiseless counts (rounded only), for tests. Default true. */
  noise?: boolean;
  /**
   * Source output varying from line to line (a linac's pulse-to-pulse dose, what the portal's reference detector
   * leaves uncorrected): each line's signal is scaled by 1 + pulseJitter * N(0,1), both energies alike. Default 0.
   */
  pulseJitter?: number;
  /**
   * Slow gain drift of each detector board (`modulePixels` elements) along the scan, standard deviation as a fraction:
   * horizontal bands in the image that the scan's air calibration does not remove. Default 0.
   */
  moduleDrift?: number;
  /** Elements per detector board (moduleDrift). Default 32. */
  modulePixels?: number;
  /**
   * Elements whose dark current switches on and off during the scan (hot pixels the dark frame caught in one state):
   * while on, `hotPixelCounts` are added. Default 0.
   */
  hotPixels?: number;
  /** Counts a hot pixel adds while on. Default 1500. */
  hotPixelCounts?: number;
  /** Scintillator afterglow: the fraction of the previous line's signal that each line also reads. Default 0. */
  afterglow?: number;
  /** Seeds gains, dark offsets and dead pixel positions. Default 1. */
  seed?: number;
  /**
   * Energies the portal sends: 2 (dual-energy, high then low per line) or 1 (a single-energy scanner: the high
   * energy only). The physics renders both; a single-energy portal drops the low channel on the wire. Default 2.
   */
  energies?: 1 | 2;
}

export interface Detector {
  readonly pixels: number;
  /** Energies on the wire (renderers always fill both; toWire drops the low one for 1). */
  readonly energies: 1 | 2;
  readonly pitchMm: number;
  readonly lineRateHz: number;
  readonly speedMps: number;
  /** Vehicle travel per line, mm. */
  readonly mmPerLine: number;
  readonly bottomMm: number;
  /** Height of the top edge of pixel 0 above the ground, mm. */
  readonly topMm: number;
  /** Mean air counts per energy, indexed by Energy (high first). */
  readonly airCounts: readonly [number, number];
  readonly readNoise: number;
  readonly noise: boolean;
  readonly seed: number;
  /** Per-pixel dark offset, counts. Do not modify. */
  readonly dark: Float32Array;
  /** Per-pixel gain (0 for dead pixels). Do not modify. */
  readonly gain: Float32Array;
  /** Dead pixel indices, ascending. */
  readonly deadPixels: readonly number[];
  /** Hot (flickering) pixel indices, ascending (options.hotPixels of them, none dead). */
  readonly hotPixels: readonly number[];
  /** True when any of pulseJitter, moduleDrift, hotPixels or afterglow is on (render.ts takes its slower path). */
  readonly effects: boolean;
  /** The options it was made from, with every default filled in. */
  readonly options: Readonly<Required<DetectorOptions>>;
}

export const DEFAULT_DETECTOR_OPTIONS = Object.freeze({
  pixels: 1024, // elements
  columnHeightMm: 4608, // mm; default pitch = columnHeightMm / pixels
  maxDefaultPitchMm: 100, // mm; protocol v1's limit: below 47 pixels the column covers less than 4.6 m
  lineRateHz: 500, // lines/s
  speedMps: 2.25, // m/s
  bottomMm: 0, // mm above ground
  airCountsHigh: 50_000, // counts
  airCountsLow: 40_000, // counts
  darkOffset: 200, // counts
  darkSpread: 6, // counts (sd)
  readNoise: 2.5, // counts (sd)
  gainSpread: 0.05, // fraction
  noise: true,
  seed: 1,
  energies: 2 as 1 | 2,
  pulseJitter: 0, // fraction (sd)
  moduleDrift: 0, // fraction (sd)
  modulePixels: 32, // elements
  hotPixels: 0, // elements
  hotPixelCounts: 1500, // counts
  afterglow: 0, // fraction
});

const CODE = 'SCANLINE_ERR_CLI_USAGE' as const;

function checkNumber(name: string, v: unknown, lo: number, hi: number, integer = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || v > hi || (integer && !Number.isInteger(v))) {
    throw invalidArgument(CODE, `${integer ? 'an integer' : 'a number'} in [${lo}, ${hi}]`, name, v);
  }
  return v;
}

/** Builds a detector; validates every option (ScanlineError SCANLINE_ERR_CLI_USAGE on a bad one). */
export function createDetector(options: DetectorOptions = {}): Detector {
  const d = DEFAULT_DETECTOR_OPTIONS;
  const pixels = checkNumber('pixels', options.pixels ?? d.pixels, 1, 4096, true);
  const o: Required<DetectorOptions> = {
    pixels,
    pitchMm: checkNumber('pitchMm', options.pitchMm ?? Math.min(d.maxDefaultPitchMm, d.columnHeightMm / pixels), 0.01, 100),
    lineRateHz: checkNumber('lineRateHz', options.lineRateHz ?? d.lineRateHz, 1, 20_000),
    speedMps: checkNumber('speedMps', options.speedMps ?? d.speedMps, 0.05, 30),
    bottomMm: checkNumber('bottomMm', options.bottomMm ?? d.bottomMm, -1000, 5000),
    airCountsHigh: checkNumber('airCountsHigh', options.airCountsHigh ?? d.airCountsHigh, 100, 60_000),
    airCountsLow: checkNumber('airCountsLow', options.airCountsLow ?? d.airCountsLow, 100, 60_000),
    darkOffset: checkNumber('darkOffset', options.darkOffset ?? d.darkOffset, 0, 5000),
    darkSpread: checkNumber('darkSpread', options.darkSpread ?? d.darkSpread, 0, 100),
    readNoise: checkNumber('readNoise', options.readNoise ?? d.readNoise, 0, 100),
    gainSpread: checkNumber('gainSpread', options.gainSpread ?? d.gainSpread, 0, 0.5),
    deadPixels: checkNumber('deadPixels', options.deadPixels ?? Math.max(1, Math.round(pixels / 340)), 0, Math.floor(pixels / 4), true),
    noise: options.noise ?? d.noise,
    seed: checkNumber('seed', options.seed ?? d.seed, 0, Number.MAX_SAFE_INTEGER, true),
    energies: options.energies ?? d.energies,
    pulseJitter: checkNumber('pulseJitter', options.pulseJitter ?? d.pulseJitter, 0, 0.2),
    moduleDrift: checkNumber('moduleDrift', options.moduleDrift ?? d.moduleDrift, 0, 0.2),
    modulePixels: checkNumber('modulePixels', options.modulePixels ?? d.modulePixels, 1, 4096, true),
    hotPixels: checkNumber('hotPixels', options.hotPixels ?? d.hotPixels, 0, Math.floor(pixels / 4), true),
    hotPixelCounts: checkNumber('hotPixelCounts', options.hotPixelCounts ?? d.hotPixelCounts, 0, 30_000),
    afterglow: checkNumber('afterglow', options.afterglow ?? d.afterglow, 0, 0.2),
  };
  if (o.energies !== 1 && o.energies !== 2) throw invalidArgument(CODE, '1 or 2', 'energies', o.energies);
  if (typeof o.noise !== 'boolean') throw invalidArgument(CODE, 'a boolean', 'noise', o.noise);
  const brightest = Math.max(o.airCountsHigh, o.airCountsLow) * (1 + o.gainSpread) + o.darkOffset + 6 * o.darkSpread;
  if (brightest + 6 * Math.sqrt(brightest) > 65_535) {
    throw invalidArgument(CODE, 'air counts x (1 + gainSpread) + dark offset that stays below 65535', 'airCountsHigh/airCountsLow', brightest);
  }

  const rng = new Rng(hashSeed(o.seed, 'detector'));
  const dark = new Float32Array(pixels);
  const gain = new Float32Array(pixels);
  for (let p = 0; p < pixels; p++) {
    dark[p] = Math.max(0, o.darkOffset + o.darkSpread * rng.normal());
    gain[p] = 1 + o.gainSpread * (2 * rng.uniform() - 1);
  }
  const dead = new Set<number>();
  while (dead.size < o.deadPixels) dead.add(rng.int(pixels));
  const deadPixels = [...dead].sort((a, b) => a - b);
  for (const p of deadPixels) gain[p] = 0;
  // Hot pixels from their own stream: adding them leaves the gains, darks and dead pixels of a seed as they were.
  const hotRng = new Rng(hashSeed(o.seed, 'detector', 'hot'));
  const hot = new Set<number>();
  while (hot.size < Math.min(o.hotPixels, pixels - dead.size)) {
    const p = hotRng.int(pixels);
    if (!dead.has(p)) hot.add(p);
  }
  const hotPixels = [...hot].sort((a, b) => a - b);

  const mmPerLine = (o.speedMps * 1000) / o.lineRateHz;
  return Object.freeze({
    pixels,
    energies: o.energies,
    pitchMm: o.pitchMm,
    lineRateHz: o.lineRateHz,
    speedMps: o.speedMps,
    mmPerLine,
    bottomMm: o.bottomMm,
    topMm: o.bottomMm + pixels * o.pitchMm,
    airCounts: Object.freeze([o.airCountsHigh, o.airCountsLow]) as readonly [number, number],
    readNoise: o.readNoise,
    noise: o.noise,
    seed: o.seed,
    dark,
    gain,
    deadPixels: Object.freeze(deadPixels),
    hotPixels: Object.freeze(hotPixels),
    effects: o.pulseJitter > 0 || o.moduleDrift > 0 || hotPixels.length > 0 || o.afterglow > 0,
    options: Object.freeze(o),
  });
}

/** The `detector` object of a hello message for this detector. */
export function detectorInfo(detector: Detector): DetectorInfo {
  return { pixels: detector.pixels, energies: detector.energies, bitDepth: 16, pitchMm: detector.pitchMm, lineRateHz: detector.lineRateHz };
}

/**
 * Turns `lineCount` rendered lines (both energies, the renderers' layout) into what this detector sends, in place:
 * a single-energy detector keeps each line's high energy only. Returns the wire values (a view of `values`).
 */
export function toWire(detector: Detector, values: Uint16Array, lineCount: number): Uint16Array {
  const n = detector.pixels;
  if (detector.energies === 2) return values.subarray(0, lineCount * 2 * n);
  for (let k = 1; k < lineCount; k++) values.copyWithin(k * n, k * 2 * n, k * 2 * n + n);
  return values.subarray(0, lineCount * n);
}

/** Values per line on the wire: energies x pixels. */
export function valuesPerLine(detector: Detector): number {
  return detector.energies * detector.pixels;
}

/** Expected air counts of one pixel and energy (without dark): airCounts[energy] * gain[pixel]. */
export function airSignal(detector: Detector, energy: Energy, pixel: number): number {
  return detector.airCounts[energy] * detector.gain[pixel];
}

/** Pixel coordinate (0 = top edge of pixel 0, increasing downwards, in pixels) of a height above ground in mm. */
export function pixelCoordinate(detector: Detector, heightMm: number): number {
  return (detector.topMm - heightMm) / detector.pitchMm;
}

/** Height above ground, mm, of the centre of a pixel. */
export function pixelCentreHeight(detector: Detector, pixel: number): number {
  return detector.topMm - (pixel + 0.5) * detector.pitchMm;
}
