/**
 * One bench run: start a gateway path in this process, fork the load generator, measure the gateway process over
 * the load generator's measured window, tear everything down (the data directory included).
 */
import { cpus } from 'node:os';
import { PerformanceObserver, performance, type EventLoopUtilization } from 'node:perf_hooks';
import type { IngestStats } from '../../src/ingest/index.js';
import { RawWriter } from '../../src/storage/index.js';
import { PATH_LABEL, startBenchGateway, type GatewayPath } from './gateways.js';
import type { LoadCounters, LoadMode } from './load-protocol.js';
import { loadPlan, runLoadWindow } from './load-window.js';
import {
  machineCpu,
  machineCpuPercent,
  mainThreadSchedStat,
  otherLoad,
  processCpu,
  threadCpu,
  threadCpuPercent,
  type MachineCpu,
  type OtherLoad,
  type ProcessCpu,
  type SchedStat,
  type ThreadCpu,
} from './machine.js';
import type { TruckMeta } from './truck.js';

export interface RunSpec {
  path: GatewayPath;
  portals: number;
  mode: LoadMode;
  warmupMs: number;
  durationMs: number;
  lineRateHz: number;
  window: number;
  linesPerFrame: number;
  /** Parent of the gateway's data directory; null = os.tmpdir(). */
  dataParent: string | null;
  /** Appended to the path label (e.g. "data on tmpfs"). */
  variant: string | null;
  /** Paced: how much a portal buffers before it loses lines, milliseconds of lines. */
  portalBufferMs: number;
  /**
   * Diagnostic only: RawWriter.write (the raw archive's file writes) is replaced by a no-op for this run, to show
   * what the archive costs. Not a valid gateway configuration.
   */
  skipArchiveWrites: boolean;
}

export interface RunResult {
  spec: RunSpec;
  label: string;
  /** Throughput seen by the portals: image frames whose ack arrived in the window. */
  slicesPerS: number;
  linesPerS: number;
  /** Payload megabytes (1e6 B, headers excluded) per second. */
  mbPerS: number;
  /**
   * Paced runs: lines/s the schedule asked for, and achieved: of the lines acquired from the window start until one
   * portal buffer before its end, the fraction acked by the end of the window.
   */
  offeredLinesPerS: number | null;
  achievedFraction: number | null;
  maxBacklogLines: number | null;
  /** Paced: lines the portals lost because their buffer overflowed, and that as a fraction of offered. */
  linesDropped: number | null;
  droppedFraction: number | null;
  scansCompleted: number;
  scansAborted: number;
  /** Errors the portals received, by code (whole run), plus gateway-side errors counted in the window. */
  errors: Record<string, number>;
  errorCount: number;
  unexpectedCloses: number;
  ackLatencyMs: LoadCounters['ackLatencyMs'];
  gateway: {
    /** Whole gateway process, all threads, % of one core. */
    cpuPercent: number;
    /** Per thread name, % of one core ('main' = the JS thread; libuv pool: stitch jobs and file writes). */
    threads: Record<string, number>;
    /** Event-loop utilisation of the JS thread, 0..1. */
    elu: number;
    /** Time the JS thread was runnable but waiting for a CPU (run-queue delay), % of the window. */
    mainWaitPercent: number | null;
    /** Main-thread GC pauses, ms per second of window. */
    gcMsPerS: number;
    /** Stitcher jobs: count per second and busy seconds per second (from job start to resolve). */
    stitchJobsPerS: number;
    stitchBusyPerS: number;
    /** Raw lines archived to disk, MB/s. */
    diskMbPerS: number;
    rssMiB: number;
    /** Milliseconds of CPU per payload megabyte ingested. */
    cpuMsPerMb: number;
  };
  loadgenCpuPercent: number;
  /** Whole machine, % of all CPUs busy (and the steal part), over the gateway's view of the window. */
  machineBusyPercent: number | null;
  machineStealPercent: number | null;
  /** CPU used by the rest of the machine during the window: a busy neighbour makes the run unrepresentative. */
  otherLoad: OtherLoad;
  /**
   * % of one core used by neither the gateway, the load generator nor kernel threads: other processes, including
   * short-lived ones that /proc did not show at either end of the window (compilers, test runs).
   */
  foreignPercent: number | null;
  /** Attempts made for this result (the bench repeats runs spoiled by other load); set by the caller. */
  attempts: number;
  windowS: number;
}

export function labelOf(spec: RunSpec): string {
  return spec.variant ? `${PATH_LABEL[spec.path]}, ${spec.variant}` : PATH_LABEL[spec.path];
}

/** The plain number counters of IngestStats (its maps and histograms are not snapshotted). */
type StatNumbers = { [K in keyof IngestStats as IngestStats[K] extends number ? K : never]: number };

function snapshotStats(s: IngestStats): { n: StatNumbers; errors: Map<string, number> } {
  const { errorsByCode, ...n } = s;
  return { n: { ...n }, errors: new Map(errorsByCode) };
}

interface Snapshot {
  t: number;
  cpu: NodeJS.CpuUsage;
  elu: EventLoopUtilization;
  threads: ThreadCpu;
  sched: SchedStat | null;
  machine: MachineCpu | null;
  processes: ProcessCpu;
  stats: ReturnType<typeof snapshotStats>;
  gcMs: number;
}

