/**
 * Officers' decisions over HTTP:
 *   POST /v1/scans/:scanId/decision   {"verdict": "clear" | "inspect", "comment"?, "suggestions"?: {"<id>": "accept" | "reject"}}
 *                                     with the officer's id in X-Scanline-Operator (or ?operator=) -> 201 with the
 *                                     stored decision (id, operatorId, decidedAt, the machine's advice at that time)
 *   GET  /v1/scans/:scanId/decisions  the decisions on a scan, oldest first (also in GET /v1/scans/:scanId)
 * Decisions are stored apart from the machine results and pushed to every screen watching the scan.
 */
import { ScanlineError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import { DecisionRequestSchema, recordDecision, type OperatorHub, type ResultsReader } from '../operator/index.js';
import type { ScanStore } from '../storage/index.js';
import { bodyValidator, parseBody } from './body.js';
import { handleAsync, pathParameter, readJsonBody } from './http.js';
import { operatorIdOf } from './operator-route.js';
import type { HttpRequest, HttpResponse, TemplatedApp } from './uws.js';

/** Decision bodies are small: a verdict, a comment and ratings. */
const MAX_DECISION_BODY_BYTES = 64 * 1024;
const DECISION_BODY = bodyValidator(DecisionRequestSchema);

export interface DecisionRouteOptions {
  store: ScanStore;
  results: ResultsReader | null;
  hub: OperatorHub | null;
  log: Logger;
}

export function registerDecisionRoutes(app: TemplatedApp, o: DecisionRouteOptions): void {
  app.post('/v1/scans/:scanId/decision', (res: HttpResponse, req: HttpRequest) => {
    const scanId = pathParameter(req, 0);
    // The request object is valid only during this call: read the operator id now.
    let operatorId: string | ScanlineError;
    try {
      operatorId = operatorIdOf(req);
    } catch (err) {
      operatorId = err as ScanlineError;
    }
    handleAsync(res, req, o.log, async (out) => {
      const body = readJsonBody(res, MAX_DECISION_BODY_BYTES);
      if (operatorId instanceof ScanlineError) {
        body.catch(() => undefined);
        throw operatorId;
      }
      const request = parseBody(DECISION_BODY, await body, 'decision');
      const { decision, portalId } = recordDecision({ store: o.store, report: (id) => o.results?.report(id), scanId, operatorId, request });
      o.log.info({ scanId, operatorId, verdict: decision.verdict, machineDecision: decision.machineDecision, id: decision.id }, 'decision recorded');
      o.hub?.decisionRecorded(portalId, decision);
      out.json(201, { ...decision, links: { scan: `/v1/scans/${encodeURIComponent(scanId)}` } });
    });
  });

  app.get('/v1/scans/:scanId/decisions', (res: HttpResponse, req: HttpRequest) => {
    const scanId = pathParameter(req, 0);
    handleAsync(res, req, o.log, (out) => {
      if (!o.store.hasScan(scanId)) throw new ScanlineError('SCANLINE_ERR_SCAN_UNKNOWN', `no scan ${scanId}`, { scanId });
      out.json(200, { decisions: o.store.listDecisions(scanId) });
    });
  });
}
