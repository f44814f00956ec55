/**
 * One connected operator screen: what it watches and the per-screen backpressure policy.
 *
 * Policy (docs/protocol.md, "Backpressure"):
 * - Control messages (scan lifecycle, suggestions, alerts, declaration, results, decisions) are always handed to the
 *   socket. If the socket already holds operator.maxBufferedBytes the transport refuses even those: the screen is
 *   closed (4008, SCANLINE_ERR_OPERATOR_TOO_SLOW) rather than silently miss an alert; it resyncs on reconnect.
 * - Image strips are sent only while less than operator.stripBufferBytes is buffered. Otherwise the strip is not
 *   sent (counted as coalesced) and the scan is marked stale for this screen; once the buffer drains below half of
 *   that, the screen gets one snapshot of the scan instead of the strips it missed (on `drain`, or at the scan's
 *   next strip, which the snapshot then replaces too and which is counted as coalesced as well).
 *
 * Threads: gateway JS thread. The transport must not be touched after close.
 */
import type { OperatorServerMessage, Subscription } from '../protocol/index.js';

/** What a transport did with a message (uWS send(): 1 sent, 0 buffered over its limit, 2 dropped). */
export type SendStatus = 'sent' | 'backpressure' | 'dropped';

/** The socket of one screen, provided by the server stage. */
export interface OperatorTransport {
  /** Sends one message; never throws for a closed socket (returns 'dropped'). */
  send(data: string | Uint8Array, binary: boolean): SendStatus;
  /** Bytes queued in the socket and not yet written to the kernel. */
  bufferedAmount(): number;
  close(code: number, reason: string): void;
}

/** Close code when a screen falls so far behind that a control message cannot be queued. */
export const CLOSE_TOO_SLOW = 4008;

export class OperatorSession {
  readonly portals = new Set<string>();
  readonly scans = new Set<string>();
  /** Scans whose strips were coalesced for this screen; each gets a snapshot once the buffer drains. */
  readonly stale = new Set<string>();
  /**
   * Live scans whose first view (scan.started or snapshot) was sent: their increments follow only after it. The hub
   * drops a scan from here once it ended and its preview is stored (later messages about it go to every watcher).
   */
  readonly introduced = new Set<string>();
  closed = false;
  /** Strip frames handed to the socket. */
  stripsSent = 0;
  /** Strip frames not sent because a snapshot of their scan replaces them (see offerStrip). */
  stripsCoalesced = 0;
  controlSent = 0;
  readonly connectedAt = new Date();

  constructor(
    readonly id: number,
    readonly operatorId: string,
    private readonly transport: OperatorTransport,
    private readonly stripBufferBytes: number,
    /** Called once when the screen had to be closed for being too slow. */
    private readonly onTooSlow: (session: OperatorSession) => void,
  ) {}

  /** True when this screen watches the lane or the scan. */
  watches(portalId: string, scanId: string): boolean {
    return this.portals.has('*') || this.portals.has(portalId) || this.scans.has(scanId);
  }

  subscription(): Subscription {
    return { portals: [...this.portals], scans: [...this.scans] };
  }

  bufferedAmount(): number {
    return this.closed ? 0 : this.transport.bufferedAmount();
  }

  /** Sends a control message as JSON (or an already serialised one). Returns false when the screen is gone. */
  sendControl(message: OperatorServerMessage | string): boolean {
    if (this.closed) return false;
    const text = typeof message === 'string' ? message : JSON.stringify(message);
    if (this.transport.send(text, false) === 'dropped') {
      this.tooSlow();
      return false;
    }
    this.controlSent++;
    return true;
  }

  /** Sends a snapshot image frame (not subject to the strip budget: it replaces strips). */
  sendImage(frame: Uint8Array): boolean {
    if (this.closed) return false;
    if (this.transport.send(frame, true) === 'dropped') {
      this.tooSlow();
      return false;
    }
    return true;
  }

  /**
   * Offers a strip of `scanId`. Returns 'sent', 'coalesced' (not sent: the screen is behind, the scan is stale and
   * will be resynced), 'resync' (not sent: the scan was stale and the buffer has drained; the caller sends a snapshot
   * now, which already shows this strip) or 'closed' (the screen is gone, or was closed now as too slow).
   *
   * Counting: a strip offered to an open screen is counted exactly once, in stripsSent when handed to the socket or
   * in stripsCoalesced when a snapshot replaces it ('coalesced' and 'resync' alike). A strip the transport dropped
   * goes with the screen (counted in the hub's disconnectedSlow).
   */
  offerStrip(scanId: string, frame: Uint8Array): 'sent' | 'coalesced' | 'resync' | 'closed' {
    if (this.closed) return 'closed';
    const buffered = this.transport.bufferedAmount();
    if (this.stale.has(scanId)) {
      this.stripsCoalesced++;
      return buffered < this.stripBufferBytes / 2 ? 'resync' : 'coalesced';
    }
    if (buffered > this.stripBufferBytes) {
      this.stale.add(scanId);
      this.stripsCoalesced++;
      return 'coalesced';
    }
    if (this.transport.send(frame, true) === 'dropped') {
      this.tooSlow();
      return 'closed';
    }
    this.stripsSent++;
    return 'sent';
  }

  /** Stale scans to resync now that the buffer drained below half the strip budget (empty while it has not). */
  drainedStale(): string[] {
    if (this.closed || this.stale.size === 0) return [];
    if (this.transport.bufferedAmount() >= this.stripBufferBytes / 2) return [];
    return [...this.stale];
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.transport.close(code, reason);
  }

  private tooSlow(): void {
    if (this.closed) return;
    this.sendFinalError();
    this.close(CLOSE_TOO_SLOW, 'SCANLINE_ERR_OPERATOR_TOO_SLOW');
    this.onTooSlow(this);
  }

  /** Best effort: the buffer is full, so this error frame usually does not fit either; the close code says it. */
  private sendFinalError(): void {
    this.transport.send(
      JSON.stringify({ type: 'error', code: 'SCANLINE_ERR_OPERATOR_TOO_SLOW', message: 'this screen did not read its messages; reconnect to resync' }),
      false,
    );
  }
}
