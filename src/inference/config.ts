/**
 * The `inference` configuration section: defaults with units, and a validator that lists every problem in the
 * shared "Expected X for name but received V" shape. The gateway's config stage embeds this section
 * (`inference.*`); `resolveInferenceConfig` validates and freezes it for standalone use (tests, benchmarks).
 */
import { availableParallelism } from 'node:os';
import { deepFreeze, mergeLayer } from '../config/layers.js';
import { ScanlineError } from '../errors/index.js';

/** Execution providers the onnxruntime-node binding can be asked for, fastest first. */
export const EXECUTION_PROVIDERS = ['tensorrt', 'cuda', 'webgpu', 'cpu'] as const;
export type ExecutionProviderName = (typeof EXECUTION_PROVIDERS)[number];
/** Providers that run on a GPU: the manifest's fp16 file is preferred on them (`preferFp16OnGpu`). */
export const GPU_EXECUTION_PROVIDERS: ReadonlySet<ExecutionProviderName> = new Set(['tensorrt', 'cuda', 'webgpu']);

export const TILE_PRIORITIES = ['live', 'reanalysis'] as const;
/** live: a truck in the portal now; reanalysis: stored scans run again (new model, audit). Live always goes first. */
export type TilePriority = (typeof TILE_PRIORITIES)[number];

export const QUEUE_FULL_POLICIES = ['reject-newest', 'shed-oldest-reanalysis'] as const;
/**
 * What happens to a tile submitted while its model's queue holds `maxQueueTiles`:
 * - `reject-newest`: the new tile is rejected (SCANLINE_ERR_INFER_QUEUE_FULL), whatever its priority.
 * - `shed-oldest-reanalysis`: a new live tile evicts the oldest queued re-analysis tile (which fails with
 *   SCANLINE_ERR_INFER_SHED); with no re-analysis tile queued, or for a new re-analysis tile, it is rejected.
 * Queued live tiles are never evicted under either policy.
 */
export type QueueFullPolicy = (typeof QUEUE_FULL_POLICIES)[number];

export const ORT_LOG_LEVELS = ['verbose', 'info', 'warning', 'error', 'fatal'] as const;
export type OrtLogLevel = (typeof ORT_LOG_LEVELS)[number];

/** Dynamic batching, applied per model (in the spirit of Triton's dynamic batcher). */
export interface BatchingConfig {
  /** Largest batch sent to the backend, tiles. Every size 1..maxBatchSize is warmed up before ready. */
  maxBatchSize: number;
  /** Batch sizes sent as soon as they can be formed (largest first), tiles; each <= maxBatchSize. May be empty. */
  preferredBatchSizes: number[];
  /** How long the oldest queued tile may wait for a batch to fill before a partial batch is sent, microseconds. */
  maxQueueDelayMicros: number;
  /**
   * When no batch of the model is in flight, send what is queued at once instead of waiting for a preferred size or
   * the queue delay, split evenly over the free dispatch slots (maxInFlightBatches): at low load waiting only adds
   * latency, and on the CPU each slot is a worker with its share of the cores. Under load batches are in flight,
   * so tiles wait and batch as configured. false = Triton's rule (always wait up to maxQueueDelayMicros).
   */
  idleDispatch: boolean;
  /** Queued tiles per model (both priorities, not counting tiles in flight), tiles. */
  maxQueueTiles: number;
  queueFullPolicy: QueueFullPolicy;
  /** Batches of one model dispatched and not yet answered, batches; more than one keeps the device busy. */
  maxInFlightBatches: number;
  /** Deadline of a tile that does not bring its own, milliseconds from submit; a tile not batched by then expires. */
  defaultDeadlineMs: { live: number; reanalysis: number };
}

