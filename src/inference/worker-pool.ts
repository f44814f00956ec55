/**
 * A pool of inference worker threads. Each worker holds one ONNX Runtime session per model; a batch goes to the
 * ready worker with the fewest batches outstanding, as a transferred ArrayBuffer, and its outputs come back
 * transferred too. A worker that dies is replaced (after a growing delay while replacements keep failing); the
 * batches it held fail with SCANLINE_ERR_INFER_WORKER_CRASHED, each exactly once. A batch not answered within
 * `batchTimeoutMs` fails with SCANLINE_ERR_INFER_BATCH_TIMEOUT and its worker, considered hung, is replaced.
 *
 * Threads: this module runs on the main thread and never blocks it; the workers run inference-worker.ts.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { ScanlineError, type ErrorCode } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { BackendWorkerState, BackendWorkerStatus, BatchResult, ModelRuntimeStatus, ProviderAttempt } from './backend.js';
import { inferenceWorkerUrl } from './paths.js';
import type { FromWorker, SerializedError, ToWorker, WorkerFaults, WorkerInit } from './worker-protocol.js';

/** Counters the pool bumps (InferenceStats has them). */
export interface WorkerPoolCounters {
  workerCrashes: number;
  workerRestarts: number;
  batchTimeouts: number;
}

export interface WorkerPoolOptions {
  size: number;
  /** Everything a worker needs but its index. */
  init: Omit<WorkerInit, 'index' | 'faults'>;
  batchTimeoutMs: number;
  log: Logger;
  counters?: WorkerPoolCounters;
  /** Fault injection for tests: applied to the first start of worker `worker` (default 0) only. */
  faults?: WorkerFaults & { worker?: number };
  /** Delay before replacing a dead worker, doubling per consecutive failed start up to `max`, ms. */
  restartDelayMs?: { min: number; max: number };
  /** How long close() waits for workers to release their sessions before terminating them, ms. */
  closeTimeoutMs?: number;
  workerUrl?: URL;
}

interface Job {
  id: number;
  model: string;
  batchSize: number;
  input: Float32Array;
  /** input.length when sent (the input is detached once transferred). */
  inputFloats: number;
  resolve: (r: BatchResult) => void;
  reject: (e: ScanlineError) => void;
  timer: NodeJS.Timeout;
  slot: Slot | null;
  sentAt: number;
}

interface Slot {
  index: number;
  worker: Worker | null;
  state: BackendWorkerState;
  /** The current incarnation reported ready (its death is then a crash, not a failed start). */
  wasReady: boolean;
  /** Batches sent to this worker and not answered. */
  jobs: Map<number, Job>;
  models: ModelRuntimeStatus[];
  /** From the worker's ready message. */
  scheduling: string | null;
  restarts: number;
  batchesRun: number;
  consecutiveFailures: number;
  lastError: string | null;
  /** Set when the pool itself terminates the worker (hang, close), so its exit is not taken for a crash. */
  killReason: string | null;
  restartTimer: NodeJS.Timeout | null;
  /** Settles the start of this incarnation. */
  onStarted: ((err: ScanlineError | null) => void) | null;
  ortVersion: string | null;
}

function fromSerialized(e: SerializedError): ScanlineError {
  return new ScanlineError(e.code, e.message, e.details);
}

