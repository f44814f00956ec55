/**
 * Connects ingest to inference and keeps the machine results of every scan:
 *
 *   ingest `tiles` event ─► one copy per tile ─► inference.submit() to the goods and the threats model (live
 *   priority) ─► ScanResults (suggestions, alerts, declaration check) ─► listeners (operator screens) and, once
 *   the scan ended and every tile is answered, one stored report (SQLite `scan_results`).
 *
 * Contracts:
 * - Every tile the stitcher produces is submitted to every loaded model exactly once, and each submission ends in
 *   exactly one counted outcome (ok / rejected / expired / failed), per scan (report `algorithms[].tiles`) and in
 *   total (stats). A tile whose scan already ended is still counted: a report is final only when nothing is pending.
 * - Listeners run synchronously on the gateway thread; a throwing listener is logged and skipped.
 * - Reports of live scans are served from memory; once final they are stored and dropped from memory.
 */
import { performance } from 'node:perf_hooks';
import type { ScanlineError } from '../errors/index.js';
import type { Inference, ModelManifest } from '../inference/index.js';
import { createHistogram, observe, type HistogramCounts } from '../inference/index.js';
import type { ActiveScan, IngestListeners } from '../ingest/index.js';
import type { Logger } from '../log/index.js';
import type { TileInfo } from '../stitch/index.js';
import type { ScanStore } from '../storage/index.js';
import type { DeclarationCheck } from './declaration-check.js';
import type { SuggestionSegment } from './goods-suggestions.js';
import { ScanResults, type ScanResultsReport, type TileOutcome } from './scan-results.js';
import type { ThreatAlert } from './threat-alerts.js';

/** Upper bounds of the line-to-result latency buckets, seconds. */
export const LINE_TO_RESULT_BUCKETS_SECONDS: readonly number[] = Object.freeze([
  0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
]);

export interface ResultsStats {
  /** Tiles received from the stitcher. */
  tilesProduced: number;
  /** Per model: tiles submitted and their outcomes. */
  models: Map<string, Record<TileOutcome | 'submitted', number>>;
  /** A tile's last line received → its result applied (per model result), seconds. */
  lineToResult: Map<string, HistogramCounts>;
  /** Alerts raised or changed (each change is one increment on operator screens). */
  alertUpdates: number;
  suggestionUpdates: number;
  reportsStored: number;
  storageFailures: number;
}

export interface ResultsListeners {
  /** The goods suggestions of a scan changed (new segment, new top-3, or finalised). */
  suggestions?(scanId: string, portalId: string, segments: SuggestionSegment[]): void;
  /** A threat alert was raised or changed (grew, joined another, new peak). */
  alert?(scanId: string, portalId: string, alert: ThreatAlert): void;
  /** The declaration check's status or its undeclared categories changed. */
  declaration?(scanId: string, portalId: string, check: DeclarationCheck): void;
  /** The report is final (scan ended, every tile answered); it has been stored (or storing failed: logged). */
  final?(report: ScanResultsReport): void;
}

export interface ResultsServiceOptions {
  inference: Inference;
  store: ScanStore;
  log: Logger;
  tile: { size: number; downsample: number; strideLines: number };
  machine: { version: string; machineId: string };
}

interface TileMeta {
  results: ScanResults;
  tile: { line: number; lines: number; pixel: number; pixels: number };
  /** performance.now() when the tile's last line arrived. */
  lastLineAt: number;
}

function outcomeOf(err: ScanlineError): Exclude<TileOutcome, 'ok'> {
  switch (err.code) {
    case 'SCANLINE_ERR_INFER_QUEUE_FULL':
    case 'SCANLINE_ERR_INFER_SHED':
    case 'SCANLINE_ERR_INFER_CLOSED':
    case 'SCANLINE_ERR_INFER_UNKNOWN_MODEL':
    case 'SCANLINE_ERR_INFER_BAD_TILE':
      return 'rejected';
    case 'SCANLINE_ERR_INFER_DEADLINE':
      return 'expired';
    default:
      return 'failed';
  }
}

