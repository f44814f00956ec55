/**
 * The DICOS network service: a C-ECHO and C-STORE SCP (dcmjs-dimse) for installed scanners that push their DX
 * images, each image becoming a scan through ImportService as an HTTP import does.
 *
 * Who may send (docs/dicos.md, "Network service"): an association must call the gateway's AE title
 * (dicos.listener.aeTitle) from a calling AE title listed in dicos.listener.sources, from one of that source's
 * addresses when it lists any, and the source's portal identity (`scanline portal add`) must not be revoked. Its
 * scans are filed under that portal id. Everything else is rejected at association time, before any data.
 *
 * Dual energy: the two images of an inspection are separate C-STOREs, in one association or several. The first is
 * written to `<dataDir>/dicos-spool/` and fsync'd before its C-STORE is answered Success (the scanner may then delete
 * it); when its partner (same source, same Scan Instance UID, the other energy) arrives, the pair is imported. One
 * that waits longer than dicos.listener.pairWaitMs is imported alone, as a single-energy scan. Spooled images left by
 * a stop are taken up again at the next start. A single-energy (INTENSITY) image is imported at once, and its C-STORE
 * answered once the scan's lines are stored.
 *
 * C-STORE statuses: 0000 Success; C000 Cannot understand (a bad file: kept in quarantine, audited); 0122 SOP class not
 * supported; A700 Out of resources (object too large, imports busy, storage full); 0110 Processing failure.
 * Threads: the gateway's JS thread. Objects are received into memory up to dicos.listener.maxObjectBytes.
 */
import { createHash } from 'node:crypto';
import { mkdir, open, readFile, readdir, rename, rm } from 'node:fs/promises';
import { type Server as NetServer, type Socket, createServer, isIPv6 } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import dcmjs from 'dcmjs';
import dimse from 'dcmjs-dimse';
import { type DicosDx, SopClass, TransferSyntax, readDicos } from '../dicos/index.js';
import { ScanlineError, toScanlineErrorOrInternal } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { DicosListenerConfig } from '../config/index.js';
import { type ImportSender, type ImportService, isFileFault } from './import-service.js';

const { Scp, Dataset } = dimse;
// dcmjs-dimse logs every PDU at info on the console; the listener logs what matters through the gateway's logger.
dimse.log.setLevel('silent');
const { CEchoResponse, CStoreResponse } = dimse.responses;
const { Status, PresentationContextResult, RejectResult, RejectSource, RejectReason } = dimse.constants;

/** DICOM Verification SOP class (C-ECHO). */
const VERIFICATION = '1.2.840.10008.1.1';
const ACCEPTED_CLASSES = new Set<string>([VERIFICATION, SopClass.DxForProcessing, SopClass.DxForPresentation]);
/** Preference order when a scanner proposes several transfer syntaxes for one context. */
const ACCEPTED_SYNTAXES = [TransferSyntax.ExplicitVrLittleEndian, TransferSyntax.JpegLosslessSv1, TransferSyntax.ImplicitVrLittleEndian];
/** C-STORE status "Error: Cannot understand" (PS3.4 B.2.3), which dcmjs-dimse has no constant for. */
const CANNOT_UNDERSTAND = 0xc000;

export interface DicosListenerStats {
  /** Associations by outcome: accepted, or the reason they were rejected. */
  readonly associations: Map<string, number>;
  /** C-STORE objects by outcome: imported, spooled (one energy waiting), refused, failed. */
  readonly objects: Map<string, number>;
  echoes: number;
  open: number;
  /** Energies waiting for their partner (spooled). */
  waiting: number;
}

export interface DicosListenerOptions {
  config: DicosListenerConfig;
  imports: ImportService;
  /** True while the portal identity is not revoked (IdentityService.portalActive). */
  portalActive: (portalId: string) => boolean;
  dataDir: string;
  log: Logger;
  /** Why the disk has no room (storage.minFreeBytes), or null: an energy is then not spooled (out of resources). */
  diskRefusal?: () => string | null;
}

