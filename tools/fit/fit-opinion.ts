/**
 * `scanline fit-opinion`: fits what makes the models' opinion honest, on simulator datasets (`scanline dataset`),
 * and writes it into the manifests (models/README.md "Calibration" and "Out of distribution"):
 * - goods: temperature scaling of the class logits (minimum negative log-likelihood on the validation tiles), with
 *   the expected calibration error and reliability bins before and after;
 * - goods: out-of-distribution statistics: class-conditional means and one shared precision matrix of the tile
 *   image statistics and of the embedding, fitted on the `fit` set (training distribution); tile thresholds at the
 *   `tileQuantile` of the validation tiles; the scan rule from the validation scans' shares;
 * - threats: Platt scaling of alert probabilities (the gateway's own alert rule, src/results/threat-alerts.ts, on
 *   the validation scans; an alert is true when it overlaps a truth threat).
 * `check` datasets (e.g. `--foreign-scanner` exports) are scored and reported, never fitted on.
 *
 * The models run in ONNX Runtime on this thread (a tool, not the gateway). Tiles are read from disk in batches.
 */
import { closeSync, openSync, readFileSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createNormalizer, loadModel, normalizeBatchInPlace, type LoadedModel, type ModelManifest } from '../../src/inference/index.js';
// The tool runs the models on its own thread; the gateway keeps onnxruntime-node to its worker threads.
import * as ort from 'onnxruntime-node';
import { IMAGE_FEATURE_COUNT, IMAGE_FEATURES, OodModel, tileImageFeatures } from '../../src/opinion/index.js';
import { GoodsSuggestions, ThreatAlerts, softmaxInto } from '../../src/results/index.js';
import { DEFAULT_CONFIG } from '../../src/config/index.js';

export interface FitOpinionOptions {
  /** Dataset of the training distribution (the OOD statistics' means and covariances). */
  fit: string;
  /** Validation dataset: temperature, thresholds, alert calibration. */
  validation: string;
  /** Datasets only scored (foreign scanners): tile and scan OOD rates are reported. */
  check?: string[];
  goodsDir: string;
  /** Absent: the goods model alone is fitted (no threats model for these scans yet). */
  threatsDir?: string;
  /** Share of validation tiles a tile threshold keeps inside. Default 0.995. */
  tileQuantile?: number;
  /** Write the results into the manifests. */
  write?: boolean;
  /**
   * Choose the threat thresholds again on the validation scans: the most threats found at this many false alarms
   * per scan at most (the gateway's alert rule). Absent: the manifest's thresholds stay.
   */
  chooseThresholds?: number;
  log?: (message: string) => void;
}

interface Dataset {
  dir: string;
  count: number;
  goods: Uint8Array;
  index: {
    scans: Array<{
      seed: number;
      firstTile: number;
      tileCount: number;
      threats: Array<{ kind: string; lineStart: number; lineEnd: number; pixelStart: number; pixelEnd: number }>;
    }>;
    tiles: Array<{ seed: number; line: number; pixel: number; label: number }>;
    tile: { size: number; downsample: number; strideLines: number };
    generator: { pixels: number; foreignScanner?: string };
    files: { tiles: { shape: number[] } };
  };
}

function openDataset(dir: string): Dataset {
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as Dataset['index'] & { count: number };
  return { dir, count: index.count, goods: new Uint8Array(readFileSync(join(dir, 'goods.u8'))), index };
}

const BATCH = 256;
/** Threshold candidates when choosing threat thresholds (as models/train/common.py THRESHOLD_GRID, coarser). */
const THRESHOLD_GRID: readonly number[] = [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.96, 0.97, 0.98, 0.99, 0.995, 0.999];
/** Fit tiles a class needs for a covariance of its own. */
const MIN_CLASS_TILES = 200;
const TILE_SAMPLES = 64 * 64;

/** Floats per tile of a dataset: channels (energies) x 64 x 64. */
function tileFloats(ds: Dataset): number {
  return ds.index.files.tiles.shape[1] * TILE_SAMPLES;
}

