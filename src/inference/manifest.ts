/**
 * Model manifests (`<model folder>/model.json`, contract in manifest-types.ts): load, validate (every problem
 * listed at once), verify file checksums, and compare a model's ONNX inputs and outputs with its manifest.
 * Pure functions and file reads only; safe on any thread (the worker imports `checkModelIo`).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, normalize, resolve, sep } from 'node:path';
import { deepFreeze } from '../config/layers.js';
import { ScanlineError } from '../errors/index.js';
import type { ModelManifest, ModelOutput, OutputMeaning } from './manifest-types.js';

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

const MEANINGS: readonly OutputMeaning[] = ['class_logits', 'embedding', 'threat_heatmap_logits'];
const CHANNELS = ['attenuation_high', 'attenuation_low'];
const TOP_KEYS = ['manifestVersion', 'name', 'version', 'task', 'description', 'files', 'input', 'outputs', 'labels', 'thresholds', 'training'];
const INPUT_KEYS = ['name', 'shape', 'dtype', 'layout', 'channels', 'tile', 'normalization'];
const OUTPUT_KEYS = ['name', 'shape', 'dtype', 'meaning'];
const LABEL_KEYS = ['id', 'name', 'hsCodes', 'cargo'];

function describe(v: unknown): string {
  let s: string | undefined;
  try {
    s = JSON.stringify(v);
  } catch {
    s = undefined;
  }
  if (s !== undefined && s.length > 80) s = `${s.slice(0, 77)}...`;
  return `${s === undefined ? String(v) : s} of type ${Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v}`;
}

function obj(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
function posInt(v: unknown): v is number {
  return Number.isInteger(v) && (v as number) > 0;
}
function finite(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}
function nonEmpty(v: unknown): v is string {
  return typeof v === 'string' && v.trim().length > 0;
}

/** A relative path that stays inside the model's folder. */
function safeRelativePath(v: unknown): v is string {
  if (!nonEmpty(v) || isAbsolute(v) || v.includes('\0')) return false;
  const n = normalize(v);
  return n !== '..' && !n.startsWith(`..${sep}`) && !n.split(/[\\/]/).includes('..');
}

/**
 * Every problem with a parsed model.json, each "Expected X for field but received V of type T" (or a sentence for
 * cross-field rules); empty when `value` is a valid ModelManifest.
 */
