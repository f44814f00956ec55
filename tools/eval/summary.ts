/**
 * Per-scan evaluation records, their aggregate (the `scanline eval --json` object) and its human-readable table.
 * Ratios are null where their denominator is 0 (no goods tile, no truth threat, no mis-declared truck).
 */
import type { AlarmDecision, TileCounts } from '../../src/protocol/index.js';
import { THREAT_KINDS } from '../simulator/index.js';
import { SCORED_GOODS, type FirstSuggestion, type GoodsCategoryScore, type SuggestionPlacement, type ThreatScore } from './scoring.js';
import { MISMATCH_KINDS, type MismatchKind } from './trucks.js';

/** Acceptance targets of the demo models (issues 3 and 15); `scanline eval --targets` exits 1 when one is missed. */
export const EVAL_TARGETS = Object.freeze({
  goodsTop1: 0.9, // at least, over goods tiles
  threatRecall: 0.9, // at least, over truth threats
  falseAlarmsPerScan: 0.1, // at most
  mismatchRecall: 0.9, // at least, over mis-declared trucks
  goodsEce: 0.05, // at most, over goods tiles covered by a segment
  greenPrecision: 0.995, // at least, over GREEN trucks
  greenUnsafe: 0, // at most: GREEN trucks with a missed threat or a false declaration
});

/** Bounds on the threat peak the GREEN curve is drawn for (results.triage.greenMaxThreatPeak candidates). */
export const GREEN_CURVE_THREAT_PEAKS: readonly number[] = Object.freeze([1, 0.5]);

/** Thresholds of the GREEN curve (results.triage.greenMinConfidence candidates). */
export const GREEN_CURVE_THRESHOLDS: readonly number[] = Object.freeze([
  0.5, 0.8, 0.9, 0.95, 0.97, 0.98, 0.982, 0.984, 0.985, 0.986, 0.987, 0.988, 0.989, 0.99,
]);

/** Bootstrap resamples of the scans for the 95% confidence intervals. */
const BOOTSTRAP_RESAMPLES = 1000;

export type DeclarationStatus = 'unknown' | 'match' | 'mismatch';

/** Everything the evaluator keeps about one scored scan. */
export interface ScanEval {
  seed: number;
  scanId: string;
  portalId: string;
  lines: number;
  /** False when the report was still in progress when the evaluator stopped waiting (scored as it stood). */
  reportFinal: boolean;
  decision: AlarmDecision;
  tilesProduced: number;
  /** Tile positions of the grid the evaluator labelled (tile-grid.ts); equals tilesProduced unless geometry differs. */
  tilesExpected: number;
  /** Outcomes of the tiles sent to the models, summed over models. */
  tileOutcomes: TileCounts;
  goods: Record<string, GoodsCategoryScore>;
  suggestions: SuggestionPlacement;
  threats: ThreatScore;
  declaration: { mismatch: MismatchKind | null; status: DeclarationStatus };
  firstSuggestions: FirstSuggestion[];
  models: Array<{ name: string; version: string; task: string }>;
  /** Per scored goods tile under a segment: the segment's confidence and whether its top-1 is right. */
  goodsConfidence: Array<[number, boolean]>;
  triage: { level: 'GREEN' | 'AMBER' | 'RED' | null; greenScore: number | null; threatPeak: number | null };
  /** The report's out-of-distribution verdict (null: the goods model carries no statistics). */
  outOfDistribution: boolean | null;
  /**
   * Threat boxes reported as hints (a scan out of distribution shows its boxes as hints, never alerts), scored like
   * alerts: which truth threats a hint overlaps, and hints over no threat.
   */
  hints: ThreatScore;
  reasons: string[];
}

export interface EvalFailure {
  seed: number;
  code: string;
  message: string;
}

