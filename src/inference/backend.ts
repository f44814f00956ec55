/**
 * The inference backend contract: what the batcher needs from whatever runs batches. ONNX Runtime in worker
 * threads (onnx-worker-backend.ts) is one implementation; a remote server (Triton over gRPC/HTTP, say) can be
 * another without touching the batcher.
 */
import type { LoadedModel } from './manifest.js';

export type ModelPrecision = 'fp32' | 'fp16';

export interface BatchResult {
  /**
   * Per manifest output name: batchSize x (floats per tile of that output), batch-major. Owned by the caller from
   * the moment the promise resolves.
   */
  outputs: Record<string, Float32Array>;
  /**
   * Time the backend spent on the batch (not queueing or transferring it), seconds: for the ONNX worker backend the
   * image statistics, the normalisation and the model run.
   */
  computeSeconds: number;
  /** The input batch handed back for reuse (same length as given), when the backend can; else undefined. */
  input?: Float32Array;
  /**
   * Image statistics of each raw tile (batchSize x IMAGE_FEATURE_COUNT, src/image-stats/image-features.ts), for a
   * model whose manifest carries out-of-distribution statistics, when the backend computes them (the ONNX worker
   * backend does, on its worker thread, given BackendLoadOptions.imageFeatures); else undefined.
   */
  imageFeatures?: Float64Array;
}

/** One try to open a model on an execution provider. */
export interface ProviderAttempt {
  provider: string;
  precision: ModelPrecision;
  ok: boolean;
  /** Why it was passed over (absent when ok). */
  error?: string;
  /** Session creation plus warm-up, seconds. */
  seconds: number;
}

/** How one model runs on one worker: the provider chosen, why others were not, and the warm-up done. */
export interface ModelRuntimeStatus {
  model: string;
  provider: string;
  precision: ModelPrecision;
  attempts: ProviderAttempt[];
  warmup: { batchSizes: number[]; seconds: number };
}

export type BackendWorkerState = 'starting' | 'ready' | 'restarting' | 'closing' | 'closed';

export interface BackendWorkerStatus {
  index: number;
  state: BackendWorkerState;
  /** Batches sent to this worker and not answered yet. */
  inFlightBatches: number;
  /** Batches this slot's workers answered (results and failures), across replacements. */
  batchesRun: number;
  /** Replacements started after crashes or hangs. */
  restarts: number;
  /** Empty until the worker reported ready. */
  models: ModelRuntimeStatus[];
  /** How the worker's threads are scheduled ('idle' = SCHED_IDLE, 'nice N', 'normal'); null until ready. */
  scheduling: string | null;
  /** The last crash or start failure, if any. */
  lastError: string | null;
}

export interface BackendStatus {
  /** What runs the models, e.g. "onnxruntime-node 1.30.0 in 2 worker threads". */
  kind: string;
  /** True when batches can run now (for onnxruntime-node: at least one worker is ready). */
  ready: boolean;
  /** Why not ready, or why degraded (fewer workers ready than configured); null when all is well. */
  reason: string | null;
  /** Per model: the execution provider and precision serving it (as reported by the first ready worker). */
  models: Record<string, { provider: string; precision: ModelPrecision }>;
  workers: BackendWorkerStatus[];
}

export interface BackendLoadOptions {
  /** Every batch size the batcher can emit: each model runs each of them once before load() resolves. */
  warmupBatchSizes: readonly number[];
  /**
   * Compute the image statistics of raw tiles for models with out-of-distribution statistics
   * (BatchResult.imageFeatures), with the stitcher's attenuation clamp; absent: the caller computes them.
   */
  imageFeatures?: { attenuationMax: number };
}

/**
 * Who applies the manifest's input normalisation: 'caller' = the batcher packs normalised tiles; 'backend' = the
 * batcher packs raw tiles (a memcpy) and the backend normalises them (the ONNX worker backend does it on the worker
 * thread, keeping that per-tile work off the event loop: bench/RESULTS.md, 'Normalisation on the worker').
 */
export type InputNormalization = 'caller' | 'backend';

export interface InferenceBackend {
  readonly kind: string;
  readonly inputNormalization: InputNormalization;
  /**
   * Opens every model (sessions created once), checks each against its manifest and warms up every batch size.
   * Resolves when batches can run. Throws a ScanlineError: SCANLINE_ERR_MODEL_MISMATCH, SCANLINE_ERR_MODEL_LOAD,
   * SCANLINE_ERR_INFER_WORKER_START.
   */
  load(models: readonly LoadedModel[], options: BackendLoadOptions): Promise<void>;
  /**
   * Runs one batch: the first batchSize x tileFloats floats of `batch` (normalised or raw, per
   * `inputNormalization`). Ownership of `batch`
   * (and its whole ArrayBuffer, which must not be shared with anything else) passes to the backend: it may be
   * transferred to another thread and is detached on return. Rejects with a ScanlineError
   * (SCANLINE_ERR_INFER_FAILED, _WORKER_CRASHED, _BATCH_TIMEOUT, _CLOSED).
   */
  run(model: string, batch: Float32Array, batchSize: number): Promise<BatchResult>;
  status(): BackendStatus;
  /** Fails batches not answered yet with SCANLINE_ERR_INFER_CLOSED and releases everything. Idempotent. */
  close(): Promise<void>;
}
