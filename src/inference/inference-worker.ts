/**
 * Entry point of an inference worker thread (runs inside worker_threads, loaded from dist/ as compiled JS).
 *
 * On start: opens one ONNX Runtime session per model, trying the configured execution providers in order (fp16
 * file first on GPU providers when the manifest has one), checks each session's inputs and outputs against the
 * manifest, runs every warm-up batch size, and posts `ready` with what was chosen and why the others were not
 * (or `init-failed` with a coded error). Then runs batches one at a time, in arrival order: raw tiles arrive, their
 * image statistics are read (models with out-of-distribution statistics, when the gateway asks: WorkerInit), they
 * are normalised in place per the manifest, run, and the outputs go back.
 *
 * Threads: everything here runs on this worker's thread; session.run() blocks it for the duration of a batch,
 * which is the point: the gateway's event loop never waits for the model. Never calls into the main thread
 * except through postMessage; errors travel back as data.
 */
import { readlinkSync } from 'node:fs';
import { setPriority } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { ScanlineError, toScanlineError } from '../errors/index.js';
import type { ModelPrecision, ModelRuntimeStatus, ProviderAttempt } from './backend.js';
import { GPU_EXECUTION_PROVIDERS } from './config.js';
import { checkModelIo } from './manifest.js';
import { createNormalizer, normalizeBatchInPlace, type Normalizer } from './normalize.js';
import { setThreadIdleScheduling } from '../addon/index.js';
import { IMAGE_FEATURE_COUNT, tileImageFeatures } from '../image-stats/index.js';
import type { FromWorker, SerializedError, ToWorker, WorkerInit, WorkerLogLevel, WorkerModelSpec, WorkerScheduling } from './worker-protocol.js';

type OrtModule = typeof import('./ort.js');

const GPU_SETUP_HINT =
  'the CUDA/TensorRT libraries are not installed; with CUDA 12 and internet: ONNXRUNTIME_NODE_INSTALL=cuda12 node node_modules/onnxruntime-node/script/install';

interface OpenModel {
  spec: WorkerModelSpec;
  session: import('./ort.js').OrtSession;
  inputName: string;
  /** [channels, height, width] */
  tileDims: number[];
  tileFloats: number;
  norm: Normalizer;
  outputNames: string[];
  /** Output shapes without the batch dimension. */
  outputDims: number[][];
  /** Computes the image statistics of each raw tile (the manifest carries out-of-distribution statistics). */
  imageFeatures: boolean;
  status: ModelRuntimeStatus;
}

if (!parentPort) throw new Error('inference-worker.ts must run in a worker thread');
const port = parentPort;
const init = workerData as WorkerInit;

function post(msg: FromWorker, transfer: ArrayBuffer[] = []): void {
  port.postMessage(msg, transfer);
}

function log(level: WorkerLogLevel, obj: Record<string, unknown>, msg: string): void {
  post({ type: 'log', level, obj, msg });
}

function serialize(err: unknown, fallback: ScanlineError['code']): SerializedError {
  const e = toScanlineError(err, fallback);
  return { code: e.code, message: e.message, details: e.details };
}

function messageOf(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0].slice(0, 500);
}

function checkOutputDims(m: OpenModel, name: string, dims: readonly number[], batchSize: number): string | null {
  const expected = [batchSize, ...m.outputDims[m.outputNames.indexOf(name)]];
  if (dims.length === expected.length && dims.every((d, i) => d === expected[i])) return null;
  return `output "${name}" came back as [${dims.join(', ')}] for a batch of ${batchSize}, the manifest says [${expected.join(', ')}]`;
}

async function runBatch(ort: OrtModule, m: OpenModel, data: Float32Array, batchSize: number): Promise<Record<string, Float32Array>> {
  const tensor = new ort.ort.Tensor('float32', data, [batchSize, ...m.tileDims]);
  const result = await m.session.run({ [m.inputName]: tensor }, m.outputNames);
  const outputs: Record<string, Float32Array> = {};
  for (const name of m.outputNames) {
    const t = result[name];
    if (t?.type !== 'float32') throw new ScanlineError('SCANLINE_ERR_INFER_FAILED', `output "${name}" missing or not float32`);
    const problem = checkOutputDims(m, name, t.dims, batchSize);
    if (problem) throw new ScanlineError('SCANLINE_ERR_MODEL_MISMATCH', `model ${m.spec.name}: ${problem}`, { model: m.spec.name, problems: [problem] });
    outputs[name] = t.data as Float32Array;
  }
  return outputs;
}

async function warmUp(ort: OrtModule, m: OpenModel): Promise<void> {
  const largest = Math.max(...init.warmupBatchSizes);
  const zeros = new Float32Array(largest * m.tileFloats);
  for (const n of init.warmupBatchSizes) await runBatch(ort, m, zeros.subarray(0, n * m.tileFloats), n);
}

