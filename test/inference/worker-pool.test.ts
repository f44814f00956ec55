// The worker pool through its backend (OnnxWorkerBackend): batches run in worker threads on real ONNX Runtime,
// buffers are transferred, crashed and hung workers are replaced and their batches fail with a code.

import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ScanlineError } from '../../src/errors/index.js';
import { silentLogger } from '../../src/log/index.js';
import {
  OnnxWorkerBackend,
  createNormalizer,
  discoverModels,
  packTile,
  resolveInferenceConfig,
  type InferenceConfigInput,
  type LoadedModel,
} from '../../src/inference/index.js';
import { createSession, ort } from '../../src/inference/ort.js';
import { MODELS_DIR, TILE_FLOATS, assertWorkerBuilt, makeTile } from './helpers.js';

let models: LoadedModel[];
let backend: OnnxWorkerBackend | null = null;

beforeAll(async () => {
  assertWorkerBuilt();
  models = await discoverModels(MODELS_DIR);
});
afterEach(async () => {
  await backend?.close();
  backend = null;
});

function start(config: InferenceConfigInput, extra: Partial<ConstructorParameters<typeof OnnxWorkerBackend>[0]> = {}) {
  const counters = { workerCrashes: 0, workerRestarts: 0, batchTimeouts: 0 };
  backend = new OnnxWorkerBackend({
    config: resolveInferenceConfig({ executionProviders: ['cpu'], intraOpThreads: 1, ...config }),
    log: silentLogger(),
    counters,
    restartDelayMs: { min: 10, max: 50 },
    ...extra,
  });
  return { backend, counters };
}

/** A batch of `n` raw fixture tiles (seeds from `seed`), in a buffer of its own; the workers normalise it. */
function batchOf(n: number, seed: number): Float32Array {
  const b = new Float32Array(n * TILE_FLOATS);
  for (let i = 0; i < n; i++) b.set(makeTile(seed + i), i * TILE_FLOATS);
  return b;
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(ScanlineError);
    return (err as ScanlineError).code;
  }
}

async function waitFor(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('worker pool', () => {
  it('runs batches in worker threads with transferred buffers; outputs equal a direct single-tile run', async () => {
    const { backend } = start({ workers: 2, batching: { maxBatchSize: 8, preferredBatchSizes: [] } });
    await backend.load(models, { warmupBatchSizes: [1, 8] });
    const threats = models.find((m) => m.manifest.name === 'threats-tiny')!;
    const batch = batchOf(8, 100);
    const copy = batch.slice();
    const pending = backend.run('threats-tiny', batch, 8);
    expect(batch.buffer.byteLength).toBe(0); // transferred to the worker, not copied
    const r = await pending;
    expect(r.outputs.heatmap).toHaveLength(8 * 3 * 16 * 16);
    expect(r.input).toBeInstanceOf(Float32Array); // handed back for reuse
    expect(r.input!.length).toBe(8 * TILE_FLOATS);
    expect(r.computeSeconds).toBeGreaterThan(0);

    // The same tiles one by one on the main thread (normalised here) give the same numbers.
    expect(backend.inputNormalization).toBe('backend');
    const norm = createNormalizer(threats.manifest.input);
    const direct = await createSession(threats.files.fp32, { provider: 'cpu', deviceId: 0, intraOpThreads: 1, allowSpinning: false });
    for (let i = 0; i < 8; i++) {
      const x = new Float32Array(TILE_FLOATS);
      packTile(x, 0, copy.subarray(i * TILE_FLOATS, (i + 1) * TILE_FLOATS), norm);
      const out = await direct.run({ tiles: new ort.Tensor('float32', x, [1, 2, 64, 64]) });
      expect(Array.from(r.outputs.heatmap.subarray(i * 768, (i + 1) * 768))).toEqual(Array.from(out.heatmap.data as Float32Array));
    }
    await direct.release();

    // Several batches in flight spread over both workers.
    await Promise.all(Array.from({ length: 8 }, (_, k) => backend.run('goods-tiny', batchOf(8, k * 8), 8)));
    const workers = backend.status().workers;
    expect(workers.map((w) => w.state)).toEqual(['ready', 'ready']);
    expect(workers.every((w) => w.batchesRun >= 2)).toBe(true);
  });

  it('fails the batches of a crashed worker with a code, replaces the worker and runs on', async () => {
    // One worker, so that batches 3 and 4 queue in the one that crashes.
    const { backend, counters } = start({ workers: 1 }, { faults: { crashOnRun: 2 } });
    await backend.load(models, { warmupBatchSizes: [4] });
    expect(await codeOf(backend.run('goods-tiny', batchOf(4, 0), 4))).toBe('ok');
    // Run 2 crashes the worker while 3 and 4 are queued in it: each fails, exactly once.
    const runs = Array.from({ length: 3 }, (_, k) => backend.run('goods-tiny', batchOf(4, k * 4), 4));
    const codes = await Promise.all(runs.map(codeOf));
    expect(codes).toEqual(['SCANLINE_ERR_INFER_WORKER_CRASHED', 'SCANLINE_ERR_INFER_WORKER_CRASHED', 'SCANLINE_ERR_INFER_WORKER_CRASHED']);
    expect(counters.workerCrashes).toBe(1);
    expect(backend.status().ready).toBe(false);
    await waitFor(() => backend.status().ready);
    expect(counters.workerRestarts).toBe(1);
    expect(backend.status().workers[0]).toMatchObject({ state: 'ready', restarts: 1, lastError: expect.stringMatching(/crashed .*injected crash/) });
    expect(await codeOf(backend.run('goods-tiny', batchOf(4, 0), 4))).toBe('ok');
  });

  it('times out a hung batch, replaces its worker, and queues batches while no worker is ready', async () => {
    // 2 s leaves room for the replacement worker to start on a loaded 2-core machine before the queued batch runs.
    const { backend, counters } = start({ workers: 1, batchTimeoutMs: 2000 }, { faults: { hangOnRun: 1 } });
    await backend.load(models, { warmupBatchSizes: [2] });
    const t0 = Date.now();
    expect(await codeOf(backend.run('goods-tiny', batchOf(2, 0), 2))).toBe('SCANLINE_ERR_INFER_BATCH_TIMEOUT');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1950);
    expect(counters.batchTimeouts).toBe(1);
    // Sent while the replacement is starting: waits for it, then runs.
    expect(await codeOf(backend.run('goods-tiny', batchOf(2, 0), 2))).toBe('ok');
    expect(counters.workerRestarts).toBe(1);
  });

  it('refuses to start without the compiled worker', async () => {
    const { backend } = start({}, { workerUrl: new URL('file:///nonexistent/inference-worker.js') });
    const code = await codeOf(backend.load(models, { warmupBatchSizes: [1] }));
    expect(code).toBe('SCANLINE_ERR_INFER_WORKER_START');
  });

  it('close lets a worker finish what it holds, then refuses new batches', async () => {
    const { backend } = start({});
    await backend.load([models[1]], { warmupBatchSizes: [8] });
    const running = backend.run('threats-tiny', batchOf(8, 0), 8);
    const closing = backend.close();
    expect(await codeOf(running)).toBe('ok');
    await closing;
    expect(await codeOf(backend.run('threats-tiny', batchOf(8, 0), 8))).toBe('SCANLINE_ERR_INFER_CLOSED');
    expect(backend.status()).toMatchObject({ ready: false, reason: 'closed' });
  });
});
