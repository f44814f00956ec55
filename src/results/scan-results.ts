/**
 * The machine results of one scan as they grow: goods suggestions, threat alerts, the declaration check and the
 * fate of every tile sent to a model, rendered as a report shaped like a DICOS Threat Detection Report (TDR):
 * report type MACHINE, machine origin, the algorithms with their versions, an ALARM / CLEAR / UNKNOWN decision,
 * one assessed object per finding (category, probability, box), and processing time.
 *
 * Decision rule (an officer always makes the final decision; this is the machine's advice). CLEAR needs evidence;
 * what the machine did not understand it says it does not know:
 * - ALARM as soon as one threat alert or an undeclared-goods finding exists (also mid-scan);
 * - CLEAR only for a completed scan whose every tile was scored by every model, that raised nothing, whose cargo
 *   was classified with confidence over the cargo area, whose declared goods were all seen (or whose empty
 *   declaration matches an empty bay), and whose image is like the models' training data;
 * - UNKNOWN ("needs review") otherwise, with every missing piece of evidence listed (decisionReasons).
 * A scan unlike the training data (src/opinion/ood.ts) turns its threat alerts into hints: shown, never an ALARM.
 * Probabilities are calibrated per the manifests (src/opinion/calibration.ts). Triage: GREEN / AMBER / RED.
 */
import type { ModelManifest } from '../inference/index.js';
import { alertCalibration, inverseTemperature, maxProbability, segmentCalibration, type OodModel } from '../opinion/index.js';
import type { AlarmDecision, AlgorithmInfo, AssessedObject, ScanResultsReport, TileCounts, TileOutcome } from '../protocol/index.js';
import { checkDeclaration } from './declaration-check.js';
import type { DeclarationCheck } from '../protocol/index.js';
import { GoodsSuggestions, softmaxInto } from './goods-suggestions.js';
import type { SuggestionSegment } from '../protocol/index.js';
import { normalizeL2, type ReferenceSnapshot } from './reference-library.js';
import { ThreatAlerts } from './threat-alerts.js';
import type { ThreatAlert } from '../protocol/index.js';

export interface ScanResultsInit {
  scanId: string;
  portalId: string;
  /** Detector pixels of the scan. */
  pixels: number;
  declaredHsCodes: string[] | null;
  startedAt: Date;
  goodsModel: Readonly<ModelManifest> | undefined;
  threatsModel: Readonly<ModelManifest> | undefined;
  /** The gateway's stitch.tile: size x downsample raw samples per tile, a column every strideLines. */
  tile: { size: number; downsample: number; strideLines: number };
  machine: { version: string; machineId: string };
  /** Enrolled reference categories this scan matches goods tiles against (taken at scan start). */
  references?: ReferenceSnapshot;
  /** The scan was rebuilt after a crash (ScanView.recovered). */
  recovered?: { at: Date; lines: number } | null;
  /** Energies of the scan's detector (1 or 2); default 2. */
  energies?: number;
  /** Out-of-distribution statistics of the goods model (absent: not scored). */
  ood?: OodModel;
  /** Triage: the lowest goods confidence of a GREEN scan (results.triage.greenMinConfidence). Default 0.98. */
  greenMinConfidence?: number;
  /** Triage: the highest threat peak of a GREEN scan (results.triage.greenMaxThreatPeak). Default 0.5. */
  greenMaxThreatPeak?: number;
}

/** Cargo lines the goods suggestions may leave unclassified before CLEAR needs a review: this share of the cargo. */
export const UNCLASSIFIED_CARGO_SHARE = 0.05;

/** What one call changed, for pushing increments to operator screens. */
export interface ResultsChange {
  suggestions: boolean;
  alerts: ThreatAlert[];
  declaration: boolean;
}

/**
 * The scan crossed the out-of-distribution line, or its hints changed while it is out: what screens must apply.
 * Out: `withdrawnAlertIds` are alerts sent earlier, no longer alerts; `hints` is every threat box of the scan.
 * Back in: no hints; the alerts follow in ResultsChange.alerts (sent again, so none stays hidden).
 */
