/**
 * Stitcher options: merge with DEFAULT_STITCHER_OPTIONS and validate once per scan, reporting every problem at
 * once. The native addon copies the validated object into a plain struct and does not re-validate the wording.
 */
import { invalidArgument, ScanlineError } from '../errors/index.js';
import { DEFAULT_STITCHER_OPTIONS } from './defaults.js';
import type { MaterialOptions, StitcherOptions, TileOptions } from './types.js';

/** What callers pass: geometry from the portal's hello plus any overrides of the defaults (nested ones merge). */
export type StitcherOptionsInput = Partial<Omit<StitcherOptions, 'pixels' | 'energies' | 'material' | 'tile'>> & {
  pixels: number;
  energies: number;
  material?: Partial<MaterialOptions>;
  tile?: Partial<TileOptions>;
};

/** Largest scan the stitcher accepts, in lines (the u16 line-major store is allocated chunk by chunk). */
const MAX_LINES_LIMIT = 16_777_216;

const TOP_KEYS = new Set<string>([
  'pixels',
  'energies',
  'maxLines',
  'chunkLines',
  'reorderWindowLines',
  'airLines',
  'deadPixelFraction',
  'attenuationMax',
  'maxLinesPerJob',
  'material',
  'tile',
  'previewDownsample',
]);
const MATERIAL_KEYS = new Set<string>(['minAttenuation', 'maxAttenuation', 'ratioThresholds']);
const TILE_KEYS = new Set<string>(['size', 'downsample', 'strideLines', 'overlapPixels']);