/** Calls `each` with batches of raw tiles (before normalisation) in dataset order. */
async function forBatches(ds: Dataset, each: (tiles: Float32Array, first: number, count: number) => Promise<void>): Promise<void> {
  const fd = openSync(join(ds.dir, 'tiles.f32'), 'r');
  try {
    const TILE_FLOATS = tileFloats(ds);
    const buf = new Float32Array(BATCH * TILE_FLOATS);
    for (let first = 0; first < ds.count; first += BATCH) {
      const count = Math.min(BATCH, ds.count - first);
      const bytes = new Uint8Array(buf.buffer, 0, count * TILE_FLOATS * 4);
      let read = 0;
      while (read < bytes.length) read += readSync(fd, bytes, read, bytes.length - read, first * TILE_FLOATS * 4 + read);
      await each(buf.subarray(0, count * TILE_FLOATS), first, count);
    }
  } finally {
    closeSync(fd);
  }
}

type OrtSession = ort.InferenceSession;

async function run(session: OrtSession, model: LoadedModel, raw: Float32Array, count: number): Promise<Record<string, Float32Array>> {
  const m = model.manifest;
  const x = Float32Array.from(raw);
  normalizeBatchInPlace(x, count, createNormalizer(m.input));
  const feeds = { [m.input.name]: new ort.Tensor('float32', x, [count, ...m.input.shape.slice(1)]) };
  const out = await session.run(feeds);
  const r: Record<string, Float32Array> = {};
  for (const o of m.outputs) r[o.meaning] = out[o.name].data as Float32Array;
  return r;
}

interface GoodsPass {
  logits: Float32Array;
  embeddings: Float32Array;
  features: Float64Array;
  labels: number;
  dim: number;
}

async function goodsPass(ds: Dataset, goods: LoadedModel, session: OrtSession, attenuationMax: number): Promise<GoodsPass> {
  const L = goods.manifest.labels.length;
  const dim = goods.manifest.outputs.find((o) => o.meaning === 'embedding')?.shape[1] ?? 0;
  if (dim === 0) throw new Error(`${goods.manifest.name} has no embedding output: the out-of-distribution statistics need one`);
  const logits = new Float32Array(ds.count * L);
  const embeddings = new Float32Array(ds.count * dim);
  const features = new Float64Array(ds.count * IMAGE_FEATURE_COUNT);
  const f = new Float64Array(IMAGE_FEATURE_COUNT);
  const floats = tileFloats(ds);
  if (floats / TILE_SAMPLES !== goods.manifest.input.shape[1]) {
    throw new Error(`${ds.dir}: tiles of ${floats / TILE_SAMPLES} channels, ${goods.manifest.name} reads ${goods.manifest.input.shape[1]}`);
  }
  await forBatches(ds, async (tiles, first, count) => {
    const out = await run(session, goods, tiles, count);
    logits.set(out.class_logits, first * L);
    for (let i = 0; i < count; i++) {
      const e = out.embedding.subarray(i * dim, (i + 1) * dim);
      let norm = 0;
      for (const v of e) norm += v * v;
      norm = Math.sqrt(norm) || 1;
      for (let j = 0; j < dim; j++) embeddings[(first + i) * dim + j] = e[j] / norm;
      tileImageFeatures(tiles.subarray(i * floats, (i + 1) * floats), 64, floats / TILE_SAMPLES, attenuationMax, f);
      features.set(f, (first + i) * IMAGE_FEATURE_COUNT);
    }
  });
  return { logits, embeddings, features, labels: L, dim };
}

function argmaxRow(a: Float32Array, row: number, n: number): number {
  let best = 0;
  for (let j = 1; j < n; j++) if (a[row * n + j] > a[row * n + best]) best = j;
  return best;
}