export interface InferenceConfig {
  /**
   * Run the models on live scans. false = an ingest-only gateway (scans are stored, no results; /readyz does not
   * wait for models).
   */
  enabled: boolean;
  /** Directory with one folder per model (each with model.json); '' = `<package root>/models`. */
  modelsDir: string;
  /** Model names (manifest `name`) to load; empty = every model found in modelsDir. */
  models: string[];
  /**
   * Execution providers in order of preference. Each model takes the first that opens it and survives warm-up;
   * providers this onnxruntime-node build does not list are skipped; why each was passed over is logged.
   */
  executionProviders: ExecutionProviderName[];
  /** GPU ordinal for GPU providers. */
  deviceId: number;
  /** Load the manifest's fp16 file on GPU providers when it has one (the CPU always gets fp32). */
  preferFp16OnGpu: boolean;
  /**
   * Worker threads, each holding one ONNX Runtime session per model, workers. Default 2: two workers keep two
   * batches (usually one per model) running at once with no barrier between them. On the CPU, two workers with
   * half the intra-op threads each scored 1.00-1.13x raw ONNX Runtime against 0.79-0.84x for one worker with all of
   * them (bench:infer, 2 cores), and 1.38x as many tiles/s when ingest shared the cores: an intra-op barrier waits
   * for its slowest thread, so one preempted thread stalls the whole batch. On a single GPU, two sessions overlap
   * one batch's host work with the other's kernels.
   */
  workers: number;
  /** ONNX Runtime intra-op threads per worker, threads; 0 = auto: max(1, floor(available CPUs / workers)). */
  intraOpThreads: number;
  /**
   * Let ONNX Runtime's intra-op threads spin between runs. Spinning shaves a little latency but burns CPU the
   * event loop, ingest and stitching need (measured 5x CPU time on 2 cores), so it is off by default.
   */
  allowSpinning: boolean;
  /**
   * Scheduling niceness of the worker threads (and the ONNX Runtime threads they start), 0..19; Linux only. On a
   * busy CPU the event loop (ingest, operators) then wins over inference, which only loses throughput. 0 = as the
   * main thread.
   */
  workerNice: number;
  /**
   * Run the worker threads (and the ONNX Runtime threads they start) under Linux's SCHED_IDLE policy: they get a CPU
   * only when no normal thread wants one, so the event loop never waits for an inference thread to be preempted (at
   * 32 portals on 2 cores, event-loop p99 4.8 -> 4.0 ms; throughput the same). Where it cannot be applied (not Linux,
   * no native addon, the kernel refuses) workerNice applies instead, with a warning. false = workerNice only. On a
   * busy CPU both make inference give way; SCHED_IDLE gives way at once, niceness after up to a scheduler slice.
   */
  workerSchedIdle: boolean;
  /** A batch not answered within this time marks its worker as hung: it is terminated and replaced, ms. */
  batchTimeoutMs: number;
  /**
   * ONNX Runtime's own log level (it writes unstructured lines to stderr). The gateway logs provider choices and
   * errors itself, so the default keeps ONNX Runtime quiet; 'error' or 'warning' show its detail (e.g. which CUDA
   * library failed to load).
   */
  ortLogLevel: OrtLogLevel;
  batching: BatchingConfig;
}

export const DEFAULT_INFERENCE_CONFIG: InferenceConfig = {
  enabled: true,
  modelsDir: '', // '' = <package root>/models
  models: [], // all found
  executionProviders: ['tensorrt', 'cuda', 'cpu'],
  deviceId: 0,
  preferFp16OnGpu: true,
  workers: 2, // workers
  intraOpThreads: 0, // threads per worker; 0 = auto
  allowSpinning: false,
  workerNice: 10, // 0..19
  workerSchedIdle: true,
  batchTimeoutMs: 30_000, // ms
  ortLogLevel: 'fatal',
  batching: {
    maxBatchSize: 32, // tiles
    preferredBatchSizes: [8, 16], // tiles
    maxQueueDelayMicros: 2_000, // µs
    idleDispatch: true,
    maxQueueTiles: 4_096, // tiles per model; 4096 x 32 KiB = 128 MiB of queued tiles at most
    queueFullPolicy: 'shed-oldest-reanalysis',
    maxInFlightBatches: 2, // batches per model
    defaultDeadlineMs: { live: 5_000, reanalysis: 120_000 }, // ms from submit
  },
};

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K] };
export type InferenceConfigInput = DeepPartial<InferenceConfig>;

function describe(v: unknown): string {
  let s: string | undefined;
  try {
    s = JSON.stringify(v);
  } catch {
    s = undefined;
  }
  return `${s === undefined ? String(v) : s} of type ${Array.isArray(v) ? 'array' : typeof v}`;
}

function int(v: unknown, min: number, max: number): v is number {
  return Number.isInteger(v) && (v as number) >= min && (v as number) <= max;
}

/**
 * Every problem with an inference section, each as "Expected X for inference.key but received V of type T";
 * empty when valid. `prefix` names the section in messages.
 */