export interface DistributionChange {
  outOfDistribution: boolean;
  withdrawnAlertIds: string[];
  hints: ThreatAlert[];
}

/** What a tile changed, beyond ResultsChange. */
export interface TileChange extends ResultsChange {
  /** Goods tiles: whether this tile was out of distribution (absent: the scan has no statistics). */
  outOfDistribution?: boolean;
  distribution?: DistributionChange;
}

const NO_CHANGE: ResultsChange = Object.freeze({ suggestions: false, alerts: [], declaration: false }) as ResultsChange;

function counts(): TileCounts {
  return { submitted: 0, ok: 0, rejected: 0, expired: 0, failed: 0, pending: 0 };
}

export class ScanResults {
  readonly scanId: string;
  readonly portalId: string;
  private readonly goods: GoodsSuggestions | null;
  private readonly threats: ThreatAlerts | null;
  private readonly goodsModel: Readonly<ModelManifest> | undefined;
  private readonly threatsModel: Readonly<ModelManifest> | undefined;
  private readonly tiles = new Map<string, TileCounts>();
  private readonly providers = new Map<string, { provider: string | null; precision: string | null }>();
  /** Model labels followed by the snapshot's reference categories. */
  private readonly labelCount: number;
  private readonly modelLabelCount: number;
  private readonly references: ReferenceSnapshot | undefined;
  /**
   * Normalised goods embeddings of the scored tiles, where those tiles are and the model's goods probability of each
   * (x1000: labels with an HS code), for enrolment.
   */
  private readonly embeddingRows: Float32Array[] = [];
  private readonly embeddingTiles: Array<[number, number, number, number, number]> = [];
  private readonly heatmapSize: [number, number];
  private readonly startedAt: Date;
  private scanState: ScanResultsReport['scanState'] = 'receiving';
  private lines = 0;
  private tilesProduced = 0;
  private segmentsKey = '';
  private segmentsCache: SuggestionSegment[] = [];
  private declarationKey = '';
  private declarationStatus: DeclarationCheck['status'] = 'unknown';
  private goodsDirty = false;
  private decision: { value: AlarmDecision; since: Date } = { value: 'UNKNOWN', since: new Date() };
  private updatedAt: Date;
  private finalisedAt: Date | null = null;
  private readonly goodsInverseTemperature: number;
  private readonly scaledLogits: Float32Array;
  private readonly ood: OodModel | undefined;
  private oodTiles = 0;
  private oodOut = 0;
  private oodMax = 0;
  private readonly greenMinConfidence: number;
  private readonly greenMaxThreatPeak: number;

  constructor(private readonly init: ScanResultsInit) {
    this.scanId = init.scanId;
    this.portalId = init.portalId;
    this.startedAt = init.startedAt;
    this.updatedAt = init.startedAt;
    this.goodsModel = init.goodsModel;
    this.threatsModel = init.threatsModel;
    const g = init.goodsModel;
    this.references = init.references && init.references.size > 0 ? init.references : undefined;
    const labels = g ? [...g.labels, ...(this.references?.labels() ?? [])] : [];
    this.goods = g
      ? new GoodsSuggestions(labels, init.tile.strideLines, g.thresholds.suggest ?? 0.5, maxProbability(g.calibration), segmentCalibration(g.calibration))
      : null;
    this.goodsInverseTemperature = inverseTemperature(g?.calibration);
    this.scaledLogits = new Float32Array(g ? g.labels.length : 0);
    this.ood = g ? init.ood : undefined;
    this.greenMinConfidence = init.greenMinConfidence ?? 0.98;
    this.greenMaxThreatPeak = init.greenMaxThreatPeak ?? 0.5;
    this.labelCount = labels.length;
    this.modelLabelCount = g ? g.labels.length : 0;
    const t = init.threatsModel;
    const heat = t?.outputs.find((o) => o.meaning === 'threat_heatmap_logits');
    this.heatmapSize = heat ? [heat.shape[2], heat.shape[3]] : [0, 0];
    this.threats =
      t && heat
        ? new ThreatAlerts(t.labels, t.thresholds, init.pixels, (init.tile.size * init.tile.downsample) / heat.shape[3], alertCalibration(t.calibration))
        : null;
    for (const m of [g, t]) if (m) this.tiles.set(m.name, counts());
  }

