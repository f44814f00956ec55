/**
 * The data directory's disk as a monitored resource.
 *
 * - DiskMonitor samples the filesystem of the data directory (statfs: space available to this user) every
 *   `intervalMs`, and keeps what the gateway itself stored: the size of its files under the data directory, walked
 *   once at start (in the background) and grown by what it writes since. Below `minFreeBytes` the gateway is "low":
 *   it refuses new scans (SCANLINE_ERR_STORAGE_FULL), /readyz says why, and the alert rule fires; open scans go on
 *   and what can no longer be written is not acknowledged (the group commit fails and the scan is aborted).
 * - SpaceReserve is a file of `bytes` zeros written at start: when the disk is full anyway (another writer, the open
 *   scans) and a decision cannot be stored, the reserve is deleted to make room and the decision stored; it is made
 *   again once space is back. Decisions never fail because image storage filled the disk.
 *
 * Threads: the JS thread; statfs and the walk run on the libuv pool.
 */
import { closeSync, fsyncSync, openSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { readdir, stat, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log/index.js';

export const RESERVE_FILE = 'space-reserve';

/** True for the error SQLite or the OS gives when the disk is full. */
export function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'SQLITE_FULL' || code === 'ENOSPC' || (err instanceof Error && /database or disk is full/.test(err.message));
}

/**
 * Runs a write that must not fail for want of space (a decision, its audit entry): when it fails because the disk is
 * full and `reserve` releases its space, it is run once more.
 */
export function withReserve<T>(reserve: SpaceReserve | null, run: () => T): T {
  try {
    return run();
  } catch (err) {
    if (!reserve || !isDiskFull(err) || !reserve.release()) throw err;
    return run();
  }
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
  /** Called after every sample that is not low (the gateway makes its space reserve again if it was given up). */
  whenRoom?: () => void;
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
    if (!low) this.o.whenRoom?.();
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
 * A file of zeros that holds `bytes` of the disk for the moment it is full: release() deletes it so that a write
 * that must not fail (a decision) finds room; ensure() makes it again when there is space.
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

  /** Writes the reserve when it is not there (and fsyncs it, so its blocks are allocated). False when it cannot. */
  ensure(): boolean {
    if (this.present || this.bytes === 0) return this.present;
    let fd: number | null = null;
    try {
      fd = openSync(this.path, 'w');
      const chunk = Buffer.alloc(Math.min(this.bytes, 1 << 20));
      for (let done = 0; done < this.bytes; ) done += writeSync(fd, chunk, 0, Math.min(chunk.length, this.bytes - done));
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
      if (fd !== null) closeSync(fd);
    }
    return this.present;
  }

  /** Deletes the reserve to make room; true when it was there. */
  release(): boolean {
    if (!this.present) return false;
    rmSync(this.path, { force: true });
    this.present = false;
    this.log?.warn({ bytes: this.bytes }, 'disk full: the space reserve was released so that a decision could be stored');
    return true;
  }
}
