/**
 * The gateway's Prometheus metrics: one prom-client Registry per gateway (never the global one) holding metrics that
 * read each stage's plain counters at scrape time, served on GET /metrics. It reads every stage, so it lives with the
 * server, the other stage that sees them all; src/metrics holds the pieces the stages themselves count with. docs/metrics.md documents every metric registered here;
 * test/metrics/docs-sync.test.ts keeps the two in sync.
 *
 * Label sets are bounded: portal (at most metrics.portalLabelLimit ids, then "(other)"; "(none)" before hello),
 * model and provider (loaded models), priority, outcome, code (the error registry), phase, state, worker index.
 * Scan ids never become labels.
 */
import { Registry } from 'prom-client';
import { type Inference, TILE_PRIORITIES } from '../inference/index.js';
import type { DicosListenerStats, ImportStats } from '../imports/index.js';
import type { PushStats } from '../push/index.js';
import type { IngestService, PortalIngestStats } from '../ingest/index.js';
import type { ResultsService } from '../results/index.js';
import type { ScanStore } from '../storage/index.js';
import {
  CollectedHistogram,
  CollectedMetric,
  type HistogramCounts,
  type HistogramSample,
  type MetricDescription,
  NO_PORTAL,
  OperatorMetrics,
  OTHER_PORTALS,
  ProcessMetrics,
  register,
  type Sample,
} from '../metrics/index.js';

export interface GatewayMetricsOptions {
  ingest: IngestService;
  store: ScanStore;
  /** null: inference disabled (its metrics are still registered, without series). */
  inference: Inference | null;
  results: ResultsService | null;
  /** The gateway's lifecycle phase now, for scanline_gateway_phase. */
  phase: () => string;
  /** Every phase the gateway has (each gets a series, 1 for the current one). */
  phases: readonly string[];
  version: string;
  /** Distinct portal ids with their own label value (config metrics.portalLabelLimit). */
  portalLabelLimit: number;
  /** Export process and event-loop metrics (config metrics.processMetrics). */
  processMetrics: boolean;
  /** The server's refusals by error code (read at scrape; empty before it listens). */
  refusals?: () => ReadonlyMap<string, number>;
  /** Sign-in counters of the identity stage. */
  signIns?: () => { ok: number; failed: number; locked: number };
  /** Writes of the identity stage that a full disk (or a failing database) refused, by kind (IdentityService.stats). */
  identityWritesFailed?: () => { refusalsUnrecorded: number; bookkeeping: number };
  /** Image renders running and waiting for a slot. */
  renders?: () => { running: number; queued: number };
  /** The png16 image cache: requests by outcome and bytes held. */
  imageCache?: () => { hits: number; shared: number; rendered: number; bytes: number };
  /** Limit refusals answered late: held now, and since the start. */
  delayedRefusals?: () => { held: number; total: number; escalated: number };
  /** The audit chain's newest entry (src/storage/integrity.ts). */
  auditHead?: () => { id: number; hash: string } | null;
  /** Counters of the retention policy's background runs (src/retention). */
  retention?: () => { runs: number; deleted: number; bytes: number; failures: number };
  /** Imports of DICOS images (src/imports). */
  imports?: () => ImportStats;
  /** DICOS push to dicos.destinations: counters, and what the queue holds. */
  push?: () => { stats: PushStats; pending: Array<{ destination: string; pending: number; oldest: string | null }>; destinations: string[] };
  /** The DICOS network service, when it is on (dicos.listener). */
  dicosListener?: () => DicosListenerStats;
  /** The data directory's disk (src/storage DiskMonitor): free and total bytes, the limit, the gateway's own files (null while measured), the reserve held. */
  disk?: () => {
    free: number;
    total: number;
    minFree: number;
    used: number | null;
    reserve: number;
    pendingRecords: number;
    pendingSeals: number;
    pendingReports: number;
  };
}

export interface GatewayMetrics {
  readonly registry: Registry;
  /** Content-Type of render()'s text (Prometheus text format 0.0.4). */
  readonly contentType: string;
  /** Where the operator hub reports line-to-screen latency and its feed's stats. */
  readonly operator: OperatorMetrics;
  /** Every metric registered (for docs and tests). */
  describe(): MetricDescription[];
  /** The exposition text of every metric, read now. */
  render(): Promise<string>;
  /** Stops what runs in the background (the event-loop delay histogram). Idempotent. */
  close(): void;
}

const OUTCOMES = ['ok', 'rejected', 'expired', 'failed'] as const;

