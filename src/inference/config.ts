/**
 * The `inference` configuration section: one schema with every range, default, unit and description. The gateway's
 * configuration embeds it (`inference.*`); `resolveInferenceConfig` validates and freezes it for standalone use
 * (tests, benchmarks).
 */
import { availableParallelism } from 'node:os';
import { ScanlineError } from '../errors/index.js';
import { deepFreeze, defaultsOf, literalUnion, type RefineContext, SchemaValidator, type Static, Type, withDefaults } from '../schema/index.js';

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
export const BatchingConfigSchema = Type.Object(
  {
    maxBatchSize: Type.Integer({
      minimum: 1,
      maximum: 1024,
      default: 32,
      unit: 'tiles',
      description: 'Largest batch sent to the backend. Every size 1..maxBatchSize is warmed up before ready.',
    }),
    preferredBatchSizes: Type.Array(Type.Integer({ minimum: 1, maximum: 1024 }), {
      uniqueItems: true,
      default: [8, 16],
      unit: 'tiles',
      expected: 'an array of distinct integers 1..1024',
      description: 'Batch sizes sent as soon as they can be formed (largest first); each at most maxBatchSize. May be empty.',
    }),
    maxQueueDelayMicros: Type.Integer({
      minimum: 0,
      maximum: 10_000_000,
      default: 2_000,
      unit: 'µs',
      description: 'How long the oldest queued tile may wait for a batch to fill before a partial batch is sent.',
    }),
    idleDispatch: Type.Boolean({
      default: true,
      description:
        'When no batch of the model is in flight, send what is queued at once instead of waiting for a preferred size or the queue delay, ' +
        'split evenly over the free dispatch slots (maxInFlightBatches): at low load waiting only adds latency, and on the CPU each slot is a ' +
        "worker with its share of the cores. Under load batches are in flight, so tiles wait and batch as configured. false = Triton's rule " +
        '(always wait up to maxQueueDelayMicros).',
    }),
    maxQueueTiles: Type.Integer({
      minimum: 1,
      maximum: 1 << 20,
      default: 4_096,
      unit: 'tiles',
      description: 'Queued tiles per model (both priorities, not counting tiles in flight); 4096 x 32 KiB = 128 MiB of queued tiles at most.',
    }),
    queueFullPolicy: literalUnion(QUEUE_FULL_POLICIES, {
      default: 'shed-oldest-reanalysis',
      description:
        'What happens to a tile submitted while its queue holds maxQueueTiles. reject-newest: the new tile is rejected ' +
        '(SCANLINE_ERR_INFER_QUEUE_FULL), whatever its priority. shed-oldest-reanalysis: a new live tile evicts the oldest queued ' +
        're-analysis tile (which fails with SCANLINE_ERR_INFER_SHED); with none queued, or for a new re-analysis tile, it is rejected. ' +
        'Queued live tiles are never evicted.',
    }),
    maxInFlightBatches: Type.Integer({
      minimum: 1,
      maximum: 256,
      default: 2,
      unit: 'batches',
      description: 'Batches of one model dispatched and not yet answered; more than one keeps the device busy.',
    }),
    defaultDeadlineMs: Type.Object(
      {
        live: Type.Integer({ minimum: 1, maximum: 3_600_000, default: 5_000, unit: 'ms', description: 'Deadline of a live tile, from submit.' }),
        reanalysis: Type.Integer({
          minimum: 1,
          maximum: 86_400_000,
          default: 120_000,
          unit: 'ms',
          description: 'Deadline of a re-analysis tile, from submit.',
        }),
      },
      {
        additionalProperties: false,
        default: {},
        description: 'Deadline of a tile that does not bring its own; a tile not batched by then expires.',
      },
    ),
  },
  { additionalProperties: false, default: {}, description: "Dynamic batching, applied per model (in the spirit of Triton's dynamic batcher)." },
);

