/**
 * Acceptance in a real browser (Debian chromium driven by playwright-core): an officer is signed in on the operator
 * screen, and in the same browser (one context: one cookie jar) a page of another origin tries every state-changing
 * route and the operator feed with the officer's cookie: fetch in cors mode (JSON, so preflighted), fetch in no-cors
 * mode (text/plain: what a foreign page may send without asking), an HTML form POST into an iframe (enctype
 * text/plain, shaped so that the body is JSON the route would accept), and a WebSocket to /v1/operator; it also
 * tries to read GET /v1/session (the CSRF token) and GET /v1/scans. Everything must be refused and nothing recorded:
 * no decision, no reference, no sign-out, no sign-in as the attacker's account (login CSRF), the feed never opens,
 * nothing read. What went over the wire and what the gateway answered is read from the browser's network layer
 * (CDP), below what the page itself may see.
 *
 * The hard case is the attacker on http://127.0.0.1:<another port>: same site as the gateway (cookies are per host,
 * not per port), so the browser sends the SameSite=Strict session cookie and only the gateway's Origin check (then
 * CSRF, content type) stands in the way. The attacker on http://localhost:<another port> is another site: the
 * cookie stays home. Last, the same decision from the gateway's own page with the session's CSRF token is recorded:
 * the control that shows the probes could have succeeded.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { simulatePortals } from '../../tools/simulator/index.js';
import { TEST_PERSON_PASSWORD, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { needTool, skipWithout } from '../helpers/tools.js';

const CHROMIUM = '/usr/bin/chromium';
const OFFICER = 'officer-17';
/**
 * The attacker's own account, for login CSRF (signing the victim's browser in as the attacker). Ends in `=`: a
 * text/plain form body is `name=value`, and the form probe puts that `=` at the end of the last string of the JSON.
 */
const MALLORY = 'mallory';
const MALLORY_PASSWORD = 'mallory-password-1=';
const ORIGIN = 'SCANLINE_ERR_AUTH_ORIGIN';

/** A state-changing route the attacker page probes. */
interface Target {
  name: string;
  method: 'POST' | 'DELETE';
  path: string;
  /** The JSON body the route would accept; its last member is a string (the form probe appends `=` to it). */
  body?: Record<string, unknown>;
  /** What the gateway answers the form probe (a form can only POST: a DELETE-only path has no POST route). */
  formCode: string;
}

/** What the attacker page saw of one probe. */
type Seen = Record<string, string>;

interface WsSeen {
  opened: boolean;
  messages: number;
  closeCode: number;
}

/**
 * What went over the wire for one tagged request (`?probe=<tag>-…`), seen by the browser's network layer (CDP)
 * before the browser applied CORS, CORP or X-Frame-Options to what the page may see.
 */
interface NetEvent {
  probe: string;
  method: string;
  /** The request carried the session cookie. */
  cookie: boolean;
  origin: string | null;
  /** The gateway's answer; null when the request never got one (blocked before it was sent). */
  status: number | null;
  /** The error code in the gateway's answer. */
  code: string | null;
  /** Why the browser failed the request, as the page saw it ('' when it did not). */
  failure: string;
}

/** The probe tag of a URL, or null for requests that are not probes. */
function probeOf(url: string): string | null {
  return URL.canParse(url) ? new URL(url).searchParams.get('probe') : null;
}

/**
 * Records every probe request of `page` (and of its same-process frames) with what the gateway answered: the answer
 * is read at the Response stage of the Fetch domain, so a body the page itself may not read (no-cors with CORP,
 * a framed response with X-Frame-Options) still shows its error code.
 */
