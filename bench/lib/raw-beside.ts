/**
 * Inference bench, part 2 (a''): what raw ONNX Runtime gets done beside ingest. The gateway's throughput at
 * saturation (a') shares the CPU with ingest and stitching; on a 2-core machine that alone keeps it far below raw
 * ONNX Runtime on an idle machine, whatever the batcher and workers cost. This measures raw ONNX Runtime under the
 * very same ingest load, so the ratio (a') / (a'') is what the gateway's own serving path (batcher, transfers,
 * normalisation on the worker, result handling, the results on the event loop) costs when the CPU is contended.
 *
 * How: `threads` worker threads (bench/lib/raw-beside-worker.ts), as many as the gateway has inference workers and
 * with the same scheduling (SCHED_IDLE or niceness) and intra-op threads, each running pairs of batches (goods + threats, `batchSize` tiles)
 * back to back, while `runGateway` drives the same paced portals against an ingest-only gateway (inference off)
 * and measures its window; pairs finished inside that window count.
 */
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { createNormalizer, packTile, type LoadedModel } from '../../src/inference/index.js';
import type { GatewayRunResult } from './infer-gateway.js';
import type { RawBesideModel, RawBesideWorkerData } from './raw-beside-worker.js';
import type { TileSet } from './infer-raw.js';

export interface RawBesideSettings {
  threads: number;
  intraOpThreads: number;
  nice: number;
  /** As inference.workerSchedIdle. */
  schedIdle: boolean;
  batchSize: number;
}

export interface RawBesideResult {
  settings: RawBesideSettings;
  /** Tiles through both models per second inside the ingest run's window. */
  tilesPerS: number;
  /** The ingest-only gateway run it ran beside. */
  ingest: GatewayRunResult;
}

interface PairMessage {
  type: 'pair';
  at: number;
  tiles: number;
}

/** The same raw threads with nothing beside them: what they do on an idle machine, the ceiling's denominator. */
export interface RawAloneResult {
  settings: RawBesideSettings;
  tilesPerS: number;
  windowS: number;
}

/** A measured window, as GatewayRunResult has it (epoch ms from performance.timeOrigin + now()). */
interface TimedWindow {
  window: { startedAt: number; endedAt: number };
  windowS: number;
}

/** Runs raw ONNX Runtime in worker threads for as long as `during` takes, and counts the tiles done in its window. */
export async function measureRawBeside(
  models: readonly LoadedModel[],
  tiles: TileSet,
  settings: RawBesideSettings,
  during: () => Promise<GatewayRunResult>,
): Promise<RawBesideResult> {
  const { tilesPerS, window } = await measureRawThreads(models, tiles, settings, during);
  return { settings, tilesPerS, ingest: window };
}

/**
 * The raw threads of measureRawBeside with nothing beside them: `warmupMs`, then `durationMs` counted. With the
 * same settings as (a''), (a'') / this is what ingest leaves to inference on these cores.
 */
export async function measureRawAlone(
  models: readonly LoadedModel[],
  tiles: TileSet,
  settings: RawBesideSettings,
  warmupMs: number,
  durationMs: number,
): Promise<RawAloneResult> {
  const now = (): number => performance.timeOrigin + performance.now();
  const idle = async (): Promise<TimedWindow> => {
    await new Promise((resolve) => setTimeout(resolve, warmupMs));
    const startedAt = now();
    await new Promise((resolve) => setTimeout(resolve, durationMs));
    const endedAt = now();
    return { window: { startedAt, endedAt }, windowS: (endedAt - startedAt) / 1000 };
  };
  const { tilesPerS, window } = await measureRawThreads(models, tiles, settings, idle);
  return { settings, tilesPerS, windowS: window.windowS };
}

async function measureRawThreads<W extends TimedWindow>(
  models: readonly LoadedModel[],
  tiles: TileSet,
  settings: RawBesideSettings,
  during: () => Promise<W>,
): Promise<{ tilesPerS: number; window: W }> {
  const specModels: RawBesideModel[] = models.map((model) => {
    const m = model.manifest;
    const norm = createNormalizer(m.input);
    const batch = new Float32Array(settings.batchSize * norm.tileFloats);
    for (let i = 0; i < settings.batchSize; i++) packTile(batch, i * norm.tileFloats, tiles.tiles[i % tiles.tiles.length], norm);
    return { path: model.files.fp32, inputName: m.input.name, tileDims: m.input.shape.slice(1), outputNames: m.outputs.map((o) => o.name), batch };
  });
  const data: RawBesideWorkerData = {
    models: specModels,
    batchSize: settings.batchSize,
    intraOpThreads: settings.intraOpThreads,
    nice: settings.nice,
    schedIdle: settings.schedIdle,
  };
  const pairs: PairMessage[] = [];
  const workers: Worker[] = [];
  const stopped: Array<Promise<void>> = [];
  const ready: Array<Promise<void>> = [];
  for (let i = 0; i < settings.threads; i++) {
    const w = new Worker(new URL('./raw-beside-worker.js', import.meta.url), { workerData: data });
    workers.push(w);
    ready.push(
      new Promise((resolve, reject) => {
        w.on('message', (m: { type: string; message?: string }) => {
          if (m.type === 'ready') resolve();
          else if (m.type === 'pair') pairs.push(m as PairMessage);
          else if (m.type === 'error') reject(new Error(`raw worker: ${m.message}`));
        });
        w.once('error', reject);
      }),
    );
    stopped.push(new Promise((resolve) => w.once('exit', () => resolve())));
  }
  try {
    await Promise.all(ready);
    const window = await during();
    const inWindow = pairs.filter((p) => p.at >= window.window.startedAt && p.at <= window.window.endedAt);
    const done = inWindow.reduce((n, p) => n + p.tiles, 0);
    return { tilesPerS: done / window.windowS, window };
  } finally {
    for (const w of workers) w.postMessage({ type: 'stop' });
    const timeout = new Promise<void>((resolve) => setTimeout(resolve, 10_000).unref());
    await Promise.race([Promise.all(stopped), timeout]);
    for (const w of workers) await w.terminate();
  }
}
