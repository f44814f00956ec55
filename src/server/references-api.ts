/**
 * Reference categories (goods enrolled from reference tiles, without retraining) and the four eyes on them:
 *   GET    /v1/references                  enrolled categories (viewer)
 *   GET    /v1/references/:id              one (viewer)
 *   POST   /v1/references                  proposes enrolling (or replacing) one: {"id", "name", "hsCodes",
 *                                          "minSimilarity"?, "samples": [{"scanId", "lineStart", "lineEnd",
 *                                          "pixelStart"?, "pixelEnd"?}]} (supervisor) -> 202 {proposal}, or with
 *                                          references.approvals 1 -> 201 with the category
 *   DELETE /v1/references/:id              proposes deleting one (supervisor) -> 202 {proposal}, or 204 (approvals 1)
 *   GET    /v1/reference-proposals?state=  proposals, newest first (supervisor)
 *   GET    /v1/reference-proposals/:id     one (supervisor)
 *   POST   /v1/reference-proposals/:id/approve   a different supervisor applies it -> 200 {proposal, reference?}
 *   POST   /v1/reference-proposals/:id/reject    {"reason"?} -> 200 {proposal} (the proposer may withdraw)
 * Scans started after a change use it; running scans keep the library they started with. Every step is audited
 * (src/results/reference-changes.ts).
 */
import { ScanlineError } from '../errors/index.js';
import type { Logger } from '../log/index.js';
import {
  EnrolmentRequestSchema,
  refineEnrolmentRequest,
  type ReferenceCategory,
  type ReferenceChanges,
  type ReferenceChangeOutcome,
  type ResultsService,
} from '../results/index.js';
import { literalUnion, SchemaValidator, Type } from '../schema/index.js';
import { bodyValidator, parseBody, parseQuery } from './body.js';
import { badQuery, handleAsync, pathParameter, readJsonBody } from './http.js';
import { principalOf, type RouteContext, type Routes } from './routes.js';
import type { HttpRequest, HttpResponse } from './uws.js';

/** Enrolment bodies are small (regions, not images). */
const MAX_ENROLMENT_BODY_BYTES = 64 * 1024;
const ENROLMENT_BODY = bodyValidator(EnrolmentRequestSchema, refineEnrolmentRequest);

export const RejectRequestSchema = Type.Object(
  { reason: Type.Optional(Type.String({ maxLength: 1000, description: 'Why the change is rejected, for the proposer and the audit trail.' })) },
  { additionalProperties: false },
);
const REJECT_BODY = bodyValidator(RejectRequestSchema);

export const ProposalListQuerySchema = Type.Object({
  state: Type.Optional(literalUnion(['pending', 'approved', 'rejected'])),
});
const PROPOSAL_LIST_QUERY = new SchemaValidator(ProposalListQuerySchema);

function view(c: ReferenceCategory): Record<string, unknown> {
  return {
    id: c.id,
    name: c.name,
    hsCodes: c.hsCodes,
    model: c.model,
    minSimilarity: c.minSimilarity,
    samples: c.samples,
    embeddingDim: c.prototype.length,
    sampleSimilarity: c.sampleSimilarity,
    sources: c.sources,
    createdAt: c.createdAt,
    proposedBy: c.proposedBy,
    approvedBy: c.approvedBy,
    links: { self: `/v1/references/${encodeURIComponent(c.id)}` },
  };
}

function outcomeView(o: ReferenceChangeOutcome): Record<string, unknown> {
  return {
    proposal: { ...o.proposal, links: { self: `/v1/reference-proposals/${o.proposal.id}` } },
    ...(o.applied && 'enrolled' in o.applied ? { reference: view(o.applied.enrolled) } : {}),
    ...(o.applied && 'deleted' in o.applied ? { deleted: o.applied.deleted } : {}),
  };
}

/** The proposal id of a path: a positive integer, else 404 as for any proposal that does not exist. */
function proposalId(req: HttpRequest): number {
  const raw = pathParameter(req, 0);
  const id = /^[1-9][0-9]{0,15}$/.test(raw) ? Number(raw) : Number.NaN;
  return Number.isSafeInteger(id) ? id : -1;
}

