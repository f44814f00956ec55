/**
 * The inference stage's public door: model manifests and discovery, the dynamic batcher per model, and the
 * backend that runs batches (ONNX Runtime in worker threads by default).
 *
 * Lifecycle: createInference() loads and checks every model, starts the workers, warms up every batch size and
 * resolves when tiles can be submitted (ready) → close() stops accepting, drains queued and in-flight tiles, and
 * terminates the workers (closed).
 */
import { ScanlineError } from '../errors/index.js';
import { silentLogger, type Logger } from '../log/index.js';
import type { BackendStatus, InferenceBackend, ModelPrecision } from './backend.js';
import { DynamicBatcher, tileRequestProblem, type TileRequest, type TileResult } from './batcher.js';
import { resolveInferenceConfig, type InferenceConfig, type InferenceConfigInput } from './config.js';
import type { LoadedModel } from './manifest.js';
import type { ModelManifest, ModelTask } from './manifest-types.js';
import { OnnxWorkerBackend } from './onnx-worker-backend.js';
import { defaultModelsDir } from './paths.js';
import { discoverModels, selectModelFor } from './registry.js';
import { createInferenceStats, type InferenceStats } from './stats.js';

export type * from './manifest-types.js';
export type {
  BackendLoadOptions,
  BackendStatus,
  BackendWorkerStatus,
  BatchResult,
  InferenceBackend,
  InputNormalization,
  ModelPrecision,
  ModelRuntimeStatus,
  ProviderAttempt,
} from './backend.js';
export { DynamicBatcher, tileRequestProblem, type DynamicBatcherOptions, type TileRequest, type TileResult } from './batcher.js';
export {
  BatchingConfigSchema,
  DEFAULT_INFERENCE_CONFIG,
  EXECUTION_PROVIDERS,
  GPU_EXECUTION_PROVIDERS,
  QUEUE_FULL_POLICIES,
  TILE_PRIORITIES,
  effectiveIntraOpThreads,
  InferenceConfigSchema,
  refineInferenceConfig,
  resolveInferenceConfig,
  validateInferenceConfig,
  type BatchingConfig,
  type ExecutionProviderName,
  type InferenceConfig,
  type InferenceConfigInput,
  type OrtLogLevel,
  type QueueFullPolicy,
  type TilePriority,
} from './config.js';
export { MANIFEST_FILE, checkModelIo, checkTileGeometry, loadModel, validateManifest, type LoadedModel, type OnnxValueInfo } from './manifest.js';
export { createNormalizer, normalizeBatchInPlace, packTile, type Normalizer } from './normalize.js';
export { OnnxWorkerBackend, type OnnxWorkerBackendOptions } from './onnx-worker-backend.js';
export { defaultModelsDir } from './paths.js';
export { discoverModels, modelsForTask, selectModel, selectModelFor, type DiscoverOptions } from './registry.js';
export * from './stats.js';

export interface CreateInferenceOptions {
  /** The `inference` configuration section (defaults filled in; validated here). */
  config?: InferenceConfigInput | InferenceConfig;
  /** Overrides config.modelsDir; default `<package root>/models`. */
  modelsDir?: string;
  log?: Logger;
  /**
   * Runs the batches; default an OnnxWorkerBackend built from the config. A factory gets the resolved config, the
   * module logger and the stats (whose worker counters an OnnxWorkerBackend bumps). Closed by Inference.close().
   */
  backend?: InferenceBackend | ((ctx: BackendContext) => InferenceBackend);
  /**
   * Have the backend compute the image statistics of raw tiles for models with out-of-distribution statistics
   * (TileResult.imageFeatures), off the event loop, with the stitcher's attenuation clamp.
   */
  imageFeatures?: { attenuationMax: number };
}

export interface BackendContext {
  config: InferenceConfig;
  log: Logger;
  stats: InferenceStats;
}

export interface ModelServingStatus {
  task: ModelTask;
  version: string;
  /** Execution provider and precision serving the model (null until a worker is ready). */
  provider: string | null;
  precision: ModelPrecision | null;
  queued: { live: number; reanalysis: number };
  inFlightBatches: number;
}

export type InferencePhase = 'ready' | 'draining' | 'closed';

export interface InferenceStatus {
  /** For /readyz: models loaded and the backend can run batches. */
  ready: boolean;
  /** Why not ready, or why degraded; null when all is well. */
  reason: string | null;
  phase: InferencePhase;
  backend: BackendStatus;
  models: Record<string, ModelServingStatus>;
}

export interface Inference {
  /** Manifests of the loaded models, sorted by name (frozen). */
  readonly models: readonly Readonly<ModelManifest>[];
  /** Counters read at scrape time. */
  readonly stats: InferenceStats;
  readonly config: Readonly<InferenceConfig>;
  /**
   * The loaded model serving a task for tiles of `channels` energies (default 2: dual energy; 1: a single-energy
   * portal), first by name when several fit, or undefined when none reads that many channels.
   */
  modelFor(task: ModelTask, channels?: number): Readonly<ModelManifest> | undefined;
  /**
   * Queues one tile for a model; resolves with its outputs. Rejects with a ScanlineError, never throws:
   * SCANLINE_ERR_INFER_UNKNOWN_MODEL / _BAD_TILE (caller errors), _QUEUE_FULL / _SHED / _DEADLINE / _CLOSED (not
   * run), _FAILED / _WORKER_CRASHED / _BATCH_TIMEOUT / SCANLINE_ERR_MODEL_MISMATCH (the batch failed).
   */
  submit<M = unknown>(req: TileRequest<M>): Promise<TileResult<M>>;
  status(): InferenceStatus;
  /**
   * Stops accepting tiles, lets queued and in-flight tiles finish (queued ones still left after drainTimeoutMs are
   * rejected with SCANLINE_ERR_INFER_CLOSED), then closes the backend. Idempotent.
   */
  close(options?: { drainTimeoutMs?: number }): Promise<void>;
}

