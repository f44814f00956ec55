/**
 * One portal's WebSocket connection, independent of the WebSocket library: the transport calls onText /
 * onBinary / onClose and gives a PortalChannel to answer on.
 *
 * Rules (docs/protocol.md): the first message is `hello`; every malformed or inconsistent input is answered with an
 * `error {code, ...}` and the connection and its other scans carry on; only a refused or revoked credential closes the connection.
 * Binary payloads are consumed before onBinary returns (the transport's buffer dies then).
 */
import { ScanlineError, toScanlineErrorOrInternal } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import type { ScanOrigin } from '../storage/index.js';
import type { ActiveScan, ScanOwner } from './active-scan.js';
import { PROTOCOL_VERSION, parsePortalMessage, type DetectorInfo, type GatewayMessage, type HelloMessage, type PortalMessage } from '../protocol/index.js';
import { SLICE_HEADER_BYTES, SliceKind, decodeSliceHeader } from '../protocol/index.js';
import type { IngestService } from './ingest-service.js';
import { NO_PORTAL } from '../metrics/index.js';
import { portalStatsOf, type PortalIngestStats } from './stats.js';

export interface PortalChannel {
  /** Sends one control message. Must not throw once the socket is closed (the transport drops it then). */
  send(message: GatewayMessage): void;
  /** Closes the connection with a WebSocket close code and a short reason. */
  close(code: number, reason: string): void;
  readonly remoteAddress: string;
}

/** WebSocket close codes the gateway uses (4000-4999 is the application range). */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  AuthRejected: 4001,
  Replaced: 4002,
  /** The portal's credential was revoked or replaced while it was connected. */
  Revoked: 4003,
  /** No accepted hello within portal.helloTimeoutMs; portal.maxSparseRefusals frames refused in a row. */
  PolicyViolation: 1008,
  /** A message larger than portal.maxMessageBytes / maxControlBytes (SCANLINE_ERR_PROTO_OVERSIZE). */
  MessageTooBig: 1009,
} as const;

export class PortalConnection implements ScanOwner {
  portalId = '';
  /** Frames refused SCANLINE_ERR_LIMIT_SPARSE since the last frame that brought new lines (sparseRefused). */
  private sparseRefusals = 0;
  detector: DetectorInfo | null = null;
  /** Handle on the credential that authenticated hello (PortalAuthenticator), checked again now and then; null before hello. */
  credential: string | null = null;
  /** Open scans on this connection by the portal's streamId. */
  readonly scans = new Map<number, ActiveScan>();
  private closed = false;
  /** This portal's counters (NO_PORTAL until hello names it); bumped per frame without a lookup. */
  private portalStats: PortalIngestStats;

  constructor(
    private readonly service: IngestService,
    private readonly channel: PortalChannel,
    private readonly log: Logger,
  ) {
    this.portalStats = portalStatsOf(service.stats, NO_PORTAL);
    const timeoutMs = service.config.portal.helloTimeoutMs;
    this.helloTimer = setTimeout(() => {
      if (this.detector || this.closed) return;
      const err = new ScanlineError('SCANLINE_ERR_PROTO_NOT_HELLO', `no hello accepted within ${timeoutMs} ms (portal.helloTimeoutMs); closing`);
      this.reportError(err);
      this.log.warn({ remote: this.remoteAddress, timeoutMs }, 'portal connection without hello closed');
      this.channel.close(CloseCode.PolicyViolation, err.code);
    }, timeoutMs);
    this.helloTimer.unref();
  }

  private helloTimer: NodeJS.Timeout | null = null;

  /** Where this connection's scans come from: null for a portal; an imported image's origin for an importer. */
  origin: ScanOrigin | null = null;

