/**
 * Inference bench, saturation without portals: createInference() (the gateway's batcher + ONNX Runtime worker
 * thread, default configuration) in this process, fed with real stitcher tiles straight through submit(), each tile
 * to every model as the ResultsService does, keeping `outstanding` tiles per model submitted and not yet answered
 * (enough to keep every batch full, few enough that none is rejected or expires). No ingest, no stitching, no
 * portals compete for the CPU, so the gap to raw ONNX Runtime is the batcher's and the worker's own overhead
 * (packing, transfer to the worker, normalisation there, result handling). It also measures how much the event loop
 * is delayed while batches run, against the time of one batch (eventLoopP99PerBatch).
 */
import { performance } from 'node:perf_hooks';
import { DEFAULT_CONFIG } from '../../src/config/index.js';
import { createInference, type Inference, type InferenceConfigInput, type TileResult } from '../../src/inference/index.js';
import { silentLogger } from '../../src/log/index.js';
import { eventLoopMonitor, summarise, type EventLoopDelay, type LatencySummary } from './infer-gateway.js';
import type { TileSet } from './infer-raw.js';
import { otherLoad, processCpu, type OtherLoad } from './machine.js';

export interface DirectModelWindow {
  model: string;
  ok: number;
  rejected: number;
  expired: number;
  failed: number;
  okPerS: number;
  batchSizes: Record<number, number>;
  meanBatchSize: number;
  /** submit → result, ms (queueing included: `outstanding` tiles wait their turn). */
  submitToResultMs: LatencySummary;
  /** Batches the worker ran in the window, and their mean compute time (session.run on the worker), ms. */
  batches: number;
  batchComputeMs: number;
}

export interface DirectRunResult {
  outstanding: number;
  portals: number;
  windowS: number;
  models: DirectModelWindow[];
  eventLoopDelayMs: EventLoopDelay;
  /**
   * Event-loop delay p99 over the mean compute time of a batch (all models' batches in the window): the baseline is
   * the batch itself, since a batch run on the JS thread would delay it by about one batch (ratio ~1). Batches on the
   * worker thread keep it far below that.
   */
  eventLoopP99PerBatch: number;
  /** Mean compute time of a batch over every model's batches in the window, ms. */
  batchComputeMs: number;
  elu: number;
  /** This process (event loop + inference worker + ONNX Runtime threads), % of one core. */
  cpuPercent: number;
  /** Other processes on the machine during the window. */
  otherLoad: OtherLoad;
}

/** Cumulative batch compute time (seconds) and batch count of each model so far. */
function computeOf(inference: Inference, names: string[]): Map<string, { sum: number; count: number }> {
  return new Map(
    names.map((n) => {
      const h = inference.stats.models.get(n)?.computeSeconds;
      return [n, { sum: h?.sum ?? 0, count: h?.count ?? 0 }];
    }),
  );
}

export async function runDirect(
  config: InferenceConfigInput,
  tiles: TileSet,
  opts: { warmupMs: number; durationMs: number; outstanding: number; portals: number },
): Promise<DirectRunResult> {
  // As the gateway creates it: the workers also read each goods tile's image statistics (out-of-distribution scoring).
  const inference = await createInference({ config, log: silentLogger(), imageFeatures: { attenuationMax: DEFAULT_CONFIG.stitch.attenuationMax } });
  const names = inference.models.map((m) => m.name);
  let measuring = false;
  let stopping = false;
  const sizes = new Map<string, Map<number, number>>(names.map((n) => [n, new Map()]));
  const latencies = new Map<string, number[]>(names.map((n) => [n, []]));
  const outcomes = new Map(names.map((n) => [n, { ok: 0, rejected: 0, expired: 0, failed: 0 }]));
  let next = 0;
  const feed = (model: string): void => {
    if (stopping) return;
    const i = next++;
    const data = tiles.tiles[i % tiles.tiles.length];
    const submittedAt = performance.now();
    inference.submit({ model, scanId: 'bench-direct', portalId: `bench-portal-${i % opts.portals}`, data, priority: 'live' }).then(
      (r: TileResult) => {
        if (measuring) {
          outcomes.get(model)!.ok++;
          latencies.get(model)!.push(performance.now() - submittedAt);
          const m = sizes.get(model)!;
          m.set(r.batchSize, (m.get(r.batchSize) ?? 0) + 1);
        }
        feed(model);
      },
      (err: { code?: string }) => {
        if (measuring) {
          const o = outcomes.get(model)!;
          if (err.code === 'SCANLINE_ERR_INFER_DEADLINE') o.expired++;
          else if (err.code === 'SCANLINE_ERR_INFER_QUEUE_FULL' || err.code === 'SCANLINE_ERR_INFER_CLOSED') o.rejected++;
          else o.failed++;
        }
        feed(model);
      },
    );
  };
  try {
    for (let k = 0; k < opts.outstanding; k++) for (const n of names) feed(n);
    await new Promise((resolve) => setTimeout(resolve, opts.warmupMs));
    // Counted: outcomes that arrive inside the window (the pipeline is full before it starts); rate = ok / window.
    const compute0 = computeOf(inference, names);
    const eld = eventLoopMonitor();
    const elu0 = performance.eventLoopUtilization();
    const cpu0 = process.cpuUsage();
    const p0 = processCpu();
    const t0 = performance.now();
    measuring = true;
    await new Promise((resolve) => setTimeout(resolve, opts.durationMs));
    measuring = false;
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const elu = performance.eventLoopUtilization(elu0).utilization;
    const delay = eld.stop();
    const compute1 = computeOf(inference, names);
    stopping = true;
    const models: DirectModelWindow[] = names.map((n) => {
      const o = outcomes.get(n)!;
      const batches = compute1.get(n)!.count - compute0.get(n)!.count;
      const computeSeconds = compute1.get(n)!.sum - compute0.get(n)!.sum;
      let t = 0;
      let sum = 0;
      for (const [size, count] of sizes.get(n)!) {
        t += count;
        sum += size * count;
      }
      return {
        model: n,
        ...o,
        okPerS: o.ok / seconds,
        batchSizes: Object.fromEntries([...sizes.get(n)!].sort((x, y) => x[0] - y[0])),
        meanBatchSize: t > 0 ? sum / t : NaN,
        submitToResultMs: summarise(latencies.get(n)!),
        batches,
        batchComputeMs: batches > 0 ? (computeSeconds * 1000) / batches : NaN,
      };
    });
    const allBatches = models.reduce((sum, m) => sum + m.batches, 0);
    const batchComputeMs = allBatches > 0 ? models.reduce((sum, m) => sum + m.batchComputeMs * m.batches, 0) / allBatches : NaN;
    return {
      outstanding: opts.outstanding,
      portals: opts.portals,
      windowS: seconds,
      models,
      eventLoopDelayMs: delay,
      eventLoopP99PerBatch: delay.p99 / batchComputeMs,
      batchComputeMs,
      elu,
      cpuPercent: ((cpu.user + cpu.system) / 1e6 / seconds) * 100,
      otherLoad: otherLoad(p0, processCpu(), new Set([process.pid]), seconds),
    };
  } finally {
    stopping = true;
    await inference.close({ drainTimeoutMs: 5_000 });
  }
}
