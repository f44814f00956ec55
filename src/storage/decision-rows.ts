/** Officers' decisions as `scan_decisions` holds them, and as the rest of Scanline reads them (DecisionRecord). */
import type { DecisionRecord, ScanState } from '../protocol/index.js';

export interface DecisionRow {
  id: number;
  scan_id: string;
  operator_id: string;
  verdict: 'clear' | 'inspect';
  comment: string | null;
  suggestions: string;
  machine_decision: string | null;
  scan_state: ScanState;
  decided_at: string;
}

/** Throws (SyntaxError) when `suggestions` is not JSON: an edited row. */
export function decisionOf(r: DecisionRow): DecisionRecord {
  return {
    id: r.id,
    scanId: r.scan_id,
    operatorId: r.operator_id,
    verdict: r.verdict,
    comment: r.comment,
    suggestions: JSON.parse(r.suggestions) as DecisionRecord['suggestions'],
    machineDecision: r.machine_decision,
    scanState: r.scan_state,
    decidedAt: r.decided_at,
  };
}
