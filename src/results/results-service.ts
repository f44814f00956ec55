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
import type { Inference, ModelManifest, TileResult } from '../inference/index.js';
import type { ScanView, IngestListeners } from '../ingest/index.js';
import { createHistogram, type HistogramCounts, observe, portalEntry } from '../metrics/index.js';
import type { Logger } from '../log/index.js';
import type { TileInfo } from '../stitch/index.js';
import { isDiskFull, type ScanStore } from '../storage/index.js';
import type { DeclarationCheck } from '../protocol/index.js';
import type { EnrolmentRequest } from './enrolment.js';
import type { SuggestionSegment } from '../protocol/index.js';
import { ScanlineError } from '../errors/index.js';
import { ReferenceLibrary, prototypeOf, type ReferenceCategory, type ReferenceSource } from './reference-library.js';
import { type DistributionChange, ScanResults } from './scan-results.js';
import type { ScanResultsReport, TileOutcome } from '../protocol/index.js';
import type { ThreatAlert, TriageLevel } from '../protocol/index.js';
import { IMAGE_FEATURE_COUNT, OodModel, tileImageFeatures } from '../opinion/index.js';

/** Upper bounds of the line-to-result latency buckets, seconds. */
export const LINE_TO_RESULT_BUCKETS_SECONDS: readonly number[] = Object.freeze([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);

export interface ResultsStats {
  /** Tiles received from the stitcher. */
  tilesProduced: number;
  /** Per model: tiles submitted and their outcomes. */
  models: Map<string, Record<TileOutcome | 'submitted', number>>;
  /**
   * A tile's last line received → its result applied (per model result), seconds; by model, then by portal (at most
   * portalLabelLimit ids, then OTHER_PORTALS).
   */
  lineToResult: Map<string, Map<string, HistogramCounts>>;
  /** Alerts raised or changed (each change is one increment on operator screens). */
  alertUpdates: number;
  /** Out-of-distribution changes sent to screens: a scan crossed the line, or its hints changed while out. */
  distributionUpdates: number;
  suggestionUpdates: number;
  reportsStored: number;
  /** Scans whose scoring a stop cut short: their report stays in progress for the next start (stopScoring). */
  reportsCutShort: number;
  storageFailures: number;
  /**
   * Per portal (bounded like lineToResult): tiles scored for out-of-distribution and how many were out; the drift
   * of a scanner shows as a growing share (Prometheus alert ScanlineScannerDrift).
   */
  opinion: Map<string, { tiles: number; outOfDistribution: number }>;
  /** Final reports by portal and triage level, and by portal those out of distribution. */
  triage: Map<string, Record<TriageLevel, number> & { outOfDistributionScans: number }>;
}

export interface ResultsListeners {
  /**
   * The goods suggestions of a scan changed (new segment, new top-3, or finalised). `lastLineAt`: performance.now()
   * (ms) when the last line of the earliest tile folded into this change was received (NaN when none was, e.g. at
   * scan end), for line-to-screen latency.
   */
  suggestions?(scanId: string, portalId: string, segments: SuggestionSegment[], lastLineAt: number): void;
  /**
   * A threat alert was raised or changed (grew, joined another, new peak). `lastLineAt`: performance.now() (ms) when
   * the last line of the tile whose result changed it was received.
   */
  alert?(scanId: string, portalId: string, alert: ThreatAlert, lastLineAt: number): void;
  /**
   * The scan crossed the out-of-distribution line, or its hints changed while it is out (DistributionChange):
   * alerts sent earlier and now hints are withdrawn; back in distribution, alert() sends every alert again after it.
   */
  distribution?(scanId: string, portalId: string, change: DistributionChange): void;
  /** The declaration check's status or its undeclared categories changed. */
  declaration?(scanId: string, portalId: string, check: DeclarationCheck): void;
  /** The report is final (scan ended, every tile answered); it has been stored (or storing failed: logged). */
  final?(report: ScanResultsReport): void;
  /**
   * One model's result for one tile was applied. `lineToResultSeconds`: the tile's last line received → now, the
   * value `stats.lineToResult` buckets (NaN when unknown). Once per tile per model; for benchmarks and tracing.
   */
  tileResult?(result: TileResult, lineToResultSeconds: number): void;
}

export interface ResultsServiceOptions {
  inference: Inference;
  store: ScanStore;
  log: Logger;
  tile: { size: number; downsample: number; strideLines: number };
  machine: { version: string; machineId: string };
  /** Default cosine similarity a tile needs to match an enrolled reference (config results.referenceMinSimilarity). */
  referenceMinSimilarity: number;
  /** Triage: the lowest goods confidence of a GREEN scan (config results.triage.greenMinConfidence). */
  greenMinConfidence: number;
  /** Triage: the highest threat peak of a GREEN scan (config results.triage.greenMaxThreatPeak). */
  greenMaxThreatPeak: number;
  /** Attenuation clamp of the stitcher (stitch.attenuationMax), for the tile image statistics. */
  attenuationMax: number;
  /**
   * Distinct portal ids with their own line-to-result histograms (config metrics.portalLabelLimit); further portals
   * share OTHER_PORTALS, so memory and label sets stay bounded.
   */
  portalLabelLimit: number;
}

/** A tile joins a reference prototype only when the goods model gives goods (HS-coded labels) at least this probability (x1000). */
const ENROL_MIN_CARGO_PERMILLE = 500;
/** Tile copies kept for reuse at most (x 32 KiB for the demo models' tiles): more than ever in flight at 32 lanes. */
const MAX_POOLED_TILE_COPIES = 1024;

/**
 * The models that score scans of one energy count (a model reads as many channels as a tile has energies), with
 * the names of the outputs the results stage reads and the goods model's out-of-distribution statistics.
 */
interface ModelSet {
  goods: Readonly<ModelManifest> | undefined;
  threats: Readonly<ModelManifest> | undefined;
  goodsLogits: string | undefined;
  goodsEmbedding: string | undefined;
  threatLogits: string | undefined;
  ood: OodModel | undefined;
}

function modelSet(goods: Readonly<ModelManifest> | undefined, threats: Readonly<ModelManifest> | undefined): ModelSet {
  return {
    goods,
    threats,
    goodsLogits: goods?.outputs.find((x) => x.meaning === 'class_logits')?.name,
    goodsEmbedding: goods?.outputs.find((x) => x.meaning === 'embedding')?.name,
    threatLogits: threats?.outputs.find((x) => x.meaning === 'threat_heatmap_logits')?.name,
    ood: goods?.outOfDistribution ? new OodModel(goods.outOfDistribution) : undefined,
  };
}

interface TileMeta {
  results: ScanResults;
  /** The models scoring this tile's scan. */
  set: ModelSet;
  tile: { line: number; lines: number; pixel: number; pixels: number };
  /** performance.now() when the tile's last line arrived. */
  lastLineAt: number;
  /** Image statistics of the tile (src/opinion), when the goods model carries out-of-distribution statistics. */
  imageFeatures?: Float64Array;
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
  /**
   * Final reports the store refused (a full disk, a failing database; logged), served from here and written again by
   * retryUnstored (the gateway calls it once the disk has room, and once more at a stop). Lost at a stop all the
   * same, the scan keeps its in-progress report, and the next start scores it again.
   */
  private readonly unstored = new Map<string, ScanResultsReport>();
  /**
   * Embeddings the store refused, written again by retryUnstored after the reports (and used for enrolment meanwhile).
   * Lost at a stop once the report is stored: the scan is not scored again, and cannot serve as a reference sample.
   */
  private readonly unstoredEmbeddings = new Map<string, NonNullable<ReturnType<ScanResults['embeddings']>>>();
  private readonly listeners: ResultsListeners[] = [];
  private readonly goodsModel: Readonly<ModelManifest> | undefined;
  private readonly threatsModel: Readonly<ModelManifest> | undefined;
  /** Models by the energies of the scans they score (1, 2). */
  private readonly sets = new Map<number, ModelSet>();
  /** The model set of each live scan. */
  private readonly setOf = new Map<ScanResults, ModelSet>();
  /** Set by stopScoring. */
  private stopping = false;
  /** Enrolled reference categories; null without a goods model that has an embedding output. */
  private readonly references: ReferenceLibrary | null;
  private readonly idle = new Set<() => void>();
  /** Scans with goods results not yet folded into their segments; flushed once per macrotask (setImmediate). */
  private readonly goodsPending = new Set<ScanResults>();
  /** Per scan with goods results pending: performance.now() of the last line of the earliest pending tile. */
  private readonly goodsPendingSince = new Map<ScanResults, number>();
  private flushScheduled = false;
  /**
   * Tile copies whose submissions have all settled, for the next tiles. Why: every tile is copied out of the
   * stitcher's per-scan buffer (32 KiB; ~20 MB/s at 32 portals), and fresh ArrayBuffers at that rate make V8 run
   * frequent mark-compacts for external memory pressure, each a pause on the event loop
   * (bench/RESULTS.md, 'Buffer pools').
   */
  private readonly tileCopies: Float32Array[] = [];
  /** Provider and precision per model, read from inference.status() at most once a second (it builds a lot). */
  private readonly providers = new Map<string, { provider: string | null; precision: string | null; at: number }>();

  constructor(private readonly o: ResultsServiceOptions) {
    // Dual-energy models are the primary set (references, enrolment); a single-energy portal's scans get the models
    // that read one channel, or, where none is loaded, the primary set (which says it cannot read them).
    const dual = modelSet(o.inference.modelFor('goods', 2), o.inference.modelFor('threats', 2));
    this.sets.set(2, dual);
    const single = modelSet(o.inference.modelFor('goods', 1), o.inference.modelFor('threats', 1));
    this.sets.set(1, single.goods || single.threats ? single : dual);
    this.goodsModel = dual.goods;
    this.threatsModel = dual.threats;
    this.references = dual.goods && dual.goodsEmbedding ? new ReferenceLibrary(dual.goods.name, o.store.listReferences()) : null;
    const names = [
      ...new Set(
        [...this.sets.values()]
          .flatMap((m) => [m.goods, m.threats])
          .filter((m) => m !== undefined)
          .map((m) => m.name),
      ),
    ];
    this.stats = {
      tilesProduced: 0,
      models: new Map(names.map((n) => [n, { submitted: 0, ok: 0, rejected: 0, expired: 0, failed: 0 }])),
      lineToResult: new Map(names.map((n) => [n, new Map<string, HistogramCounts>()])),
      alertUpdates: 0,
      distributionUpdates: 0,
      suggestionUpdates: 0,
      reportsStored: 0,
      reportsCutShort: 0,
      storageFailures: 0,
      opinion: new Map(),
      triage: new Map(),
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

  /**
   * The gateway is stopping and inference closes next: a tile of a completed scan refused from now on because
   * inference closed (SCANLINE_ERR_INFER_CLOSED) does not make the scan's report final ("N of M tiles were not scored"
   * would be stored as the machine's opinion, never scored again, and a threat in those tiles never raised). The
   * report stays in progress (cutShort), and the next start scores the scan again from its journal.
   */
  stopScoring(): void {
    this.stopping = true;
  }

  /**
   * Whether the scan's results are still open (its tiles being scored: its stored report is in progress) or wait to
   * be stored (retryUnstored): retention keeps such a scan.
   */
  isScoring(scanId: string): boolean {
    return this.live.has(scanId) || this.unstored.has(scanId) || this.unstoredEmbeddings.has(scanId);
  }

  /** Final reports and embeddings the store refused, waiting for retryUnstored. */
  get unstoredCount(): number {
    return this.unstored.size + this.unstoredEmbeddings.size;
  }

  /**
   * Writes again the final reports, then the embeddings, the store refused (oldest first; stops at the first the
   * disk refuses again), each a deferred commit made durable by one WAL sync. Returns the scan ids whose report was
   * written. JS thread.
   */
  retryUnstored(): string[] {
    const retry = <T>(pending: Map<string, T>, write: (scanId: string, value: T) => void, what: string): string[] => {
      const written: string[] = [];
      for (const [scanId, value] of pending) {
        if (!this.o.store.hasScan(scanId)) {
          pending.delete(scanId); // deleted meanwhile (retention by hand): nothing to store
          continue;
        }
        try {
          write(scanId, value);
        } catch (err) {
          if (isDiskFull(err)) break;
          this.o.log.error({ err, scanId }, `storing the ${what} of a scan failed again; it is tried again later`);
          continue;
        }
        pending.delete(scanId);
        written.push(scanId);
      }
      return written;
    };
    const written = retry(this.unstored, (scanId, report) => this.o.store.putResults(scanId, report.alarmDecision, report), 'results');
    retry(this.unstoredEmbeddings, (scanId, embeddings) => this.o.store.putEmbeddings(scanId, embeddings), 'embeddings');
    if (written.length > 0) {
      this.stats.reportsStored += written.length;
      this.o.log.info({ scanIds: written }, 'scan results the store had refused are stored');
    }
    this.o.store.durable().catch((err: unknown) => {
      this.stats.storageFailures++;
      this.o.log.error({ err, scanIds: written }, 'making the stored scan results durable failed');
    });
    return written;
  }

  /** The current report of a scan: live from memory, else the stored one; undefined when there is none. */
  report(scanId: string): ScanResultsReport | undefined {
    const live = this.live.get(scanId);
    if (live) {
      if (live.hasGoodsPending) this.flushGoods(live);
      return live.report();
    }
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

  /** Enrolled reference categories (empty without a goods model with an embedding). */
  listReferences(): ReferenceCategory[] {
    return this.references?.list() ?? [];
  }

  /**
   * Enrols (or replaces) a reference category from regions of scans: the goods embeddings of the tiles whose centre
   * lies in a region are averaged into the prototype. Scans started afterwards match against it. Throws
   * SCANLINE_ERR_REFERENCE_UNAVAILABLE, _EXISTS (an id of the model's own labels), _NO_TILES, SCANLINE_ERR_SCAN_UNKNOWN,
   * SCANLINE_ERR_STORAGE_WRITE.
   */
  enrol(req: EnrolmentRequest, approval: { proposedBy: string | null; approvedBy: string | null } = { proposedBy: null, approvedBy: null }): ReferenceCategory {
    const category = { ...this.prepareReference(req), ...approval };
    this.o.store.putReference(category);
    (this.references as ReferenceLibrary).add(category);
    this.o.log.info(
      { id: category.id, samples: category.samples, regions: category.sources.length, sampleSimilarity: category.sampleSimilarity, ...approval },
      'reference category enrolled',
    );
    return category;
  }

  /** True when a reference category of this id is enrolled. */
  hasReference(id: string): boolean {
    return this.references?.get(id) !== undefined;
  }

  /**
   * The category an enrolment would make, computed and checked but not stored (enrol() stores it; a proposal is
   * checked with it). Throws as enrol() does.
   */
  prepareReference(req: EnrolmentRequest): ReferenceCategory {
    const library = this.references;
    const model = this.goodsModel;
    if (!library || !model) {
      throw new ScanlineError('SCANLINE_ERR_REFERENCE_UNAVAILABLE', 'no goods model with an embedding output is loaded');
    }
    if (model.labels.some((l) => l.id === req.id)) {
      throw new ScanlineError('SCANLINE_ERR_REFERENCE_EXISTS', `${req.id} is a label of ${model.name}; enrol the reference under another id`, { id: req.id });
    }
    const rows: Float32Array[] = [];
    const sources: ReferenceSource[] = [];
    let dim = 0;
    for (const region of req.samples) {
      if (!this.o.store.hasScan(region.scanId)) {
        throw new ScanlineError('SCANLINE_ERR_SCAN_UNKNOWN', `no scan ${region.scanId}`, { scanId: region.scanId });
      }
      const e = this.live.get(region.scanId)?.embeddings() ?? this.unstoredEmbeddings.get(region.scanId) ?? this.o.store.getEmbeddings(region.scanId);
      const source: ReferenceSource = {
        scanId: region.scanId,
        lineStart: region.lineStart,
        lineEnd: region.lineEnd,
        pixelStart: region.pixelStart ?? 0,
        pixelEnd: region.pixelEnd ?? Number.MAX_SAFE_INTEGER,
        tiles: 0,
      };
      if (e && e.model === model.name) {
        dim = e.dim;
        e.tiles.forEach(([line, lines, pixel, pixels, cargo], i) => {
          const cl = line + lines / 2;
          const cp = pixel + pixels / 2;
          if (cl < source.lineStart || cl >= source.lineEnd || cp < source.pixelStart || cp >= source.pixelEnd) return;
          // Tiles the model sees as mostly not goods (roof, chassis, air above the load) would blur the prototype.
          if (cargo < ENROL_MIN_CARGO_PERMILLE) return;
          rows.push(e.data.subarray(i * e.dim, (i + 1) * e.dim));
          source.tiles++;
        });
      }
      if (source.pixelEnd === Number.MAX_SAFE_INTEGER) source.pixelEnd = this.o.store.getScan(region.scanId)?.detector.pixels ?? 0;
      sources.push(source);
    }
    if (rows.length === 0) {
      throw new ScanlineError('SCANLINE_ERR_REFERENCE_NO_TILES', `no tile scored by ${model.name} as goods has its centre inside the given regions`, {
        id: req.id,
        regions: req.samples.length,
      });
    }
    const { prototype, min, mean } = prototypeOf(rows, dim);
    return {
      id: req.id,
      name: req.name,
      hsCodes: [...req.hsCodes],
      model: model.name,
      minSimilarity: req.minSimilarity ?? this.o.referenceMinSimilarity,
      prototype,
      samples: rows.length,
      sources,
      sampleSimilarity: { min, mean },
      createdAt: new Date().toISOString(),
      proposedBy: null,
      approvedBy: null,
    };
  }

  /** Deletes an enrolled reference; throws SCANLINE_ERR_REFERENCE_UNKNOWN. Scans already started keep using it. */
  removeReference(id: string): void {
    if (!this.references?.get(id)) throw new ScanlineError('SCANLINE_ERR_REFERENCE_UNKNOWN', `no reference category ${id}`, { id });
    this.o.store.deleteReference(id);
    this.references.remove(id);
    this.o.log.info({ id }, 'reference category deleted');
  }

  private onStarted(scan: ScanView): void {
    if (this.live.has(scan.scanId)) return; // a resumed scan keeps its results
    const set = this.sets.get(scan.detector.energies) ?? (this.sets.get(2) as ModelSet);
    // Reference categories belong to the primary goods model's embedding.
    const references = this.references && set.goods === this.goodsModel ? this.references : null;
    const results = new ScanResults({
      scanId: scan.scanId,
      portalId: scan.portalId,
      pixels: scan.detector.pixels,
      declaredHsCodes: scan.declaration?.hsCodes ?? null,
      startedAt: scan.startedAt,
      goodsModel: set.goods,
      threatsModel: set.threats,
      tile: this.o.tile,
      machine: this.o.machine,
      recovered: scan.recovered,
      energies: scan.detector.energies,
      greenMinConfidence: this.o.greenMinConfidence,
      greenMaxThreatPeak: this.o.greenMaxThreatPeak,
      ...(set.ood ? { ood: set.ood } : {}),
      ...(references ? { references: references.snapshot() } : {}),
    });
    this.live.set(scan.scanId, results);
    this.setOf.set(results, set);
    // An in-progress report is stored at once: if the gateway stops before the final one, the next start sees which
    // scans were left unscored (ScanStore.completedScansWithUnfinishedResults) and scores them again.
    try {
      const report = results.report();
      this.o.store.putResults(scan.scanId, report.alarmDecision, report);
    } catch (err) {
      this.stats.storageFailures++;
      this.o.log.error({ err, scanId: scan.scanId }, 'storing the in-progress results report failed');
    }
  }

  private onTiles(scan: ScanView, tiles: TileInfo[], buffer: Float32Array, tileFloats: number): void {
    const results = this.live.get(scan.scanId);
    if (!results) return;
    const set = this.setOf.get(results) as ModelSet;
    results.setLines(scan.lines);
    for (const info of tiles) {
      this.stats.tilesProduced++;
      results.tileProduced();
      // One copy shared by both models: the batcher only reads it (into its own batch buffer, at dispatch). It goes
      // back to the pool once both submissions settled.
      const data = this.takeTileCopy(tileFloats);
      data.set(buffer.subarray(info.slot * tileFloats, (info.slot + 1) * tileFloats));
      let holders = (set.goods ? 1 : 0) + (set.threats ? 1 : 0);
      const release = (): void => {
        if (--holders === 0) this.giveTileCopy(data);
      };
      const tile = { line: info.line, lines: info.lines, pixel: info.pixel, pixels: info.pixels };
      const meta: TileMeta = { results, set, tile, lastLineAt: scan.lineReceivedAt(info.line + info.lines - 1) };
      if (set.goods) this.submit(set.goods, scan, data, meta, release);
      if (set.threats) this.submit(set.threats, scan, data, meta, release);
    }
  }

  private takeTileCopy(floats: number): Float32Array {
    const pooled = this.tileCopies.pop();
    return pooled && pooled.length === floats ? pooled : new Float32Array(floats);
  }

  private giveTileCopy(data: Float32Array): void {
    if (this.tileCopies.length < MAX_POOLED_TILE_COPIES) this.tileCopies.push(data);
  }

  /** The line-to-result histogram of `model` for `portalId` (shared OTHER_PORTALS once portalLabelLimit ids have one). */
  private lineToResultOf(model: string, portalId: string): HistogramCounts {
    const byPortal = this.stats.lineToResult.get(model) as Map<string, HistogramCounts>;
    return portalEntry(byPortal, portalId, this.o.portalLabelLimit, () => createHistogram(LINE_TO_RESULT_BUCKETS_SECONDS));
  }

  /** `release` is called once the inference stage no longer reads `data` (the submission settled). */
  private submit(model: Readonly<ModelManifest>, scan: ScanView, data: Float32Array, meta: TileMeta, release: () => void): void {
    const name = model.name;
    const counters = this.stats.models.get(name) as Record<TileOutcome | 'submitted', number>;
    counters.submitted++;
    meta.results.submitted(name);
    this.o.inference.submit({ model: name, scanId: scan.scanId, portalId: scan.portalId, data, priority: 'live' }).then(
      (r) => {
        if (model.task === 'goods' && meta.set.ood) {
          // The tile's image statistics, read from the stitcher's own tile before the model's normalisation: by the
          // inference worker, off the event loop (createInference imageFeatures); here, on this thread, only when
          // the backend did not (a backend that normalises nothing, or one started without them). Before release:
          // `data` is still this tile.
          meta.imageFeatures =
            r.imageFeatures ?? tileImageFeatures(data, this.o.tile.size, scan.detector.energies, this.o.attenuationMax, new Float64Array(IMAGE_FEATURE_COUNT));
        }
        release();
        counters.ok++;
        // A scan whose scoring the stop cut short (cutShort) takes no more results: nothing is shown that is not stored.
        if (this.stopping && !this.live.has(scan.scanId)) return;
        const now = performance.now();
        const lineToResult = (now - meta.lastLineAt) / 1000;
        if (Number.isFinite(lineToResult)) observe(this.lineToResultOf(name, scan.portalId), lineToResult);
        const served = this.providerOf(name, now);
        meta.results.servedBy(name, served.provider, served.precision);
        if (model.task === 'goods') {
          // An out-of-distribution scan keeps its alerts off the screens: alerts sent before it turned out are
          // withdrawn (they are hints now); if more tiles bring it back in distribution, every alert it holds is
          // sent again, so none stays hidden (ScanResults.addGoods says which).
          const change = meta.results.addGoods(
            meta.tile,
            r.outputs[meta.set.goodsLogits as string],
            meta.set.goodsEmbedding ? r.outputs[meta.set.goodsEmbedding] : undefined,
            meta.imageFeatures,
          );
          if (change.outOfDistribution !== undefined) {
            const o = this.opinionOf(scan.portalId);
            o.tiles++;
            if (change.outOfDistribution) o.outOfDistribution++;
          }
          if (change.distribution) this.emitDistribution(meta.results, change.distribution, change.alerts.length);
          for (const a of change.alerts) this.emitAlert(meta.results, a, meta.lastLineAt);
          if (!this.goodsPendingSince.has(meta.results)) this.goodsPendingSince.set(meta.results, meta.lastLineAt);
          this.scheduleGoodsFlush(meta.results);
        } else {
          const change = meta.results.addThreats(meta.tile, r.outputs[meta.set.threatLogits as string]);
          if (change.distribution) this.emitDistribution(meta.results, change.distribution);
          for (const a of change.alerts) this.emitAlert(meta.results, a, meta.lastLineAt);
        }
        if (this.listeners.length > 0) this.emit((l) => l.tileResult?.(r, lineToResult));
        this.maybeFinal(meta.results);
      },
      (err: ScanlineError) => {
        release();
        const outcome = outcomeOf(err);
        counters[outcome]++;
        // A completed scan is scored again at the next start: its scoring is cut short. An aborted one is not (nothing
        // rescores it): its report goes final with the tiles not scored, as it always did.
        if (this.stopping && err.code === 'SCANLINE_ERR_INFER_CLOSED' && this.o.store.getScan(scan.scanId)?.state === 'completed') {
          this.cutShort(meta.results);
          return;
        }
        meta.results.failed(name, outcome);
        this.o.log.debug({ scanId: scan.scanId, model: name, code: err.code }, 'tile not scored');
        this.maybeFinal(meta.results);
      },
    );
  }

  private providerOf(model: string, now: number): { provider: string | null; precision: string | null } {
    let p = this.providers.get(model);
    if (!p || now - p.at > 1000) {
      const s = this.o.inference.status().models[model];
      p = { provider: s?.provider ?? null, precision: s?.precision ?? null, at: now };
      this.providers.set(model, p);
    }
    return p;
  }

  private scheduleGoodsFlush(results: ScanResults): void {
    this.goodsPending.add(results);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      for (const r of [...this.goodsPending]) this.flushGoods(r);
    });
  }

  /** Folds a scan's pending goods results into its segments and tells listeners what changed. */
  private flushGoods(results: ScanResults): void {
    this.goodsPending.delete(results);
    const since = this.goodsPendingSince.get(results) ?? Number.NaN;
    this.goodsPendingSince.delete(results);
    const change = results.refreshGoods();
    if (change.suggestions) this.emitSuggestions(results, since);
    if (change.declaration) this.emitDeclaration(results);
  }

  private onEnded(scan: ScanView, state: 'completed' | 'aborted'): void {
    const results = this.live.get(scan.scanId);
    if (!results) return;
    this.flushGoods(results);
    const change = results.scanEnded(state, scan.lines);
    if (change.suggestions) this.emitSuggestions(results, Number.NaN);
    if (change.declaration) this.emitDeclaration(results);
    this.maybeFinal(results);
  }

  /** The opinion counters of `portalId` (shared OTHER_PORTALS once portalLabelLimit ids have some). */
  private opinionOf(portalId: string): { tiles: number; outOfDistribution: number } {
    return portalEntry(this.stats.opinion, portalId, this.o.portalLabelLimit, () => ({ tiles: 0, outOfDistribution: 0 }));
  }

  /**
   * A stop cut the scoring of a completed scan short (stopScoring): no final report. The report as it stands (still in
   * progress, with what was raised so far) replaces the one stored at its start, or stands in for it if that write
   * had failed, so that the next start finds it to score again.
   */
  private cutShort(results: ScanResults): void {
    if (!this.live.has(results.scanId)) return;
    this.flushGoods(results);
    this.live.delete(results.scanId);
    this.setOf.delete(results);
    this.stats.reportsCutShort++;
    try {
      const report = results.report();
      this.o.store.putResults(results.scanId, report.alarmDecision, report);
    } catch (err) {
      this.o.log.error({ err, scanId: results.scanId }, 'storing the report of a scan cut short by the stop failed');
    }
    this.o.log.warn(
      { scanId: results.scanId },
      'the stop cut the scoring of this scan short: its report stays in progress, and the next start scores it again (a completed scan)',
    );
    if (this.live.size === 0) for (const done of [...this.idle]) done();
  }

  private maybeFinal(results: ScanResults): void {
    if (!results.isFinal() || !this.live.has(results.scanId)) return;
    this.flushGoods(results);
    const report = results.report();
    const triage = portalEntry(this.stats.triage, results.portalId, this.o.portalLabelLimit, () => ({ GREEN: 0, AMBER: 0, RED: 0, outOfDistributionScans: 0 }));
    if (report.triage) triage[report.triage.level]++;
    if (report.outOfDistribution?.scan) triage.outOfDistributionScans++;
    this.live.delete(results.scanId);
    this.setOf.delete(results);
    // The report first (what officers, retention and DICOS push read), then the embeddings. One the store refuses
    // is kept in memory and written again once the disk has room (retryUnstored).
    try {
      this.o.store.putResults(results.scanId, report.alarmDecision, report);
      this.stats.reportsStored++;
    } catch (err) {
      this.stats.storageFailures++;
      this.unstored.set(results.scanId, report);
      this.o.log.error({ err, scanId: results.scanId }, 'storing the scan results failed; they are kept in memory and stored once the disk has room');
    }
    const embeddings = results.embeddings();
    if (embeddings) {
      try {
        this.o.store.putEmbeddings(results.scanId, embeddings);
      } catch (err) {
        this.stats.storageFailures++;
        this.unstoredEmbeddings.set(results.scanId, embeddings);
        this.o.log.error({ err, scanId: results.scanId }, 'storing the scan embeddings failed; they are kept in memory');
      }
    }
    // Deferred commits: synced off the JS thread, not waited for. Until they are, a power cut leaves the scan with
    // its in-progress report (made durable before the scan's first ack), and the next start scores it again.
    this.o.store.durable().catch((err: unknown) => {
      this.stats.storageFailures++;
      this.o.log.error({ err, scanId: results.scanId }, 'making the stored scan results durable failed');
    });
    this.o.log.info(
      {
        scanId: results.scanId,
        decision: report.alarmDecision,
        alerts: report.threats.length,
        hints: report.hints?.length ?? 0,
        triage: report.triage?.level,
        segments: report.goods.segments.length,
        declaration: report.goods.declaration.status,
      },
      'scan results final',
    );
    this.emit((l) => l.final?.(report));
    if (this.live.size === 0) for (const done of [...this.idle]) done();
  }

  private emitSuggestions(results: ScanResults, lastLineAt: number): void {
    this.stats.suggestionUpdates++;
    const segments = results.segments();
    this.emit((l) => l.suggestions?.(results.scanId, results.portalId, segments, lastLineAt));
  }

  private emitDeclaration(results: ScanResults): void {
    const check = results.declaration();
    this.emit((l) => l.declaration?.(results.scanId, results.portalId, check));
  }

  private emitAlert(results: ScanResults, alert: ThreatAlert, lastLineAt: number): void {
    this.stats.alertUpdates++;
    this.emit((l) => l.alert?.(results.scanId, results.portalId, alert, lastLineAt));
  }

  /** `resent`: alerts sent again right after (the scan is back in distribution). */
  private emitDistribution(results: ScanResults, change: DistributionChange, resent = 0): void {
    this.stats.distributionUpdates++;
    const withdrawn = change.withdrawnAlertIds.length;
    // A crossing that moved alerts on screens is news for the log; one early in a scan with nothing raised is not.
    if (withdrawn > 0 || resent > 0) {
      this.o.log.info(
        { scanId: results.scanId, portalId: results.portalId, outOfDistribution: change.outOfDistribution, withdrawn, resent },
        change.outOfDistribution
          ? "alerts withdrawn: the scan is unlike the model's training data"
          : 'the scan is back in distribution: its hints are alerts again',
      );
    }
    this.emit((l) => l.distribution?.(results.scanId, results.portalId, change));
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