export class ResultsService {
  readonly stats: ResultsStats;
  private readonly live = new Map<string, ScanResults>();
  /** Final reports the store refused (logged); served from here until the process ends. */
  private readonly unstored = new Map<string, ScanResultsReport>();
  private readonly listeners: ResultsListeners[] = [];
  private readonly goodsModel: Readonly<ModelManifest> | undefined;
  private readonly threatsModel: Readonly<ModelManifest> | undefined;
  private readonly goodsLogits: string | undefined;
  private readonly threatLogits: string | undefined;
  private readonly idle = new Set<() => void>();

  constructor(private readonly o: ResultsServiceOptions) {
    this.goodsModel = o.inference.modelFor('goods');
    this.threatsModel = o.inference.modelFor('threats');
    this.goodsLogits = this.goodsModel?.outputs.find((x) => x.meaning === 'class_logits')?.name;
    this.threatLogits = this.threatsModel?.outputs.find((x) => x.meaning === 'threat_heatmap_logits')?.name;
    const names = [this.goodsModel, this.threatsModel].filter((m) => m !== undefined).map((m) => m.name);
    this.stats = {
      tilesProduced: 0,
      models: new Map(names.map((n) => [n, { submitted: 0, ok: 0, rejected: 0, expired: 0, failed: 0 }])),
      lineToResult: new Map(names.map((n) => [n, createHistogram(LINE_TO_RESULT_BUCKETS_SECONDS)])),
      alertUpdates: 0,
      suggestionUpdates: 0,
      reportsStored: 0,
      storageFailures: 0,
    };
  }

  /** The models results come from (undefined when not loaded). */
  get models(): { goods: Readonly<ModelManifest> | undefined; threats: Readonly<ModelManifest> | undefined } {
    return { goods: this.goodsModel, threats: this.threatsModel };
  }

  addListener(listener: ResultsListeners): () => void {
    this.listeners.push(listener);
    return () => {
      const i = this.listeners.indexOf(listener);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /** The ingest listener that feeds this service; add it to the IngestService. */
  ingestListener(): IngestListeners {
    return {
      scanStarted: (scan) => this.onStarted(scan),
      tiles: (scan, tiles, buffer, tileFloats) => this.onTiles(scan, tiles, buffer, tileFloats),
      scanCompleted: (scan) => this.onEnded(scan, 'completed'),
      scanAborted: (scan) => this.onEnded(scan, 'aborted'),
    };
  }

  /** The current report of a scan: live from memory, else the stored one; undefined when there is none. */
  report(scanId: string): ScanResultsReport | undefined {
    const live = this.live.get(scanId);
    if (live) return live.report();
    const kept = this.unstored.get(scanId);
    if (kept) return kept;
    return this.o.store.getResults(scanId) as ScanResultsReport | undefined;
  }

  /** Scans whose results are still open (scan running or tiles pending). */
  openScans(): number {
    return this.live.size;
  }

  /** Resolves when every open scan's results are final, or after timeoutMs. */
  async drain(timeoutMs: number): Promise<void> {
    if (this.live.size === 0) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.idle.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.idle.add(done);
    });
  }

  private onStarted(scan: ActiveScan): void {
    if (this.live.has(scan.scanId)) return; // a resumed scan keeps its results
    this.live.set(
      scan.scanId,
      new ScanResults({
        scanId: scan.scanId,
        portalId: scan.portalId,
        pixels: scan.detector.pixels,
        declaredHsCodes: scan.declaration?.hsCodes ?? null,
        startedAt: scan.startedAt,
        goodsModel: this.goodsModel,
        threatsModel: this.threatsModel,
        tile: this.o.tile,
        machine: this.o.machine,
      }),
    );
  }

  private onTiles(scan: ActiveScan, tiles: TileInfo[], buffer: Float32Array, tileFloats: number): void {
    const results = this.live.get(scan.scanId);
    if (!results) return;
    results.setLines(scan.lines);
    for (const info of tiles) {
      this.stats.tilesProduced++;
      results.tileProduced();
      // One copy shared by both models: the batcher only reads it (into its own batch buffer).
      const data = buffer.slice(info.slot * tileFloats, (info.slot + 1) * tileFloats);
      const tile = { line: info.line, lines: info.lines, pixel: info.pixel, pixels: info.pixels };
      const meta: TileMeta = { results, tile, lastLineAt: scan.lineReceivedAt(info.line + info.lines - 1) };
      if (this.goodsModel) this.submit(this.goodsModel, scan, data, meta);
      if (this.threatsModel) this.submit(this.threatsModel, scan, data, meta);
    }
  }

