/**
 * Model manifests (`<model folder>/model.json`, contract in manifest-types.ts): load, validate (every problem
 * listed at once), verify file checksums, and compare a model's ONNX inputs and outputs with its manifest.
 * Pure functions and file reads only; safe on any thread (the worker imports `checkModelIo`).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ScanlineError } from '../errors/index.js';
import { deepFreeze, type RefineContext, SchemaValidator, Type } from '../schema/index.js';
import {
  type ModelManifest,
  type OutOfDistributionStats,
  ModelManifestSchema,
  type ModelOutput,
  OUTPUT_SHAPE_EXPECTED,
  type OutputMeaning,
} from './manifest-types.js';

export const MANIFEST_FILE = 'model.json';

/** A validated manifest with its files resolved to absolute paths. */
export interface LoadedModel {
  readonly manifest: Readonly<ModelManifest>;
  /** Absolute path of the model's folder. */
  readonly dir: string;
  readonly files: { readonly fp32: string; readonly fp16?: string };
  /** Floats per input tile: channels x size x size. */
  readonly tileFloats: number;
  /** Floats per tile of each output (the product of the output shape without its batch dimension). */
  readonly outputFloats: Readonly<Record<string, number>>;
}

/**
 * The manifest's rules across fields, for SchemaValidator (each runs only once the fields it reads passed their own
 * checks, so one mistake is one problem): the input's shape, channels, tile and normalisation agree; label ids and
 * output names are unique; the outputs a task needs, with the shapes its labels and tiles imply; the thresholds a
 * task needs. Arrays are read only when they are arrays: a failed list is reported at its own path.
 */