export function createGatewayMetrics(o: GatewayMetricsOptions): GatewayMetrics {
  const registry = new Registry();
  const operator = new OperatorMetrics(o.portalLabelLimit);
  const processMetrics = o.processMetrics ? new ProcessMetrics() : null;
  const all: Array<CollectedMetric | CollectedHistogram> = [
    ...gatewayInfo(o),
    ...ingestMetrics(o.ingest),
    ...inferenceMetrics(o.inference),
    ...resultsMetrics(o.results),
    ...storageMetrics(o.ingest, o.store, o.results),
    ...(o.disk ? diskMetrics(o.disk) : []),
    ...(o.retention ? retentionMetrics(o.retention) : []),
    ...(o.imports ? importMetrics(o.imports) : []),
    ...(o.dicosListener ? dicosListenerMetrics(o.dicosListener) : []),
    ...(o.push ? pushMetrics(o.push) : []),
    ...operatorMetrics(operator),
    ...securityMetrics(o),
    ...(processMetrics?.metrics() ?? []),
  ];
  for (const m of all) register(registry, m);
  return {
    registry,
    contentType: registry.contentType,
    operator,
    describe: () => all.map(({ name, type, help, labelNames }) => ({ name, type, help, labelNames })),
    render: () => registry.metrics(),
    close: () => processMetrics?.close(),
  };
}

const counter = (name: string, help: string, labelNames: readonly string[], read: () => Iterable<Sample>) =>
  new CollectedMetric(name, 'counter', help, labelNames, read);
const gauge = (name: string, help: string, labelNames: readonly string[], read: () => Iterable<Sample>) =>
  new CollectedMetric(name, 'gauge', help, labelNames, read);
const histogram = (name: string, help: string, labelNames: readonly string[], read: () => Iterable<HistogramSample>) =>
  new CollectedHistogram(name, help, labelNames, read);
const one = (value: number): Sample[] => [{ labels: {}, value }];

function gatewayInfo(o: GatewayMetricsOptions): CollectedMetric[] {
  return [
    gauge('scanline_build_info', 'Always 1; the labels say which scanline and Node.js versions run.', ['version', 'node_version'], () => [
      { labels: { version: o.version, node_version: process.versions.node }, value: 1 },
    ]),
    gauge('scanline_gateway_phase', 'Lifecycle phase: 1 for the current one (starting, ready, draining, closing, closed), 0 for the others.', ['phase'], () => {
      const now = o.phase();
      return o.phases.map((phase) => ({ labels: { phase }, value: phase === now ? 1 : 0 }));
    }),
  ];
}

function ingestMetrics(ingest: IngestService): Array<CollectedMetric | CollectedHistogram> {
  const s = ingest.stats;
  /**
   * One series per tracked portal. "(none)" (a connection before hello) only for what can happen before hello:
   * frames and bytes.
   */
  const perPortal =
    (pick: (p: PortalIngestStats) => number, beforeHello = false) =>
    (): Sample[] => {
      const out: Sample[] = [];
      for (const [portal, p] of s.portals) if (beforeHello || portal !== NO_PORTAL) out.push({ labels: { portal }, value: pick(p) });
      return out;
    };
  return [
    gauge('scanline_portal_connections', 'Open portal WebSocket connections, by portal ("(none)": connected, hello not accepted yet).', ['portal'], () => {
      const out: Sample[] = [];
      let identified = 0;
      for (const [portal, p] of s.portals) {
        if (portal === NO_PORTAL) continue;
        identified += p.connections;
        out.push({ labels: { portal }, value: p.connections });
      }
      out.push({ labels: { portal: NO_PORTAL }, value: Math.max(0, ingest.connectionCount - identified) });
      return out;
    }),
    counter('scanline_portal_connections_opened_total', 'Portal WebSocket connections opened.', [], () => one(s.connectionsOpened)),
    gauge('scanline_scans_active', 'Scans being received or finishing, by portal.', ['portal'], () => {
      const counts = new Map<string, number>();
      for (const portal of s.portals.keys()) if (portal !== NO_PORTAL) counts.set(portal, 0);
      for (const scan of ingest.liveScans()) {
        const portal = s.portals.has(scan.portalId) ? scan.portalId : OTHER_PORTALS;
        counts.set(portal, (counts.get(portal) ?? 0) + 1);
      }
      return [...counts].map(([portal, value]) => ({ labels: { portal }, value }));
    }),
    counter(
      'scanline_scans_started_total',
      'Scans accepted (scan.start), by portal.',
      ['portal'],
      perPortal((p) => p.scansStarted),
    ),
    counter(
      'scanline_scans_ended_total',
      'Scans ended, by portal and outcome (completed: every line processed and on disk; aborted: by the portal, a lost connection, shutdown or a failure).',
      ['portal', 'outcome'],
      () => {
        const out: Sample[] = [];
        for (const [portal, p] of s.portals) {
          if (portal === NO_PORTAL) continue;
          out.push({ labels: { portal, outcome: 'completed' }, value: p.scansCompleted });
          out.push({ labels: { portal, outcome: 'aborted' }, value: p.scansAborted });
        }
        return out;
      },
    ),
    counter('scanline_scans_resumed_total', 'Scans resumed on a new connection (scan.resume).', [], () => one(s.scansResumed)),
    counter(
      'scanline_portal_connections_cut_total',
      'Portal connections closed (1008) for portal.maxSparseRefusals frames refused SCANLINE_ERR_LIMIT_SPARSE in a row: a broken or hostile portal.',
      [],
      () => one(s.sparseCutOffs),
    ),
    counter(
      'scanline_frames_received_total',
      'WebSocket messages received from portals (control and binary), by portal.',
      ['portal'],
      perPortal((p) => p.framesReceived, true),
    ),
    counter(
      'scanline_slices_received_total',
      'Image slices (binary frames of kind 1) stored, by portal; replays are not counted.',
      ['portal'],
      perPortal((p) => p.slicesReceived),
    ),
    counter(
      'scanline_lines_received_total',
      'Detector lines received for the first time, by portal.',
      ['portal'],
      perPortal((p) => p.linesReceived),
    ),
    counter(
      'scanline_received_bytes_total',
      'Bytes of WebSocket messages received from portals, by portal.',
      ['portal'],
      perPortal((p) => p.bytesReceived, true),
    ),
    counter(
      'scanline_duplicate_frames_total',
      'Frames received again (replayed after a resume or a resend) and acknowledged without storing, by portal.',
      ['portal'],
      perPortal((p) => p.duplicateFrames),
    ),
    counter(
      'scanline_lines_missing_total',
      'Data loss: lines of ended scans that never arrived (the gaps reported in scan.completed, and the missing lines of aborted scans), by portal.',
      ['portal'],
      perPortal((p) => p.gapLines),
    ),
    counter('scanline_protocol_errors_total', 'Error messages sent to portals, by error code (docs/errors.md).', ['code'], () =>
      [...s.errorsByCode].map(([code, value]) => ({ labels: { code }, value })),
    ),
    histogram(
      'scanline_stitch_duration_seconds',
      'Duration of one native stitcher job (calibration, material map, tiles and preview of the lines received since the previous job), queued to result.',
      [],
      () => [{ labels: {}, counts: s.stitchJobSeconds }],
    ),
    counter(
      'scanline_tiles_produced_total',
      'Model-ready tiles the stitcher cut, by portal; each goes to every loaded model.',
      ['portal'],
      perPortal((p) => p.tilesProduced),
    ),
  ];
}

