/**
 * One run of the metrics bench: a gateway (src/main.ts startGateway, uWS + native stitcher, inference off so
 * ingest is what is measured) with metrics on or off, the forked load generator of the ingest bench
 * (bench/lib/load-portals.ts) streaming one rendered truck from N portals, and, with metrics on, a scraper in its
 * own process (bench/lib/metrics-scraper.ts) that GETs /metrics over HTTP at a fixed interval for the whole measured
 * window, as Prometheus would (more often). The two arms differ only in `metrics.enabled` and the scraper.
 *
 * Besides throughput, each run records what else moves the gateway's cost per MB on a shared 2-core machine: CPU
 * used by other processes during the window (a run with more than CONTAMINATION_PERCENT is flagged and repeated by
 * the caller), and the stitcher's lines per job (fewer lines per job means more per-job work per MB, whatever the
 * cause).
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { resolveConfig } from '../../src/config/index.js';
import type { IngestStats } from '../../src/ingest/index.js';
import { silentLogger } from '../../src/log/index.js';
import { startGateway, type Gateway } from '../../src/main.js';
import { benchPortalCredentials, benchProgramToken } from './gateways.js';
import { withArchiveWrites } from './run.js';
import type { LoadCounters, LoadMode } from './load-protocol.js';
import { loadPlan, runLoadWindow } from './load-window.js';
import { machineCpu, machineCpuPercent, otherLoad, processCpu, threadCpu, threadCpuPercent, type OtherLoad } from './machine.js';
import type { ScraperChildMessage, ScraperParentMessage, ScraperPlan, ScraperResult } from './metrics-scraper.js';
import type { TruckMeta } from './truck.js';

const SCRAPER = fileURLToPath(new URL('./metrics-scraper.js', import.meta.url));

/** Other processes using more than this (% of one core) during a run make it unrepresentative. */
export const CONTAMINATION_PERCENT = 10;
/** Lines a paced portal holds while the gateway does not take them: 2 s of its line rate. */
const PORTAL_BUFFER_MS = 2000;

export interface MetricsRunSpec {
  metrics: boolean;
  portals: number;
  mode: LoadMode;
  warmupMs: number;
  durationMs: number;
  lineRateHz: number;
  window: number;
  linesPerFrame: number;
  /** With metrics on: one GET /metrics every scrapeIntervalMs during the measured window. */
  scrapeIntervalMs: number;
  /** Where the gateway's data directory (SQLite + raw archive files) is made; default os.tmpdir(). */
  dataParent?: string;
  /**
   * Resolve raw archive writes at once instead of writing (RawWriter.write, as bench:ingest's diagnostic run does);
   * scan records, archive files, their fsync and every counter stay. See bench/metrics.bench.ts for why.
   */
  skipArchiveWrites?: boolean;
}

export interface ScrapeTimes {
  /** HTTP GET /metrics, request sent to body read, measured in the scraper process, ms (sorted). */
  httpMs: number[];
  /** registry render time inside the gateway for the same scrapes, ms (sorted). */
  renderMs: number[];
  bytes: number;
  series: number;
  /** The scraper process's CPU over the window, % of one core (not part of the gateway's CPU). */
  scraperCpuPercent: number;
}

export interface MetricsRunResult {
  spec: MetricsRunSpec;
  slicesPerS: number;
  mbPerS: number;
  errors: number;
  counters: LoadCounters;
  /** Gateway process CPU over the window, % of one core (all threads). */
  cpuPercent: number;
  /** Gateway CPU per MB of payload acked, ms. */
  cpuMsPerMb: number;
  /** The gateway's JS thread CPU over the window, % of one core. */
  mainThreadPercent: number;
  /** Lines per stitcher job over the window. */
  linesPerStitchJob: number;
  /** CPU used during the window by processes other than the bench, its load generator and scraper, % of one core. */
  foreignPercent: number;
  otherLoad: OtherLoad;
  /** Attempts made for this result (the caller repeats contaminated runs). */
  attempts: number;
  scrapes: ScrapeTimes | null;
}

export function isContaminated(r: MetricsRunResult): boolean {
  return r.foreignPercent > CONTAMINATION_PERCENT;
}

interface Snapshot {
  t: number;
  cpu: NodeJS.CpuUsage;
  threads: ReturnType<typeof threadCpu>;
  machine: ReturnType<typeof machineCpu>;
  processes: ReturnType<typeof processCpu>;
  stitchJobs: number;
  linesReceived: number;
}

function snapshot(stats: IngestStats): Snapshot {
  return {
    t: performance.now(),
    cpu: process.cpuUsage(),
    threads: threadCpu(),
    machine: machineCpu(),
    processes: processCpu(),
    stitchJobs: stats.stitchJobs,
    linesReceived: stats.linesReceived,
  };
}