export function refineManifest(m: ModelManifest, ctx: RefineContext): void {
  const task = ctx.ok('task') ? m.task : undefined;

  // Input.
  const shape = ctx.ok('input.shape') ? m.input.shape : undefined;
  const channels = shape?.[1];
  const tileSize = shape?.[2];
  if (shape && shape[2] !== shape[3]) ctx.fail('input.shape', `[-1, channels, ${shape[2]}, ${shape[2]}] (tiles are square)`, shape);
  if (shape && ctx.ok('input.channels') && m.input.channels.length !== channels) {
    ctx.fail('input.channels', `${channels} channels (as input.shape says)`, m.input.channels);
  }
  if (shape && ctx.ok('input.tile.size') && m.input.tile.size !== tileSize)
    ctx.fail('input.tile.size', `${tileSize} (the height of input.shape)`, m.input.tile.size);
  for (const key of ['offset', 'scale'] as const) {
    const path = `input.normalization.${key}`;
    if (shape && ctx.ok(path) && m.input.normalization[key].length !== channels)
      ctx.fail(path, `${channels} values (one per channel of input.shape)`, m.input.normalization[key]);
  }
  if (ctx.ok('input.normalization.clampMin', 'input.normalization.clampMax')) {
    const { clampMin, clampMax } = m.input.normalization;
    if (!(clampMin < clampMax)) ctx.fail('input.normalization.clampMin', `a number below clampMax ${clampMax}`, clampMin);
  }

  // Labels (needed by the output and threshold rules).
  const labels = Array.isArray(m.labels) ? m.labels : [];
  const labelCount = labels.length > 0 ? labels.length : undefined;
  const labelIds: string[] = [];
  labels.forEach((label, k) => {
    if (ctx.ok(`labels[${k}].id`)) {
      if (labelIds.includes(label.id)) ctx.fail(`labels[${k}].id`, 'an id no earlier label has', label.id);
      else labelIds.push(label.id);
    }
    if (task === 'threats' && ctx.ok(`labels[${k}].cargo`) && label.cargo !== undefined) {
      ctx.fail(`labels[${k}].cargo`, 'no cargo flag (it is for goods models only)', label.cargo);
    }
  });

  // Outputs.
  const outputs = Array.isArray(m.outputs) ? m.outputs : [];
  const names = new Set<string>();
  /** Index of the first output of each meaning whose shape is valid. */
  const byMeaning = new Map<OutputMeaning, number>();
  /** No output has a problem of its own (then a missing meaning is a problem, not a consequence of one). */
  let outputsOk = ctx.ok('outputs');
  outputs.forEach((o, k) => {
    const at = `outputs[${k}]`;
    if (ctx.ok(`${at}.name`)) {
      if (names.has(o.name)) ctx.fail(`${at}.name`, 'a name no earlier output has', o.name);
      names.add(o.name);
    }
    let shapeOk = ctx.ok(`${at}.shape`);
    if (shapeOk && !(o.shape[0] === -1 && o.shape.slice(1).every((d) => d >= 1))) {
      ctx.fail(`${at}.shape`, OUTPUT_SHAPE_EXPECTED, o.shape);
      shapeOk = false;
      outputsOk = false;
    }
    if (!shapeOk || !ctx.ok(`${at}.meaning`) || task === undefined) return;
    const first = byMeaning.get(o.meaning);
    if (first !== undefined) {
      ctx.fail(`${at}.meaning`, `a meaning no earlier output has (outputs[${first}] is ${o.meaning})`, o.meaning);
      return;
    }
    byMeaning.set(o.meaning, k);
    if (task === 'goods' && o.meaning === 'threat_heatmap_logits') {
      ctx.fail(`${at}.meaning`, '"class_logits" or "embedding" (a goods model has no threat_heatmap_logits output)', o.meaning);
    } else if (task === 'threats' && o.meaning !== 'threat_heatmap_logits') {
      ctx.fail(`${at}.meaning`, '"threat_heatmap_logits" (a threats model has no other output)', o.meaning);
    } else {
      outputShapeRule(o, ctx.at(`${at}`), labelCount, tileSize);
    }
  });
  const required: OutputMeaning | undefined = task === 'goods' ? 'class_logits' : task === 'threats' ? 'threat_heatmap_logits' : undefined;
  if (required && outputsOk && !byMeaning.has(required)) {
    ctx.fail('outputs', `a list with an output of meaning ${required} (a ${task} model needs one)`, m.outputs);
  }

  // Thresholds: the keys a task needs (each value is checked by the schema).
  const thresholds = typeof m.thresholds === 'object' && m.thresholds !== null && !Array.isArray(m.thresholds) ? m.thresholds : undefined;
  if (thresholds && task === 'goods') {
    if (!('suggest' in thresholds)) ctx.fail('thresholds.suggest', 'a probability 0..1 (required for a goods model)', undefined);
    for (const [k, v] of Object.entries(thresholds)) {
      if (k !== 'suggest' && ctx.ok(`thresholds.${k}`)) ctx.fail(`thresholds.${k}`, 'no threshold but "suggest" on a goods model', v);
    }
  } else if (thresholds && task === 'threats') {
    for (const id of labelIds)
      if (!(id in thresholds)) ctx.fail(`thresholds.${id}`, 'a probability 0..1 (required: one threshold per threat label)', undefined);
    if (labelIds.length > 0) {
      for (const [k, v] of Object.entries(thresholds)) {
        if (!labelIds.includes(k) && ctx.ok(`thresholds.${k}`)) ctx.fail(`thresholds.${k}`, `no threshold but one per label id (${labelIds.join(', ')})`, v);
      }
    }
  }

  // Calibration and out-of-distribution statistics: each belongs to one task.
  if (m.calibration && ctx.ok('calibration')) {
    if (task === 'threats' && m.calibration.temperature !== undefined)
      ctx.fail('calibration.temperature', 'no temperature on a threats model (it calibrates alerts: calibration.alert)', m.calibration.temperature);
    if (task === 'goods' && m.calibration.alert !== undefined)
      ctx.fail('calibration.alert', 'no alert calibration on a goods model (it uses calibration.temperature)', m.calibration.alert);
  }
  if (m.outOfDistribution && ctx.ok('outOfDistribution')) {
    if (task === 'threats') ctx.fail('outOfDistribution', 'no out-of-distribution statistics on a threats model (the goods model carries them)', '{...}');
    else if (task === 'goods' && labelCount !== undefined && outputsOk) {
      const embedding = byMeaning.get('embedding');
      const dim = embedding === undefined ? undefined : outputs[embedding].shape[1];
      const problems = oodShapeProblems(m.outOfDistribution, labelCount, dim);
      if (problems.length > 0) ctx.fail('outOfDistribution', `statistics that fit this model and gateway: ${problems.join('; ')}`, '{...}');
    }
  }
}