  /** The stitcher produced a tile; one submit per loaded model follows. */
  tileProduced(): void {
    this.tilesProduced++;
  }

  submitted(model: string): void {
    const c = this.tiles.get(model);
    if (!c) return;
    c.submitted++;
    c.pending++;
  }

  /** A tile's result that is not ok (ok results come through addGoods / addThreats). */
  failed(model: string, outcome: Exclude<TileOutcome, 'ok'>): void {
    const c = this.tiles.get(model);
    if (!c) return;
    c.pending--;
    c[outcome]++;
    this.touch();
  }

  servedBy(model: string, provider: string | null, precision: string | null): void {
    this.providers.set(model, { provider, precision });
  }

  /**
   * Goods model result of one tile: class logits and, when the model has one, its embedding (kept for enrolment and
   * matched against the reference snapshot: see reference-library.ts for how a match shares the cargo mass).
   */
  addGoods(
    tile: { line: number; lines: number; pixel: number; pixels: number },
    logits: Float32Array,
    embedding?: Float32Array,
    imageFeatures?: Float64Array,
  ): TileChange {
    const model = this.goodsModel as Readonly<ModelManifest>;
    this.okTile(model.name);
    if (!this.goods) return { suggestions: false, alerts: [], declaration: false };
    const wasOut = this.isOutOfDistribution();
    const p = new Float32Array(this.labelCount);
    const scaled = this.scaledLogits;
    for (let i = 0; i < this.modelLabelCount; i++) scaled[i] = logits[i] * this.goodsInverseTemperature;
    softmaxInto(scaled, p.subarray(0, this.modelLabelCount));
    const e = embedding ? normalizeL2(Float32Array.from(embedding)) : undefined;
    let outOfDistribution: boolean | undefined;
    if (this.ood && imageFeatures) {
      let top = 0;
      for (let i = 1; i < this.modelLabelCount; i++) if (p[i] > p[top]) top = i;
      const score = this.ood.score(top, imageFeatures, e).score;
      // Fails closed: a score that is not a number (a NaN feature, broken statistics) counts as out.
      outOfDistribution = !(score <= 1);
      this.oodTiles++;
      if (outOfDistribution) this.oodOut++;
      if (score > this.oodMax) this.oodMax = score;
    }
    if (e) {
      let modelCargo = 0;
      // Goods probability: cargo labels that are goods (an HS code), i.e. not `empty`, `vehicle` or `air`.
      for (let i = 0; i < this.modelLabelCount; i++) if (model.labels[i].cargo !== false && model.labels[i].hsCodes.length > 0) modelCargo += p[i];
      this.embeddingRows.push(e);
      this.embeddingTiles.push([tile.line, tile.lines, tile.pixel, tile.pixels, Math.round(modelCargo * 1000)]);
      const match = this.references?.match(e);
      if (match) {
        let cargoMass = 0;
        for (let i = 0; i < this.modelLabelCount; i++) {
          if (model.labels[i].cargo === false) continue;
          cargoMass += p[i];
          p[i] *= 1 - match.similarity;
        }
        p[this.modelLabelCount + match.index] = cargoMass * match.similarity;
      }
    }
    this.goods.add({ ...tile, probabilities: p });
    // Segments are recomputed once per batch of results, not per tile (refreshGoods): a batch resolves up to
    // maxBatchSize tiles in one macrotask, and per-tile recomputation blocked the event loop for milliseconds.
    this.goodsDirty = true;
    if (outOfDistribution === undefined) return NO_CHANGE;
    const change: TileChange = { ...NO_CHANGE, outOfDistribution };
    const isOut = this.isOutOfDistribution();
    // The scan changed sides: every alert already on screens becomes a hint, or every hint an alert again.
    if (!wasOut && isOut) {
      const hints = this.hints();
      change.distribution = { outOfDistribution: true, withdrawnAlertIds: hints.map((a) => a.id), hints };
    } else if (wasOut && !isOut) {
      change.distribution = { outOfDistribution: false, withdrawnAlertIds: [], hints: [] };
      change.alerts = this.alerts();
    }
    return change;
  }