export async function runOnce(spec: RunSpec, truckFile: string, truck: TruckMeta, timeoutMs = 60_000): Promise<RunResult> {
  return withArchiveWrites(!spec.skipArchiveWrites, () => measure(spec, truckFile, truck, timeoutMs));
}

/**
 * Runs `fn` with the raw archive's file writes on or, for `false`, replaced by a no-op (a bench-only patch of
 * RawWriter.prototype.write: the archiver still copies and counts every line), restoring them afterwards.
 */
export async function withArchiveWrites<T>(on: boolean, fn: () => Promise<T>): Promise<T> {
  const realWrite = RawWriter.prototype.write;
  if (!on) RawWriter.prototype.write = () => Promise.resolve();
  try {
    return await fn();
  } finally {
    RawWriter.prototype.write = realWrite;
  }
}

async function measure(spec: RunSpec, truckFile: string, truck: TruckMeta, timeoutMs: number): Promise<RunResult> {
  const gw = await startBenchGateway(spec.path, spec.dataParent ?? undefined);
  let gcMs = 0;
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcMs += e.duration;
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  const snap = (): Snapshot => ({
    t: performance.now(),
    cpu: process.cpuUsage(),
    elu: performance.eventLoopUtilization(),
    threads: threadCpu(),
    sched: mainThreadSchedStat(),
    machine: machineCpu(),
    processes: processCpu(),
    stats: snapshotStats(gw.ingest.stats),
    gcMs,
  });
  try {
    const plan = loadPlan(spec, gw.portalUrl, truckFile, truck.detector, gw.portalCredentials(spec.portals));
    const measured = await runLoadWindow(plan, timeoutMs, `run ${labelOf(spec)} x${spec.portals} ${spec.mode}`, { onStart: snap, onEnd: snap });
    const exclude = new Set([process.pid, measured.childPid]);
    return summarise(spec, measured.start, measured.end, measured.counters, process.memoryUsage().rss, exclude);
  } finally {
    gcObserver.disconnect();
    await gw.dispose();
  }
}

function summarise(spec: RunSpec, a: Snapshot, b: Snapshot, c: LoadCounters, rss: number, exclude: ReadonlySet<number>): RunResult {
  const gwSeconds = (b.t - a.t) / 1000;
  const s = c.windowMs / 1000;
  const cpuSeconds = (b.cpu.user - a.cpu.user + b.cpu.system - a.cpu.system) / 1e6;
  const d = (k: keyof StatNumbers) => b.stats.n[k] - a.stats.n[k];
  const errors: Record<string, number> = { ...c.errorsByCode };
  // Gateway-side counts are the same errors seen from the other end; keep the larger of the two per code.
  for (const [code, n] of b.stats.errors) {
    const delta = n - (a.stats.errors.get(code) ?? 0);
    if (delta > (errors[code] ?? 0)) errors[code] = delta;
  }
  const errorCount = Object.values(errors).reduce((x, y) => x + y, 0);
  const mb = c.payloadBytesAcked / 1e6;
  const other = otherLoad(a.processes, b.processes, exclude, gwSeconds);
  const busy = machineCpuPercent(a.machine, b.machine)?.busy ?? null;
  const gwCpu = (cpuSeconds / gwSeconds) * 100;
  return {
    spec,
    label: labelOf(spec),
    slicesPerS: c.slicesAcked / s,
    linesPerS: c.linesAcked / s,
    mbPerS: mb / s,
    offeredLinesPerS: spec.mode === 'paced' ? c.linesOffered / s : null,
    achievedFraction: spec.mode === 'paced' && c.linesDueSettled > 0 ? c.linesDeliveredSettled / c.linesDueSettled : null,
    maxBacklogLines: spec.mode === 'paced' ? c.maxBacklogLines : null,
    linesDropped: spec.mode === 'paced' ? c.linesDropped : null,
    droppedFraction: spec.mode === 'paced' && c.linesOffered > 0 ? c.linesDropped / c.linesOffered : null,
    scansCompleted: c.scansCompleted,
    scansAborted: c.scansAborted,
    errors,
    errorCount,
    unexpectedCloses: c.unexpectedCloses,
    ackLatencyMs: c.ackLatencyMs,
    gateway: {
      cpuPercent: gwCpu,
      threads: threadCpuPercent(a.threads, b.threads, gwSeconds),
      elu: performance.eventLoopUtilization(b.elu, a.elu).utilization,
      mainWaitPercent: a.sched && b.sched ? ((b.sched.waitNs - a.sched.waitNs) / 1e9 / gwSeconds) * 100 : null,
      gcMsPerS: (b.gcMs - a.gcMs) / gwSeconds,
      stitchJobsPerS: d('stitchJobs') / gwSeconds,
      stitchBusyPerS: d('stitchSeconds') / gwSeconds,
      diskMbPerS: d('storageBytes') / 1e6 / gwSeconds,
      rssMiB: rss / 2 ** 20,
      cpuMsPerMb: mb > 0 ? ((cpuSeconds * 1000) / mb) * (s / gwSeconds) : NaN,
    },
    loadgenCpuPercent: c.cpuPercent,
    machineBusyPercent: machineCpuPercent(a.machine, b.machine)?.busy ?? null,
    machineStealPercent: machineCpuPercent(a.machine, b.machine)?.steal ?? null,
    otherLoad: other,
    foreignPercent: busy === null ? null : Math.max(other.processesPercent, busy * cpus().length - gwCpu - c.cpuPercent - other.kernelPercent),
    attempts: 1,
    windowS: s,
  };
}
