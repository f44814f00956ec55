// The inference stage through its public door: real models from the fixtures, real ONNX Runtime in a worker.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ScanlineError } from '../../src/errors/index.js';
import {
  OnnxWorkerBackend,
  createInference,
  createNormalizer,
  loadModel,
  packTile,
  type Inference,
  type InferenceStats,
  type TileResult,
} from '../../src/inference/index.js';
import { createSession, ort } from '../../src/inference/ort.js';
import { BAD_MODELS_DIR, MODELS_DIR, TILE_FLOATS, assertWorkerBuilt, makeTile, tick } from './helpers.js';

const CPU = { executionProviders: ['cpu' as const], intraOpThreads: 1 };
let inference: Inference | null = null;

beforeAll(() => assertWorkerBuilt());
afterEach(async () => {
  await inference?.close();
  inference = null;
});

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(ScanlineError);
    return (err as ScanlineError).code;
  }
}

function addsUp(stats: InferenceStats): void {
  for (const [name, m] of stats.models) {
    for (const p of ['live', 'reanalysis'] as const) {
      const c = m.tiles[p];
      expect(c.ok + c.rejected + c.expired + c.failed, `${name} ${p}`).toBe(c.submitted);
    }
  }
}

describe('createInference', () => {
  it('loads the models, reports ready, and gives each tile the numbers a direct single-tile run gives', async () => {
    inference = await createInference({ modelsDir: MODELS_DIR, config: { ...CPU, batching: { maxBatchSize: 16 } } });
    const s = inference.status();
    expect(s).toMatchObject({ ready: true, reason: null, phase: 'ready' });
    expect(s.models['goods-tiny']).toEqual({
      task: 'goods',
      version: '0.0.1',
      provider: 'cpu',
      precision: 'fp32',
      queued: { live: 0, reanalysis: 0 },
      inFlightBatches: 0,
    });
    expect(s.backend.workers[0].models[0].warmup.batchSizes).toEqual(Array.from({ length: 16 }, (_, i) => i + 1));
    expect(inference.models.map((m) => m.name)).toEqual(['goods-tiny', 'threats-tiny']);
    expect(inference.modelFor('threats')?.name).toBe('threats-tiny');

    const tiles = Array.from({ length: 40 }, (_, i) => makeTile(1000 + i));
    const results: Record<string, Array<TileResult<number>>> = {};
    for (const model of ['goods-tiny', 'threats-tiny']) {
      results[model] = await Promise.all(
        tiles.map((t, i) => inference!.submit({ model, scanId: 's1', portalId: `p${i % 3}`, data: t.slice(), priority: 'live', meta: i })),
      );
    }
    expect(new Set(results['goods-tiny'].map((r) => r.batchSize)).size).toBeGreaterThan(0);
    expect(Math.max(...results['goods-tiny'].map((r) => r.batchSize))).toBe(16);

    for (const model of ['goods-tiny', 'threats-tiny']) {
      const m = await loadModel(`${MODELS_DIR}/${model}`);
      const norm = createNormalizer(m.manifest.input);
      const session = await createSession(m.files.fp32, { provider: 'cpu', deviceId: 0, intraOpThreads: 1, allowSpinning: false });
      for (let i = 0; i < tiles.length; i += 7) {
        const x = new Float32Array(TILE_FLOATS);
        packTile(x, 0, tiles[i], norm);
        const direct = await session.run({ tiles: new ort.Tensor('float32', x, [1, 2, 64, 64]) });
        const r = results[model][i];
        expect(r.meta).toBe(i);
        for (const o of m.manifest.outputs) {
          expect(r.outputs[o.name]).toHaveLength(m.outputFloats[o.name]);
          expect(Array.from(r.outputs[o.name]), `${model} ${o.name} tile ${i}`).toEqual(Array.from(direct[o.name].data as Float32Array));
        }
      }
      await session.release();
    }
    expect(inference.stats.models.get('goods-tiny')!.tiles.live).toMatchObject({ submitted: 40, ok: 40 });
    addsUp(inference.stats);
  });

  it('refuses unknown models and invalid tiles with caller codes, counted apart', async () => {
    inference = await createInference({ modelsDir: MODELS_DIR, config: { ...CPU, models: ['goods-tiny'] } });
    const tile = { scanId: 's', portalId: 'p', data: makeTile(1), priority: 'live' as const };
    expect(await codeOf(inference.submit({ ...tile, model: 'threats-tiny' }))).toBe('SCANLINE_ERR_INFER_UNKNOWN_MODEL');
    expect(await codeOf(inference.submit({ ...tile, model: 'goods-tiny', data: new Float32Array(10) }))).toBe('SCANLINE_ERR_INFER_BAD_TILE');
    expect(await codeOf(inference.submit({ ...tile, model: 'goods-tiny', priority: 'urgent' as never }))).toBe('SCANLINE_ERR_INFER_BAD_TILE');
    expect(await codeOf(inference.submit({ ...tile, model: 'goods-tiny', deadlineMs: -5 }))).toBe('SCANLINE_ERR_INFER_BAD_TILE');
    expect(inference.stats).toMatchObject({ unknownModelTiles: 1, invalidTiles: 3 });
    expect(inference.stats.models.get('goods-tiny')!.tiles.live.submitted).toBe(0);
  });

  it('refuses to start with a model that does not match its manifest, leaving nothing running', async () => {
    const err = await codeOf(createInference({ modelsDir: BAD_MODELS_DIR, config: CPU }));
    expect(err).toBe('SCANLINE_ERR_MODEL_MISMATCH');
  });

  it('without models it starts but is not ready, and says why', async () => {
    inference = await createInference({ modelsDir: `${MODELS_DIR}/none`, config: CPU });
    expect(inference.status()).toMatchObject({ ready: false, reason: 'no models loaded' });
  });

  it('close drains queued tiles, then refuses new ones', async () => {
    const inf = await createInference({ modelsDir: MODELS_DIR, config: { ...CPU, models: ['threats-tiny'] } });
    const all = Array.from({ length: 100 }, (_, i) =>
      inf.submit({ model: 'threats-tiny', scanId: 's', portalId: 'p', data: makeTile(i), priority: 'reanalysis' }),
    );
    const closing = inf.close();
    expect(inf.status()).toMatchObject({ ready: false, phase: 'draining' });
    expect(await codeOf(inf.submit({ model: 'threats-tiny', scanId: 's', portalId: 'p', data: makeTile(0), priority: 'live' }))).toBe(
      'SCANLINE_ERR_INFER_CLOSED',
    );
    expect((await Promise.all(all.map(codeOf))).every((c) => c === 'ok')).toBe(true);
    await closing;
    expect(inf.status().phase).toBe('closed');
    addsUp(inf.stats);
  });

  it('a crashed worker fails the tiles of its batches with a code and is replaced; counts add up', async () => {
    inference = await createInference({
      modelsDir: MODELS_DIR,
      // One worker: every batch in flight is in the worker that crashes.
      config: { ...CPU, workers: 1, models: ['goods-tiny'], batching: { maxBatchSize: 4, preferredBatchSizes: [4], maxInFlightBatches: 3 } },
      backend: ({ config, log, stats }) =>
        new OnnxWorkerBackend({ config, log, counters: stats, faults: { crashOnRun: 2 }, restartDelayMs: { min: 10, max: 50 } }),
    });
    const submit = (i: number): Promise<string> =>
      codeOf(inference!.submit({ model: 'goods-tiny', scanId: 's', portalId: 'p', data: makeTile(i), priority: 'live' }));
    expect(await Promise.all([0, 1, 2, 3].map(submit))).toEqual(['ok', 'ok', 'ok', 'ok']);
    const codes = await Promise.all(Array.from({ length: 12 }, (_, i) => submit(i)));
    expect(codes).toEqual(Array(12).fill('SCANLINE_ERR_INFER_WORKER_CRASHED')); // three batches of 4 were in the worker
    expect(inference.stats).toMatchObject({ workerCrashes: 1 });
    while (!inference.status().ready) await tick(10);
    expect(inference.stats.workerRestarts).toBe(1);
    expect(await Promise.all([0, 1, 2, 3, 4].map(submit))).toEqual(Array(5).fill('ok'));
    expect(inference.stats.models.get('goods-tiny')!.tiles.live).toMatchObject({ submitted: 21, ok: 9, failed: 12 });
    addsUp(inference.stats);
  });
});

