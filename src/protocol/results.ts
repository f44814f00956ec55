/**
 * The machine's results as they leave the gateway: the DICOS-shaped report (GET /v1/scans/:scanId/results, the
 * operator feed's `results.final` and `scan.snapshot`) and its parts, which the feed also sends one by one
 * (`suggestions`, `alert`, `declaration`). The results stage (src/results) builds them; these schemas are their one
 * definition, so the HTTP API, the feed and docs/protocol.md say the same thing.
 */
import { literalUnion, type Static, Type, anyKey } from '../schema/index.js';

export const SCAN_STATES = ['receiving', 'completed', 'aborted', 'interrupted'] as const;
/** receiving: lines are arriving; completed / aborted: ended; interrupted: the gateway stopped while it was open. */
export type ScanState = (typeof SCAN_STATES)[number];
export const ScanStateSchema = literalUnion(SCAN_STATES);

export const ALARM_DECISIONS = ['ALARM', 'CLEAR', 'UNKNOWN'] as const;

/**
 * Triage of a scan: GREEN may be released without an image review (CLEAR, every goods segment at least
 * results.triage.greenMinConfidence, no threat cell above results.triage.greenMaxThreatPeak of its threshold);
 * AMBER needs a review (UNKNOWN, a CLEAR below that bar, or still in progress);
 * RED is ALARM.
 */
export const TRIAGE_LEVELS = ['GREEN', 'AMBER', 'RED'] as const;
export type TriageLevel = (typeof TRIAGE_LEVELS)[number];
/** The machine's advice on a scan (DICOS alarm decision); an officer always makes the decision. */
export type AlarmDecision = (typeof ALARM_DECISIONS)[number];

export const TILE_OUTCOMES = ['ok', 'rejected', 'expired', 'failed'] as const;
export type TileOutcome = (typeof TILE_OUTCOMES)[number];

/** Lines [lineStart, lineEnd) along the vehicle, detector pixels [pixelStart, pixelEnd). */
export const ScanBoxSchema = Type.Object({
  lineStart: Type.Integer(),
  lineEnd: Type.Integer(),
  pixelStart: Type.Integer(),
  pixelEnd: Type.Integer(),
});
export type ScanBox = Static<typeof ScanBoxSchema>;

export const RankedCategorySchema = Type.Object({
  label: Type.String(),
  name: Type.String(),
  hsCodes: Type.Array(Type.String()),
  probability: Type.Number(),
});
export type RankedCategory = Static<typeof RankedCategorySchema>;

/** A stretch of the vehicle with one goods suggestion (top-3 categories). */
export const SuggestionSegmentSchema = Type.Object({
  id: Type.String({ description: "Stable within a scan: the index of the segment's first column." }),
  startLine: Type.Integer({ description: 'Lines [startLine, endLine) along the vehicle.' }),
  endLine: Type.Integer(),
  top3: Type.Array(RankedCategorySchema),
  confidence: Type.Number({ description: 'Top-1 probability.' }),
  final: Type.Boolean({ description: 'True once the scan ended: the segment will not change again.' }),
});
export type SuggestionSegment = Static<typeof SuggestionSegmentSchema>;

export const ThreatAlertSchema = Type.Object({
  id: Type.String({ description: 'Stable within a scan.' }),
  category: Type.String({ description: 'Threat label id, e.g. "firearm".' }),
  name: Type.String(),
  probability: Type.Number({
    description:
      "Calibrated probability that the alert covers a true threat (the threats model's calibration applied to the highest cell probability of the category in the alert's cells; never above the model's maxProbability).",
  }),
  box: ScanBoxSchema,
  cells: Type.Integer({ description: 'Cells in the group (cell = span x span raw samples).' }),
  raisedAt: Type.String({ description: 'When the alert was first raised (ISO 8601).' }),
  updatedAt: Type.String({ description: 'When it last changed (ISO 8601).' }),
  merged: Type.Optional(
    Type.Array(Type.String(), {
      description: 'Only on the update that bridged alerts: the ids folded into this one, which no longer exist. Never in reports.',
    }),
  ),
});
export type ThreatAlert = Static<typeof ThreatAlertSchema>;