async function watch(context: BrowserContext, page: Page, into: NetEvent[]): Promise<() => Promise<void>> {
  const cdp = await context.newCDPSession(page);
  const byId = new Map<string, NetEvent>();
  const extra = new Map<string, Record<string, string>>();
  const work: Promise<unknown>[] = [];
  const lower = (h: Record<string, string>): Record<string, string> => Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
  const applyHeaders = (e: NetEvent, h: Record<string, string>): void => {
    const headers = lower(h);
    e.cookie = e.cookie || /(^|;\s*)scanline_session=[^;]/.test(headers.cookie ?? '');
    e.origin = headers.origin ?? e.origin;
  };
  cdp.on('Network.requestWillBeSent', (ev) => {
    const probe = probeOf(ev.request.url);
    if (probe === null) return;
    const e: NetEvent = { probe, method: ev.request.method, cookie: false, origin: null, status: null, code: null, failure: '' };
    applyHeaders(e, ev.request.headers);
    const h = extra.get(ev.requestId);
    if (h) applyHeaders(e, h);
    e.status = statusOf.get(ev.requestId) ?? null;
    byId.set(ev.requestId, e);
    into.push(e);
  });
  cdp.on('Network.requestWillBeSentExtraInfo', (ev) => {
    extra.set(ev.requestId, ev.headers);
    const e = byId.get(ev.requestId);
    if (e) applyHeaders(e, ev.headers);
  });
  // The raw answer's status; its event may come before or after the request's own.
  const statusOf = new Map<string, number>();
  cdp.on('Network.responseReceivedExtraInfo', (ev) => {
    statusOf.set(ev.requestId, ev.statusCode);
    const e = byId.get(ev.requestId);
    if (e && e.status === null) e.status = ev.statusCode;
  });
  cdp.on('Network.webSocketCreated', (ev) => {
    const probe = probeOf(ev.url);
    if (probe === null) return;
    const e: NetEvent = { probe, method: 'WS', cookie: false, origin: null, status: null, code: null, failure: '' };
    const h = extra.get(ev.requestId);
    if (h) applyHeaders(e, h);
    byId.set(ev.requestId, e);
    into.push(e);
  });
  cdp.on('Network.webSocketWillSendHandshakeRequest', (ev) => {
    const e = byId.get(ev.requestId);
    if (e) applyHeaders(e, ev.request.headers);
  });
  cdp.on('Network.webSocketHandshakeResponseReceived', (ev) => {
    const e = byId.get(ev.requestId);
    if (e) e.status = ev.response.status;
  });
  cdp.on('Network.webSocketFrameError', (ev) => {
    const e = byId.get(ev.requestId);
    if (e) {
      e.failure = ev.errorMessage;
      const status = /response code: (\d+)/.exec(ev.errorMessage);
      if (status) e.status = Number(status[1]);
    }
  });
  cdp.on('Network.loadingFailed', (ev) => {
    const e = byId.get(ev.requestId);
    if (e) e.failure = ev.blockedReason ?? ev.corsErrorStatus?.corsError ?? ev.errorText;
  });
  cdp.on('Fetch.requestPaused', (ev) => {
    work.push(
      (async () => {
        const e = ev.networkId === undefined ? undefined : byId.get(ev.networkId);
        if (e && ev.responseStatusCode !== undefined) {
          e.status = ev.responseStatusCode;
          try {
            const b = await cdp.send('Fetch.getResponseBody', { requestId: ev.requestId });
            const text = b.base64Encoded ? Buffer.from(b.body, 'base64').toString('utf8') : b.body;
            e.code = (JSON.parse(text) as { error?: { code?: string } }).error?.code ?? null;
          } catch {
            e.code = null;
          }
        }
        await cdp.send('Fetch.continueRequest', { requestId: ev.requestId }).catch(() => undefined);
      })(),
    );
  });
  await cdp.send('Network.enable');
  await cdp.send('Fetch.enable', { patterns: [{ urlPattern: '*probe=*', requestStage: 'Response' }] });
  return async () => {
    // Events trail what the page saw: wait until every request that was sent has its answer (or 2 s passed).
    const unanswered = (): boolean => into.some((e) => e.status === null && e.method !== 'WS' && !e.failure.startsWith('Preflight'));
    for (const until = Date.now() + 2_000; unanswered() && Date.now() < until; ) await new Promise((r) => setTimeout(r, 20));
    await Promise.all(work);
    await cdp.detach().catch(() => undefined);
  };
}

function targets(scanId: string): Target[] {
  return [
    { name: 'decision', method: 'POST', path: `/v1/scans/${scanId}/decision`, body: { verdict: 'clear', comment: 'attack' }, formCode: ORIGIN },
    {
      name: 'reference-enrol',
      method: 'POST',
      path: '/v1/references',
      body: { id: 'attack-ref', hsCodes: [], samples: [{ scanId, lineStart: 0, lineEnd: 10 }], name: 'Attack' },
      formCode: ORIGIN,
    },
    { name: 'reference-delete', method: 'DELETE', path: '/v1/references/attack-ref', formCode: 'SCANLINE_ERR_HTTP_NOT_FOUND' },
    { name: 'sign-out', method: 'DELETE', path: '/v1/session', formCode: ORIGIN },
    { name: 'sign-in', method: 'POST', path: '/v1/session', body: { username: MALLORY, password: MALLORY_PASSWORD.slice(0, -1) }, formCode: ORIGIN },
    { name: 'import', method: 'POST', path: '/v1/imports', body: { dicom: 'not an image' }, formCode: ORIGIN },
  ];
}