/** Class means and the pooled within-class precision of rows x (n x d) grouped by `cls`. */
function fitGaussian(
  x: ArrayLike<number>,
  n: number,
  d: number,
  cls: (i: number) => number,
  classes: number,
  ridge: number,
): { means: number[][]; precision: number[][] } {
  const sums = Array.from({ length: classes }, () => new Float64Array(d));
  const counts = new Float64Array(classes);
  const global = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    const c = cls(i);
    counts[c]++;
    for (let j = 0; j < d; j++) {
      sums[c][j] += x[i * d + j];
      global[j] += x[i * d + j];
    }
  }
  const means = sums.map((s, c) => Array.from(s, (v, j) => (counts[c] > 0 ? v / counts[c] : global[j] / n)));
  const cov = new Float64Array(d * d);
  const diff = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    const mu = means[cls(i)];
    for (let j = 0; j < d; j++) diff[j] = x[i * d + j] - mu[j];
    for (let a = 0; a < d; a++) for (let b = 0; b < d; b++) cov[a * d + b] += diff[a] * diff[b];
  }
  let trace = 0;
  for (let a = 0; a < d; a++) trace += cov[a * d + a] / n;
  for (let k = 0; k < d * d; k++) cov[k] /= n;
  for (let a = 0; a < d; a++) cov[a * d + a] += (ridge * trace) / d;
  return { means: means.map((m) => m.map(round6)), precision: invert(cov, d).map((r) => r.map(round6)) };
}

/** Inverse of a symmetric positive-definite d x d matrix (Gauss-Jordan with partial pivoting). */
function invert(m: Float64Array, d: number): number[][] {
  const a = Array.from({ length: d }, (_, i) => [...Array.from(m.subarray(i * d, (i + 1) * d)), ...Array.from({ length: d }, (_, j) => (i === j ? 1 : 0))]);
  for (let c = 0; c < d; c++) {
    let p = c;
    for (let r = c + 1; r < d; r++) if (Math.abs(a[r][c]) > Math.abs(a[p][c])) p = r;
    [a[c], a[p]] = [a[p], a[c]];
    const pivot = a[c][c];
    if (Math.abs(pivot) < 1e-300) throw new Error('singular covariance');
    for (let j = 0; j < 2 * d; j++) a[c][j] /= pivot;
    for (let r = 0; r < d; r++) {
      if (r === c) continue;
      const f = a[r][c];
      if (f === 0) continue;
      for (let j = 0; j < 2 * d; j++) a[r][j] -= f * a[c][j];
    }
  }
  return a.map((row) => row.slice(d));
}

function round6(v: number): number {
  return Number(v.toPrecision(6));
}

function quantile(values: Float64Array | number[], q: number): number {
  const s = Float64Array.from(values).sort();
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))];
}

/** Mean negative log-likelihood of `labels` under softmax(logits / t). */
function nll(logits: Float32Array, labels: Uint8Array, L: number, t: number): number {
  let total = 0;
  for (let i = 0; i < labels.length; i++) {
    let max = -Infinity;
    for (let j = 0; j < L; j++) max = Math.max(max, logits[i * L + j] / t);
    let sum = 0;
    for (let j = 0; j < L; j++) sum += Math.exp(logits[i * L + j] / t - max);
    total += -(logits[i * L + labels[i]] / t - max - Math.log(sum));
  }
  return total / labels.length;
}

/** Golden-section minimum of f on [lo, hi] in log space. */
function minimiseLog(f: (x: number) => number, lo: number, hi: number): number {
  let a = Math.log(lo);
  let b = Math.log(hi);
  const g = (Math.sqrt(5) - 1) / 2;
  let c = b - g * (b - a);
  let d = a + g * (b - a);
  for (let k = 0; k < 60; k++) {
    if (f(Math.exp(c)) < f(Math.exp(d))) b = d;
    else a = c;
    c = b - g * (b - a);
    d = a + g * (b - a);
  }
  return Math.exp((a + b) / 2);
}

export interface Reliability {
  ece: number;
  bins: Array<{ from: number; to: number; count: number; confidence: number; accuracy: number }>;
}

/** Expected calibration error over 10 equal-width confidence bins, with the bins (the reliability diagram). */
export function reliability(confidence: ArrayLike<number>, correct: ArrayLike<boolean | number>, bins = 10): Reliability {
  const out = Array.from({ length: bins }, (_, k) => ({ from: k / bins, to: (k + 1) / bins, count: 0, confidence: 0, accuracy: 0 }));
  for (let i = 0; i < confidence.length; i++) {
    const b = out[Math.min(bins - 1, Math.floor(confidence[i] * bins))];
    b.count++;
    b.confidence += confidence[i];
    b.accuracy += correct[i] ? 1 : 0;
  }
  let ece = 0;
  for (const b of out) {
    if (b.count === 0) continue;
    ece += (Math.abs(b.accuracy - b.confidence) / confidence.length) as number;
    b.confidence = Math.round((b.confidence / b.count) * 1e4) / 1e4;
    b.accuracy = Math.round((b.accuracy / b.count) * 1e4) / 1e4;
  }
  return { ece: Math.round(ece * 1e4) / 1e4, bins: out.filter((b) => b.count > 0) };
}

