// The dynamic batcher on real ONNX Runtime (fixture goods model in a worker), with a gate in front of the backend
// so each test decides when batches complete.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ScanlineError } from '../../src/errors/index.js';
import { silentLogger } from '../../src/log/index.js';
import {
  DEFAULT_INFERENCE_CONFIG,
  DynamicBatcher,
  OnnxWorkerBackend,
  createModelInferenceStats,
  discoverModels,
  resolveInferenceConfig,
  type BatchingConfig,
  type LoadedModel,
  type ModelInferenceStats,
  type TilePriority,
  type TileResult,
} from '../../src/inference/index.js';
import { GatedBackend, MODELS_DIR, assertWorkerBuilt, makeTile, tick } from './helpers.js';

let goods: LoadedModel;
let real: OnnxWorkerBackend;

beforeAll(async () => {
  assertWorkerBuilt();
  [goods] = await discoverModels(MODELS_DIR, { names: ['goods-tiny'] });
  real = new OnnxWorkerBackend({ config: resolveInferenceConfig({ executionProviders: ['cpu'], intraOpThreads: 1 }), log: silentLogger() });
  await real.load([goods], { warmupBatchSizes: [1, 2, 4, 8] });
});
afterAll(() => real.close());

interface Rig {
  batcher: DynamicBatcher;
  gate: GatedBackend;
  stats: ModelInferenceStats;
  /** Settlement of every submitted tile, in submit order: the result, or the error code. */
  outcomes: Array<TileResult<string> | string | undefined>;
  submit(portalId: string, priority: TilePriority, tag: string, deadlineMs?: number): Promise<TileResult<string> | string>;
}

function rig(cfg: Partial<BatchingConfig>): Rig {
  const config: BatchingConfig = { ...DEFAULT_INFERENCE_CONFIG.batching, maxQueueDelayMicros: 0, preferredBatchSizes: [], ...cfg };
  const gate = new GatedBackend(real);
  const stats = createModelInferenceStats();
  const batcher = new DynamicBatcher({ model: goods, config, backend: gate, stats, log: silentLogger() });
  const outcomes: Rig['outcomes'] = [];
  let seed = 0;
  const submit: Rig['submit'] = (portalId, priority, tag, deadlineMs) => {
    const i = outcomes.push(undefined) - 1;
    const settle = (v: TileResult<string> | string): TileResult<string> | string => {
      if (outcomes[i] !== undefined) throw new Error(`tile ${tag} settled twice`);
      outcomes[i] = v;
      return v;
    };
    return batcher
      .submit({ model: 'goods-tiny', scanId: `scan-${portalId}`, portalId, data: makeTile(++seed), priority, meta: tag, ...(deadlineMs ? { deadlineMs } : {}) })
      .then(settle, (err: unknown) => {
        expect(err).toBeInstanceOf(ScanlineError);
        return settle((err as ScanlineError).code);
      });
  };
  return { batcher, gate, stats, outcomes, submit };
}

/** Releases held batches until every promise settled. */
async function runToEnd(r: Rig, all: Array<Promise<unknown>>): Promise<void> {
  r.gate.autoRelease = true;
  r.gate.releaseAll();
  await Promise.all(all);
}

function addsUp(stats: ModelInferenceStats): void {
  for (const p of ['live', 'reanalysis'] as const) {
    const c = stats.tiles[p];
    expect(c.ok + c.rejected + c.expired + c.failed, `${p} outcomes`).toBe(c.submitted);
  }
}

const code = (v: TileResult<string> | string | undefined): string | undefined => (typeof v === 'object' ? 'ok' : v);