function inferenceMetrics(inference: Inference | null): Array<CollectedMetric | CollectedHistogram> {
  const models = () => (inference ? [...inference.stats.models] : []);
  /** status() walks every batcher and worker: read once per scrape, shared by the metrics that need it. */
  let cached: { at: number; status: ReturnType<Inference['status']> } | null = null;
  const status = () => {
    if (!inference) return null;
    const now = performance.now();
    if (!cached || now - cached.at > 100) cached = { at: now, status: inference.status() };
    return cached.status;
  };
  const provider = (model: string) => status()?.models[model]?.provider ?? 'none';
  const perModelHistogram = (pick: (m: ReturnType<typeof models>[number][1]) => HistogramCounts, withProvider: boolean) => (): HistogramSample[] =>
    models().map(([model, m]): HistogramSample => ({ labels: withProvider ? { model, provider: provider(model) } : { model }, counts: pick(m) }));
  return [
    counter(
      'scanline_inference_tiles_submitted_total',
      'Tiles submitted to a model, by priority (live: a truck in the portal; reanalysis: stored scans).',
      ['model', 'priority'],
      () => models().flatMap(([model, m]) => TILE_PRIORITIES.map((priority) => ({ labels: { model, priority }, value: m.tiles[priority].submitted }))),
    ),
    counter(
      'scanline_inference_tiles_total',
      'Tiles finished, by model, priority and outcome: ok (scored), rejected (queue full, shed, closed), expired (deadline passed while queued), failed (the batch failed). submitted = sum of outcomes + scanline_inference_pending_tiles.',
      ['model', 'priority', 'outcome'],
      () =>
        models().flatMap(([model, m]) =>
          TILE_PRIORITIES.flatMap((priority) => OUTCOMES.map((outcome) => ({ labels: { model, priority, outcome }, value: m.tiles[priority][outcome] }))),
        ),
    ),
    counter('scanline_inference_tiles_shed_total', 'Queued re-analysis tiles evicted for live tiles (part of outcome="rejected").', ['model'], () =>
      models().map(([model, m]) => ({ labels: { model }, value: m.tiles.reanalysis.shed })),
    ),
    counter(
      'scanline_inference_tiles_refused_total',
      'Tiles refused before reaching a model: reason unknown_model (no such model loaded) or invalid_tile.',
      ['reason'],
      () =>
        inference
          ? [
              { labels: { reason: 'unknown_model' }, value: inference.stats.unknownModelTiles },
              { labels: { reason: 'invalid_tile' }, value: inference.stats.invalidTiles },
            ]
          : [],
    ),
    gauge(
      'scanline_inference_queued_tiles',
      "Tiles waiting in a model's batcher queue, by priority (the batcher holds at most inference.batching.maxQueueTiles per model).",
      ['model', 'priority'],
      () =>
        Object.entries(status()?.models ?? {}).flatMap(([model, m]) =>
          TILE_PRIORITIES.map((priority) => ({ labels: { model, priority }, value: m.queued[priority] })),
        ),
    ),
    gauge(
      'scanline_inference_queue_capacity_tiles',
      "Most tiles a model's batcher queue holds (inference.batching.maxQueueTiles); queued / capacity is the queue fill.",
      ['model'],
      () => models().map(([model]) => ({ labels: { model }, value: inference?.config.batching.maxQueueTiles ?? 0 })),
    ),
    gauge('scanline_inference_in_flight_batches', 'Batches of a model dispatched to the backend and not answered yet.', ['model'], () =>
      Object.entries(status()?.models ?? {}).map(([model, m]) => ({ labels: { model }, value: m.inFlightBatches })),
    ),
    histogram(
      'scanline_inference_queue_wait_seconds',
      'Per tile: submitted to dispatched in a batch.',
      ['model'],
      perModelHistogram((m) => m.queueWaitSeconds, false),
    ),
    histogram(
      'scanline_inference_batch_size_tiles',
      'Tiles per batch sent to the backend.',
      ['model'],
      perModelHistogram((m) => m.batchSize, false),
    ),
    histogram(
      'scanline_inference_compute_seconds',
      'Per batch: ONNX Runtime run time measured inside the worker, by model and the execution provider serving it.',
      ['model', 'provider'],
      perModelHistogram((m) => m.computeSeconds, true),
    ),
    histogram(
      'scanline_inference_batch_round_trip_seconds',
      'Per batch: dispatched to result on the gateway thread (compute, transfers and worker queueing).',
      ['model'],
      perModelHistogram((m) => m.roundTripSeconds, false),
    ),
    counter('scanline_inference_batches_total', 'Batches dispatched to the backend.', ['model'], () =>
      models().map(([model, m]) => ({ labels: { model }, value: m.batches })),
    ),
    counter(
      'scanline_inference_batches_failed_total',
      'Batches that failed (ONNX Runtime error, worker crash, batch timeout); their tiles count as outcome="failed".',
      ['model'],
      () => models().map(([model, m]) => ({ labels: { model }, value: m.batchesFailed })),
    ),
    counter(
      'scanline_inference_worker_busy_seconds_total',
      'Time inference workers spent running batches (sum of compute over all models and workers); rate() / scanline_inference_workers{state="ready"} is worker utilisation.',
      [],
      () => [{ labels: {}, value: models().reduce((sum, [, m]) => sum + m.computeSeconds.sum, 0) }],
    ),
    gauge('scanline_inference_workers', 'Inference worker threads, by state (starting, ready, restarting, closing, closed).', ['state'], () => {
      const counts = new Map<string, number>(['starting', 'ready', 'restarting', 'closing', 'closed'].map((k) => [k, 0]));
      for (const w of status()?.backend.workers ?? []) counts.set(w.state, (counts.get(w.state) ?? 0) + 1);
      return inference ? [...counts].map(([state, value]) => ({ labels: { state }, value })) : [];
    }),
    gauge('scanline_inference_worker_in_flight_batches', 'Batches sent to a worker and not answered yet, by worker index.', ['worker'], () =>
      (status()?.backend.workers ?? []).map((w) => ({ labels: { worker: String(w.index) }, value: w.inFlightBatches })),
    ),
    counter('scanline_inference_worker_crashes_total', 'Inference worker threads that died.', [], () => (inference ? one(inference.stats.workerCrashes) : [])),
    counter('scanline_inference_worker_restarts_total', 'Inference worker threads started to replace a crashed or hung one.', [], () =>
      inference ? one(inference.stats.workerRestarts) : [],
    ),
    counter('scanline_inference_batch_timeouts_total', 'Batches not answered within inference.batchTimeoutMs (the worker is replaced).', [], () =>
      inference ? one(inference.stats.batchTimeouts) : [],
    ),
  ];
}