export function validateInferenceConfig(c: InferenceConfig, prefix = 'inference'): string[] {
  const p: string[] = [];
  const check = (ok: boolean, expected: string, name: string, value: unknown): void => {
    if (!ok) p.push(`Expected ${expected} for ${prefix}.${name} but received ${describe(value)}`);
  };
  if (typeof c !== 'object' || c === null) return [`Expected an object for ${prefix} but received ${describe(c)}`];
  check(typeof c.enabled === 'boolean', 'a boolean', 'enabled', c.enabled);
  check(typeof c.modelsDir === 'string', 'a directory path or "" (default)', 'modelsDir', c.modelsDir);
  check(
    Array.isArray(c.models) && c.models.every((m) => typeof m === 'string' && m.length > 0) && new Set(c.models).size === c.models.length,
    'an array of distinct model names',
    'models',
    c.models,
  );
  const eps = c.executionProviders;
  check(
    Array.isArray(eps) && eps.length > 0 && eps.every((e) => (EXECUTION_PROVIDERS as readonly string[]).includes(e)) && new Set(eps).size === eps.length,
    `a non-empty array of distinct providers from ${EXECUTION_PROVIDERS.join(', ')}`,
    'executionProviders',
    eps,
  );
  check(int(c.deviceId, 0, 63), 'an integer 0..63', 'deviceId', c.deviceId);
  check(typeof c.preferFp16OnGpu === 'boolean', 'a boolean', 'preferFp16OnGpu', c.preferFp16OnGpu);
  check(int(c.workers, 1, 64), 'an integer 1..64', 'workers', c.workers);
  check(int(c.intraOpThreads, 0, 256), 'an integer 0..256 (0 = auto)', 'intraOpThreads', c.intraOpThreads);
  check(typeof c.allowSpinning === 'boolean', 'a boolean', 'allowSpinning', c.allowSpinning);
  check(int(c.workerNice, 0, 19), 'an integer 0..19', 'workerNice', c.workerNice);
  check(typeof c.workerSchedIdle === 'boolean', 'a boolean', 'workerSchedIdle', c.workerSchedIdle);
  check(int(c.batchTimeoutMs, 100, 600_000), 'an integer 100..600000', 'batchTimeoutMs', c.batchTimeoutMs);
  check((ORT_LOG_LEVELS as readonly string[]).includes(c.ortLogLevel), `one of ${ORT_LOG_LEVELS.join(', ')}`, 'ortLogLevel', c.ortLogLevel);
  const b = c.batching;
  if (typeof b !== 'object' || b === null) {
    check(false, 'an object', 'batching', b);
    return p;
  }
  check(int(b.maxBatchSize, 1, 1024), 'an integer 1..1024', 'batching.maxBatchSize', b.maxBatchSize);
  const max = int(b.maxBatchSize, 1, 1024) ? b.maxBatchSize : 1024;
  check(
    Array.isArray(b.preferredBatchSizes) &&
      b.preferredBatchSizes.every((s) => int(s, 1, max)) &&
      new Set(b.preferredBatchSizes).size === b.preferredBatchSizes.length,
    `an array of distinct integers 1..${max} (batching.maxBatchSize)`,
    'batching.preferredBatchSizes',
    b.preferredBatchSizes,
  );
  check(int(b.maxQueueDelayMicros, 0, 10_000_000), 'an integer 0..10000000', 'batching.maxQueueDelayMicros', b.maxQueueDelayMicros);
  check(typeof b.idleDispatch === 'boolean', 'a boolean', 'batching.idleDispatch', b.idleDispatch);
  check(int(b.maxQueueTiles, 1, 1 << 20), 'an integer 1..1048576', 'batching.maxQueueTiles', b.maxQueueTiles);
  check(
    (QUEUE_FULL_POLICIES as readonly string[]).includes(b.queueFullPolicy),
    `one of ${QUEUE_FULL_POLICIES.join(', ')}`,
    'batching.queueFullPolicy',
    b.queueFullPolicy,
  );
  check(int(b.maxInFlightBatches, 1, 256), 'an integer 1..256', 'batching.maxInFlightBatches', b.maxInFlightBatches);
  const d = b.defaultDeadlineMs;
  check(int(d?.live, 1, 3_600_000), 'an integer 1..3600000', 'batching.defaultDeadlineMs.live', d?.live);
  check(int(d?.reanalysis, 1, 86_400_000), 'an integer 1..86400000', 'batching.defaultDeadlineMs.reanalysis', d?.reanalysis);
  return p;
}

/**
 * Defaults merged with `input` (objects recursively, arrays replaced), validated and deeply frozen. Throws
 * SCANLINE_ERR_CONFIG_INVALID listing every problem (unknown keys included). A complete, already validated
 * config (the gateway's `config.inference`) passes through unchanged in content.
 */
export function resolveInferenceConfig(input: InferenceConfigInput = {}): InferenceConfig {
  const unknown: string[] = [];
  const merged = mergeLayer(structuredClone(DEFAULT_INFERENCE_CONFIG), input, 'inference', unknown) as InferenceConfig;
  const problems = [...unknown.map((k) => `Unknown configuration key ${k}`), ...validateInferenceConfig(merged)];
  if (problems.length > 0) {
    throw new ScanlineError('SCANLINE_ERR_CONFIG_INVALID', `invalid inference configuration:\n  - ${problems.join('\n  - ')}`, { problems });
  }
  return deepFreeze(merged);
}

/** The intra-op thread count a worker gets: the configured one, or for 0 max(1, floor(CPUs / workers)). */
export function effectiveIntraOpThreads(c: Pick<InferenceConfig, 'intraOpThreads' | 'workers'>): number {
  return c.intraOpThreads > 0 ? c.intraOpThreads : Math.max(1, Math.floor(availableParallelism() / c.workers));
}
