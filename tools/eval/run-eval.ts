/**
 * `runEval`: streams held-out simulated trucks through a real gateway over portal protocol v1 (the simulator's
 * PortalClient, calibration frames first, like the simulated portal) and scores the machine results it serves at
 * GET /v1/scans/:scanId/results against the ground truth (scoring.ts).
 *
 * Per truck: one PortalClient (the truck's own detector, as in the training export), one scan; while it streams,
 * the report is polled every `pollMs` to time the first correct suggestion of each cargo segment; after
 * scan.completed, polling goes on until the report is final (or `finalTimeoutMs`), and the final report is scored.
 * `portals` trucks run at a time. Without `url` the evaluator starts its own gateway (127.0.0.1, a free port, a
 * temporary data directory removed afterwards) and closes it at the end.
 *
 * Threads: everything runs on the caller's event loop; the gateway's inference runs on its worker threads.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_CONFIG, resolveConfig, type GatewayConfigInput } from '../../src/config/index.js';
import { DATASET_SCAN_DEFAULTS, TileLabeler } from '../dataset/index.js';
import { ScanlineError, invalidArgument } from '../../src/errors/index.js';
import { SliceKind } from '../../src/protocol/index.js';
import type { Logger } from '../../src/log/index.js';
import { startGateway, type Gateway } from '../../src/main.js';
import type { ScanResultsReport, TileCounts } from '../../src/protocol/index.js';
import {
  DEFAULT_TRUCK_OPTIONS,
  FOREIGN_SCANNER_PROFILES,
  PortalClient,
  REALISM_LEVELS,
  abortableDelay,
  foreignScannerTransform,
  type ForeignScannerProfile,
  type FrameSent,
  type Realism,
} from '../simulator/index.js';
import { FirstSuggestionTracker, goodsConfidencePairs, scoreGoodsTiles, scoreSuggestionPlacement, scoreThreats } from './scoring.js';
import { summarise, type EvalFailure, type EvalSummary, type ScanEval } from './summary.js';
import { tileGrid, type GridTile, type TileGridGeometry } from './tile-grid.js';
import { evalTruck } from './trucks.js';

export interface EvalOptions {
  /** First and last truck seed, inclusive. Held-out seeds: 5000 and up (training and validation used 1000-4999). */
  seeds: [number, number];
  /** Portal endpoint of a running gateway (ws://host:port/v1/portal); absent: the evaluator starts one. */
  url?: string;
  /** With `url`: credentials of the portals eval-1 ... eval-N (`scanline portal add eval-1 ... --json`). */
  credentials?: Readonly<Record<string, string>>;
  /** With `url`: an API token of a viewer account, to read the results (`scanline token create`). */
  token?: string;
  /**
   * Config layers of the gateway the evaluator starts (a config file, flags such as inference.modelsDir), lowest
   * precedence first; server host/port and storage.dataDir are always the evaluator's own.
   */
  gatewayConfig?: GatewayConfigInput[];
  /** Logger of the gateway the evaluator starts. */
  gatewayLog?: Logger;
  /** Trucks streamed at a time, each from its own portal. Default 4. */
  portals?: number;
  /** 'realtime' paces lines at the detector's line rate (500 lines/s); 'max' as fast as the gateway acks. */
  speed?: 'realtime' | 'max';
  /** Probability that a truck carries concealed threats. Default 0.5 (as the training trucks). */
  threatProbability?: number;
  /** Probability that a truck's declaration lies. Default: the simulator's (0.2). */
  mismatchProbability?: number;
  /**
   * Renders every truck as another scanner would (tools/simulator/foreign-scanner.ts): checks that the gateway
   * says UNKNOWN on images unlike its models' training data.
   */
  foreignScanner?: ForeignScannerProfile;
  /** Energies of the trucks' portals: 1 evaluates the gateway's single-energy models. Default 2. */
  energies?: 1 | 2;
  /**
   * The simulator the trucks come from: 'hard' (tools/simulator/realism.ts) or 'basic'. Default 'basic' here; the
   * `scanline eval` command defaults to 'hard', what the committed models were trained on.
   */
  realism?: Realism;
  /** Report polling period while a scan streams, ms. Default 25. */
  pollMs?: number;
  /** After scan.completed, how long to wait for the report to become final, ms. Default 60000. */
  finalTimeoutMs?: number;
  /** Called with every scored scan and every failed one. */
  onScan?: (scan: ScanEval) => void;
  onFailure?: (failure: EvalFailure) => void;
  signal?: AbortSignal;
}

