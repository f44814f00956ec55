/**
 * Inference bench, parts 2 and 3: the real gateway (src/main.ts startGateway: uWS, native stitcher, ingest, results,
 * inference with real models in worker threads) in this process, fed by simulated portals in a forked child
 * (bench/lib/load-portals.ts, the ingest bench's load generator), with every tile's result timed.
 *
 * Per tile and model, the ResultsService's `tileResult` listener gives the result (batch size) and the exact
 * line-to-result latency (tile's last line received at the gateway → result applied), the value its
 * `lineToResult` histogram buckets. Outcome counts (ok / rejected / expired / failed) are the ResultsService's
 * per-model counters; queue depth is sampled from Inference.status() every QUEUE_SAMPLE_MS; event-loop delay
 * comes from perf_hooks.monitorEventLoopDelay over the measured window.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { resolveConfig, type GatewayConfigInput } from '../../src/config/index.js';
import type { TileResult } from '../../src/inference/index.js';
import { silentLogger } from '../../src/log/index.js';
import { startGateway, type Gateway } from '../../src/main.js';
import { benchPortalCredentials } from './gateways.js';
import type { LoadCounters } from './load-protocol.js';
import { loadPlan, runLoadWindow } from './load-window.js';
import { machineCpu, machineCpuPercent, mainThreadSchedStat, otherLoad, processCpu, type OtherLoad } from './machine.js';
import type { TruckMeta } from './truck.js';

/**
 * Batching under test: the configured default, or one tile per batch; 'off' = inference disabled (an ingest-only
 * gateway: the event-loop baseline of the same portals without inference).
 */
export type BatchingMode = 'default' | 'batch-1' | 'off';

export const BATCH_1 = Object.freeze({ maxBatchSize: 1, preferredBatchSizes: [] as number[] });

const QUEUE_SAMPLE_MS = 20;
/** monitorEventLoopDelay resolution, ms; its samples are timer intervals, so this much is subtracted from each. */
export const ELD_RESOLUTION_MS = 1;

export interface GatewayRunSpec {
  batching: BatchingMode;
  portals: number;
  mode: 'max' | 'paced';
  lineRateHz: number;
  warmupMs: number;
  durationMs: number;
  linesPerFrame: number;
  window: number;
  portalBufferMs: number;
  /** Paced: portals start their line clocks spread over this many ms (independent portals are not in phase). */
  startSpreadMs: number;
}

export interface LatencySummary {
  samples: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

export interface ModelWindow {
  model: string;
  /** ResultsService counters over the window. */
  submitted: number;
  ok: number;
  rejected: number;
  expired: number;
  failed: number;
  okPerS: number;
  /** Results applied in the window, by the size of the batch they ran in. */
  batchSizes: Record<number, number>;
  meanBatchSize: number;
  /** Line-to-result of the results applied in the window, ms. */
  latencyMs: LatencySummary;
  /** Live tiles queued for this model: at the window start, at its end, the most seen (sampled). */
  queue: { start: number; end: number; max: number };
}

export interface EventLoopDelay {
  /** Timer lateness (sample minus the resolution), ms. */
  p50: number;
  p99: number;
  max: number;
  mean: number;
  samples: number;
}

export interface GatewayRunResult {
  spec: GatewayRunSpec;
  windowS: number;
  /** The measured window, ms since the epoch (performance.timeOrigin + performance.now(): comparable across threads). */
  window: { startedAt: number; endedAt: number };
  tilesProducedPerS: number;
  models: ModelWindow[];
  /** Both models' latencies together, ms. */
  latencyMs: LatencySummary;
  eventLoopDelayMs: EventLoopDelay;
  elu: number;
  /** Run-queue wait of the gateway's JS thread (/proc schedstat), % of the window: no core was free for it. */
  jsThreadWaitPercent: number | null;
  /** Gateway process (all threads), % of one core. */
  gatewayCpuPercent: number;
  loadgenCpuPercent: number;
  machineBusyPercent: number | null;
  otherLoad: OtherLoad;
  /** % of one core used by neither the gateway, the load generator nor kernel threads. */
  foreignPercent: number | null;
  load: Pick<LoadCounters, 'linesAcked' | 'linesOffered' | 'linesDropped' | 'scansCompleted' | 'scansAborted' | 'errorsByCode' | 'unexpectedCloses'> & {
    achievedFraction: number | null;
  };
  attempts: number;
}

export function percentile(sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * (sorted.length - 1)))];
}

