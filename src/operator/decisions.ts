/**
 * Officers' decisions (the operator report, kept apart from the machine report): validation of a decision body and
 * recording it. POST /v1/scans/:scanId/decision is the HTTP door (src/server/decisions-api.ts).
 */
import { ScanlineError } from '../errors/index.js';
import type { ScanResultsReport } from '../results/index.js';
import type { ScanStore, StoredDecision } from '../storage/index.js';

/** A decision body: {"verdict": "clear" | "inspect", "comment"?: string, "suggestions"?: {"<id>": "accept" | "reject"}}. */
export interface DecisionRequest {
  verdict: 'clear' | 'inspect';
  comment?: string;
  suggestions?: Record<string, 'accept' | 'reject'>;
}

/** Longest comment, characters. */
export const MAX_DECISION_COMMENT = 2000;
/** Most suggestions one decision may rate. */
export const MAX_DECISION_SUGGESTIONS = 256;

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return `${s === undefined ? String(v) : s.length > 80 ? `${s.slice(0, 77)}...` : s} of type ${Array.isArray(v) ? 'array' : typeof v}`;
}

/** Checks a decision body; throws SCANLINE_ERR_HTTP_BAD_BODY listing every problem. */
export function validateDecision(body: unknown): DecisionRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw new ScanlineError('SCANLINE_ERR_HTTP_BAD_BODY', `Expected a JSON object for the body but received ${describe(body)}`);
  }
  const b = body as Record<string, unknown>;
  const p: string[] = [];
  for (const k of Object.keys(b)) if (!['verdict', 'comment', 'suggestions'].includes(k)) p.push(`Unknown field ${k}`);
  if (b.verdict !== 'clear' && b.verdict !== 'inspect') p.push(`Expected "clear" or "inspect" for verdict but received ${describe(b.verdict)}`);
  if (b.comment !== undefined && (typeof b.comment !== 'string' || b.comment.length > MAX_DECISION_COMMENT)) {
    p.push(`Expected a string of at most ${MAX_DECISION_COMMENT} characters for comment but received ${describe(b.comment)}`);
  }
  if (b.suggestions !== undefined) {
    const s = b.suggestions;
    if (typeof s !== 'object' || s === null || Array.isArray(s) || Object.keys(s).length > MAX_DECISION_SUGGESTIONS) {
      p.push(`Expected an object of at most ${MAX_DECISION_SUGGESTIONS} suggestion ids for suggestions but received ${describe(s)}`);
    } else {
      for (const [id, v] of Object.entries(s)) {
        if (v !== 'accept' && v !== 'reject') p.push(`Expected "accept" or "reject" for suggestions.${id} but received ${describe(v)}`);
      }
    }
  }
  if (p.length > 0) throw new ScanlineError('SCANLINE_ERR_HTTP_BAD_BODY', `invalid decision:\n  - ${p.join('\n  - ')}`, { problems: p });
  return b as unknown as DecisionRequest;
}

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