export function validateManifest(value: unknown): string[] {
  const p: string[] = [];
  const check = (ok: boolean, expected: string, name: string, v: unknown): boolean => {
    if (!ok) p.push(`Expected ${expected} for ${name} but received ${describe(v)}`);
    return ok;
  };
  const unknownKeys = (o: Record<string, unknown>, allowed: string[], where: string): void => {
    for (const k of Object.keys(o)) if (!allowed.includes(k)) p.push(`Unknown key ${where}${k}`);
  };
  if (!obj(value)) {
    check(false, 'an object', 'the manifest', value);
    return p;
  }
  const m = value;
  unknownKeys(m, TOP_KEYS, '');
  check(m.manifestVersion === 1, '1', 'manifestVersion', m.manifestVersion);
  check(
    typeof m.name === 'string' && /^[a-z0-9][a-z0-9._-]{0,63}$/.test(m.name),
    'a name of lower-case letters, digits, ".", "_" or "-" (1-64 characters)',
    'name',
    m.name,
  );
  check(typeof m.version === 'string' && /^\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]+)?$/.test(m.version), 'a semantic version like "1.2.0"', 'version', m.version);
  const task = m.task;
  check(task === 'goods' || task === 'threats', '"goods" or "threats"', 'task', task);
  check(typeof m.description === 'string', 'a string', 'description', m.description);

  // Files.
  if (check(obj(m.files), 'an object with fp32 (and optionally fp16)', 'files', m.files)) {
    const files = m.files as Record<string, unknown>;
    unknownKeys(files, ['fp32', 'fp16'], 'files.');
    for (const key of ['fp32', 'fp16']) {
      const f = files[key];
      if (f === undefined && key === 'fp16') continue;
      if (!check(obj(f), 'an object {path, sha256}', `files.${key}`, f)) continue;
      const file = f as Record<string, unknown>;
      unknownKeys(file, ['path', 'sha256'], `files.${key}.`);
      check(safeRelativePath(file.path), 'a relative path inside the model folder', `files.${key}.path`, file.path);
      check(typeof file.sha256 === 'string' && /^[0-9a-f]{64}$/.test(file.sha256), '64 lower-case hex digits', `files.${key}.sha256`, file.sha256);
    }
  }

  // Input.
  let channels = 0;
  let tileSize = 0;
  if (check(obj(m.input), 'an object', 'input', m.input)) {
    const i = m.input as Record<string, unknown>;
    unknownKeys(i, INPUT_KEYS, 'input.');
    check(nonEmpty(i.name), 'a non-empty string', 'input.name', i.name);
    const shape = i.shape;
    const shapeOk = check(
      Array.isArray(shape) && shape.length === 4 && shape[0] === -1 && shape.slice(1).every(posInt),
      '[-1, channels, height, width] with positive integers',
      'input.shape',
      shape,
    );
    if (shapeOk) {
      const s = shape as number[];
      channels = s[1];
      tileSize = s[2];
      if (s[2] !== s[3]) p.push(`input.shape height ${s[2]} and width ${s[3]} differ: tiles are square`);
    }
    check(i.dtype === 'float32', '"float32"', 'input.dtype', i.dtype);
    check(i.layout === 'NCHW', '"NCHW"', 'input.layout', i.layout);
    const ch = i.channels;
    if (
      check(
        Array.isArray(ch) && ch.length > 0 && ch.every((c) => CHANNELS.includes(c as string)) && new Set(ch).size === ch.length,
        `a list of distinct channels from ${CHANNELS.join(', ')}`,
        'input.channels',
        ch,
      ) &&
      shapeOk &&
      (ch as unknown[]).length !== channels
    ) {
      p.push(`input.channels lists ${(ch as unknown[]).length} channels but input.shape has ${channels}`);
    }
    if (check(obj(i.tile), 'an object {size, downsample}', 'input.tile', i.tile)) {
      const t = i.tile as Record<string, unknown>;
      check(posInt(t.size), 'a positive integer', 'input.tile.size', t.size);
      check(posInt(t.downsample), 'a positive integer', 'input.tile.downsample', t.downsample);
      if (shapeOk && posInt(t.size) && t.size !== tileSize) p.push(`input.tile.size ${t.size} differs from input.shape height ${tileSize}`);
    }
    if (check(obj(i.normalization), 'an object {offset, scale, clampMin, clampMax}', 'input.normalization', i.normalization)) {
      const n = i.normalization as Record<string, unknown>;
      const perChannel = (key: 'offset' | 'scale'): void => {
        const v = n[key];
        const ok = check(
          Array.isArray(v) && v.length > 0 && v.every(finite) && (key === 'offset' || v.every((x) => x !== 0)),
          key === 'scale' ? 'a list of finite non-zero numbers, one per channel' : 'a list of finite numbers, one per channel',
          `input.normalization.${key}`,
          v,
        );
        if (ok && shapeOk && (v as number[]).length !== channels) {
          p.push(`input.normalization.${key} has ${(v as number[]).length} values but input.shape has ${channels} channels`);
        }
      };
      perChannel('offset');
      perChannel('scale');
      check(finite(n.clampMin), 'a finite number', 'input.normalization.clampMin', n.clampMin);
      check(finite(n.clampMax), 'a finite number', 'input.normalization.clampMax', n.clampMax);
      if (finite(n.clampMin) && finite(n.clampMax) && !(n.clampMin < n.clampMax)) {
        p.push(`input.normalization.clampMin ${n.clampMin} must be below clampMax ${n.clampMax}`);
      }
    }
  }

  // Labels (needed by the output rules).
  let labelCount = -1;
  const labelIds: string[] = [];
  if (check(Array.isArray(m.labels) && m.labels.length > 0, 'a non-empty list of labels', 'labels', m.labels)) {
    const labels = m.labels as unknown[];
    labelCount = labels.length;
    labels.forEach((l, k) => {
      const at = `labels[${k}]`;
      if (!check(obj(l), 'an object {id, name, hsCodes}', at, l)) return;
      const label = l as Record<string, unknown>;
      unknownKeys(label, LABEL_KEYS, `${at}.`);
      if (check(typeof label.id === 'string' && /^[a-z0-9_]{1,64}$/.test(label.id), 'an id of lower-case letters, digits and "_"', `${at}.id`, label.id)) {
        if (labelIds.includes(label.id as string)) p.push(`${at}.id "${label.id as string}" is used twice`);
        labelIds.push(label.id as string);
      }
      check(nonEmpty(label.name), 'a non-empty string', `${at}.name`, label.name);
      check(
        Array.isArray(label.hsCodes) && label.hsCodes.every((h) => typeof h === 'string' && /^\d{2,10}$/.test(h)),
        'a list of HS codes (2-10 digits)',
        `${at}.hsCodes`,
        label.hsCodes,
      );
      if (label.cargo !== undefined) {
        check(typeof label.cargo === 'boolean', 'a boolean', `${at}.cargo`, label.cargo);
        if (task === 'threats') p.push(`${at}.cargo is for goods models only`);
      }
    });
  }

  // Outputs.
  if (check(Array.isArray(m.outputs) && m.outputs.length > 0, 'a non-empty list of outputs', 'outputs', m.outputs)) {
    const outputs = m.outputs as unknown[];
    const names = new Set<string>();
    const byMeaning = new Map<string, number[][]>();
    outputs.forEach((o, k) => {
      const at = `outputs[${k}]`;
      if (!check(obj(o), 'an object {name, shape, dtype, meaning}', at, o)) return;
      const out = o as Record<string, unknown>;
      unknownKeys(out, OUTPUT_KEYS, `${at}.`);
      if (check(nonEmpty(out.name), 'a non-empty string', `${at}.name`, out.name)) {
        if (names.has(out.name as string)) p.push(`${at}.name "${out.name as string}" is used twice`);
        names.add(out.name as string);
      }
      const shapeOk = check(
        Array.isArray(out.shape) && out.shape.length >= 2 && out.shape[0] === -1 && out.shape.slice(1).every(posInt),
        '[-1, ...positive integers] (batch first, at least 2 dimensions)',
        `${at}.shape`,
        out.shape,
      );
      check(out.dtype === 'float32', '"float32"', `${at}.dtype`, out.dtype);
      if (check(MEANINGS.includes(out.meaning as OutputMeaning), `one of ${MEANINGS.join(', ')}`, `${at}.meaning`, out.meaning) && shapeOk) {
        const list = byMeaning.get(out.meaning as string) ?? [];
        list.push(out.shape as number[]);
        byMeaning.set(out.meaning as string, list);
      }
    });
    const one = (meaning: OutputMeaning, required: boolean): number[] | undefined => {
      const list = byMeaning.get(meaning) ?? [];
      if (list.length > 1) p.push(`outputs has ${list.length} outputs with meaning ${meaning}; at most one is allowed`);
      if (required && list.length === 0) p.push(`a ${String(task)} model needs an output with meaning ${meaning}`);
      return list[0];
    };
    if (task === 'goods') {
      const logits = one('class_logits', true);
      one('embedding', false);
      if (logits && logits.length !== 2) p.push(`the class_logits output must be [-1, labels] but is ${JSON.stringify(logits)}`);
      else if (logits && labelCount >= 0 && logits[1] !== labelCount) {
        p.push(`the class_logits output has ${logits[1]} classes but labels lists ${labelCount}`);
      }
      const emb = byMeaning.get('embedding')?.[0];
      if (emb && emb.length !== 2) p.push(`the embedding output must be [-1, D] but is ${JSON.stringify(emb)}`);
      if (byMeaning.has('threat_heatmap_logits')) p.push('a goods model has no threat_heatmap_logits output');
    } else if (task === 'threats') {
      const heat = one('threat_heatmap_logits', true);
      if (heat && heat.length !== 4) p.push(`the threat_heatmap_logits output must be [-1, labels, gh, gw] but is ${JSON.stringify(heat)}`);
      else if (heat) {
        if (labelCount >= 0 && heat[1] !== labelCount) p.push(`the threat_heatmap_logits output has ${heat[1]} kinds but labels lists ${labelCount}`);
        if (tileSize > 0 && (tileSize % heat[2] !== 0 || tileSize % heat[3] !== 0)) {
          p.push(`the threat heatmap cells ${heat[2]}x${heat[3]} do not tile the ${tileSize}x${tileSize} input evenly`);
        }
      }
      if (byMeaning.has('class_logits') || byMeaning.has('embedding')) p.push('a threats model has only a threat_heatmap_logits output');
    }
  }

  // Thresholds.
  if (check(obj(m.thresholds), 'an object of thresholds', 'thresholds', m.thresholds)) {
    const t = m.thresholds as Record<string, unknown>;
    for (const [k, v] of Object.entries(t)) check(finite(v) && v >= 0 && v <= 1, 'a probability 0..1', `thresholds.${k}`, v);
    if (task === 'goods') {
      if (!('suggest' in t)) p.push('thresholds.suggest is required for a goods model');
      for (const k of Object.keys(t)) if (k !== 'suggest') p.push(`Unknown key thresholds.${k} (a goods model has only "suggest")`);
    } else if (task === 'threats') {
      for (const id of labelIds) if (!(id in t)) p.push(`thresholds.${id} is required: one threshold per threat label`);
      for (const k of Object.keys(t)) if (labelIds.length > 0 && !labelIds.includes(k)) p.push(`Unknown key thresholds.${k} (not a label id)`);
    }
  }
  if (m.training !== undefined) check(obj(m.training), 'an object', 'training', m.training);
  return p;
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
 */
export function checkTileGeometry(manifest: ModelManifest, tile: { size: number; downsample: number }, energies = 2): string[] {
  const p: string[] = [];
  const t = manifest.input.tile;
  if (t.size !== tile.size) p.push(`model ${manifest.name} takes ${t.size}x${t.size} tiles, the stitcher makes ${tile.size}x${tile.size} (stitch.tile.size)`);
  if (t.downsample !== tile.downsample) {
    p.push(`model ${manifest.name} was trained on tiles downsampled ${t.downsample}x, the stitcher downsamples ${tile.downsample}x (stitch.tile.downsample)`);
  }
  if (manifest.input.shape[1] !== energies)
    p.push(`model ${manifest.name} takes ${manifest.input.shape[1]} channels, the stitcher makes ${energies}-channel tiles`);
  return p;
}