async function openModel(ort: OrtModule, spec: WorkerModelSpec, supported: string[]): Promise<OpenModel> {
  const attempts: ProviderAttempt[] = [];
  const manifest = spec.manifest;
  for (const provider of init.executionProviders) {
    if (!supported.includes(provider)) {
      attempts.push({ provider, precision: 'fp32', ok: false, error: 'not available in this onnxruntime-node build', seconds: 0 });
      continue;
    }
    const precisions: ModelPrecision[] = GPU_EXECUTION_PROVIDERS.has(provider) && init.preferFp16OnGpu && spec.fp16Path ? ['fp16', 'fp32'] : ['fp32'];
    for (const precision of precisions) {
      const path = precision === 'fp16' && spec.fp16Path ? spec.fp16Path : spec.fp32Path;
      const t0 = performance.now();
      let session: import('./ort.js').OrtSession;
      try {
        session = await ort.createSession(path, {
          provider,
          deviceId: init.deviceId,
          intraOpThreads: init.intraOpThreads,
          allowSpinning: init.allowSpinning,
          logLevel: init.ortLogLevel,
        });
      } catch (err) {
        const message = messageOf(err);
        const unavailable = /AppendExecutionProvider/.test(message);
        attempts.push({
          provider,
          precision,
          ok: false,
          error: /shared library/i.test(message) && provider !== 'webgpu' ? `${message} (${GPU_SETUP_HINT})` : message,
          seconds: (performance.now() - t0) / 1000,
        });
        // The provider itself could not be set up (libraries, device): no other file will fare better on it.
        if (unavailable) break;
        continue;
      }
      // A model that does not match its manifest is a packaging error, not a provider problem: no fallback.
      const problems = checkModelIo(manifest, session.inputMetadata, session.outputMetadata);
      if (problems.length > 0) {
        await session.release().catch(() => undefined);
        throw new ScanlineError('SCANLINE_ERR_MODEL_MISMATCH', `model ${spec.name} (${path}) does not match its manifest:\n  - ${problems.join('\n  - ')}`, {
          model: spec.name,
          file: path,
          problems,
        });
      }
      const [, c, h, w] = manifest.input.shape;
      const m: OpenModel = {
        spec,
        session,
        inputName: manifest.input.name,
        tileDims: [c, h, w],
        tileFloats: c * h * w,
        norm: createNormalizer(manifest.input),
        outputNames: manifest.outputs.map((o) => o.name),
        outputDims: manifest.outputs.map((o) => o.shape.slice(1)),
        imageFeatures: init.imageFeatures !== undefined && manifest.outOfDistribution !== undefined && h === w && c >= 1 && c <= 2,
        status: { model: spec.name, provider, precision, attempts, warmup: { batchSizes: [...init.warmupBatchSizes], seconds: 0 } },
      };
      const w0 = performance.now();
      try {
        await warmUp(ort, m);
      } catch (err) {
        await session.release().catch(() => undefined);
        if (err instanceof ScanlineError && err.code === 'SCANLINE_ERR_MODEL_MISMATCH') throw err;
        // A provider that opens the model but cannot run it (kernel missing, out of memory) is passed over.
        attempts.push({ provider, precision, ok: false, error: `warm-up failed: ${messageOf(err)}`, seconds: (performance.now() - t0) / 1000 });
        continue;
      }
      m.status.warmup.seconds = (performance.now() - w0) / 1000;
      attempts.push({ provider, precision, ok: true, seconds: (performance.now() - t0) / 1000 });
      return m;
    }
  }
  throw new ScanlineError(
    'SCANLINE_ERR_MODEL_LOAD',
    `model ${spec.name} could not be opened on any execution provider: ${attempts.map((a) => `${a.provider}/${a.precision}: ${a.error ?? 'ok'}`).join('; ')}`,
    { model: spec.name, attempts },
  );
}

const models = new Map<string, OpenModel>();
let ortModule: OrtModule | undefined;
let runsReceived = 0;
/** Batches run one at a time, in arrival order; `close` waits behind them. */
let chain: Promise<void> = Promise.resolve();