/** The page every attacker origin serves: nothing but a document to run scripts in. */
function startAttackerServer(): Promise<Server> {
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>attacker</title><body></body>');
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

/**
 * Runs every probe from `attacker` (a page of another origin) against the gateway at `base`; probes are tagged
 * `?probe=<tag>-<target>-<kind>` so the network events can be matched to them.
 */
async function attack(attacker: Page, base: string, tag: string, list: Target[]): Promise<{ seen: Seen; ws: WsSeen }> {
  return attacker.evaluate(
    async ({ base, tag, list, mallory }) => {
      const seen: Record<string, string> = {};
      const outcome = async (p: Promise<Response>): Promise<string> => {
        try {
          const r = await p;
          return r.type === 'opaque' ? `opaque ${r.status}` : `read ${r.status} ${await r.text()}`;
        } catch (err) {
          return `error ${(err as Error).name}`;
        }
      };
      for (const t of list) {
        const url = `${base}${t.path}?probe=${tag}-${t.name}`;
        // The sign-in body the route would accept: the attacker's real password (the form adds its trailing `=`).
        const json = t.body === undefined ? undefined : JSON.stringify(t.name === 'sign-in' ? { ...t.body, password: mallory } : t.body);
        seen[`cors ${t.name}`] = await outcome(
          fetch(`${url}-cors`, { method: t.method, mode: 'cors', credentials: 'include', headers: { 'content-type': 'application/json' }, body: json }),
        );
        seen[`no-cors ${t.name}`] = await outcome(
          fetch(`${url}-nocors`, { method: t.method, mode: 'no-cors', credentials: 'include', headers: { 'content-type': 'text/plain' }, body: json }),
        );
        // A form can only POST (a DELETE route gets a POST with an empty body: no method override may act on it).
        // text/plain sends `name=value\r\n`: name = the JSON up to its last `"}`, value = `"}`, so the body is the JSON
        // with `=` added to its last string: valid JSON the route would accept.
        const frame = document.createElement('iframe');
        frame.name = `frame-${tag}-${t.name}`;
        document.body.append(frame);
        const form = document.createElement('form');
        form.method = 'POST';
        form.enctype = 'text/plain';
        form.action = `${url}-form`;
        form.target = frame.name;
        if (t.body !== undefined) {
          const text = JSON.stringify(t.body);
          const input = document.createElement('input');
          input.type = 'hidden';
          input.name = text.slice(0, -2);
          input.value = '"}';
          form.append(input);
        }
        document.body.append(form);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, 5_000);
          frame.addEventListener('load', () => {
            clearTimeout(timer);
            resolve();
          });
          form.submit();
        });
      }
      // Reading: the CSRF token (which would open every door) and the scans.
      seen['read session'] = await outcome(fetch(`${base}/v1/session?probe=${tag}-read-session-cors`, { mode: 'cors', credentials: 'include' }));
      seen['read scans'] = await outcome(fetch(`${base}/v1/scans?probe=${tag}-read-scans-cors`, { mode: 'cors', credentials: 'include' }));
      seen['read scans no-cors'] = await outcome(fetch(`${base}/v1/scans?probe=${tag}-read-scans-nocors`, { mode: 'no-cors', credentials: 'include' }));
      // The live feed with the officer's cookie.
      const ws = await new Promise<{ opened: boolean; messages: number; closeCode: number }>((resolve) => {
        const r = { opened: false, messages: 0, closeCode: -1 };
        const s = new WebSocket(`${base.replace(/^http/, 'ws')}/v1/operator?probe=${tag}-feed`);
        // A feed that opens is held 5 s to count what it sends; a refused one closes at once (1006).
        const timer = setTimeout(() => {
          s.close();
          resolve(r);
        }, 5_000);
        s.onopen = () => {
          r.opened = true;
        };
        s.onmessage = () => {
          r.messages++;
        };
        s.onclose = (e) => {
          r.closeCode = e.code;
          clearTimeout(timer);
          resolve(r);
        };
      });
      return { seen, ws };
    },
    { base, tag, list, mallory: MALLORY_PASSWORD },
  );
}

