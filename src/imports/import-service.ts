/**
 * Imports: an image from a scanner already installed becomes a scan exactly as if a portal had streamed its lines.
 *
 * The importer is an in-process portal. It opens a PortalConnection with the sender's identity (no portal
 * credential: the route that received the files authenticated the sender), sends scan.start, the calibration
 * frames, every line as binary slice frames and scan.end, and waits for the acks and scan.completed, all through
 * the same code the WebSocket transport drives. Stitching, tiles, inference, results, the operator screen, storage,
 * the journal, audit and metrics are therefore the portal path itself, and the results of an imported image equal
 * those of streaming the same lines (test/imports).
 *
 * Image geometry (docs/dicos.md, "Imports"): a DX row is one detector element and a column one scan line, so an
 * image of R rows and C columns is a scan of C lines of R pixels. Two DX images (HIGH ENERGY and LOW ENERGY) of
 * one inspection make a dual-energy scan, high energy first on each line as the portal protocol has it.
 *
 * Bad files are refused with their code and kept in `<dataDir>/quarantine/<time>-<id>/` with `reason.json`
 * (bounded by import.quarantineMaxBytes); nothing else is affected. Threads: the gateway's JS thread; decoding is
 * synchronous WebAssembly (tens of ms for a large JPEG Lossless image); at most import.maxConcurrent run at once.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type DicosDx, readDicos } from '../dicos/index.js';
import { ScanlineError, toScanlineErrorOrInternal } from '../errors/index.js';
import type { IngestService, PortalChannel, PortalConnection } from '../ingest/index.js';
import type { Logger } from '../log/index.js';
import { type Declaration, type DetectorInfo, type GatewayMessage, SliceKind, encodeSliceFrame, type VehicleInfo } from '../protocol/index.js';
import type { AuditEvent, ScanOrigin } from '../storage/index.js';
import type { ImportConfig } from './config.js';

/** Who sent an import, for the scan's origin and the audit trail. */
export interface ImportSender {
  /** `user:NAME` for a person or a token's owner, `dicos:AE_TITLE` for a DICOS peer. */
  actor: string;
  address: string | null;
}

export interface DicosImportRequest {
  /** One DX (single energy) or two (HIGH ENERGY and LOW ENERGY of one inspection): whole P10 streams. */
  files: Uint8Array[];
  sender: ImportSender;
  vehicle?: VehicleInfo;
  declaration?: Declaration;
}

export interface ImportOutcome {
  scanId: string;
  portalId: string;
  lines: number;
  pixels: number;
  energies: 1 | 2;
  gaps: Array<[number, number]>;
  origin: ScanOrigin;
  /** What the reader tolerated in the files (invalid UIDs, missing attributes). */
  warnings: string[];
}

/** Counters for /metrics (read at scrape time). */
export interface ImportStats {
  /** By outcome: ok, refused (a bad file or set: caller error), failed (the gateway could not take it). */
  readonly outcomes: Map<'ok' | 'refused' | 'failed', number>;
  inProgress: number;
  queued: number;
  quarantinedFiles: number;
  /** Files refused but not kept, the quarantine being full. */
  quarantineDropped: number;
  quarantineBytes: number;
  linesImported: number;
}

export interface ImportServiceOptions {
  ingest: IngestService;
  config: ImportConfig;
  /** The gateway's data directory: the quarantine is `<dataDir>/quarantine`. */
  dataDir: string;
  audit: (event: AuditEvent) => void;
  log: Logger;
}

/** How long an import may take from scan.start to scan.completed before it is aborted. */
const IMPORT_TIMEOUT_MS = 5 * 60_000;
/** Lines per slice frame at most (the portal protocol allows 65,535; a few hundred keep frames near 1 MiB). */
const MAX_LINES_PER_FRAME = 256;
/** Frames sent ahead of the acks: enough to keep the group commit busy, bounded so an import cannot flood ingest. */
const FRAMES_IN_FLIGHT = 16;

/** Calibration frames as a Scanline gateway exported them in the DX For Processing's private attribute. */
interface ExportedCalibration {
  kind: 'dark' | 'air';
  lines: number;
  /** base64 of lines x pixels little-endian u16 of this image's energy. */
  values: string;
}

export class ImportService {
  readonly stats: ImportStats = {
    outcomes: new Map(),
    inProgress: 0,
    queued: 0,
    quarantinedFiles: 0,
    quarantineDropped: 0,
    quarantineBytes: 0,
    linesImported: 0,
  };
  private readonly quarantineDir: string;
  private readonly waiting: Array<() => void> = [];
  private sequence = 0;

