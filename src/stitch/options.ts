/**
 * Stitcher options: one schema defines every range, default, unit and description once. The gateway configuration
 * embeds the tuning part as its `stitch` section (src/config), the portal's hello supplies the geometry (`pixels`,
 * `energies`), and `validateStitcherOptions` checks the whole once per scan, reporting every problem at once. The
 * native addon copies the validated object into a plain struct; it only asserts against values that would be unsafe.
 */
import { ScanlineError } from '../errors/index.js';
import { deepFreeze, defaultsOf, type RefineContext, SchemaValidator, type Static, Type, withDefaults } from '../schema/index.js';

/** Largest scan the stitcher accepts, in lines (the u16 line-major store is allocated chunk by chunk). */
const MAX_LINES_LIMIT = 16_777_216;

export const TileOptionsSchema = Type.Object(
  {
    size: Type.Integer({ minimum: 1, maximum: 1024, default: 64, unit: 'samples', description: 'Output tile edge after downsampling (tiles are square).' }),
    downsample: Type.Integer({
      minimum: 1,
      maximum: 64,
      default: 4,
      description: 'Block-average factor applied in both directions before tiling (1 = none).',
    }),
    strideLines: Type.Integer({
      minimum: 1,
      maximum: MAX_LINES_LIMIT,
      default: 128,
      unit: 'lines',
      description: 'Lines between the starts of consecutive tile columns along the scan, in raw lines.',
    }),
    overlapPixels: Type.Integer({
      minimum: 0,
      maximum: 65_535,
      default: 64,
      unit: 'pixels',
      description: 'Vertical overlap between neighbouring tiles of one column, in raw detector pixels; below the tile span (size x downsample).',
    }),
  },
  { additionalProperties: false, default: {}, description: 'Model-ready tiles cut from the calibrated scan; must match the models (model.json `tile`).' },
);

export const MaterialOptionsSchema = Type.Object(
  {
    minAttenuation: Type.Number({ minimum: 0, maximum: 30, default: 0.05, description: 'Below this high-energy attenuation a pixel is Background.' }),
    maxAttenuation: Type.Number({
      minimum: 0,
      maximum: 30,
      default: 7.5,
      description: 'Above this high-energy attenuation a pixel is Impenetrable; above minAttenuation.',
    }),
    ratioThresholds: Type.Tuple([Type.Number({ exclusiveMinimum: 0 }), Type.Number({ exclusiveMinimum: 0 }), Type.Number({ exclusiveMinimum: 0 })], {
      default: [1.41, 1.34, 1.2],
      expected: 'an array of 3 strictly decreasing positive numbers',
      description:
        'Three decreasing thresholds on R = attenuation(low) / attenuation(high). In a MeV linac portal pair production makes heavy elements ' +
        'attenuate relatively more at the high energy, so R falls as effective Z rises: R >= t0 organic, t1 <= R < t0 mixed, t2 <= R < t1 ' +
        "inorganic, R < t2 heavy metal. A portal calibrates them from step-wedge scans of known materials; defaults match the simulator's physics.",
    }),
  },
  { additionalProperties: false, default: {}, description: 'Dual-energy material classification.' },
);

/** Everything but the geometry: what the gateway configuration sets (config key `stitch`). */
export const StitcherTuningSchema = Type.Object(
  {
    maxLines: Type.Integer({
      minimum: 1,
      maximum: MAX_LINES_LIMIT,
      default: 16_384,
      unit: 'lines',
      description: 'Hard cap on lines per scan (~16 s at 1000 lines/s); pushes beyond it are refused.',
    }),
    chunkLines: Type.Integer({
      minimum: 1,
      maximum: 65_536,
      default: 256,
      unit: 'lines',
      description: 'The raw store grows by this many lines at a time (allocation granularity; no per-slice allocation).',
    }),
    reorderWindowLines: Type.Integer({
      minimum: 0,
      maximum: MAX_LINES_LIMIT,
      default: 1_024,
      unit: 'lines',
      description: 'How far data may arrive beyond the first missing line before the missing lines are declared a gap and processing moves past them.',
    }),
    airLines: Type.Integer({
      minimum: 1,
      maximum: 65_536,
      default: 32,
      unit: 'lines',
      description: 'When no air frame was sent, the first airLines lines of the scan (before the vehicle) are averaged as air.',
    }),
    deadPixelFraction: Type.Number({
      minimum: 0,
      maximum: 1,
      default: 0.05,
      description: 'A pixel whose (air - dark) is below this fraction of the median (air - dark) is dead and is interpolated.',
    }),
    attenuationMax: Type.Number({
      exclusiveMinimum: 0,
      maximum: 30,
      default: 10,
      description: 'Attenuation -ln(T) is clamped to [0, attenuationMax] (10: T = 4.5e-5).',
    }),
    maxLinesPerJob: Type.Integer({
      minimum: 1,
      maximum: 65_536,
      default: 512,
      unit: 'lines',
      description: 'Upper bound on the lines one stitcher job moves the frontier over (stored lines plus declared gap lines); sizes the preview buffer.',
    }),
    material: MaterialOptionsSchema,
    tile: TileOptionsSchema,
    previewDownsample: Type.Integer({
      minimum: 1,
      maximum: 64,
      default: 2,
      description: 'Preview strips are block-averaged by this factor in both directions.',
    }),
  },
  { additionalProperties: false, default: {}, description: 'Native stitcher: calibration, dual-energy material map, tiles and preview strips.' },
);

