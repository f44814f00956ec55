/**
 * Reference categories (goods enrolled from reference tiles, without retraining):
 *   GET    /v1/references        enrolled categories
 *   POST   /v1/references        enrol (or replace) one: {"id", "name", "hsCodes", "minSimilarity"?, "samples": [{"scanId",
 *                                "lineStart", "lineEnd", "pixelStart"?, "pixelEnd"?}]} -> 201 with the category
 *   DELETE /v1/references/:id    -> 204
 * Scans started after a change use it; running scans keep the library they started with. Reading needs the viewer
 * role; enrolling and deleting need a supervisor and are audited.
 */
import { ScanlineError } from '../errors/index.js';
import type { AuditTrail } from '../identity/index.js';
import type { Logger } from '../log/index.js';
import { EnrolmentRequestSchema, refineEnrolmentRequest, type ReferenceCategory, type ResultsService } from '../results/index.js';
import { bodyValidator, parseBody } from './body.js';
import { handleAsync, pathParameter, readJsonBody } from './http.js';
import { principalOf, type Routes } from './routes.js';
import type { HttpRequest, HttpResponse } from './uws.js';

/** Enrolment bodies are small (regions, not images). */
const MAX_ENROLMENT_BODY_BYTES = 64 * 1024;
const ENROLMENT_BODY = bodyValidator(EnrolmentRequestSchema, refineEnrolmentRequest);

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
    links: { self: `/v1/references/${encodeURIComponent(c.id)}` },
  };
}

export function registerReferenceRoutes(routes: Routes, log: Logger, results: ResultsService | undefined, audit: AuditTrail): void {
  const unavailable = (): ScanlineError =>
    new ScanlineError('SCANLINE_ERR_REFERENCE_UNAVAILABLE', 'the gateway runs without inference: no goods model to enrol references for');

  routes.get('/v1/references', 'viewer', (res: HttpResponse, req: HttpRequest) => {
    handleAsync(res, req, log, (out) => {
      out.json(200, { references: (results?.listReferences() ?? []).map(view) });
    });
  });

  routes.post(
    '/v1/references',
    'supervisor',
    (res: HttpResponse, req: HttpRequest, ctx) => {
      const actor = principalOf(ctx).account;
      handleAsync(res, req, log, async (out) => {
        const body = readJsonBody(res, MAX_ENROLMENT_BODY_BYTES);
        if (!results) throw unavailable();
        const request = parseBody(ENROLMENT_BODY, await body, 'enrolment');
        const category = results.enrol(request);
        audit.record({
          actor,
          action: 'reference.enrol',
          target: category.id,
          outcome: 'ok',
          address: ctx.facts.address,
          details: { name: category.name, hsCodes: category.hsCodes, samples: request.samples },
        });
        out.json(201, view(category));
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
    const actor = principalOf(ctx).account;
    handleAsync(res, req, log, (out) => {
      if (!results) throw new ScanlineError('SCANLINE_ERR_REFERENCE_UNKNOWN', `no reference category ${id}`, { id });
      results.removeReference(id);
      audit.record({ actor, action: 'reference.delete', target: id, outcome: 'ok', address: ctx.facts.address, details: {} });
      out.send(204, 'text/plain', '');
    });
  });
}