export interface EvalRunInfo {
  seeds: [number, number];
  /** False when a seed falls in the range the demo models were trained and validated on (1000-4999). */
  heldOut: boolean;
  url: string;
  portals: number;
  speed: 'realtime' | 'max';
  lineRateHz: number;
  threatProbability: number;
  mismatchProbability: number;
  /** Trucks rendered as another scanner would (null: the simulator's own detector). */
  foreignScanner: string | null;
  /** Energies of the trucks' portals (1: single-energy scanners). */
  energies: 1 | 2;
  /** The simulator the trucks came from ('basic' or 'hard', tools/simulator/realism.ts). */
  realism: string;
  durationMs: number;
}

export interface Percentiles {
  p50: number | null;
  p99: number | null;
}

export interface EvalSummary extends EvalRunInfo {
  /** Scans scored (failed ones are listed in `failures` and not scored). */
  scans: number;
  goodsTop1: number | null;
  threatRecall: number | null;
  falseAlarmsPerScan: number | null;
  mismatchRecall: number | null;
  /** Expected calibration error of the goods segments' confidence over the goods tiles they cover (10 bins). */
  goodsEce: number | null;
  /** Expected calibration error of alert probabilities (an alert is right when it overlaps a truth threat). */
  threatEce: number | null;
  /** Share of scans whose final decision is UNKNOWN. */
  unknownRate: number | null;
  /** Share of scans the gateway found unlike its models' training data. */
  outOfDistributionRate: number | null;
  /** Shares of scans by triage level. */
  triage: { green: number | null; amber: number | null; red: number | null };
  /** GREEN trucks that carry no threat and are truthfully declared, over GREEN trucks. */
  greenPrecision: number | null;
  green: { trucks: number; clean: number; withMissedThreat: number; misDeclared: number };
  /**
   * GREEN share and precision as the GREEN bounds move (from each CLEAR scan's greenScore and threatPeak): the
   * goods confidence threshold, for each bound on the threat peak.
   */
  greenCurve: Array<{ threshold: number; maxThreatPeak: number; share: number | null; precision: number | null; unsafe: number }>;
  /** 95% confidence intervals (bootstrap over scans, seeded) of the headline figures: [low, high]. */
  intervals: Record<string, [number, number] | null>;
  firstSuggestionMs: Percentiles;
  firstSuggestionLines: Percentiles;
  targets: {
    goodsTop1: { min: number; met: boolean };
    threatRecall: { min: number; met: boolean };
    falseAlarmsPerScan: { max: number; met: boolean };
    mismatchRecall: { min: number; met: boolean };
    goodsEce: { max: number; met: boolean };
    greenPrecision: { min: number; met: boolean };
    greenUnsafe: { max: number; met: boolean };
    allMet: boolean;
  };
  goods: { tiles: number; correct: number; perCategory: Record<string, GoodsCategoryScore & { top1: number | null }> };
  /** Final suggestion segments over no cargo tile (on the cab, chassis or air), per scan and by top-1 label. */
  suggestionsOffCargoPerScan: number | null;
  suggestions: { segments: number; offCargo: number; scansWithOffCargo: number; offCargoByLabel: Record<string, number> };
  /**
   * Hints of the scans out of distribution: truth threats in those scans, how many a hint overlaps (an officer
   * reviewing the image is pointed at it), and hints over no threat. `recall` null without a threat in such a scan.
   */
  hints: { scans: number; truth: number; found: number; hints: number; falseHints: number; recall: number | null };
  threats: {
    truth: number;
    found: number;
    /** Found by an alert of the same kind. */
    foundAsKind: number;
    alerts: number;
    falseAlarms: number;
    perKind: Record<string, { truth: number; found: number; recall: number | null; alerts: number; falseAlarms: number }>;
    /** Truth threats by how the simulator hid them (in-load for every basic one; the hard simulator's five ways). */
    perConcealment: Record<string, { truth: number; found: number; recall: number | null }>;
  };
  declaration: {
    misDeclared: number;
    /** Mis-declared trucks whose report says mismatch. */
    flagged: number;
    honest: number;
    /** Honest trucks whose report says mismatch. */
    falseMismatches: number;
    falseMismatchRate: number | null;
    /** Report status counts of mis-declared trucks. */
    statusOfMisDeclared: Record<DeclarationStatus, number>;
    byKind: Record<MismatchKind, { trucks: number; flagged: number }>;
  };
  firstSuggestion: { segments: number; suggested: number; never: number };
  tiles: TileCounts & { expected: number; produced: number; gridMismatchScans: number };
  reportsNotFinal: number;
  decisions: Record<AlarmDecision, number>;
  models: Array<{ name: string; version: string; task: string }>;
  failed: number;
  failures: EvalFailure[];
}

