/**
 * IPC between the ingest bench (parent: runs the gateway under test) and its load generator (child process:
 * bench/lib/load-portals.ts). Plain JSON-serialisable objects over the fork() channel.
 *
 * Sequence: parent forks with a LoadPlan in argv → child connects every portal and sends `ready` → parent sends
 * `go` → child sends `window-start` after the warm-up and `window-end` (with its counters) after the measured
 * duration → child disconnects every portal and exits.
 */
import type { DetectorInfo } from '../../src/protocol/index.js';

export type LoadMode = 'max' | 'paced';

export interface LoadPlan {
  url: string;
  portals: number;
  mode: LoadMode;
  /** Paced mode: lines per second per portal. */
  lineRateHz: number;
  /** Un-acked frames a portal may have in flight. */
  window: number;
  /**
   * Paced: lines a portal can hold while the gateway does not take them (its acquisition buffer), in lines. Lines
   * that fall further behind than this are lost (counted as dropped), as on a real portal.
   */
  bufferLines: number;
  warmupMs: number;
  durationMs: number;
  /** File holding the pre-rendered truck (see truck.ts). */
  truckFile: string;
  detector: DetectorInfo;
  linesPerFrame: number;
  /** Paced: portal i starts its line clock i x startSpreadMs / portals after the first; default one frame period. */
  startSpreadMs?: number;
  /** Portal credentials by portal id (`bench-portal-<i>`), sent in hello. */
  credentials: Record<string, string>;
}

export interface LoadCounters {
  /** Measured window, milliseconds (child clock). */
  windowMs: number;
  /** Image frames whose cumulative ack arrived inside the window. */
  slicesAcked: number;
  linesAcked: number;
  /** Payload bytes (without the 32-byte headers) of those frames. */
  payloadBytesAcked: number;
  /** Lines sent inside the window (paced: compare with offered). */
  linesSent: number;
  /** Paced: lines the schedule asked for inside the window, all portals. */
  linesOffered: number;
  /** Paced: the largest backlog (lines due but not sent) of any portal at the end of the window. */
  maxBacklogLines: number;
  /** Paced: lines lost inside the window because a portal's buffer overflowed (the gateway did not keep up). */
  linesDropped: number;
  /**
   * Paced: lines due (acquired) from the window start until one portal-buffer length before its end, and how many of
   * them were acked by the end of the window. Their ratio is "achieved": it neither credits the catch-up of lines
   * acquired before the window nor blames lines acquired too late to be acked inside it.
   */
  linesDueSettled: number;
  linesDeliveredSettled: number;
  scansCompleted: number;
  scansAborted: number;
  /** `error` messages by code, whole run (warm-up included). */
  errorsByCode: Record<string, number>;
  /** Sockets the gateway closed, or that failed, before the child closed them; whole run. */
  unexpectedCloses: number;
  /** Send → covering cumulative ack, milliseconds, for frames acked inside the window. */
  ackLatencyMs: { samples: number; p50: number; p99: number; max: number };
  /** The load generator's own CPU over the window, % of one core (user + system, all threads). */
  cpuPercent: number;
}

export type ChildMessage = { type: 'ready' } | { type: 'window-start' } | { type: 'window-end'; counters: LoadCounters } | { type: 'failed'; message: string };

export type ParentMessage = { type: 'go' };
