/**
 * The network between a portal client and a real gateway, for the portal client's tests: it relays every message
 * both ways on 127.0.0.1, records them in order, and on a rule's say-so does what a network does (loses one frame,
 * holds acks back, cuts a connection mid-scan), so the client's recovery is tested against the real gateway, which
 * still makes every protocol decision (acks, SEQ_AHEAD, resume's nextSeq, what is stored).
 *
 * One thing here plays a faulty gateway rather than a network: `answer()` lets a rule reply to the portal in the
 * gateway's place. The client must honour SCANLINE_ERR_SCAN_INCOMPLETE even after every frame was acknowledged (a
 * gateway that lost acked frames); the real gateway only says it while frames are missing, and the client only
 * sends scan.end once every frame is acked, so no setting of the real gateway makes it happen.
 *
 * Lifetimes: one upstream socket per portal connection, opened when the portal connects; messages from the portal
 * wait for it to open. Recorded frame bytes are copies.
 */
import type { AddressInfo } from 'node:net';
import WebSocket, { WebSocketServer } from 'ws';
import { decodeSliceHeader, type SliceHeader } from '../../../src/protocol/index.js';

/** up: portal -> gateway; down: gateway -> portal. */
export type Direction = 'up' | 'down';

/** What becomes of one message: passed on, lost, held until release(), or lost with its connection. */
export type LinkAction = 'forward' | 'drop' | 'hold' | 'cut';

/** A held message is recorded twice: when it arrived ('hold') and when release() passed it on ('released'). */
interface Recorded {
  dir: Direction;
  /** 1, 2, ...: the portal connections in the order they were made. */
  connection: number;
  action: LinkAction | 'released';
}

/** A control message ('invalid-json' / 'invalid-binary' when it does not parse). */
export interface MessageTraffic extends Recorded {
  type: string;
  message: Record<string, unknown>;
}

/** A binary frame from the portal, with its decoded header and a copy of its bytes. */
export interface FrameTraffic extends Recorded {
  dir: 'up';
  type: 'binary';
  header: SliceHeader;
  bytes: Uint8Array;
}

export type Traffic = MessageTraffic | FrameTraffic;

export interface LinkRules {
  /** Decides each portal -> gateway message in arrival order (default forward). */
  up?: (t: Traffic) => LinkAction;
  /** Decides each gateway -> portal message in arrival order (default forward). */
  down?: (t: Traffic) => LinkAction;
}

interface Pair {
  id: number;
  portal: WebSocket;
  gateway: WebSocket;
  /** Portal messages waiting for the gateway socket to open. */
  pending: Array<{ data: Buffer; isBinary: boolean }>;
  held: Array<() => void>;
}

export class PortalLink {
  /** Every message, in the order it reached the link, with what the link did with it. */
  readonly traffic: Traffic[] = [];
  url = '';
  private readonly pairs = new Map<number, Pair>();
  private connections = 0;
  private wss!: WebSocketServer;

  private constructor(
    readonly gatewayUrl: string,
    readonly rules: LinkRules,
  ) {}

  static async open(gatewayUrl: string, rules: LinkRules = {}): Promise<PortalLink> {
    const link = new PortalLink(gatewayUrl, rules);
    link.wss = new WebSocketServer({ host: '127.0.0.1', port: 0, path: '/v1/portal' });
    await new Promise<void>((resolve) => link.wss.once('listening', () => resolve()));
    link.url = `ws://127.0.0.1:${(link.wss.address() as AddressInfo).port}/v1/portal`;
    link.wss.on('connection', (ws) => link.onPortal(ws));
    return link;
  }