function resultsMetrics(results: ResultsService | null): Array<CollectedMetric | CollectedHistogram> {
  return [
    histogram(
      'scanline_line_to_result_seconds',
      "A tile's last line received from the portal → that tile's result from a model applied to the scan's results, by model and portal.",
      ['model', 'portal'],
      () =>
        results
          ? [...results.stats.lineToResult].flatMap(([model, byPortal]) => [...byPortal].map(([portal, counts]) => ({ labels: { model, portal }, counts })))
          : [],
    ),
    counter(
      'scanline_results_updates_total',
      'Changes pushed to operator screens: kind suggestion (goods suggestions changed), alert (a threat alert raised or changed) or distribution (a scan crossed the out-of-distribution line, its alerts withdrawn as hints or sent again, or its hints changed while out).',
      ['kind'],
      () =>
        results
          ? [
              { labels: { kind: 'suggestion' }, value: results.stats.suggestionUpdates },
              { labels: { kind: 'alert' }, value: results.stats.alertUpdates },
              { labels: { kind: 'distribution' }, value: results.stats.distributionUpdates },
            ]
          : [],
    ),
    counter('scanline_results_reports_stored_total', 'Final results reports stored (one per scan once every tile is answered).', [], () =>
      results ? one(results.stats.reportsStored) : [],
    ),
    counter(
      'scanline_results_reports_cut_short_total',
      'Scans whose scoring a stop cut short (inference closed with their tiles queued): their reports stay in progress, and the next start scores a completed one again.',
      [],
      () => (results ? one(results.stats.reportsCutShort) : []),
    ),
    counter(
      'scanline_opinion_tiles_total',
      'Tiles scored for out-of-distribution (the goods model answered and its manifest carries statistics), by portal.',
      ['portal'],
      () => (results ? [...results.stats.opinion].map(([portal, o]) => ({ labels: { portal }, value: o.tiles })) : []),
    ),
    counter(
      'scanline_opinion_tiles_out_of_distribution_total',
      "Tiles unlike the goods model's training data, by portal; over scanline_opinion_tiles_total it is the scanner's drift (alert ScanlineScannerDrift).",
      ['portal'],
      () => (results ? [...results.stats.opinion].map(([portal, o]) => ({ labels: { portal }, value: o.outOfDistribution })) : []),
    ),
    counter(
      'scanline_triage_total',
      'Final reports by portal and triage level: GREEN (may be released without review), AMBER (review), RED (ALARM).',
      ['portal', 'level'],
      () =>
        results
          ? [...results.stats.triage].flatMap(([portal, t]) =>
              (['GREEN', 'AMBER', 'RED'] as const).map((level) => ({ labels: { portal, level }, value: t[level] })),
            )
          : [],
    ),
    counter(
      'scanline_scans_out_of_distribution_total',
      "Final reports of scans unlike the models' training data (UNKNOWN, threat boxes as hints), by portal.",
      ['portal'],
      () => (results ? [...results.stats.triage].map(([portal, t]) => ({ labels: { portal }, value: t.outOfDistributionScans })) : []),
    ),
  ];
}

