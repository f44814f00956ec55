/**
 * Checkpoints of a WAL-mode SQLite database off the JS thread.
 *
 * SQLite's automatic checkpoint runs inside the commit that takes the WAL past `wal_autocheckpoint` pages (1000, about
 * 4 MiB): that commit then copies the WAL into the database and syncs both, on the thread that committed: for the
 * scan database, the event loop that acknowledges portals' lines. Measured with an ad hoc probe (400 scans' record
 * writes, 2-core VM, 2026-12-08): the JS thread was held p99 9.9 ms per scan on a quiet disk and 25 ms (max 51) with
 * another process writing the disk; with the automatic checkpoint off, 1.7 and 3.4 ms.
 *
 * So the connection's automatic checkpoint is off, and a worker thread with its own connection runs a PASSIVE
 * checkpoint every `intervalMs`. PASSIVE never waits for a writer or a reader, so the JS thread's commits go on while
 * it copies; once every frame is copied, the next commit starts the WAL again from its beginning, so the file stays
 * small. A checkpoint with nothing to copy does no I/O. Durability is unchanged: the worker's connection runs with
 * `synchronous = FULL`, so a checkpoint syncs the WAL before it copies frames into the database and syncs the database
 * before the WAL may be reused (./wal-sync.ts relies on that).
 *
 * A checkpoint that fails (a full disk: the database file cannot grow) is counted and tried again at the next tick. If
 * the worker itself fails (it cannot open the database, it dies), the connection's automatic checkpoint is switched
 * back on, and the failure logged and counted: the WAL never grows without bound.
 *
 * The worker's code is evaluated from the string below (CommonJS), with better-sqlite3 resolved here and passed by
 * path, so that it runs the same from the TypeScript sources (tests) and the compiled package.
 *
 * Threads: this class on the JS thread; the checkpoints on its worker. Lifetime: started by the owner of the
 * connection (ScanStore.startCheckpointer), closed before the connection is.
 */
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type Database from 'better-sqlite3';
import type { Logger } from '../log/index.js';
import { createHistogram, type HistogramCounts, observe } from '../metrics/index.js';

/** Upper bounds of the checkpoint duration buckets, seconds. */
export const CHECKPOINT_SECONDS_BUCKETS: readonly number[] = Object.freeze([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5]);

/** How long close() waits for the worker to close its connection (ms). */
const CLOSE_WAIT_MS = 2_000;