async function handleRun(msg: Extract<ToWorker, { type: 'run' }>): Promise<void> {
  const m = models.get(msg.model);
  if (!m || !ortModule) {
    post(
      {
        type: 'run-failed',
        id: msg.id,
        error: serialize(new ScanlineError('SCANLINE_ERR_INFER_FAILED', `model ${msg.model} is not loaded in this worker`), 'SCANLINE_ERR_INFER_FAILED'),
        input: msg.input,
      },
      [msg.input],
    );
    return;
  }
  const floats = msg.batchSize * m.tileFloats;
  if (!Number.isInteger(msg.batchSize) || msg.batchSize < 1 || msg.input.byteLength < floats * 4) {
    const e = new ScanlineError('SCANLINE_ERR_INFER_FAILED', `batch of ${msg.batchSize} does not fit an input of ${msg.input.byteLength} bytes`);
    post({ type: 'run-failed', id: msg.id, error: serialize(e, 'SCANLINE_ERR_INFER_FAILED'), input: msg.input }, [msg.input]);
    return;
  }
  // computeSeconds is this worker's time on the batch: image statistics, normalisation and the model (the busy-time
  // counter sums it).
  const t0 = performance.now();
  let outputs: Record<string, Float32Array>;
  let features: Float64Array | undefined;
  try {
    const batch = new Float32Array(msg.input, 0, floats);
    if (m.imageFeatures && init.imageFeatures) {
      // Read from the raw tiles, before the model's normalisation: the statistics the manifest was fitted on.
      features = new Float64Array(msg.batchSize * IMAGE_FEATURE_COUNT);
      const [channels, size] = m.tileDims;
      for (let i = 0; i < msg.batchSize; i++) {
        tileImageFeatures(
          batch.subarray(i * m.tileFloats, (i + 1) * m.tileFloats),
          size,
          channels,
          init.imageFeatures.attenuationMax,
          features.subarray(i * IMAGE_FEATURE_COUNT, (i + 1) * IMAGE_FEATURE_COUNT),
        );
      }
    }
    normalizeBatchInPlace(batch, msg.batchSize, m.norm);
    outputs = await runBatch(ortModule, m, batch, msg.batchSize);
  } catch (err) {
    post({ type: 'run-failed', id: msg.id, error: serialize(err, 'SCANLINE_ERR_INFER_FAILED'), input: msg.input }, [msg.input]);
    return;
  }
  const computeSeconds = (performance.now() - t0) / 1000;
  const transfer: ArrayBuffer[] = [msg.input];
  for (const [name, data] of Object.entries(outputs)) {
    // Transfer only a buffer the output owns whole; otherwise send a tight copy.
    const own = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength && data.buffer instanceof ArrayBuffer;
    const out = own ? data : data.slice();
    outputs[name] = out;
    transfer.push(out.buffer as ArrayBuffer);
  }
  if (features) transfer.push(features.buffer as ArrayBuffer);
  post({ type: 'result', id: msg.id, outputs, input: msg.input, computeSeconds, ...(features ? { imageFeatures: features } : {}) }, transfer);
}

async function close(): Promise<void> {
  for (const m of models.values()) await m.session.release().catch(() => undefined);
  models.clear();
  post({ type: 'closed' });
  port.close();
}

port.on('message', (msg: ToWorker) => {
  if (msg.type === 'run') {
    runsReceived++;
    if (init.faults?.crashOnRun === runsReceived) throw new Error(`injected crash on run ${runsReceived} (faults.crashOnRun)`);
    if (init.faults?.hangOnRun === runsReceived) {
      log('warn', { run: runsReceived }, 'injected hang (faults.hangOnRun)');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
    }
    chain = chain.then(() => handleRun(msg));
  } else if (msg.type === 'close') {
    chain = chain.then(close);
  }
});

/**
 * Lowers this thread's scheduling priority before ONNX Runtime starts its threads (they inherit it): SCHED_IDLE when
 * asked and available (the native addon, Linux), else setpriority on the thread id from /proc/thread-self (Linux).
 * Elsewhere, or if both fail, inference runs at normal priority. Returns what was applied.
 */
function lowerPriority(schedIdle: boolean, nice: number): WorkerScheduling {
  if (schedIdle) {
    try {
      if (setThreadIdleScheduling() === 'idle') return 'idle';
      // Other platforms have no SCHED_IDLE: the niceness is the documented fallback, not worth a warning there.
      if (process.platform === 'linux') log('warn', { nice }, 'SCHED_IDLE is not available (native addon not loaded); the inference worker uses its niceness');
    } catch (err) {
      log('warn', { nice, err: messageOf(err) }, 'could not put the inference worker under SCHED_IDLE; it uses its niceness');
    }
  }
  if (nice === 0 || process.platform !== 'linux') return 'normal';
  try {
    const tid = Number(readlinkSync('/proc/thread-self').split('/').pop());
    if (Number.isInteger(tid) && tid > 0) {
      setPriority(tid, nice);
      return `nice ${nice}`;
    }
  } catch (err) {
    log('warn', { nice, err: messageOf(err) }, 'could not lower the inference worker priority');
  }
  return 'normal';
}

async function start(): Promise<void> {
  const scheduling = lowerPriority(init.schedIdle, init.nice);
  try {
    ortModule = await import('./ort.js');
  } catch (err) {
    post({
      type: 'init-failed',
      error: serialize(
        new ScanlineError('SCANLINE_ERR_INFER_WORKER_START', `onnxruntime-node does not load: ${messageOf(err)}`),
        'SCANLINE_ERR_INFER_WORKER_START',
      ),
    });
    return;
  }
  try {
    ortModule.setOrtLogLevel(init.ortLogLevel);
    const supported = ortModule.supportedProviders();
    for (const spec of init.models) models.set(spec.name, await openModel(ortModule, spec, supported));
    post({ type: 'ready', ortVersion: ortModule.ortVersion(), supportedProviders: supported, models: [...models.values()].map((m) => m.status), scheduling });
  } catch (err) {
    for (const m of models.values()) await m.session.release().catch(() => undefined);
    models.clear();
    post({ type: 'init-failed', error: serialize(err, 'SCANLINE_ERR_MODEL_LOAD') });
  }
}

void start();