export const StitcherOptionsSchema = Type.Composite(
  [
    Type.Object({
      pixels: Type.Integer({ minimum: 1, maximum: 4096, description: "Detector elements per line (from the portal's hello)." }),
      energies: Type.Union([Type.Literal(1), Type.Literal(2)], { description: '1 (single energy) or 2 (dual energy, high first).' }),
    }),
    StitcherTuningSchema,
  ],
  { additionalProperties: false },
);

export type TileOptions = Static<typeof TileOptionsSchema>;
export type MaterialOptions = Static<typeof MaterialOptionsSchema>;
export type StitcherTuning = Static<typeof StitcherTuningSchema>;
export type StitcherOptions = Static<typeof StitcherOptionsSchema>;

/**
 * Stitcher defaults for a dual-energy MeV linac portal (effective energies ~2 MeV low / ~4 MeV high) and the
 * demo models' tile geometry. Geometry fields (pixels, energies) always come from the portal's hello.
 */
export const DEFAULT_STITCHER_OPTIONS: Readonly<StitcherTuning> = deepFreeze(defaultsOf(StitcherTuningSchema));

/** What callers pass: geometry from the portal's hello plus any overrides of the defaults (nested ones merge). */
export type StitcherOptionsInput = Partial<Omit<StitcherOptions, 'pixels' | 'energies' | 'material' | 'tile'>> & {
  pixels: number;
  energies: number;
  material?: Partial<MaterialOptions>;
  tile?: Partial<TileOptions>;
};

/** Cross-field rules shared by the stitcher's own check and the gateway configuration's `stitch` section. */
export function refineStitcherTuning(t: StitcherTuning, ctx: RefineContext): void {
  if (ctx.ok('tile.size', 'tile.downsample', 'tile.overlapPixels') && t.tile.overlapPixels >= t.tile.size * t.tile.downsample) {
    ctx.fail('tile.overlapPixels', `an integer 0..${t.tile.size * t.tile.downsample - 1}`, t.tile.overlapPixels);
  }
  if (ctx.ok('material.minAttenuation', 'material.maxAttenuation') && t.material.maxAttenuation <= t.material.minAttenuation) {
    ctx.fail('material.maxAttenuation', 'a number above material.minAttenuation and at most 30', t.material.maxAttenuation);
  }
  const r = t.material?.ratioThresholds;
  if (ctx.ok('material.ratioThresholds') && !(r[0] > r[1] && r[1] > r[2])) {
    ctx.fail('material.ratioThresholds', 'an array of 3 strictly decreasing positive numbers', r);
  }
}

const optionsValidator = new SchemaValidator(StitcherOptionsSchema, {
  unknownKey: (path) => `Unknown option ${path}`,
  refine: (o, ctx) => {
    if (typeof o.material === 'object' && o.material !== null && typeof o.tile === 'object' && o.tile !== null) refineStitcherTuning(o, ctx);
  },
});

/**
 * Merges `input` over DEFAULT_STITCHER_OPTIONS and validates the result. Throws one
 * ScanlineError('SCANLINE_ERR_STITCH_OPTIONS') whose `details.problems` lists every problem; returns a deeply
 * frozen StitcherOptions.
 */
export function validateStitcherOptions(input: StitcherOptionsInput): StitcherOptions {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    const problems = [`Expected an options object for options but received ${JSON.stringify(input) ?? String(input)} of type ${typeof input}`];
    throw new ScanlineError('SCANLINE_ERR_STITCH_OPTIONS', `Invalid stitcher options: ${problems.join('; ')}`, { problems });
  }
  const merged = withDefaults(StitcherTuningSchema, input);
  const problems = optionsValidator.problems(merged);
  if (problems.length > 0) {
    throw new ScanlineError('SCANLINE_ERR_STITCH_OPTIONS', `Invalid stitcher options: ${problems.join('; ')}`, { problems });
  }
  return deepFreeze(merged as StitcherOptions);
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