describe('event loop', () => {
  it('stays responsive while batches run: delay p99 far below the time of one batch', async () => {
    inference = await createInference({
      modelsDir: MODELS_DIR,
      config: { ...CPU, models: ['threats-tiny'], batching: { maxBatchSize: 64, preferredBatchSizes: [64], maxInFlightBatches: 2 } },
    });
    const tiles = Array.from({ length: 64 }, (_, i) => makeTile(i));
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    const t0 = performance.now();
    const pending: Array<Promise<string>> = [];
    // Bursts of 64 tiles every 40 ms for 1.5 s (about what one CPU core runs), as stitch jobs produce them.
    while (performance.now() - t0 < 1_500) {
      for (const t of tiles)
        pending.push(codeOf(inference.submit({ model: 'threats-tiny', scanId: 's', portalId: 'p', data: t.slice(), priority: 'live', deadlineMs: 60_000 })));
      await tick(40);
    }
    const done = await Promise.all(pending);
    h.disable();
    const stats = inference.stats.models.get('threats-tiny')!;
    const computeMean = stats.computeSeconds.sum / stats.computeSeconds.count;
    const p99 = h.percentile(99) / 1e6;
    const tilesPerSecond = done.length / ((performance.now() - t0) / 1000);
    console.log(
      `event loop: p50 ${(h.percentile(50) / 1e6).toFixed(2)} ms, p99 ${p99.toFixed(2)} ms, max ${(h.max / 1e6).toFixed(2)} ms; ` +
        `${stats.batches} batches, mean compute ${(computeMean * 1000).toFixed(1)} ms/batch, ${tilesPerSecond.toFixed(0)} tiles/s`,
    );
    expect(done.every((c) => c === 'ok')).toBe(true);
    expect(computeMean).toBeGreaterThan(0.015); // the check below only means something if batches take a while
    expect(p99).toBeLessThan(Math.max(5, (computeMean * 1000) / 2));
  });

  it('(control) the same batches run on the main thread block it for a whole batch', async () => {
    const m = await loadModel(`${MODELS_DIR}/threats-tiny`);
    const session = await createSession(m.files.fp32, { provider: 'cpu', deviceId: 0, intraOpThreads: 1, allowSpinning: false });
    const x = new ort.Tensor('float32', new Float32Array(64 * TILE_FLOATS).fill(0.5), [64, 2, 64, 64]);
    await session.run({ tiles: x });
    const h = monitorEventLoopDelay({ resolution: 1 });
    h.enable();
    const t0 = performance.now();
    let runs = 0;
    while (performance.now() - t0 < 500) {
      await session.run({ tiles: x });
      runs++;
      await tick(1);
    }
    h.disable();
    const perRun = (performance.now() - t0) / runs;
    await session.release();
    expect(h.percentile(99) / 1e6).toBeGreaterThan(perRun / 2);
  });
});