export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly waiting: Job[] = [];
  private readonly url: URL;
  private nextJobId = 1;
  private rr = 0;
  private closing = false;
  private started = false;
  private readonly counters: WorkerPoolCounters;
  private readonly restartDelay: { min: number; max: number };
  /** Models whose passed-over providers were logged: every worker tries the same ones, so once per model. */
  private readonly passedOverLogged = new Set<string>();

  constructor(private readonly opts: WorkerPoolOptions) {
    this.url = opts.workerUrl ?? inferenceWorkerUrl();
    this.counters = opts.counters ?? { workerCrashes: 0, workerRestarts: 0, batchTimeouts: 0 };
    this.restartDelay = opts.restartDelayMs ?? { min: 100, max: 5_000 };
    for (let i = 0; i < opts.size; i++) {
      this.slots.push({
        index: i,
        worker: null,
        state: 'closed',
        wasReady: false,
        jobs: new Map(),
        models: [],
        scheduling: null,
        restarts: 0,
        batchesRun: 0,
        consecutiveFailures: 0,
        lastError: null,
        killReason: null,
        restartTimer: null,
        onStarted: null,
        ortVersion: null,
      });
    }
  }

  /**
   * Starts every worker and resolves once all are ready (sessions open, warm-up done). If any fails, every worker
   * is terminated and the first failure is thrown (SCANLINE_ERR_MODEL_MISMATCH, _MODEL_LOAD, _INFER_WORKER_START).
   */
  async start(): Promise<void> {
    if (this.started) throw new ScanlineError('SCANLINE_ERR_INFER_WORKER_START', 'worker pool already started');
    this.started = true;
    if (this.url.protocol === 'file:' && !existsSync(fileURLToPath(this.url))) {
      throw new ScanlineError(
        'SCANLINE_ERR_INFER_WORKER_START',
        `the compiled inference worker ${fileURLToPath(this.url)} is missing: run \`npm run build\` first`,
      );
    }
    const results = await Promise.all(this.slots.map((s) => this.spawn(s, true)));
    const failure = results.find((r) => r !== null);
    if (failure) {
      await this.close();
      throw failure;
    }
  }

  /** Spawns a worker into `slot`; resolves with null when ready, or the start error (the worker is then gone). */
  private spawn(slot: Slot, first: boolean): Promise<ScanlineError | null> {
    const faultsFor = this.opts.faults && (this.opts.faults.worker ?? 0) === slot.index && first ? this.opts.faults : undefined;
    const init: WorkerInit = {
      ...this.opts.init,
      index: slot.index,
      ...(faultsFor ? { faults: { crashOnRun: faultsFor.crashOnRun, hangOnRun: faultsFor.hangOnRun } } : {}),
    };
    const log = this.opts.log.child({ worker: slot.index });
    slot.state = first ? 'starting' : 'restarting';
    slot.wasReady = false;
    slot.killReason = null;
    slot.models = [];
    let worker: Worker;
    try {
      worker = new Worker(this.url, { workerData: init, name: `scanline-inference-${slot.index}` });
    } catch (cause) {
      const err = new ScanlineError('SCANLINE_ERR_INFER_WORKER_START', `cannot start inference worker: ${(cause as Error).message}`, {}, { cause });
      slot.state = 'closed';
      slot.lastError = err.message;
      return Promise.resolve(err);
    }
    slot.worker = worker;
    let lastError: Error | null = null;
    const started = new Promise<ScanlineError | null>((resolve) => {
      slot.onStarted = (err) => {
        slot.onStarted = null;
        resolve(err);
      };
    });
    worker.on('message', (msg: FromWorker) => this.onMessage(slot, worker, msg, log));
    worker.on('error', (err) => {
      // An uncaught exception: the worker is exiting; send it nothing more.
      lastError = err;
      if (slot.worker === worker && slot.state === 'ready') slot.state = 'restarting';
    });
    worker.on('exit', (code) => this.onExit(slot, worker, code, lastError, log));
    return started;
  }

  private onMessage(slot: Slot, worker: Worker, msg: FromWorker, log: Logger): void {
    if (slot.worker !== worker) return;
    switch (msg.type) {
      case 'log':
        log[msg.level](msg.obj, msg.msg);
        return;
      case 'ready': {
        slot.state = 'ready';
        slot.wasReady = true;
        slot.models = msg.models;
        slot.scheduling = msg.scheduling;
        slot.ortVersion = msg.ortVersion;
        log.info({ scheduling: msg.scheduling }, `inference worker ${slot.index} threads scheduled: ${msg.scheduling}`);
        slot.consecutiveFailures = 0;
        for (const m of msg.models) {
          if (!this.passedOverLogged.has(m.model)) {
            this.passedOverLogged.add(m.model);
            for (const a of m.attempts) {
              if (a.ok) continue;
              // The chosen provider's failed attempt is its fp16 file (warm-up failed); the model runs on it in fp32.
              const what = a.provider === m.provider ? `${a.precision} model file passed over` : 'execution provider passed over';
              log.info({ model: m.model, provider: a.provider, precision: a.precision, ...passedOverReason(a) }, what);
            }
          }
          log.info(
            {
              model: m.model,
              provider: m.provider,
              precision: m.precision,
              warmupBatchSizes: m.warmup.batchSizes.length,
              warmupSeconds: round(m.warmup.seconds),
            },
            `model ${m.model} runs on ${m.provider} (${m.precision})`,
          );
        }
        slot.onStarted?.(null);
        this.dispatchWaiting();
        return;
      }
      case 'init-failed': {
        const err = fromSerialized(msg.error);
        slot.lastError = err.message;
        log.error({ code: err.code, details: err.details }, `inference worker failed to start: ${err.message}`);
        slot.killReason = 'start failed';
        slot.onStarted?.(err);
        void worker.terminate();
        return;
      }
      case 'result':
      case 'run-failed': {
        const job = slot.jobs.get(msg.id);
        if (!job) return;
        slot.jobs.delete(msg.id);
        slot.batchesRun++;
        clearTimeout(job.timer);
        if (msg.type === 'result') {
          job.resolve({
            outputs: msg.outputs,
            computeSeconds: msg.computeSeconds,
            input: new Float32Array(msg.input, 0, job.inputFloats),
            ...(msg.imageFeatures ? { imageFeatures: msg.imageFeatures } : {}),
          });
        } else {
          job.reject(fromSerialized(msg.error));
        }
        return;
      }
      case 'closed':
        // Sessions released and port closed: nothing is left to wait for.
        if (this.closing) void worker.terminate();
        return;
    }
  }

  private onExit(slot: Slot, worker: Worker, code: number, lastError: Error | null, log: Logger): void {
    if (slot.worker !== worker) return;
    slot.worker = null;
    const wasReady = slot.wasReady;
    slot.wasReady = false;
    const reason = slot.killReason;
    // A start that never reported: the worker died while loading (bad binding, crash in a provider).
    if (slot.onStarted) {
      const err = new ScanlineError(
        'SCANLINE_ERR_INFER_WORKER_START',
        `inference worker ${slot.index} exited (code ${code}) before it was ready${lastError ? `: ${lastError.message}` : ''}`,
      );
      slot.lastError = err.message;
      slot.onStarted(err);
    }
    if (this.closing) {
      slot.state = 'closed';
      this.failJobs(slot, 'SCANLINE_ERR_INFER_CLOSED', 'inference closed while the batch was running');
      return;
    }
    if (wasReady || reason === 'hung') {
      this.counters.workerCrashes++;
      const why = reason === 'hung' ? 'terminated after a batch timeout' : `crashed (exit code ${code})${lastError ? `: ${lastError.message}` : ''}`;
      slot.lastError = `worker ${why}`;
      log.error({ exitCode: code, inFlightBatches: slot.jobs.size, err: lastError?.message }, `inference worker ${why}; replacing it`);
      this.failJobs(slot, 'SCANLINE_ERR_INFER_WORKER_CRASHED', `the inference worker running this batch ${why}`);
    } else {
      slot.consecutiveFailures++;
    }
    slot.state = 'restarting';
    // Only replace workers once the pool is running; a failed first start is reported by start().
    if (this.started && (wasReady || slot.restarts > 0 || reason === 'hung')) this.scheduleRestart(slot, log);
    else slot.state = 'closed';
  }

  private scheduleRestart(slot: Slot, log: Logger): void {
    const delay = Math.min(this.restartDelay.max, this.restartDelay.min * 2 ** slot.consecutiveFailures);
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = null;
      if (this.closing) return;
      slot.restarts++;
      this.counters.workerRestarts++;
      void this.spawn(slot, false).then((err) => {
        if (err) log.warn({ code: err.code, attempt: slot.consecutiveFailures }, `replacement inference worker failed to start: ${err.message}`);
        else log.info({ restarts: slot.restarts }, 'replacement inference worker ready');
      });
    }, delay);
    slot.restartTimer.unref();
  }

  private failJobs(slot: Slot, code: ErrorCode, message: string): void {
    const jobs = [...slot.jobs.values()];
    slot.jobs.clear();
    for (const job of jobs) {
      clearTimeout(job.timer);
      job.reject(new ScanlineError(code, message, { model: job.model, batchSize: job.batchSize }));
    }
  }

  /**
   * Runs one batch on a worker. `input` must start at offset 0 of an ArrayBuffer it alone uses; the buffer is
   * transferred (detached here) and comes back as BatchResult.input.
   */
  run(model: string, input: Float32Array, batchSize: number): Promise<BatchResult> {
    if (this.closing) return Promise.reject(new ScanlineError('SCANLINE_ERR_INFER_CLOSED'));
    if (input.byteOffset !== 0) input = input.slice();
    return new Promise<BatchResult>((resolve, reject) => {
      const job: Job = {
        id: this.nextJobId++,
        model,
        batchSize,
        input,
        inputFloats: input.length,
        resolve,
        reject,
        slot: null,
        sentAt: performance.now(),
        timer: setTimeout(() => this.onTimeout(job), this.opts.batchTimeoutMs),
      };
      const slot = this.pick();
      if (slot) this.send(slot, job);
      else this.waiting.push(job);
    });
  }

  private pick(): Slot | null {
    let best: Slot | null = null;
    const n = this.slots.length;
    for (let k = 0; k < n; k++) {
      const s = this.slots[(this.rr + k) % n];
      if (s.state === 'ready' && s.worker && (!best || s.jobs.size < best.jobs.size)) best = s;
    }
    if (best) this.rr = (best.index + 1) % n;
    return best;
  }

  private send(slot: Slot, job: Job): void {
    job.slot = slot;
    slot.jobs.set(job.id, job);
    const msg: ToWorker = { type: 'run', id: job.id, model: job.model, batchSize: job.batchSize, input: job.input.buffer as ArrayBuffer };
    slot.worker!.postMessage(msg, [job.input.buffer as ArrayBuffer]);
  }

  private dispatchWaiting(): void {
    while (this.waiting.length > 0) {
      const slot = this.pick();
      if (!slot) return;
      this.send(slot, this.waiting.shift()!);
    }
  }

  private onTimeout(job: Job): void {
    this.counters.batchTimeouts++;
    const slot = job.slot;
    const err = new ScanlineError(
      'SCANLINE_ERR_INFER_BATCH_TIMEOUT',
      slot
        ? `batch of ${job.batchSize} for ${job.model} not answered within ${this.opts.batchTimeoutMs} ms; its worker is replaced`
        : `batch of ${job.batchSize} for ${job.model} found no ready worker within ${this.opts.batchTimeoutMs} ms`,
      { model: job.model, batchSize: job.batchSize },
    );
    if (!slot) {
      const i = this.waiting.indexOf(job);
      if (i >= 0) this.waiting.splice(i, 1);
      job.reject(err);
      return;
    }
    slot.jobs.delete(job.id);
    job.reject(err);
    if (slot.worker && slot.state === 'ready') {
      slot.killReason = 'hung';
      slot.state = 'restarting';
      void slot.worker.terminate();
    }
  }

  status(): BackendWorkerStatus[] {
    return this.slots.map((s) => ({
      index: s.index,
      state: s.state,
      inFlightBatches: s.jobs.size,
      batchesRun: s.batchesRun,
      restarts: s.restarts,
      models: s.models,
      scheduling: s.scheduling,
      lastError: s.lastError,
    }));
  }

  get readyWorkers(): number {
    return this.slots.filter((s) => s.state === 'ready').length;
  }

  get ortVersion(): string | null {
    return this.slots.find((s) => s.ortVersion)?.ortVersion ?? null;
  }

  /**
   * Stops taking batches; each worker finishes the batches it holds, releases its sessions and exits. A worker
   * still busy after closeTimeoutMs is terminated and its batches fail with SCANLINE_ERR_INFER_CLOSED, as do
   * batches still waiting for a worker. Idempotent.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    for (const job of this.waiting.splice(0)) {
      clearTimeout(job.timer);
      job.reject(new ScanlineError('SCANLINE_ERR_INFER_CLOSED', 'inference closed before the batch could run'));
    }
    const timeout = this.opts.closeTimeoutMs ?? 5_000;
    await Promise.all(
      this.slots.map(async (slot) => {
        if (slot.restartTimer) clearTimeout(slot.restartTimer);
        slot.restartTimer = null;
        const worker = slot.worker;
        if (!worker) {
          slot.state = 'closed';
          return;
        }
        slot.state = 'closing';
        const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
        worker.postMessage({ type: 'close' } satisfies ToWorker);
        const timer = setTimeout(() => void worker.terminate(), timeout);
        await exited;
        clearTimeout(timer);
      }),
    );
  }
}

const PROVIDER_LIBRARIES: Record<string, string> = { tensorrt: 'TensorRT', cuda: 'CUDA' };

/**
 * Why an attempt was passed over, in a few words for the log. /readyz and SCANLINE_ERR_MODEL_LOAD keep the full
 * error: on a CPU-only machine every GPU provider fails the same way, and that is expected, not an error.
 */
export function passedOverReason(a: ProviderAttempt): { reason: string; hint?: string } {
  const error = a.error ?? 'unknown';
  if (/failed to load shared library/i.test(error) && a.provider in PROVIDER_LIBRARIES) {
    return { reason: `${PROVIDER_LIBRARIES[a.provider]} libraries not installed`, hint: 'README.md, GPU setup' };
  }
  const first = error.split('\n')[0];
  return { reason: first.length > 200 ? `${first.slice(0, 197)}...` : first };
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