  /** True when goods tiles arrived since the last refreshGoods(). */
  get hasGoodsPending(): boolean {
    return this.goodsDirty;
  }

  /** Recomputes goods segments and the declaration check from the tiles added since the last call. */
  refreshGoods(): ResultsChange {
    if (!this.goodsDirty) return NO_CHANGE;
    this.goodsDirty = false;
    return this.goodsChanged();
  }

  /** The goods embeddings of the tiles scored so far, or null without a goods embedding. */
  embeddings(): { model: string; dim: number; tiles: Array<[number, number, number, number, number]>; data: Float32Array } | null {
    if (!this.goodsModel || this.embeddingRows.length === 0) return null;
    const dim = this.embeddingRows[0].length;
    const data = new Float32Array(this.embeddingRows.length * dim);
    for (let i = 0; i < this.embeddingRows.length; i++) data.set(this.embeddingRows[i], i * dim);
    return { model: this.goodsModel.name, dim, tiles: [...this.embeddingTiles], data };
  }

  /** Threat model result of one tile (heatmap logits [labels][gh][gw]). */
  addThreats(tile: { line: number; lines: number; pixel: number; pixels: number }, logits: Float32Array): TileChange {
    const model = this.threatsModel as Readonly<ModelManifest>;
    this.okTile(model.name);
    if (!this.threats) return { suggestions: false, alerts: [], declaration: false };
    const [gridH, gridW] = this.heatmapSize;
    const alerts = this.threats.add({ ...tile, logits, gridH, gridW });
    if (alerts.length > 0) this.refreshDecision();
    // A scan already unlike the training data raises no alert on screens: its boxes are hints, sent as such.
    if (!this.isOutOfDistribution()) return { suggestions: false, alerts, declaration: false };
    if (alerts.length === 0) return NO_CHANGE;
    return { ...NO_CHANGE, distribution: { outOfDistribution: true, withdrawnAlertIds: [], hints: this.hints() } };
  }

  /** Lines received so far (live). */
  setLines(lines: number): void {
    this.lines = lines;
  }

  /** The scan ended: suggestions become final once every pending tile is answered. */
  scanEnded(state: 'completed' | 'aborted', lines: number): ResultsChange {
    this.scanState = state;
    this.lines = lines;
    this.goods?.finish();
    this.goodsDirty = false;
    this.touch();
    return this.goodsChanged();
  }

  /** True once the scan ended and no tile is pending: the report will not change again. */
  isFinal(): boolean {
    return this.finalisedAt !== null;
  }

  pendingTiles(): number {
    let n = 0;
    for (const c of this.tiles.values()) n += c.pending;
    return n;
  }

  segments(): SuggestionSegment[] {
    return this.segmentsCache;
  }

  /** Threat alerts: none while the scan is out of distribution (its boxes are hints()). */
  alerts(): ThreatAlert[] {
    return this.isOutOfDistribution() ? [] : (this.threats?.all() ?? []);
  }

  /** Threat boxes of a scan that is out of distribution: low-confidence hints, not alerts. */
  hints(): ThreatAlert[] {
    return this.isOutOfDistribution() ? (this.threats?.all() ?? []) : [];
  }

  /** The scan is unlike the goods model's training data (enough of its scored tiles are). */
  isOutOfDistribution(): boolean {
    return this.ood?.scanIsOut(this.oodOut, this.oodTiles) ?? false;
  }

  /** Tiles scored for out-of-distribution so far and how many were out (for metrics). */
  outOfDistributionCounts(): { tiles: number; outOfDistribution: number } {
    return { tiles: this.oodTiles, outOfDistribution: this.oodOut };
  }