/** A scraper process, started before the load so its start-up is not in the window. */
class Scraper {
  private readonly child;
  private readonly ready: Promise<void>;
  private readonly done: Promise<ScraperResult>;

  constructor(url: string, intervalMs: number, token: string) {
    const plan: ScraperPlan = { url, intervalMs, token };
    this.child = fork(SCRAPER, [JSON.stringify(plan)], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let onReady!: () => void;
    this.ready = new Promise<void>((resolve) => (onReady = resolve));
    this.done = new Promise<ScraperResult>((resolve, reject) => {
      this.child.on('message', (m: ScraperChildMessage) => {
        if (m.type === 'ready') onReady();
        else if (m.type === 'done') resolve(m.result);
        else if (m.type === 'failed') reject(new Error(`metrics scraper failed: ${m.message}`));
      });
      this.child.on('exit', (code, signal) => reject(new Error(`metrics scraper exited (code ${code}, signal ${signal}) before reporting`)));
    });
    this.done.catch(() => undefined); // observed by result()
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  whenReady(): Promise<void> {
    return Promise.race([this.ready, this.done.then(() => undefined)]);
  }

  send(m: ScraperParentMessage): void {
    if (this.child.connected) this.child.send(m);
  }

  result(): Promise<ScraperResult> {
    return this.done;
  }

  kill(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

export async function runMetricsOnce(spec: MetricsRunSpec, truckFile: string, truck: TruckMeta, timeoutMs = 90_000): Promise<MetricsRunResult> {
  return withArchiveWrites(!spec.skipArchiveWrites, () => measure(spec, truckFile, truck, timeoutMs));
}

async function measure(spec: MetricsRunSpec, truckFile: string, truck: TruckMeta, timeoutMs: number): Promise<MetricsRunResult> {
  const { gateway, dispose } = await startBenchGateway(spec.metrics, spec.dataParent);
  const renderMs: number[] = [];
  let measuring = false;
  const metrics = gateway.metrics;
  // Time the registry's render inside the gateway (same scrapes): wraps render(), which the route calls.
  if (metrics) {
    const render = metrics.render.bind(metrics);
    (metrics as { render: () => Promise<string> }).render = async () => {
      const t = performance.now();
      const text = await render();
      if (measuring) renderMs.push(performance.now() - t);
      return text;
    };
  }
  const scraper = metrics
    ? new Scraper(
        `${gateway.httpUrl}/metrics`,
        spec.scrapeIntervalMs,
        benchProgramToken(gateway.identity, 'bench-prometheus', 'metrics', 'bench:metrics scraper'),
      )
    : null;
  try {
    await scraper?.whenReady();
    const measured = await runLoadWindow(
      loadPlan(
        { ...spec, portalBufferMs: PORTAL_BUFFER_MS },
        gateway.portalUrl,
        truckFile,
        truck.detector,
        benchPortalCredentials(gateway.identity, spec.portals),
      ),
      timeoutMs,
      `metrics ${spec.metrics ? 'on' : 'off'} x${spec.portals} ${spec.mode}`,
      {
        onStart: () => {
          measuring = true;
          scraper?.send({ type: 'start' });
          return snapshot(gateway.ingest.stats);
        },
        onEnd: () => {
          const s = snapshot(gateway.ingest.stats);
          measuring = false;
          scraper?.send({ type: 'stop' });
          return s;
        },
      },
    );
    const scraped = scraper ? await scraper.result() : null;
    const a = measured.start;
    const b = measured.end;
    const c = measured.counters;
    const s = c.windowMs / 1000;
    const gwSeconds = (b.t - a.t) / 1000;
    const cpuSeconds = (b.cpu.user - a.cpu.user + b.cpu.system - a.cpu.system) / 1e6;
    const gwCpu = (cpuSeconds / gwSeconds) * 100;
    const exclude = new Set([process.pid, measured.childPid, ...(scraper ? [scraper.pid] : [])]);
    const other = otherLoad(a.processes, b.processes, exclude, gwSeconds);
    const busy = machineCpuPercent(a.machine, b.machine)?.busy ?? null;
    const scraperCpu = scraped?.cpuPercent ?? 0;
    // As in bench:ingest: what the machine was busy with beyond the gateway, load generator and scraper (kernel
    // threads excluded: much of their work is the gateway's disk and network I/O), or the other processes seen.
    const foreign =
      busy === null ? other.processesPercent : Math.max(other.processesPercent, busy * cpus().length - gwCpu - c.cpuPercent - scraperCpu - other.kernelPercent);
    const mb = c.payloadBytesAcked / 1e6;
    const jobs = b.stitchJobs - a.stitchJobs;
    return {
      spec,
      slicesPerS: c.slicesAcked / s,
      mbPerS: mb / s,
      errors: Object.values(c.errorsByCode).reduce((x, y) => x + y, 0) + c.unexpectedCloses,
      counters: c,
      cpuPercent: gwCpu,
      cpuMsPerMb: mb > 0 ? ((cpuSeconds * 1000) / mb) * (s / gwSeconds) : Number.NaN,
      mainThreadPercent: threadCpuPercent(a.threads, b.threads, gwSeconds).main ?? 0,
      linesPerStitchJob: jobs > 0 ? (b.linesReceived - a.linesReceived) / jobs : Number.NaN,
      foreignPercent: Math.max(0, foreign),
      otherLoad: other,
      attempts: 1,
      scrapes: scraped
        ? {
            httpMs: [...scraped.httpMs].sort((x, y) => x - y),
            renderMs: renderMs.sort((x, y) => x - y),
            bytes: scraped.bytes,
            series: scraped.series,
            scraperCpuPercent: scraperCpu,
          }
        : null,
    };
  } finally {
    measuring = false;
    scraper?.kill();
    await dispose();
  }
}

/** The gateway under test, in this process, with its data directory in a fresh temp directory. */
async function startBenchGateway(metrics: boolean, dataParent = tmpdir()): Promise<{ gateway: Gateway; dispose: () => Promise<void> }> {
  const dataDir = mkdtempSync(join(dataParent, 'scanline-bench-metrics-'));
  const gateway = await startGateway(
    resolveConfig({
      server: { host: '127.0.0.1', port: 0 },
      storage: { dataDir },
      log: { level: 'silent' },
      inference: { enabled: false },
      metrics: { enabled: metrics },
      // The load generator disconnects mid-scan at the end of a run: abort those scans at once.
      portal: { resumeGraceMs: 0 },
    }),
    { log: silentLogger() },
  );
  return {
    gateway,
    dispose: async () => {
      await gateway.close(1_000);
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export interface IdleCost {
  /** Gateway CPU (all threads) per scrape, no load: uWS answering GET /metrics and the registry rendering it, ms. */
  cpuMsPerScrape: number;
  scrapes: number;
  /** Gateway CPU with no load, ms per second: metrics off, and metrics on but not scraped. */
  offMsPerS: number;
  onMsPerS: number;
  seconds: number;
}

/**
 * What metrics cost the gateway measured directly, as CPU time of its process with no load (so nothing else moves
 * it): a gateway that has served `spec.portals` portals for a moment (their series exist), then idles for `seconds`
 * not scraped and `seconds` scraped every 100 ms; and the same with metrics off. The idle difference is mostly the
 * event-loop delay monitor waking the idle loop every 10 ms, which costs less under load (the loop is awake anyway):
 * an upper bound.
 */
export async function measureIdleCost(spec: Omit<MetricsRunSpec, 'metrics'>, truckFile: string, truck: TruckMeta, seconds = 5): Promise<IdleCost> {
  const cpuOver = async (ms: number): Promise<number> => {
    const c = process.cpuUsage();
    await new Promise((r) => setTimeout(r, ms));
    const d = process.cpuUsage(c);
    return (d.user + d.system) / 1000;
  };
  const out: IdleCost = { cpuMsPerScrape: Number.NaN, scrapes: 0, offMsPerS: Number.NaN, onMsPerS: Number.NaN, seconds };
  for (const metrics of [false, true]) {
    const { gateway, dispose } = await startBenchGateway(metrics, spec.dataParent);
    const scraper = metrics
      ? new Scraper(`${gateway.httpUrl}/metrics`, 100, benchProgramToken(gateway.identity, 'bench-prometheus', 'metrics', 'bench:metrics scraper'))
      : null;
    try {
      await scraper?.whenReady();
      await runLoadWindow(
        loadPlan(
          { ...spec, mode: 'max', portalBufferMs: PORTAL_BUFFER_MS, warmupMs: 500, durationMs: 500 },
          gateway.portalUrl,
          truckFile,
          truck.detector,
          benchPortalCredentials(gateway.identity, spec.portals),
        ),
        30_000,
        `idle cost, metrics ${metrics ? 'on' : 'off'}`,
        { onStart: () => null, onEnd: () => null },
      );
      await new Promise((r) => setTimeout(r, 1_000)); // aborted scans closed out, files closed
      const idle = await cpuOver(seconds * 1000);
      if (!metrics || !scraper) {
        out.offMsPerS = idle / seconds;
        continue;
      }
      out.onMsPerS = idle / seconds;
      scraper.send({ type: 'start' });
      const scraped = await cpuOver(seconds * 1000);
      scraper.send({ type: 'stop' });
      out.scrapes = (await scraper.result()).httpMs.length;
      out.cpuMsPerScrape = (scraped - idle) / out.scrapes;
    } finally {
      scraper?.kill();
      await dispose();
    }
  }
  return out;
}

/** The q-quantile (0..1) of sorted values, nearest rank; NaN when empty. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export function median(values: readonly number[]): number {
  return quantile(
    [...values].sort((a, b) => a - b),
    0.5,
  );
}
