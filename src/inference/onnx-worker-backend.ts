/**
 * InferenceBackend over onnxruntime-node in worker threads (worker-pool.ts + inference-worker.ts): the default
 * backend of the gateway. Maps the inference configuration onto the pool and reports, per model, the execution
 * provider the workers chose.
 */
import { ScanlineError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { BackendLoadOptions, BackendStatus, BatchResult, InferenceBackend } from './backend.js';
import { effectiveIntraOpThreads, type InferenceConfig } from './config.js';
import type { LoadedModel } from './manifest.js';
import { WorkerPool, type WorkerPoolCounters, type WorkerPoolOptions } from './worker-pool.js';
import type { WorkerFaults } from './worker-protocol.js';

export interface OnnxWorkerBackendOptions {
  config: InferenceConfig;
  log: Logger;
  /** Where crash/restart/timeout counts go (InferenceStats has these fields). */
  counters?: WorkerPoolCounters;
  /** Fault injection for tests (see WorkerFaults). */
  faults?: WorkerFaults & { worker?: number };
  /** Passed to the pool (tests shorten them). */
  restartDelayMs?: WorkerPoolOptions['restartDelayMs'];
  workerUrl?: URL;
}

export class OnnxWorkerBackend implements InferenceBackend {
  /** Workers normalise each batch before running it (off the event loop). */
  readonly inputNormalization = 'backend' as const;
  private pool: WorkerPool | null = null;
  private loaded = new Set<string>();
  private closed = false;

  constructor(private readonly opts: OnnxWorkerBackendOptions) {}

  /** E.g. "onnxruntime-node 1.30.0 in 2 worker threads (SCHED_IDLE)": the scheduling once every worker reported it. */
  get kind(): string {
    const v = this.pool?.ortVersion;
    const n = this.opts.config.workers;
    const scheduling = new Set(this.pool?.status().map((w) => w.scheduling) ?? []);
    const [only] = scheduling;
    const how = scheduling.size === 1 && only ? ` (${only === 'idle' ? 'SCHED_IDLE' : only})` : '';
    return `onnxruntime-node${v ? ` ${v}` : ''} in ${n} worker thread${n === 1 ? '' : 's'}${how}`;
  }

  async load(models: readonly LoadedModel[], options: BackendLoadOptions): Promise<void> {
    if (this.pool) throw new ScanlineError('SCANLINE_ERR_INFER_WORKER_START', 'models are already loaded');
    if (this.closed) throw new ScanlineError('SCANLINE_ERR_INFER_CLOSED');
    const c = this.opts.config;
    this.pool = new WorkerPool({
      size: c.workers,
      init: {
        models: models.map((m) => ({
          name: m.manifest.name,
          fp32Path: m.files.fp32,
          ...(m.files.fp16 ? { fp16Path: m.files.fp16 } : {}),
          manifest: m.manifest,
        })),
        executionProviders: [...c.executionProviders],
        deviceId: c.deviceId,
        preferFp16OnGpu: c.preferFp16OnGpu,
        intraOpThreads: effectiveIntraOpThreads(c),
        allowSpinning: c.allowSpinning,
        nice: c.workerNice,
        schedIdle: c.workerSchedIdle,
        ortLogLevel: c.ortLogLevel,
        warmupBatchSizes: [...options.warmupBatchSizes],
        ...(options.imageFeatures ? { imageFeatures: { ...options.imageFeatures } } : {}),
      },
      batchTimeoutMs: c.batchTimeoutMs,
      log: this.opts.log,
      ...(this.opts.counters ? { counters: this.opts.counters } : {}),
      ...(this.opts.faults ? { faults: this.opts.faults } : {}),
      ...(this.opts.restartDelayMs ? { restartDelayMs: this.opts.restartDelayMs } : {}),
      ...(this.opts.workerUrl ? { workerUrl: this.opts.workerUrl } : {}),
    });
    await this.pool.start();
    for (const m of models) this.loaded.add(m.manifest.name);
  }

  run(model: string, batch: Float32Array, batchSize: number): Promise<BatchResult> {
    if (this.closed || !this.pool) {
      return Promise.reject(new ScanlineError('SCANLINE_ERR_INFER_CLOSED', this.closed ? 'inference backend is closed' : 'no models loaded yet'));
    }
    if (!this.loaded.has(model)) return Promise.reject(new ScanlineError('SCANLINE_ERR_INFER_UNKNOWN_MODEL', `model ${model} is not loaded`));
    return this.pool.run(model, batch, batchSize);
  }

  status(): BackendStatus {
    const workers = this.pool?.status() ?? [];
    const ready = workers.filter((w) => w.state === 'ready');
    const models: BackendStatus['models'] = {};
    for (const m of ready[0]?.models ?? []) models[m.model] = { provider: m.provider, precision: m.precision };
    let reason: string | null = null;
    if (this.closed) reason = 'closed';
    else if (!this.pool) reason = 'models not loaded yet';
    else if (ready.length === 0) reason = `no inference worker is ready (${workers.map((w) => `${w.index}: ${w.state}`).join(', ')})`;
    else if (ready.length < workers.length) reason = `degraded: ${ready.length} of ${workers.length} inference workers ready`;
    return { kind: this.kind, ready: !this.closed && ready.length > 0, reason, models, workers };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool?.close();
  }
}