  constructor(private readonly options: ImportServiceOptions) {
    this.quarantineDir = join(options.dataDir, 'quarantine');
  }

  /** Reads the quarantine's size (what earlier runs kept counts against import.quarantineMaxBytes). */
  async open(): Promise<void> {
    this.stats.quarantineBytes = await directoryBytes(this.quarantineDir);
  }

  /**
   * Imports one inspection. Resolves once the scan is completed (its lines stored and acknowledged; scoring goes on
   * as for any scan). Rejects with the reader's code for bad files (kept in quarantine), SCANLINE_ERR_IMPORT_SET
   * for files that do not make one inspection, SCANLINE_ERR_IMPORT_BUSY when too many imports wait, and with the
   * ingest's code when the gateway refuses the scan (storage full, draining).
   */
  async importDicos(request: DicosImportRequest): Promise<ImportOutcome> {
    await this.slot();
    try {
      let images: DicosDx[];
      try {
        images = await this.readSet(request.files);
      } catch (err) {
        const e = toScanlineErrorOrInternal(err);
        await this.refused(e, request);
        throw e;
      }
      try {
        const outcome = await this.feed(images, request);
        this.count('ok');
        this.stats.linesImported += outcome.lines;
        this.options.audit({
          actor: request.sender.actor,
          action: 'import.dicos',
          target: outcome.scanId,
          outcome: 'ok',
          address: request.sender.address,
          details: { files: request.files.length, lines: outcome.lines, station: outcome.origin.station, sopInstanceUids: outcome.origin.sopInstanceUids },
        });
        this.options.log.info({ scanId: outcome.scanId, by: request.sender.actor, lines: outcome.lines, energies: outcome.energies }, 'DICOS image imported');
        return outcome;
      } catch (err) {
        const e = toScanlineErrorOrInternal(err);
        if (e.callerError) await this.refused(e, request);
        else {
          this.count('failed');
          this.options.log.warn({ err: e, by: request.sender.actor }, 'DICOS import failed');
        }
        throw e;
      }
    } finally {
      this.release();
    }
  }

  private count(outcome: 'ok' | 'refused' | 'failed'): void {
    this.stats.outcomes.set(outcome, (this.stats.outcomes.get(outcome) ?? 0) + 1);
  }

  private async slot(): Promise<void> {
    const { maxConcurrent, maxQueued } = this.options.config;
    if (this.stats.inProgress < maxConcurrent) {
      this.stats.inProgress++;
      return;
    }
    if (this.waiting.length >= maxQueued) {
      throw new ScanlineError(
        'SCANLINE_ERR_IMPORT_BUSY',
        `${this.stats.inProgress} imports are running and ${this.waiting.length} waiting (import.maxConcurrent, import.maxQueued); send again shortly`,
        { retryAfterSec: 2 },
      );
    }
    this.stats.queued++;
    await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.stats.queued--;
    this.stats.inProgress++;
  }

  private release(): void {
    this.stats.inProgress--;
    this.waiting.shift()?.();
  }

  /** The files as one inspection: one DX, or a HIGH ENERGY and a LOW ENERGY DX of the same size and scan. */
  private async readSet(files: Uint8Array[]): Promise<DicosDx[]> {
    if (files.length === 0 || files.length > 2) {
      throw new ScanlineError('SCANLINE_ERR_IMPORT_SET', `an import is one DX image or a dual-energy pair; ${files.length} files were sent`);
    }
    const images: DicosDx[] = [];
    for (const bytes of files) {
      const o = await readDicos(bytes);
      if (o.kind !== 'dx') {
        throw new ScanlineError('SCANLINE_ERR_IMPORT_SET', 'a Threat Detection Report is not an image to scan; send the DX images of the inspection');
      }
      images.push(o);
    }
    const maxPixels = 4096;
    for (const image of images) {
      if (image.rows > maxPixels) {
        throw new ScanlineError(
          'SCANLINE_ERR_DICOS_IMAGE',
          `the DX has ${image.rows} rows; a row is one detector element and a detector has at most ${maxPixels} (is the image turned? columns are scan lines)`,
        );
      }
      const maxLines = this.options.ingest.config.stitch.maxLines;
      if (image.columns > maxLines) {
        throw new ScanlineError(
          'SCANLINE_ERR_DICOS_IMAGE',
          `the DX has ${image.columns} columns (scan lines); a scan has at most ${maxLines} (stitch.maxLines)`,
        );
      }
    }
    if (images.length === 1) return images;
    const high = images.find((i) => i.energy === 'high');
    const low = images.find((i) => i.energy === 'low');
    if (!high || !low) {
      throw new ScanlineError(
        'SCANLINE_ERR_IMPORT_SET',
        `two DX images make a dual-energy scan only as HIGH ENERGY and LOW ENERGY (Image Type value 2); these are ${images.map((i) => i.imageType[1] ?? 'unspecified').join(' and ')}`,
      );
    }
    if (high.rows !== low.rows || high.columns !== low.columns) {
      throw new ScanlineError('SCANLINE_ERR_IMPORT_SET', `the energies differ in size: high ${high.rows} x ${high.columns}, low ${low.rows} x ${low.columns}`);
    }
    if (high.studyInstanceUid !== null && low.studyInstanceUid !== null && high.studyInstanceUid !== low.studyInstanceUid) {
      throw new ScanlineError('SCANLINE_ERR_IMPORT_SET', 'the two energies belong to different inspections (their Scan Instance UIDs differ)');
    }
    return [high, low];
  }

