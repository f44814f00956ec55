/**
 * npm run bench:fanout — overlay delivery latency from result to operator socket.
 *
 * For 1, 10 and 50 operator screens subscribed to every lane while 8 simulated portals stream trucks in real time
 * into a gateway with the demo models: the time from the results stage announcing a suggestion or alert update (its
 * listener call, stamped right after the hub's listener handed the update to every socket: ResultsService calls
 * listeners in registration order and main.ts registers the hub's first, so the hub's synchronous fan-out — one
 * JSON.stringify and one uWS send per screen — is not inside this number) to that update's arrival on each screen's
 * WebSocket, p50 / p99 / max, and the gateway's
 * line-to-screen latency (a tile's last line received -> its result handed to a screen's socket), read from
 * scanline_line_to_screen_seconds on GET /metrics (the metrics stage owns that histogram; all portals summed) so the
 * bench reports what operations sees. The 1-screen run is the baseline the others are compared with (ratio of p99).
 *
 * Screens run in this process (the `ws` client), so their JSON parsing shares the event loop with the gateway: the
 * numbers are an upper bound of what separate browsers would see on an idle network.
 *
 * A stalled screen (the timing half of test/operator/slow-operator.test.ts, which asserts only behaviour): 10
 * reading screens with and without an 11th one that reads nothing for the whole run (its socket paused, a frozen
 * browser tab), both with that test's feed settings (full-resolution previews, 16 KiB strip budget) so that the
 * stalled screen falls behind and its strips are coalesced. Compared, with over without: the reading screens'
 * result->socket p99, the strip lag p99 of reading screen 0 (ingest emitting a preview strip -> the strip on that
 * screen), and the ingest's overrun (the longest a scan took beyond its lines at the line rate). Ratios near 1: a
 * stalled screen holds up neither the other screens nor the ingest.
 *
 * Results: stdout and bench/results/fanout-<date>.json; the fan-out section of bench/RESULTS.md is written by hand.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { resolveConfig } from '../src/config/index.js';
import { silentLogger } from '../src/log/index.js';
import { startGateway } from '../src/main.js';
import { ImageFrameKind, decodeImageFrame } from '../src/protocol/index.js';
import { simulatePortals } from '../tools/simulator/index.js';
import { benchProgramToken } from './lib/gateways.js';
import { machineInfo } from './lib/machine.js';
import { writeResultsJson } from './lib/results-file.js';

const LANES = 8;
const SCREENS = [1, 10, 50];
const LINE_RATE = 500;

/** Feed settings of the stalled-screen pair (as test/operator/slow-operator.test.ts): a stalled screen falls behind. */
const STALL_CONFIG = {
  stitch: { previewDownsample: 1 },
  // No idle timeout: the stalled screen cannot answer pings, and uWS would close it after 60 s.
  operator: { stripBufferBytes: 16 * 1024, maxBufferedBytes: 16 * 1024 * 1024, idleTimeoutSec: 0 },
};

interface RunSpec {
  /** Screens that read everything. */
  screens: number;
  /** One more screen subscribed to every lane that reads nothing during the run. */
  stalled: boolean;
  /** STALL_CONFIG instead of the defaults. */
  stallConfig: boolean;
}

interface RunResult {
  screens: number;
  stalled: boolean;
  stallConfig: boolean;
  lanes: number;
  updates: number;
  deliveries: number;
  missing: number;
  latencyMs: { p50: number; p99: number; max: number };
  lineToScreenMs: { p50: number; p99: number };
  stripsCoalesced: number;
  /** Reading screen 0: ingest emitting a preview strip -> that strip's arrival, ms; strips it did not get. */
  stripLagMs: { p50: number; p99: number; max: number };
  stripsMissing: number;
  /** Longest a scan took beyond its lines at the line rate, s (ingest held up shows here). */
  ingestOverrunS: number;
  /** The hub's counters at the end of the run. */
  operator: { stripsSent: number; stripsCoalesced: number; resyncs: number; disconnectedSlow: number };
  seconds: number;
}

