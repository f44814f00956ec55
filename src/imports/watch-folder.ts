/**
 * The watched folder (import.watchDir): scanners that export to a share drop DICOS files, or 16-bit TIFF/PNG images
 * with a JSON sidecar, and each inspection becomes a scan through ImportService.
 *
 * Rules (docs/dicos.md, "Watched folder"):
 * - a file is taken once its size and modification time are the same on two looks in a row (its writer is done);
 *   names starting with "." and sub-folders are ignored, as are files whose extension is none of .dcm, .dcs,
 *   .json (a sidecar), .png, .tif, .tiff (an image is taken with its sidecar only);
 * - DICOS: a single-energy DX is imported alone; a HIGH and a LOW ENERGY DX of one Scan Instance UID are paired; one
 *   energy waits for the other up to import.watchPairWaitMs, then is imported alone;
 * - imported files are deleted (the scan store has them now); refused ones are moved to the quarantine by
 *   ImportService (with their reason) and deleted here; when the gateway cannot take them (storage full, busy), they
 *   stay and are tried again on a later look.
 * Threads: the gateway's JS thread; one look at a time.
 */
import { readFile, readdir, rm, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { type DicosDx, readDicos } from '../dicos/index.js';
import { ScanlineError, toScanlineErrorOrInternal } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { parseSidecar, readImageFile } from './image-file.js';
import { type ImportSender, type ImportService, isFileFault } from './import-service.js';

export interface WatchFolderOptions {
  dir: string;
  intervalMs: number;
  pairWaitMs: number;
  imports: ImportService;
  limits: { maxRows: number; maxColumns: number };
  log: Logger;
}

const DICOS_EXTENSIONS = new Set(['.dcm', '.dcs']);
const IMAGE_EXTENSIONS = new Set(['.png', '.tif', '.tiff']);

interface Seen {
  size: number;
  mtimeMs: number;
  /** Looks in a row with the same size and time. */
  stable: number;
  firstSeen: number;
}

interface WaitingEnergy {
  name: string;
  bytes: Uint8Array;
  image: DicosDx;
  since: number;
}

export class WatchFolder {
  private timer: NodeJS.Timeout | null = null;
  private looking: Promise<void> | null = null;
  private closed = false;
  private readonly seen = new Map<string, Seen>();
  /** DICOS energies waiting for their partner, by Scan Instance UID. */
  private readonly waiting = new Map<string, WaitingEnergy>();
  /** Files whose import the gateway could not take: not tried again before this time. */
  private readonly retryAfter = new Map<string, number>();
  private readonly sender: ImportSender;

  constructor(private readonly options: WatchFolderOptions) {
    this.sender = { actor: `folder:${options.dir}`.slice(0, 200), address: null };
  }

  start(): void {
    this.timer = setInterval(() => {
      if (this.looking !== null) return;
      this.looking = this.look()
        .catch((err: unknown) => this.options.log.error({ err, dir: this.options.dir }, 'looking at the watched folder failed'))
        .finally(() => {
          this.looking = null;
        });
    }, this.options.intervalMs);
    this.timer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.looking;
  }

  /** One look at the folder (exposed for tests and benchmarks; start() calls it every intervalMs). */
  async look(): Promise<void> {
    const { dir, log } = this.options;
    let names: string[];
    try {
      names = (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile() && !e.name.startsWith('.')).map((e) => e.name);
    } catch (err) {
      log.warn({ err, dir }, 'the watched folder cannot be read');
      return;
    }
    const ready = new Set<string>();
    const present = new Set(names);
    for (const name of names) {
      const ext = extname(name).toLowerCase();
      if (!DICOS_EXTENSIONS.has(ext) && !IMAGE_EXTENSIONS.has(ext) && ext !== '.json') continue;
      const st = await stat(join(dir, name)).catch(() => null);
      if (!st) continue;
      const before = this.seen.get(name);
      const same = before !== undefined && before.size === st.size && before.mtimeMs === st.mtimeMs;
      const entry: Seen = { size: st.size, mtimeMs: st.mtimeMs, stable: same ? before.stable + 1 : 0, firstSeen: before?.firstSeen ?? Date.now() };
      this.seen.set(name, entry);
      if (entry.stable >= 1 && (this.retryAfter.get(name) ?? 0) <= Date.now()) ready.add(name);
    }
    for (const name of this.seen.keys()) if (!present.has(name)) this.seen.delete(name);

    // Sidecars first: the images they name are theirs, not loose files.
    const claimed = new Set<string>();
    // One file's trouble (gone meanwhile, unreadable, a share that refuses deletion) is logged and left for a later
    // look; it never stops the others.
    const guarded = async (name: string, work: () => Promise<void>): Promise<void> => {
      try {
        await work();
      } catch (err) {
        this.retryAfter.set(name, Date.now() + Math.max(5_000, this.options.intervalMs * 10));
        log.warn({ err, file: name }, 'a file of the watched folder could not be handled; will try again');
      }
    };
    for (const name of [...ready].filter((n) => extname(n).toLowerCase() === '.json')) {
      if (this.closed) return;
      await guarded(name, () => this.importSidecar(name, ready, claimed));
    }
    const waitingNames = new Set([...this.waiting.values()].map((w) => w.name));
    for (const name of [...ready].filter((n) => DICOS_EXTENSIONS.has(extname(n).toLowerCase()) && !claimed.has(n) && !waitingNames.has(n))) {
      if (this.closed) return;
      await guarded(name, () => this.importDicosFile(name));
    }
    // Energies that waited long enough for their partner go alone.
    for (const [study, w] of this.waiting) {
      if (Date.now() - w.since < this.options.pairWaitMs) continue;
      this.waiting.delete(study);
      if (!present.has(w.name)) continue; // gone from the folder meanwhile
      log.warn({ file: w.name, energy: w.image.energy }, 'the other energy never came to the watched folder: imported alone');
      await this.run([w.name], () => this.options.imports.importImages([w.image], { files: [w.bytes], sender: this.sender, fileNames: [w.name] }));
    }
  }

  private async importSidecar(name: string, ready: Set<string>, claimed: Set<string>): Promise<void> {
    const { dir, imports } = this.options;
    const sidecarBytes = new Uint8Array(await readFile(join(dir, name)));
    let sidecar: ReturnType<typeof parseSidecar>;
    try {
      sidecar = parseSidecar(Buffer.from(sidecarBytes).toString('utf8'), name);
    } catch (err) {
      await this.refuse([name], [sidecarBytes], toScanlineErrorOrInternal(err));
      return;
    }
    const images = sidecar.images as string[];
    for (const i of images) claimed.add(i);
    if (!images.every((i) => ready.has(i))) return; // an image still being written, or not there yet
    const files = [name, ...images];
    const bytes = [sidecarBytes, ...(await Promise.all(images.map(async (i) => new Uint8Array(await readFile(join(dir, i))))))];
    const energies: Array<'high' | 'low' | 'single'> = images.length === 2 ? ['high', 'low'] : ['single'];
    const read: DicosDx[] = [];
    try {
      for (const [k, image] of images.entries()) read.push(await readImageFile(bytes[k + 1], image, energies[k], sidecar, this.options.limits));
    } catch (err) {
      await this.refuse(files, bytes, toScanlineErrorOrInternal(err));
      return;
    }
    await this.run(files, () =>
      imports.importImages(read, {
        files: bytes,
        sender: this.sender,
        source: 'file',
        fileNames: files,
        ...(sidecar.vehicle ? { vehicle: sidecar.vehicle } : {}),
        ...(sidecar.declaration ? { declaration: sidecar.declaration } : {}),
      }),
    );
  }

  private async importDicosFile(name: string): Promise<void> {
    const { dir, imports, limits } = this.options;
    const bytes = new Uint8Array(await readFile(join(dir, name)));
    let image: DicosDx;
    try {
      const o = await readDicos(bytes, limits);
      if (o.kind !== 'dx') throw new ScanlineError('SCANLINE_ERR_IMPORT_SET', 'a Threat Detection Report is not an image to scan');
      image = o;
    } catch (err) {
      await this.refuse([name], [bytes], toScanlineErrorOrInternal(err));
      return;
    }
    if (image.energy === 'single') {
      await this.run([name], () => imports.importImages([image], { files: [bytes], sender: this.sender, fileNames: [name] }));
      return;
    }
    const study = image.studyInstanceUid ?? image.sopInstanceUid;
    const partner = this.waiting.get(study);
    if (partner && partner.name !== name && partner.image.energy !== image.energy) {
      this.waiting.delete(study);
      await this.run([partner.name, name], () =>
        imports.importImages([partner.image, image], { files: [partner.bytes, bytes], sender: this.sender, fileNames: [partner.name, name] }),
      );
      return;
    }
    if (partner && partner.name !== name) {
      // The same energy twice for one inspection: the first keeps its place (and its time); the second goes alone.
      await this.run([name], () => imports.importImages([image], { files: [bytes], sender: this.sender, fileNames: [name] }));
      return;
    }
    if (!partner) this.waiting.set(study, { name, bytes, image, since: Date.now() });
  }

  /** Runs one import of `files`; removes them when it is done with them, keeps them when the gateway must try later. */
  private async run(files: string[], work: () => Promise<unknown>): Promise<void> {
    try {
      await work();
      await this.remove(files);
    } catch (err) {
      const e = toScanlineErrorOrInternal(err);
      if (isFileFault(e)) {
        // Refused: ImportService kept the files in quarantine with the reason; the folder lets them go.
        await this.remove(files);
      } else {
        for (const f of files) this.retryAfter.set(f, Date.now() + Math.max(5_000, this.options.intervalMs * 10));
        this.options.log.warn({ err: e, files }, 'the watched folder could not be imported now; will try again');
      }
    }
  }

  /** A refusal found here (before ImportService): quarantined, then let go; left in place when it could not be kept. */
  private async refuse(files: string[], bytes: Uint8Array[], err: ScanlineError): Promise<void> {
    if (await this.options.imports.refuse(err, bytes, this.sender)) await this.remove(files);
    else for (const f of files) this.retryAfter.set(f, Number.POSITIVE_INFINITY);
  }

  private async remove(files: string[]): Promise<void> {
    for (const f of files) {
      await rm(join(this.options.dir, f), { force: true });
      this.seen.delete(f);
      this.retryAfter.delete(f);
    }
  }
}