const ratio = (n: number, d: number): number | null => (d > 0 ? n / d : null);

/** Nearest-rank percentile of unsorted values; null when there are none. */
export function percentile(values: readonly number[], p: number): number | null {
  if (values.length === 0) return null;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

export function summarise(scans: readonly ScanEval[], failures: readonly EvalFailure[], run: EvalRunInfo): EvalSummary {
  const perCategory: EvalSummary['goods']['perCategory'] = {};
  for (const c of SCORED_GOODS) perCategory[c] = { tiles: 0, correct: 0, predicted: {}, top1: null };
  const perKind: EvalSummary['threats']['perKind'] = {};
  for (const k of THREAT_KINDS) perKind[k] = { truth: 0, found: 0, recall: null, alerts: 0, falseAlarms: 0 };
  const byKind = Object.fromEntries(MISMATCH_KINDS.map((k) => [k, { trucks: 0, flagged: 0 }])) as EvalSummary['declaration']['byKind'];
  const statusOfMisDeclared: Record<DeclarationStatus, number> = { unknown: 0, match: 0, mismatch: 0 };
  const tiles: EvalSummary['tiles'] = { expected: 0, produced: 0, submitted: 0, ok: 0, rejected: 0, expired: 0, failed: 0, pending: 0, gridMismatchScans: 0 };
  const decisions: Record<AlarmDecision, number> = { ALARM: 0, CLEAR: 0, UNKNOWN: 0 };
  const models = new Map<string, { name: string; version: string; task: string }>();
  const ms: number[] = [];
  const lines: number[] = [];
  let goodsTiles = 0;
  let goodsCorrect = 0;
  let truth = 0;
  let found = 0;
  let foundAsKind = 0;
  let alerts = 0;
  let falseAlarms = 0;
  let misDeclared = 0;
  let flagged = 0;
  let honest = 0;
  let falseMismatches = 0;
  let segments = 0;
  let reportsNotFinal = 0;
  const suggestions: EvalSummary['suggestions'] = { segments: 0, offCargo: 0, scansWithOffCargo: 0, offCargoByLabel: {} };
  const hints: EvalSummary['hints'] = { scans: 0, truth: 0, found: 0, hints: 0, falseHints: 0, recall: null };

  const perConcealment: EvalSummary['threats']['perConcealment'] = {};
  for (const s of scans) {
    for (const t of s.threats.truth) {
      if (t.concealment === undefined) continue;
      const c = (perConcealment[t.concealment] ??= { truth: 0, found: 0, recall: null });
      c.truth++;
      if (t.found) c.found++;
    }
    if (s.outOfDistribution) {
      hints.scans++;
      hints.truth += s.hints.truth.length;
      hints.found += s.hints.truth.filter((t) => t.found).length;
      hints.hints += s.hints.alerts.length;
      hints.falseHints += s.hints.alerts.filter((a) => a.falseAlarm).length;
    }
    for (const [category, g] of Object.entries(s.goods)) {
      const c = (perCategory[category] ??= { tiles: 0, correct: 0, predicted: {}, top1: null });
      c.tiles += g.tiles;
      c.correct += g.correct;
      for (const [label, n] of Object.entries(g.predicted)) c.predicted[label] = (c.predicted[label] ?? 0) + n;
      goodsTiles += g.tiles;
      goodsCorrect += g.correct;
    }
    suggestions.segments += s.suggestions.segments;
    suggestions.offCargo += s.suggestions.offCargo.length;
    if (s.suggestions.offCargo.length > 0) suggestions.scansWithOffCargo++;
    for (const o of s.suggestions.offCargo) suggestions.offCargoByLabel[o.label] = (suggestions.offCargoByLabel[o.label] ?? 0) + 1;
    for (const t of s.threats.truth) {
      const k = (perKind[t.kind] ??= { truth: 0, found: 0, recall: null, alerts: 0, falseAlarms: 0 });
      k.truth++;
      truth++;
      if (t.found) {
        k.found++;
        found++;
      }
      if (t.foundAsKind) foundAsKind++;
    }
    for (const a of s.threats.alerts) {
      const k = (perKind[a.category] ??= { truth: 0, found: 0, recall: null, alerts: 0, falseAlarms: 0 });
      k.alerts++;
      alerts++;
      if (a.falseAlarm) {
        k.falseAlarms++;
        falseAlarms++;
      }
    }
    const d = s.declaration;
    if (d.mismatch) {
      misDeclared++;
      statusOfMisDeclared[d.status]++;
      byKind[d.mismatch].trucks++;
      if (d.status === 'mismatch') {
        flagged++;
        byKind[d.mismatch].flagged++;
      }
    } else {
      honest++;
      if (d.status === 'mismatch') falseMismatches++;
    }
    for (const f of s.firstSuggestions) {
      segments++;
      if (f.ms !== null && f.lines !== null) {
        ms.push(f.ms);
        lines.push(f.lines);
      }
    }
    tiles.expected += s.tilesExpected;
    tiles.produced += s.tilesProduced;
    if (s.tilesExpected !== s.tilesProduced) tiles.gridMismatchScans++;
    for (const key of ['submitted', 'ok', 'rejected', 'expired', 'failed', 'pending'] as const) tiles[key] += s.tileOutcomes[key];
    decisions[s.decision]++;
    if (!s.reportFinal) reportsNotFinal++;
    for (const m of s.models) models.set(`${m.name}@${m.version}`, m);
  }
  for (const c of Object.values(perCategory)) c.top1 = ratio(c.correct, c.tiles);
  for (const k of Object.values(perKind)) k.recall = ratio(k.found, k.truth);
  hints.recall = ratio(hints.found, hints.truth);
  for (const c of Object.values(perConcealment)) c.recall = ratio(c.found, c.truth);

  // The headline ratios have one definition, shared with the bootstrap that puts intervals on them.
  const h = headline(scans);
  const { goodsTop1, threatRecall, falseAlarmsPerScan, mismatchRecall } = h;
  const T = EVAL_TARGETS;
  const targets = {
    goodsTop1: { min: T.goodsTop1, met: goodsTop1 !== null && goodsTop1 >= T.goodsTop1 },
    threatRecall: { min: T.threatRecall, met: threatRecall !== null && threatRecall >= T.threatRecall },
    falseAlarmsPerScan: { max: T.falseAlarmsPerScan, met: falseAlarmsPerScan !== null && falseAlarmsPerScan <= T.falseAlarmsPerScan },
    mismatchRecall: { min: T.mismatchRecall, met: mismatchRecall !== null && mismatchRecall >= T.mismatchRecall },
    allMet: false,
  };
  const opinion = opinionFigures(scans, h);
  const targetsMore = {
    goodsEce: { max: T.goodsEce, met: opinion.goodsEce !== null && opinion.goodsEce <= T.goodsEce },
    // No GREEN truck at all meets no precision target: a site would release nothing.
    greenPrecision: { min: T.greenPrecision, met: opinion.greenPrecision !== null && opinion.greenPrecision >= T.greenPrecision },
    greenUnsafe: { max: T.greenUnsafe, met: opinion.green.trucks - opinion.green.clean <= T.greenUnsafe },
  };
  targets.allMet =
    targets.goodsTop1.met &&
    targets.threatRecall.met &&
    targets.falseAlarmsPerScan.met &&
    targets.mismatchRecall.met &&
    targetsMore.goodsEce.met &&
    targetsMore.greenPrecision.met &&
    targetsMore.greenUnsafe.met;
  return {
    scans: scans.length,
    goodsTop1,
    threatRecall,
    falseAlarmsPerScan,
    mismatchRecall,
    ...opinion,
    firstSuggestionMs: { p50: round(percentile(ms, 0.5), 1), p99: round(percentile(ms, 0.99), 1) },
    firstSuggestionLines: { p50: percentile(lines, 0.5), p99: percentile(lines, 0.99) },
    targets: { ...targets, ...targetsMore, allMet: targets.allMet },
    goods: { tiles: goodsTiles, correct: goodsCorrect, perCategory },
    suggestionsOffCargoPerScan: ratio(suggestions.offCargo, scans.length),
    suggestions,
    hints,
    threats: { truth, found, foundAsKind, alerts, falseAlarms, perKind, perConcealment },
    declaration: { misDeclared, flagged, honest, falseMismatches, falseMismatchRate: ratio(falseMismatches, honest), statusOfMisDeclared, byKind },
    firstSuggestion: { segments, suggested: ms.length, never: segments - ms.length },
    tiles,
    reportsNotFinal,
    decisions,
    models: [...models.values()],
    failed: failures.length,
    failures: [...failures],
    ...run,
  };
}

/** A scan is clean when it carries no threat and its declaration is true: the only kind GREEN may release. */
function isClean(s: ScanEval): boolean {
  return s.threats.truth.length === 0 && s.declaration.mismatch === null;
}

/** Expected calibration error over 10 equal-width bins of (confidence, correct) pairs; null without pairs. */
export function expectedCalibrationError(pairs: ReadonlyArray<readonly [number, boolean]>): number | null {
  if (pairs.length === 0) return null;
  const bins = Array.from({ length: 10 }, () => ({ n: 0, conf: 0, right: 0 }));
  for (const [c, ok] of pairs) {
    const b = bins[Math.min(9, Math.max(0, Math.floor(c * 10)))];
    b.n++;
    b.conf += c;
    b.right += ok ? 1 : 0;
  }
  let ece = 0;
  for (const b of bins) if (b.n > 0) ece += Math.abs(b.right - b.conf) / pairs.length;
  return ece;
}

type OpinionFigures = Pick<
  EvalSummary,
  'goodsEce' | 'threatEce' | 'unknownRate' | 'outOfDistributionRate' | 'triage' | 'greenPrecision' | 'green' | 'greenCurve' | 'intervals'
>;

/** Headline ratios of a set of scans (the bootstrap recomputes them on resamples). */
function headline(scans: readonly ScanEval[]): Record<string, number | null> {
  let goodsTiles = 0;
  let goodsCorrect = 0;
  let truth = 0;
  let found = 0;
  let falseAlarms = 0;
  let misDeclared = 0;
  let flagged = 0;
  let green = 0;
  let greenClean = 0;
  let unknown = 0;
  let ood = 0;
  for (const s of scans) {
    for (const g of Object.values(s.goods)) {
      goodsTiles += g.tiles;
      goodsCorrect += g.correct;
    }
    truth += s.threats.truth.length;
    found += s.threats.truth.filter((t) => t.found).length;
    falseAlarms += s.threats.alerts.filter((a) => a.falseAlarm).length;
    if (s.declaration.mismatch) {
      misDeclared++;
      if (s.declaration.status === 'mismatch') flagged++;
    }
    if (s.triage.level === 'GREEN') {
      green++;
      if (isClean(s)) greenClean++;
    }
    if (s.decision === 'UNKNOWN') unknown++;
    if (s.outOfDistribution) ood++;
  }
  return {
    goodsTop1: ratio(goodsCorrect, goodsTiles),
    threatRecall: ratio(found, truth),
    falseAlarmsPerScan: ratio(falseAlarms, scans.length),
    mismatchRecall: ratio(flagged, misDeclared),
    greenShare: ratio(green, scans.length),
    greenPrecision: ratio(greenClean, green),
    unknownRate: ratio(unknown, scans.length),
    outOfDistributionRate: ratio(ood, scans.length),
  };
}

/** 95% percentile intervals of the headline figures from resampling the scans with replacement (seeded: repeatable). */
function bootstrapIntervals(scans: readonly ScanEval[]): Record<string, [number, number] | null> {
  const keys = Object.keys(headline([]));
  const samples = new Map<string, number[]>(keys.map((k) => [k, []]));
  if (scans.length === 0) return Object.fromEntries(keys.map((k) => [k, null]));
  let state = 0x2545f491;
  const next = (): number => {
    // xorshift32: a fixed sequence, so the same scans give the same intervals.
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
  for (let r = 0; r < BOOTSTRAP_RESAMPLES; r++) {
    const sample: ScanEval[] = [];
    for (let i = 0; i < scans.length; i++) sample.push(scans[Math.floor(next() * scans.length)]);
    const h = headline(sample);
    for (const k of keys) if (h[k] !== null) samples.get(k)?.push(h[k] as number);
  }
  const out: Record<string, [number, number] | null> = {};
  for (const k of keys) {
    const v = samples.get(k) ?? [];
    out[k] = v.length < BOOTSTRAP_RESAMPLES / 2 ? null : [round(percentile(v, 0.025), 4) as number, round(percentile(v, 0.975), 4) as number];
  }
  return out;
}

function opinionFigures(scans: readonly ScanEval[], h: Record<string, number | null>): OpinionFigures {
  const n = scans.length;
  const goodsPairs = scans.flatMap((s) => s.goodsConfidence ?? []);
  const alertPairs: Array<[number, boolean]> = [];
  let greenTrucks = 0;
  let clean = 0;
  let missed = 0;
  let misDeclared = 0;
  const counts = { GREEN: 0, AMBER: 0, RED: 0 };
  for (const s of scans) {
    for (const a of s.threats.alerts) alertPairs.push([a.probability, !a.falseAlarm]);
    if (s.triage.level) counts[s.triage.level]++;
    if (s.triage.level !== 'GREEN') continue;
    greenTrucks++;
    if (isClean(s)) clean++;
    if (s.threats.truth.length > 0) missed++;
    if (s.declaration.mismatch !== null) misDeclared++;
  }
  const greenCurve = GREEN_CURVE_THREAT_PEAKS.flatMap((maxThreatPeak) =>
    GREEN_CURVE_THRESHOLDS.map((threshold) => {
      const g = scans.filter((s) => s.triage.greenScore !== null && s.triage.greenScore >= threshold && (s.triage.threatPeak ?? 0) <= maxThreatPeak);
      const ok = g.filter(isClean).length;
      return { threshold, maxThreatPeak, share: ratio(g.length, n), precision: ratio(ok, g.length), unsafe: g.length - ok };
    }),
  );
  const ood = scans.filter((s) => s.outOfDistribution !== null);
  return {
    goodsEce: round(expectedCalibrationError(goodsPairs), 4),
    threatEce: round(expectedCalibrationError(alertPairs), 4),
    unknownRate: h.unknownRate,
    outOfDistributionRate: ood.length > 0 ? ratio(ood.filter((s) => s.outOfDistribution).length, n) : null,
    triage: { green: ratio(counts.GREEN, n), amber: ratio(counts.AMBER, n), red: ratio(counts.RED, n) },
    greenPrecision: h.greenPrecision,
    green: { trucks: greenTrucks, clean, withMissedThreat: missed, misDeclared },
    greenCurve,
    intervals: bootstrapIntervals(scans),
  };
}

function round(v: number | null, digits: number): number | null {
  if (v === null) return null;
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

const pct = (v: number | null): string => (v === null ? '-' : `${(v * 100).toFixed(1)}%`);
const met = (ok: boolean, v: number | null): string => (v === null ? 'n/a' : ok ? 'met' : 'NOT met');

/** The human-readable report: one line per figure, per-category and per-kind rows indented below. */
export function formatEvalTable(s: EvalSummary): string {
  const rows: string[][] = [];
  const row = (...cells: Array<string | number>): void => {
    rows.push(cells.map(String));
  };
  const t = s.targets;
  const ci = (k: string): string => {
    const i = s.intervals[k];
    return i ? `95% CI ${pct(i[0])}-${pct(i[1])}` : '';
  };
  row(
    'goods top-1 (goods tiles)',
    pct(s.goodsTop1),
    `${s.goods.correct}/${s.goods.tiles} tiles`,
    `>= ${pct(t.goodsTop1.min)} ${met(t.goodsTop1.met, s.goodsTop1)}; ${ci('goodsTop1')}`,
  );
  for (const [c, g] of Object.entries(s.goods.perCategory)) {
    if (g.tiles === 0) continue;
    const wrong = Object.entries(g.predicted)
      .filter(([label]) => label !== c)
      .sort((a, b) => b[1] - a[1])
      .slice(0, 2)
      .map(([label, n]) => `${label} ${n}`)
      .join(', ');
    row(`  ${c}`, pct(g.top1), `${g.correct}/${g.tiles}`, wrong ? `wrong: ${wrong}` : '');
  }
  const off = Object.entries(s.suggestions.offCargoByLabel)
    .sort((a, b) => b[1] - a[1])
    .map(([label, n]) => `${label} ${n}`)
    .join(', ');
  row(
    'suggestions off the cargo',
    s.suggestionsOffCargoPerScan === null ? '-' : `${s.suggestionsOffCargoPerScan.toFixed(3)}/scan`,
    `${s.suggestions.offCargo}/${s.suggestions.segments} segments`,
    `${s.suggestions.scansWithOffCargo} scans${off ? `; top-1: ${off}` : ''}`,
  );
  row(
    'threat recall',
    pct(s.threatRecall),
    `${s.threats.found}/${s.threats.truth} threats`,
    `>= ${pct(t.threatRecall.min)} ${met(t.threatRecall.met, s.threatRecall)}; ${ci('threatRecall')}`,
  );
  row(
    'false alarms per scan',
    s.falseAlarmsPerScan === null ? '-' : s.falseAlarmsPerScan.toFixed(3),
    `${s.threats.falseAlarms}/${s.scans} scans`,
    `<= ${t.falseAlarmsPerScan.max} ${met(t.falseAlarmsPerScan.met, s.falseAlarmsPerScan)}`,
  );
  for (const [k, v] of Object.entries(s.threats.perKind)) {
    row(`  ${k}`, pct(v.recall), `${v.found}/${v.truth} found`, `${v.falseAlarms} false of ${v.alerts} alerts`);
  }
  const ways = Object.entries(s.threats.perConcealment);
  // One way (every basic threat is in the load) says nothing the total does not.
  if (ways.length > 1) for (const [how, v] of ways) row(`  hidden ${how}`, pct(v.recall), `${v.found}/${v.truth} found`, '');
  row(
    'declaration mismatch recall',
    pct(s.mismatchRecall),
    `${s.declaration.flagged}/${s.declaration.misDeclared} trucks`,
    `>= ${pct(t.mismatchRecall.min)} ${met(t.mismatchRecall.met, s.mismatchRecall)}; ${ci('mismatchRecall')}`,
  );
  for (const [k, v] of Object.entries(s.declaration.byKind)) {
    if (v.trucks > 0) row(`  ${k}`, pct(ratio(v.flagged, v.trucks)), `${v.flagged}/${v.trucks}`, '');
  }
  row('  false mismatch (honest)', pct(s.declaration.falseMismatchRate), `${s.declaration.falseMismatches}/${s.declaration.honest} trucks`, '');
  const f = s.firstSuggestion;
  const ms = s.firstSuggestionMs;
  const ln = s.firstSuggestionLines;
  row('first correct suggestion', `p50 ${ms.p50 ?? '-'} ms`, `p99 ${ms.p99 ?? '-'} ms`, `${f.suggested}/${f.segments} segments, ${f.never} never`);
  row('  in lines', `p50 ${ln.p50 ?? '-'}`, `p99 ${ln.p99 ?? '-'}`, '');
  row('goods ECE (covered goods tiles)', s.goodsEce === null ? '-' : s.goodsEce.toFixed(3), '', `<= ${t.goodsEce.max} ${met(t.goodsEce.met, s.goodsEce)}`);
  row('threat ECE (alerts)', s.threatEce === null ? '-' : s.threatEce.toFixed(3), `${s.threats.alerts} alerts`, '');
  row('decision UNKNOWN', pct(s.unknownRate), `${s.decisions.UNKNOWN}/${s.scans} scans`, ci('unknownRate'));
  row('out of distribution', pct(s.outOfDistributionRate), '', ci('outOfDistributionRate'));
  if (s.hints.scans > 0) {
    row(
      '  hints (out-of-distribution scans)',
      pct(s.hints.recall),
      `${s.hints.found}/${s.hints.truth} threats`,
      `${s.hints.falseHints} false of ${s.hints.hints} hints in ${s.hints.scans} scans`,
    );
  }
  row('triage GREEN / AMBER / RED', `${pct(s.triage.green)} / ${pct(s.triage.amber)} / ${pct(s.triage.red)}`, '', ci('greenShare'));
  row(
    'GREEN precision',
    pct(s.greenPrecision),
    `${s.green.clean}/${s.green.trucks} trucks`,
    `>= ${pct(t.greenPrecision.min)} ${met(t.greenPrecision.met, s.greenPrecision)}; unsafe GREEN ${s.green.trucks - s.green.clean} ${t.greenUnsafe.met ? 'met' : 'NOT met'}`,
  );
  for (const c of s.greenCurve) {
    row(`  GREEN at >= ${c.threshold}, peak <= ${c.maxThreatPeak}`, pct(c.share), `precision ${pct(c.precision)}`, `${c.unsafe} unsafe`);
  }
  const x = s.tiles;
  row('tiles', `${x.produced} produced`, `${x.ok} scored ok`, `${x.rejected} rejected, ${x.expired} expired, ${x.failed} failed (sum over models)`);
  const widths = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i].length)));
  const models = s.models.map((m) => `${m.name} ${m.version}`).join(', ') || 'none';
  const head =
    `scanline eval: ${s.scans} scans of seeds ${s.seeds[0]}..${s.seeds[1]}${s.failed ? ` (${s.failed} failed)` : ''}; models ${models}; ` +
    `${s.speed} at ${s.lineRateHz} lines/s, ${s.portals} portals; threat p ${s.threatProbability}, mismatch p ${s.mismatchProbability}; ` +
    `${s.realism === 'hard' ? 'hard simulator; ' : ''}${s.energies === 1 ? 'single-energy portals; ' : ''}${s.foreignScanner ? `foreign scanner ${s.foreignScanner}; ` : ''}${(s.durationMs / 1000).toFixed(1)} s`;
  const body = rows.map((r) => `${r[0].padEnd(widths[0])}  ${r[1].padStart(widths[1])}  ${r[2].padEnd(widths[2])}  ${r[3]}`.trimEnd());
  const notes: string[] = [];
  if (!s.heldOut) notes.push('some seeds are in 1000..4999, which the demo models were trained on: these figures are not held out');
  notes.push('95% CIs: bootstrap over trucks (1000 seeded resamples)');
  if (s.reportsNotFinal > 0) notes.push(`${s.reportsNotFinal} report(s) were not final when scored`);
  if (x.gridMismatchScans > 0) notes.push(`${x.gridMismatchScans} scan(s) produced a different number of tiles than the evaluated grid`);
  for (const e of s.failures.slice(0, 5)) notes.push(`seed ${e.seed} failed: ${e.code}: ${e.message}`);
  return [head, ...body, ...notes.map((n) => `note: ${n}`)].join('\n');
}