const quantile = (sorted: number[], q: number): number =>
  sorted.length === 0 ? Number.NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];

/** Cumulative buckets (le in seconds -> count) of a Prometheus histogram in exposition text, summed over its labels. */
function scrapeHistogram(text: string, name: string): Map<number, number> {
  const buckets = new Map<number, number>();
  const re = new RegExp(`^${name}_bucket\\{([^}]*)\\} (\\S+)$`, 'gm');
  for (const m of text.matchAll(re)) {
    const le = /(?:^|,)le="([^"]+)"/.exec(m[1])?.[1];
    if (le === undefined) continue;
    const bound = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le);
    buckets.set(bound, (buckets.get(bound) ?? 0) + Number(m[2]));
  }
  return buckets;
}

/** Quantile of cumulative buckets: the upper bound of the bucket holding it (seconds -> ms); NaN when empty. */
function histQuantile(buckets: Map<number, number>, q: number): number {
  const ordered = [...buckets].sort((a, b) => a[0] - b[0]);
  const count = ordered.at(-1)?.[1] ?? 0;
  if (count === 0) return Number.NaN;
  for (const [bound, seen] of ordered) if (seen >= q * count) return bound * 1000;
  return Number.NaN;
}

/** One scrape of the gateway's GET /metrics, with a `metrics` account's API token as Prometheus sends it. */
async function scrape(httpUrl: string, token: string): Promise<string> {
  const res = await fetch(`${httpUrl}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}; bench:fanout needs metrics.enabled`);
  return res.text();
}

/** The single value of an unlabelled counter or gauge in exposition text. */
function scrapeValue(text: string, name: string): number {
  const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return m ? Number(m[1]) : Number.NaN;
}

