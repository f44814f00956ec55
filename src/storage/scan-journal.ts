/**
 * A scan's journal (`<dataDir>/scans/<scanId>/frames.log`): what the gateway accepted of the scan, in the order it
 * accepted it, so that a scan interrupted by a crash can be rebuilt exactly as far as it was acknowledged.
 *
 * Records (little-endian), each a 32-byte header and an optional payload:
 *
 *   0  u32 magic 0x314a4c53 ("SLJ1")    16 u32 payload bytes that follow the header
 *   4  u8  type (1 frame, 2 lines, 3 end)  20 u32 crc32: of the payload (frame), of the stored lines (lines)
 *   5  u8  frame kind (1 image, 2 dark, 3 air)   24 u32 total lines (end) / 0
 *   6  u16 line count                   28 u32 crc32 of bytes 0..27
 *   8  u32 seq (frame)                  header + payload are padded to a multiple of 8 bytes
 *  12  u32 first line
 *
 * - frame: a frame the scan accepted (not its replays). Image lines are not repeated here (they are in raw.u16);
 *   calibration frames (dark, air) carry their payload, since no other file keeps them.
 * - lines: lines [first, first + count) were written to raw.u16, and crc32 is of those bytes as written. A line
 *   is stored only when such a record says so and its bytes still match: a record can reach the disk before the
 *   lines it names did (both are synced in the same group commit, in no particular order).
 * - end: scan.end arrived with this total (lines) when this many frames (seq 0..n-1) had been accepted.
 *
 * A torn or corrupt tail (a crash during an append) ends the journal at the last whole record; replay never reads
 * past it and the writer overwrites it.
 *
 * Threads: appends are buffered on the JS thread; commit() writes them with one positioned write and fdatasync
 * (both on the libuv thread pool). One commit at a time per journal; the group committer guarantees that.
 */
import { closeSync, fdatasync, fdatasyncSync, ftruncateSync, openSync, readFileSync, write as writeFd, close as closeFd } from 'node:fs';
import { promisify } from 'node:util';
import { crc32 } from 'node:zlib';
import { ScanlineError } from '../errors/index.js';

export const JOURNAL_FILE = 'frames.log';
export const JOURNAL_MAGIC = 0x314a4c53;
export const JOURNAL_HEADER_BYTES = 32;

export const JournalRecordType = { Frame: 1, Lines: 2, End: 3 } as const;

const writeAt = promisify(writeFd) as unknown as (fd: number, b: Uint8Array, off: number, len: number, pos: number) => Promise<number>;
const fdatasyncAsync = promisify(fdatasync);
const closeAsync = promisify(closeFd);

/** A frame the scan accepted, as the journal keeps it. */
export interface JournalFrame {
  seq: number;
  kind: number;
  firstLine: number;
  lineCount: number;
  /** Calibration frames only (dark, air): the frame's payload. */
  payload: Uint16Array | null;
}

/** What a journal says, read back: every whole record up to the first torn or corrupt one. */
export interface JournalContents {
  frames: JournalFrame[];
  /** Line ranges written to raw.u16 with the crc32 of their bytes. */
  lines: Array<{ firstLine: number; lineCount: number; crc: number }>;
  /** scan.end's total, when it was journaled. */
  endLines: number | null;
  /** Frames (seq 0..endFrames-1) the scan had accepted when scan.end came; null without an end record. */
  endFrames: number | null;
  /** Bytes of whole records; the rest of the file (if any) is a torn tail. */
  validBytes: number;
  /** Bytes after validBytes. */
  tornBytes: number;
}

function pad8(n: number): number {
  return (n + 7) & ~7;
}

function encodeRecord(
  type: number,
  kind: number,
  lineCount: number,
  seq: number,
  firstLine: number,
  payload: Uint8Array | null,
  crc: number,
  total: number,
): Buffer {
  const payloadBytes = payload?.byteLength ?? 0;
  const record = Buffer.alloc(pad8(JOURNAL_HEADER_BYTES + payloadBytes));
  record.writeUInt32LE(JOURNAL_MAGIC, 0);
  record.writeUInt8(type, 4);
  record.writeUInt8(kind, 5);
  record.writeUInt16LE(lineCount, 6);
  record.writeUInt32LE(seq >>> 0, 8);
  record.writeUInt32LE(firstLine >>> 0, 12);
  record.writeUInt32LE(payloadBytes, 16);
  record.writeUInt32LE(crc >>> 0, 20);
  record.writeUInt32LE(total >>> 0, 24);
  record.writeUInt32LE(crc32(record.subarray(0, 28)), 28);
  if (payload) record.set(payload, JOURNAL_HEADER_BYTES);
  return record;
}

