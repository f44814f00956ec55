/**
 * A hand-driven portal for tests: sends exactly the frames a test builds (good or malformed) over a real WebSocket
 * and records every gateway message, so a test can wait for a specific answer.
 */
import WebSocket from 'ws';
import type { GatewayMessage } from '../../src/protocol/index.js';
import { credentialFor } from './portal-credentials.js';

export class RawPortal {
  readonly messages: GatewayMessage[] = [];
  closeCode: number | null = null;
  private waiters: Array<{ pred: (m: GatewayMessage) => boolean; resolve: (m: GatewayMessage) => void; from: number }> = [];
  private closeWaiters: Array<(code: number) => void> = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      if (isBinary) throw new Error('gateway sent a binary frame to a portal');
      const m = JSON.parse(data.toString()) as GatewayMessage;
      this.messages.push(m);
      this.waiters = this.waiters.filter((w) => {
        if (w.pred(m)) {
          w.resolve(m);
          return false;
        }
        return true;
      });
    });
    ws.on('close', (code) => {
      this.closeCode = code;
      for (const w of this.closeWaiters) w(code);
    });
  }

  /** `options`: extra WebSocket client options, e.g. `ca` for a wss:// gateway with a test certificate. */
  static connect(url: string, options: WebSocket.ClientOptions = {}): Promise<RawPortal> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { perMessageDeflate: false, ...options });
      ws.once('open', () => resolve(new RawPortal(ws)));
      ws.once('error', reject);
    });
  }

  /**
   * Connects and completes hello/welcome. The hello carries the portal's credential on a test gateway
   * (startTestGateway), unless `extra` names its own `token` (a test of the credential check; undefined: none).
   */
  static async hello(
    url: string,
    portalId: string,
    detector: { pixels: number; energies: 1 | 2 },
    extra: Record<string, unknown> = {},
    options: WebSocket.ClientOptions = {},
  ): Promise<RawPortal> {
    const p = await RawPortal.connect(url, options);
    const token = 'token' in extra ? extra.token : credentialFor(url, portalId);
    p.json({
      type: 'hello',
      portalId,
      ...(token !== undefined ? { token } : {}),
      detector: { bitDepth: 16, pitchMm: 4.4, lineRateHz: 500, ...detector },
      ...extra,
    });
    await p.next((m) => m.type === 'welcome' || m.type === 'error');
    return p;
  }

  json(value: unknown): void {
    this.ws.send(typeof value === 'string' ? value : JSON.stringify(value));
  }

  binary(bytes: Uint8Array): void {
    this.ws.send(bytes, { binary: true });
  }

  /** Resolves with the first message (received after this call, or already received at index >= from) matching. */
  next(pred: (m: GatewayMessage) => boolean, timeoutMs = 10_000, from = this.messages.length): Promise<GatewayMessage> {
    const seen = this.messages.slice(from).find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for a gateway message; got ${JSON.stringify(this.messages.slice(-5))}`)), timeoutMs);
      this.waiters.push({
        pred,
        from,
        resolve: (m) => {
          clearTimeout(timer);
          resolve(m);
        },
      });
    });
  }

  /** Sends, then waits for the next `error` message; returns its code. */
  async expectError(send: () => void): Promise<GatewayMessage & { type: 'error' }> {
    const from = this.messages.length;
    send();
    return (await this.next((m) => m.type === 'error', 10_000, from)) as GatewayMessage & { type: 'error' };
  }

  waitClose(timeoutMs = 10_000): Promise<number> {
    if (this.closeCode !== null) return Promise.resolve(this.closeCode);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timed out waiting for close')), timeoutMs);
      this.closeWaiters.push((c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
  }

  close(): void {
    this.ws.close();
  }
}
