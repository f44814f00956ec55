// The inference stage through its public door: real models from the fixtures, real ONNX Runtime in a worker.
// Behaviour only (results bit-exact with a direct run, codes, counts): how fast batches run and how responsive the
// event loop stays while they do depend on the machine, and are measured by bench:infer against baselines in the
// same run (its direct run: event-loop delay p99 against the batch compute time).
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ScanlineError } from '../../src/errors/index.js';
import {
  OnnxWorkerBackend,
  createInference,
  createNormalizer,
  defaultModelsDir,
  loadModel,
  packTile,
  type Inference,
  type InferenceStats,
  type TileResult,
} from '../../src/inference/index.js';
import { createSession, ort } from '../../src/inference/ort.js';
import { IMAGE_FEATURE_COUNT, tileImageFeatures } from '../../src/opinion/index.js';
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

describe('image statistics on the worker', () => {
  it("reads each raw tile's statistics on the worker for a model with out-of-distribution statistics, exactly as the results stage would", async () => {
    // goods-v1 (the demo model) carries outOfDistribution statistics; its raw tiles are 2 x 64 x 64, attenuation 0..10.
    inference = await createInference({
      modelsDir: defaultModelsDir(),
      config: { ...CPU, workers: 1, models: ['goods-v1'], batching: { maxBatchSize: 4, preferredBatchSizes: [4] } },
      imageFeatures: { attenuationMax: 10 },
    });
    const tiles = Array.from({ length: 6 }, (_, i) => makeTile(300 + i));
    const got = await Promise.all(tiles.map((t) => inference!.submit({ model: 'goods-v1', scanId: 's', portalId: 'p', data: t.slice(), priority: 'live' })));
    for (let i = 0; i < tiles.length; i++) {
      const expected = tileImageFeatures(tiles[i], 64, 2, 10, new Float64Array(IMAGE_FEATURE_COUNT));
      expect(got[i].imageFeatures && [...got[i].imageFeatures!]).toEqual([...expected]);
    }
    await inference.close();
    // Not asked for (a caller that reads them itself): none.
    inference = await createInference({ modelsDir: defaultModelsDir(), config: { ...CPU, workers: 1, models: ['goods-v1'] } });
    const plain = await inference.submit({ model: 'goods-v1', scanId: 's', portalId: 'p', data: makeTile(1), priority: 'live' });
    expect(plain.imageFeatures).toBeUndefined();
  });

  it('reads a single-energy tile as one energy (goods-1e-v1)', async () => {
    inference = await createInference({
      modelsDir: defaultModelsDir(),
      config: { ...CPU, workers: 1, models: ['goods-1e-v1'] },
      imageFeatures: { attenuationMax: 10 },
    });
    const tile = makeTile(7).subarray(0, 64 * 64);
    const r = await inference.submit({ model: 'goods-1e-v1', scanId: 's', portalId: 'p', data: tile.slice(), priority: 'live' });
    expect(r.imageFeatures && [...r.imageFeatures]).toEqual([...tileImageFeatures(tile, 64, 1, 10, new Float64Array(IMAGE_FEATURE_COUNT))]);
  });

  it('reads none for a model without out-of-distribution statistics', async () => {
    inference = await createInference({ modelsDir: MODELS_DIR, config: { ...CPU, workers: 1, models: ['goods-tiny'] }, imageFeatures: { attenuationMax: 10 } });
    const r = await inference.submit({ model: 'goods-tiny', scanId: 's', portalId: 'p', data: makeTile(2), priority: 'live' });
    expect(r.imageFeatures).toBeUndefined();
  });
});