  async close(): Promise<void> {
    for (const p of this.pairs.values()) {
      p.portal.terminate();
      p.gateway.terminate();
    }
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  /** Passes on every held message, in order. */
  release(): void {
    for (const p of this.pairs.values()) for (const pass of p.held.splice(0)) pass();
  }

  /** Sends `message` to the portal of `connection` as if the gateway had (see the header: a faulty gateway). */
  answer(connection: number, message: Record<string, unknown>): void {
    const p = this.pairs.get(connection);
    if (p?.portal.readyState === WebSocket.OPEN) p.portal.send(JSON.stringify(message));
  }

  /** Image, dark and air frames the portal sent, in order (lost ones included), optionally of one connection. */
  frames(connection?: number): FrameTraffic[] {
    return this.traffic.filter((t): t is FrameTraffic => 'header' in t && (connection === undefined || t.connection === connection));
  }

  /** Control messages of one type and direction as they arrived (a held one once), in order. */
  messages(dir: Direction, type: string): MessageTraffic[] {
    return this.traffic.filter((t): t is MessageTraffic => 'message' in t && t.dir === dir && t.type === type && t.action !== 'released');
  }

  private onPortal(portal: WebSocket): void {
    const id = ++this.connections;
    const gateway = new WebSocket(this.gatewayUrl, { perMessageDeflate: false });
    const pair: Pair = { id, portal, gateway, pending: [], held: [] };
    this.pairs.set(id, pair);
    gateway.on('open', () => {
      for (const m of pair.pending.splice(0)) gateway.send(m.data, { binary: m.isBinary });
    });
    portal.on('message', (data, isBinary) => this.relay(pair, 'up', toBuffer(data), isBinary));
    gateway.on('message', (data, isBinary) => this.relay(pair, 'down', toBuffer(data), isBinary));
    portal.on('close', () => closeLike(gateway, 1000, 'portal closed'));
    gateway.on('close', (code, reason) => closeLike(portal, code, reason.toString()));
    portal.on('error', () => undefined);
    gateway.on('error', () => portal.terminate());
  }

  private relay(pair: Pair, dir: Direction, data: Buffer, isBinary: boolean): void {
    const t: Traffic = isBinary ? binary(pair.id, data) : { dir, connection: pair.id, ...message(data), action: 'forward' };
    t.action = (dir === 'up' ? this.rules.up : this.rules.down)?.(t) ?? 'forward';
    this.traffic.push(t);
    const to = dir === 'up' ? pair.gateway : pair.portal;
    const send = (): void => {
      if (to === pair.gateway && to.readyState === WebSocket.CONNECTING) pair.pending.push({ data, isBinary });
      else if (to.readyState === WebSocket.OPEN) to.send(data, { binary: isBinary });
    };
    if (t.action === 'forward') send();
    else if (t.action === 'hold')
      pair.held.push(() => {
        this.traffic.push({ ...t, action: 'released' });
        send();
      });
    else if (t.action === 'cut') {
      // The portal sees its connection drop; the gateway gets an orderly close after everything already passed on.
      pair.portal.terminate();
      pair.gateway.close(1000, 'link cut');
    }
  }
}

function toBuffer(data: WebSocket.RawData): Buffer {
  return Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
}

/** A frame with its decoded header; one whose header does not decode is recorded as 'invalid-binary'. */
function binary(connection: number, data: Buffer): Traffic {
  const bytes = new Uint8Array(data); // a copy
  try {
    return { dir: 'up', connection, type: 'binary', header: decodeSliceHeader(bytes), bytes, action: 'forward' };
  } catch {
    return { dir: 'up', connection, type: 'invalid-binary', message: { bytes: bytes.byteLength }, action: 'forward' };
  }
}

function message(data: Buffer): { type: string; message: Record<string, unknown> } {
  try {
    const m = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
    return { type: String(m.type), message: m };
  } catch {
    return { type: 'invalid-json', message: { text: data.toString('utf8') } };
  }
}

/** Closes `ws` with the other side's code where a close frame may carry it, else drops it. */
function closeLike(ws: WebSocket, code: number, reason: string): void {
  if (ws.readyState !== WebSocket.OPEN && ws.readyState !== WebSocket.CONNECTING) return;
  if (ws.readyState === WebSocket.OPEN && (code === 1000 || (code >= 3000 && code <= 4999))) ws.close(code, reason);
  else ws.terminate();
}
