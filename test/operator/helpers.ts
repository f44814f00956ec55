/**
 * A test operator screen over the real WebSocket: records every message with its arrival time and decodes image
 * frames. `pause()`/`resume()` stop and restart reading from the socket (TCP backpressure builds up in the gateway).
 */
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import type { Role } from '../../src/identity/index.js';
import { decodeImageFrame, type ImageFrameHeader } from '../../src/protocol/index.js';
import type { TestGateway } from '../helpers/gateway.js';

export interface Received {
  at: number;
  json?: any;
  image?: { header: ImageFrameHeader; bytes: number };
}

export class TestScreen {
  readonly received: Received[] = [];
  readonly ws: WebSocket;
  closeCode: number | null = null;
  private waiters: Array<{ pred: (r: Received) => boolean; resolve: (r: Received) => void }> = [];

  constructor(url: string, headers: Record<string, string> = {}) {
    this.ws = new WebSocket(url, { headers, perMessageDeflate: false });
    this.ws.on('message', (data: Buffer, isBinary: boolean) => {
      const r: Received = { at: performance.now() };
      if (isBinary) {
        const f = decodeImageFrame(new Uint8Array(data));
        r.image = { header: f.header, bytes: f.image.byteLength };
      } else {
        r.json = JSON.parse(data.toString('utf8'));
      }
      this.received.push(r);
      for (const w of [...this.waiters]) {
        if (w.pred(r)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(r);
        }
      }
    });
    this.ws.on('close', (code) => {
      this.closeCode = code;
    });
  }

  static async open(url: string, headers: Record<string, string> = {}): Promise<TestScreen> {
    const s = new TestScreen(url, headers);
    await new Promise<void>((resolve, reject) => {
      s.ws.once('open', () => resolve());
      s.ws.once('error', reject);
    });
    return s;
  }

  send(message: unknown): void {
    this.ws.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  /** Resolves with the first message (already received or coming) that matches. */
  next(pred: (r: Received) => boolean, timeoutMs = 20_000): Promise<Received> {
    const have = this.received.find(pred);
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const w = {
        pred,
        resolve: (r: Received) => {
          clearTimeout(t);
          resolve(r);
        },
      };
      const t = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`no matching operator message within ${timeoutMs} ms; got ${this.types().slice(-10).join(', ')}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  json(type: string): any[] {
    return this.received.filter((r) => r.json?.type === type).map((r) => r.json);
  }

  images(kind?: number): Array<{ header: ImageFrameHeader; bytes: number; at: number }> {
    return this.received
      .filter((r) => r.image && (kind === undefined || r.image.header.kind === kind))
      .map((r) => ({ ...(r.image as { header: ImageFrameHeader; bytes: number }), at: r.at }));
  }

  types(): string[] {
    return this.received.map((r) => r.json?.type ?? `image:${r.image?.header.kind}`);
  }

  /** Stops reading from the socket: the kernel buffers fill, then the gateway's socket buffer grows. */
  pause(): void {
    (this.ws as unknown as { _socket: { pause(): void } })._socket.pause();
  }

  resume(): void {
    (this.ws as unknown as { _socket: { resume(): void } })._socket.resume();
  }

  close(): void {
    this.ws.close();
  }
}

export function operatorUrl(port: number): string {
  return `ws://127.0.0.1:${port}/v1/operator`;
}

/** Opens a screen signed in as `account` (a program account of `role`, default officer, with an API token). */
export function openScreen(gw: TestGateway, account = 'officer-1', role: Role = 'officer'): Promise<TestScreen> {
  return TestScreen.open(operatorUrl(gw.port), { authorization: `Bearer ${gw.accountToken(account, role)}` });
}