function securityMetrics(o: GatewayMetricsOptions): CollectedMetric[] {
  const budget = o.ingest.scanBudget;
  return [
    counter(
      'scanline_http_refusals_total',
      'HTTP requests and WebSocket upgrades refused before their route ran, by error code: missing or wrong credentials, role, CSRF, Origin, Host, limits (docs/security.md).',
      ['code'],
      () => [...(o.refusals?.() ?? [])].map(([code, value]) => ({ labels: { code }, value })),
    ),
    counter(
      'scanline_sign_ins_total',
      'Sign-ins with a password, by outcome: ok, failed (wrong name or password), locked (refused while locked out).',
      ['outcome'],
      () => {
        const s = o.signIns?.() ?? { ok: 0, failed: 0, locked: 0 };
        return [
          { labels: { outcome: 'ok' }, value: s.ok },
          { labels: { outcome: 'failed' }, value: s.failed },
          { labels: { outcome: 'locked' }, value: s.locked },
        ];
      },
    ),
    counter(
      'scanline_identity_writes_failed_total',
      "Identity writes that could not be stored and were let go (a full disk: they never take the space reserve): 'refusal' = a refused sign-in or import whose audit entry is in the log only; 'bookkeeping' = a session's or token's last use not noted.",
      ['kind'],
      () => {
        const f = o.identityWritesFailed?.() ?? { refusalsUnrecorded: 0, bookkeeping: 0 };
        return [
          { labels: { kind: 'refusal' }, value: f.refusalsUnrecorded },
          { labels: { kind: 'bookkeeping' }, value: f.bookkeeping },
        ];
      },
    ),
    gauge('scanline_scan_buffer_bytes', "Memory the open scans' lines are charged (up to each scan's highest line), of portal.scanBufferBudgetBytes.", [], () =>
      one(budget.used),
    ),
    gauge('scanline_scan_buffer_budget_bytes', 'portal.scanBufferBudgetBytes: what open scans may hold together before frames are refused.', [], () =>
      one(budget.limitBytes),
    ),
    gauge('scanline_audit_entries', "Id of the audit chain's newest entry: entries appended so far.", [], () => one(o.auditHead?.()?.id ?? 0)),
    gauge(
      'scanline_audit_chain_head',
      "The audit chain's newest hash, its first 13 hex digits as a number (52 bits, exact in a float): keep it outside the gateway (a recording rule, a daily print) to make removing the newest entries evident; `scanline audit verify` prints the whole hash.",
      [],
      () => {
        const head = o.auditHead?.();
        return one(head ? Number.parseInt(head.hash.slice(0, 13), 16) : 0);
      },
    ),
    counter(
      'scanline_image_cache_requests_total',
      'png16 image requests of ended scans, by outcome: hit (from the cache), shared (joined a render of the same image already running), rendered.',
      ['outcome'],
      () => {
        const c = o.imageCache?.() ?? { hits: 0, shared: 0, rendered: 0, bytes: 0 };
        return [
          { labels: { outcome: 'hit' }, value: c.hits },
          { labels: { outcome: 'shared' }, value: c.shared },
          { labels: { outcome: 'rendered' }, value: c.rendered },
        ];
      },
    ),
    gauge('scanline_image_cache_bytes', 'Bytes of png16 images the cache holds now, of server.imageCacheBytes.', [], () => one(o.imageCache?.().bytes ?? 0)),
    counter(
      'scanline_http_refusals_delayed_total',
      'Limit refusals answered server.refusalDelayMs (or more) late (the rest of scanline_http_refusals_total went out at once: delay 0, or server.maxDelayedRefusals held).',
      [],
      () => one(o.delayedRefusals?.().total ?? 0),
    ),
    counter(
      'scanline_http_refusals_escalated_total',
      'Of scanline_http_refusals_delayed_total, those held longer than server.refusalDelayMs (up to server.maxRefusalDelayMs) because their address already had 16 or more held: a client flooding from one address.',
      [],
      () => one(o.delayedRefusals?.().escalated ?? 0),
    ),
    gauge('scanline_http_refusals_held', 'Limit refusals held now, waiting to be answered (at most server.maxDelayedRefusals).', [], () =>
      one(o.delayedRefusals?.().held ?? 0),
    ),
    gauge('scanline_image_renders', 'Scan image renders now, by state: running (at most server.maxConcurrentImages) or queued.', ['state'], () => {
      const r = o.renders?.() ?? { running: 0, queued: 0 };
      return [
        { labels: { state: 'running' }, value: r.running },
        { labels: { state: 'queued' }, value: r.queued },
      ];
    }),
  ];
}

