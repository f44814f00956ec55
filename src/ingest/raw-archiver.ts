/**
 * Writes a scan's raw lines from the stitcher's store to its archive file, progressively and without allocating
 * per write: two buffers of about 1 MiB per scan are reused (one being filled/written while the other is in the
 * kernel). Lines are read from the stitcher only when a buffer is free, so queued ranges cost nothing.
 *
 * Threads: the JS thread copies lines out of the stitcher (readRaw) and hands the buffer to an asynchronous write;
 * the buffer is not touched again until that write settles.
 *
 * Every write is reported when it has completed (onWritten, with the crc32 of the bytes written and the ticket of the
 * last enqueue it covers), so the scan can journal it and acknowledge the frames it carried once it is synced.
 * Writes complete in the order they were enqueued (RawWriter runs one at a time), so tickets come back in order.
 *
 * When the writer writes direct (O_DIRECT), the buffers come from the native addon's aligned allocator; writes are
 * whole lines, which the writer only opens direct for when a line is a multiple of the alignment. Without the addon
 * the writer is switched to buffered writes.
 */
import { crc32 } from 'node:zlib';
import { ScanlineError, toScanlineError } from '../errors/index.js';
import { observe } from '../metrics/index.js';
import type { BufferPool } from '../memory/index.js';
import type { Stitcher } from '../stitch/index.js';
import type { RawWriter } from '../storage/index.js';
import type { IngestStats } from './stats.js';

/** Target bytes per archive write. */
const WRITE_BYTES = 1 << 20;
const BUFFERS = 2;

/** A completed write: lines [firstLine, firstLine + lineCount) with the crc32 of their bytes; covers enqueues up to `ticket`. */
export type OnLinesWritten = (firstLine: number, lineCount: number, crc: number, ticket: number) => void;

export class RawArchiver {
  private readonly free: Uint16Array[] = [];
  /** Ranges to write: [firstLine, lineCount, ticket of the last enqueue merged into it]. */
  private readonly pending: Array<[number, number, number]> = [];
  private tickets = 0;
  private readonly linesPerWrite: number;
  private readonly valuesPerLine: number;
  private inFlight = 0;
  private failure: ScanlineError | null = null;
  private idle: Array<{ resolve: () => void; reject: (e: ScanlineError) => void }> = [];
  /** The buffers came from alignedPool (all or none: the addon loads or not) and go back to it on release(). */
  private readonly pooled: boolean;
  private released = false;

  constructor(
    private readonly stitcher: Stitcher,
    private readonly writer: RawWriter,
    private readonly stats: IngestStats,
    /**
     * Aligned buffers of finished scans for the next scans (the gateway's, JS thread only): allocating and
     * zero-filling 2 MiB of fresh aligned memory per scan stalls the JS thread when many scans start together
     * (bench/RESULTS.md, 'Buffer pools'). Its allocator returns null where aligned memory cannot be had (no addon).
     */
    private readonly alignedPool: BufferPool,
    private readonly onWritten: OnLinesWritten = () => undefined,
    /** Called once, with the first write failure: the scan stops acknowledging and is aborted. */
    private readonly onFailure: (err: ScanlineError) => void = () => undefined,
  ) {
    this.valuesPerLine = stitcher.options.pixels * stitcher.options.energies;
    this.linesPerWrite = Math.max(1, Math.min(stitcher.options.maxLinesPerJob, Math.floor(WRITE_BYTES / (this.valuesPerLine * 2))));
    const values = this.linesPerWrite * this.valuesPerLine;
    const memory = writer.direct ? Array.from({ length: BUFFERS }, () => this.alignedPool.take(values * 2)) : [];
    this.pooled = memory.length > 0 && memory.every((m) => m !== null);
    if (writer.direct && !this.pooled) writer.useBufferedWrites();
    for (let i = 0; i < BUFFERS; i++) this.free.push(this.pooled ? new Uint16Array(memory[i] as ArrayBuffer) : new Uint16Array(values));
  }

  /** The ticket of the last enqueue (0 before any). */
  get lastTicket(): number {
    return this.tickets;
  }

