/**
 * The only module that imports uWebSockets.js; the rest of the server uses what it re-exports.
 *
 * Lifetimes (uWS rules, written down where they matter):
 * - A WebSocket message's ArrayBuffer is valid only until the handler returns: consume or copy before any await.
 * - An HttpResponse answered after the handler returned needs onAborted first, and writes inside res.cork().
 * - A closed WebSocket must not be touched: every socket's user data carries a `closed` flag.
 * - idleTimeout values 1..7 abort the process (config validation refuses them).
 */
import uWS from 'uWebSockets.js';

export type { TemplatedApp, HttpRequest, HttpResponse, WebSocket, WebSocketBehavior, us_listen_socket } from 'uWebSockets.js';

/** A plain app, or a TLS one with these files (already checked: tls.ts). */
export const createApp = (tls?: { cert: string; key: string; keyPassphrase: string }): uWS.TemplatedApp =>
  tls
    ? uWS.SSLApp({
        cert_file_name: tls.cert,
        key_file_name: tls.key,
        ...(tls.keyPassphrase !== '' ? { passphrase: tls.keyPassphrase } : {}),
      })
    : uWS.App();
export const DISABLED = uWS.DISABLED;
export const localPort = (token: uWS.us_listen_socket): number => uWS.us_socket_local_port(token);
export const closeListenSocket = (token: uWS.us_listen_socket): void => uWS.us_listen_socket_close(token);