interface Waiting {
  image: DicosDx;
  bytes: Uint8Array;
  receivedAt: Date;
  path: string;
  sender: ImportSender;
  portalId: string;
  timer: NodeJS.Timeout;
}

/** Bounded in-memory collector of one C-STORE's data set; past the limit it keeps counting and drops the bytes. */
class BoundedCollector extends Writable {
  readonly chunks: Buffer[] = [];
  bytes = 0;
  overflow = false;

  constructor(private readonly limit: number) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.bytes += chunk.byteLength;
    if (this.bytes > this.limit) {
      this.overflow = true;
      this.chunks.length = 0;
    } else this.chunks.push(Buffer.from(chunk));
    done();
  }
}

/** Writes `bytes` to `path` so that it is whole or absent after a crash: a temporary file, fsync'd, renamed. */
async function durableWrite(path: string, bytes: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp`;
  const handle = await open(tmp, 'w', 0o600);
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
}

/**
 * Checks the PDU headers of a DICOM upper-layer stream before dcmjs-dimse reads it (which buffers a whole PDU of the
 * length its header declares): an association request at most 64 KiB, nothing but an association request before the
 * association is accepted, and no PDU longer than the largest object plus room for its framing.
 */
export class PduGuard {
  accepted = false;
  private header = Buffer.alloc(0);
  /** Bytes of the current PDU's body still to come. */
  private remaining = 0;

  constructor(private readonly maxObjectBytes: number) {}

  /** Why the connection must be closed, or null. */
  feed(chunk: Buffer): string | null {
    let at = 0;
    while (at < chunk.length) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - at);
        this.remaining -= take;
        at += take;
        continue;
      }
      const need = 6 - this.header.length;
      this.header = Buffer.concat([this.header, chunk.subarray(at, at + need)]);
      at += Math.min(need, chunk.length - at);
      if (this.header.length < 6) return null;
      const type = this.header[0];
      const length = this.header.readUInt32BE(2);
      this.header = Buffer.alloc(0);
      if (type < 1 || type > 7) return `unknown PDU type ${type}`;
      if (!this.accepted && type !== 1 && type !== 5 && type !== 7) return `PDU type ${type} before the association was accepted`;
      if (type === 1 && length > 64 * 1024) return `association request of ${length} bytes`;
      if (length > this.maxObjectBytes + 1024 * 1024) return `PDU of ${length} bytes`;
      this.remaining = length;
    }
    return null;
  }
}

/**
 * True when two IP addresses are the same host: an IPv4 address also in its IPv6-mapped form (::ffff:a.b.c.d), an
 * IPv6 address in any spelling (compared in its canonical form).
 */
export function sameAddress(a: string, b: string): boolean {
  const canonical = (x: string): string => {
    const bare = x
      .trim()
      .toLowerCase()
      .replace(/^::ffff:(\d+\.\d+\.\d+\.\d+)$/, '$1');
    if (isIPv6(bare)) {
      try {
        return new URL(`http://[${bare}]/`).hostname;
      } catch {
        return bare;
      }
    }
    return bare;
  };
  return canonical(a) === canonical(b);
}

/** Removes a spooled object and its sender record. */
async function unspool(path: string): Promise<void> {
  await rm(path, { force: true });
  await rm(`${path}.json`, { force: true });
}

/** A Part 10 stream around a received data set: preamble, DICM, file meta (written by dcmjs), then the data set. */
function part10(dataset: Buffer, sopClassUid: string, sopInstanceUid: string, transferSyntaxUid: string): Uint8Array {
  const meta = {
    '00020001': { vr: 'OB', Value: [new Uint8Array([0, 1]).buffer] },
    '00020002': { vr: 'UI', Value: [sopClassUid] },
    '00020003': { vr: 'UI', Value: [sopInstanceUid] },
    '00020010': { vr: 'UI', Value: [transferSyntaxUid] },
    '00020012': { vr: 'UI', Value: ['2.25.247618213902466016563178052146862095119'] },
    '00020013': { vr: 'SH', Value: ['SCANLINE'] },
  };
  const dict = new dcmjs.data.DicomDict(meta);
  dict.dict = {};
  const head = new Uint8Array(dict.write());
  const out = new Uint8Array(head.byteLength + dataset.byteLength);
  out.set(head, 0);
  out.set(dataset, head.byteLength);
  return out;
}

