/**
 * The operator feed's side of the metrics: what the operator hub (src/operator) reports, and the metrics made of it.
 * The metrics exist (at zero) before any hub is attached, so dashboards and alerts do not depend on deploy order.
 *
 * Contract for the hub:
 * - `observeLineToScreen(seconds, portalId)` once per message that carries new scan content (a suggestion or an
 *   alert change; preview strips too if the hub dates them) to one operator socket, at the moment the socket
 *   accepted it (uWS send() did not drop it): `seconds` = (performance.now() - the receive time of the newest line
 *   the message shows, e.g. scan.lineReceivedAt(line)) / 1000. Without a portal id the observation counts under
 *   portal="(unknown)". NaN, negative and infinite values are ignored. Runs on the gateway's JS thread; costs one
 *   Map lookup and a bucket search.
 * - `provideStats(read)` once, when the hub starts: `read()` is called at every scrape and returns the hub's
 *   current gauges and cumulative counters (see OperatorFeedStats). Calling it again replaces the previous provider;
 *   `provideStats(null)` detaches it (metrics read zero again).
 */
import { performance } from 'node:perf_hooks';
import { createHistogram, type HistogramCounts, observe } from './histogram.js';
import { portalEntry } from './portal-labels.js';

/** Upper bounds of the line-to-screen latency buckets, seconds (as line-to-result, plus slower ones). */
export const LINE_TO_SCREEN_BUCKETS_SECONDS: readonly number[] = Object.freeze([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]);

export interface OperatorFeedStats {
  /** Operator screens (sockets) connected now (gauge). */
  subscribers: number;
  /** Preview strips not sent to a screen that was behind (a later snapshot replaced them), since start (counter). */
  stripsCoalesced: number;
  /** Bytes queued towards operator sockets now, in uWS backpressure and the hub's own queues (gauge). */
  bytesBuffered: number;
  /** Screens disconnected because they could not take even a control message (too slow), since start (counter). */
  disconnectedSlow: number;
}

/** Portal label of line-to-screen observations the hub reported without a portal id. */
export const UNKNOWN_PORTAL = '(unknown)';

export interface OperatorMetricsSink {
  observeLineToScreen(seconds: number, portalId?: string): void;
  provideStats(read: (() => OperatorFeedStats) | null): void;
}

/** The sink main.ts hands to the operator hub, and what the metrics read from it. */
export class OperatorMetrics implements OperatorMetricsSink {
  readonly lineToScreen = new Map<string, HistogramCounts>();
  private read: (() => OperatorFeedStats) | null = null;
  private last: { at: number; stats: OperatorFeedStats } | null = null;

  /** `portalLabelLimit`: distinct portal ids with their own series; others share portal="(other)". */
  constructor(private readonly portalLabelLimit: number) {}

  observeLineToScreen(seconds: number, portalId: string = UNKNOWN_PORTAL): void {
    if (!(seconds >= 0) || seconds === Infinity) return;
    observe(
      portalEntry(this.lineToScreen, portalId, this.portalLabelLimit, () => createHistogram(LINE_TO_SCREEN_BUCKETS_SECONDS)),
      seconds,
    );
  }

  provideStats(read: (() => OperatorFeedStats) | null): void {
    this.read = read;
    this.last = null;
  }

  /** The hub's stats now (read once per scrape: several metrics share one read), zeros without a hub. */
  stats(): OperatorFeedStats {
    const now = performance.now();
    if (this.last && now - this.last.at < 50) return this.last.stats;
    const stats = this.read?.() ?? { subscribers: 0, stripsCoalesced: 0, bytesBuffered: 0, disconnectedSlow: 0 };
    this.last = { at: now, stats };
    return stats;
  }
}