export const DEFAULT_EVAL_OPTIONS = Object.freeze({
  portals: 4,
  speed: 'realtime' as const,
  threatProbability: 0.5,
  mismatchProbability: DEFAULT_TRUCK_OPTIONS.mismatchProbability,
  pollMs: 25, // ms
  finalTimeoutMs: 60_000, // ms
});

/** Seeds the demo models' datasets were made from (models/train/run.sh: train, threat-rich, patches, validation). */
export const TRAINING_SEEDS: readonly [number, number] = Object.freeze([1000, 4999] as [number, number]);

const CODE = 'SCANLINE_ERR_CLI_USAGE' as const;
const LINES_PER_SLICE = DATASET_SCAN_DEFAULTS.linesPerSlice;

interface Validated {
  seeds: [number, number];
  foreignScanner: ForeignScannerProfile | null;
  energies: 1 | 2;
  realism: Realism;
  portals: number;
  speed: 'realtime' | 'max';
  threatProbability: number;
  mismatchProbability: number;
  pollMs: number;
  finalTimeoutMs: number;
}

function validate(o: EvalOptions): Validated {
  const d = DEFAULT_EVAL_OPTIONS;
  const s = o?.seeds;
  if (!Array.isArray(s) || s.length !== 2 || !s.every((x) => Number.isSafeInteger(x) && x >= 0) || s[0] > s[1]) {
    throw invalidArgument(CODE, 'a seed range [first, last] of integers >= 0 with first <= last', 'seeds', s);
  }
  if (s[1] - s[0] >= 100_000) throw invalidArgument(CODE, 'at most 100000 seeds', 'seeds', s);
  if (o.url !== undefined && (typeof o.url !== 'string' || !/^wss?:\/\/[^/]+/.test(o.url))) throw invalidArgument(CODE, 'a ws:// or wss:// URL', 'url', o.url);
  const int = (name: string, v: unknown, lo: number, hi: number): number => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw invalidArgument(CODE, `an integer in [${lo}, ${hi}]`, name, v);
    return v;
  };
  const prob = (name: string, v: unknown): number => {
    if (typeof v !== 'number' || !(v >= 0 && v <= 1)) throw invalidArgument(CODE, 'a probability in [0, 1]', name, v);
    return v;
  };
  const speed = o.speed ?? d.speed;
  if (speed !== 'realtime' && speed !== 'max') throw invalidArgument(CODE, "'realtime' or 'max'", 'speed', speed);
  const foreign = o.foreignScanner ?? null;
  if (foreign !== null && !FOREIGN_SCANNER_PROFILES.includes(foreign))
    throw invalidArgument(CODE, `one of ${FOREIGN_SCANNER_PROFILES.join(', ')}`, 'foreignScanner', foreign);
  return {
    seeds: [s[0], s[1]],
    foreignScanner: foreign,
    energies: o.energies === 1 ? 1 : o.energies === undefined || o.energies === 2 ? 2 : invalidEnergies(o.energies),
    realism: realismOf(o.realism),
    portals: int('portals', o.portals ?? d.portals, 1, 64),
    speed,
    threatProbability: prob('threatProbability', o.threatProbability ?? d.threatProbability),
    mismatchProbability: prob('mismatchProbability', o.mismatchProbability ?? d.mismatchProbability),
    pollMs: int('pollMs', o.pollMs ?? d.pollMs, 1, 10_000),
    finalTimeoutMs: int('finalTimeoutMs', o.finalTimeoutMs ?? d.finalTimeoutMs, 0, 3_600_000),
  };
}

function realismOf(v: unknown): Realism {
  if (v === undefined) return 'basic';
  if (!REALISM_LEVELS.includes(v as Realism)) throw invalidArgument(CODE, `one of ${REALISM_LEVELS.join(', ')}`, 'realism', v);
  return v as Realism;
}

function invalidEnergies(v: unknown): never {
  throw invalidArgument(CODE, '1 or 2', 'energies', v);
}

