/**
 * Benchmark baseline transport: the portal WebSocket (/v1/portal) served by the `ws` package instead of
 * uWebSockets.js. It mirrors src/server/index.ts message for message (same ingest stage, same channel contract),
 * so the two bench paths run the same protocol logic and differ only in transport and stitcher.
 *
 * Lifetimes: `ws` hands each message as a Buffer the transport no longer uses; the ingest stage still consumes it
 * synchronously, as with uWS.
 */
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import type { GatewayConfig } from '../../src/config/index.js';
import { CloseCode, type IngestService } from '../../src/ingest/index.js';
import type { GatewayMessage } from '../../src/protocol/index.js';

export interface WsTransport {
  readonly port: number;
  /** ws://127.0.0.1:port/v1/portal */
  readonly portalUrl: string;
  /** Stops listening and terminates every socket. */
  close(): Promise<void>;
}

/** Same headroom as src/server/index.ts: an oversize frame reaches the gateway and gets a coded error. */
const PAYLOAD_HEADROOM = 1024 * 1024;

export function startWsTransport(config: GatewayConfig, ingest: IngestService): Promise<WsTransport> {
  const wss = new WebSocketServer({
    host: config.server.host,
    port: config.server.port,
    path: '/v1/portal',
    perMessageDeflate: false,
    maxPayload: config.portal.maxMessageBytes + PAYLOAD_HEADROOM,
  });
  wss.on('connection', (ws: WebSocket, req) => {
    let closed = false;
    const conn = ingest.openConnection({
      remoteAddress: req.socket.remoteAddress ?? '',
      send(message: GatewayMessage) {
        if (closed) return;
        ws.send(JSON.stringify(message));
        // Same policy as the uWS route: a portal that lets maxBackpressureBytes of our messages pile up is stuck.
        if (ws.bufferedAmount > config.portal.maxBackpressureBytes) {
          closed = true;
          ws.close(CloseCode.GoingAway, 'backpressure limit reached');
        }
      },
      close(code: number, reason: string) {
        if (closed) return;
        closed = true;
        ws.close(code, reason);
      },
    });
    ws.on('message', (raw: RawData, isBinary: boolean) => {
      // binaryType is 'nodebuffer' (the default): fragmented messages arrive joined into one Buffer.
      const data = raw as Buffer;
      if (isBinary) conn.onBinary(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      else conn.onText(data.toString('utf8'), data.byteLength);
    });
    ws.on('close', (code: number) => {
      closed = true;
      conn.onClose(code);
    });
    ws.on('error', () => undefined); // followed by 'close'
  });
  return new Promise((resolve, reject) => {
    wss.once('error', reject);
    wss.once('listening', () => {
      const address = wss.address();
      const port = typeof address === 'object' && address !== null ? address.port : config.server.port;
      resolve({
        port,
        portalUrl: `ws://127.0.0.1:${port}/v1/portal`,
        close: () =>
          new Promise<void>((done) => {
            for (const client of wss.clients) client.terminate();
            wss.close(() => done());
          }),
      });
    });
  });
}
