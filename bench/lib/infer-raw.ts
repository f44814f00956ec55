/**
 * Inference bench, part 1: what ONNX Runtime alone does with each model on this machine, and the real tiles every
 * other part feeds.
 *
 * Raw throughput: one onnxruntime-node InferenceSession per model, opened in the bench's own thread through
 * src/inference/ort.ts (the one module that loads onnxruntime-node) with the settings a gateway worker uses (fp32
 * file, CPU execution provider, every core as intra-op threads unless configured, spinning as configured). Inputs
 * are real stitcher tiles, normalised once with the manifest's normalisation, so only session.run() is timed (a
 * gateway worker also normalises each batch; that cost is part of what the end-to-end ratio charges the gateway).
 */
import { performance } from 'node:perf_hooks';
import { scanTruckTiles } from '../../tools/dataset/index.js';
import { createNormalizer, packTile, type InferenceConfig, type LoadedModel } from '../../src/inference/index.js';
import { createSession, setOrtLogLevel, ort } from '../../src/inference/ort.js';

export const RAW_BATCH_SIZES: readonly number[] = Object.freeze([1, 2, 4, 8, 16, 32, 64]);

export interface TileSet {
  /** Raw attenuation tiles as the stitcher emits them (what the gateway submits); read-only, may be shared. */
  tiles: Float32Array[];
  tileFloats: number;
  /** Truck seeds they come from. */
  seeds: number[];
  /** Detector pixels of the trucks. */
  pixels: number;
  /** Energies of the trucks' detector = channels of every tile (2: dual energy). */
  channels: number;
  /** Tiles the stitcher emitted per scan line, over every truck stitched. */
  tilesPerLine: number;
}

/** Stitches simulated trucks (seeds `firstSeed`, `firstSeed + 1`, ...) until `count` tiles are collected. */
export async function collectTiles(count: number, firstSeed: number, pixels: number): Promise<TileSet> {
  const tiles: Float32Array[] = [];
  const seeds: number[] = [];
  let tileFloats = 0;
  let lines = 0;
  let channels = 0;
  for (let seed = firstSeed; tiles.length < count; seed++) {
    seeds.push(seed);
    const truck = await scanTruckTiles(seed, { pixels }, (_truck, infos, buffer, tf) => {
      tileFloats = tf;
      for (const info of infos) tiles.push(buffer.slice(info.slot * tf, (info.slot + 1) * tf));
    });
    lines += truck.scene.totalLines;
    channels = truck.detector.energies;
    if (seeds.length > 50) throw new Error(`collected only ${tiles.length} tiles from ${seeds.length} trucks`);
  }
  return { tiles: tiles.slice(0, count), tileFloats, seeds, pixels, channels, tilesPerLine: tiles.length / lines };
}

export interface RawPoint {
  batchSize: number;
  /** Tiles per second over the timed runs (best of the passes). */
  tilesPerS: number;
  /** Median time of one session.run() of this batch size, ms (from the best pass). */
  runMsP50: number;
  runs: number;
  /** tiles/s of every pass, in order. */
  passes: number[];
}

export interface RawModelResult {
  model: string;
  task: string;
  version: string;
  file: string;
  points: RawPoint[];
  /** The best tiles/s over the batch sizes, and the batch size that gave it. */
  best: { tilesPerS: number; batchSize: number };
}

export interface RawSettings {
  provider: 'cpu';
  intraOpThreads: number;
  allowSpinning: boolean;
  /** Timed seconds per batch size per pass. */
  secondsPerPoint: number;
  passes: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)];
}

/**
 * Raw tiles/s of every model at every batch size. Passes run one after another over all batch sizes (so a short
 * burst of other load spoils one pass, not every pass of one size); the best pass per size is kept.
 */