  private submit(model: Readonly<ModelManifest>, scan: ActiveScan, data: Float32Array, meta: TileMeta): void {
    const name = model.name;
    const counters = this.stats.models.get(name) as Record<TileOutcome | 'submitted', number>;
    counters.submitted++;
    meta.results.submitted(name);
    this.o.inference.submit({ model: name, scanId: scan.scanId, portalId: scan.portalId, data, priority: 'live' }).then(
      (r) => {
        counters.ok++;
        const now = performance.now();
        if (Number.isFinite(meta.lastLineAt)) observe(this.stats.lineToResult.get(name) as HistogramCounts, (now - meta.lastLineAt) / 1000);
        const s = this.o.inference.status().models[name];
        meta.results.servedBy(name, s?.provider ?? null, s?.precision ?? null);
        if (model.task === 'goods') {
          const change = meta.results.addGoods(meta.tile, r.outputs[this.goodsLogits as string]);
          if (change.suggestions) this.emitSuggestions(meta.results);
          if (change.declaration) this.emitDeclaration(meta.results);
        } else {
          const change = meta.results.addThreats(meta.tile, r.outputs[this.threatLogits as string]);
          for (const a of change.alerts) this.emitAlert(meta.results, a);
        }
        this.maybeFinal(meta.results);
      },
      (err: ScanlineError) => {
        const outcome = outcomeOf(err);
        counters[outcome]++;
        meta.results.failed(name, outcome);
        this.o.log.debug({ scanId: scan.scanId, model: name, code: err.code }, 'tile not scored');
        this.maybeFinal(meta.results);
      },
    );
  }

  private onEnded(scan: ActiveScan, state: 'completed' | 'aborted'): void {
    const results = this.live.get(scan.scanId);
    if (!results) return;
    const change = results.scanEnded(state, scan.lines);
    if (change.suggestions) this.emitSuggestions(results);
    if (change.declaration) this.emitDeclaration(results);
    this.maybeFinal(results);
  }

  private maybeFinal(results: ScanResults): void {
    if (!results.isFinal() || !this.live.has(results.scanId)) return;
    const report = results.report();
    this.live.delete(results.scanId);
    try {
      this.o.store.putResults(results.scanId, report.alarmDecision, report);
      this.stats.reportsStored++;
    } catch (err) {
      this.stats.storageFailures++;
      this.unstored.set(results.scanId, report);
      this.o.log.error({ err, scanId: results.scanId }, 'storing the scan results failed; they are kept in memory');
    }
    this.o.log.info(
      { scanId: results.scanId, decision: report.alarmDecision, alerts: report.threats.length, segments: report.goods.segments.length, declaration: report.goods.declaration.status },
      'scan results final',
    );
    this.emit((l) => l.final?.(report));
    if (this.live.size === 0) for (const done of [...this.idle]) done();
  }

  private emitSuggestions(results: ScanResults): void {
    this.stats.suggestionUpdates++;
    const segments = results.segments();
    this.emit((l) => l.suggestions?.(results.scanId, results.portalId, segments));
  }

  private emitDeclaration(results: ScanResults): void {
    const check = results.declaration();
    this.emit((l) => l.declaration?.(results.scanId, results.portalId, check));
  }

  private emitAlert(results: ScanResults, alert: ThreatAlert): void {
    this.stats.alertUpdates++;
    this.emit((l) => l.alert?.(results.scanId, results.portalId, alert));
  }

  private emit(fn: (l: ResultsListeners) => void): void {
    for (const l of this.listeners) {
      try {
        fn(l);
      } catch (err) {
        this.o.log.error({ err }, 'results listener failed');
      }
    }
  }
}