  /**
   * Queues lines [firstLine, firstLine + lineCount) for writing; they must be stored in the stitcher already. Returns
   * the enqueue's ticket: onWritten reports a ticket at least this high once these lines are written. A range that
   * continues the last queued one is merged into it (up to one write's worth), so frames that arrive while the disk is
   * busy cost one write together. Ignored after release() (returns the last ticket).
   */
  enqueue(firstLine: number, lineCount: number): number {
    if (this.released) return this.tickets; // the scan closed its file: nothing can be written any more (ActiveScan never does this)
    const ticket = ++this.tickets;
    let first = firstLine;
    const end = firstLine + lineCount;
    const last = this.pending.length > 0 ? this.pending[this.pending.length - 1] : null;
    if (last && last[0] + last[1] === first && last[1] < this.linesPerWrite) {
      const take = Math.min(this.linesPerWrite - last[1], end - first);
      last[1] += take;
      first += take;
      // Only the range holding the enqueue's last line carries its ticket: the ticket says all of it is written.
      if (first === end) last[2] = ticket;
    }
    for (; first < end; first += this.linesPerWrite) {
      const count = Math.min(this.linesPerWrite, end - first);
      this.pending.push([first, count, first + count === end ? ticket : ticket - 1]);
    }
    this.pump();
    return ticket;
  }

  /** Resolves when every queued range is written; rejects with the first write failure. */
  drain(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.pending.length === 0 && this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve, reject) => this.idle.push({ resolve, reject }));
  }

  private pump(): void {
    while (!this.failure && this.free.length > 0 && this.pending.length > 0) {
      const buffer = this.free.pop() as Uint16Array;
      const [first, count, ticket] = this.pending.shift() as [number, number, number];
      const values = buffer.subarray(0, count * this.valuesPerLine);
      let crc: number;
      try {
        this.stitcher.readRaw(first, count, values);
        crc = crc32(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
      } catch (err) {
        this.free.push(buffer);
        this.fail(toScanlineError(err, 'SCANLINE_ERR_STORAGE_WRITE'));
        return;
      }
      this.inFlight++;
      const started = process.hrtime.bigint();
      const direct = this.writer.direct;
      this.writer.write(first, new Uint8Array(values.buffer, values.byteOffset, values.byteLength)).then(
        () => {
          const seconds = Number(process.hrtime.bigint() - started) / 1e9;
          this.stats.storageWrites++;
          this.stats.storageWriteSeconds += seconds;
          observe(this.stats.storageWriteLatency, seconds);
          this.stats.storageBytes += values.byteLength;
          // A write that fell back to buffered part-way counts as buffered.
          if (direct && this.writer.direct) this.stats.storageDirectBytes += values.byteLength;
          if (!this.failure) this.onWritten(first, count, crc, ticket);
          this.settle(buffer);
        },
        (err: unknown) => {
          this.fail(toScanlineError(err, 'SCANLINE_ERR_STORAGE_WRITE'));
          this.settle(buffer);
        },
      );
    }
    this.notifyIfIdle();
  }

  /**
   * The scan is done with the archiver: aligned buffers go back to the pool for later scans (those still in a
   * write go back when it settles). Nothing may be enqueued afterwards.
   */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.pending.length = 0;
    for (const b of this.free.splice(0)) if (this.pooled) this.alignedPool.give(b.buffer as ArrayBuffer);
  }

  private settle(buffer: Uint16Array): void {
    this.inFlight--;
    if (this.released) {
      if (this.pooled) this.alignedPool.give(buffer.buffer as ArrayBuffer);
      this.notifyIfIdle();
      return;
    }
    this.free.push(buffer);
    this.pump();
  }

  private fail(err: ScanlineError): void {
    if (this.failure) return;
    this.failure = err instanceof ScanlineError ? err : new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', String(err));
    this.pending.length = 0;
    if (!this.released) this.onFailure(this.failure);
  }

  private notifyIfIdle(): void {
    if (this.inFlight > 0 || (this.pending.length > 0 && !this.failure)) return;
    const waiters = this.idle;
    this.idle = [];
    for (const w of waiters) this.failure ? w.reject(this.failure) : w.resolve();
  }
}