export function summarise(values: number[]): LatencySummary {
  const s = Float64Array.from(values).sort();
  return { samples: s.length, p50: percentile(s, 0.5), p90: percentile(s, 0.9), p99: percentile(s, 0.99), max: s.length > 0 ? s[s.length - 1] : NaN };
}

/** Event-loop delay over a window: enable at the start, read at the end. */
export function eventLoopMonitor(): { stop(): EventLoopDelay } {
  const h = monitorEventLoopDelay({ resolution: ELD_RESOLUTION_MS });
  h.enable();
  return {
    stop() {
      h.disable();
      const ms = (ns: number) => Math.max(0, ns / 1e6 - ELD_RESOLUTION_MS);
      return { p50: ms(h.percentile(50)), p99: ms(h.percentile(99)), max: ms(h.max), mean: ms(h.mean), samples: h.count };
    },
  };
}

export interface GatewayRunContext {
  modelsDir: string;
  /** The models the gateway loads (inference.models): those the bench measures. */
  models: string[];
  truckFile: string;
  truck: TruckMeta;
}

async function startInferGateway(modelsDir: string, models: string[], batching: BatchingMode): Promise<{ gateway: Gateway; dataDir: string }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'scanline-bench-infer-'));
  const input: GatewayConfigInput = {
    server: { host: '127.0.0.1', port: 0 },
    storage: { dataDir },
    log: { level: 'silent' },
    // Portals disconnect mid-scan at the end of a run: abort those scans at once.
    portal: { resumeGraceMs: 0 },
    inference: { modelsDir, models, enabled: batching !== 'off', ...(batching === 'batch-1' ? { batching: { ...BATCH_1 } } : {}) },
  };
  try {
    const gateway = await startGateway(resolveConfig(input), { log: silentLogger() });
    if (batching !== 'off' && (!gateway.results || !gateway.inference || gateway.inference.models.length === 0)) {
      await gateway.close(0);
      throw new Error(`no models loaded from ${modelsDir}`);
    }
    return { gateway, dataDir };
  } catch (err) {
    rmSync(dataDir, { recursive: true, force: true });
    throw err;
  }
}

interface Snap {
  t: number;
  cpu: NodeJS.CpuUsage;
  elu: ReturnType<typeof performance.eventLoopUtilization>;
  machine: ReturnType<typeof machineCpu>;
  processes: ReturnType<typeof processCpu>;
  sched: ReturnType<typeof mainThreadSchedStat>;
  counters: Map<string, Record<string, number>>;
  tilesProduced: number;
}

