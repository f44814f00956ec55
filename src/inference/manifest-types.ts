/**
 * The model manifest (`models/<name>/model.json`): what a model expects and produces, so a customs service can drop
 * in its own trained model without code changes. ModelManifestSchema is the contract: the TypeScript types below
 * come from it and inference/manifest.ts checks every manifest against it at start-up (with the rules across
 * fields, refineManifest); a model whose ONNX inputs or outputs do not match its manifest refuses to load.
 * models/README.md documents the contract for people.
 */
import { isAbsolute, normalize, sep } from 'node:path';
import { FormatRegistry } from '@sinclair/typebox';
import { literalUnion, type Static, Type, anyKey } from '../schema/index.js';

/** A relative path that stays inside the model's folder (no absolute path, no `..` segment after normalising). */
export function isModelRelativePath(v: string): boolean {
  if (v.trim().length === 0 || isAbsolute(v) || v.includes('\0')) return false;
  const n = normalize(v);
  return n !== '..' && !n.startsWith(`..${sep}`) && !n.split(/[\\/]/).includes('..');
}
/** The string format of file paths in a manifest (registered once, process-wide, for TypeBox checks). */
export const MODEL_RELATIVE_PATH_FORMAT = 'model-relative-path';
if (!FormatRegistry.Has(MODEL_RELATIVE_PATH_FORMAT)) FormatRegistry.Set(MODEL_RELATIVE_PATH_FORMAT, isModelRelativePath);

const PositiveInteger = Type.Integer({ minimum: 1, expected: 'a positive integer' });
/** Text with at least one character that is not white space. */
const NonEmptyString = Type.String({ pattern: '\\S', expected: 'a non-empty string' });

export const MODEL_TASKS = ['goods', 'threats'] as const;
export type ModelTask = (typeof MODEL_TASKS)[number];

export const ModelFileSchema = Type.Object(
  {
    path: Type.String({
      format: MODEL_RELATIVE_PATH_FORMAT,
      expected: 'a relative path inside the model folder',
      description: "Path relative to the manifest's folder.",
    }),
    sha256: Type.String({
      pattern: '^[0-9a-f]{64}$',
      expected: '64 lower-case hex digits',
      description: 'Lower-case hex sha256 of the file; checked at load.',
    }),
  },
  { additionalProperties: false, expected: 'an object {path, sha256}' },
);
export type ModelFile = Static<typeof ModelFileSchema>;

export const INPUT_CHANNELS = ['attenuation_high', 'attenuation_low'] as const;

export const ModelInputSchema = Type.Object(
  {
    name: Type.String({ pattern: '\\S', expected: 'a non-empty string', description: 'ONNX input name.' }),
    shape: Type.Tuple([Type.Literal(-1), PositiveInteger, PositiveInteger, PositiveInteger], {
      expected: '[-1, channels, height, width] with positive integers',
      description: '[batch, channels, height, width]; batch is -1 (dynamic); tiles are square.',
    }),
    dtype: Type.Literal('float32'),
    layout: Type.Literal('NCHW'),
    channels: Type.Array(literalUnion(INPUT_CHANNELS), {
      minItems: 1,
      uniqueItems: true,
      expected: `a list of distinct channels from ${INPUT_CHANNELS.join(', ')}`,
      description: "What each channel holds, in order; the stitcher's tiles carry attenuation per energy, high first.",
    }),
    tile: Type.Object(
      { size: PositiveInteger, downsample: PositiveInteger },
      {
        expected: 'an object {size, downsample}',
        description: "Tile geometry the model was trained on; must equal the gateway's stitch.tile size and downsample.",
      },
    ),
    normalization: Type.Object(
      {
        offset: Type.Array(Type.Number({ expected: 'a finite number' }), {
          minItems: 1,
          expected: 'a list of finite numbers, one per channel',
        }),
        scale: Type.Array(Type.Union([Type.Number({ exclusiveMaximum: 0 }), Type.Number({ exclusiveMinimum: 0 })], { expected: 'a finite non-zero number' }), {
          minItems: 1,
          expected: 'a list of finite non-zero numbers, one per channel',
        }),
        clampMin: Type.Number({ expected: 'a finite number' }),
        clampMax: Type.Number({ expected: 'a finite number' }),
      },
      {
        expected: 'an object {offset, scale, clampMin, clampMax}',
        description: "Applied by the gateway per channel before inference: x' = clamp((x - offset[c]) * scale[c], clampMin, clampMax).",
      },
    ),
  },
  { additionalProperties: false },
);
export type ModelInput = Static<typeof ModelInputSchema>;