function topConfidences(logits: Float32Array, labels: Uint8Array, L: number, t: number, keep: (i: number) => boolean): { conf: number[]; correct: boolean[] } {
  const conf: number[] = [];
  const correct: boolean[] = [];
  for (let i = 0; i < labels.length; i++) {
    if (!keep(i)) continue;
    let max = -Infinity;
    let arg = 0;
    for (let j = 0; j < L; j++) {
      if (logits[i * L + j] > max) {
        max = logits[i * L + j];
        arg = j;
      }
    }
    let sum = 0;
    for (let j = 0; j < L; j++) sum += Math.exp((logits[i * L + j] - max) / t);
    conf.push(1 / sum);
    correct.push(arg === labels[i]);
  }
  return { conf, correct };
}

/**
 * Logistic fit y ~ sigmoid(a x + b) with a Gaussian prior toward (1, 0) (damped Newton; a is kept positive). When x
 * barely varies (every peak saturated at the float32 top), only the level is fitted: slope 1 and the intercept that
 * gives the observed rate (with one pseudo-count each way).
 */
export function plattScaling(x: number[], y: number[], prior = 1): { slope: number; intercept: number } {
  const n = x.length;
  const mean = x.reduce((s, v) => s + v, 0) / Math.max(1, n);
  const spread = Math.sqrt(x.reduce((s, v) => s + (v - mean) ** 2, 0) / Math.max(1, n));
  if (n === 0 || spread < 1e-3) {
    const rate = (y.reduce((s, v) => s + v, 0) + 1) / (n + 2);
    return { slope: 1, intercept: round6(Math.log(rate / (1 - rate)) - mean) };
  }
  let a = 1;
  let b = 0;
  for (let it = 0; it < 300; it++) {
    let ga = prior * (a - 1);
    let gb = prior * b;
    let haa = prior;
    let hab = 0;
    let hbb = prior;
    for (let i = 0; i < x.length; i++) {
      const p = 1 / (1 + Math.exp(-(a * x[i] + b)));
      const r = p - y[i];
      ga += r * x[i];
      gb += r;
      const w = p * (1 - p);
      haa += w * x[i] * x[i];
      hab += w * x[i];
      hbb += w;
    }
    const det = haa * hbb - hab * hab;
    // Damped: a step of at most 1 in each parameter keeps a flat likelihood from throwing the fit away.
    const da = Math.max(-1, Math.min(1, (hbb * ga - hab * gb) / det));
    const db = Math.max(-1, Math.min(1, (haa * gb - hab * ga) / det));
    a = Math.max(0.01, a - da);
    b -= db;
    if (Math.abs(da) + Math.abs(db) < 1e-9) break;
  }
  if (!Number.isFinite(a) || !Number.isFinite(b)) throw new Error('Platt scaling did not converge');
  return { slope: round6(a), intercept: round6(b) };
}

const sigmoid = (v: number): number => 1 / (1 + Math.exp(-v));

const logit = (p: number): number => {
  const q = Math.min(1 - 1e-7, Math.max(1e-7, p));
  return Math.log(q / (1 - q));
};

export interface FitOpinionResult {
  goods: {
    temperature: number;
    ece: { tilesBefore: number; tilesAfter: number; goodsTilesBefore: number; goodsTilesAfter: number };
    reliabilityAfter: Reliability['bins'];
    /** Suggestion segments: Platt scaling of their confidence over the goods tiles they cover. */
    segment: { slope: number; intercept: number; pairs: number; eceBefore: number; eceAfter: number; reliabilityAfter: Reliability['bins'] };
  };
  ood: {
    imageThreshold: number;
    embeddingThreshold: number;
    scanShare: number;
    validation: { tileRate: number; scanRate: number; scanShareP99: number };
    checks: Array<{ dir: string; profile: string | null; tileRate: number; scanRate: number; scans: number }>;
  };
  /** null when no threats model was fitted. */
  threats: {
    alerts: number;
    trueAlerts: number;
    slope: number;
    intercept: number;
    eceBefore: number;
    eceAfter: number;
    thresholds: Record<string, number>;
    thresholdChoice?: Record<string, unknown>;
  } | null;
}