function storageMetrics(ingest: IngestService, store: ScanStore, results: ResultsService | null): Array<CollectedMetric | CollectedHistogram> {
  const s = ingest.stats;
  return [
    histogram('scanline_storage_write_seconds', "Per write of raw scan lines to the scan's archive file (about 1 MiB), issued to completed.", [], () => [
      { labels: {}, counts: s.storageWriteLatency },
    ]),
    histogram(
      'scanline_portal_ack_delay_seconds',
      "Per frame acknowledged with portal.ackDurability 'disk': from its arrival to its ack, once its lines and the scan's journal were fsync'd.",
      [],
      () => [{ labels: {}, counts: s.ackDelay }],
    ),
    histogram(
      'scanline_storage_commit_seconds',
      "Per group-commit cycle: the fdatasync of every scan's journal and raw file that had something new, from the cycle's start to its last sync.",
      [],
      () => [{ labels: {}, counts: s.commits.cycleSeconds }],
    ),
    counter('scanline_storage_commits_total', "Scan commits (one scan's journal and raw file synced once) over all group-commit cycles.", [], () => [
      { labels: {}, value: s.commits.commits },
    ]),
    counter('scanline_scans_recovered_total', 'Scans a previous run left open (a crash) that this run rebuilt from their journals at start.', [], () => [
      { labels: {}, value: s.scansRecovered },
    ]),
    counter('scanline_lines_recovered_total', 'Lines of the recovered scans that their journals proved stored.', [], () => [
      { labels: {}, value: s.linesRecovered },
    ]),
    counter(
      'scanline_storage_written_bytes_total',
      'Bytes of raw scan lines written to archive files, by io: direct (O_DIRECT, past the page cache) or buffered.',
      ['io'],
      () => [
        { labels: { io: 'direct' }, value: s.storageDirectBytes },
        { labels: { io: 'buffered' }, value: s.storageBytes - s.storageDirectBytes },
      ],
    ),
    counter(
      'scanline_storage_failures_total',
      'Data loss: storage operations that failed, by operation: scan (raw archive or scan record; the scan is aborted) or report (a final results report not stored, served from memory until restart, or stored and its WAL sync failed).',
      ['operation'],
      () => [
        { labels: { operation: 'scan' }, value: s.storageFailures },
        { labels: { operation: 'report' }, value: results?.stats.storageFailures ?? 0 },
      ],
    ),
    gauge('scanline_storage_writable', '1 when the scan database answers (the /readyz storage check), else 0.', [], () => one(store.isWritable() ? 1 : 0)),
    counter(
      'scanline_storage_deferred_commits_total',
      "Scan database commits made without a sync on the event loop (a scan's record at start and end, results, embeddings, seals), made durable by a WAL sync on the thread pool.",
      [],
      () => one(store.walSyncStats.deferredCommits),
    ),
    histogram(
      'scanline_storage_wal_sync_seconds',
      "Per fdatasync of the scan database's WAL on the thread pool, covering every deferred commit made before it began.",
      [],
      () => [{ labels: {}, counts: store.walSyncStats.syncSeconds }],
    ),
    counter(
      'scanline_storage_wal_sync_failures_total',
      "fdatasyncs of the scan database's WAL that failed (the disk reported an error: the commits they covered are not known to be durable, and scanline_storage_writable is 0 until the gateway is restarted).",
      [],
      () => one(store.walSyncStats.failures),
    ),
    histogram(
      'scanline_storage_checkpoint_seconds',
      "Per checkpoint of the scan database's WAL that found frames to copy, on its worker thread (storage.checkpointIntervalMs), seconds.",
      [],
      () => {
        const c = store.checkpointStats;
        return c ? [{ labels: {}, counts: c.seconds }] : [];
      },
    ),
    counter(
      'scanline_storage_checkpoint_failures_total',
      'WAL checkpoints that failed on the worker thread (a full disk; tried again a tick later), and a worker that could not open the database or died (SQLite then checkpoints on the event loop again, until the gateway is restarted).',
      [],
      () => one(store.checkpointStats?.failures ?? 0),
    ),
  ];
}