export function registerReferenceRoutes(routes: Routes, log: Logger, results: ResultsService | undefined, changes: ReferenceChanges | undefined): void {
  const unavailable = (): ScanlineError =>
    new ScanlineError('SCANLINE_ERR_REFERENCE_UNAVAILABLE', 'the gateway runs without inference: no goods model to enrol references for');
  const actor = (ctx: RouteContext) => ({ name: principalOf(ctx).account, address: ctx.facts.address });

  routes.get('/v1/references', 'viewer', (res: HttpResponse, req: HttpRequest) => {
    handleAsync(res, req, log, (out) => {
      out.json(200, { references: (results?.listReferences() ?? []).map(view), approvals: changes?.approvals ?? null });
    });
  });

  routes.post(
    '/v1/references',
    'supervisor',
    (res: HttpResponse, req: HttpRequest, ctx) => {
      const by = actor(ctx);
      handleAsync(res, req, log, async (out) => {
        const body = readJsonBody(res, MAX_ENROLMENT_BODY_BYTES);
        if (!changes) throw unavailable();
        const outcome = changes.proposeEnrolment(parseBody(ENROLMENT_BODY, await body, 'enrolment'), by);
        if (outcome.applied && 'enrolled' in outcome.applied) out.json(201, { ...view(outcome.applied.enrolled), proposal: outcome.proposal.id });
        else out.json(202, outcomeView(outcome));
      });
    },
    { json: true },
  );

  routes.get('/v1/references/:id', 'viewer', (res: HttpResponse, req: HttpRequest) => {
    const id = pathParameter(req, 0);
    handleAsync(res, req, log, (out) => {
      const c = results?.listReferences().find((r) => r.id === id);
      if (!c) throw new ScanlineError('SCANLINE_ERR_REFERENCE_UNKNOWN', `no reference category ${id}`, { id });
      out.json(200, view(c));
    });
  });

  routes.del('/v1/references/:id', 'supervisor', (res: HttpResponse, req: HttpRequest, ctx) => {
    const id = pathParameter(req, 0);
    const by = actor(ctx);
    handleAsync(res, req, log, (out) => {
      if (!changes) throw new ScanlineError('SCANLINE_ERR_REFERENCE_UNKNOWN', `no reference category ${id}`, { id });
      const outcome = changes.proposeDeletion(id, by);
      if (outcome.applied) out.send(204, 'text/plain', '');
      else out.json(202, outcomeView(outcome));
    });
  });

  routes.get('/v1/reference-proposals', 'supervisor', (res: HttpResponse, req: HttpRequest) => {
    const q = new URLSearchParams(req.getQuery() ?? '');
    handleAsync(res, req, log, (out) => {
      const { state } = parseQuery(PROPOSAL_LIST_QUERY, q);
      out.json(200, { proposals: changes?.list(state) ?? [], approvals: changes?.approvals ?? null });
    });
  });

  routes.get('/v1/reference-proposals/:id', 'supervisor', (res: HttpResponse, req: HttpRequest) => {
    const id = proposalId(req);
    handleAsync(res, req, log, (out) => {
      if (!changes) throw unavailable();
      out.json(200, changes.get(id));
    });
  });

  routes.post('/v1/reference-proposals/:id/approve', 'supervisor', (res: HttpResponse, req: HttpRequest, ctx) => {
    const id = proposalId(req);
    const by = actor(ctx);
    handleAsync(res, req, log, (out) => {
      if (!changes) throw unavailable();
      out.json(200, outcomeView(changes.approve(id, by)));
    });
  });

  routes.post(
    '/v1/reference-proposals/:id/reject',
    'supervisor',
    (res: HttpResponse, req: HttpRequest, ctx) => {
      const id = proposalId(req);
      const by = actor(ctx);
      handleAsync(res, req, log, async (out) => {
        const body = parseBody(REJECT_BODY, await readJsonBody(res, 4 * 1024), 'rejection');
        if (!changes) throw unavailable();
        if (id < 0) throw badQuery('a proposal id is a positive integer');
        out.json(200, { proposal: changes.reject(id, by, body.reason ?? null) });
      });
    },
    { json: true },
  );
}