export const DeclarationCheckSchema = Type.Object({
  status: literalUnion(['unknown', 'match', 'mismatch'] as const, {
    description:
      'unknown: no declaration came with the scan, nothing is suggested yet, or goods were declared and no goods category is suggested ' +
      'while the bay is not clearly empty; match: every suggested goods category is declared (a declaration with no codes declares an ' +
      'empty vehicle); mismatch: some are not, or goods were declared and the image shows only an empty cargo bay (emptyButDeclared).',
  }),
  declared: Type.Array(Type.String()),
  undeclared: Type.Array(
    Type.Object({ label: Type.String(), name: Type.String(), hsCodes: Type.Array(Type.String()), lines: Type.Integer(), confidence: Type.Number() }),
    { description: 'Suggested categories whose headings are not declared: the finding an officer needs.' },
  ),
  notSeen: Type.Array(Type.String(), {
    description: 'Declared headings no suggested category covers (informative: small consignments may hide behind others).',
  }),
  emptyButDeclared: Type.Boolean({
    description:
      'Goods were declared, the scan is complete, every suggestion is an empty cargo bay, and the bay looks empty over more than twice the ' +
      'lines where the model was unsure: the declared goods are not there. Never while the scan grows.',
  }),
});
export type DeclarationCheck = Static<typeof DeclarationCheckSchema>;

export const TileCountsSchema = Type.Object({
  submitted: Type.Integer({ description: 'Tiles sent to the model (= tiles the stitcher produced for the scan, once it is final).' }),
  ok: Type.Integer(),
  rejected: Type.Integer(),
  expired: Type.Integer(),
  failed: Type.Integer(),
  pending: Type.Integer({ description: 'Submitted and not answered yet.' }),
});
export type TileCounts = Static<typeof TileCountsSchema>;

export const AlgorithmInfoSchema = Type.Object({
  name: Type.String({ description: 'Model (algorithm) name: DICOS Threat Detection Algorithm.' }),
  version: Type.String(),
  task: literalUnion(['goods', 'threats'] as const),
  provider: Type.Union([Type.String(), Type.Null()], { description: 'Execution provider that served it, when known.' }),
  precision: Type.Union([Type.String(), Type.Null()]),
  tiles: TileCountsSchema,
});
export type AlgorithmInfo = Static<typeof AlgorithmInfoSchema>;

/** One assessed object (DICOS potential threat object). */
export const AssessedObjectSchema = Type.Object({
  id: Type.String(),
  assessment: literalUnion(['THREAT', 'UNDECLARED_GOODS', 'DECLARED_GOODS_MISSING'] as const, {
    description:
      "THREAT: the threat model's alert; UNDECLARED_GOODS: goods seen whose HS heading was not declared; DECLARED_GOODS_MISSING: goods " +
      'were declared and the cargo bay looks empty.',
  }),
  category: Type.String({ description: 'Label id: a threat kind (firearm, narcotics, explosive) or a goods category.' }),
  categoryDescription: Type.String(),
  probability: Type.Number({ description: '0..1.' }),
  box: ScanBoxSchema,
  algorithm: Type.String({ description: 'Name of the model that found it.' }),
  hsCodes: Type.Optional(Type.Array(Type.String(), { description: 'HS headings of an undeclared category.' })),
});
export type AssessedObject = Static<typeof AssessedObjectSchema>;