  private checkDeclaration(segments: readonly SuggestionSegment[]): DeclarationCheck {
    return checkDeclaration(this.init.declaredHsCodes, segments, this.goods?.withheldLines ?? 0, this.scanState === 'completed');
  }

  declaration(): DeclarationCheck {
    return this.checkDeclaration(this.segmentsCache);
  }

  report(): ScanResultsReport {
    const segments = this.segmentsCache;
    const declaration = this.checkDeclaration(segments);
    const threats = this.alerts();
    const hints = this.hints();
    const objects: AssessedObject[] = threats.map((a) => ({
      id: a.id,
      assessment: 'THREAT',
      category: a.category,
      categoryDescription: a.name,
      probability: a.probability,
      box: { ...a.box },
      algorithm: this.threatsModel?.name ?? '',
    }));
    for (const u of declaration.undeclared) {
      const segs = segments.filter((s) => s.top3[0]?.label === u.label);
      objects.push({
        id: `d-${u.label}`,
        assessment: 'UNDECLARED_GOODS',
        category: u.label,
        categoryDescription: u.name,
        probability: u.confidence,
        box: {
          lineStart: Math.min(...segs.map((s) => s.startLine)),
          lineEnd: Math.max(...segs.map((s) => s.endLine)),
          pixelStart: 0,
          pixelEnd: this.init.pixels,
        },
        algorithm: this.goodsModel?.name ?? '',
        hsCodes: [...u.hsCodes],
      });
    }
    if (declaration.emptyButDeclared) {
      objects.push({
        id: 'd-missing',
        assessment: 'DECLARED_GOODS_MISSING',
        category: 'empty',
        categoryDescription: `declared ${declaration.declared.join(', ')}; the cargo bay looks empty`,
        probability: Math.max(...segments.map((s) => s.confidence)),
        box: {
          lineStart: Math.min(...segments.map((s) => s.startLine)),
          lineEnd: Math.max(...segments.map((s) => s.endLine)),
          pixelStart: 0,
          pixelEnd: this.init.pixels,
        },
        algorithm: this.goodsModel?.name ?? '',
      });
    }
    const algorithms: AlgorithmInfo[] = [];
    for (const m of [this.goodsModel, this.threatsModel]) {
      if (!m) continue;
      const p = this.providers.get(m.name);
      algorithms.push({
        name: m.name,
        version: m.version,
        task: m.task,
        provider: p?.provider ?? null,
        precision: p?.precision ?? null,
        tiles: { ...(this.tiles.get(m.name) as TileCounts) },
      });
    }
    const end = this.finalisedAt ?? new Date();
    const reasons = this.decisionReasons(threats.length, declaration, segments);
    return {
      reportType: 'MACHINE',
      scanId: this.scanId,
      portalId: this.portalId,
      status: this.finalisedAt ? 'final' : 'in-progress',
      scanState: this.scanState,
      machine: { product: 'scanline', version: this.init.machine.version, machineId: this.init.machine.machineId },
      algorithms,
      alarmDecision: this.decision.value,
      decisionReason: reasons.join('; '),
      decisionReasons: reasons,
      triage: this.triage(segments),
      outOfDistribution: this.ood
        ? {
            tiles: this.oodTiles,
            outOfDistribution: this.oodOut,
            share: this.oodTiles > 0 ? Math.round((this.oodOut / this.oodTiles) * 1e4) / 1e4 : 0,
            scanShare: this.ood.scanShare,
            scan: this.isOutOfDistribution(),
            maxScore: Math.round(this.oodMax * 100) / 100,
          }
        : null,
      alarmDecisionTime: this.decision.since.toISOString(),
      objects,
      goods: {
        segments,
        declaration,
        references: this.references?.categories.map((c) => c.id) ?? [],
        referenceCategories: this.references?.categories.map((c) => ({ id: c.id, name: c.name, proposedBy: c.proposedBy, approvedBy: c.approvedBy })) ?? [],
      },
      threats,
      hints,
      lines: this.lines,
      tilesProduced: this.tilesProduced,
      recovered: this.init.recovered ? { at: this.init.recovered.at.toISOString(), lines: this.init.recovered.lines } : null,
      processingTimeMs: end.getTime() - this.startedAt.getTime(),
      startedAt: this.startedAt.toISOString(),
      updatedAt: this.updatedAt.toISOString(),
      finalisedAt: this.finalisedAt?.toISOString() ?? null,
    };
  }