  /** Streams the images through an in-process portal connection; resolves at scan.completed. */
  private async feed(images: DicosDx[], request: DicosImportRequest): Promise<ImportOutcome> {
    const { ingest, config } = this.options;
    const first = images[0];
    const energies = images.length as 1 | 2;
    const pixels = first.rows;
    const lines = first.columns;
    const spacing = first.pixelSpacingMm?.[0];
    const detector: DetectorInfo = {
      pixels,
      energies,
      bitDepth: 16,
      pitchMm: spacing !== undefined && spacing > 0 && spacing <= 100 ? spacing : config.pitchMm,
      lineRateHz: config.lineRateHz,
    };
    const origin: ScanOrigin = {
      source: 'dicos',
      station: first.stationName,
      receivedBy: request.sender.actor,
      receivedAt: new Date().toISOString(),
      studyInstanceUid: first.studyInstanceUid,
      sopInstanceUids: images.map((i) => i.sopInstanceUid),
      sopClassUid: first.sopClassUid,
      transferSyntaxUid: first.transferSyntaxUid,
      ooiId: first.ooiId,
    };
    const calibration = this.calibrationOf(images);
    const channel = new ImporterChannel(request.sender.address ?? 'local');
    const conn = ingest.openConnection(channel);
    channel.attach(conn);
    conn.acceptImporter(config.portalId, detector, origin);
    const streamId = 1;
    const vehicle = request.vehicle ?? (first.ooiId !== null ? { plate: first.ooiId } : undefined);
    try {
      conn.onText(
        JSON.stringify({ type: 'scan.start', streamId, ...(vehicle ? { vehicle } : {}), ...(request.declaration ? { declaration: request.declaration } : {}) }),
        0,
      );
      const scanId = channel.takeAccepted();
      let seq = 0;
      const startUs = BigInt(Date.now()) * 1000n;
      for (const frame of calibration) {
        await channel.room(seq);
        conn.onBinary(
          encodeSliceFrame({ kind: frame.kind, energies, streamId, seq, firstLine: 0, pixels, acquiredAtUs: startUs, lineCount: frame.lines }, frame.values),
        );
        channel.check();
        seq++;
      }
      const perFrame = Math.max(1, Math.min(MAX_LINES_PER_FRAME, Math.floor((ingest.config.portal.maxMessageBytes - 32) / (energies * pixels * 2))));
      const usPerLine = 1e6 / config.lineRateHz;
      for (let line = 0; line < lines; line += perFrame) {
        const count = Math.min(perFrame, lines - line);
        await channel.room(seq);
        const frame = encodeSliceFrame(
          {
            kind: SliceKind.Image,
            energies,
            streamId,
            seq,
            firstLine: line,
            pixels,
            acquiredAtUs: startUs + BigInt(Math.round(line * usPerLine)),
            lineCount: count,
          },
          linesOf(images, line, count),
        );
        conn.onBinary(frame);
        channel.check();
        seq++;
      }
      await channel.allAcked(seq);
      conn.onText(JSON.stringify({ type: 'scan.end', streamId, totalLines: lines }), 0);
      channel.check();
      const completed = await channel.completed(IMPORT_TIMEOUT_MS);
      return {
        scanId,
        portalId: config.portalId,
        lines: completed.lines,
        pixels,
        energies,
        gaps: completed.gaps,
        origin,
        warnings: images.flatMap((i) => i.warnings),
      };
    } catch (err) {
      // Whatever was open is aborted with the reason (a failed import leaves no scan waiting for a resume).
      if (channel.scanId !== null && !channel.isCompleted) {
        conn.onText(JSON.stringify({ type: 'scan.abort', streamId, reason: `import failed: ${(err as Error).message}`.slice(0, 500) }), 0);
      }
      throw err;
    } finally {
      conn.onClose(1000);
    }
  }