function retentionMetrics(r: NonNullable<GatewayMetricsOptions['retention']>): Array<CollectedMetric | CollectedHistogram> {
  return [
    counter('scanline_retention_runs_total', 'Runs of the retention policy in the background (retention.intervalMinutes).', [], () => one(r().runs)),
    counter('scanline_retention_deleted_scans_total', 'Scans the retention policy deleted (each audited as retention.delete).', [], () => one(r().deleted)),
    counter('scanline_retention_deleted_bytes_total', "Bytes of the deleted scans' files.", [], () => one(r().bytes)),
    counter('scanline_retention_failures_total', 'Scans the retention policy could not delete, and runs that failed.', [], () => one(r().failures)),
  ];
}

function importMetrics(stats: () => ImportStats): Array<CollectedMetric | CollectedHistogram> {
  return [
    counter(
      'scanline_imports_total',
      'Imports of DICOS images by outcome: ok (a scan was made), refused (bad files or set; kept in quarantine), failed (the gateway could not take it, e.g. storage full).',
      ['outcome'],
      () => (['ok', 'refused', 'failed'] as const).map((outcome) => ({ labels: { outcome }, value: stats().outcomes.get(outcome) ?? 0 })),
    ),
    gauge('scanline_imports_in_progress', 'Imports being decoded and fed to the pipeline now (import.maxConcurrent at most).', [], () =>
      one(stats().inProgress),
    ),
    gauge('scanline_imports_queued', 'Imports waiting for a free slot (import.maxQueued at most).', [], () => one(stats().queued)),
    counter('scanline_import_lines_total', 'Lines of imported images fed to the pipeline.', [], () => one(stats().linesImported)),
    counter('scanline_import_quarantined_files_total', 'Refused files kept in the quarantine folder with their reason.', [], () =>
      one(stats().quarantinedFiles),
    ),
    counter('scanline_import_quarantine_dropped_files_total', 'Refused files not kept because the quarantine was full (import.quarantineMaxBytes).', [], () =>
      one(stats().quarantineDropped),
    ),
    gauge('scanline_import_quarantine_bytes', 'Bytes in the quarantine folder (counted at start, then grown by what is kept).', [], () =>
      one(stats().quarantineBytes),
    ),
  ];
}

function pushMetrics(read: NonNullable<GatewayMetricsOptions['push']>): Array<CollectedMetric | CollectedHistogram> {
  const per = (pick: (destination: string, r: ReturnType<typeof read>) => number) => () => {
    const r = read();
    return r.destinations.map((destination) => ({ labels: { destination }, value: pick(destination, r) }));
  };
  return [
    gauge(
      'scanline_dicos_push_pending',
      'Object sets (a scan, or a decision) queued for a DICOS destination and not yet taken by it.',
      ['destination'],
      per((d, r) => r.pending.find((p) => p.destination === d)?.pending ?? 0),
    ),
    gauge(
      'scanline_dicos_push_oldest_pending_seconds',
      'Age of the oldest set still queued for a destination (0 when none): a destination down for hours shows here.',
      ['destination'],
      per((d, r) => {
        const oldest = r.pending.find((p) => p.destination === d)?.oldest;
        return oldest ? Math.max(0, (Date.now() - Date.parse(oldest)) / 1000) : 0;
      }),
    ),
    counter(
      'scanline_dicos_pushed_total',
      'Object sets a DICOS destination took (every C-STORE answered Success).',
      ['destination'],
      per((d, r) => r.stats.sent.get(d) ?? 0),
    ),
    counter(
      'scanline_dicos_pushed_objects_total',
      'DICOS objects (files) a destination took.',
      ['destination'],
      per((d, r) => r.stats.objectsSent.get(d) ?? 0),
    ),
    counter(
      'scanline_dicos_push_failures_total',
      'Push attempts that failed (network, association rejected, a C-STORE not Success); each is retried with backoff.',
      ['destination'],
      per((d, r) => r.stats.failures.get(d) ?? 0),
    ),
  ];
}