describe('dynamic batcher', () => {
  it('respects maxBatchSize and keeps maxInFlightBatches batches in flight', async () => {
    const r = rig({ maxBatchSize: 8, maxInFlightBatches: 3 });
    const all = Array.from({ length: 50 }, (_, i) => r.submit('p1', 'live', `t${i}`));
    await r.gate.waitHeld(3);
    await tick(20);
    expect(r.gate.held.map((h) => h.batchSize)).toEqual([8, 8, 8]);
    expect(r.batcher.inFlightBatches).toBe(3);
    expect(r.batcher.queued.live).toBe(26);
    await runToEnd(r, all);
    expect(r.gate.batches.map((b) => b.batchSize)).toEqual([8, 8, 8, 8, 8, 8, 2]);
    expect(r.outcomes.every((o) => code(o) === 'ok')).toBe(true);
    expect(r.stats.batchSize.counts[r.stats.batchSize.bounds.indexOf(8)]).toBe(6);
    expect(r.stats.queueWaitSeconds.count).toBe(50);
    expect(r.stats.computeSeconds.count).toBe(7);
    addsUp(r.stats);
  });

  it('sends a partial batch once the oldest tile waited maxQueueDelayMicros, not before (idleDispatch off)', async () => {
    const r = rig({ maxBatchSize: 8, maxQueueDelayMicros: 60_000, idleDispatch: false });
    r.gate.autoRelease = true;
    const t0 = performance.now();
    const all = [r.submit('p1', 'live', 'a'), r.submit('p1', 'live', 'b')];
    await tick(20);
    expect(r.gate.batches).toHaveLength(0);
    all.push(r.submit('p2', 'live', 'c')); // joins the waiting batch; the delay counts from the oldest tile
    await Promise.all(all);
    expect(r.gate.batches.map((b) => b.batchSize)).toEqual([3]);
    const waited = r.gate.batches[0].at - t0;
    expect(waited).toBeGreaterThanOrEqual(58);
    expect(waited).toBeLessThan(400);
    addsUp(r.stats);
  });

  it('with idleDispatch, sends at once while nothing is in flight, split over the free slots; then batches wait', async () => {
    const r = rig({ maxBatchSize: 16, preferredBatchSizes: [8], maxQueueDelayMicros: 60_000, maxInFlightBatches: 2, idleDispatch: true });
    // One column of 5 tiles with the model idle: no wait for a preferred size or the delay, 3 + 2 over both slots.
    const t0 = performance.now();
    const all = Array.from({ length: 5 }, (_, i) => r.submit(`p${i % 2}`, 'live', `c${i}`));
    await r.gate.waitHeld(2);
    expect(r.gate.held.map((h) => h.batchSize)).toEqual([3, 2]);
    expect(r.gate.batches[1].at - t0).toBeLessThan(50);
    // While those are in flight, new tiles wait (both slots are taken), and when one slot frees they follow the
    // usual rules: 4 < the preferred 8, one batch still in flight, so they wait for the queue delay.
    all.push(...Array.from({ length: 4 }, (_, i) => r.submit('p1', 'live', `d${i}`)));
    const t1 = performance.now();
    r.gate.held[0].release();
    await tick(20);
    expect(r.gate.batches).toHaveLength(2);
    await r.gate.waitHeld(2);
    expect(r.gate.batches.map((b) => b.batchSize)).toEqual([3, 2, 4]);
    expect(r.gate.batches[2].at - t1).toBeGreaterThanOrEqual(40);
    await runToEnd(r, all);
    expect(r.outcomes.every((o) => code(o) === 'ok')).toBe(true);
    addsUp(r.stats);
  });

  it('with idleDispatch, still sends full and preferred batches as usual', async () => {
    const r = rig({ maxBatchSize: 8, preferredBatchSizes: [4], maxQueueDelayMicros: 1_000_000, maxInFlightBatches: 2, idleDispatch: true });
    const all = Array.from({ length: 13 }, (_, i) => r.submit('p1', 'live', `t${i}`));
    await r.gate.waitHeld(2);
    await tick(20);
    // 13 queued, model idle: a full batch of 8, then the preferred 4; the last tile waits for the delay.
    expect(r.gate.held.map((h) => h.batchSize)).toEqual([8, 4]);
    expect(r.batcher.queued.live).toBe(1);
    await runToEnd(r, [...all, r.batcher.drain(5_000)]);
    expect(r.gate.batches.map((b) => b.batchSize)).toEqual([8, 4, 1]);
  });

  it('sends the largest preferred batch size at once and lets the rest wait for the delay', async () => {
    const r = rig({ maxBatchSize: 16, preferredBatchSizes: [4, 8], maxQueueDelayMicros: 1_000_000 });
    const all = Array.from({ length: 6 }, (_, i) => r.submit('p1', 'live', `t${i}`));
    await r.gate.waitHeld(1);
    await tick(60);
    expect(r.gate.batches.map((b) => b.batchSize)).toEqual([4]);
    all.push(...Array.from({ length: 7 }, (_, i) => r.submit('p1', 'live', `u${i}`)));
    await r.gate.waitHeld(2);
    await tick(20);
    expect(r.gate.batches.map((b) => b.batchSize)).toEqual([4, 8]); // 2 + 7 = 9 queued: 8 go, 1 waits
    expect(r.batcher.queued.live).toBe(1);
    const drained = r.batcher.drain(5_000); // draining sends the partial batch without waiting for the delay
    await runToEnd(r, all);
    await drained;
    expect(r.gate.batches.map((b) => b.batchSize)).toEqual([4, 8, 1]);
  });

  it('runs live tiles before re-analysis tiles', async () => {
    const r = rig({ maxBatchSize: 4, maxInFlightBatches: 1 });
    const all = [r.submit('p1', 'reanalysis', 'r0')];
    await r.gate.waitHeld(1);
    for (let i = 1; i <= 8; i++) all.push(r.submit('p1', 'reanalysis', `r${i}`));
    for (let i = 0; i < 4; i++) all.push(r.submit('p2', 'live', `l${i}`));
    await runToEnd(r, all);
    const batchOf = (tag: string): number => (r.outcomes.find((o) => typeof o === 'object' && o.meta === tag) as TileResult<string>).batch;
    expect(['l0', 'l1', 'l2', 'l3'].map(batchOf)).toEqual([2, 2, 2, 2]);
    expect(['r1', 'r4', 'r5', 'r8'].map(batchOf)).toEqual([3, 3, 4, 4]);
  });

  it('keeps one busy portal from starving another: its tile goes in the next batch formed', async () => {
    const r = rig({ maxBatchSize: 8, maxInFlightBatches: 1 });
    const all = Array.from({ length: 1000 }, (_, i) => r.submit('busy', 'live', `a${i}`));
    await r.gate.waitHeld(1);
    all.push(r.submit('quiet', 'live', 'b0'));
    all.push(...Array.from({ length: 3 }, (_, i) => r.submit('third', 'live', `c${i}`)));
    r.gate.held[0].release();
    await r.gate.waitHeld(1);
    expect(r.gate.batches).toHaveLength(2);
    await runToEnd(r, all);
    const result = (tag: string): TileResult<string> => r.outcomes.find((o) => typeof o === 'object' && o.meta === tag) as TileResult<string>;
    // Batch 2 is formed round-robin: quiet, third, busy, third, busy, third, busy, busy (rotation order).
    expect(result('b0').batch).toBe(2);
    expect(['c0', 'c1', 'c2'].map((t) => result(t).batch)).toEqual([2, 2, 2]);
    expect(result('a999').batch).toBe(126);
    expect(r.outcomes.every((o) => code(o) === 'ok')).toBe(true);
    addsUp(r.stats);
  });

  it('when full, sheds the oldest re-analysis tile for a live one, and rejects live tiles with a code when none is left', async () => {
    const r = rig({ maxBatchSize: 2, maxInFlightBatches: 1, maxQueueTiles: 6, queueFullPolicy: 'shed-oldest-reanalysis' });
    const all = [r.submit('p1', 'live', 'l0'), r.submit('p1', 'live', 'l1')];
    await r.gate.waitHeld(1); // l0, l1 in flight; the queue is empty
    for (let i = 0; i < 6; i++) all.push(r.submit('p2', 'reanalysis', `r${i}`));
    all.push(r.submit('p1', 'live', 'l2')); // sheds r0
    all.push(r.submit('p2', 'reanalysis', 'r6')); // full: the new re-analysis tile is rejected
    for (let i = 3; i < 8; i++) all.push(r.submit('p1', 'live', `l${i}`)); // shed r1..r5
    all.push(r.submit('p1', 'live', 'l8')); // six live queued, nothing to shed: rejected
    await tick(10);
    const byTag = (tag: string): string | undefined => {
      const i = [...['l0', 'l1'], ...[0, 1, 2, 3, 4, 5].map((k) => `r${k}`), 'l2', 'r6', 'l3', 'l4', 'l5', 'l6', 'l7', 'l8'].indexOf(tag);
      return code(r.outcomes[i]);
    };
    expect(['r0', 'r1', 'r2', 'r3', 'r4', 'r5'].map(byTag)).toEqual(Array(6).fill('SCANLINE_ERR_INFER_SHED'));
    expect(byTag('r6')).toBe('SCANLINE_ERR_INFER_QUEUE_FULL');
    expect(byTag('l8')).toBe('SCANLINE_ERR_INFER_QUEUE_FULL');
    await runToEnd(r, all);
    expect(['l0', 'l1', 'l2', 'l3', 'l4', 'l5', 'l6', 'l7'].map(byTag)).toEqual(Array(8).fill('ok'));
    expect(r.stats.tiles.live).toMatchObject({ submitted: 9, ok: 8, rejected: 1, shed: 0 });
    expect(r.stats.tiles.reanalysis).toMatchObject({ submitted: 7, ok: 0, rejected: 7, shed: 6 });
    addsUp(r.stats);
  });

  it('with reject-newest, a live tile arriving at a full queue is rejected even with re-analysis queued', async () => {
    const r = rig({ maxBatchSize: 2, maxInFlightBatches: 1, maxQueueTiles: 3, queueFullPolicy: 'reject-newest' });
    const all = [r.submit('p1', 'reanalysis', 'r0')];
    await r.gate.waitHeld(1);
    for (let i = 1; i <= 3; i++) all.push(r.submit('p1', 'reanalysis', `r${i}`));
    all.push(r.submit('p1', 'live', 'l0'));
    await tick(5);
    expect(code(r.outcomes[4])).toBe('SCANLINE_ERR_INFER_QUEUE_FULL');
    await runToEnd(r, all);
    expect(r.outcomes.slice(0, 4).map(code)).toEqual(['ok', 'ok', 'ok', 'ok']);
    expect(r.stats.tiles.live).toMatchObject({ submitted: 1, rejected: 1 });
    addsUp(r.stats);
  });

  it('expires tiles whose deadline passes in the queue; they are not run', async () => {
    const r = rig({ maxBatchSize: 4, maxInFlightBatches: 1 });
    const all = Array.from({ length: 4 }, (_, i) => r.submit('p1', 'live', `t${i}`));
    await r.gate.waitHeld(1);
    const t0 = performance.now();
    for (let i = 0; i < 3; i++) all.push(r.submit('p2', 'live', `short${i}`, 30));
    all.push(r.submit('p2', 'reanalysis', 'long', 10_000));
    await Promise.all(all.slice(4, 7));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(29);
    expect(r.outcomes.slice(4, 7).map(code)).toEqual(Array(3).fill('SCANLINE_ERR_INFER_DEADLINE'));
    await runToEnd(r, all);
    expect(r.gate.batches.map((b) => b.batchSize)).toEqual([4, 1]); // only "long" ran after the first batch
    expect(r.stats.tiles.live).toMatchObject({ submitted: 7, ok: 4, expired: 3 });
    addsUp(r.stats);
  });

  it('every tile ends in exactly one counted outcome, failed batches included', async () => {
    const r = rig({ maxBatchSize: 4, maxInFlightBatches: 2, maxQueueTiles: 10 });
    const all: Array<Promise<unknown>> = [];
    for (let i = 0; i < 8; i++) all.push(r.submit(`p${i % 3}`, i % 2 ? 'live' : 'reanalysis', `a${i}`));
    await r.gate.waitHeld(2);
    r.gate.held[0].fail(new ScanlineError('SCANLINE_ERR_INFER_WORKER_CRASHED', 'test crash'));
    for (let i = 0; i < 14; i++) all.push(r.submit(`p${i % 4}`, i % 3 ? 'live' : 'reanalysis', `b${i}`, i % 5 === 0 ? 15 : undefined));
    await tick(40);
    await runToEnd(r, all);
    const codes = r.outcomes.map(code);
    expect(codes.every((c) => c !== undefined)).toBe(true);
    const count = (c: string): number => codes.filter((x) => x === c).length;
    expect(count('SCANLINE_ERR_INFER_WORKER_CRASHED')).toBe(4);
    expect(count('SCANLINE_ERR_INFER_DEADLINE') + count('SCANLINE_ERR_INFER_QUEUE_FULL') + count('SCANLINE_ERR_INFER_SHED')).toBeGreaterThan(0);
    const s = r.stats.tiles;
    expect(s.live.submitted + s.reanalysis.submitted).toBe(22);
    expect(s.live.failed + s.reanalysis.failed).toBe(4);
    expect(s.live.ok + s.reanalysis.ok).toBe(count('ok'));
    expect(s.live.expired + s.reanalysis.expired).toBe(count('SCANLINE_ERR_INFER_DEADLINE'));
    expect(r.stats.batchesFailed).toBe(1);
    addsUp(r.stats);
  });

  it('drain runs what is queued and refuses new tiles; a drain that runs out of time rejects the rest', async () => {
    const r = rig({ maxBatchSize: 4, maxInFlightBatches: 1 });
    const all = Array.from({ length: 10 }, (_, i) => r.submit('p1', 'live', `t${i}`));
    await r.gate.waitHeld(1);
    r.gate.autoRelease = true;
    const drained = r.batcher.drain(5_000);
    all.push(r.submit('p1', 'live', 'late'));
    r.gate.releaseAll();
    await drained;
    await Promise.all(all);
    expect(r.outcomes.map(code)).toEqual([...Array(10).fill('ok'), 'SCANLINE_ERR_INFER_CLOSED']);

    const s = rig({ maxBatchSize: 4, maxInFlightBatches: 1 });
    const more = Array.from({ length: 10 }, (_, i) => s.submit('p1', 'live', `t${i}`));
    await s.gate.waitHeld(1);
    const draining = s.batcher.drain(50);
    await tick(80);
    s.gate.releaseAll(); // the in-flight batch still completes
    await draining;
    await Promise.all(more);
    expect(s.outcomes.map(code)).toEqual([...Array(4).fill('ok'), ...Array(6).fill('SCANLINE_ERR_INFER_CLOSED')]);
    addsUp(s.stats);
  });
});