it('can run: chromium is installed', (ctx) => needTool(ctx, CHROMIUM, 'chromium'));

describe.skipIf(skipWithout(CHROMIUM))('pages of another origin against a signed-in officer (chromium)', () => {
  let gw: TestGateway;
  let attackerServer: Server;
  let browser: Browser;
  let context: BrowserContext;
  let screen: Page;
  let scanId = '';

  beforeAll(async () => {
    gw = await startTestGateway();
    const sim = await simulatePortals({
      url: gw.portalUrl,
      portals: 1,
      credentials: gw.simulatorCredentials(1),
      trucks: 1,
      seed: 5400,
      speed: 'max',
      pixels: 256,
    });
    expect(sim.scansCompleted).toBe(1);
    scanId = sim.scans[0].scanId;
    await gw.identity.addAccount(OFFICER, 'officer', TEST_PERSON_PASSWORD, { name: 'test', address: null });
    await gw.identity.addAccount(MALLORY, 'viewer', MALLORY_PASSWORD, { name: 'test', address: null });
    attackerServer = await startAttackerServer();
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    // One context: the attacker's pages share the officer's cookie jar, as tabs of one browser do.
    context = await browser.newContext();
    screen = await context.newPage();
    await screen.goto(`${gw.httpUrl}/`);
    await screen.waitForSelector('#sign-in:not([hidden])');
    await screen.fill('#sign-in-user', OFFICER);
    await screen.fill('#sign-in-password', TEST_PERSON_PASSWORD);
    await screen.click('#sign-in-submit');
    await screen.waitForSelector('#conn[data-state="open"]', { timeout: 20_000 }).catch(async (err: Error) => {
      const why = await screen.evaluate(() => ({
        conn: document.querySelector('#conn')?.textContent,
        signInError: document.querySelector('#sign-in-error')?.textContent,
      }));
      throw new Error(`the operator screen did not connect: ${JSON.stringify(why)} (${err.message})`);
    });
    expect(await screen.textContent('#user-name')).toBe(OFFICER);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await new Promise((resolve) => attackerServer?.close(resolve));
    await gw?.dispose();
  });

  it('refuses every probe of another origin, records nothing, and records the same decision from its own page', async () => {
    const gwPort = new URL(gw.httpUrl).port;
    const attackerPort = (attackerServer.address() as AddressInfo).port;
    const base = `http://127.0.0.1:${gwPort}`;
    expect(gw.httpUrl).toBe(base);
    const list = targets(scanId);
    const origins = [
      // Same site as the gateway (127.0.0.1): the session cookie goes along.
      { tag: 'same-site', origin: `http://127.0.0.1:${attackerPort}`, cookie: true },
      // Another site (localhost is not 127.0.0.1): SameSite=Strict keeps the cookie home.
      { tag: 'cross-site', origin: `http://localhost:${attackerPort}`, cookie: false },
    ];

    for (const { tag, origin, cookie } of origins) {
      const net: NetEvent[] = [];
      const attacker = await context.newPage();
      await attacker.goto(`${origin}/`);
      const stop = await watch(context, attacker, net);
      const { seen, ws } = await attack(attacker, base, tag, list);
      await stop();
      await attacker.close();
      const on = (probe: string): Omit<NetEvent, 'probe'>[] => net.filter((e) => e.probe === `${tag}-${probe}`).map(({ probe: _, ...e }) => e);

      // The page learnt nothing: every fetch failed (no CORS headers on the preflight or the answer; CORP same-origin
      // on no-cors answers; DELETE cannot be sent no-cors), and the feed never opened.
      expect(
        Object.entries(seen).filter(([, v]) => v !== 'error TypeError'),
        tag,
      ).toEqual([]);
      expect(Object.keys(seen)).toHaveLength(list.length * 2 + 3);
      expect(ws, `${tag} feed`).toEqual({ opened: false, messages: 0, closeCode: 1006 });

      // On the wire: what reached the gateway carried the attacker's Origin and was refused.
      for (const t of list) {
        // The JSON fetch: its preflight (no credentials) got 404 without CORS headers; the request itself was not sent.
        const cors = on(`${t.name}-cors`);
        expect(cors, `${tag} cors ${t.name}`).toHaveLength(2);
        expect(cors, `${tag} cors ${t.name}`).toEqual(
          expect.arrayContaining([
            { method: 'OPTIONS', cookie: false, origin, status: 404, code: 'SCANLINE_ERR_HTTP_NOT_FOUND', failure: '' },
            { method: t.method, cookie: false, origin: null, status: null, code: null, failure: 'PreflightMissingAllowOriginHeader' },
          ]),
        );
        // no-cors: sent with the cookie (same site) and refused 403; its body is hidden by CORP even from the devtools
        // layer, so the form below is where the refusal's code shows.
        expect(on(`${t.name}-nocors`), `${tag} no-cors ${t.name}`).toEqual(
          t.method === 'POST' ? [{ method: 'POST', cookie, origin, status: 403, code: null, failure: 'corp-not-same-origin' }] : [],
        );
        expect(on(`${t.name}-form`), `${tag} form ${t.name}`).toEqual([
          { method: 'POST', cookie, origin, status: t.formCode === ORIGIN ? 403 : 404, code: t.formCode, failure: 'other' },
        ]);
      }
      // Reads were answered (GET is not state-changing) but the browser kept them from the page: no CORS header, CORP.
      expect(on('read-session-cors')).toEqual([
        { method: 'GET', cookie, origin, status: cookie ? 200 : 401, code: cookie ? null : 'SCANLINE_ERR_AUTH_REQUIRED', failure: 'MissingAllowOriginHeader' },
      ]);
      expect(on('read-scans-cors')).toEqual([
        { method: 'GET', cookie, origin, status: cookie ? 200 : 401, code: cookie ? null : 'SCANLINE_ERR_AUTH_REQUIRED', failure: 'MissingAllowOriginHeader' },
      ]);
      expect(on('read-scans-nocors')).toEqual([
        { method: 'GET', cookie, origin: null, status: cookie ? 200 : 401, code: null, failure: 'corp-not-same-origin' },
      ]);
      // The feed's upgrade was refused (the browser reports the status, not the body).
      expect(on('feed')).toEqual([
        { method: 'WS', cookie: false, origin, status: 403, code: null, failure: 'Error during WebSocket handshake: Unexpected response code: 403' },
      ]);
    }

    // Nothing recorded: no decision, no reference, no sign-out, no sign-in as the attacker, the officer still in.
    expect(gw.store.listDecisions(scanId)).toEqual([]);
    expect(gw.store.listScans({ portalId: 'import' })).toEqual([]);
    expect(gw.results).toBeNull(); // inference off: there is no library to change; the guard refused before the route
    const people = gw.identity
      .listAudit({ limit: 1000 })
      .filter(
        (e) => e.action.startsWith('session.') || e.action.startsWith('decision.') || e.action.startsWith('reference.') || e.action.startsWith('import.'),
      );
    expect(people.map((e) => `${e.action} ${e.target} ${e.outcome}`)).toEqual([`session.login ${OFFICER} ok`]);
    const session = await screen.evaluate(async () => {
      const r = await fetch('/v1/session');
      return { status: r.status, body: (await r.json()) as { user: string; csrfToken: string } };
    });
    expect(session.status).toBe(200);
    expect(session.body.user).toBe(OFFICER);
    expect(await screen.getAttribute('#conn', 'data-state')).toBe('open');

    // The control: the same decision from the gateway's own page, with the session's CSRF token, is recorded.
    const own = await screen.evaluate(
      async ({ scanId, csrfToken }) => {
        const r = await fetch(`/v1/scans/${scanId}/decision`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'x-csrf-token': csrfToken },
          body: JSON.stringify({ verdict: 'clear', comment: 'from the screen' }),
        });
        return { status: r.status, body: (await r.json()) as { operatorId: string; verdict: string } };
      },
      { scanId, csrfToken: session.body.csrfToken },
    );
    expect(own.status).toBe(201);
    expect(own.body).toMatchObject({ operatorId: OFFICER, verdict: 'clear' });
    expect(gw.store.listDecisions(scanId).map((d) => [d.operatorId, d.comment])).toEqual([[OFFICER, 'from the screen']]);
    expect(gw.identity.listAudit({ limit: 10, action: 'decision.record' }).map((e) => [e.actor, e.target])).toEqual([[OFFICER, scanId]]);
  }, 60_000);
});
