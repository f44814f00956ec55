/**
 * The data directory's disk as a monitored resource.
 *
 * - DiskMonitor samples the filesystem of the data directory (statfs: space available to this user) every
 *   `intervalMs`, and keeps what the gateway itself stored: the size of its files under the data directory, walked
 *   once at start (in the background) and grown by what it writes since. Below `minFreeBytes` the gateway is "low":
 *   it refuses new scans (SCANLINE_ERR_STORAGE_FULL), /readyz says why, and the alert rule fires; open scans go on
 *   and what can no longer be written is not acknowledged (the group commit fails and the scan is aborted).
 * - SpaceReserve is a file of `bytes` random bytes written at start: when the disk is full anyway (another writer, the open
 *   scans) and a decision cannot be stored, the reserve is deleted to make room and the decision stored; it is made
 *   again once space is back. Decisions never fail because image storage filled the disk.
 *
 * Threads: the JS thread; statfs and the walk run on the libuv pool.
 */
import { randomFillSync } from 'node:crypto';
import { closeSync, fsyncSync, openSync, rmSync, statSync, statfsSync, writeSync } from 'node:fs';
import { readdir, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { ScanlineError } from '../errors/index.js';
import type { Logger } from '../log/index.js';

export const RESERVE_FILE = 'space-reserve';

/** The codes of an error and its causes (a ScanlineError wraps SQLite's or the OS's). */
function codesOf(err: unknown): unknown[] {
  const codes: unknown[] = [];
  for (let e = err, depth = 0; e !== null && e !== undefined && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    codes.push((e as { code?: unknown }).code);
    if (e instanceof Error && /database or disk is full|no space left on device/i.test(e.message)) codes.push('ENOSPC');
  }
  return codes;
}

/**
 * True for the error SQLite or the OS gives when the disk is full, also as the cause of a ScanlineError. SQLite says
 * SQLITE_IOERR_SHMSIZE when its shared-memory file cannot grow on a full disk (a tmpfs, measured).
 */
export function isDiskFull(err: unknown): boolean {
  return codesOf(err).some((c) => c === 'SQLITE_FULL' || c === 'ENOSPC' || c === 'SQLITE_IOERR_SHMSIZE');
}

/**
 * Runs a write that must not fail for want of space (a decision, a person's act in the audit trail): when it fails
 * because the disk is full and `reserve` releases its space, it is run once more. `what` names the write in the log.
 */
export function withReserve<T>(reserve: SpaceReserve | null, run: () => T, what = 'a write'): T {
  try {
    return run();
  } catch (err) {
    if (!reserve || !isDiskFull(err) || !reserve.release(what)) throw err;
    return run();
  }
}

/** Below this many free bytes the data directory's disk counts as full for opening a database at start. */
const FULL_DISK_BYTES = 1024 * 1024;

/**
 * Opens a database of the data directory at start. On a disk with (next to) no room SQLite may fail with no better
 * reason than "disk I/O error" (SQLITE_IOERR_SHMSIZE: its shared-memory file cannot be sized), so the free space is
 * looked at too. Then the space reserve, if held (taken over from the previous run), is given up and the open tried
 * once more: a gateway that cannot start records no decision either. Failing that, SCANLINE_ERR_STORAGE_FULL says
 * what to do instead of the database's own message.
 */
export function openWithRoom<T>(dataDir: string, reserve: SpaceReserve, what: string, open: () => T): T {
  const freeBytes = (): number | null => {
    try {
      return diskSampleSync(dataDir).freeBytes;
    } catch {
      return null;
    }
  };
  // An I/O error of SQLite's on a disk with next to no room is taken for a full disk; nothing else is (a database of
  // an unknown schema stays that, whatever the free space).
  const ioError = (err: unknown): boolean => codesOf(err).some((c) => typeof c === 'string' && c.startsWith('SQLITE_IOERR'));
  const full = (err: unknown): boolean => isDiskFull(err) || (ioError(err) && (freeBytes() ?? Number.POSITIVE_INFINITY) < FULL_DISK_BYTES);
  let failure: unknown;
  try {
    return open();
  } catch (err) {
    if (!full(err)) throw err;
    failure = err;
  }
  if (reserve.release(what)) {
    try {
      return open();
    } catch (err) {
      if (!full(err)) throw err;
      failure = err;
    }
  }
  throw new ScanlineError(
    'SCANLINE_ERR_STORAGE_FULL',
    `the data directory's disk is full (${freeBytes() ?? 'unknown'} bytes free): ${what} failed (${(failure as Error).message}); free space on it and start again`,
    {},
    { cause: failure },
  );
}

export interface DiskSample {
  /** Bytes available to the gateway (statfs bavail x bsize). */
  freeBytes: number;
  /** Size of the filesystem. */
  totalBytes: number;
}

/** statfs of `path` now (synchronous: used once at start). */
export function diskSampleSync(path: string): DiskSample {
  const s = statfsSync(path);
  return { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
}

export interface DiskMonitorOptions {
  dataDir: string;
  /** Below this many free bytes the disk is low (storage.minFreeBytes). */
  minFreeBytes: number;
  /** Between samples, ms. */
  intervalMs: number;
  /** Bytes the gateway has written into the data directory so far (a counter it keeps); grows usedBytes. */
  writtenBytes?: () => number;
  /**
   * Called after every sample: `low` as now, `cameBack` true for the first sample not low after a low one. The gateway
   * makes its space reserve again when not low, and retries what a full disk refused.
   */
  afterSample?: (sample: { low: boolean; cameBack: boolean }) => void;
  log?: Logger;
}

export class DiskMonitor {
  private sample: DiskSample;
  private timer: NodeJS.Timeout | null = null;
  private sampling = false;
  /** Bytes of the gateway's files found by the walk at start (null until it finished). */
  private walked: number | null = null;
  /** writtenBytes() when the walk began. */
  private writtenAtWalk = 0;
  private wasLow: boolean;
  /** Samples that failed (statfs error), for metrics. */
  failures = 0;

  constructor(private readonly o: DiskMonitorOptions) {
    this.sample = diskSampleSync(o.dataDir);
    this.wasLow = this.low;
    if (this.wasLow) this.o.log?.warn({ freeBytes: this.sample.freeBytes, minFreeBytes: o.minFreeBytes }, 'disk space low at start: new scans are refused');
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => void this.refresh(), this.o.intervalMs);
    this.timer.unref();
    void this.walk();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  get freeBytes(): number {
    return this.sample.freeBytes;
  }

  get totalBytes(): number {
    return this.sample.totalBytes;
  }

  get minFreeBytes(): number {
    return this.o.minFreeBytes;
  }

  /** True while free space is below minFreeBytes. */
  get low(): boolean {
    return this.sample.freeBytes < this.o.minFreeBytes;
  }

  /** Why new scans are refused, or null when there is room. */
  refusal(): string | null {
    if (!this.low) return null;
    return `the data directory's disk has ${this.sample.freeBytes} bytes free, below storage.minFreeBytes (${this.o.minFreeBytes})`;
  }

  /** Bytes of the gateway's files in the data directory, or null while the walk at start runs. */
  get usedBytes(): number | null {
    return this.walked === null ? null : this.walked + (this.o.writtenBytes?.() ?? 0) - this.writtenAtWalk;
  }

  /** Samples now (also run every intervalMs). */
  async refresh(): Promise<void> {
    if (this.sampling) return;
    this.sampling = true;
    try {
      const s = await statfs(this.o.dataDir);
      this.sample = { freeBytes: s.bavail * s.bsize, totalBytes: s.blocks * s.bsize };
    } catch (err) {
      this.failures++;
      this.o.log?.error({ err }, 'reading the free space of the data directory failed');
    } finally {
      this.sampling = false;
    }
    const low = this.low;
    try {
      this.o.afterSample?.({ low, cameBack: !low && this.wasLow });
    } catch (err) {
      this.o.log?.error({ err }, 'acting on a sample of the free space failed');
    }
    if (low === this.wasLow) return;
    this.wasLow = low;
    if (low) this.o.log?.warn({ freeBytes: this.sample.freeBytes, minFreeBytes: this.o.minFreeBytes }, 'disk space low: new scans are refused');
    else
      this.o.log?.info({ freeBytes: this.sample.freeBytes, minFreeBytes: this.o.minFreeBytes }, 'disk space back above storage.minFreeBytes: scans accepted');
  }

  /** Sums the allocated size of every file under the data directory (once, at start). */
  private async walk(): Promise<void> {
    this.writtenAtWalk = this.o.writtenBytes?.() ?? 0;
    let total = 0;
    const dirs = [this.o.dataDir];
    try {
      while (dirs.length > 0) {
        const dir = dirs.pop() as string;
        for (const e of await readdir(dir, { withFileTypes: true })) {
          const path = join(dir, e.name);
          if (e.isDirectory()) dirs.push(path);
          else if (e.isFile()) total += (await stat(path).catch(() => ({ blocks: 0 }))).blocks * 512;
        }
      }
      this.walked = total;
    } catch (err) {
      this.o.log?.error({ err }, 'measuring the data directory failed');
    }
  }
}

/**
 * A file of random bytes that holds `bytes` of the disk for the moment it is full: release() deletes it so that a write
 * that must not fail (a decision) finds room; ensure() makes it again when there is space. adopt() takes over the
 * file a previous run left, so that a gateway restarted on a full disk still has its reserve.
 */
export class SpaceReserve {
  private present = false;

  constructor(
    private readonly path: string,
    readonly bytes: number,
    private readonly log?: Logger,
  ) {}

  static at(dataDir: string, bytes: number, log?: Logger): SpaceReserve {
    return new SpaceReserve(join(dataDir, RESERVE_FILE), bytes, log);
  }

  get held(): boolean {
    return this.present;
  }

  /**
   * Takes over the reserve file a previous run left when it has this reserve's size and its blocks are allocated
   * (held from then on, without writing anything: it works on a disk already full). A file of another size (the
   * setting changed) or a sparse one is removed, for ensure() to write again when there is room. True when held.
   */
  adopt(): boolean {
    if (this.present) return true;
    let size: number;
    let allocated: number;
    try {
      const s = statSync(this.path);
      if (!s.isFile()) return false;
      size = s.size;
      allocated = s.blocks * 512;
    } catch {
      return false;
    }
    if (this.bytes > 0 && size === this.bytes && allocated >= this.bytes) {
      this.present = true;
      return true;
    }
    try {
      rmSync(this.path, { force: true });
      this.log?.info({ bytes: size, allocated, expected: this.bytes }, 'a space reserve file of another size, or not allocated, was removed');
    } catch (err) {
      this.log?.warn({ err }, 'a space reserve file of another size, or not allocated, could not be removed');
    }
    return false;
  }

  /** Writes the reserve when it is not there (and fsyncs it, so its blocks are allocated). False when it cannot; never throws. */
  ensure(): boolean {
    if (this.present && !this.stillThere()) {
      this.present = false;
      this.log?.warn({ bytes: this.bytes }, 'the space reserve file was removed by someone else; it is made again');
    }
    if (this.present || this.bytes === 0) return this.present;
    let fd: number | null = null;
    try {
      fd = openSync(this.path, 'w');
      // Random bytes, not zeros: a compressing filesystem (btrfs, ZFS) would store zeros in next to no blocks, and the
      // reserve would hold nothing. A fresh chunk per MiB, so that deduplication cannot fold them either.
      const chunk = Buffer.allocUnsafe(Math.min(this.bytes, 1 << 20));
      for (let done = 0; done < this.bytes; ) {
        randomFillSync(chunk);
        done += writeSync(fd, chunk, 0, Math.min(chunk.length, this.bytes - done));
      }
      fsyncSync(fd);
      this.present = true;
    } catch (err) {
      this.log?.warn({ err, bytes: this.bytes }, 'the disk space reserve could not be written (disk full?)');
      try {
        rmSync(this.path, { force: true });
      } catch {
        // nothing to remove
      }
    } finally {
      try {
        if (fd !== null) closeSync(fd);
      } catch {
        // written and synced, or given up above: nothing more to do (ensure never throws)
      }
    }
    return this.present;
  }

  /** The file is there with its size (someone may have deleted it to free space by hand). */
  private stillThere(): boolean {
    try {
      return statSync(this.path).size === this.bytes;
    } catch {
      return false;
    }
  }

  /** Deletes the reserve to make room for `what`; true when it was there. */
  release(what = 'a write'): boolean {
    if (!this.present || !this.stillThere()) {
      this.present = false;
      return false;
    }
    rmSync(this.path, { force: true });
    this.present = false;
    this.log?.warn({ bytes: this.bytes, for: what }, `disk full: the space reserve was released to store ${what}`);
    return true;
  }
}