  /**
   * Calibration frames for the scan: those a Scanline gateway exported with the image (the scan's own dark and air
   * frames, so that re-importing it gives the same results), else per import.airReference.
   */
  private calibrationOf(images: DicosDx[]): Array<{ kind: SliceKind; lines: number; values: Uint16Array }> {
    const pixels = images[0].rows;
    const energies = images.length;
    const exported = images.map((i) => parseExportedCalibration(i.scanlinePrivate));
    if (exported.every((c) => c !== null) && exported.every((c) => c.length === exported[0].length)) {
      const frames: Array<{ kind: SliceKind; lines: number; values: Uint16Array }> = [];
      for (let f = 0; f < exported[0].length; f++) {
        const parts = exported.map((c) => c[f]);
        const lineCount = parts[0].lines;
        const perEnergy = parts.map((p) => new Uint16Array(new Uint8Array(Buffer.from(p.values, 'base64')).buffer));
        if (parts.some((p) => p.kind !== parts[0].kind || p.lines !== lineCount) || perEnergy.some((v) => v.length !== lineCount * pixels)) {
          throw new ScanlineError('SCANLINE_ERR_DICOS_IMAGE', 'the calibration Scanline wrote into the images does not match them (a damaged export)');
        }
        const values = new Uint16Array(lineCount * energies * pixels);
        for (let l = 0; l < lineCount; l++) {
          for (let e = 0; e < energies; e++) values.set(perEnergy[e].subarray(l * pixels, (l + 1) * pixels), (l * energies + e) * pixels);
        }
        frames.push({ kind: parts[0].kind === 'dark' ? SliceKind.Dark : SliceKind.Air, lines: lineCount, values });
      }
      return frames;
    }
    if (this.options.config.airReference === 'first-lines') return [];
    const bits = Math.max(...images.map((i) => i.bitsStored));
    return [{ kind: SliceKind.Air, lines: 1, values: new Uint16Array(energies * pixels).fill(2 ** bits - 1) }];
  }

  /** Audits and counts a refusal; keeps the files in quarantine when there is room. */
  private async refused(err: ScanlineError, request: DicosImportRequest): Promise<void> {
    this.count('refused');
    this.options.audit({
      actor: request.sender.actor,
      action: 'import.dicos',
      target: null,
      outcome: 'refused',
      address: request.sender.address,
      details: { code: err.code, message: err.message, files: request.files.length },
    });
    const kept = await this.quarantine(err, request).catch((qErr: unknown) => {
      this.options.log.error({ err: qErr }, 'a refused import could not be kept in quarantine');
      return null;
    });
    this.options.log.warn({ code: err.code, msg: err.message, by: request.sender.actor, quarantine: kept }, 'DICOS import refused');
  }

  private async quarantine(err: ScanlineError, request: DicosImportRequest): Promise<string | null> {
    const bytes = request.files.reduce((n, f) => n + f.byteLength, 0);
    if (this.stats.quarantineBytes + bytes > this.options.config.quarantineMaxBytes) {
      this.stats.quarantineDropped += request.files.length;
      return null;
    }
    this.stats.quarantineBytes += bytes;
    const name = `${new Date()
      .toISOString()
      .replaceAll(':', '')
      .replace(/\.\d+Z$/, 'Z')}-${process.pid}-${++this.sequence}-${randomBytes(3).toString('hex')}`;
    // Written under a temporary name and renamed, so a folder in quarantine is always whole.
    const partial = join(this.quarantineDir, `.${name}.partial`);
    await mkdir(partial, { recursive: true, mode: 0o700 });
    for (const [i, file] of request.files.entries()) await writeFile(join(partial, `file-${i + 1}.dcm`), file, { mode: 0o600 });
    const reason = {
      code: err.code,
      message: err.message,
      receivedBy: request.sender.actor,
      address: request.sender.address,
      receivedAt: new Date().toISOString(),
      files: request.files.map((f, i) => ({ name: `file-${i + 1}.dcm`, bytes: f.byteLength })),
    };
    await writeFile(join(partial, 'reason.json'), `${JSON.stringify(reason, null, 2)}\n`, { mode: 0o600 });
    const final = join(this.quarantineDir, name);
    await rename(partial, final);
    this.stats.quarantinedFiles += request.files.length;
    return final;
  }
}