function statusOf(err: ScanlineError): number {
  switch (err.code) {
    case 'SCANLINE_ERR_DICOS_SOP_CLASS':
      return Status.SopClassNotSupported;
    case 'SCANLINE_ERR_IMPORT_BUSY':
    case 'SCANLINE_ERR_STORAGE_FULL':
    case 'SCANLINE_ERR_LIMIT_SCANS':
    case 'SCANLINE_ERR_GATEWAY_DRAINING':
      return Status.ResourceLimitation;
    default:
      return err.callerError ? CANNOT_UNDERSTAND : Status.ProcessingFailure;
  }
}

export class DicosListener {
  readonly stats: DicosListenerStats = { associations: new Map(), objects: new Map(), echoes: 0, open: 0, waiting: 0 };
  private server: NetServer | null = null;
  private readonly sockets = new Set<Socket>();
  private readonly waiting = new Map<string, Waiting>();
  /** Per inspection, the tail of the work on it (DicosListener.locked). */
  private readonly locks = new Map<string, Promise<void>>();
  private readonly spoolDir: string;
  private closed = false;

  constructor(private readonly options: DicosListenerOptions) {
    this.spoolDir = join(options.dataDir, 'dicos-spool');
  }

  /** The port listened on (the chosen one with port 0); null before start. */
  get port(): number | null {
    const a = this.server?.address();
    return a && typeof a === 'object' ? a.port : null;
  }

  /** Takes up spooled energies left by a previous run, then listens. Rejects when the port cannot be bound. */
  async start(): Promise<void> {
    await this.recoverSpool();
    const { config } = this.options;
    const ListenerScp = this.scpClass();
    const server = createServer((socket) => {
      if (this.closed || this.sockets.size >= config.maxAssociations) {
        this.count(this.stats.associations, 'too-many');
        socket.destroy();
        return;
      }
      this.sockets.add(socket);
      this.stats.open = this.sockets.size;
      socket.on('close', () => {
        this.sockets.delete(socket);
        this.stats.open = this.sockets.size;
      });
      socket.on('error', () => undefined);
      // Before dcmjs-dimse sees a byte: PDU headers are checked here (dcmjs-dimse buffers a whole PDU of whatever
      // length it declares), and a connection that stays idle is closed.
      const guard = new PduGuard(config.maxObjectBytes);
      socket.on('data', (chunk: Buffer) => {
        const problem = guard.feed(chunk);
        if (problem !== null) {
          this.count(this.stats.associations, 'protocol-violation');
          this.options.log.warn({ remote: socket.remoteAddress, problem }, 'DICOS connection closed: PDU refused');
          socket.destroy();
        }
      });
      socket.setTimeout(config.associationTimeoutMs, () => socket.destroy());
      const scp = new ListenerScp(socket, { associationTimeout: config.associationTimeoutMs, pduTimeout: config.associationTimeoutMs });
      (scp as unknown as { connected: boolean; connectedTime: number }).connected = true;
      (scp as unknown as { connectedTime: number }).connectedTime = Date.now();
      (scp as unknown as { guard: PduGuard }).guard = guard;
      scp.on('networkError', (err: Error) => {
        this.options.log.debug({ err, remote: socket.remoteAddress }, 'DICOS association network error');
        socket.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) => reject(new ScanlineError('SCANLINE_ERR_SERVER_LISTEN', `DICOS listener on ${config.host}:${config.port}: ${err.message}`)));
      server.listen(config.port, config.host, () => resolve());
    });
    this.server = server;
    this.options.log.info({ host: config.host, port: this.port, aeTitle: config.aeTitle, sources: config.sources.length }, 'DICOS listener ready');
  }

