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
import { mkdir, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type DicosDx, readDicos } from '../dicos/index.js';
import { ScanlineError, toScanlineErrorOrInternal } from '../errors/index.js';
import type { IngestService, PortalChannel, PortalConnection } from '../ingest/index.js';
import type { Logger } from '../log/index.js';
import { type Declaration, type DetectorInfo, type GatewayMessage, SliceKind, encodeSliceFrame, type VehicleInfo } from '../protocol/index.js';
import type { AuditEvent, ScanOrigin } from '../storage/index.js';
import type { ImportConfig } from '../config/index.js';

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
  /** The portal id the scan is filed under: a DICOS source's (dicos.listener.sources); default import.portalId. */
  portalId?: string;
  /** When the last byte of the (last) file arrived; default: when the import starts. */
  receivedAt?: Date;
  /** What the files are: DICOS (default) or 16-bit TIFF/PNG images with a sidecar (the watched folder). */
  source?: 'dicos' | 'file';
  /** File names, for the origin of a `file` import. */
  fileNames?: string[];
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

/** A place among the running imports (ImportService.acquireSlot); release() is idempotent. */
export interface ImportSlot {
  release(): void;
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
  /** Why the disk has no room for more files (storage.minFreeBytes), or null: refused files are then not kept. */
  diskRefusal?: () => string | null;
}

/** How long an import may take from scan.start to scan.completed before it is aborted (SCANLINE_ERR_IMPORT_TIMEOUT). */
const IMPORT_TIMEOUT_MS = 5 * 60_000;
/** Detector elements a portal may have (protocol: hello.detector.pixels). */
const MAX_DETECTOR_PIXELS = 4096;

/** Errors that say the files are bad (kept in quarantine), as opposed to the gateway being unable to take them. */
const FILE_FAULTS: ReadonlySet<string> = new Set([
  'SCANLINE_ERR_DICOS_PARSE',
  'SCANLINE_ERR_DICOS_SOP_CLASS',
  'SCANLINE_ERR_DICOS_TRANSFER_SYNTAX',
  'SCANLINE_ERR_DICOS_IMAGE',
  'SCANLINE_ERR_IMPORT_SET',
  'SCANLINE_ERR_IMPORT_SIDECAR',
]);

export function isFileFault(err: ScanlineError): boolean {
  return FILE_FAULTS.has(err.code);
}