/** The shape an output of a valid meaning must have, given the labels and the tile size (when those are valid). */
function outputShapeRule(o: ModelOutput, ctx: RefineContext, labelCount: number | undefined, tileSize: number | undefined): void {
  const s = o.shape;
  switch (o.meaning) {
    case 'class_logits':
      if (s.length !== 2) ctx.fail('shape', '[-1, labels] (the class_logits output)', s);
      else if (labelCount !== undefined && s[1] !== labelCount) ctx.fail('shape', `[-1, ${labelCount}] (the class_logits output has one class per label)`, s);
      return;
    case 'embedding':
      if (s.length !== 2) ctx.fail('shape', '[-1, D] (the embedding output is one vector per tile)', s);
      return;
    case 'threat_heatmap_logits':
      if (s.length !== 4) ctx.fail('shape', '[-1, labels, gh, gw] (the threat_heatmap_logits output)', s);
      else if (labelCount !== undefined && s[1] !== labelCount) {
        ctx.fail('shape', `[-1, ${labelCount}, gh, gw] (the threat_heatmap_logits output has one map per label)`, s);
      } else if (tileSize !== undefined && (tileSize % s[2] !== 0 || tileSize % s[3] !== 0)) {
        ctx.fail('shape', `[-1, labels, gh, gw] with gh and gw dividing ${tileSize} (the heatmap cells tile the ${tileSize}x${tileSize} input evenly)`, s);
      }
      return;
  }
}

/** Compiled on first use: inference workers import this module for checkModelIo only. */
let manifestValidator: SchemaValidator<typeof ModelManifestSchema> | undefined;
/** What a manifest must be before its fields can be named. */
const ANY_OBJECT = new SchemaValidator(Type.Object({}));

/**
 * Every problem with a parsed model.json, each "Expected X for field but received V of type T" (or "Unknown key
 * x"), in the order of the schema; empty when `value` is a valid ModelManifest.
 */
export function validateManifest(value: unknown): string[] {
  if (!ANY_OBJECT.check(value)) return ANY_OBJECT.problems(value, 'the manifest');
  manifestValidator ??= new SchemaValidator(ModelManifestSchema, { refine: refineManifest });
  return manifestValidator.problems(value);
}

/** Lower-case hex sha256 of a file. */
export async function sha256File(path: string): Promise<string> {
  return createHash('sha256')
    .update(await readFile(path))
    .digest('hex');
}

export function outputFloatsOf(o: Pick<ModelOutput, 'shape'>): number {
  return o.shape.slice(1).reduce((a, b) => a * b, 1);
}

/**
 * Reads, validates and checksums the model in `dir`. Throws SCANLINE_ERR_MODEL_MANIFEST (missing, not JSON, or
 * invalid: `details.problems` lists every problem) or SCANLINE_ERR_MODEL_CHECKSUM (a file is missing or its
 * sha256 differs). The returned manifest is deeply frozen.
 */