/** http(s)://host:port of a portal endpoint ws(s)://host:port/... */
export function httpBaseOf(portalUrl: string): string {
  const u = new URL(portalUrl);
  return `${u.protocol === 'wss:' ? 'https:' : 'http:'}//${u.host}`;
}

/** Times a report request is tried again after the gateway's per-address rate limit refused it. */
const RATE_LIMIT_RETRIES = 50;
/** Wait before trying again after a rate-limit refusal without Retry-After, ms. */
const RATE_LIMIT_WAIT_MS = 200;

/** The report of a scan; undefined while the gateway does not know the scan yet. Throws when it has no results. */
async function fetchReport(httpBase: string, scanId: string, token: string | undefined): Promise<ScanResultsReport | undefined> {
  let res: Response;
  // Several portals poll at once from one address: the gateway's rate limit (server.requestsPerSecondPerAddress)
  // may refuse some polls. That is the gateway protecting itself, not a failed truck: wait and ask again.
  for (let attempt = 0; ; attempt++) {
    res = await fetch(`${httpBase}/v1/scans/${encodeURIComponent(scanId)}/results`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
    if (res.status !== 429 || attempt >= RATE_LIMIT_RETRIES) break;
    await res.arrayBuffer();
    const after = Number(res.headers.get('retry-after'));
    await new Promise((r) => setTimeout(r, Number.isFinite(after) && after > 0 ? Math.min(after * 1000, 5000) : RATE_LIMIT_WAIT_MS));
  }
  const body = (await res.json()) as ScanResultsReport | { error?: { code?: string; message?: string } };
  if (res.ok) return body as ScanResultsReport;
  const error = (body as { error?: { code?: string; message?: string } }).error;
  if (error?.code === 'SCANLINE_ERR_SCAN_UNKNOWN') return undefined;
  if (error?.code === 'SCANLINE_ERR_RESULTS_UNAVAILABLE') {
    throw new ScanlineError(
      'SCANLINE_ERR_RESULTS_UNAVAILABLE',
      `the gateway at ${httpBase} serves no machine results for scan ${scanId}: is it running without models?`,
      { scanId },
    );
  }
  throw new ScanlineError(
    'SCANLINE_ERR_SIM_REJECTED',
    `GET results of scan ${scanId} answered ${res.status}: ${error?.code ?? ''} ${error?.message ?? ''}`.trim(),
    { scanId },
  );
}

function tileTotals(report: ScanResultsReport): TileCounts {
  const t: TileCounts = { submitted: 0, ok: 0, rejected: 0, expired: 0, failed: 0, pending: 0 };
  for (const a of report.algorithms) for (const k of Object.keys(t) as Array<keyof TileCounts>) t[k] += a.tiles[k];
  return t;
}

interface Target {
  portalUrl: string;
  httpBase: string;
  tile: TileGridGeometry;
  /** The credential a portal sends in hello. */
  credentialOf(portalId: string): string | undefined;
  /** API token for GET .../results. */
  token: string | undefined;
}

/** Streams one truck and scores its final report. */
async function evalOne(seed: number, portalIndex: number, target: Target, o: Validated, runSignal: AbortSignal): Promise<ScanEval> {
  // A signal of this truck's own, so the run's signal does not collect one listener per truck's client.
  const local = new AbortController();
  const onAbort = (): void => local.abort(runSignal.reason);
  runSignal.addEventListener('abort', onAbort, { once: true });
  const signal = local.signal;
  const truck = evalTruck(seed, {
    threatProbability: o.threatProbability,
    mismatchProbability: o.mismatchProbability,
    energies: o.energies,
    realism: o.realism,
  });
  const tracker = new FirstSuggestionTracker(truck.truth.cargoSegments, truck.scene.totalLines, LINES_PER_SLICE);
  let last: ScanResultsReport | undefined;
  let endDeadline = Infinity;
  let stopPolling = false;
  let pollError: unknown = null;
  let poller: Promise<void> | null = null;

  const poll = async (scanId: string): Promise<void> => {
    for (;;) {
      if (stopPolling || signal.aborted) return;
      const started = performance.now();
      const report = await fetchReport(target.httpBase, scanId, target.token);
      const at = performance.now();
      if (report) {
        tracker.observe(report, at);
        last = report;
        if (report.status === 'final') return;
      }
      if (at > endDeadline) return;
      await abortableDelay(o.pollMs - (at - started), signal);
    }
  };

  const portalId = `eval-${portalIndex + 1}`;
  const token = target.credentialOf(portalId);
  const client = new PortalClient({
    url: target.portalUrl,
    portalId,
    ...(token !== undefined ? { token } : {}),
    detector: truck.detector,
    linesPerSlice: LINES_PER_SLICE,
    speed: o.speed,
    calibration: { ...DATASET_SCAN_DEFAULTS.calibration },
    ...(o.foreignScanner ? { imageTransform: foreignScannerTransform(o.foreignScanner, truck.detector, seed) } : {}),
    signal,
    onMessage: (m) => {
      if (m.type === 'scan.accepted' && poller === null) {
        poller = poll(m.scanId).catch((err: unknown) => {
          pollError = err;
        });
      }
    },
  });
  client.on('frame-sent', (f: FrameSent) => {
    if (f.kind === SliceKind.Image && !f.resent) tracker.sliceSent(f.firstLine, f.at);
  });
  try {
    const result = await client.scan(truck.scene);
    endDeadline = performance.now() + o.finalTimeoutMs;
    if (poller === null) {
      poller = poll(result.scanId).catch((err: unknown) => {
        pollError = err;
      });
    }
    await poller;
    if (pollError) throw pollError;
    const report = last ?? (await fetchReport(target.httpBase, result.scanId, target.token));
    if (!report)
      throw new ScanlineError('SCANLINE_ERR_SCAN_UNKNOWN', `the gateway does not know scan ${result.scanId} after it completed`, { scanId: result.scanId });
    tracker.observe(report, performance.now());

    const grid = tileGrid(truck.scene.totalLines, truck.detector.pixels, target.tile);
    // truth.threats follows scene.threats (truthLabels), so index i is the same threat in both.
    const concealments = truck.scene.threats.map((t) => t.concealment);
    // Every grid tile labelled once, for both scorers (labelling rasterises the scene under the tile).
    const tileLabeler = new TileLabeler(truck.scene, truck.detector, truck.truth.threats, target.tile);
    const goodsOf = new Map(grid.map((t) => [t, tileLabeler.goods(t)]));
    const labeler = { goods: (t: GridTile) => goodsOf.get(t) ?? tileLabeler.goods(t) };
    return {
      seed,
      scanId: report.scanId,
      portalId: report.portalId,
      lines: report.lines,
      reportFinal: report.status === 'final',
      decision: report.alarmDecision,
      tilesProduced: report.tilesProduced,
      tilesExpected: grid.length,
      tileOutcomes: tileTotals(report),
      goods: scoreGoodsTiles(labeler, grid, report.goods.segments),
      goodsConfidence: goodsConfidencePairs(labeler, grid, report.goods.segments),
      triage: { level: report.triage?.level ?? null, greenScore: report.triage?.greenScore ?? null, threatPeak: report.triage?.threatPeak ?? null },
      outOfDistribution: report.outOfDistribution ? report.outOfDistribution.scan : null,
      hints: scoreThreats(truck.truth.threats, report.hints ?? [], concealments),
      reasons: report.decisionReasons ?? [report.decisionReason],
      suggestions: scoreSuggestionPlacement(labeler, grid, report.goods.segments),
      threats: scoreThreats(truck.truth.threats, report.threats, concealments),
      declaration: { mismatch: truck.mismatch, status: report.goods.declaration.status },
      firstSuggestions: tracker.results(),
      models: report.algorithms.map((a) => ({ name: a.name, version: a.version, task: a.task })),
    };
  } finally {
    stopPolling = true;
    await client.close();
    runSignal.removeEventListener('abort', onAbort);
  }
}

/** Runs the evaluation and resolves with its summary. Throws SCANLINE_ERR_CLI_USAGE on invalid options. */
export async function runEval(options: EvalOptions): Promise<EvalSummary> {
  const o = validate(options);
  const started = performance.now();
  let gateway: Gateway | null = null;
  let dataDir: string | null = null;
  let target: Target;
  if (options.url !== undefined) {
    const credentials = options.credentials ?? {};
    target = {
      portalUrl: options.url,
      httpBase: httpBaseOf(options.url),
      tile: DEFAULT_CONFIG.stitch.tile,
      credentialOf: (id) => credentials[id],
      token: options.token,
    };
  } else {
    dataDir = mkdtempSync(join(tmpdir(), 'scanline-eval-'));
    try {
      // The evaluator is one client address with many portals and pollers: its own gateway's per-address limits
      // would refuse it, as they would a reverse proxy (docs/security.md says to raise them there too).
      const config = resolveConfig(...(options.gatewayConfig ?? []), {
        server: { host: '127.0.0.1', port: 0, requestsPerSecondPerAddress: 100_000, maxRequestsPerAddress: 1_000 },
        storage: { dataDir },
      });
      gateway = await startGateway(config, options.gatewayLog ? { log: options.gatewayLog } : {});
      if (!gateway.results) {
        throw new ScanlineError('SCANLINE_ERR_RESULTS_UNAVAILABLE', 'the evaluated gateway runs no models (inference.enabled is false)');
      }
      // The evaluator's own gateway: its portals and its reader get identities like any other.
      const identity = gateway.identity;
      const by = { name: 'system:eval', address: null };
      identity.addProgramAccount('eval', 'viewer', by);
      const made = new Map<string, string>();
      target = {
        portalUrl: gateway.portalUrl,
        httpBase: gateway.httpUrl,
        tile: config.stitch.tile,
        credentialOf: (id) => {
          let c = made.get(id);
          if (c === undefined) made.set(id, (c = identity.setPortalCredential(id, by).credential));
          return c;
        },
        token: identity.createToken('eval', { label: 'scanline eval' }, by).token,
      };
    } catch (err) {
      await gateway?.close(0);
      rmSync(dataDir, { recursive: true, force: true });
      throw err;
    }
  }

  const abort = new AbortController();
  const onAbort = (): void => abort.abort(options.signal?.reason);
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const scans: ScanEval[] = [];
  const failures: EvalFailure[] = [];
  let fatal: unknown = null;
  let next = o.seeds[0];
  const worker = async (portalIndex: number): Promise<void> => {
    while (next <= o.seeds[1] && fatal === null && !abort.signal.aborted) {
      const seed = next++;
      try {
        const scan = await evalOne(seed, portalIndex, target, o, abort.signal);
        scans.push(scan);
        options.onScan?.(scan);
      } catch (err) {
        if (abort.signal.aborted) break;
        if (err instanceof ScanlineError && err.code === 'SCANLINE_ERR_RESULTS_UNAVAILABLE') {
          fatal = err;
          abort.abort(err);
          break;
        }
        const failure: EvalFailure = {
          seed,
          code: err instanceof ScanlineError ? err.code : 'SCANLINE_ERR_SIM_CONNECTION',
          message: err instanceof Error ? err.message : String(err),
        };
        failures.push(failure);
        options.onFailure?.(failure);
      }
    }
  };
  try {
    const count = o.seeds[1] - o.seeds[0] + 1;
    await Promise.all(Array.from({ length: Math.min(o.portals, count) }, (_, i) => worker(i)));
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    if (gateway) await gateway.close(10_000);
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  }
  if (fatal) throw fatal;
  if (scans.length === 0 && failures.length > 0) {
    const f = failures[0];
    throw new ScanlineError('SCANLINE_ERR_SIM_CONNECTION', `no scan could be evaluated; seed ${f.seed}: ${f.code}: ${f.message}`, {
      failures: failures.length,
    });
  }
  scans.sort((a, b) => a.seed - b.seed);
  failures.sort((a, b) => a.seed - b.seed);
  return summarise(scans, failures, {
    seeds: o.seeds,
    heldOut: o.seeds[1] < TRAINING_SEEDS[0] || o.seeds[0] > TRAINING_SEEDS[1],
    url: target.portalUrl,
    portals: o.portals,
    speed: o.speed,
    lineRateHz: DATASET_SCAN_DEFAULTS.lineRateHz,
    threatProbability: o.threatProbability,
    mismatchProbability: o.mismatchProbability,
    foreignScanner: o.foreignScanner,
    energies: o.energies,
    realism: o.realism,
    durationMs: Math.round(performance.now() - started),
  });
}