/** The scan id a Scanline export names in its private attribute, or null. */
function exportedScanIdOf(text: string | null): string | null {
  if (text === null) return null;
  try {
    const id = (JSON.parse(text) as { scanId?: unknown }).scanId;
    return typeof id === 'string' ? id : null;
  } catch {
    return null;
  }
}
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
    // A folder still .partial was being written when the gateway stopped: incomplete, so removed.
    const entries = await readdir(this.quarantineDir).catch(() => [] as string[]);
    for (const e of entries) if (e.startsWith('.') && e.endsWith('.partial')) await rm(join(this.quarantineDir, e), { recursive: true, force: true });
    this.stats.quarantineBytes = await directoryBytes(this.quarantineDir);
  }

  /**
   * Imports one inspection. Resolves once the scan is completed (its lines stored and acknowledged; scoring goes on
   * as for any scan). Rejects with the reader's code for bad files (kept in quarantine), SCANLINE_ERR_IMPORT_SET
   * for files that do not make one inspection, SCANLINE_ERR_IMPORT_BUSY when too many imports wait, and with the
   * ingest's code when the gateway refuses the scan (storage full, draining).
   */
  async importDicos(request: DicosImportRequest, slot?: ImportSlot): Promise<ImportOutcome> {
    return this.run(request, () => this.readSet(request.files), slot);
  }

  /**
   * A place among the imports that may run (import.maxConcurrent), waiting in the queue (import.maxQueued) or
   * refused at once with SCANLINE_ERR_IMPORT_BUSY; give it to importDicos or importImages, or release it.
   */
  /**
   * A place among the running imports now, or SCANLINE_ERR_IMPORT_BUSY: for HTTP, whose body must be read as it
   * arrives (uWS delivers it only to a handler set at once), so that waiting would mean holding bodies in memory.
   */
  takeSlotNow(): ImportSlot {
    if (this.stats.inProgress >= this.options.config.maxConcurrent) {
      throw new ScanlineError('SCANLINE_ERR_IMPORT_BUSY', `${this.stats.inProgress} imports are running (import.maxConcurrent); send again shortly`, {
        retryAfterSec: 2,
      });
    }
    this.stats.inProgress++;
    return this.slotHandle();
  }

  private slotHandle(): ImportSlot {
    let held = true;
    return {
      release: () => {
        if (!held) return;
        held = false;
        this.release();
      },
    };
  }

  async acquireSlot(): Promise<ImportSlot> {
    await this.slot();
    return this.slotHandle();
  }

  /**
   * Imports images already read (the DICOS listener reads each object as it arrives, to pair energies): the same as
   * importDicos from there on. `request.files` are their bytes, kept in quarantine if the set is refused.
   */
  async importImages(images: DicosDx[], request: DicosImportRequest): Promise<ImportOutcome> {
    return this.run(request, async () => {
      this.checkSet(images);
      return images.length === 2 && images[0].energy === 'low' ? [images[1], images[0]] : images;
    });
  }

  private async run(request: DicosImportRequest, read: () => Promise<DicosDx[]>, held?: ImportSlot): Promise<ImportOutcome> {
    const slot = held ?? (await this.acquireSlot());
    try {
      let images: DicosDx[];
      try {
        images = await read();
      } catch (err) {
        const e = toScanlineErrorOrInternal(err);
        if (isFileFault(e)) await this.refuse(e, request.files, request.sender);
        else await this.failed(e, request);
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
        this.options.log.info(
          { scanId: outcome.scanId, portalId: outcome.portalId, by: request.sender.actor, lines: outcome.lines, energies: outcome.energies },
          'DICOS image imported',
        );
        return outcome;
      } catch (err) {
        const e = toScanlineErrorOrInternal(err);
        if (isFileFault(e)) await this.refuse(e, request.files, request.sender);
        else await this.failed(e, request);
        throw e;
      }
    } finally {
      slot.release();
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

  /** The files as one inspection: one DX, or a HIGH ENERGY and a LOW ENERGY DX of the same size and scan, high first. */
  private async readSet(files: Uint8Array[]): Promise<DicosDx[]> {
    if (files.length === 0 || files.length > 2) {
      throw new ScanlineError('SCANLINE_ERR_IMPORT_SET', `an import is one DX image or a dual-energy pair; ${files.length} files were sent`);
    }
    const images: DicosDx[] = [];
    const limits = { maxRows: MAX_DETECTOR_PIXELS, maxColumns: this.options.ingest.config.stitch.maxLines };
    for (const bytes of files) {
      const o = await readDicos(bytes, limits);
      if (o.kind !== 'dx') {
        throw new ScanlineError('SCANLINE_ERR_IMPORT_SET', 'a Threat Detection Report is not an image to scan; send the DX images of the inspection');
      }
      images.push(o);
    }
    this.checkSet(images);
    return images.length === 2 && images[0].energy === 'low' ? [images[1], images[0]] : images;
  }

  /** The limits an image must fit before it is decoded (readDicos): detector elements and lines of a scan. */
  readLimits(): { maxRows: number; maxColumns: number } {
    return { maxRows: MAX_DETECTOR_PIXELS, maxColumns: this.options.ingest.config.stitch.maxLines };
  }

  /** Throws unless the images make one inspection the pipeline can take. */
  checkSet(images: DicosDx[]): void {
    if (images.length === 0 || images.length > 2) {
      throw new ScanlineError('SCANLINE_ERR_IMPORT_SET', `an import is one DX image or a dual-energy pair; ${images.length} images were sent`);
    }
    const maxPixels = MAX_DETECTOR_PIXELS;
    const maxLines = this.options.ingest.config.stitch.maxLines;
    for (const image of images) {
      if (image.rows > maxPixels) {
        throw new ScanlineError(
          'SCANLINE_ERR_DICOS_IMAGE',
          `the DX has ${image.rows} rows; a row is one detector element and a detector has at most ${maxPixels} (is the image turned? columns are scan lines)`,
        );
      }
      if (image.columns > maxLines) {
        throw new ScanlineError(
          'SCANLINE_ERR_DICOS_IMAGE',
          `the DX has ${image.columns} columns (scan lines); a scan has at most ${maxLines} (stitch.maxLines)`,
        );
      }
    }
    if (images.length === 1) return;
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
    const differ = (a: string | null, b: string | null): boolean => a !== null && b !== null && a !== b;
    if (differ(high.studyInstanceUid, low.studyInstanceUid) || differ(high.frameOfReferenceUid, low.frameOfReferenceUid) || differ(high.ooiId, low.ooiId)) {
      throw new ScanlineError(
        'SCANLINE_ERR_IMPORT_SET',
        'the two energies belong to different inspections (their Scan Instance UIDs, Frames of Reference or OOI IDs differ)',
      );
    }
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
    const fromFiles = request.source === 'file';
    const origin: ScanOrigin = {
      source: fromFiles ? 'file' : 'dicos',
      station: first.stationName ?? request.sender.actor,
      receivedBy: request.sender.actor,
      receivedAt: (request.receivedAt ?? new Date()).toISOString(),
      studyInstanceUid: first.studyInstanceUid,
      sopInstanceUids: fromFiles ? [] : images.map((i) => i.sopInstanceUid),
      sopClassUid: fromFiles ? null : first.sopClassUid,
      transferSyntaxUid: fromFiles ? null : first.transferSyntaxUid,
      ooiId: first.ooiId,
      ...(request.fileNames ? { files: request.fileNames } : {}),
    };
    const calibration = this.calibrationOf(images);
    const channel = new ImporterChannel(request.sender.address ?? 'local');
    const conn = ingest.openConnection(channel);
    channel.attach(conn);
    const portalId = request.portalId ?? config.portalId;
    conn.acceptImporter(portalId, detector, origin);
    const streamId = 1;
    // The OOI ID is the plate, unless the file is a Scanline export of a scan without one (its OOI ID is the scan id).
    const exportedScanId = exportedScanIdOf(first.scanlinePrivate);
    const plate = first.ooiId !== null && first.ooiId !== exportedScanId ? first.ooiId : null;
    const vehicle = request.vehicle ?? (plate !== null ? { plate } : undefined);
    const deadline = Date.now() + IMPORT_TIMEOUT_MS;
    try {
      const start = JSON.stringify({
        type: 'scan.start',
        streamId,
        ...(vehicle ? { vehicle } : {}),
        ...(request.declaration ? { declaration: request.declaration } : {}),
      });
      conn.onText(start, Buffer.byteLength(start));
      const scanId = channel.takeAccepted();
      let seq = 0;
      const startUs = BigInt(Date.now()) * 1000n;
      const perFrame = Math.max(1, Math.min(MAX_LINES_PER_FRAME, Math.floor((ingest.config.portal.maxMessageBytes - 32) / (energies * pixels * 2))));
      // Calibration frames are cut like image frames (all lines of all frames of a kind are averaged: the same).
      for (const frame of calibration) {
        const valuesPerLine = energies * pixels;
        for (let line = 0; line < frame.lines; line += perFrame) {
          const count = Math.min(perFrame, frame.lines - line);
          await channel.room(seq, deadline);
          conn.onBinary(
            encodeSliceFrame(
              { kind: frame.kind, energies, streamId, seq, firstLine: 0, pixels, acquiredAtUs: startUs, lineCount: count },
              frame.values.subarray(line * valuesPerLine, (line + count) * valuesPerLine),
            ),
          );
          channel.check();
          seq++;
        }
      }
      const usPerLine = 1e6 / config.lineRateHz;
      for (let line = 0; line < lines; line += perFrame) {
        const count = Math.min(perFrame, lines - line);
        await channel.room(seq, deadline);
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
      await channel.allAcked(seq, deadline);
      const end = JSON.stringify({ type: 'scan.end', streamId, totalLines: lines });
      conn.onText(end, Buffer.byteLength(end));
      channel.check();
      const completed = await channel.completed(deadline);
      return {
        scanId,
        portalId,
        lines: completed.lines,
        pixels,
        energies,
        gaps: completed.gaps,
        origin,
        warnings: images.flatMap((i) => i.warnings),
      };
    } catch (err) {
      // Whatever was open is aborted with the reason (a failed import leaves no scan waiting for a resume).
      if (channel.scanId !== null && !channel.isCompleted && conn.isOpen) {
        const abort = JSON.stringify({ type: 'scan.abort', streamId, reason: `import failed: ${(err as Error).message}`.slice(0, 500) });
        conn.onText(abort, Buffer.byteLength(abort));
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
        const perEnergy = parts.map((p) => {
          const raw = Buffer.from(p.values, 'base64');
          return raw.byteLength % 2 === 0 ? new Uint16Array(new Uint8Array(raw).buffer) : new Uint16Array(0);
        });
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
    // Full scale of each energy's own bit depth (a 12-bit low energy beside a 16-bit high one has its own).
    const values = new Uint16Array(energies * pixels);
    for (const [e, image] of images.entries()) values.fill(2 ** image.bitsStored - 1, e * pixels, (e + 1) * pixels);
    return [{ kind: SliceKind.Air, lines: 1, values }];
  }

  /** The gateway could not take an import (storage full, draining, a fault of its own): counted, audited, logged. */
  private async failed(err: ScanlineError, request: DicosImportRequest): Promise<void> {
    this.count('failed');
    try {
      this.options.audit({
        actor: request.sender.actor,
        action: 'import.dicos',
        target: null,
        outcome: 'refused',
        address: request.sender.address,
        details: { code: err.code, message: err.message, files: request.files.length, fault: 'gateway' },
      });
    } catch (auditErr) {
      this.options.log.error({ err: auditErr }, 'a failed import could not be audited');
    }
    this.options.log.warn({ err, by: request.sender.actor }, 'DICOS import failed');
  }

  /** Audits and counts a refusal; keeps the files in quarantine when there is room (true when kept). Never throws. */
  async refuse(err: ScanlineError, files: Uint8Array[], sender: ImportSender): Promise<boolean> {
    this.count('refused');
    try {
      this.options.audit({
        actor: sender.actor,
        action: 'import.dicos',
        target: null,
        outcome: 'refused',
        address: sender.address,
        details: { code: err.code, message: err.message, files: files.length },
      });
    } catch (auditErr) {
      this.options.log.error({ err: auditErr }, 'a refused import could not be audited');
    }
    const kept = await this.quarantine(err, files, sender).catch((qErr: unknown) => {
      this.options.log.error({ err: qErr }, 'a refused import could not be kept in quarantine');
      return null;
    });
    this.options.log.warn({ code: err.code, msg: err.message, by: sender.actor, quarantine: kept }, 'DICOS import refused');
    return kept !== null;
  }

  private async quarantine(err: ScanlineError, files: Uint8Array[], sender: ImportSender): Promise<string | null> {
    const bytes = files.reduce((n, f) => n + f.byteLength, 0);
    const lowDisk = this.options.diskRefusal?.() ?? null;
    if (lowDisk !== null || this.stats.quarantineBytes + bytes > this.options.config.quarantineMaxBytes) {
      this.stats.quarantineDropped += files.length;
      return null;
    }
    // Counted before the writes so that concurrent refusals cannot overshoot the limit; given back if they fail.
    this.stats.quarantineBytes += bytes;
    const name = `${new Date()
      .toISOString()
      .replaceAll(':', '')
      .replace(/\.\d+Z$/, 'Z')}-${process.pid}-${++this.sequence}-${randomBytes(3).toString('hex')}`;
    // Written under a temporary name and renamed, so a folder in quarantine is always whole.
    const partial = join(this.quarantineDir, `.${name}.partial`);
    try {
      return await this.writeQuarantine(partial, name, err, files, sender);
    } catch (writeErr) {
      this.stats.quarantineBytes -= bytes;
      await rm(partial, { recursive: true, force: true }).catch(() => undefined);
      throw writeErr;
    }
  }

  private async writeQuarantine(partial: string, name: string, err: ScanlineError, files: Uint8Array[], sender: ImportSender): Promise<string> {
    await mkdir(partial, { recursive: true, mode: 0o700 });
    for (const [i, file] of files.entries()) await writeFile(join(partial, `file-${i + 1}.dcm`), file, { mode: 0o600 });
    const reason = {
      code: err.code,
      message: err.message,
      receivedBy: sender.actor,
      address: sender.address,
      receivedAt: new Date().toISOString(),
      files: files.map((f, i) => ({ name: `file-${i + 1}.dcm`, bytes: f.byteLength })),
    };
    await writeFile(join(partial, 'reason.json'), `${JSON.stringify(reason, null, 2)}\n`, { mode: 0o600 });
    const final = join(this.quarantineDir, name);
    await rename(partial, final);
    this.stats.quarantinedFiles += files.length;
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
      case 'scan.aborted':
        this.failure ??= new ScanlineError('SCANLINE_ERR_INTERNAL', `the gateway aborted the imported scan: ${message.reason}`);
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

  private async until(done: () => boolean, deadline: number, what: string): Promise<void> {
    while (!done()) {
      this.check();
      const left = deadline - Date.now();
      if (left <= 0) throw new ScanlineError('SCANLINE_ERR_IMPORT_TIMEOUT', `the import did not finish in ${IMPORT_TIMEOUT_MS / 1000} s (waiting for ${what})`);
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
  room(seq: number, deadline: number): Promise<void> {
    return this.until(() => seq - this.acked <= FRAMES_IN_FLIGHT, deadline, 'acknowledgements');
  }

  allAcked(frames: number, deadline: number): Promise<void> {
    return this.until(() => this.acked >= frames - 1, deadline, 'acknowledgements');
  }

  async completed(deadline: number): Promise<{ lines: number; gaps: Array<[number, number]> }> {
    await this.until(() => this.completion !== null, deadline, 'scan.completed');
    return this.completion!;
  }
}
