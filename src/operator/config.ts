/**
 * Configuration of the operator stage (config key `operator`): how many screens may connect and the per-screen
 * backpressure policy. Validated with the rest of the gateway configuration (src/config), then frozen.
 */

export interface OperatorConfig {
  /** Operator screens connected at once; further WebSocket upgrades are refused (SCANLINE_ERR_OPERATOR_TOO_MANY). */
  maxOperators: number;
  /**
   * Preview strips are not sent to a screen while more than this many bytes wait in its socket buffer; they are
   * coalesced (counted) and the screen is resynced from a snapshot once the buffer drains below half of this.
   */
  stripBufferBytes: number;
  /**
   * Bytes buffered towards one screen beyond which even a control message (alert, results, decision) cannot be
   * queued: the screen is disconnected (SCANLINE_ERR_OPERATOR_TOO_SLOW) rather than miss it; on reconnecting it
   * gets a snapshot that holds every alert.
   */
  maxBufferedBytes: number;
  /** Largest message a screen may send (subscriptions), bytes. */
  maxMessageBytes: number;
  /** Idle timeout of operator sockets, seconds (pings are automatic; 0 disables; 1..7 is not allowed by uWS). */
  idleTimeoutSec: number;
  /** Lanes the feed lists at connection time are the portals of the scans started within this many hours. */
  laneHistoryHours: number;
}

export const DEFAULT_OPERATOR_CONFIG: OperatorConfig = {
  maxOperators: 256,
  stripBufferBytes: 1024 * 1024, // bytes
  maxBufferedBytes: 32 * 1024 * 1024, // bytes
  maxMessageBytes: 16 * 1024, // bytes
  idleTimeoutSec: 60, // s
  laneHistoryHours: 24, // h
};

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return `${s === undefined ? String(v) : s} of type ${Array.isArray(v) ? 'array' : typeof v}`;
}

function int(v: unknown, min: number, max: number): boolean {
  return Number.isInteger(v) && (v as number) >= min && (v as number) <= max;
}

/** Every problem of an operator section, in the config validator's message shape. */
export function validateOperatorConfig(c: OperatorConfig): string[] {
  const p: string[] = [];
  const check = (ok: boolean, expected: string, name: string, value: unknown): void => {
    if (!ok) p.push(`Expected ${expected} for operator.${name} but received ${describe(value)}`);
  };
  check(int(c.maxOperators, 1, 10_000), 'an integer 1..10000', 'maxOperators', c.maxOperators);
  check(int(c.stripBufferBytes, 16 * 1024, 1 << 30), 'an integer 16384..1073741824', 'stripBufferBytes', c.stripBufferBytes);
  check(int(c.maxBufferedBytes, 64 * 1024, 1 << 30), 'an integer 65536..1073741824', 'maxBufferedBytes', c.maxBufferedBytes);
  if (int(c.stripBufferBytes, 16 * 1024, 1 << 30) && int(c.maxBufferedBytes, 64 * 1024, 1 << 30)) {
    check(
      c.maxBufferedBytes >= 4 * c.stripBufferBytes,
      `an integer of at least 4 x operator.stripBufferBytes (${4 * c.stripBufferBytes})`,
      'maxBufferedBytes',
      c.maxBufferedBytes,
    );
  }
  check(int(c.maxMessageBytes, 1024, 1024 * 1024), 'an integer 1024..1048576', 'maxMessageBytes', c.maxMessageBytes);
  check(c.idleTimeoutSec === 0 || int(c.idleTimeoutSec, 8, 960), '0 or an integer 8..960 (uWebSockets.js aborts on 1..7)', 'idleTimeoutSec', c.idleTimeoutSec);
  check(int(c.laneHistoryHours, 0, 24 * 365), 'an integer 0..8760', 'laneHistoryHours', c.laneHistoryHours);
  return p;
}