  /**
   * In place of hello, for an in-process importer (src/imports): the route or listener that received the image
   * authenticated its sender, so no portal credential applies. The connection is not registered as the portal's
   * (imports of one source run side by side, and never replace a portal's connection or each other). Everything
   * after hello (scan.start, frames, acks, scan.end) takes the same path as a portal's.
   */
  acceptImporter(portalId: string, detector: DetectorInfo, origin: ScanOrigin): void {
    if (this.detector) throw new ScanlineError('SCANLINE_ERR_PROTO_HELLO_REPEATED', `hello was already accepted for portal ${this.portalId}`);
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.helloTimer = null;
    this.portalId = portalId;
    this.detector = { ...detector };
    this.origin = origin;
    this.portalStats = portalStatsOf(this.service.stats, portalId);
    this.portalStats.connections++;
  }

  get isOpen(): boolean {
    return !this.closed;
  }

  get remoteAddress(): string {
    return this.channel.remoteAddress;
  }

  send(message: GatewayMessage): void {
    if (!this.closed) this.channel.send(message);
  }

  release(streamId: number): void {
    this.scans.delete(streamId);
  }

  /** Closes the transport (e.g. replaced by a newer connection of the same portal). */
  close(code: number, reason: string): void {
    if (this.closed) return;
    this.channel.close(code, reason);
  }

  /** The credential was revoked or replaced: say so and close; open scans wait for a resume. */
  revoked(): void {
    if (this.closed) return;
    this.reportError(new ScanlineError('SCANLINE_ERR_AUTH_REVOKED', `portal ${this.portalId}: its credential was revoked or replaced`));
    this.log.warn({ portalId: this.portalId, remote: this.remoteAddress }, 'portal credential revoked; connection closed');
    this.channel.close(CloseCode.Revoked, 'SCANLINE_ERR_AUTH_REVOKED');
  }

  onText(text: string, byteLength: number): void {
    const stats = this.service.stats;
    const portal = this.portalStats;
    stats.framesReceived++;
    stats.bytesReceived += byteLength;
    portal.framesReceived++;
    portal.bytesReceived += byteLength;
    let message: PortalMessage;
    try {
      if (byteLength > this.service.config.portal.maxControlBytes) {
        this.tooBig(`control message of ${byteLength} bytes exceeds the limit of ${this.service.config.portal.maxControlBytes} bytes (portal.maxControlBytes)`);
        return;
      }
      message = parsePortalMessage(text);
      this.dispatch(message);
    } catch (err) {
      this.reportError(toScanlineErrorOrInternal(err));
    }
  }

  /** `bytes` is valid only during this call. */
  onBinary(bytes: Uint8Array): void {
    const stats = this.service.stats;
    const portal = this.portalStats;
    stats.framesReceived++;
    stats.bytesReceived += bytes.byteLength;
    portal.framesReceived++;
    portal.bytesReceived += bytes.byteLength;
    try {
      if (bytes.byteLength > this.service.config.portal.maxMessageBytes) {
        this.tooBig(
          `binary frame of ${bytes.byteLength} bytes exceeds the limit of ${this.service.config.portal.maxMessageBytes} bytes (portal.maxMessageBytes)`,
        );
        return;
      }
      if (!this.detector) throw new ScanlineError('SCANLINE_ERR_PROTO_NOT_HELLO', 'send hello before any binary frame');
      const header = decodeSliceHeader(bytes);
      if (header.pixels !== this.detector.pixels || header.energies !== this.detector.energies) {
        throw new ScanlineError(
          'SCANLINE_ERR_SLICE_GEOMETRY',
          `frame has ${header.pixels} pixels x ${header.energies} energies; hello announced ${this.detector.pixels} x ${this.detector.energies}`,
          { streamId: header.streamId, seq: header.seq },
        );
      }
      const scan = this.scans.get(header.streamId);
      if (!scan) {
        throw new ScanlineError('SCANLINE_ERR_STREAM_UNKNOWN', `stream ${header.streamId} is not an open scan on this connection`, {
          streamId: header.streamId,
          seq: header.seq,
        });
      }
      // The payload starts 32 bytes into the frame; copy only when the transport hands us an odd offset.
      const offset = bytes.byteOffset + SLICE_HEADER_BYTES;
      const values = (bytes.byteLength - SLICE_HEADER_BYTES) / 2;
      const payload = offset % 2 === 0 ? new Uint16Array(bytes.buffer, offset, values) : new Uint16Array(bytes.slice(SLICE_HEADER_BYTES).buffer, 0, values);
      const linesBefore = scan.linesReceived;
      const ack = scan.acceptFrame(header, payload);
      // Only a frame that brought new lines clears the count (a replay is acked too, and would otherwise reset it).
      if (scan.linesReceived > linesBefore) this.sparseRefusals = 0;
      if (header.kind === SliceKind.Image) {
        stats.slicesReceived++;
        portal.slicesReceived++;
      }
      if (ack >= 0) this.send({ type: 'ack', streamId: header.streamId, seq: ack });
    } catch (err) {
      const e = toScanlineErrorOrInternal(err);
      this.reportError(e);
      if (e.code === 'SCANLINE_ERR_LIMIT_SPARSE') this.sparseRefused();
    }
  }