  private okTile(model: string): void {
    const c = this.tiles.get(model);
    if (!c) return;
    c.pending--;
    c.ok++;
    this.touch();
  }

  /** Recomputes segments and the declaration check; reports what changed. */
  private goodsChanged(): ResultsChange {
    if (!this.goods) {
      this.refreshDecision();
      return { suggestions: false, alerts: [], declaration: false };
    }
    const segments = this.goods.segments();
    const key = JSON.stringify(segments);
    const suggestions = key !== this.segmentsKey;
    if (suggestions) {
      this.segmentsKey = key;
      this.segmentsCache = segments;
    }
    const d = this.checkDeclaration(segments);
    const dKey = `${d.status}|${d.undeclared.map((u) => u.label).join(',')}`;
    const declaration = dKey !== this.declarationKey;
    if (declaration) this.declarationKey = dKey;
    this.declarationStatus = d.status;
    this.refreshDecision();
    return { suggestions, alerts: [], declaration };
  }

  private touch(): void {
    this.updatedAt = new Date();
    if (this.finalisedAt === null && this.scanState !== 'receiving' && this.pendingTiles() === 0) {
      this.finalisedAt = this.updatedAt;
    }
    this.refreshDecision();
  }

  private refreshDecision(): void {
    const value = this.computeDecision();
    if (value !== this.decision.value) this.decision = { value, since: new Date() };
  }

  private computeDecision(): AlarmDecision {
    // Out of distribution, neither model's findings are trusted enough to raise an ALARM: the officer reviews.
    const ood = this.isOutOfDistribution();
    if (!ood && (this.threats?.count() ?? 0) > 0) return 'ALARM';
    if (!ood && this.declarationStatus === 'mismatch') return 'ALARM';
    if (!this.goodsModel || !this.threatsModel) return 'UNKNOWN';
    if (this.scanState !== 'completed' || this.finalisedAt === null) return 'UNKNOWN';
    for (const c of this.tiles.values()) if (c.ok !== c.submitted) return 'UNKNOWN';
    return this.missingEvidence(this.checkDeclaration(this.segmentsCache), this.segmentsCache).length === 0 ? 'CLEAR' : 'UNKNOWN';
  }

  /**
   * What a completed, fully scored scan that raised nothing still lacks for CLEAR (empty: nothing). Each entry is a
   * reason for people.
   */
  private missingEvidence(declaration: DeclarationCheck, segments: readonly SuggestionSegment[]): string[] {
    const out: string[] = [];
    const unreadable = this.unreadableBy();
    if (unreadable !== null) return [unreadable];
    if (this.isOutOfDistribution()) {
      out.push(`image unlike the model's training data (${Math.round((this.oodOut / Math.max(1, this.oodTiles)) * 100)}% of tiles)`);
    }
    const hints = this.hints().length;
    if (hints > 0) out.push(`${hints} low-confidence threat hint${hints > 1 ? 's' : ''} (not alerts)`);
    if (this.isOutOfDistribution() && (declaration.undeclared.length > 0 || declaration.emptyButDeclared)) {
      const said = declaration.undeclared.map((u) => u.label).join(', ') || 'an empty bay';
      out.push(`the goods model's reading (${said}) disagrees with the declaration but is unreliable on this image`);
    }
    const withheld = this.goods?.withheldLines ?? 0;
    let classified = 0;
    for (const seg of segments) classified += seg.endLine - seg.startLine;
    const cargoLines = classified + withheld;
    if (withheld > Math.max(this.init.tile.strideLines, UNCLASSIFIED_CARGO_SHARE * cargoLines)) {
      out.push(`cargo not classified with confidence over ${withheld} lines (${Math.round((withheld / Math.max(1, cargoLines)) * 100)}% of the cargo)`);
    }
    if (this.init.declaredHsCodes === null) out.push('no declaration to compare the cargo with');
    else if (declaration.notSeen.length > 0) out.push(`declared goods not seen: ${declaration.notSeen.join(', ')}`);
    else if (declaration.status !== 'match') out.push('the declaration could not be checked against the image');
    return out;
  }