function message(expected: string, name: string, received: unknown): string {
  return invalidArgument('SCANLINE_ERR_STITCH_OPTIONS', expected, name, received).message;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Merges `input` over DEFAULT_STITCHER_OPTIONS and validates the result. Throws one
 * ScanlineError('SCANLINE_ERR_STITCH_OPTIONS') whose `details.problems` lists every problem; returns a deeply
 * frozen StitcherOptions.
 */
export function validateStitcherOptions(input: StitcherOptionsInput): StitcherOptions {
  const problems: string[] = [];
  if (!isPlainObject(input)) {
    problems.push(message('an options object', 'options', input));
    throw new ScanlineError('SCANLINE_ERR_STITCH_OPTIONS', `Invalid stitcher options: ${problems.join('; ')}`, {
      problems,
    });
  }
  const raw = input as Record<string, unknown>;
  const materialIn = raw.material === undefined ? {} : raw.material;
  const tileIn = raw.tile === undefined ? {} : raw.tile;
  if (!isPlainObject(materialIn)) problems.push(message('an object', 'material', materialIn));
  if (!isPlainObject(tileIn)) problems.push(message('an object', 'tile', tileIn));
  for (const key of Object.keys(raw)) if (!TOP_KEYS.has(key)) problems.push(`Unknown option ${key}`);
  const materialObj = isPlainObject(materialIn) ? materialIn : {};
  const tileObj = isPlainObject(tileIn) ? tileIn : {};
  for (const key of Object.keys(materialObj)) if (!MATERIAL_KEYS.has(key)) problems.push(`Unknown option material.${key}`);
  for (const key of Object.keys(tileObj)) if (!TILE_KEYS.has(key)) problems.push(`Unknown option tile.${key}`);

  const d = DEFAULT_STITCHER_OPTIONS;
  const pick = (obj: Record<string, unknown>, key: string, fallback: unknown): unknown => (obj[key] === undefined ? fallback : obj[key]);
  const integer = (name: string, value: unknown, min: number, max: number): number => {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      problems.push(message(`an integer ${min}..${max}`, name, value));
    }
    return value as number;
  };
  const number = (name: string, value: unknown, ok: (v: number) => boolean, expected: string): number => {
    if (typeof value !== 'number' || !Number.isFinite(value) || !ok(value)) problems.push(message(expected, name, value));
    return value as number;
  };

  const pixels = integer('pixels', raw.pixels, 1, 4096);
  const energies = raw.energies;
  if (energies !== 1 && energies !== 2) problems.push(message('1 or 2', 'energies', energies));
  const maxLines = integer('maxLines', pick(raw, 'maxLines', d.maxLines), 1, MAX_LINES_LIMIT);
  const chunkLines = integer('chunkLines', pick(raw, 'chunkLines', d.chunkLines), 1, 65_536);
  const reorderWindowLines = integer('reorderWindowLines', pick(raw, 'reorderWindowLines', d.reorderWindowLines), 0, MAX_LINES_LIMIT);
  const airLines = integer('airLines', pick(raw, 'airLines', d.airLines), 1, 65_536);
  const deadPixelFraction = number('deadPixelFraction', pick(raw, 'deadPixelFraction', d.deadPixelFraction), (v) => v >= 0 && v <= 1, 'a number 0..1');
  const attenuationMax = number('attenuationMax', pick(raw, 'attenuationMax', d.attenuationMax), (v) => v > 0 && v <= 30, 'a number in (0, 30]');
  const maxLinesPerJob = integer('maxLinesPerJob', pick(raw, 'maxLinesPerJob', d.maxLinesPerJob), 1, 65_536);
  const previewDownsample = integer('previewDownsample', pick(raw, 'previewDownsample', d.previewDownsample), 1, 64);

  const minAttenuation = number(
    'material.minAttenuation',
    pick(materialObj, 'minAttenuation', d.material.minAttenuation),
    (v) => v >= 0 && v <= 30,
    'a number 0..30',
  );
  const maxAttenuation = number(
    'material.maxAttenuation',
    pick(materialObj, 'maxAttenuation', d.material.maxAttenuation),
    (v) => v <= 30 && !(typeof minAttenuation === 'number' && v <= minAttenuation),
    'a number above material.minAttenuation and at most 30',
  );
  const thresholdsIn = pick(materialObj, 'ratioThresholds', d.material.ratioThresholds);
  const thresholdsOk =
    Array.isArray(thresholdsIn) &&
    thresholdsIn.length === 3 &&
    thresholdsIn.every((t) => typeof t === 'number' && Number.isFinite(t) && t > 0) &&
    thresholdsIn[0] > thresholdsIn[1] &&
    thresholdsIn[1] > thresholdsIn[2];
  if (!thresholdsOk) {
    problems.push(message('an array of 3 strictly decreasing positive numbers', 'material.ratioThresholds', thresholdsIn));
  }

  const size = integer('tile.size', pick(tileObj, 'size', d.tile.size), 1, 1024);
  const downsample = integer('tile.downsample', pick(tileObj, 'downsample', d.tile.downsample), 1, 64);
  const strideLines = integer('tile.strideLines', pick(tileObj, 'strideLines', d.tile.strideLines), 1, MAX_LINES_LIMIT);
  const overlapIn = pick(tileObj, 'overlapPixels', d.tile.overlapPixels);
  const spanKnown = Number.isInteger(size) && Number.isInteger(downsample) && size >= 1 && downsample >= 1;
  const overlapPixels = spanKnown ? integer('tile.overlapPixels', overlapIn, 0, size * downsample - 1) : integer('tile.overlapPixels', overlapIn, 0, 65_535);

  if (problems.length > 0) {
    throw new ScanlineError('SCANLINE_ERR_STITCH_OPTIONS', `Invalid stitcher options: ${problems.join('; ')}`, { problems });
  }
  const thresholds = thresholdsIn as number[];
  return Object.freeze({
    pixels,
    energies: energies as 1 | 2,
    maxLines,
    chunkLines,
    reorderWindowLines,
    airLines,
    deadPixelFraction,
    attenuationMax,
    maxLinesPerJob,
    material: Object.freeze({
      minAttenuation,
      maxAttenuation,
      ratioThresholds: Object.freeze([thresholds[0], thresholds[1], thresholds[2]]) as unknown as [number, number, number],
    }),
    tile: Object.freeze({ size, downsample, strideLines, overlapPixels }),
    previewDownsample,
  });
}

/** Floats per tile: energies * size * size. */
export function tileFloatsOf(options: StitcherOptions): number {
  return options.energies * options.tile.size * options.tile.size;
}

/** Bytes of the preview buffer: ceil(maxLinesPerJob / d + 1) * ceil(pixels / d) * 4. */
export function previewBytesOf(options: StitcherOptions): number {
  const d = options.previewDownsample;
  return Math.ceil(options.maxLinesPerJob / d + 1) * Math.ceil(options.pixels / d) * 4;
}