async function run(spec: RunSpec): Promise<RunResult> {
  const { screens } = spec;
  const dir = mkdtempSync(join(tmpdir(), 'scanline-fanout-'));
  const gw = await startGateway(
    resolveConfig(
      {
        server: { host: '127.0.0.1', port: 0 },
        storage: { dataDir: dir },
        log: { level: 'silent' },
        inference: { enabled: true },
        metrics: { enabled: true },
      },
      spec.stallConfig ? STALL_CONFIG : {},
    ),
    { log: silentLogger() },
  );
  // Identities as a checkpoint has them: a credential per portal, an account per screen (an account may hold only
  // operator.maxScreensPerUser screens), a metrics account for the scrape.
  const by = { name: 'bench', address: null };
  const portalCredentials: Record<string, string> = {};
  for (let i = 1; i <= LANES; i++) portalCredentials[`sim-${i}`] = gw.identity.setPortalCredential(`sim-${i}`, by).credential;
  const programToken = (account: string, role: string): string => benchProgramToken(gw.identity, account, role, 'bench:fanout');
  const metricsToken = programToken('bench-prometheus', 'metrics');
  const screenSocket = (account: string): WebSocket =>
    new WebSocket(`ws://127.0.0.1:${gw.port}/v1/operator`, {
      perMessageDeflate: false,
      headers: { authorization: `Bearer ${programToken(account, 'viewer')}` },
    });
  // When ingest emitted each preview strip, by `${scanId}:${line}` (reading screen 0 measures against it).
  const stripEmitted = new Map<string, number>();
  gw.ingest.listen({ preview: (scan, strip) => stripEmitted.set(`${scan.scanId}:${strip.line}`, performance.now()) });
  const stripLags: number[] = [];
  // k-th update of a kind for a scan, as the results stage announced it: the hub sends every update to every
  // screen that watches the scan, in order, so the k-th message of that kind on a screen is the same update.
  const emitted = new Map<string, number[]>();
  const key = (kind: string, scanId: string): string => `${kind}:${scanId}`;
  const push = (k: string): void => {
    const list = emitted.get(k) ?? [];
    list.push(performance.now());
    emitted.set(k, list);
  };
  // Added after the hub's listener (main.ts), so it runs just after the hub sent the update to every socket.
  gw.results?.addListener({ suggestions: (scanId) => push(key('suggestions', scanId)), alert: (scanId) => push(key('alert', scanId)) });
  const latencies: number[] = [];
  let missing = 0;
  const sockets: WebSocket[] = [];
  const pending: Array<{ k: string; index: number; at: number }> = [];
  for (let i = 0; i < screens; i++) {
    const ws = screenSocket(`bench-screen-${i}`);
    const seen = new Map<string, number>();
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) {
        if (i !== 0) return;
        const at = performance.now();
        const { header } = decodeImageFrame(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        const emittedAt = header.kind === ImageFrameKind.Strip ? stripEmitted.get(`${header.scanId}:${header.line}`) : undefined;
        if (emittedAt !== undefined) stripLags.push(at - emittedAt);
        return;
      }
      const at = performance.now();
      const m = JSON.parse(data.toString('utf8')) as { type: string; scanId?: string };
      if (m.type !== 'suggestions' && m.type !== 'alert') return;
      const k = key(m.type, m.scanId as string);
      const index = seen.get(k) ?? 0;
      seen.set(k, index + 1);
      pending.push({ k, index, at });
    });
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    ws.send(JSON.stringify({ type: 'subscribe', portals: ['*'] }));
    sockets.push(ws);
  }
  let stalled: WebSocket | null = null;
  if (spec.stalled) {
    stalled = screenSocket('bench-screen-stalled');
    await new Promise((resolve, reject) => {
      stalled!.once('open', resolve);
      stalled!.once('error', reject);
    });
    stalled.send(JSON.stringify({ type: 'subscribe', portals: ['*'] }));
  }
  await new Promise((r) => setTimeout(r, 200));
  // Reads nothing from here on: the kernel buffers fill, then the gateway's socket buffer grows.
  (stalled as unknown as { _socket: { pause(): void } } | null)?._socket.pause();
  const started = performance.now();
  const sim = await simulatePortals({ url: gw.portalUrl, portals: LANES, credentials: portalCredentials, trucks: 1, seed: 6100, lineRate: LINE_RATE });
  // A portal the gateway refused (credential, limit) fails its scan and the simulator only counts it: a run without
  // its trucks would report no updates and NaN latencies as if measured.
  if (sim.scansFailed > 0 || sim.scansCompleted < LANES)
    throw new Error(`bench:fanout: ${sim.scansCompleted} of ${LANES} scans completed, errors ${JSON.stringify(sim.errorsByCode)}`);
  await gw.results?.drain(60_000);
  await new Promise((r) => setTimeout(r, 500));
  const seconds = (performance.now() - started) / 1000;
  let updates = 0;
  for (const list of emitted.values()) updates += list.length;
  if (updates === 0) throw new Error('bench:fanout: the results stage announced no update (inference off or failing?)');
  for (const p of pending) {
    const t = emitted.get(p.k)?.[p.index];
    if (t === undefined) missing++;
    else latencies.push(p.at - t);
  }
  missing += updates * screens - pending.length;
  latencies.sort((a, b) => a - b);
  const metrics = await scrape(gw.httpUrl, metricsToken);
  const lineToScreen = scrapeHistogram(metrics, 'scanline_line_to_screen_seconds');
  const hub = gw.operator.stats();
  let ingestOverrunS = 0;
  for (const s of sim.scans) {
    const r = gw.store.getScan(s.scanId);
    if (r?.endedAt) ingestOverrunS = Math.max(ingestOverrunS, (Date.parse(r.endedAt) - Date.parse(r.startedAt)) / 1000 - s.lines / LINE_RATE);
  }
  stripLags.sort((a, b) => a - b);
  stalled?.terminate();
  for (const ws of sockets) ws.close();
  await gw.close(10_000);
  rmSync(dir, { recursive: true, force: true });
  return {
    screens,
    stalled: spec.stalled,
    stallConfig: spec.stallConfig,
    lanes: LANES,
    updates,
    deliveries: latencies.length,
    missing,
    latencyMs: { p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), max: latencies.at(-1) ?? Number.NaN },
    lineToScreenMs: { p50: histQuantile(lineToScreen, 0.5), p99: histQuantile(lineToScreen, 0.99) },
    stripsCoalesced: scrapeValue(metrics, 'scanline_operator_strips_coalesced_total'),
    stripLagMs: { p50: quantile(stripLags, 0.5), p99: quantile(stripLags, 0.99), max: stripLags.at(-1) ?? Number.NaN },
    stripsMissing: stripEmitted.size - stripLags.length,
    ingestOverrunS,
    operator: { stripsSent: hub.stripsSent, stripsCoalesced: hub.stripsCoalesced, resyncs: hub.resyncs, disconnectedSlow: hub.disconnectedSlow },
    seconds,
  };
}

