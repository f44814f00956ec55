/**
 * Officers' decisions (the operator report, kept apart from the machine report): the schema of a decision body and
 * recording it. POST /v1/scans/:scanId/decision is the HTTP door (src/server/decisions-api.ts), which checks bodies
 * against DecisionRequestSchema.
 */
import { ScanlineError } from '../errors/index.js';
import type { ScanResultsReport } from '../protocol/index.js';
import { literalUnion, type Static, Type, anyKey } from '../schema/index.js';
import type { ScanStore, StoredDecision } from '../storage/index.js';

/** Longest comment, characters. */
export const MAX_DECISION_COMMENT = 2000;
/** Most suggestions one decision may rate. */
export const MAX_DECISION_SUGGESTIONS = 256;

/** A decision body: {"verdict": "clear" | "inspect", "comment"?: string, "suggestions"?: {"<id>": "accept" | "reject"}}. */
export const DecisionRequestSchema = Type.Object(
  {
    verdict: literalUnion(['clear', 'inspect'], { expected: '"clear" or "inspect"' }),
    comment: Type.Optional(Type.String({ maxLength: MAX_DECISION_COMMENT })),
    suggestions: Type.Optional(
      Type.Record(anyKey(), literalUnion(['accept', 'reject'], { expected: '"accept" or "reject"' }), {
        maxProperties: MAX_DECISION_SUGGESTIONS,
        expected: `an object of at most ${MAX_DECISION_SUGGESTIONS} suggestion ids`,
        description: "The officer's rating of the machine's suggestions, by id (goods segments, assessed objects).",
      }),
    ),
  },
  { additionalProperties: false },
);
export type DecisionRequest = Static<typeof DecisionRequestSchema>;

/** Ids an officer may accept or reject: goods segments and assessed objects (threats, declaration findings). */
export function suggestionIds(report: ScanResultsReport | undefined): Set<string> {
  if (!report) return new Set();
  return new Set([...report.goods.segments.map((s) => s.id), ...report.objects.map((o) => o.id)]);
}

export interface RecordDecisionInput {
  store: ScanStore;
  /** Reads the scan's machine report (live or stored); null when the gateway runs without inference. */
  report: (scanId: string) => ScanResultsReport | undefined;
  scanId: string;
  operatorId: string;
  request: DecisionRequest;
  now?: Date;
}

/**
 * Stores a decision. Throws SCANLINE_ERR_SCAN_UNKNOWN, SCANLINE_ERR_DECISION_UNKNOWN_SUGGESTION (nothing stored) or
 * SCANLINE_ERR_STORAGE_WRITE. Returns the stored decision and the scan's portal.
 */
export function recordDecision(i: RecordDecisionInput): { decision: StoredDecision; portalId: string } {
  const record = i.store.getScan(i.scanId);
  if (!record) throw new ScanlineError('SCANLINE_ERR_SCAN_UNKNOWN', `no scan ${i.scanId}`, { scanId: i.scanId });
  const report = i.report(i.scanId);
  const rated = Object.keys(i.request.suggestions ?? {});
  if (rated.length > 0) {
    const known = suggestionIds(report);
    const unknown = rated.filter((id) => !known.has(id));
    if (unknown.length > 0) {
      throw new ScanlineError(
        'SCANLINE_ERR_DECISION_UNKNOWN_SUGGESTION',
        `scan ${i.scanId} has no suggestion ${unknown.join(', ')}${report ? ` (it has: ${[...known].join(', ') || 'none'})` : ' (it has no machine results)'}`,
        { scanId: i.scanId, unknown },
      );
    }
  }
  const decision = i.store.putDecision({
    scanId: i.scanId,
    operatorId: i.operatorId,
    verdict: i.request.verdict,
    comment: i.request.comment?.trim() ? i.request.comment.trim() : null,
    suggestions: { ...(i.request.suggestions ?? {}) },
    machineDecision: report?.alarmDecision ?? null,
    scanState: record.state,
    decidedAt: (i.now ?? new Date()).toISOString(),
  });
  return { decision, portalId: record.portalId };
}