export const ScanResultsReportSchema = Type.Object({
  reportType: Type.Literal('MACHINE'),
  scanId: Type.String(),
  portalId: Type.String(),
  status: literalUnion(['in-progress', 'final'] as const, {
    description: 'in-progress: the scan or its scoring is still running; final: nothing will change any more.',
  }),
  scanState: literalUnion(['receiving', 'completed', 'aborted'] as const),
  machine: Type.Object({ product: Type.Literal('scanline'), version: Type.String(), machineId: Type.String() }),
  algorithms: Type.Array(AlgorithmInfoSchema),
  alarmDecision: literalUnion(ALARM_DECISIONS),
  decisionReason: Type.String({ description: 'Why the decision is what it is, for people: every reason, joined by "; ".' }),
  decisionReasons: Type.Optional(
    Type.Array(Type.String(), {
      description:
        'Every reason for the decision, one per entry (an UNKNOWN lists all the evidence that was missing). Absent in reports stored before 2026-12-07 (gateway 0.1.0 without issue 15).',
    }),
  ),
  triage: Type.Optional(
    Type.Object(
      {
        level: literalUnion(TRIAGE_LEVELS),
        greenScore: Type.Union([Type.Number(), Type.Null()], {
          description:
            'The lowest calibrated top-1 confidence of the goods segments of a CLEAR scan (GREEN at results.triage.greenMinConfidence or above); null otherwise.',
        }),
        greenMinConfidence: Type.Number(),
        threatPeak: Type.Number({
          description: "The scan's most suspicious threat cell: its probability over its label's threshold (1 or more: an alert).",
        }),
        greenMaxThreatPeak: Type.Number({ description: 'GREEN needs threatPeak at most this (results.triage.greenMaxThreatPeak).' }),
      },
      { description: 'GREEN / AMBER / RED (see TRIAGE_LEVELS). Absent in reports stored before 2026-12-07 (gateway 0.1.0 without issue 15).' },
    ),
  ),
  outOfDistribution: Type.Optional(
    Type.Union(
      [
        Type.Object({
          tiles: Type.Integer({ description: 'Tiles scored for out-of-distribution (those the goods model answered).' }),
          outOfDistribution: Type.Integer({ description: "Tiles unlike the model's training data (score above 1)." }),
          share: Type.Number(),
          scanShare: Type.Number({ description: 'The share at which the scan is out of distribution (from the goods manifest).' }),
          scan: Type.Boolean({ description: 'True: the scan is unlike the training data; its verdict is UNKNOWN and its threat boxes are hints.' }),
          maxScore: Type.Number({ description: 'Highest tile score (1 = threshold).' }),
        }),
        Type.Null(),
      ],
      {
        description:
          'Out-of-distribution figures of the scan; null when the goods model carries no statistics. Absent in reports stored before 2026-12-07 (gateway 0.1.0 without issue 15).',
      },
    ),
  ),
  alarmDecisionTime: Type.String({ description: 'When the current decision was first reached (ISO 8601).' }),
  objects: Type.Array(AssessedObjectSchema),
  goods: Type.Object({
    segments: Type.Array(SuggestionSegmentSchema),
    declaration: DeclarationCheckSchema,
    references: Type.Array(Type.String(), { description: 'Ids of the enrolled reference categories this scan was matched against.' }),
    referenceCategories: Type.Optional(
      Type.Array(
        Type.Object({
          id: Type.String(),
          name: Type.String(),
          proposedBy: Type.Union([Type.String(), Type.Null()], { description: 'The supervisor who proposed the category (null: enrolled before four eyes).' }),
          approvedBy: Type.Union([Type.String(), Type.Null()], {
            description: 'The supervisor who approved it (the proposer when references.approvals is 1).',
          }),
        }),
        {
          description:
            'The reference categories of `references`, with who proposed and who approved each: a suggestion naming one of them was influenced by it.',
        },
      ),
    ),
  }),
  threats: Type.Array(ThreatAlertSchema),
  hints: Type.Optional(
    Type.Array(ThreatAlertSchema, {
      description:
        'Threat boxes of a scan that is out of distribution: low-confidence hints for the officer, not alerts (they raise no ALARM and are counted apart).',
    }),
  ),
  lines: Type.Integer({ description: "Lines received so far (the scan's total once completed)." }),
  tilesProduced: Type.Integer(),
  processingTimeMs: Type.Number({ description: 'Scan start to now (in progress) or to the last result (final), ms.' }),
  startedAt: Type.String(),
  updatedAt: Type.String(),
  finalisedAt: Type.Union([Type.String(), Type.Null()]),
  recovered: Type.Optional(
    Type.Union([Type.Object({ at: Type.String(), lines: Type.Integer() }), Type.Null()], {
      description:
        'Set when the gateway stopped during the scan (a crash) and rebuilt it from its journal at restart: when, and how many lines were recovered. ' +
        'Its tiles were scored again from those lines; lines the portal sent after the restart are scored as usual.',
    }),
  ),
});
export type ScanResultsReport = Static<typeof ScanResultsReportSchema>;

/** One officer's decision on a scan (POST /v1/scans/:scanId/decision), as stored and as sent to screens. */
export const DecisionRecordSchema = Type.Object({
  id: Type.Integer({ description: 'Increasing per database.' }),
  scanId: Type.String(),
  operatorId: Type.String(),
  verdict: literalUnion(['clear', 'inspect'] as const),
  comment: Type.Union([Type.String(), Type.Null()]),
  suggestions: Type.Record(anyKey(), literalUnion(['accept', 'reject'] as const), {
    description: "Per suggestion id (goods segment or assessed object of the machine report): the officer's view of it.",
  }),
  machineDecision: Type.Union([Type.String(), Type.Null()], {
    description: "The machine's alarmDecision when the officer decided (null: the scan had no machine results).",
  }),
  scanState: ScanStateSchema,
  decidedAt: Type.String({ description: 'ISO 8601.' }),
});
export type DecisionRecord = Static<typeof DecisionRecordSchema>;