function describeRun(r: RunResult): string {
  return (
    `${String(r.screens).padStart(3)} screens${r.stalled ? ' + 1 stalled' : ''} x ${LANES} lanes${r.stallConfig ? ' (stall settings)' : ''}: ` +
    `${r.updates} updates, ${r.deliveries} deliveries (${r.missing} missing), ` +
    `result->socket p50 ${r.latencyMs.p50.toFixed(2)} ms p99 ${r.latencyMs.p99.toFixed(2)} ms max ${r.latencyMs.max.toFixed(1)} ms; ` +
    `line->screen p50 <= ${r.lineToScreenMs.p50} ms p99 <= ${r.lineToScreenMs.p99} ms; ` +
    `strip lag (screen 0) p50 ${r.stripLagMs.p50.toFixed(1)} ms p99 ${r.stripLagMs.p99.toFixed(1)} ms (${r.stripsMissing} missing); ` +
    `ingest overrun ${r.ingestOverrunS.toFixed(2)} s; strips coalesced ${r.stripsCoalesced}, resyncs ${r.operator.resyncs}, slow disconnects ${r.operator.disconnectedSlow}`
  );
}

const results: RunResult[] = [];
for (const n of SCREENS) {
  const r = await run({ screens: n, stalled: false, stallConfig: false });
  results.push(r);
  console.log(describeRun(r));
}
const base = results[0].latencyMs.p99;
for (const r of results.slice(1)) console.log(`p99 at ${r.screens} screens / p99 at 1 screen: ${(r.latencyMs.p99 / base).toFixed(2)}`);
const stallBase = await run({ screens: 10, stalled: false, stallConfig: true });
const stall = await run({ screens: 10, stalled: true, stallConfig: true });
results.push(stallBase, stall);
console.log(describeRun(stallBase));
console.log(describeRun(stall));
const stalledRatios = {
  resultToSocketP99: stall.latencyMs.p99 / stallBase.latencyMs.p99,
  stripLagP99: stall.stripLagMs.p99 / stallBase.stripLagMs.p99,
  ingestOverrunS: { with: stall.ingestOverrunS, without: stallBase.ingestOverrunS },
};
console.log(
  `a stalled screen, with / without, 10 reading screens: result->socket p99 ${stalledRatios.resultToSocketP99.toFixed(2)}, ` +
    `strip lag p99 (screen 0) ${stalledRatios.stripLagP99.toFixed(2)}; ingest overrun ${stall.ingestOverrunS.toFixed(2)} s vs ${stallBase.ingestOverrunS.toFixed(2)} s`,
);
const date = new Date().toISOString();
console.log(`wrote ${writeResultsJson('fanout', date, { date, machine: machineInfo(), lineRate: LINE_RATE, results, stalledRatios })}`);