export const InferenceConfigSchema = Type.Object(
  {
    enabled: Type.Boolean({
      default: true,
      description: 'Run the models on live scans. false = an ingest-only gateway (scans are stored, no results; /readyz does not wait for models).',
    }),
    modelsDir: Type.String({
      default: '',
      expected: 'a directory path or "" (default)',
      description: "Directory with one folder per model (each with model.json); '' = the models folder of the installed package.",
    }),
    models: Type.Array(Type.String({ minLength: 1 }), {
      uniqueItems: true,
      default: [],
      expected: 'an array of distinct model names',
      description: 'Model names (manifest `name`) to load; empty = every model found in modelsDir.',
    }),
    executionProviders: Type.Array(literalUnion(EXECUTION_PROVIDERS), {
      minItems: 1,
      uniqueItems: true,
      default: ['tensorrt', 'cuda', 'cpu'],
      expected: `a non-empty array of distinct providers from ${EXECUTION_PROVIDERS.join(', ')}`,
      description:
        'Execution providers in order of preference. Each model takes the first that opens it and survives warm-up; providers this ' +
        'onnxruntime-node build does not list are skipped; why each was passed over is logged.',
    }),
    deviceId: Type.Integer({ minimum: 0, maximum: 63, default: 0, description: 'GPU ordinal for GPU providers.' }),
    preferFp16OnGpu: Type.Boolean({
      default: true,
      description: "Load the manifest's fp16 file on GPU providers when it has one (the CPU always gets fp32).",
    }),
    workers: Type.Integer({
      minimum: 1,
      maximum: 64,
      default: 2,
      unit: 'workers',
      description:
        'Worker threads, each holding one ONNX Runtime session per model. Two workers keep two batches (usually one per model) running ' +
        'at once with no barrier between them: on the CPU an intra-op barrier waits for its slowest thread, so one preempted thread stalls ' +
        "the whole batch (bench/RESULTS.md, 'Two inference workers'); on a single GPU, two sessions overlap one batch's host work with " +
        "the other's kernels.",
    }),
    intraOpThreads: Type.Integer({
      minimum: 0,
      maximum: 256,
      default: 0,
      unit: 'threads',
      expected: 'an integer 0..256 (0 = auto)',
      description: 'ONNX Runtime intra-op threads per worker; 0 = auto: max(1, floor(available CPUs / workers)).',
    }),
    allowSpinning: Type.Boolean({
      default: false,
      description:
        "Let ONNX Runtime's intra-op threads spin between runs. Spinning shaves a little latency but burns CPU the event loop, ingest and " +
        "stitching need (bench/RESULTS.md, 'ONNX Runtime spinning'), so it is off by default.",
    }),
    workerNice: Type.Integer({
      minimum: 0,
      maximum: 19,
      default: 10,
      description:
        'Scheduling niceness of the worker threads (and the ONNX Runtime threads they start); Linux only. On a busy CPU the event loop ' +
        '(ingest, operators) then wins over inference, which only loses throughput. 0 = as the main thread.',
    }),
    workerSchedIdle: Type.Boolean({
      default: true,
      description:
        "Run the worker threads (and the ONNX Runtime threads they start) under Linux's SCHED_IDLE policy: they get a CPU only when no " +
        'normal thread wants one, so the event loop never waits for an inference thread to be preempted. Where it cannot be applied (not ' +
        'Linux, no native addon, the kernel refuses) workerNice applies instead, with a warning. false = workerNice only.',
    }),
    batchTimeoutMs: Type.Integer({
      minimum: 100,
      maximum: 600_000,
      default: 30_000,
      unit: 'ms',
      description: 'A batch not answered within this time marks its worker as hung: it is terminated and replaced.',
    }),
    ortLogLevel: literalUnion(ORT_LOG_LEVELS, {
      default: 'fatal',
      description:
        "ONNX Runtime's own log level (it writes unstructured lines to stderr). The gateway logs provider choices and errors itself, so " +
        "the default keeps ONNX Runtime quiet; 'error' or 'warning' show its detail (e.g. which CUDA library failed to load).",
    }),
    batching: BatchingConfigSchema,
  },
  { additionalProperties: false, default: {}, description: 'Models, execution providers, worker threads and dynamic batching.' },
);

export type BatchingConfig = Static<typeof BatchingConfigSchema>;
export type InferenceConfig = Static<typeof InferenceConfigSchema>;

export const DEFAULT_INFERENCE_CONFIG: Readonly<InferenceConfig> = deepFreeze(defaultsOf(InferenceConfigSchema));

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K] };
export type InferenceConfigInput = DeepPartial<InferenceConfig>;

/** Rules across the section's keys; `ctx` is positioned at the section. */
export function refineInferenceConfig(c: InferenceConfig, ctx: RefineContext): void {
  const b = c.batching;
  if (ctx.ok('batching.maxBatchSize', 'batching.preferredBatchSizes') && b.preferredBatchSizes.some((size) => size > b.maxBatchSize)) {
    ctx.fail('batching.preferredBatchSizes', `an array of distinct integers 1..${b.maxBatchSize} (batching.maxBatchSize)`, b.preferredBatchSizes);
  }
}

const inferenceValidator = new SchemaValidator(InferenceConfigSchema, {
  unknownKey: (path) => `Unknown configuration key ${path}`,
  refine: (c, ctx) => {
    if (typeof c.batching === 'object' && c.batching !== null) refineInferenceConfig(c, ctx);
  },
});

/**
 * Every problem with an inference section, each as "Expected X for inference.key but received V of type T";
 * empty when valid. `prefix` names the section in messages.
 */
export function validateInferenceConfig(c: unknown, prefix = 'inference'): string[] {
  return inferenceValidator.problems(c, prefix);
}

/**
 * Defaults merged with `input` (objects recursively, arrays replaced), validated and deeply frozen. Throws
 * SCANLINE_ERR_CONFIG_INVALID listing every problem (unknown keys included). A complete, already validated
 * config (the gateway's `config.inference`) passes through unchanged in content.
 */
export function resolveInferenceConfig(input: InferenceConfigInput = {}): InferenceConfig {
  const merged = withDefaults(InferenceConfigSchema, input);
  const problems = validateInferenceConfig(merged);
  if (problems.length > 0) {
    throw new ScanlineError('SCANLINE_ERR_CONFIG_INVALID', `invalid inference configuration:\n  - ${problems.join('\n  - ')}`, { problems });
  }
  return deepFreeze(merged as InferenceConfig);
}

/** The intra-op thread count a worker gets: the configured one, or for 0 max(1, floor(CPUs / workers)). */
export function effectiveIntraOpThreads(c: Pick<InferenceConfig, 'intraOpThreads' | 'workers'>): number {
  return c.intraOpThreads > 0 ? c.intraOpThreads : Math.max(1, Math.floor(availableParallelism() / c.workers));
}