  /** GREEN / AMBER / RED and the figures GREEN is decided on. */
  private triage(segments: readonly SuggestionSegment[]): NonNullable<ScanResultsReport['triage']> {
    const decision = this.decision.value;
    const threatPeak = Math.round((this.threats?.peak() ?? 0) * 1e4) / 1e4;
    const bounds = { greenMinConfidence: this.greenMinConfidence, greenMaxThreatPeak: this.greenMaxThreatPeak };
    if (decision === 'ALARM') return { level: 'RED', greenScore: null, threatPeak, ...bounds };
    let greenScore: number | null = null;
    if (decision === 'CLEAR') {
      greenScore = 1;
      for (const seg of segments) greenScore = Math.min(greenScore, seg.confidence);
    }
    // GREEN releases without review: only where the image can be checked against the training data at all.
    const green = this.ood !== undefined && greenScore !== null && greenScore >= this.greenMinConfidence && threatPeak <= this.greenMaxThreatPeak;
    return { level: green ? 'GREEN' : 'AMBER', greenScore, threatPeak, ...bounds };
  }

  /**
   * Why the loaded models cannot read this scan at all, or null: a model takes as many channels as a tile has
   * energies (the demo models read two; a single-energy scanner's tiles have one).
   */
  private unreadableBy(): string | null {
    const energies = this.init.energies ?? 2;
    const unfit = [this.goodsModel, this.threatsModel].filter((m): m is Readonly<ModelManifest> => m !== undefined && m.input.shape[1] !== energies);
    if (unfit.length === 0) return null;
    return `${energies === 1 ? 'single-energy' : `${energies}-energy`} scan: ${unfit.map((m) => `${m.name} reads ${m.input.shape[1]}-energy tiles`).join(', ')} and no model for ${energies} energ${energies === 1 ? 'y' : 'ies'} is loaded; needs review`;
  }

  /** Every reason for the current decision, ALARM findings first. */
  private decisionReasons(threats: number, declaration: DeclarationCheck, segments: readonly SuggestionSegment[]): string[] {
    const parts: string[] = [];
    if (threats > 0) parts.push(`${threats} threat alert${threats > 1 ? 's' : ''}`);
    // Without a declaration nothing is "undeclared" (status unknown): that is a missing piece of evidence below.
    if (declaration.status === 'mismatch' && declaration.undeclared.length > 0)
      parts.push(`undeclared goods: ${declaration.undeclared.map((u) => u.label).join(', ')}`);
    if (declaration.emptyButDeclared) parts.push('declared goods missing: the cargo bay looks empty');
    const kind = (this.init.energies ?? 2) === 1 ? 'single-energy' : 'dual-energy';
    const noModel = !this.goodsModel || !this.threatsModel ? `no ${!this.goodsModel ? 'goods' : 'threats'} model for ${kind} scans is loaded` : null;
    // An ALARM still says what was not looked at: no threat model means no threat was screened for.
    if (parts.length > 0 && !this.isOutOfDistribution()) return noModel ? [...parts, noModel] : parts;
    if (noModel) return [noModel, 'needs review'];
    if (this.scanState === 'aborted') return ['the scan was aborted'];
    const unreadable = this.unreadableBy();
    if (unreadable !== null) return [unreadable];
    if (this.scanState === 'receiving' || this.finalisedAt === null) return ['the scan is still being scored'];
    for (const [name, c] of this.tiles) {
      if (c.ok !== c.submitted) return [`${c.submitted - c.ok} of ${c.submitted} tiles were not scored by ${name}`];
    }
    const missing = this.missingEvidence(declaration, segments);
    if (missing.length > 0) return [...missing, 'needs review'];
    return ['every tile scored, the cargo classified and declared, the image like the training data; nothing raised'];
  }
}
