/**
 * Officers' decisions over HTTP:
 *   POST /v1/scans/:scanId/decision   {"verdict": "clear" | "inspect", "comment"?, "suggestions"?: {"<id>": "accept" | "reject"}}
 *                                     (role officer) -> 201 with the stored decision (id, operatorId = the signed-in
 *                                     account, decidedAt, the machine's advice at that time); audited
 *   GET  /v1/scans/:scanId/decisions  the decisions on a scan, oldest first (also in GET /v1/scans/:scanId; viewer)
 * Decisions are stored apart from the machine results and pushed to every screen watching the scan. Who decided is
 * the authenticated account, never an id the client sends.
 */
import { ScanlineError } from '../errors/index.js';
import type { AuditTrail } from '../identity/index.js';
import type { Logger } from '../log/index.js';
import { DecisionRequestSchema, recordDecision, type OperatorHub, type ResultsReader } from '../operator/index.js';
import { decisionSeal, type ScanStore } from '../storage/index.js';
import { bodyValidator, parseBody } from './body.js';
import { handleAsync, pathParameter, readJsonBody } from './http.js';
import { principalOf, type Routes } from './routes.js';
import type { HttpRequest, HttpResponse } from './uws.js';

/** Decision bodies are small: a verdict, a comment and ratings. */
const MAX_DECISION_BODY_BYTES = 64 * 1024;
const DECISION_BODY = bodyValidator(DecisionRequestSchema);

export interface DecisionRouteOptions {
  store: ScanStore;
  results: ResultsReader | null;
  hub: OperatorHub | null;
  audit: AuditTrail;
  log: Logger;
  /** Told of every recorded decision (the DICOS push). Must not throw. */
  onDecision?: (scanId: string, decisionId: number) => void;
}

export function registerDecisionRoutes(routes: Routes, o: DecisionRouteOptions): void {
  routes.post(
    '/v1/scans/:scanId/decision',
    'officer',
    (res: HttpResponse, req: HttpRequest, ctx) => {
      const scanId = pathParameter(req, 0);
      const operatorId = principalOf(ctx).account;
      handleAsync(res, req, o.log, async (out) => {
        const request = parseBody(DECISION_BODY, await readJsonBody(res, MAX_DECISION_BODY_BYTES), 'decision');
        const { decision, portalId } = recordDecision({ store: o.store, report: (id) => o.results?.report(id), scanId, operatorId, request });
        o.audit.record({
          actor: operatorId,
          action: 'decision.record',
          target: scanId,
          outcome: 'ok',
          address: ctx.facts.address,
          // Sealed: `scanline audit verify` finds the decision edited if it no longer hashes to this.
          details: {
            decisionId: decision.id,
            verdict: decision.verdict,
            machineDecision: decision.machineDecision,
            suggestions: decision.suggestions,
            sealed: decisionSeal(decision),
          },
        });
        o.log.info({ scanId, operatorId, verdict: decision.verdict, machineDecision: decision.machineDecision, id: decision.id }, 'decision recorded');
        o.hub?.decisionRecorded(portalId, decision);
        try {
          o.onDecision?.(scanId, decision.id);
        } catch (err) {
          o.log.error({ err, scanId }, 'queuing the decision for DICOS push failed');
        }
        out.json(201, { ...decision, links: { scan: `/v1/scans/${encodeURIComponent(scanId)}` } });
      });
    },
    { json: true },
  );

  routes.get('/v1/scans/:scanId/decisions', 'viewer', (res: HttpResponse, req: HttpRequest) => {
    const scanId = pathParameter(req, 0);
    handleAsync(res, req, o.log, (out) => {
      if (!o.store.hasScan(scanId)) throw new ScanlineError('SCANLINE_ERR_SCAN_UNKNOWN', `no scan ${scanId}`, { scanId });
      out.json(200, { decisions: o.store.listDecisions(scanId) });
    });
  });
}