export async function fitOpinion(o: FitOpinionOptions): Promise<FitOpinionResult> {
  const log = o.log ?? (() => {});
  const q = o.tileQuantile ?? 0.995;
  const attenuationMax = DEFAULT_CONFIG.stitch.attenuationMax;
  const goods = await loadModel(o.goodsDir);
  const threats = o.threatsDir ? await loadModel(o.threatsDir) : null;
  const settings = { executionProviders: ['cpu'], intraOpNumThreads: 2, interOpNumThreads: 1 };
  const goodsSession = await ort.InferenceSession.create(goods.files.fp32, settings);
  const threatsSession = threats ? await ort.InferenceSession.create(threats.files.fp32, settings) : null;
  const L = goods.manifest.labels.length;

  const fitSet = openDataset(o.fit);
  log(`goods model on ${fitSet.count} fit tiles`);
  const fit = await goodsPass(fitSet, goods, goodsSession, attenuationMax);
  const fitClass = (i: number): number => argmaxRow(fit.logits, i, L);
  const image = fitGaussian(fit.features, fitSet.count, IMAGE_FEATURE_COUNT, fitClass, L, 1e-3);
  // Per class: image noise and sharpness depend on what a tile shows (air is smooth, beverages are not). A class with
  // few fit tiles keeps the pooled matrix.
  const imagePrecisions = Array.from({ length: L }, (_, c) => {
    const rows: number[] = [];
    for (let i = 0; i < fitSet.count; i++)
      if (fitClass(i) === c) for (let j = 0; j < IMAGE_FEATURE_COUNT; j++) rows.push(fit.features[i * IMAGE_FEATURE_COUNT + j]);
    const n = rows.length / IMAGE_FEATURE_COUNT;
    return n >= MIN_CLASS_TILES ? fitGaussian(rows, n, IMAGE_FEATURE_COUNT, () => 0, 1, 1e-3).precision : image.precision;
  });
  const embedding = fitGaussian(fit.embeddings, fitSet.count, fit.dim, fitClass, L, 1e-2);

  const valSet = openDataset(o.validation);
  log(`goods model on ${valSet.count} validation tiles`);
  const val = await goodsPass(valSet, goods, goodsSession, attenuationMax);

  // Temperature.
  const temperature = round6(minimiseLog((t) => nll(val.logits, valSet.goods, L, t), 0.2, 20));
  const isGoods = (i: number): boolean => (goods.manifest.labels[valSet.goods[i]]?.hsCodes.length ?? 0) > 0;
  const before = topConfidences(val.logits, valSet.goods, L, 1, () => true);
  const after = topConfidences(val.logits, valSet.goods, L, temperature, () => true);
  const gBefore = topConfidences(val.logits, valSet.goods, L, 1, isGoods);
  const gAfter = topConfidences(val.logits, valSet.goods, L, temperature, isGoods);
  const relAfter = reliability(after.conf, after.correct);

  // Segments: the gateway's own GoodsSuggestions over each validation scan's tiles (temperature applied), each goods
  // tile paired with the confidence of the segment covering its centre line and whether that segment is right.
  const tile = valSet.index.tile;
  const span = tile.size * tile.downsample;
  const labels = goods.manifest.labels;
  const segX: number[] = [];
  const segY: number[] = [];
  const probs = new Float32Array(L);
  const scaled = new Float32Array(L);
  for (const scan of valSet.index.scans) {
    const suggestions = new GoodsSuggestions(labels, tile.strideLines, goods.manifest.thresholds.suggest ?? 0.5);
    for (let i = scan.firstTile; i < scan.firstTile + scan.tileCount; i++) {
      const t = valSet.index.tiles[i];
      for (let j = 0; j < L; j++) scaled[j] = val.logits[i * L + j] / temperature;
      softmaxInto(scaled, probs);
      suggestions.add({ line: t.line, lines: span, pixel: t.pixel, pixels: span, probabilities: Float32Array.from(probs) });
    }
    suggestions.finish();
    const segments = suggestions.segments();
    for (let i = scan.firstTile; i < scan.firstTile + scan.tileCount; i++) {
      const truth = labels[valSet.goods[i]];
      if (!truth || truth.hsCodes.length === 0) continue;
      const centre = valSet.index.tiles[i].line + span / 2;
      const seg = segments.find((g) => g.startLine <= centre && centre < g.endLine);
      if (!seg?.top3[0]) continue;
      segX.push(logit(seg.confidence));
      segY.push(seg.top3[0].label === truth.id ? 1 : 0);
    }
  }
  const segmentFit = plattScaling(segX, segY);
  const segmentEceBefore = reliability(segX.map(sigmoid), segY).ece;
  const segmentRel = reliability(
    segX.map((x) => Math.min(0.99, sigmoid(segmentFit.slope * x + segmentFit.intercept))),
    segY,
  );

  // OOD thresholds on validation tiles (unit thresholds first: raw squared distances).
  const rawStats = {
    imageFeatures: [...IMAGE_FEATURES],
    imageMeans: image.means,
    imagePrecisions,
    imageThreshold: 1,
    embeddingMeans: embedding.means,
    embeddingPrecision: embedding.precision,
    embeddingThreshold: 1,
    scanShare: 1,
    minTiles: 1,
  };
  const raw = new OodModel(rawStats);
  const scoresOf = (p: GoodsPass, count: number): { image: Float64Array; emb: Float64Array } => {
    const im = new Float64Array(count);
    const em = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      const s = raw.score(
        argmaxRow(p.logits, i, L),
        p.features.subarray(i * IMAGE_FEATURE_COUNT, (i + 1) * IMAGE_FEATURE_COUNT),
        p.embeddings.subarray(i * p.dim, (i + 1) * p.dim),
      );
      im[i] = s.image;
      em[i] = s.embedding;
    }
    return { image: im, emb: em };
  };
  const valScores = scoresOf(val, valSet.count);
  const imageThreshold = round6(quantile(valScores.image, q));
  const embeddingThreshold = round6(quantile(valScores.emb, q));
  const shares = (ds: Dataset, s: { image: Float64Array; emb: Float64Array }): { tileRate: number; perScan: number[] } => {
    let out = 0;
    const perScan: number[] = [];
    for (const scan of ds.index.scans) {
      let k = 0;
      for (let i = scan.firstTile; i < scan.firstTile + scan.tileCount; i++) if (s.image[i] > imageThreshold || s.emb[i] > embeddingThreshold) k++;
      out += k;
      perScan.push(scan.tileCount > 0 ? k / scan.tileCount : 0);
    }
    return { tileRate: out / ds.count, perScan };
  };
  const valShares = shares(valSet, valScores);
  if (valShares.perScan.length === 0) throw new Error(`${o.validation}: no scans to choose the scan rule on`);
  const scanShareP99 = quantile(valShares.perScan, 0.99);
  // Twice the 99th percentile of honest scans, and never below 10%: a scan needs a clear share of strange tiles.
  const scanShare = round6(Math.min(0.5, Math.max(0.1, 2 * scanShareP99)));
  const minTiles = 8;
  const scanRate = (perScan: number[]): number => perScan.filter((s) => s >= scanShare).length / Math.max(1, perScan.length);
  const checks: FitOpinionResult['ood']['checks'] = [];
  for (const dir of o.check ?? []) {
    const ds = openDataset(dir);
    log(`goods model on ${ds.count} check tiles (${dir})`);
    const p = await goodsPass(ds, goods, goodsSession, attenuationMax);
    const s = shares(ds, scoresOf(p, ds.count));
    checks.push({
      dir,
      profile: ds.index.generator.foreignScanner ?? null,
      tileRate: round6(s.tileRate),
      scanRate: round6(scanRate(s.perScan)),
      scans: s.perScan.length,
    });
  }

  let threatResult: FitOpinionResult['threats'] = null;
  let threatPatch: Partial<ModelManifest> | null = null;
  if (threats && threatsSession) {
    // Threat alerts on the validation scans: Platt scaling of the peak probability.
    log(`threats model on ${valSet.count} validation tiles`);
    const heat = threats.manifest.outputs.find((x) => x.meaning === 'threat_heatmap_logits');
    if (!heat) throw new Error('the threats model has no threat_heatmap_logits output');
    const cellFloats = heat.shape.slice(1).reduce((a, b) => a * b, 1);
    const heatmaps = new Float32Array(valSet.count * cellFloats);
    await forBatches(valSet, async (tiles, first, count) => {
      const out = await run(threatsSession, threats, tiles, count);
      heatmaps.set(out.threat_heatmap_logits, first * cellFloats);
    });
    type Box = { lineStart: number; lineEnd: number; pixelStart: number; pixelEnd: number };
    const overlaps = (a: Box, b: Box): boolean => a.lineStart < b.lineEnd && b.lineStart < a.lineEnd && a.pixelStart < b.pixelEnd && b.pixelStart < a.pixelEnd;
    /** The gateway's alerts of one validation scan at `thresholds` (raw peak probabilities). */
    const scanAlerts = (scan: (typeof valSet.index.scans)[number], thresholds: Readonly<Record<string, number>>) => {
      const alerts = new ThreatAlerts(threats.manifest.labels, thresholds, valSet.index.generator.pixels, span / heat.shape[3]);
      for (let i = scan.firstTile; i < scan.firstTile + scan.tileCount; i++) {
        const t = valSet.index.tiles[i];
        const logits = heatmaps.subarray(i * cellFloats, (i + 1) * cellFloats);
        alerts.add({ line: t.line, lines: span, pixel: t.pixel, pixels: span, logits, gridH: heat.shape[2], gridW: heat.shape[3] });
      }
      return alerts.all();
    };
    const alertsOf = (thresholds: Readonly<Record<string, number>>): Array<{ probability: number; hit: boolean; kind: string }[]> =>
      valSet.index.scans.map((scan) =>
        scanAlerts(scan, thresholds).map((a) => ({ probability: a.probability, kind: a.category, hit: scan.threats.some((b) => overlaps(a.box, b)) })),
      );
    /** Threats found (any alert overlapping) and false alarms at `thresholds`, over the validation scans. */
    const score = (thresholds: Readonly<Record<string, number>>): { found: number; truth: number; falseAlarms: number } => {
      let found = 0;
      let truth = 0;
      let falseAlarms = 0;
      for (const scan of valSet.index.scans) {
        const all = scanAlerts(scan, thresholds);
        truth += scan.threats.length;
        found += scan.threats.filter((b) => all.some((a) => overlaps(a.box, b))).length;
        falseAlarms += all.filter((a) => !scan.threats.some((b) => overlaps(a.box, b))).length;
      }
      return { found, truth, falseAlarms };
    };
    let thresholds: Record<string, number> = { ...threats.manifest.thresholds };
    let thresholdChoice: Record<string, unknown> | undefined;
    if (o.chooseThresholds !== undefined) {
      const budget = o.chooseThresholds * valSet.index.scans.length;
      const grid = THRESHOLD_GRID;
      thresholds = Object.fromEntries(threats.manifest.labels.map((l) => [l.id, grid[grid.length - 1]]));
      let current = score(thresholds);
      // Greedy: lower the one threshold that finds the most threats per added false alarm, within the budget.
      for (;;) {
        let best: { id: string; value: number; s: ReturnType<typeof score>; gain: number } | null = null;
        for (const l of threats.manifest.labels) {
          const at = grid.indexOf(thresholds[l.id]);
          if (at <= 0) continue;
          const trial = { ...thresholds, [l.id]: grid[at - 1] };
          const s = score(trial);
          if (s.falseAlarms > budget) continue;
          const gain = (s.found - current.found) / (Math.max(0, s.falseAlarms - current.falseAlarms) + 0.5);
          if (s.found <= current.found) continue; // a lower threshold that finds nothing more only spends the budget
          if (!best || gain > best.gain) best = { id: l.id, value: grid[at - 1], s, gain };
        }
        if (!best) break;
        thresholds = { ...thresholds, [best.id]: best.value };
        current = best.s;
      }
      thresholdChoice = {
        seeds: seedsOf(valSet),
        scans: valSet.index.scans.length,
        budgetPerScan: o.chooseThresholds,
        recall: current.truth > 0 ? round6(current.found / current.truth) : null,
        falseAlarmsPerScan: round6(current.falseAlarms / valSet.index.scans.length),
        threats: current.truth,
      };
      log(`thresholds ${JSON.stringify(thresholds)}: ${JSON.stringify(thresholdChoice)}`);
    }
    const xs: number[] = [];
    const ys: number[] = [];
    for (const scanAlerts of alertsOf(thresholds)) {
      for (const a of scanAlerts) {
        xs.push(logit(a.probability));
        ys.push(a.hit ? 1 : 0);
      }
    }
    const fitAlert = plattScaling(xs, ys);
    const eceBefore = reliability(xs.map(sigmoid), ys).ece;
    const eceAfter = reliability(
      xs.map((x) => sigmoid(fitAlert.slope * x + fitAlert.intercept)),
      ys,
    ).ece;
    threatResult = {
      alerts: xs.length,
      trueAlerts: ys.filter((y) => y === 1).length,
      ...fitAlert,
      eceBefore,
      eceAfter,
      thresholds,
      ...(thresholdChoice ? { thresholdChoice } : {}),
    };
    threatPatch = {
      thresholds,
      calibration: {
        alert: fitAlert,
        maxProbability: 0.99,
        fit: { alerts: xs.length, trueAlerts: threatResult.trueAlerts, eceBefore, eceAfter, ...(thresholdChoice ? { thresholdChoice } : {}) },
      },
    };
  }

  const result: FitOpinionResult = {
    goods: {
      temperature,
      ece: {
        tilesBefore: reliability(before.conf, before.correct).ece,
        tilesAfter: relAfter.ece,
        goodsTilesBefore: reliability(gBefore.conf, gBefore.correct).ece,
        goodsTilesAfter: reliability(gAfter.conf, gAfter.correct).ece,
      },
      reliabilityAfter: relAfter.bins,
      segment: { ...segmentFit, pairs: segX.length, eceBefore: segmentEceBefore, eceAfter: segmentRel.ece, reliabilityAfter: segmentRel.bins },
    },
    ood: {
      imageThreshold,
      embeddingThreshold,
      scanShare,
      validation: { tileRate: round6(valShares.tileRate), scanRate: round6(scanRate(valShares.perScan)), scanShareP99: round6(scanShareP99) },
      checks,
    },
    threats: threatResult,
  };

  if (o.write) {
    const fitInfo = {
      tool: 'scanline fit-opinion',
      fitSeeds: seedsOf(fitSet),
      validationSeeds: seedsOf(valSet),
      fitTiles: fitSet.count,
      validationTiles: valSet.count,
    };
    writeManifest(goods, {
      calibration: {
        temperature,
        segment: { slope: segmentFit.slope, intercept: segmentFit.intercept },
        maxProbability: 0.99,
        fit: { ...fitInfo, ece: result.goods.ece, reliabilityAfter: relAfter.bins, segment: result.goods.segment },
      },
      outOfDistribution: {
        ...rawStats,
        imageThreshold,
        embeddingThreshold,
        scanShare,
        minTiles,
        fit: { ...fitInfo, tileQuantile: q, validation: result.ood.validation, checks: checks.map(({ dir: _dir, ...c }) => c) },
      },
    });
    if (threats && threatPatch?.calibration) {
      writeManifest(threats, { ...threatPatch, calibration: { ...threatPatch.calibration, fit: { ...fitInfo, ...threatPatch.calibration.fit } } });
    }
  }
  return result;
}

function seedsOf(ds: Dataset): [number, number] {
  const seeds = ds.index.scans.map((s) => s.seed);
  return [Math.min(...seeds), Math.max(...seeds)];
}

function writeManifest(model: LoadedModel, add: Partial<ModelManifest>): void {
  const path = join(model.dir, 'model.json');
  const m = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  const { training, ...rest } = m;
  // Fitted sections sit before `training`, which stays last.
  writeFileSync(path, `${JSON.stringify({ ...rest, ...add, ...(training === undefined ? {} : { training }) }, null, 2)}\n`);
}