  /**
   * A frame was refused SCANLINE_ERR_LIMIT_SPARSE. A working portal never claims lines that far past what it sent;
   * one that keeps doing it is broken or hostile, and each refused frame (up to portal.maxMessageBytes) still costs
   * the gateway its reading: a compromised portal sent ~1,400 a second and took a good portal's ack p99 from 2x to
   * 2.6x its unattacked value (bench:security). After portal.maxSparseRefusals with no new line between them (a replayed
   * frame is acked but brings none) the connection is closed
   * (1008, SCANLINE_ERR_LIMIT_SPARSE), and the portal's hello is refused for portal.sparseCutOffSec (each reconnect
   * would otherwise open scans and write to the database again); its scans wait for a resume as after any disconnect.
   */
  private sparseRefused(): void {
    if (++this.sparseRefusals < this.service.config.portal.maxSparseRefusals) return;
    this.service.stats.sparseCutOffs++;
    this.service.cutOff(this.portalId);
    this.log.warn(
      { portalId: this.portalId || undefined, remote: this.remoteAddress, refusals: this.sparseRefusals },
      'portal kept sending frames refused SCANLINE_ERR_LIMIT_SPARSE; connection closed (1008)',
    );
    this.channel.close(CloseCode.PolicyViolation, 'SCANLINE_ERR_LIMIT_SPARSE');
  }

  onClose(code: number): void {
    if (this.closed) return;
    this.closed = true;
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.helloTimer = null;
    this.service.stats.connectionsClosed++;
    if (this.detector) this.portalStats.connections--;
    this.log.info({ portalId: this.portalId || undefined, code, openScans: this.scans.size }, 'portal disconnected');
    this.service.connectionClosed(this);
  }

  private dispatch(m: PortalMessage): void {
    if (m.type === 'hello') {
      this.hello(m);
      return;
    }
    if (!this.detector) throw new ScanlineError('SCANLINE_ERR_PROTO_NOT_HELLO', `send hello before ${m.type}`);
    switch (m.type) {
      case 'scan.start': {
        const scan = this.service.startScan(this, m);
        this.scans.set(m.streamId, scan);
        this.send({ type: 'scan.accepted', streamId: m.streamId, scanId: scan.scanId });
        return;
      }
      case 'scan.end': {
        const scan = this.scanFor(m.streamId);
        scan.end(m.totalLines);
        return;
      }
      case 'scan.abort': {
        const scan = this.scanFor(m.streamId);
        void scan.abort(`portal: ${m.reason}`);
        return;
      }
      case 'scan.resume': {
        this.service.resumeScan(this, m);
        return;
      }
    }
  }