export async function measureRaw(
  models: readonly LoadedModel[],
  config: Pick<InferenceConfig, 'allowSpinning' | 'ortLogLevel'>,
  intraOpThreads: number,
  tiles: TileSet,
  secondsPerPoint: number,
  passes: number,
  progress: (line: string) => void = () => undefined,
  sizes: readonly number[] = RAW_BATCH_SIZES,
): Promise<{ settings: RawSettings; models: RawModelResult[] }> {
  setOrtLogLevel(config.ortLogLevel);
  const settings: RawSettings = { provider: 'cpu', intraOpThreads, allowSpinning: config.allowSpinning, secondsPerPoint, passes };
  const out: RawModelResult[] = [];
  const maxBatch = Math.max(...sizes);
  for (const model of models) {
    const m = model.manifest;
    const session = await createSession(model.files.fp32, { provider: 'cpu', deviceId: 0, intraOpThreads, allowSpinning: config.allowSpinning });
    try {
      const norm = createNormalizer(m.input);
      const [, c, h, w] = m.input.shape;
      // 2 x maxBatch distinct normalised tiles, so consecutive runs do not see the very same input.
      const pool = new Float32Array(2 * maxBatch * norm.tileFloats);
      for (let i = 0; i < 2 * maxBatch; i++) packTile(pool, i * norm.tileFloats, tiles.tiles[i % tiles.tiles.length], norm);
      const outputNames = m.outputs.map((o) => o.name);
      const run = async (n: number, k: number): Promise<void> => {
        const at = (k % 2) * maxBatch * norm.tileFloats;
        const data = pool.subarray(at, at + n * norm.tileFloats);
        await session.run({ [m.input.name]: new ort.Tensor('float32', data, [n, c, h, w]) }, outputNames);
      };
      const points = new Map<number, RawPoint>();
      for (let pass = 0; pass < passes; pass++) {
        for (const n of sizes) {
          for (let k = 0; k < 3; k++) await run(n, k); // warm-up: first runs of a shape allocate
          const times: number[] = [];
          const t0 = performance.now();
          let t = t0;
          while (t - t0 < secondsPerPoint * 1000 || times.length < 5) {
            await run(n, times.length);
            const t1 = performance.now();
            times.push(t1 - t);
            t = t1;
          }
          const tilesPerS = (times.length * n) / ((t - t0) / 1000);
          const prev = points.get(n);
          const passesSoFar = [...(prev?.passes ?? []), tilesPerS];
          if (!prev || tilesPerS > prev.tilesPerS) points.set(n, { batchSize: n, tilesPerS, runMsP50: median(times), runs: times.length, passes: passesSoFar });
          else prev.passes = passesSoFar;
        }
        progress(`raw ${m.name} pass ${pass + 1}/${passes}: ${sizes.map((n) => `${n}:${Math.round(points.get(n)!.passes[pass])}`).join(' ')} tiles/s`);
      }
      const list = sizes.map((n) => points.get(n)!);
      const best = list.reduce((a, b) => (b.tilesPerS > a.tilesPerS ? b : a));
      out.push({
        model: m.name,
        task: m.task,
        version: m.version,
        file: model.files.fp32,
        points: list,
        best: { tilesPerS: best.tilesPerS, batchSize: best.batchSize },
      });
    } finally {
      await session.release();
    }
  }
  return { settings, models: out };
}

/**
 * Raw tiles/s of a model at any batch size: measured sizes as measured, others interpolated linearly in log2(size)
 * between the two measured neighbours (clamped at the ends).
 */
export function rawTilesPerS(points: readonly RawPoint[], batchSize: number): number {
  const sorted = [...points].sort((a, b) => a.batchSize - b.batchSize);
  if (batchSize <= sorted[0].batchSize) return sorted[0].tilesPerS;
  for (let i = 1; i < sorted.length; i++) {
    const hi = sorted[i];
    if (batchSize <= hi.batchSize) {
      const lo = sorted[i - 1];
      const f = (Math.log2(batchSize) - Math.log2(lo.batchSize)) / (Math.log2(hi.batchSize) - Math.log2(lo.batchSize));
      return lo.tilesPerS + f * (hi.tilesPerS - lo.tilesPerS);
    }
  }
  return sorted[sorted.length - 1].tilesPerS;
}

/**
 * Raw tiles/s of a model for a mix of batch sizes (one entry per tile: the size of the batch it ran in): the rate at
 * which ONNX Runtime alone would run the same tiles in the same batches, i.e. tiles / sum of per-tile raw times.
 */
export function rawTilesPerSForMix(points: readonly RawPoint[], batchSizeCounts: ReadonlyMap<number, number>): number {
  let tiles = 0;
  let seconds = 0;
  for (const [size, n] of batchSizeCounts) {
    tiles += n;
    seconds += n / rawTilesPerS(points, size);
  }
  return tiles > 0 ? tiles / seconds : NaN;
}

/** Tiles/s through both models one after the other (what one worker serving both does): 1 / (1/a + 1/b). */
export function combinedRate(a: number, b: number): number {
  return 1 / (1 / a + 1 / b);
}
