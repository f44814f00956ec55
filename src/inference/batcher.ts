/**
 * Dynamic batcher of one model, in the spirit of Triton's dynamic batcher:
 *
 * - Batches are formed only when a dispatch slot is free (fewer than `maxInFlightBatches` batches in flight), so
 *   under load tiles accumulate and batches grow; several batches in flight keep the device busy.
 * - Size: `maxBatchSize` when that many tiles are queued; else the largest preferred size that can be formed,
 *   sent at once; else nothing until the oldest queued tile has waited `maxQueueDelayMicros`, then everything
 *   queued (a partial batch). While draining, partial batches go at once. With `idleDispatch` (default), a model
 *   with no batch in flight does not wait: what is queued goes at once, split evenly over the free dispatch slots.
 * - Order: live tiles before re-analysis tiles (under sustained live overload re-analysis waits, and expires at its
 *   deadline); within a priority, round-robin across portals (one tile per portal per round, the rotation
 *   continuing across batches), so one busy portal cannot starve the others: a portal's oldest tile goes into one of
 *   the next ceil(portals / maxBatchSize) batches formed after it arrived (the next one when portals <= maxBatchSize).
 * - Bounded queue (`maxQueueTiles`) with an explicit policy when full (config.ts, QueueFullPolicy). Queued live
 *   tiles are never evicted.
 * - Deadlines: a tile not put into a batch by its deadline expires (it is not run).
 * - Every submitted tile ends in exactly one counted outcome: ok, rejected (incl. shed), expired or failed.
 *
 * Tiles are copied into a batch buffer, normalised on the way (manifest normalisation) unless the backend
 * normalises itself (InferenceBackend.inputNormalization). Batch buffers are reused when the backend hands them
 * back. Threads: main thread only; nothing here blocks.
 */