/**
 * Loads the models of `modelsDir` (all, or config.models), starts the backend and warms it up with every batch
 * size the batchers can emit. Throws SCANLINE_ERR_CONFIG_INVALID, SCANLINE_ERR_MODEL_MANIFEST, _CHECKSUM,
 * _NOT_FOUND, _MISMATCH, _LOAD or SCANLINE_ERR_INFER_WORKER_START; nothing is left running when it throws. With no
 * model found (and none named), resolves with an Inference that has no models and reports not ready.
 */
export async function createInference(options: CreateInferenceOptions = {}): Promise<Inference> {
  const config = resolveInferenceConfig(options.config as InferenceConfigInput | undefined);
  const log = (options.log ?? silentLogger()).child({ module: 'inference' });
  const dir = options.modelsDir ?? (config.modelsDir !== '' ? config.modelsDir : defaultModelsDir());
  const loaded = await discoverModels(dir, { names: config.models });
  const stats = createInferenceStats(loaded.map((m) => m.manifest.name));
  const backend =
    typeof options.backend === 'function'
      ? options.backend({ config, log, stats })
      : (options.backend ?? new OnnxWorkerBackend({ config, log, counters: stats }));
  if (loaded.length > 0) {
    try {
      await backend.load(loaded, {
        warmupBatchSizes: DynamicBatcher.emittableBatchSizes(config.batching),
        ...(options.imageFeatures ? { imageFeatures: options.imageFeatures } : {}),
      });
    } catch (err) {
      await backend.close().catch(() => undefined);
      throw err;
    }
  } else {
    log.warn({ modelsDir: dir }, 'no models found: inference is not available');
  }
  return new InferenceService(config, loaded, backend, stats, log, dir);
}

class InferenceService implements Inference {
  readonly models: readonly Readonly<ModelManifest>[];
  private readonly batchers = new Map<string, DynamicBatcher>();
  private phase: InferencePhase = 'ready';
  private closing: Promise<void> | null = null;

  constructor(
    readonly config: InferenceConfig,
    private readonly loaded: readonly LoadedModel[],
    private readonly backend: InferenceBackend,
    readonly stats: InferenceStats,
    log: Logger,
    modelsDir: string,
  ) {
    this.models = Object.freeze(loaded.map((m) => m.manifest));
    for (const model of loaded) {
      this.batchers.set(
        model.manifest.name,
        new DynamicBatcher({ model, config: config.batching, backend, stats: stats.models.get(model.manifest.name)!, log }),
      );
    }
    if (loaded.length > 0) {
      const s = backend.status();
      log.info({ modelsDir, models: loaded.map((m) => `${m.manifest.name}@${m.manifest.version}`), backend: s.kind, providers: s.models }, 'inference ready');
    }
  }

  modelFor(task: ModelTask, channels = 2): Readonly<ModelManifest> | undefined {
    return selectModelFor(this.loaded, task, channels)?.manifest;
  }

  submit<M = unknown>(req: TileRequest<M>): Promise<TileResult<M>> {
    const batcher = this.batchers.get((req as { model?: unknown } | null)?.model as string);
    if (!batcher) {
      this.stats.unknownModelTiles++;
      const name = String((req as { model?: unknown } | null)?.model);
      return Promise.reject(new ScanlineError('SCANLINE_ERR_INFER_UNKNOWN_MODEL', `model ${name} is not loaded`, { model: name }));
    }
    const problem = tileRequestProblem(req, batcher.model.tileFloats);
    if (problem) {
      this.stats.invalidTiles++;
      return Promise.reject(new ScanlineError('SCANLINE_ERR_INFER_BAD_TILE', problem, { model: req.model }));
    }
    return batcher.submit(req);
  }

  status(): InferenceStatus {
    const backend = this.backend.status();
    const models: Record<string, ModelServingStatus> = {};
    for (const m of this.loaded) {
      const b = this.batchers.get(m.manifest.name)!;
      const p = backend.models[m.manifest.name];
      models[m.manifest.name] = {
        task: m.manifest.task,
        version: m.manifest.version,
        provider: p?.provider ?? null,
        precision: p?.precision ?? null,
        queued: b.queued,
        inFlightBatches: b.inFlightBatches,
      };
    }
    let reason: string | null = backend.reason;
    if (this.phase !== 'ready') reason = `inference is ${this.phase}`;
    else if (this.loaded.length === 0) reason = 'no models loaded';
    const ready = this.phase === 'ready' && this.loaded.length > 0 && backend.ready;
    return { ready, reason, phase: this.phase, backend, models };
  }

  close(options: { drainTimeoutMs?: number } = {}): Promise<void> {
    this.closing ??= (async () => {
      this.phase = 'draining';
      const timeout = options.drainTimeoutMs ?? 10_000;
      for (const b of this.batchers.values()) b.stopAccepting();
      await Promise.all([...this.batchers.values()].map((b) => b.drain(timeout)));
      await this.backend.close();
      this.phase = 'closed';
    })();
    return this.closing;
  }
}