export async function runGateway(spec: GatewayRunSpec, ctx: GatewayRunContext, timeoutMs: number): Promise<GatewayRunResult> {
  const { gateway, dataDir } = await startInferGateway(ctx.modelsDir, ctx.models, spec.batching);
  const results = gateway.results;
  const inference = gateway.inference;
  const names = results ? [...results.stats.models.keys()] : [];
  let measuring = false;
  const latencies = new Map<string, number[]>(names.map((n) => [n, []]));
  const sizes = new Map<string, Map<number, number>>(names.map((n) => [n, new Map()]));
  const removeListener = results?.addListener({
    tileResult(r: TileResult, seconds: number) {
      if (!measuring) return;
      latencies.get(r.model)?.push(seconds * 1000);
      const m = sizes.get(r.model);
      if (m) m.set(r.batchSize, (m.get(r.batchSize) ?? 0) + 1);
    },
  });
  const queued = (n: string) => inference?.status().models[n]?.queued.live ?? 0;
  const queue = new Map(names.map((n) => [n, { start: 0, end: 0, max: 0 }]));
  const sampler = setInterval(() => {
    if (!measuring) return;
    for (const n of names) {
      const q = queue.get(n)!;
      q.max = Math.max(q.max, queued(n));
    }
  }, QUEUE_SAMPLE_MS);
  const snap = (): Snap => ({
    t: performance.now(),
    cpu: process.cpuUsage(),
    elu: performance.eventLoopUtilization(),
    machine: machineCpu(),
    processes: processCpu(),
    sched: mainThreadSchedStat(),
    counters: new Map([...(results?.stats.models ?? [])].map(([k, v]) => [k, { ...v }])),
    tilesProduced: results?.stats.tilesProduced ?? 0,
  });
  try {
    const plan = loadPlan(spec, gateway.portalUrl, ctx.truckFile, ctx.truck.detector, benchPortalCredentials(gateway.identity, spec.portals));
    let eld: ReturnType<typeof eventLoopMonitor> | null = null;
    const measured = await runLoadWindow(plan, timeoutMs, `latency x${spec.portals}`, {
      onStart: () => {
        for (const n of names) queue.get(n)!.start = queue.get(n)!.max = queued(n);
        measuring = true;
        eld = eventLoopMonitor();
        return snap();
      },
      onEnd: () => {
        measuring = false;
        const end = snap();
        const delay: EventLoopDelay = eld!.stop();
        for (const n of names) queue.get(n)!.end = queued(n);
        return { snap: end, delay };
      },
    });
    const a = measured.start;
    const b = measured.end.snap;
    const delay = measured.end.delay;
    const c = measured.counters;
    const seconds = (b.t - a.t) / 1000;
    const models: ModelWindow[] = names.map((n) => {
      const d = (k: string) => (b.counters.get(n)?.[k] ?? 0) - (a.counters.get(n)?.[k] ?? 0);
      const bs = sizes.get(n)!;
      let tiles = 0;
      let sum = 0;
      for (const [size, count] of bs) {
        tiles += count;
        sum += size * count;
      }
      return {
        model: n,
        submitted: d('submitted'),
        ok: d('ok'),
        rejected: d('rejected'),
        expired: d('expired'),
        failed: d('failed'),
        okPerS: d('ok') / seconds,
        batchSizes: Object.fromEntries([...bs].sort((x, y) => x[0] - y[0])),
        meanBatchSize: tiles > 0 ? sum / tiles : NaN,
        latencyMs: summarise(latencies.get(n)!),
        queue: queue.get(n)!,
      };
    });
    const cpuSeconds = (b.cpu.user - a.cpu.user + b.cpu.system - a.cpu.system) / 1e6;
    const gwCpu = (cpuSeconds / seconds) * 100;
    const other = otherLoad(a.processes, b.processes, new Set([process.pid, measured.childPid]), seconds);
    const busy = machineCpuPercent(a.machine, b.machine)?.busy ?? null;
    return {
      spec,
      windowS: seconds,
      window: { startedAt: performance.timeOrigin + a.t, endedAt: performance.timeOrigin + b.t },
      tilesProducedPerS: (b.tilesProduced - a.tilesProduced) / seconds,
      models,
      latencyMs: summarise([...latencies.values()].flat()),
      eventLoopDelayMs: delay,
      elu: performance.eventLoopUtilization(b.elu, a.elu).utilization,
      jsThreadWaitPercent: a.sched && b.sched ? ((b.sched.waitNs - a.sched.waitNs) / 1e9 / seconds) * 100 : null,
      gatewayCpuPercent: gwCpu,
      loadgenCpuPercent: c.cpuPercent,
      machineBusyPercent: busy,
      otherLoad: other,
      foreignPercent: busy === null ? null : Math.max(other.processesPercent, busy * cpus().length - gwCpu - c.cpuPercent - other.kernelPercent),
      load: {
        linesAcked: c.linesAcked,
        linesOffered: c.linesOffered,
        linesDropped: c.linesDropped,
        scansCompleted: c.scansCompleted,
        scansAborted: c.scansAborted,
        errorsByCode: c.errorsByCode,
        unexpectedCloses: c.unexpectedCloses,
        achievedFraction: spec.mode === 'paced' && c.linesDueSettled > 0 ? c.linesDeliveredSettled / c.linesDueSettled : null,
      },
      attempts: 1,
    };
  } finally {
    measuring = false;
    clearInterval(sampler);
    removeListener?.();
    await gateway.close(1_000);
    rmSync(dataDir, { recursive: true, force: true });
  }
}