function parseExportedCalibration(text: string | null): ExportedCalibration[] | null {
  if (text === null) return null;
  try {
    const parsed = JSON.parse(text) as { calibration?: unknown };
    if (!Array.isArray(parsed.calibration)) return null;
    const frames = parsed.calibration as ExportedCalibration[];
    return frames.every((f) => (f.kind === 'dark' || f.kind === 'air') && Number.isInteger(f.lines) && f.lines > 0 && typeof f.values === 'string')
      ? frames
      : null;
  } catch {
    return null;
  }
}

/** Lines [first, first + count) of the images as the wire wants them: per line, each energy's pixels in turn. */
export function linesOf(images: DicosDx[], first: number, count: number): Uint16Array {
  const rows = images[0].rows;
  const columns = images[0].columns;
  const energies = images.length;
  const out = new Uint16Array(count * energies * rows);
  for (let l = 0; l < count; l++) {
    const column = first + l;
    for (let e = 0; e < energies; e++) {
      const px = images[e].pixels;
      const base = (l * energies + e) * rows;
      for (let r = 0; r < rows; r++) out[base + r] = px[r * columns + column];
    }
  }
  return out;
}

async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  let entries: Array<{ name: string; isDirectory(): boolean }>;
  try {
    entries = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory()) total += await directoryBytes(path);
    else total += (await stat(path).catch(() => ({ size: 0 }))).size;
  }
  return total;
}

/**
 * The importer's end of its PortalConnection: collects what the gateway says (scan.accepted, acks, errors,
 * scan.completed) and lets the importer wait for it. Synchronous replies (scan.accepted, a refused frame) are there
 * when onText/onBinary returns; acks come after the group commit.
 */
class ImporterChannel implements PortalChannel {
  scanId: string | null = null;
  isCompleted = false;
  private conn: PortalConnection | null = null;
  private acked = -1;
  private failure: ScanlineError | null = null;
  private completion: { lines: number; gaps: Array<[number, number]> } | null = null;
  private wake: (() => void) | null = null;

  constructor(readonly remoteAddress: string) {}

  attach(conn: PortalConnection): void {
    this.conn = conn;
  }

  send(message: GatewayMessage): void {
    switch (message.type) {
      case 'scan.accepted':
        this.scanId = message.scanId;
        break;
      case 'ack':
        this.acked = Math.max(this.acked, message.seq);
        break;
      case 'scan.completed':
        this.isCompleted = true;
        this.completion = { lines: message.lines, gaps: message.gaps as Array<[number, number]> };
        break;
      case 'error':
        this.failure ??= new ScanlineError(message.code as 'SCANLINE_ERR_INTERNAL', message.message);
        break;
      default:
        return;
    }
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  close(code: number, reason: string): void {
    this.failure ??= new ScanlineError('SCANLINE_ERR_INTERNAL', `the gateway closed the import's connection (${code} ${reason})`);
    this.conn?.onClose(code);
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  /** Throws what the gateway refused, if anything. */
  check(): void {
    if (this.failure) throw this.failure;
  }

  takeAccepted(): string {
    this.check();
    if (this.scanId === null) throw new ScanlineError('SCANLINE_ERR_INTERNAL', 'the import was not answered with scan.accepted');
    return this.scanId;
  }

  private async until(done: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!done()) {
      this.check();
      const left = deadline - Date.now();
      if (left <= 0) throw new ScanlineError('SCANLINE_ERR_INTERNAL', `the import timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1_000));
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.check();
  }

  /** Waits until frame `seq` may be sent (at most FRAMES_IN_FLIGHT unacknowledged). */
  room(seq: number): Promise<void> {
    return this.until(() => seq - this.acked <= FRAMES_IN_FLIGHT, IMPORT_TIMEOUT_MS, 'acknowledgements');
  }

  allAcked(frames: number): Promise<void> {
    return this.until(() => this.acked >= frames - 1, IMPORT_TIMEOUT_MS, 'acknowledgements');
  }

  async completed(timeoutMs: number): Promise<{ lines: number; gaps: Array<[number, number]> }> {
    await this.until(() => this.completion !== null, timeoutMs, 'scan.completed');
    return this.completion!;
  }
}