/**
 * What an output means; the results stage interprets outputs by meaning, not by name.
 * - class_logits (goods): [batch, labels.length] unnormalised class scores (softmax is applied by the gateway);
 * - embedding (goods): [batch, D] embedding, L2-normalised by the gateway, used for reference-sample matching;
 * - threat_heatmap_logits (threats): [batch, labels.length, gh, gw] per-cell logits (sigmoid by the gateway); cells
 *   tile the input evenly.
 */
export const OUTPUT_MEANINGS = ['class_logits', 'embedding', 'threat_heatmap_logits'] as const;
export type OutputMeaning = (typeof OUTPUT_MEANINGS)[number];

/** An output's shape: -1 (batch) first, then positive integers (refineManifest holds the positions). */
export const OUTPUT_SHAPE_EXPECTED = '[-1, ...positive integers] (batch first, at least 2 dimensions)';

export const ModelOutputSchema = Type.Object(
  {
    name: NonEmptyString,
    shape: Type.Array(Type.Integer({ expected: 'an integer' }), { minItems: 2, expected: OUTPUT_SHAPE_EXPECTED }),
    dtype: Type.Literal('float32'),
    meaning: literalUnion(OUTPUT_MEANINGS),
  },
  { additionalProperties: false, expected: 'an object {name, shape, dtype, meaning}' },
);
export type ModelOutput = Static<typeof ModelOutputSchema>;

export const ModelLabelSchema = Type.Object(
  {
    id: Type.String({
      pattern: '^[a-z0-9_]{1,64}$',
      expected: 'an id of lower-case letters, digits and "_"',
      description: 'Stable id used on the wire and in metrics, e.g. "timber", "firearm".',
    }),
    name: Type.String({ pattern: '\\S', expected: 'a non-empty string', description: 'Human name for operator screens.' }),
    hsCodes: Type.Array(Type.String({ pattern: '^[0-9]{2,10}$', expected: 'an HS code (2-10 digits)' }), {
      expected: 'a list of HS codes (2-10 digits)',
      description: 'goods: HS headings this category covers (declaration check); threats: empty.',
    }),
    cargo: Type.Optional(
      Type.Boolean({
        description:
          'goods only: false for classes that are not cargo (e.g. "vehicle" structure, "air"): they never become a suggestion and tiles predicted as such are not counted as cargo.',
      }),
    ),
  },
  { additionalProperties: false, expected: 'an object {id, name, hsCodes}' },
);
export type ModelLabel = Static<typeof ModelLabelSchema>;

const FiniteNumber = Type.Number({ expected: 'a finite number' });
/** Rows of numbers, at most 1024 x 1024: an embedding wider than that would cost the gateway's thread too much per tile. */
const NumberRows = Type.Array(Type.Array(FiniteNumber, { maxItems: 1024, expected: 'a list of at most 1024 finite numbers' }), {
  maxItems: 1024,
  expected: 'a list of at most 1024 lists of finite numbers',
});

/** Platt scaling sigmoid(slope * logit(p) + intercept), as fitted by scanline fit-opinion. */
function plattSchema(description: string) {
  return Type.Object(
    {
      slope: Type.Number({ exclusiveMinimum: 0, maximum: 100, expected: 'a number in (0, 100]' }),
      intercept: Type.Number({ minimum: -100, maximum: 100, expected: 'a number in [-100, 100]' }),
    },
    { additionalProperties: false, expected: 'an object {slope, intercept}', description },
  );
}

/**
 * How the gateway turns a model's raw outputs into the probabilities it shows and sends (fitted on validation scans
 * by the training recipe, models/README.md "Calibration").
 */
export const ModelCalibrationSchema = Type.Object(
  {
    temperature: Type.Optional(
      Type.Number({
        exclusiveMinimum: 0,
        maximum: 100,
        expected: 'a number in (0, 100]',
        description: 'goods: class probabilities are softmax(logits / temperature) (temperature scaling).',
      }),
    ),
    alert: Type.Optional(
      plattSchema(
        "threats: an alert's probability is sigmoid(slope * logit(peak cell probability) + intercept), the chance that such an alert covers a true threat (Platt scaling on validation alerts).",
      ),
    ),
    segment: Type.Optional(
      plattSchema(
        "goods: a suggestion segment's confidence is sigmoid(slope * logit(mean top-1 probability of its columns) + intercept), the chance its category is right (Platt scaling on validation segments, weighted by the goods tiles they cover).",
      ),
    ),
    maxProbability: Type.Number({
      minimum: 0.5,
      maximum: 1,
      expected: 'a probability in [0.5, 1]',
      description: 'No probability shown or sent exceeds this: what the validation set can support.',
    }),
    fit: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), {
        expected: 'an object',
        description: 'Provenance of the fit (data, ECE before and after, reliability bins); recorded, never interpreted.',
      }),
    ),
  },
  { additionalProperties: false, expected: 'an object {maxProbability, temperature?, segment?, alert?, fit?}' },
);
export type ModelCalibration = Static<typeof ModelCalibrationSchema>;