import { performance } from 'node:perf_hooks';
import { ScanlineError, toScanlineError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { BatchResult, InferenceBackend } from './backend.js';
import { TILE_PRIORITIES, type BatchingConfig, type TilePriority } from './config.js';
import type { LoadedModel } from './manifest.js';
import { createNormalizer, packTile, type Normalizer } from './normalize.js';
import { observe } from '../metrics/index.js';
import { IMAGE_FEATURE_COUNT } from '../image-stats/index.js';
import type { ModelInferenceStats } from './stats.js';

/** At most one "queue full" warning per model per this interval (with the count of tiles rejected), ms. */
const FULL_WARNING_INTERVAL_MS = 10_000;
/** Shortest interval between two deadline sweeps of the queue, ms. */
const DEADLINE_SWEEP_MIN_MS = 5;

export interface TileRequest<M = unknown> {
  /** Manifest name of the model to run. */
  model: string;
  scanId: string;
  portalId: string;
  /**
   * One tile, NCHW without N (channels x size x size floats), raw attenuation as the stitcher writes it. Ownership
   * passes to the batcher: it is read later, when the batch is packed; pass a copy, never a reused buffer.
   */
  data: Float32Array;
  priority: TilePriority;
  /** The tile expires if not put into a batch within this many ms of submit; default per priority from config. */
  deadlineMs?: number;
  /** Anything the caller wants back with the result (tile position, ...); not looked at. */
  meta?: M;
}

export interface TileResult<M = unknown> {
  model: string;
  scanId: string;
  portalId: string;
  meta: M | undefined;
  /**
   * Per manifest output name, this tile's values (the output shape without its batch dimension, row-major). Views
   * into the batch's output buffer, which lives as long as any of them is referenced.
   */
  outputs: Record<string, Float32Array>;
  /**
   * The raw tile's image statistics (IMAGE_FEATURE_COUNT values, src/image-stats/image-features.ts) when the backend
   * computed them (models with out-of-distribution statistics); a view into the batch's buffer.
   */
  imageFeatures?: Float64Array;
  /** Submit to dispatch, seconds. */
  queueSeconds: number;
  /** Backend compute time of the whole batch, seconds. */
  computeSeconds: number;
  batchSize: number;
  /** Sequence number of the tile's batch within its model (1, 2, ...), for tracing. */
  batch: number;
}

/** Problems with a tile request (caller errors), or null when it is valid for a model with `tileFloats`. */
export function tileRequestProblem(req: TileRequest<unknown>, tileFloats: number): string | null {
  if (typeof req !== 'object' || req === null) return 'Expected a tile request object';
  if (!(req.data instanceof Float32Array) || req.data.length !== tileFloats) {
    const got = req.data instanceof Float32Array ? `a Float32Array of ${req.data.length}` : typeof req.data;
    return `Expected a Float32Array of ${tileFloats} floats for data but received ${got}`;
  }
  if (!(TILE_PRIORITIES as readonly string[]).includes(req.priority)) {
    return `Expected "live" or "reanalysis" for priority but received ${String(req.priority)} of type ${typeof req.priority}`;
  }
  if (req.deadlineMs !== undefined && !(typeof req.deadlineMs === 'number' && req.deadlineMs > 0 && req.deadlineMs <= 86_400_000)) {
    return `Expected a number of ms in (0, 86400000] for deadlineMs but received ${String(req.deadlineMs)} of type ${typeof req.deadlineMs}`;
  }
  if (typeof req.scanId !== 'string' || req.scanId.length === 0) return `Expected a non-empty string for scanId but received ${String(req.scanId)}`;
  if (typeof req.portalId !== 'string' || req.portalId.length === 0) return `Expected a non-empty string for portalId but received ${String(req.portalId)}`;
  return null;
}

interface QueuedTile {
  req: TileRequest<unknown>;
  priority: TilePriority;
  enqueuedAt: number;
  deadlineAt: number;
  resolve: (r: TileResult<unknown>) => void;
  reject: (e: ScanlineError) => void;
}

/** FIFO of one portal's tiles of one priority (array with a moving head). */
class PortalQueue {
  private items: QueuedTile[] = [];
  private head = 0;
  constructor(readonly portalId: string) {}
  get size(): number {
    return this.items.length - this.head;
  }
  push(t: QueuedTile): void {
    this.items.push(t);
  }
  peek(): QueuedTile | undefined {
    return this.items[this.head];
  }
  shift(): QueuedTile | undefined {
    if (this.head >= this.items.length) return undefined;
    const t = this.items[this.head];
    this.items[this.head++] = undefined as unknown as QueuedTile;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return t;
  }
  /** Removes tiles whose deadline passed (calling `expire`); returns the earliest deadline left (Infinity if none). */
  sweep(now: number, expire: (t: QueuedTile) => void): number {
    let next = Infinity;
    const kept: QueuedTile[] = [];
    for (let i = this.head; i < this.items.length; i++) {
      const t = this.items[i];
      if (t.deadlineAt <= now) expire(t);
      else {
        kept.push(t);
        if (t.deadlineAt < next) next = t.deadlineAt;
      }
    }
    this.items = kept;
    this.head = 0;
    return next;
  }
}

/** The queued tiles of one priority: one FIFO per portal, served round-robin. */
class PriorityQueue {
  private readonly byPortal = new Map<string, PortalQueue>();
  /** Portals with queued tiles, in rotation order. */
  private readonly ring: PortalQueue[] = [];
  private cursor = 0;
  count = 0;

  push(t: QueuedTile): void {
    let q = this.byPortal.get(t.req.portalId);
    if (!q) {
      q = new PortalQueue(t.req.portalId);
      this.byPortal.set(q.portalId, q);
      this.ring.push(q);
    }
    q.push(t);
    this.count++;
  }

  private removeAt(i: number): void {
    const q = this.ring[i];
    this.ring.splice(i, 1);
    this.byPortal.delete(q.portalId);
    if (i < this.cursor) this.cursor--;
    if (this.cursor >= this.ring.length) this.cursor = 0;
  }

  /** Takes the next tile in round-robin order across portals. */
  takeNext(): QueuedTile | undefined {
    if (this.ring.length === 0) return undefined;
    if (this.cursor >= this.ring.length) this.cursor = 0;
    const i = this.cursor;
    const q = this.ring[i];
    const t = q.shift()!;
    this.count--;
    if (q.size === 0) this.removeAt(i);
    else this.cursor = (i + 1) % this.ring.length;
    return t;
  }

  /** The oldest queued tile (the oldest head among portals). */
  oldest(): QueuedTile | undefined {
    let best: QueuedTile | undefined;
    for (const q of this.ring) {
      const t = q.peek();
      if (t && (!best || t.enqueuedAt < best.enqueuedAt)) best = t;
    }
    return best;
  }

  /** Removes and returns the oldest queued tile. */
  takeOldest(): QueuedTile | undefined {
    let at = -1;
    let best: QueuedTile | undefined;
    this.ring.forEach((q, i) => {
      const t = q.peek();
      if (t && (!best || t.enqueuedAt < best.enqueuedAt)) {
        best = t;
        at = i;
      }
    });
    if (at < 0) return undefined;
    const q = this.ring[at];
    q.shift();
    this.count--;
    if (q.size === 0) this.removeAt(at);
    return best;
  }

  sweep(now: number, expire: (t: QueuedTile) => void): number {
    let next = Infinity;
    for (let i = this.ring.length - 1; i >= 0; i--) {
      const q = this.ring[i];
      const before = q.size;
      next = Math.min(next, q.sweep(now, expire));
      this.count -= before - q.size;
      if (q.size === 0) this.removeAt(i);
    }
    return next;
  }

  drainAll(): QueuedTile[] {
    const out: QueuedTile[] = [];
    for (const q of this.ring) for (let t = q.shift(); t; t = q.shift()) out.push(t);
    this.ring.length = 0;
    this.byPortal.clear();
    this.cursor = 0;
    this.count = 0;
    return out;
  }
}

export interface DynamicBatcherOptions {
  model: LoadedModel;
  config: BatchingConfig;
  backend: InferenceBackend;
  /** This model's counters (InferenceStats.models.get(name)). */
  stats: ModelInferenceStats;
  log: Logger;
}

export class DynamicBatcher {
  readonly model: LoadedModel;
  private readonly name: string;
  private readonly cfg: BatchingConfig;
  private readonly backend: InferenceBackend;
  private readonly stats: ModelInferenceStats;
  private readonly log: Logger;
  private readonly norm: Normalizer;
  private readonly preferred: number[];
  private readonly delayMs: number;
  private readonly live = new PriorityQueue();
  private readonly reanalysis = new PriorityQueue();
  private inFlight = 0;
  private accepting = true;
  private draining = false;
  private pumpScheduled = false;
  private delayTimer: NodeJS.Timeout | null = null;
  private deadlineTimer: NodeJS.Timeout | null = null;
  private deadlineTimerAt = Infinity;
  private lastSweepAt = -Infinity;
  private readonly freeBuffers: Float32Array[] = [];
  private idleWaiters: Array<() => void> = [];
  private lastFullWarningAt = -Infinity;
  private rejectedSinceWarning = 0;
  private batchSeq = 0;

  constructor(opts: DynamicBatcherOptions) {
    this.model = opts.model;
    this.name = opts.model.manifest.name;
    this.cfg = opts.config;
    this.backend = opts.backend;
    this.stats = opts.stats;
    this.log = opts.log;
    this.norm = createNormalizer(opts.model.manifest.input);
    this.preferred = [...opts.config.preferredBatchSizes].filter((s) => s <= opts.config.maxBatchSize).sort((a, b) => b - a);
    this.delayMs = opts.config.maxQueueDelayMicros / 1000;
  }

  /** Every batch size this batcher can emit (a partial batch after the queue delay can have any size). */
  static emittableBatchSizes(config: Pick<BatchingConfig, 'maxBatchSize'>): number[] {
    return Array.from({ length: config.maxBatchSize }, (_, i) => i + 1);
  }

  get queued(): { live: number; reanalysis: number } {
    return { live: this.live.count, reanalysis: this.reanalysis.count };
  }

  get inFlightBatches(): number {
    return this.inFlight;
  }

  /**
   * Queues one tile; resolves with its outputs, or rejects with a ScanlineError: SCANLINE_ERR_INFER_QUEUE_FULL,
   * _SHED, _DEADLINE, _CLOSED (not run), or _FAILED, _WORKER_CRASHED, _BATCH_TIMEOUT, _MODEL_MISMATCH (run
   * failed). `req` must be valid (see tileRequestProblem); Inference.submit checks that.
   */
  submit<M>(req: TileRequest<M>): Promise<TileResult<M>> {
    const priority = req.priority;
    const counters = this.stats.tiles[priority];
    counters.submitted++;
    if (!this.accepting) {
      counters.rejected++;
      return Promise.reject(new ScanlineError('SCANLINE_ERR_INFER_CLOSED', `inference for ${this.name} is shutting down`, { scanId: req.scanId }));
    }
    if (this.live.count + this.reanalysis.count >= this.cfg.maxQueueTiles) {
      if (this.cfg.queueFullPolicy === 'shed-oldest-reanalysis' && priority === 'live' && this.reanalysis.count > 0) {
        const victim = this.reanalysis.takeOldest()!;
        this.stats.tiles.reanalysis.rejected++;
        this.stats.tiles.reanalysis.shed++;
        victim.reject(
          new ScanlineError('SCANLINE_ERR_INFER_SHED', `re-analysis tile shed from the full ${this.name} queue for live work`, {
            scanId: victim.req.scanId,
          }),
        );
      } else {
        counters.rejected++;
        this.rejectedSinceWarning++;
        const now = performance.now();
        if (now - this.lastFullWarningAt >= FULL_WARNING_INTERVAL_MS) {
          this.log.warn(
            { model: this.name, queued: this.queued, maxQueueTiles: this.cfg.maxQueueTiles, rejected: this.rejectedSinceWarning },
            `inference queue of ${this.name} is full; rejecting tiles (${this.cfg.queueFullPolicy})`,
          );
          this.lastFullWarningAt = now;
          this.rejectedSinceWarning = 0;
        }
        return Promise.reject(
          new ScanlineError('SCANLINE_ERR_INFER_QUEUE_FULL', `inference queue of ${this.name} is full (${this.cfg.maxQueueTiles} tiles)`, {
            scanId: req.scanId,
            priority,
          }),
        );
      }
    }
    const now = performance.now();
    const deadlineAt = now + (req.deadlineMs ?? this.cfg.defaultDeadlineMs[priority]);
    const promise = new Promise<TileResult<M>>((resolve, reject) => {
      const tile: QueuedTile = {
        req,
        priority,
        enqueuedAt: now,
        deadlineAt,
        resolve: resolve as (r: TileResult<unknown>) => void,
        reject,
      };
      (priority === 'live' ? this.live : this.reanalysis).push(tile);
    });
    if (deadlineAt < this.deadlineTimerAt) this.armDeadlineSweep(deadlineAt);
    this.schedulePump();
    return promise;
  }

  /** Coalesces pumps: a burst of submits in one tick forms batches from all of them. */
  private schedulePump(): void {
    if (this.pumpScheduled) return;
    this.pumpScheduled = true;
    queueMicrotask(() => this.pump());
  }

  private pump(): void {
    this.pumpScheduled = false;
    const max = this.cfg.maxBatchSize;
    // Idle dispatch: with nothing of this model in flight, waiting for a preferred size only adds latency (the
    // capacity it would save is idle), so what is queued goes now, spread evenly over the free dispatch slots (on
    // the CPU each slot is a worker thread with its own share of the cores). Once batches are in flight, tiles that
    // arrive meanwhile wait as usual and form larger batches.
    let idleSize = 0;
    if (this.cfg.idleDispatch && this.inFlight === 0) {
      const available = this.live.count + this.reanalysis.count;
      if (available > 0 && available < max && this.preferred.find((p) => p <= available) === undefined) {
        idleSize = Math.ceil(available / this.cfg.maxInFlightBatches);
      }
    }
    while (this.inFlight < this.cfg.maxInFlightBatches) {
      const available = this.live.count + this.reanalysis.count;
      if (available === 0) break;
      let size: number;
      if (idleSize > 0) size = Math.min(idleSize, available);
      else if (available >= max) size = max;
      else {
        const preferred = this.preferred.find((p) => p <= available);
        if (preferred !== undefined) size = preferred;
        else {
          const oldest = Math.min(this.live.oldest()?.enqueuedAt ?? Infinity, this.reanalysis.oldest()?.enqueuedAt ?? Infinity);
          const wait = oldest + this.delayMs - performance.now();
          if (wait > 0 && !this.draining) {
            this.armDelay(wait);
            break;
          }
          size = available;
        }
      }
      const tiles = this.take(size);
      if (tiles.length > 0) this.dispatch(tiles);
    }
    if (this.live.count + this.reanalysis.count === 0 && this.delayTimer) {
      clearTimeout(this.delayTimer);
      this.delayTimer = null;
    }
    this.checkIdle();
  }

  private armDelay(ms: number): void {
    if (this.delayTimer) clearTimeout(this.delayTimer);
    this.delayTimer = setTimeout(
      () => {
        this.delayTimer = null;
        this.pump();
      },
      Math.max(0, ms),
    );
    this.delayTimer.unref();
  }

  /**
   * Sweeps come at most every DEADLINE_SWEEP_MIN_MS (each is O(queued)); a tile is never run past its deadline
   * regardless, because take() checks it, so only the rejection of an expired tile may be that much late.
   */
  private armDeadlineSweep(at: number): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.deadlineTimerAt = at;
    const now = performance.now();
    const delay = Math.max(at - now, this.lastSweepAt + DEADLINE_SWEEP_MIN_MS - now, 0) + 1;
    this.deadlineTimer = setTimeout(() => this.sweepDeadlines(), delay);
    this.deadlineTimer.unref();
  }

  private sweepDeadlines(): void {
    this.deadlineTimer = null;
    this.deadlineTimerAt = Infinity;
    const now = performance.now();
    this.lastSweepAt = now;
    const expire = (t: QueuedTile): void => this.expire(t, now);
    const next = Math.min(this.live.sweep(now, expire), this.reanalysis.sweep(now, expire));
    if (next < Infinity) this.armDeadlineSweep(next);
    this.schedulePump();
  }

  private expire(t: QueuedTile, now: number): void {
    this.stats.tiles[t.priority].expired++;
    t.reject(
      new ScanlineError('SCANLINE_ERR_INFER_DEADLINE', `tile deadline passed after ${Math.round(now - t.enqueuedAt)} ms in the ${this.name} queue`, {
        scanId: t.req.scanId,
        priority: t.priority,
      }),
    );
  }

  /** Up to `size` tiles: live first, then re-analysis, round-robin across portals; expired tiles are expired. */
  private take(size: number): QueuedTile[] {
    const now = performance.now();
    const out: QueuedTile[] = [];
    for (const q of [this.live, this.reanalysis]) {
      while (out.length < size && q.count > 0) {
        const t = q.takeNext()!;
        if (t.deadlineAt <= now) this.expire(t, now);
        else out.push(t);
      }
    }
    return out;
  }

  private dispatch(tiles: QueuedTile[]): void {
    const n = tiles.length;
    const tf = this.norm.tileFloats;
    const buffer = this.freeBuffers.pop() ?? new Float32Array(this.cfg.maxBatchSize * tf);
    if (this.backend.inputNormalization === 'backend') for (let i = 0; i < n; i++) buffer.set(tiles[i].req.data, i * tf);
    else for (let i = 0; i < n; i++) packTile(buffer, i * tf, tiles[i].req.data, this.norm);
    const dispatchedAt = performance.now();
    for (const t of tiles) observe(this.stats.queueWaitSeconds, (dispatchedAt - t.enqueuedAt) / 1000);
    this.stats.batches++;
    observe(this.stats.batchSize, n);
    this.inFlight++;
    const seq = ++this.batchSeq;
    let result: Promise<BatchResult>;
    try {
      result = this.backend.run(this.name, buffer, n);
    } catch (err) {
      result = Promise.reject(err);
    }
    result
      .then(
        (r) => this.complete(tiles, r, dispatchedAt, seq),
        (err: unknown) => this.fail(tiles, err, seq),
      )
      .finally(() => {
        this.inFlight--;
        this.schedulePump();
      });
  }

  private complete(tiles: QueuedTile[], r: BatchResult, dispatchedAt: number, seq: number): void {
    const n = tiles.length;
    observe(this.stats.computeSeconds, r.computeSeconds);
    observe(this.stats.roundTripSeconds, (performance.now() - dispatchedAt) / 1000);
    if (r.input && r.input.length === this.cfg.maxBatchSize * this.norm.tileFloats && this.freeBuffers.length <= this.cfg.maxInFlightBatches) {
      this.freeBuffers.push(r.input);
    }
    const names = this.model.manifest.outputs.map((o) => o.name);
    for (const name of names) {
      const per = this.model.outputFloats[name];
      const data = r.outputs[name];
      if (!(data instanceof Float32Array) || data.length < n * per) {
        this.fail(tiles, new ScanlineError('SCANLINE_ERR_INFER_FAILED', `backend returned no or too short output "${name}" for ${this.name}`), seq);
        return;
      }
    }
    // Image statistics only from a backend that received raw tiles and sent one row per tile (otherwise the caller
    // computes them).
    const features =
      this.backend.inputNormalization === 'backend' && r.imageFeatures && r.imageFeatures.length === n * IMAGE_FEATURE_COUNT ? r.imageFeatures : undefined;
    for (let i = 0; i < n; i++) {
      const t = tiles[i];
      const outputs: Record<string, Float32Array> = {};
      for (const name of names) {
        const per = this.model.outputFloats[name];
        outputs[name] = r.outputs[name].subarray(i * per, (i + 1) * per);
      }
      this.stats.tiles[t.priority].ok++;
      t.resolve({
        model: this.name,
        scanId: t.req.scanId,
        portalId: t.req.portalId,
        meta: t.req.meta,
        outputs,
        ...(features ? { imageFeatures: features.subarray(i * IMAGE_FEATURE_COUNT, (i + 1) * IMAGE_FEATURE_COUNT) } : {}),
        queueSeconds: (dispatchedAt - t.enqueuedAt) / 1000,
        computeSeconds: r.computeSeconds,
        batchSize: n,
        batch: seq,
      });
    }
  }

  private fail(tiles: QueuedTile[], err: unknown, seq: number): void {
    const e = toScanlineError(err, 'SCANLINE_ERR_INFER_FAILED');
    this.stats.batchesFailed++;
    this.log.warn({ model: this.name, batch: seq, batchSize: tiles.length, code: e.code }, `batch for ${this.name} failed: ${e.message}`);
    for (const t of tiles) {
      this.stats.tiles[t.priority].failed++;
      t.reject(e);
    }
  }

  private checkIdle(): void {
    if (this.idleWaiters.length === 0 || this.inFlight > 0 || this.live.count + this.reanalysis.count > 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  /** Stops accepting tiles (new ones are rejected with SCANLINE_ERR_INFER_CLOSED); queued tiles still run. */
  stopAccepting(): void {
    this.accepting = false;
  }

  /**
   * Stops accepting, sends queued tiles without waiting for the queue delay and resolves when nothing is queued or
   * in flight. Tiles still queued after `timeoutMs` are rejected with SCANLINE_ERR_INFER_CLOSED (counted
   * rejected); batches in flight are still waited for (the backend's batch timeout bounds them).
   */
  async drain(timeoutMs: number): Promise<void> {
    this.accepting = false;
    this.draining = true;
    const idle = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.schedulePump();
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      idle.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), timeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (!timedOut) return this.dispose();
    const left = [...this.live.drainAll(), ...this.reanalysis.drainAll()];
    for (const t of left) {
      this.stats.tiles[t.priority].rejected++;
      t.reject(new ScanlineError('SCANLINE_ERR_INFER_CLOSED', `inference for ${this.name} closed before the tile could run`, { scanId: t.req.scanId }));
    }
    if (left.length > 0) this.log.warn({ model: this.name, tiles: left.length }, 'drain time ran out; queued tiles rejected');
    const rest = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.checkIdle();
    await rest;
    this.dispose();
  }

  private dispose(): void {
    if (this.delayTimer) clearTimeout(this.delayTimer);
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    this.delayTimer = null;
    this.deadlineTimer = null;
    this.deadlineTimerAt = Infinity;
    this.freeBuffers.length = 0;
  }
}