  private hello(m: HelloMessage): void {
    if (this.detector) {
      throw new ScanlineError('SCANLINE_ERR_PROTO_HELLO_REPEATED', `hello was already accepted for portal ${this.portalId}`);
    }
    if ((m.protocol ?? PROTOCOL_VERSION) !== PROTOCOL_VERSION) {
      throw new ScanlineError('SCANLINE_ERR_PROTO_VERSION', `protocol ${m.protocol} is not supported; this gateway speaks ${PROTOCOL_VERSION}`);
    }
    // Every portal id has its own credential (`scanline portal add`): one lane's credential does not open another's.
    const credential = this.service.portalAuth.verifyPortal(m.portalId, m.token);
    if (credential === null) {
      const err = new ScanlineError(
        'SCANLINE_ERR_AUTH_TOKEN',
        m.token === undefined
          ? `portal ${m.portalId}: hello carries no credential`
          : `portal ${m.portalId}: the credential is not this portal's (or was revoked)`,
      );
      this.reportError(err);
      this.log.warn({ portalId: m.portalId, remote: this.remoteAddress, credential: m.token === undefined ? 'none' : 'wrong' }, 'portal credential refused');
      this.channel.close(CloseCode.AuthRejected, err.code);
      return;
    }
    const cutOffMs = this.service.cutOffRemainingMs(m.portalId);
    if (cutOffMs > 0) {
      const err = new ScanlineError(
        'SCANLINE_ERR_LIMIT_SPARSE',
        `portal ${m.portalId} was disconnected for frames refused SCANLINE_ERR_LIMIT_SPARSE; it may connect again in ${Math.ceil(cutOffMs / 1000)} s (portal.sparseCutOffSec)`,
        { retryAfterSec: Math.ceil(cutOffMs / 1000) },
      );
      this.reportError(err);
      this.channel.close(CloseCode.PolicyViolation, err.code);
      return;
    }
    this.credential = credential;
    if (this.helloTimer) clearTimeout(this.helloTimer);
    this.helloTimer = null;
    this.portalId = m.portalId;
    this.detector = { ...m.detector };
    this.portalStats = portalStatsOf(this.service.stats, m.portalId);
    this.portalStats.connections++;
    this.service.registerPortal(this);
    const c = this.service.config;
    this.send({
      type: 'welcome',
      protocol: PROTOCOL_VERSION,
      gateway: this.service.gatewayName,
      portalId: m.portalId,
      limits: {
        maxOpenScans: c.portal.maxOpenScans,
        maxLines: c.stitch.maxLines,
        reorderWindowSlices: c.portal.reorderWindowSlices,
        maxMessageBytes: c.portal.maxMessageBytes,
      },
    });
    this.log.info({ portalId: m.portalId, remote: this.remoteAddress, detector: m.detector }, 'portal connected');
  }

  /**
   * A message over the protocol's limits: the error, then close 1009 (RFC 6455 "message too big"). A portal sending
   * such messages is misconfigured; its open scans wait for a resume as after any disconnect.
   */
  private tooBig(message: string): void {
    this.reportError(new ScanlineError('SCANLINE_ERR_PROTO_OVERSIZE', message));
    this.log.warn({ portalId: this.portalId || undefined, remote: this.remoteAddress }, 'portal message too big; connection closed (1009)');
    this.channel.close(CloseCode.MessageTooBig, 'SCANLINE_ERR_PROTO_OVERSIZE');
  }

  private scanFor(streamId: number): ActiveScan {
    const scan = this.scans.get(streamId);
    if (!scan) throw new ScanlineError('SCANLINE_ERR_STREAM_UNKNOWN', `stream ${streamId} is not an open scan on this connection`, { streamId });
    return scan;
  }

  private reportError(err: ScanlineError): void {
    const stats = this.service.stats;
    stats.errorsByCode.set(err.code, (stats.errorsByCode.get(err.code) ?? 0) + 1);
    if (!err.callerError) this.log.error({ err, portalId: this.portalId }, 'portal frame failed');
    else this.log.debug({ code: err.code, portalId: this.portalId, msg: err.message }, 'portal protocol error');
    const d = err.details;
    this.send({
      type: 'error',
      code: err.code,
      message: err.message,
      ...(d.streamId !== undefined ? { streamId: d.streamId } : {}),
      ...(d.seq !== undefined ? { seq: d.seq } : {}),
      ...(typeof d.nextSeq === 'number' ? { nextSeq: d.nextSeq } : {}),
    });
  }
}