  /** Stops listening and closes open associations; waiting energies stay spooled for the next start. */
  async close(): Promise<void> {
    this.closed = true;
    for (const w of this.waiting.values()) clearTimeout(w.timer);
    this.waiting.clear();
    this.stats.waiting = 0;
    for (const s of this.sockets) s.destroy();
    const server = this.server;
    this.server = null;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private count(map: Map<string, number>, key: string): void {
    map.set(key, (map.get(key) ?? 0) + 1);
  }

  /** The association's source when it may send, or the reason it may not. */
  private admit(callingAe: string, calledAe: string, address: string): { portalId: string } | { reject: number; why: string } {
    const { config, portalActive } = this.options;
    if (calledAe.trim() !== config.aeTitle) return { reject: RejectReason.CalledAeNotRecognized, why: 'called-ae' };
    // AE titles compare without their padding spaces (PS3.8: leading and trailing spaces are not significant).
    const source = config.sources.find((s) => s.aeTitle.trim() === callingAe.trim());
    if (!source) return { reject: RejectReason.CallingAeNotRecognized, why: 'calling-ae' };
    if (source.addresses.length > 0 && !source.addresses.some((a) => sameAddress(a, address))) {
      return { reject: RejectReason.CallingAeNotRecognized, why: 'address' };
    }
    if (!portalActive(source.portalId)) return { reject: RejectReason.CallingAeNotRecognized, why: 'portal-revoked' };
    return { portalId: source.portalId };
  }

  /** The dcmjs-dimse SCP class of this listener (a closure over it: dcmjs-dimse constructs one per connection). */
  private scpClass(): new (socket: Socket, opts: Record<string, unknown>) => InstanceType<typeof Scp> {
    const listener = this;
    const { config, log } = this.options;
    return class ListenerScp extends Scp {
      private portalId = '';
      private sender: ImportSender = { actor: 'dicos:?', address: null };
      private received: { bytes: Uint8Array | null; overflow: boolean; size: number; at: Date } | null = null;
      private readonly socketRef: Socket;

      constructor(socket: Socket, opts: Record<string, unknown>) {
        super(socket, opts);
        this.socketRef = socket;
      }

      override associationRequested(association: InstanceType<typeof dimse.association.Association>): void {
        const address = (this.socketRef.remoteAddress ?? '').replace(/^::ffff:/, '');
        const callingAe = association.getCallingAeTitle();
        const verdict = listener.admit(callingAe, association.getCalledAeTitle(), address);
        if ('reject' in verdict) {
          listener.count(listener.stats.associations, `rejected-${verdict.why}`);
          log.warn({ callingAe, calledAe: association.getCalledAeTitle(), remote: address, why: verdict.why }, 'DICOS association rejected');
          this.sendAssociationReject(RejectResult.Permanent, RejectSource.ServiceUser, verdict.reject);
          // Nothing more is read from a rejected peer (dcmjs-dimse would pass later P-DATA on regardless).
          this.socketRef.end();
          setTimeout(() => this.socketRef.destroy(), 1_000).unref();
          return;
        }
        (this as unknown as { guard: PduGuard }).guard.accepted = true;
        this.portalId = verdict.portalId;
        this.sender = { actor: `dicos:${callingAe.trim()}`, address };
        for (const { id } of association.getPresentationContexts()) {
          const context = association.getPresentationContext(id);
          if (!ACCEPTED_CLASSES.has(context.getAbstractSyntaxUid())) {
            context.setResult(PresentationContextResult.RejectAbstractSyntaxNotSupported);
            continue;
          }
          const proposed = context.getTransferSyntaxUids();
          const chosen = ACCEPTED_SYNTAXES.find((ts) => proposed.includes(ts));
          if (chosen) context.setResult(PresentationContextResult.Accept, chosen);
          else context.setResult(PresentationContextResult.RejectTransferSyntaxesNotSupported);
        }
        listener.count(listener.stats.associations, 'accepted');
        log.info({ callingAe, portalId: this.portalId, remote: address }, 'DICOS association accepted');
        this.sendAssociationAccept();
      }

      override associationReleaseRequested(): void {
        this.sendAssociationReleaseResponse();
      }

      override cEchoRequest(request: InstanceType<typeof dimse.requests.CEchoRequest>, callback: (r: InstanceType<typeof CEchoResponse>) => void): void {
        const response = CEchoResponse.fromRequest(request);
        if (this.portalId === '') {
          response.setStatus(Status.NotAuthorized);
          callback(response);
          return;
        }
        listener.stats.echoes++;
        response.setStatus(Status.Success);
        callback(response);
      }

      override createStoreWritableStream(): Writable {
        return new BoundedCollector(config.maxObjectBytes);
      }

      override createDatasetFromStoreWritableStream(
        writable: Writable,
        context: InstanceType<typeof dimse.association.PresentationContext>,
        callback: (dataset: InstanceType<typeof Dataset>) => void,
      ): void {
        const collector = writable as BoundedCollector;
        this.received = {
          bytes: collector.overflow ? null : new Uint8Array(Buffer.concat(collector.chunks, collector.bytes)),
          overflow: collector.overflow,
          size: collector.bytes,
          at: new Date(),
        };
        // The object is read from the bytes above (src/dicos); dcmjs-dimse gets an empty data set to carry.
        callback(new Dataset({}, context.getAcceptedTransferSyntaxUid() ?? TransferSyntax.ExplicitVrLittleEndian));
      }

      override cStoreRequest(request: InstanceType<typeof dimse.requests.CStoreRequest>, callback: (r: InstanceType<typeof CStoreResponse>) => void): void {
        const received = this.received;
        this.received = null;
        const respond = (status: number, comment?: string): void => {
          const response = CStoreResponse.fromRequest(request);
          response.setStatus(status);
          if (comment) (response as unknown as { setErrorComment?: (c: string) => void }).setErrorComment?.(comment.slice(0, 64));
          callback(response);
        };
        if (this.portalId === '') {
          // Never reached through an accepted association: refused, and nothing is read.
          respond(Status.NotAuthorized, 'no accepted association');
          this.socketRef.destroy();
          return;
        }
        if (!received || received.overflow || received.bytes === null) {
          listener.count(listener.stats.objects, 'refused');
          log.warn({ by: this.sender.actor, bytes: received?.size }, 'DICOS object larger than dicos.listener.maxObjectBytes refused');
          respond(Status.ResourceLimitation, 'object larger than the gateway accepts');
          return;
        }
        const transferSyntax = request.getDataset()?.getTransferSyntaxUid() ?? TransferSyntax.ExplicitVrLittleEndian;
        const bytes = part10(Buffer.from(received.bytes), request.getAffectedSopClassUid(), request.getAffectedSopInstanceUid(), transferSyntax);
        listener
          .store(bytes, this.sender, this.portalId, received.at)
          .then(() => respond(Status.Success))
          .catch((err: unknown) => {
            const e = toScanlineErrorOrInternal(err);
            respond(statusOf(e), e.code);
          });
      }
    } as unknown as new (
      socket: Socket,
      opts: Record<string, unknown>,
    ) => InstanceType<typeof Scp>;
  }

  /** One received object: imported now, paired with its waiting partner, or spooled to wait for it. */
  private async store(bytes: Uint8Array, sender: ImportSender, portalId: string, receivedAt: Date): Promise<void> {
    const { imports } = this.options;
    let image: DicosDx;
    try {
      // Limits first: a small compressed object must not make the gateway decode a huge image.
      const o = await readDicos(bytes, imports.readLimits());
      if (o.kind !== 'dx') throw new ScanlineError('SCANLINE_ERR_IMPORT_SET', 'a Threat Detection Report is not an image to scan');
      image = o;
    } catch (err) {
      const e = toScanlineErrorOrInternal(err);
      this.count(this.stats.objects, 'refused');
      await imports.refuse(e, [bytes], sender);
      throw e;
    }
    if (image.energy === 'single') {
      await this.importNow([image], [bytes], sender, portalId, receivedAt);
      return;
    }
    // One inspection's energies are handled one at a time: two associations delivering them together must pair,
    // not both wait.
    const key = this.pairKey(portalId, image);
    await this.locked(key, async () => {
      const partner = this.waiting.get(key);
      if (partner && partner.image.energy !== image.energy) {
        this.unwait(key, partner);
        try {
          await this.importNow([partner.image, image], [partner.bytes, bytes], sender, portalId, receivedAt);
          await unspool(partner.path);
        } catch (err) {
          const e = toScanlineErrorOrInternal(err);
          // The partner was acknowledged: it goes only with a file fault (then it is in quarantine); when the gateway
          // cannot take the pair now, it waits again and this object is refused for its sender to send again.
          if (isFileFault(e)) await unspool(partner.path);
          else this.wait(key, partner);
          throw e;
        }
        return;
      }
      if (partner) {
        // The same energy again (a resend): the newer one waits in its place, once it is itself durable.
        await this.spool(key, image, bytes, sender, portalId, receivedAt);
        if (partner.path !== this.waiting.get(key)?.path) await unspool(partner.path);
        this.count(this.stats.objects, 'spooled');
        return;
      }
      await this.spool(key, image, bytes, sender, portalId, receivedAt);
      this.count(this.stats.objects, 'spooled');
    });
  }

  /** Runs `work` after every earlier work of `key` (a promise chain per inspection). */
  private async locked(key: string, work: () => Promise<void>): Promise<void> {
    const before = this.locks.get(key) ?? Promise.resolve();
    const mine = before.then(work, work);
    const tail = mine.catch(() => undefined);
    this.locks.set(key, tail);
    try {
      await mine;
    } finally {
      if (this.locks.get(key) === tail) this.locks.delete(key);
    }
  }

  private async importNow(images: DicosDx[], files: Uint8Array[], sender: ImportSender, portalId: string, receivedAt: Date): Promise<string> {
    try {
      const outcome = await this.options.imports.importImages(images, { files, sender, portalId, receivedAt });
      this.count(this.stats.objects, 'imported');
      return `scan ${outcome.scanId}`;
    } catch (err) {
      this.count(this.stats.objects, isFileFault(toScanlineErrorOrInternal(err)) ? 'refused' : 'failed');
      throw err;
    }
  }

  private pairKey(portalId: string, image: DicosDx): string {
    return `${portalId}\u0000${image.studyInstanceUid ?? image.sopInstanceUid}`;
  }

  private unwait(key: string, w: Waiting): void {
    clearTimeout(w.timer);
    this.waiting.delete(key);
    this.stats.waiting = this.waiting.size;
  }

  /**
   * Writes one energy (and who sent it) durably before its C-STORE is answered, then waits for its partner: each file
   * is written under a temporary name, fsync'd and renamed, then the folder is fsync'd. Refused (out of resources)
   * while the disk is below storage.minFreeBytes.
   */
  private async spool(key: string, image: DicosDx, bytes: Uint8Array, sender: ImportSender, portalId: string, receivedAt: Date): Promise<void> {
    const low = this.options.diskRefusal?.() ?? null;
    if (low !== null) throw new ScanlineError('SCANLINE_ERR_STORAGE_FULL', `cannot keep the energy until its partner comes: ${low}`);
    const dir = join(this.spoolDir, portalId);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const name = createHash('sha256').update(`${key}\u0000${image.energy}\u0000${receivedAt.getTime()}`).digest('hex').slice(0, 32);
    const path = join(dir, `${name}.dcm`);
    await durableWrite(`${path}.json`, Buffer.from(JSON.stringify({ sender, portalId, receivedAt: receivedAt.toISOString() })));
    await durableWrite(path, bytes);
    const dirHandle = await open(dir, 'r');
    await dirHandle.sync().finally(() => dirHandle.close());
    this.wait(key, { image, bytes, path, sender, portalId, receivedAt });
  }

  private wait(key: string, w: Omit<Waiting, 'timer'> & { timer?: NodeJS.Timeout }): void {
    if (w.timer) clearTimeout(w.timer);
    const previous = this.waiting.get(key);
    if (previous && previous.path !== w.path) clearTimeout(previous.timer);
    const timer = setTimeout(() => {
      void this.locked(key, async () => {
        if (this.waiting.get(key)?.path !== w.path) return;
        this.unwait(key, this.waiting.get(key) as Waiting);
        this.options.log.warn({ portalId: w.portalId, energy: w.image.energy, sop: w.image.sopInstanceUid }, 'the other energy never came: imported alone');
        try {
          await this.importNow([w.image], [w.bytes], w.sender, w.portalId, w.receivedAt);
          await unspool(w.path);
        } catch (err) {
          const e = toScanlineErrorOrInternal(err);
          if (isFileFault(e)) await unspool(w.path);
          else {
            // The gateway cannot take it now (busy, storage full): it stays spooled and is tried again.
            this.options.log.warn({ err: e }, 'a lone energy could not be imported now; will try again');
            if (!this.closed) this.wait(key, w);
          }
        }
      }).catch((err: unknown) => this.options.log.error({ err }, 'a waiting energy could not be handled'));
    }, this.options.config.pairWaitMs);
    timer.unref();
    this.waiting.set(key, { ...w, timer });
    this.stats.waiting = this.waiting.size;
  }

  /** Spooled energies of a previous run wait again for their partner (or pairWaitMs). */
  private async recoverSpool(): Promise<void> {
    let portals: string[];
    try {
      portals = await readdir(this.spoolDir);
    } catch {
      return;
    }
    for (const portalId of portals) {
      const dir = join(this.spoolDir, portalId);
      let names: string[];
      try {
        names = await readdir(dir);
      } catch {
        continue; // not a folder: nothing of ours
      }
      // A temporary file is a write that never finished; its C-STORE was never answered Success.
      for (const n of names.filter((x) => x.endsWith('.tmp'))) await rm(join(dir, n), { force: true });
      for (const name of names.filter((n) => n.endsWith('.dcm'))) {
        const path = join(dir, name);
        try {
          const bytes = new Uint8Array(await readFile(path));
          const meta = JSON.parse(await readFile(`${path}.json`, 'utf8')) as { sender: ImportSender; portalId: string; receivedAt?: string };
          const receivedAt = meta.receivedAt ? new Date(meta.receivedAt) : new Date();
          const image = await readDicos(bytes, this.options.imports.readLimits());
          if (image.kind !== 'dx') throw new Error('not a DX');
          const key = this.pairKey(meta.portalId, image);
          const partner = this.waiting.get(key);
          if (partner && partner.image.energy !== image.energy) {
            this.unwait(key, partner);
            void this.importNow([partner.image, image], [partner.bytes, bytes], meta.sender, meta.portalId, receivedAt)
              .then(() => Promise.all([unspool(partner.path), unspool(path)]))
              .catch((err: unknown) => {
                this.options.log.warn({ err }, 'a spooled pair could not be imported; both wait again');
                if (isFileFault(toScanlineErrorOrInternal(err))) return Promise.all([unspool(partner.path), unspool(path)]);
                this.wait(key, partner);
                this.wait(`${key}\u0000second`, { image, bytes, path, sender: meta.sender, portalId: meta.portalId, receivedAt });
              });
          } else this.wait(key, { image, bytes, path, sender: meta.sender, portalId: meta.portalId, receivedAt });
        } catch (err) {
          this.options.log.error({ err, path }, 'a spooled DICOS object could not be read; left in place');
        }
      }
    }
  }
}