export async function loadModel(dir: string): Promise<LoadedModel> {
  const abs = resolve(dir);
  const path = join(abs, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new ScanlineError('SCANLINE_ERR_MODEL_MANIFEST', `cannot read ${path}: ${(cause as Error).message}`, { path }, { cause });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (cause) {
    throw new ScanlineError('SCANLINE_ERR_MODEL_MANIFEST', `${path} is not valid JSON: ${(cause as Error).message}`, { path }, { cause });
  }
  const problems = validateManifest(value);
  if (problems.length > 0) {
    throw new ScanlineError('SCANLINE_ERR_MODEL_MANIFEST', `invalid model manifest ${path}:\n  - ${problems.join('\n  - ')}`, { path, problems });
  }
  const manifest = deepFreeze(value as ModelManifest);
  const files: { fp32: string; fp16?: string } = { fp32: join(abs, manifest.files.fp32.path) };
  if (manifest.files.fp16) files.fp16 = join(abs, manifest.files.fp16.path);
  const bad: string[] = [];
  for (const key of ['fp32', 'fp16'] as const) {
    const spec = manifest.files[key];
    const file = files[key];
    if (!spec || !file) continue;
    let actual: string;
    try {
      actual = await sha256File(file);
    } catch (cause) {
      bad.push(`files.${key}: cannot read ${file}: ${(cause as Error).message}`);
      continue;
    }
    if (actual !== spec.sha256) bad.push(`files.${key}: ${file} has sha256 ${actual}, the manifest says ${spec.sha256}`);
  }
  if (bad.length > 0) {
    throw new ScanlineError('SCANLINE_ERR_MODEL_CHECKSUM', `model ${manifest.name}: ${bad.join('; ')}`, { path, model: manifest.name, problems: bad });
  }
  const [, c, h, w] = manifest.input.shape;
  const outputFloats: Record<string, number> = {};
  for (const o of manifest.outputs) outputFloats[o.name] = outputFloatsOf(o);
  return Object.freeze({ manifest, dir: abs, files: Object.freeze(files), tileFloats: c * h * w, outputFloats: Object.freeze(outputFloats) });
}

/** An ONNX value as ONNX Runtime describes it: dims are numbers, or strings for symbolic (dynamic) dimensions. */
export interface OnnxValueInfo {
  name: string;
  isTensor: boolean;
  type?: string;
  shape?: ReadonlyArray<number | string>;
}

/**
 * Differences between a model's ONNX inputs/outputs (from an ONNX Runtime session) and its manifest; empty when
 * they match. The ONNX model must have exactly the manifest's input; every manifest output must exist (extra ONNX
 * outputs are allowed and never fetched). Symbolic non-batch dimensions are accepted here; the warm-up run checks
 * the real output shapes.
 */
export function checkModelIo(manifest: ModelManifest, inputs: readonly OnnxValueInfo[], outputs: readonly OnnxValueInfo[]): string[] {
  const p: string[] = [];
  const fmt = (s: ReadonlyArray<number | string> | undefined): string =>
    s ? `[${s.map((d) => (typeof d === 'string' ? `"${d}"` : d)).join(', ')}]` : 'unknown';
  const compare = (what: string, expected: readonly number[], info: OnnxValueInfo): void => {
    if (!info.isTensor) {
      p.push(`${what} "${info.name}" is not a tensor`);
      return;
    }
    if (info.type !== 'float32') p.push(`${what} "${info.name}" has element type ${info.type ?? 'unknown'}, the manifest says float32`);
    const shape = info.shape;
    if (!shape) return;
    if (shape.length !== expected.length) {
      p.push(`${what} "${info.name}" has shape ${fmt(shape)} (rank ${shape.length}), the manifest says ${fmt(expected)}`);
      return;
    }
    if (typeof shape[0] === 'number' && shape[0] !== -1) {
      p.push(`${what} "${info.name}" has a fixed batch dimension ${shape[0]}; it must be dynamic`);
    }
    for (let d = 1; d < expected.length; d++) {
      if (typeof shape[d] === 'number' && shape[d] !== -1 && shape[d] !== expected[d]) {
        p.push(`${what} "${info.name}" has shape ${fmt(shape)}, the manifest says ${fmt(expected)}`);
        break;
      }
    }
  };
  const inputNames = inputs.map((i) => i.name);
  const input = inputs.find((i) => i.name === manifest.input.name);
  if (!input) p.push(`the ONNX model has no input "${manifest.input.name}" (its inputs: ${inputNames.map((n) => `"${n}"`).join(', ')})`);
  else compare('input', manifest.input.shape, input);
  for (const extra of inputNames) if (extra !== manifest.input.name) p.push(`the ONNX model has an input "${extra}" the manifest does not declare`);
  const outputNames = outputs.map((o) => o.name);
  for (const o of manifest.outputs) {
    const info = outputs.find((x) => x.name === o.name);
    if (!info) p.push(`the ONNX model has no output "${o.name}" (its outputs: ${outputNames.map((n) => `"${n}"`).join(', ')})`);
    else compare('output', o.shape, info);
  }
  return p;
}

/**
 * Differences between the tile geometry a model was trained on and the one the gateway's stitcher produces
 * (`stitch.tile`); empty when they agree. The composition root refuses to start on any (SCANLINE_ERR_MODEL_MISMATCH).
 * `energies`: the channels the stitcher's tiles have, when known; absent, a model must read what some portal sends
 * (1: single energy, 2: dual energy), and the results stage gives each scan the models for its energies.
 */
export function checkTileGeometry(manifest: ModelManifest, tile: { size: number; downsample: number }, energies?: number): string[] {
  const p: string[] = [];
  const t = manifest.input.tile;
  if (t.size !== tile.size) p.push(`model ${manifest.name} takes ${t.size}x${t.size} tiles, the stitcher makes ${tile.size}x${tile.size} (stitch.tile.size)`);
  if (t.downsample !== tile.downsample) {
    p.push(`model ${manifest.name} was trained on tiles downsampled ${t.downsample}x, the stitcher downsamples ${tile.downsample}x (stitch.tile.downsample)`);
  }
  const channels = manifest.input.shape[1];
  if (energies !== undefined && channels !== energies)
    p.push(`model ${manifest.name} takes ${channels} channels, the stitcher makes ${energies}-channel tiles`);
  if (energies === undefined && channels !== 1 && channels !== 2)
    p.push(`model ${manifest.name} takes ${channels} channels; portals send 1 (single energy) or 2 (dual energy)`);
  return p;
}

/**
 * Shape problems of a goods manifest's out-of-distribution statistics against its labels and embedding (empty:
 * consistent). Whether the image statistics are the ones this gateway computes is checked by the opinion stage at
 * start-up (src/opinion, imageFeatureProblems).
 */
function oodShapeProblems(stats: Readonly<OutOfDistributionStats>, labels: number, embeddingDim: number | undefined): string[] {
  const problems: string[] = [];
  const F = stats.imageFeatures.length;
  if (stats.imageMeans.length !== labels || stats.imageMeans.some((m) => m.length !== F)) problems.push(`imageMeans must be ${labels} rows of ${F}`);
  if (stats.imagePrecisions.length !== labels || stats.imagePrecisions.some((m) => m.length !== F || m.some((r) => r.length !== F)))
    problems.push(`imagePrecisions must be ${labels} matrices of ${F} x ${F}`);
  if (embeddingDim === undefined) {
    problems.push('the model has no embedding output');
    return problems;
  }
  const D = embeddingDim;
  if (stats.embeddingMeans.length !== labels || stats.embeddingMeans.some((m) => m.length !== D))
    problems.push(`embeddingMeans must be ${labels} rows of ${D}`);
  if (stats.embeddingPrecision.length !== D || stats.embeddingPrecision.some((r) => r.length !== D)) problems.push(`embeddingPrecision must be ${D} x ${D}`);
  // A precision matrix has a positive diagonal; anything else gives negative distances that are never out.
  const diagonalOk = (m: readonly (readonly number[])[]): boolean => m.every((r, i) => !(i < r.length) || r[i] > 0);
  if (!diagonalOk(stats.embeddingPrecision) || !stats.imagePrecisions.every(diagonalOk)) problems.push('precision matrices need a positive diagonal');
  return problems;
}