/** Parses a journal's bytes (see the file comment); never throws on bad content, it ends the journal there. */
export function parseJournal(bytes: Uint8Array): JournalContents {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: JournalContents = { frames: [], lines: [], endLines: null, endFrames: null, validBytes: 0, tornBytes: 0 };
  let at = 0;
  while (at + JOURNAL_HEADER_BYTES <= buf.length) {
    if (buf.readUInt32LE(at) !== JOURNAL_MAGIC || buf.readUInt32LE(at + 28) !== crc32(buf.subarray(at, at + 28))) break;
    const type = buf.readUInt8(at + 4);
    const payloadBytes = buf.readUInt32LE(at + 16);
    const size = pad8(JOURNAL_HEADER_BYTES + payloadBytes);
    if (at + size > buf.length) break;
    const payload = buf.subarray(at + JOURNAL_HEADER_BYTES, at + JOURNAL_HEADER_BYTES + payloadBytes);
    const crc = buf.readUInt32LE(at + 20);
    const lineCount = buf.readUInt16LE(at + 6);
    const firstLine = buf.readUInt32LE(at + 12);
    if (type === JournalRecordType.Frame) {
      if (payloadBytes > 0 && crc32(payload) !== crc) break;
      if (payloadBytes % 2 !== 0) break;
      const copy = payloadBytes > 0 ? new Uint16Array(payloadBytes / 2) : null;
      if (copy) new Uint8Array(copy.buffer).set(payload);
      out.frames.push({ seq: buf.readUInt32LE(at + 8), kind: buf.readUInt8(at + 5), firstLine, lineCount, payload: copy });
    } else if (type === JournalRecordType.Lines) {
      out.lines.push({ firstLine, lineCount: buf.readUInt32LE(at + 24), crc });
    } else if (type === JournalRecordType.End) {
      out.endLines = buf.readUInt32LE(at + 24);
      out.endFrames = buf.readUInt32LE(at + 8);
    } else {
      break;
    }
    at += size;
  }
  out.validBytes = at;
  out.tornBytes = buf.length - at;
  return out;
}

/** Reads and parses a journal file; null when there is none. Throws SCANLINE_ERR_STORAGE_READ when it cannot be read. */
export function readJournal(path: string): JournalContents | null {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new ScanlineError('SCANLINE_ERR_STORAGE_READ', `cannot read the scan journal ${path}: ${(err as Error).message}`, {}, { cause: err });
  }
  return parseJournal(bytes);
}

/**
 * Appends records to one scan's journal. Appends are buffered in memory until commit(); a record is on stable
 * storage once a commit(true) that took it has resolved.
 */
export class ScanJournalWriter {
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private closed = false;
  private failure: ScanlineError | null = null;

  private constructor(
    private readonly fd: number,
    readonly path: string,
    private end: number,
  ) {}

  /**
   * Opens `path` for appending: a new journal (truncating), or an existing one continued after `validBytes` (what
   * parseJournal accepted): a torn tail beyond it is cut off and the cut synced, so that no stale record can follow
   * the new ones after another crash. Throws SCANLINE_ERR_STORAGE_WRITE.
   */
  static open(path: string, continueAfter: number | null = null): ScanJournalWriter {
    try {
      const fd = openSync(path, continueAfter === null ? 'w' : 'r+');
      if (continueAfter !== null) {
        ftruncateSync(fd, continueAfter);
        fdatasyncSync(fd);
      }
      return new ScanJournalWriter(fd, path, continueAfter ?? 0);
    } catch (err) {
      throw new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', `cannot open the scan journal ${path}: ${(err as Error).message}`, {}, { cause: err });
    }
  }

  /** Bytes appended and not yet taken by a commit. */
  get pendingBytes(): number {
    return this.bufferedBytes;
  }

  /** A frame the scan accepted; `payload` is copied only for calibration frames (kind 2, 3). */
  appendFrame(seq: number, kind: number, firstLine: number, lineCount: number, payload: Uint16Array | null): void {
    const bytes = payload ? new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength) : null;
    this.push(encodeRecord(JournalRecordType.Frame, kind, lineCount, seq, firstLine, bytes, bytes ? crc32(bytes) : 0, 0));
  }

  /** Lines [firstLine, firstLine + lineCount) were written to raw.u16; `crc` is the crc32 of their bytes. */
  appendLines(firstLine: number, lineCount: number, crc: number): void {
    this.push(encodeRecord(JournalRecordType.Lines, 0, Math.min(lineCount, 0xffff), 0, firstLine, null, crc, lineCount));
  }

  /** scan.end with `totalLines`, after frames 0..frames-1 were accepted. */
  appendEnd(totalLines: number, frames: number): void {
    this.push(encodeRecord(JournalRecordType.End, 0, 0, frames, 0, null, 0, totalLines));
  }

  /**
   * Writes every buffered record after the journal's end and, when `sync`, fdatasyncs the file. The records taken
   * are those appended before the call. Rejects with SCANLINE_ERR_STORAGE_WRITE (and every later commit with it).
   */
  async commit(sync: boolean): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.closed) throw new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', `the scan journal ${this.path} is closed`);
    const chunks = this.buffered;
    const bytes = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, this.bufferedBytes);
    this.buffered = [];
    this.bufferedBytes = 0;
    try {
      let done = 0;
      while (done < bytes.length) done += await writeAt(this.fd, bytes, done, bytes.length - done, this.end + done);
      this.end += bytes.length;
      if (sync) await fdatasyncAsync(this.fd);
    } catch (err) {
      this.failure = new ScanlineError(
        'SCANLINE_ERR_STORAGE_WRITE',
        `writing the scan journal ${this.path} failed: ${(err as Error).message}`,
        {},
        { cause: err },
      );
      throw this.failure;
    }
  }

  /** Closes the file (buffered records not committed are dropped: commit first). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await closeAsync(this.fd).catch(() => undefined);
  }

  /** Synchronous close for failure paths. */
  closeNow(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      closeSync(this.fd);
    } catch {
      // already gone
    }
  }

  private push(record: Buffer): void {
    this.buffered.push(record);
    this.bufferedBytes += record.length;
  }
}
