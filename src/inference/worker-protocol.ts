/**
 * Messages between the worker pool (main thread) and an inference worker thread. Tensors travel as transferred
 * ArrayBuffers (never structured-clone copies); errors travel as data and become ScanlineErrors on the main thread.
 */
import type { ErrorCode, ScanlineErrorDetails } from '../errors/index.js';
import type { ModelRuntimeStatus } from './backend.js';
import type { ExecutionProviderName, OrtLogLevel } from './config.js';
import type { ModelManifest } from './manifest-types.js';

export interface WorkerModelSpec {
  name: string;
  fp32Path: string;
  fp16Path?: string;
  manifest: ModelManifest;
}

/** Deliberate failures for tests and chaos drills; never set in production. */
export interface WorkerFaults {
  /** Throw an uncaught error when the n-th run message (1-based) arrives: the worker dies with batches queued. */
  crashOnRun?: number;
  /** Block the thread forever when the n-th run message arrives (a hung device or kernel). */
  hangOnRun?: number;
}

/** How a worker's threads are scheduled: SCHED_IDLE, a niceness, or as the main thread. */
export type WorkerScheduling = 'idle' | `nice ${number}` | 'normal';

/** workerData of an inference worker. */
export interface WorkerInit {
  index: number;
  models: WorkerModelSpec[];
  executionProviders: ExecutionProviderName[];
  deviceId: number;
  preferFp16OnGpu: boolean;
  intraOpThreads: number;
  allowSpinning: boolean;
  /** setpriority() of this thread before ONNX Runtime starts its own threads (they inherit it); 0 = unchanged. */
  nice: number;
  /** SCHED_IDLE for this thread (and so ONNX Runtime's) before anything else; `nice` applies where it cannot. */
  schedIdle: boolean;
  ortLogLevel: OrtLogLevel;
  warmupBatchSizes: number[];
  /** Image statistics of raw tiles for models with out-of-distribution statistics (BackendLoadOptions). */
  imageFeatures?: { attenuationMax: number };
  faults?: WorkerFaults;
}

export interface SerializedError {
  code: ErrorCode;
  message: string;
  details: ScanlineErrorDetails;
}

export type ToWorker =
  /** `input` holds at least batchSize tiles from offset 0; it is transferred, and comes back with the result. */
  { type: 'run'; id: number; model: string; batchSize: number; input: ArrayBuffer } | { type: 'close' };

export type WorkerLogLevel = 'debug' | 'info' | 'warn' | 'error';

export type FromWorker =
  | { type: 'ready'; ortVersion: string; supportedProviders: string[]; models: ModelRuntimeStatus[]; scheduling: WorkerScheduling }
  | { type: 'init-failed'; error: SerializedError }
  | { type: 'log'; level: WorkerLogLevel; obj: Record<string, unknown>; msg: string }
  /** outputs: per manifest output, batchSize x floats per tile; every buffer (and `input`) is transferred. */
  | {
      type: 'result';
      id: number;
      outputs: Record<string, Float32Array>;
      input: ArrayBuffer;
      computeSeconds: number;
      /** Per tile, IMAGE_FEATURE_COUNT image statistics of the raw tile (models with out-of-distribution statistics). */
      imageFeatures?: Float64Array;
    }
  | { type: 'run-failed'; id: number; error: SerializedError; input: ArrayBuffer | null }
  | { type: 'closed' };