/**
 * What a goods model's training data looked like, for out-of-distribution detection (src/opinion/ood.ts): per top-1
 * label the mean of the tile image statistics and of the L2-normalised embedding, the precision matrices (inverse
 * covariances: one per label for the image statistics, one shared by all labels for the embedding), thresholds on the squared Mahalanobis distance, and the scan rule.
 */
export const OutOfDistributionSchema = Type.Object(
  {
    imageFeatures: Type.Array(Type.String(), {
      description: "Names of the image statistics in order; must equal the gateway's (src/image-stats/image-features.ts).",
    }),
    imageMeans: NumberRows,
    imagePrecisions: Type.Array(NumberRows, {
      maxItems: 1024,
      expected: 'one matrix per label',
      description: 'Per top-1 label, the precision matrix of the image statistics (image noise and sharpness differ by what a tile shows).',
    }),
    imageThreshold: Type.Number({ exclusiveMinimum: 0, expected: 'a positive number' }),
    embeddingMeans: NumberRows,
    embeddingPrecision: NumberRows,
    embeddingThreshold: Type.Number({ exclusiveMinimum: 0, expected: 'a positive number' }),
    scanShare: Type.Number({
      exclusiveMinimum: 0,
      maximum: 1,
      expected: 'a share in (0, 1]',
      description: 'A scan is out of distribution when at least this share of its scored tiles are.',
    }),
    minTiles: Type.Integer({
      minimum: 1,
      expected: 'a positive integer',
      description: 'Scored tiles a scan needs before it can be called out of distribution.',
    }),
    fit: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), { expected: 'an object', description: 'Provenance of the fit; recorded, never interpreted.' }),
    ),
  },
  { additionalProperties: false, expected: 'an object of out-of-distribution statistics' },
);
export type OutOfDistributionStats = Static<typeof OutOfDistributionSchema>;

export const ModelManifestSchema = Type.Object(
  {
    manifestVersion: Type.Literal(1, { description: 'Manifest format version.' }),
    name: Type.String({
      pattern: '^[a-z0-9][a-z0-9._-]{0,63}$',
      expected: 'a name of lower-case letters, digits, ".", "_" or "-" (1-64 characters)',
      description: 'Registry name, the folder name, e.g. "goods-v1".',
    }),
    version: Type.String({
      pattern: '^\\d+\\.\\d+\\.\\d+([-+][0-9A-Za-z.+-]+)?$',
      expected: 'a semantic version like "1.2.0"',
      description: 'Semantic version of the trained model, reported with every result (DICOS algorithm version).',
    }),
    task: literalUnion(MODEL_TASKS, { expected: '"goods" or "threats"' }),
    description: Type.String(),
    files: Type.Object(
      { fp32: ModelFileSchema, fp16: Type.Optional(ModelFileSchema) },
      {
        additionalProperties: false,
        expected: 'an object with fp32 (and optionally fp16)',
        description: 'fp32 runs everywhere; fp16 is preferred on GPU execution providers when present.',
      },
    ),
    input: ModelInputSchema,
    outputs: Type.Array(ModelOutputSchema, { minItems: 1, expected: 'a non-empty list of outputs' }),
    labels: Type.Array(ModelLabelSchema, { minItems: 1, expected: 'a non-empty list of labels', description: 'In output order.' }),
    thresholds: Type.Record(anyKey(), Type.Number({ minimum: 0, maximum: 1, expected: 'a probability 0..1' }), {
      expected: 'an object of thresholds',
      description:
        'goods: `suggest` = minimum top-1 probability for a suggestion segment; threats: one threshold per threat label id = minimum cell probability for an alert.',
    }),
    calibration: Type.Optional(ModelCalibrationSchema),
    outOfDistribution: Type.Optional(OutOfDistributionSchema),
    training: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), {
        expected: 'an object',
        description: 'Provenance: how it was trained, for the record (seeds, recipe, date, metrics); never interpreted.',
      }),
    ),
  },
  { additionalProperties: false },
);
export type ModelManifest = Static<typeof ModelManifestSchema>;
