/**
 * Where every HTTP route is registered: each states its Access (who may use it) and whether it reads a JSON body,
 * the guard (guard.ts) runs before its handler, and the list of what was registered is kept, so that the access
 * matrix test (test/server/access-matrix.test.ts) fails when a route is added without an entry of its own.
 */
import type { Access, Principal } from '../identity/index.js';
import type { Logger } from '../log/index.js';
import { type RequestFacts, type RequestGuard, type RouteSpec, clientAddress, readRequestFacts } from './guard.js';
import { ScanlineError, toScanlineErrorOrInternal } from '../errors/index.js';
import { answerNow, handleAsync, JSON_TYPE, onSettled, refuseNow } from './http.js';
import { isLimitRefusal, type KeyedCounter, type RateLimiter, type RefusalPacer } from './limits.js';
import type { HttpRequest, HttpResponse, TemplatedApp } from './uws.js';

/** What a route's handler learns from the guard. */
export interface RouteContext {
  /** Who is asking; null only on public routes. */
  principal: Principal | null;
  facts: RequestFacts;
}

export type GuardedHandler = (res: HttpResponse, req: HttpRequest, ctx: RouteContext) => void;

/** A principal a non-public route was given (the guard refused the request otherwise). */
export function principalOf(ctx: RouteContext): Principal {
  if (!ctx.principal) throw new Error('principalOf called on a route without credentials (a public route)');
  return ctx.principal;
}

export class Routes {
  /** Every route and WebSocket registered, in order. */
  readonly specs: RouteSpec[] = [];

  constructor(
    readonly app: TemplatedApp,
    readonly guard: RequestGuard,
    private readonly log: Logger,
    /** HTTP requests in progress per client address (server.maxRequestsPerAddress). */
    private readonly requests: KeyedCounter,
    /** Requests and upgrades per second per client address, checked first (server.requestsPerSecondPerAddress). */
    readonly rate: RateLimiter,
    /** Answers limit refusals late (server.refusalDelayMs, longer for repeat offenders), so that a client retrying on each answer slows down. */
    readonly pacer: RefusalPacer,
  ) {}

  /**
   * The rate check every route and upgrade starts with, before the request is read further: over the rate, answers
   * 429 SCANLINE_ERR_LIMIT_RATE (a constant body, no error object: a flood must cost little), late through the pacer,
   * and returns true. Call synchronously in the handler.
   */
  refusedForRate(res: HttpResponse): boolean {
    const address = clientAddress(res);
    if (this.rate.take(address)) return false;
    this.guard.countRefusal('SCANLINE_ERR_LIMIT_RATE');
    const body = this.rateBody;
    this.pacer.answerLater(res, address, () => answerNow(res, 429, JSON_TYPE, body, { 'Retry-After': '1' }));
    return true;
  }

  /**
   * Refuses a WebSocket upgrade with `err`'s code, inside its handler: a limit refusal late through the pacer, any
   * other at once.
   */
  refuseUpgrade(res: HttpResponse, err: unknown): void {
    const e = toScanlineErrorOrInternal(err);
    if (isLimitRefusal(e)) this.pacer.answerLater(res, clientAddress(res), () => refuseNow(res, e));
    else refuseNow(res, e);
  }

  private get rateBody(): string {
    this.rateBodyText ??= JSON.stringify({
      error: {
        code: 'SCANLINE_ERR_LIMIT_RATE',
        message: `more than ${this.rate.ratePerSecond} requests per second from this address (server.requestsPerSecondPerAddress)`,
        retryAfterSec: 1,
      },
    });
    return this.rateBodyText;
  }

  private rateBodyText: string | null = null;

  get(path: string, access: Access, handler: GuardedHandler): void {
    this.add({ method: 'GET', path, access }, handler);
  }

  post(path: string, access: Access, handler: GuardedHandler, options: { json?: boolean; portalCredentials?: boolean } = {}): void {
    this.add(
      { method: 'POST', path, access, ...(options.json ? { json: true } : {}), ...(options.portalCredentials ? { portalCredentials: true } : {}) },
      handler,
    );
  }

  del(path: string, access: Access, handler: GuardedHandler): void {
    this.add({ method: 'DELETE', path, access }, handler);
  }

  /** Records a WebSocket route; its upgrade handler calls guard.check itself (it answers refusals its own way). */
  ws(path: string, access: Access | 'portal'): RouteSpec {
    const spec: RouteSpec = { method: 'WS', path, access };
    this.specs.push(spec);
    return spec;
  }

  private add(spec: RouteSpec, handler: GuardedHandler): void {
    this.specs.push(spec);
    const guarded = (res: HttpResponse, req: HttpRequest): void => {
      if (this.refusedForRate(res)) return;
      const facts = readRequestFacts(res, req);
      let principal: Principal | null;
      try {
        principal = this.guard.check(spec, facts);
        if (!this.requests.acquire(facts.address)) {
          this.guard.countRefusal('SCANLINE_ERR_LIMIT_REQUESTS');
          throw new ScanlineError(
            'SCANLINE_ERR_LIMIT_REQUESTS',
            `${this.requests.limit} requests from ${facts.address} are in progress (server.maxRequestsPerAddress); wait for them`,
            { retryAfterSec: 1 },
          );
        }
        onSettled(res, () => this.requests.release(facts.address));
      } catch (err) {
        handleAsync(res, req, this.log, async () => {
          if (err instanceof ScanlineError && isLimitRefusal(err)) await this.pacer.delay(facts.address);
          throw err;
        });
        return;
      }
      handler(res, req, { principal, facts });
    };
    if (spec.method === 'GET') this.app.get(spec.path, guarded);
    else if (spec.method === 'POST') this.app.post(spec.path, guarded);
    else this.app.del(spec.path, guarded);
  }
}