function dicosListenerMetrics(stats: () => DicosListenerStats): Array<CollectedMetric | CollectedHistogram> {
  const byKey = (m: ReadonlyMap<string, number>, label: string): Array<{ labels: Record<string, string>; value: number }> =>
    [...m].map(([k, value]) => ({ labels: { [label]: k }, value }));
  return [
    counter(
      'scanline_dicos_associations_total',
      'DICOS associations by outcome: accepted, or rejected-<why> (called-ae, calling-ae, address, portal-revoked) and too-many.',
      ['outcome'],
      () => byKey(stats().associations, 'outcome'),
    ),
    counter(
      'scanline_dicos_objects_total',
      'Objects received by C-STORE by outcome: imported, spooled (one energy waiting for the other), refused (a bad file), failed.',
      ['outcome'],
      () => byKey(stats().objects, 'outcome'),
    ),
    counter('scanline_dicos_echoes_total', 'C-ECHO requests answered.', [], () => one(stats().echoes)),
    gauge('scanline_dicos_associations_open', 'DICOS connections open now (dicos.listener.maxAssociations at most).', [], () => one(stats().open)),
    gauge('scanline_dicos_waiting_energies', 'Energies of dual-energy inspections spooled, waiting for the other energy.', [], () => one(stats().waiting)),
  ];
}

function diskMetrics(disk: NonNullable<GatewayMetricsOptions['disk']>): Array<CollectedMetric | CollectedHistogram> {
  return [
    gauge('scanline_storage_free_bytes', "Bytes free for the gateway on the data directory's disk (statfs, read every storage.diskCheckIntervalMs).", [], () =>
      one(disk().free),
    ),
    gauge('scanline_storage_size_bytes', "Size of the data directory's filesystem.", [], () => one(disk().total)),
    gauge('scanline_storage_min_free_bytes', 'storage.minFreeBytes: below this much free space new scans are refused.', [], () => one(disk().minFree)),
    gauge(
      'scanline_storage_used_bytes',
      "The gateway's own files in the data directory (database, scans, reserve): measured once at start, then grown by the raw lines written. Absent while measured.",
      [],
      () => {
        const used = disk().used;
        return used === null ? [] : one(used);
      },
    ),
    gauge('scanline_storage_reserve_bytes', 'Space reserve held for decisions when the disk fills (storage.reserveBytes); 0 once given up.', [], () =>
      one(disk().reserve),
    ),
    gauge(
      'scanline_storage_pending_records',
      'Ended scans whose final record could not be written (a full disk, the database locked by another process; shown as ended meanwhile): their lines and journals are durable; the record is written at once when the disk is back above storage.minFreeBytes, else tried every 30 s (or at the stop; else the next start ends them from their journals).',
      [],
      () => one(disk().pendingRecords),
    ),
    gauge(
      'scanline_storage_pending_seals',
      'Seals of completed scans a full disk refused (they never take the space reserve), kept with their digests: written when the pending records are (or made by the next start).',
      [],
      () => one(disk().pendingSeals),
    ),
    gauge(
      'scanline_storage_pending_reports',
      'Final results reports and embeddings (counted apart) the store refused, a full disk most likely: reports served from memory, both written once the disk has room and tried once more at a stop (a report still lost then leaves its scan in progress, scored again at the next start; embeddings are lost).',
      [],
      () => one(disk().pendingReports),
    ),
  ];
}

function operatorMetrics(operator: OperatorMetrics): Array<CollectedMetric | CollectedHistogram> {
  return [
    histogram(
      'scanline_line_to_screen_seconds',
      'A line received from the portal → the newest message showing it (suggestion or alert update) accepted by an operator socket, by portal ("(unknown)" when the hub did not say).',
      ['portal'],
      () => [...operator.lineToScreen].map(([portal, counts]) => ({ labels: { portal }, counts })),
    ),
    gauge('scanline_operator_subscribers', 'Operator screens connected to the live feed.', [], () => one(operator.stats().subscribers)),
    counter(
      'scanline_operator_strips_coalesced_total',
      'Preview strips not sent to a screen that was behind; a later snapshot replaced them (the screen catches up, nothing is lost).',
      [],
      () => one(operator.stats().stripsCoalesced),
    ),
    gauge('scanline_operator_buffered_bytes', 'Bytes queued towards operator sockets and not yet sent.', [], () => one(operator.stats().bytesBuffered)),
    counter(
      'scanline_operator_slow_disconnects_total',
      'Operator screens disconnected because they could not take even a control message (SCANLINE_ERR_OPERATOR_TOO_SLOW); the officer saw a stale view until reconnecting.',
      [],
      () => one(operator.stats().disconnectedSlow),
    ),
  ];
}