export interface WalCheckpointStats {
  /** Checkpoints that found frames to copy, and how long each took on the worker, seconds. */
  seconds: HistogramCounts;
  /** Checkpoints that failed (tried again next tick), and a worker that could not open the database or died (then SQLite's automatic checkpoint again). */
  failures: number;
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const Database = require(workerData.driver);
const done = new Int32Array(workerData.closed);
let db = null;
try {
  db = new Database(workerData.path, { fileMustExist: true });
  db.pragma('busy_timeout = 1000');
  db.pragma('synchronous = FULL');
  parentPort.postMessage({ type: 'ready' });
} catch (err) {
  parentPort.postMessage({ type: 'failed', message: String(err && err.message || err) });
}
parentPort.on('message', (m) => {
  if (m === 'close') {
    try { if (db) db.close(); } finally { db = null; Atomics.store(done, 0, 1); Atomics.notify(done, 0); parentPort.close(); }
    return;
  }
  if (!db) return;
  const t0 = process.hrtime.bigint();
  try {
    const [r] = db.pragma('wal_checkpoint(PASSIVE)');
    parentPort.postMessage({ type: 'checkpointed', busy: r.busy, log: r.log, checkpointed: r.checkpointed, seconds: Number(process.hrtime.bigint() - t0) / 1e9 });
  } catch (err) {
    parentPort.postMessage({ type: 'checkpoint-failed', code: String(err && err.code || ''), message: String(err && err.message || err) });
  }
});
`;

type WorkerMessage =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'checkpoint-failed'; code: string; message: string }
  | { type: 'checkpointed'; busy: number; log: number; checkpointed: number; seconds: number };

export class WalCheckpointer {
  readonly stats: WalCheckpointStats = { seconds: createHistogram(CHECKPOINT_SECONDS_BUCKETS), failures: 0 };
  private worker: Worker | null;
  private readonly closed = new SharedArrayBuffer(4);
  private timer: NodeJS.Timeout | null = null;
  private inFlight = false;
  private failureLoggedAt = Number.NEGATIVE_INFINITY;
  /** The WAL's frames and those copied, as the last checkpoint reported them (SQLite counts from the WAL's start). */
  private last = { log: 0, checkpointed: 0 };

  constructor(
    private readonly db: Database.Database,
    path: string,
    intervalMs: number,
    private readonly log?: Logger,
  ) {
    this.db.pragma('wal_autocheckpoint = 0');
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      name: 'scanline-wal-checkpoint',
      workerData: { driver: createRequire(import.meta.url).resolve('better-sqlite3'), path, closed: this.closed },
    });
    this.worker.unref();
    this.worker.on('message', (m: WorkerMessage) => this.onMessage(m));
    this.worker.on('error', (err) => this.fail(err.message));
    this.worker.on('exit', () => {
      if (this.worker) this.fail('the checkpoint worker exited');
    });
    this.timer = setInterval(() => this.tick(), intervalMs);
    this.timer.unref();
  }

  /** False once the worker failed and SQLite checkpoints automatically again. */
  get running(): boolean {
    return this.worker !== null;
  }

  private tick(): void {
    if (!this.worker || this.inFlight) return;
    this.inFlight = true;
    this.worker.postMessage('checkpoint');
  }

  private onMessage(m: WorkerMessage): void {
    if (m.type === 'ready') return;
    this.inFlight = false;
    if (m.type === 'failed') {
      this.fail(m.message);
      return;
    }
    if (m.type === 'checkpoint-failed') {
      // A checkpoint that fails (a full disk: the database file cannot grow) is tried again next tick; SQLite's own
      // would fail the same way, inside a commit. Logged once a minute.
      this.stats.failures++;
      const now = Date.now();
      if (now - this.failureLoggedAt >= 60_000) {
        this.failureLoggedAt = now;
        this.log?.warn({ code: m.code, reason: m.message, failures: this.stats.failures }, 'a WAL checkpoint failed; it is tried again');
      }
      return;
    }
    // busy: another checkpointer held the lock (a `scanline` command closing its connection); tried next tick. A
    // checkpoint that reports the WAL as the last did found nothing new (the counts restart with the WAL).
    const same = m.log === this.last.log && m.checkpointed === this.last.checkpointed;
    this.last = { log: m.log, checkpointed: m.checkpointed };
    if (!same && m.checkpointed > 0) observe(this.stats.seconds, m.seconds);
  }

  /** Back to SQLite's automatic checkpoint on the JS thread: never a WAL that grows without bound. */
  private fail(message: string): void {
    if (!this.worker) return;
    this.stats.failures++;
    const worker = this.worker;
    this.worker = null;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    try {
      this.db.pragma('wal_autocheckpoint = 1000');
    } catch {
      // the connection is closed: nothing to checkpoint
    }
    this.log?.error({ reason: message }, 'the WAL checkpoint worker failed; SQLite checkpoints on the JS thread again');
    void worker.terminate().catch(() => undefined);
  }

  /**
   * Stops the checkpoints and closes the worker's connection, waiting for it (at most CLOSE_WAIT_MS, a checkpoint
   * under way finishing first), so that the owner's connection, closing last, checkpoints and removes the WAL.
   * Synchronous: the owner's close is.
   */
  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const worker = this.worker;
    this.worker = null;
    if (!worker) return;
    worker.postMessage('close');
    if (Atomics.wait(new Int32Array(this.closed), 0, 0, CLOSE_WAIT_MS) === 'timed-out') {
      this.log?.warn({ waitedMs: CLOSE_WAIT_MS }, 'the WAL checkpoint worker did not close its connection in time; it is terminated');
    }
    void worker.terminate().catch(() => undefined);
  }
}
