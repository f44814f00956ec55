/**
 * Deferred durability for SQLite commits in WAL mode: a group commit for the database, as GroupCommitter is for the
 * scans' files.
 *
 * A commit made with `synchronous = NORMAL` is in the WAL file and survives a crash of the process at once (the
 * kernel holds its pages), but reaches stable storage only when the WAL is synced. `synchronous = FULL` syncs it in
 * the commit itself, which holds the JS thread for a whole fdatasync (4-5 ms on the build VM's disk, more on a busy
 * one) on every commit. Here the machine's own per-scan commits are made without a sync and noted (`committed()`);
 * whoever must not answer before they are on disk awaits `durable()`, which fdatasyncs the WAL on the libuv thread
 * pool. One sync covers every commit noted before it started, so however many callers wait, the syncs per second stay
 * bounded by the disk's latency.
 *
 * Why an fdatasync of the WAL is enough: committed frames are appended to the WAL; fdatasync makes the file's data and
 * size durable, whichever descriptor wrote them. A checkpoint under NORMAL syncs the WAL before it copies frames into
 * the database and syncs the database before the WAL may be reused, so a commit is durable either in the WAL or in
 * the database file.
 *
 * A failed sync is final (`failure`): on Linux a failed fdatasync may have dropped the dirty pages it could not write
 * and reports that once, so a later sync that succeeds proves nothing about them (PostgreSQL's "fsyncgate"). From
 * then on every durable() rejects and the store says it is not writable, until the gateway is restarted (the
 * journals and raw files, synced on their own, are what recovery reads).
 *
 * Threads: JS thread; the syncs run on the libuv pool. Lifetime: one per ScanStore, closed with it.
 */
import { close as closeFd, fdatasync, open as openFd } from 'node:fs';
import { promisify } from 'node:util';
import { ScanlineError } from '../errors/index.js';
import { createHistogram, observe, type HistogramCounts } from '../metrics/index.js';

const openAsync = promisify(openFd);
const fdatasyncAsync = promisify(fdatasync);
const closeAsync = promisify(closeFd);

/** Upper bounds of the WAL sync duration buckets, seconds. */
export const WAL_SYNC_SECONDS_BUCKETS: readonly number[] = Object.freeze([0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1]);

export interface WalSyncStats {
  /** Commits made without a sync and noted. */
  deferredCommits: number;
  /** fdatasyncs of the WAL run for durable() callers. */
  syncs: number;
  failures: number;
  /** Per sync, from its start to its end, seconds. */
  syncSeconds: HistogramCounts;
}

interface Waiter {
  /** The commits this caller needs on disk: every one noted up to this count. */
  upTo: number;
  resolve: () => void;
  reject: (err: unknown) => void;
}

/** fdatasync of the file at `path`, opened for it (so a WAL that SQLite recreated is never missed). Pool thread. */
export async function syncFileAt(path: string): Promise<void> {
  const fd = await openAsync(path, 'r');
  try {
    await fdatasyncAsync(fd);
  } finally {
    await closeAsync(fd).catch(() => undefined);
  }
}

export class WalSync {
  readonly stats: WalSyncStats = { deferredCommits: 0, syncs: 0, failures: 0, syncSeconds: createHistogram(WAL_SYNC_SECONDS_BUCKETS) };
  private noted = 0;
  private synced = 0;
  private running = false;
  private closed = false;
  private failed: ScanlineError | null = null;
  private waiters: Waiter[] = [];

  /**
   * @param walPath the database's `-wal` file (named in errors)
   * @param sync makes every commit noted so far durable (an fdatasync of the WAL by default); injectable for tests
   */
  constructor(
    readonly walPath: string,
    private readonly sync: () => Promise<void> = () => syncFileAt(walPath),
  ) {}

  /** A commit was just made without a sync. Call right after it returns, on the JS thread. */
  committed(): void {
    this.noted++;
    this.stats.deferredCommits++;
  }

  /** Commits noted and not yet known to be on stable storage. */
  get pending(): number {
    return this.noted - this.synced;
  }

  /** The first sync that failed, or null: once set, nothing more is called durable. */
  get failure(): ScanlineError | null {
    return this.failed;
  }

  /**
   * Resolves once every commit noted before this call is on stable storage: at once when none is pending, else after
   * a sync that started after the last of them. Rejects with SCANLINE_ERR_STORAGE_WRITE when that sync fails, and
   * from then on whenever a commit is pending (see `failure`).
   */
  durable(): Promise<void> {
    if (this.synced >= this.noted) return Promise.resolve();
    if (this.failed) return Promise.reject(this.failed);
    if (this.closed) return Promise.reject(this.closedError());
    const upTo = this.noted;
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ upTo, resolve, reject });
      if (!this.running) void this.run();
    });
  }

  /**
   * The database was synced by other means (the store's close syncs the WAL itself): every noted commit is durable.
   * Settles every waiter.
   */
  markAllDurable(): void {
    this.synced = this.noted;
    const waiters = this.waiters.splice(0);
    for (const w of waiters) w.resolve();
  }

  /** No more syncs: waiters still pending are rejected unless markAllDurable() settled them first. */
  close(): void {
    this.closed = true;
    const waiters = this.waiters.splice(0);
    for (const w of waiters) w.reject(this.closedError());
  }

  /**
   * A sync made by the owner itself (the store's close) failed: the same as a failed sync here. Returns the error.
   */
  fail(cause: unknown): ScanlineError {
    this.stats.failures++;
    this.failed ??= this.syncError(cause);
    const waiters = this.waiters.splice(0);
    for (const w of waiters) w.reject(this.failed);
    return this.failed;
  }

  /** One sync at a time; each covers what was noted when it started, and the next starts for those who came later. */
  private async run(): Promise<void> {
    this.running = true;
    try {
      while (this.waiters.length > 0 && !this.closed && !this.failed) {
        const covers = this.noted;
        const started = performance.now();
        let ok = true;
        let cause: unknown;
        try {
          await this.sync();
        } catch (err) {
          ok = false;
          cause = err;
        }
        this.stats.syncs++;
        observe(this.stats.syncSeconds, (performance.now() - started) / 1000);
        if (!ok) {
          this.fail(cause);
          return;
        }
        if (covers > this.synced) this.synced = covers;
        const still: Waiter[] = [];
        for (const w of this.waiters.splice(0)) {
          if (w.upTo <= this.synced) w.resolve();
          else still.push(w);
        }
        // Waiters that markAllDurable() or close() settled meanwhile are gone from the list already.
        this.waiters.push(...still);
      }
    } finally {
      this.running = false;
    }
  }

  private syncError(cause: unknown): ScanlineError {
    const why = cause instanceof Error ? cause.message : String(cause);
    return new ScanlineError(
      'SCANLINE_ERR_STORAGE_WRITE',
      `cannot make the scan database's recent commits durable (fdatasync of ${this.walPath}): ${why}; restart the gateway once the disk is sound`,
      {},
      { cause },
    );
  }

  private closedError(): ScanlineError {
    return new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', `the scan database was closed before its recent commits were known to be durable (${this.walPath})`);
  }
}
