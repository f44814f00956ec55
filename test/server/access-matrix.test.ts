/**
 * Who may use what, as a table: every HTTP route and WebSocket of the gateway × every kind of caller (no
 * credentials, wrong credentials, an ended session, an API token of each role, a browser session of each role, a
 * session without its CSRF token) → the status it gets. The table must name exactly the routes the gateway
 * registers (gateway.routes): a route added without an entry here fails the first test.
 *
 * The gateway runs the demo models and has one scored scan, so that what a caller is allowed gets the route's real
 * success status (200, 201, 204, 101), not an error of the stage behind it.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ROLES, type Role, roleAllows } from '../../src/identity/index.js';
import type { RouteSpec } from '../../src/server/index.js';
import { simulatePortals } from '../../tools/simulator/index.js';
import { testDx } from '../helpers/dicos.js';
import { TEST_ADMIN_PASSWORD, type SignedInPerson, startTestGateway, type TestGateway } from '../helpers/gateway.js';

interface Caller {
  name: string;
  headers(): Record<string, string>;
  /** The role the credentials carry; null: none that are valid. */
  role: Role | null;
  /** A browser session: state-changing requests carry its CSRF token unless `noCsrf`. */
  session?: boolean;
  noCsrf?: boolean;
}

interface Probe {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  /** A JSON body. */
  body?: unknown;
  /** A body of another type (an image to import). */
  raw?: { contentType: string; bytes: Uint8Array };
}

/** A small single-energy DX For Processing, as a scanner exports it: what POST /v1/imports takes. */
function dxForImport(): Uint8Array {
  return testDx({ energy: 'single', rows: 64, columns: 96, fill: (i) => 20_000 + ((i * 7) % 30_000) }).bytes;
}

interface Entry {
  /** The access the route must declare. */
  access: RouteSpec['access'];
  /** Status of a caller the route allows. */
  ok: number;
  /** The request (a WebSocket upgrade for WS routes); `caller` names what the request may create for itself. */
  probe(caller: string): Probe | 'ws';
}

let scanId = '';
let lines = 0;
/** Pending reference proposals made for each caller to approve or reject (by the 'proposer' supervisor). */
const toApprove = new Map<string, number>();
const toReject = new Map<string, number>();
let someProposal = 0;

/** Every route of the gateway, keyed `METHOD path` as registered. */
const TABLE: Record<string, Entry> = {
  'WS /v1/portal': { access: 'portal', ok: 101, probe: () => 'ws' },
  'WS /v1/operator': { access: 'viewer', ok: 101, probe: () => 'ws' },
  'POST /v1/session': {
    access: 'public',
    ok: 201,
    probe: () => ({ method: 'POST', path: '/v1/session', body: { username: 'admin', password: TEST_ADMIN_PASSWORD } }),
  },
  'GET /v1/session': { access: 'signedIn', ok: 200, probe: () => ({ method: 'GET', path: '/v1/session' }) },
  'GET /v1/session/providers': { access: 'public', ok: 200, probe: () => ({ method: 'GET', path: '/v1/session/providers' }) },
  // This gateway has no OpenID provider configured: the routes exist and answer 404 to everyone alike
  // (test/identity/oidc.test.ts signs in through a real provider).
  'GET /v1/session/oidc': { access: 'public', ok: 404, probe: () => ({ method: 'GET', path: '/v1/session/oidc' }) },
  'GET /v1/session/oidc/callback': { access: 'public', ok: 404, probe: () => ({ method: 'GET', path: '/v1/session/oidc/callback?code=x&state=y' }) },
  'GET /v1/audit': { access: 'admin', ok: 200, probe: () => ({ method: 'GET', path: '/v1/audit?limit=5' }) },
  'GET /v1/scans': { access: 'viewer', ok: 200, probe: () => ({ method: 'GET', path: '/v1/scans' }) },
  'GET /v1/scans/:scanId': { access: 'viewer', ok: 200, probe: () => ({ method: 'GET', path: `/v1/scans/${scanId}` }) },
  'GET /v1/scans/:scanId/results': { access: 'viewer', ok: 200, probe: () => ({ method: 'GET', path: `/v1/scans/${scanId}/results` }) },
  'GET /v1/scans/:scanId/image': { access: 'viewer', ok: 200, probe: () => ({ method: 'GET', path: `/v1/scans/${scanId}/image?energy=low&format=png16` }) },
  'GET /v1/references': { access: 'viewer', ok: 200, probe: () => ({ method: 'GET', path: '/v1/references' }) },
  // Four eyes (references.approvals 2): a change is a proposal until another supervisor approves it.
  'POST /v1/references': {
    access: 'supervisor',
    ok: 202,
    probe: (caller) => ({
      method: 'POST',
      path: '/v1/references',
      body: { id: `ref-${caller}`, name: `Reference of ${caller}`, hsCodes: [], samples: [{ scanId, lineStart: 0, lineEnd: lines }] },
    }),
  },
  'GET /v1/references/:id': { access: 'viewer', ok: 200, probe: () => ({ method: 'GET', path: '/v1/references/shared-ref' }) },
  'DELETE /v1/references/:id': { access: 'supervisor', ok: 202, probe: () => ({ method: 'DELETE', path: '/v1/references/shared-ref' }) },
  'GET /v1/reference-proposals': { access: 'supervisor', ok: 200, probe: () => ({ method: 'GET', path: '/v1/reference-proposals?state=pending' }) },
  'GET /v1/reference-proposals/:id': { access: 'supervisor', ok: 200, probe: () => ({ method: 'GET', path: `/v1/reference-proposals/${someProposal}` }) },
  'POST /v1/reference-proposals/:id/approve': {
    access: 'supervisor',
    ok: 200,
    probe: (caller) => ({ method: 'POST', path: `/v1/reference-proposals/${toApprove.get(caller)}/approve` }),
  },
  'POST /v1/reference-proposals/:id/reject': {
    access: 'supervisor',
    ok: 200,
    probe: (caller) => ({ method: 'POST', path: `/v1/reference-proposals/${toReject.get(caller)}/reject`, body: { reason: 'not this one' } }),
  },
  'GET /livez': { access: 'public', ok: 200, probe: () => ({ method: 'GET', path: '/livez' }) },
  'GET /readyz': { access: 'public', ok: 200, probe: () => ({ method: 'GET', path: '/readyz' }) },
  'GET /metrics': { access: 'metrics', ok: 200, probe: () => ({ method: 'GET', path: '/metrics' }) },
  'GET /': { access: 'public', ok: 200, probe: () => ({ method: 'GET', path: '/' }) },
  'GET /ui/:file': { access: 'public', ok: 200, probe: () => ({ method: 'GET', path: '/ui/app.js' }) },
  'POST /v1/scans/:scanId/decision': {
    access: 'officer',
    ok: 201,
    probe: (caller) => ({ method: 'POST', path: `/v1/scans/${scanId}/decision`, body: { verdict: 'inspect', comment: `by ${caller}` } }),
  },
  'GET /v1/scans/:scanId/decisions': { access: 'viewer', ok: 200, probe: () => ({ method: 'GET', path: `/v1/scans/${scanId}/decisions` }) },
  'GET /v1/scans/:scanId/dicos': { access: 'viewer', ok: 200, probe: () => ({ method: 'GET', path: `/v1/scans/${scanId}/dicos` }) },
  'POST /v1/imports': {
    access: 'officer',
    ok: 201,
    probe: () => ({ method: 'POST', path: '/v1/imports', raw: { contentType: 'application/dicom', bytes: dxForImport() } }),
  },
  // Last: a session caller signs itself out here (it signs in again before its next route).
  'DELETE /v1/session': { access: 'signedIn', ok: 204, probe: () => ({ method: 'DELETE', path: '/v1/session' }) },
};

/** The status a caller must get from a route. */
function expectedStatus(entry: Entry, route: string, caller: Caller): number {
  if (entry.access === 'public' || entry.access === 'portal') return entry.ok;
  if (caller.role === null) return 401;
  if (!roleAllows(caller.role, entry.access)) return 403;
  const stateChanging = route.startsWith('POST ') || route.startsWith('DELETE ');
  if (caller.noCsrf && stateChanging) return 403;
  return entry.ok;
}

describe('access matrix: every route x every kind of caller', () => {
  let gw: TestGateway;
  const sessions = new Map<string, SignedInPerson>();
  const callers: Caller[] = [];

  beforeAll(async () => {
    gw = await startTestGateway({ inference: { enabled: true } });
    const sim = await simulatePortals({ url: gw.portalUrl, portals: 1, credentials: gw.simulatorCredentials(1), trucks: 1, seed: 5300, speed: 'max' });
    expect(sim.scansCompleted).toBe(1);
    scanId = sim.scans[0].scanId;
    lines = gw.store.getScan(scanId)?.lines ?? 0;
    await gw.results?.drain(60_000);
    // A reference everyone may read.
    const propose = async (id: string): Promise<number> => {
      const res = await fetch(`${gw.httpUrl}/v1/references`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${gw.accountToken('proposer', 'supervisor')}` },
        body: JSON.stringify({ id, name: `Reference ${id}`, hsCodes: [], samples: [{ scanId, lineStart: 0, lineEnd: lines }] }),
      });
      expect(res.status).toBe(202);
      return ((await res.json()) as { proposal: { id: number } }).proposal.id;
    };
    const shared = await propose('shared-ref');
    someProposal = shared;
    const approve = await fetch(`${gw.httpUrl}/v1/reference-proposals/${shared}/approve`, { method: 'POST', headers: gw.authHeaders('supervisor') });
    expect(approve.status).toBe(200);

    callers.push(
      { name: 'none', role: null, headers: () => ({}) },
      { name: 'wrong-token', role: null, headers: () => ({ authorization: 'Bearer slt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }) },
      { name: 'not-bearer', role: null, headers: () => ({ authorization: `Basic ${Buffer.from(`admin:${TEST_ADMIN_PASSWORD}`).toString('base64')}` }) },
      { name: 'ended-session', role: null, headers: () => ({ cookie: 'scanline_session=sls_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' }) },
    );
    for (const role of ROLES) callers.push({ name: `token-${role}`, role, headers: () => gw.authHeaders(role) });
    for (const role of ROLES) {
      sessions.set(role, await gw.signIn(role));
      callers.push({ name: `session-${role}`, role, session: true, headers: () => sessions.get(role)?.headers ?? {} });
    }
    for (const c of [...callers.map((c) => c.name), 'session-officer-no-csrf']) {
      toApprove.set(c, await propose(`approve-${c}`));
      toReject.set(c, await propose(`reject-${c}`));
    }
    callers.push({
      name: 'session-officer-no-csrf',
      role: 'officer',
      session: true,
      noCsrf: true,
      headers: () => {
        const { 'x-csrf-token': _, ...rest } = sessions.get('officer')?.headers ?? {};
        return rest;
      },
    });
  }, 180_000);

  afterAll(async () => {
    await gw?.dispose();
  });

  it('names every route the gateway registers, with the access it declares', () => {
    const registered = Object.fromEntries(gw.routes.map((r) => [`${r.method} ${r.path}`, r.access]));
    expect(Object.keys(registered).sort()).toEqual(Object.keys(TABLE).sort());
    for (const [route, entry] of Object.entries(TABLE)) expect([route, registered[route]]).toEqual([route, entry.access]);
  });

  it('is what docs/security.md says, route for route', () => {
    const doc = readFileSync(new URL('../../docs/security.md', import.meta.url), 'utf8');
    const section = doc.slice(doc.indexOf('## Who may use what'), doc.indexOf('## Browsers'));
    const rows = [...section.matchAll(/^\| `([A-Z]+ \/[^`]*)` \| (\w+)/gm)].map((m) => `${m[1]} ${m[2]}`);
    expect(rows.sort()).toEqual(gw.routes.map((r) => `${r.method} ${r.path} ${r.access}`).sort());
  });

  it('gives every caller the status the table says, and records acts under the caller', async () => {
    const got: string[] = [];
    const want: string[] = [];
    for (const caller of callers) {
      for (const [route, entry] of Object.entries(TABLE)) {
        // A session that signed out on the previous caller's pass is signed in again.
        if (caller.session && caller.role) {
          const role = caller.role;
          if ((await fetch(`${gw.httpUrl}/v1/session`, { headers: sessions.get(role)?.headers })).status !== 200) sessions.set(role, await gw.signIn(role));
        }
        const probe = entry.probe(caller.name);
        const status = probe === 'ws' ? await upgradeStatus(gw, route.slice(3), caller.headers()) : await request(gw, probe, caller.headers());
        got.push(`${caller.name} ${route} -> ${status}`);
        want.push(`${caller.name} ${route} -> ${expectedStatus(entry, route, caller)}`);
      }
    }
    expect(got).toEqual(want);
    // Each allowed decision is recorded under the account that made it, never another.
    const decisions = gw.store.listDecisions(scanId);
    expect(decisions.map((d) => [d.operatorId, d.comment]).sort()).toEqual(
      ['officer', 'supervisor', 'admin']
        .flatMap((r) => [
          [`${r}-bot`, `by token-${r}`],
          [`${r}-person`, `by session-${r}`],
        ])
        .sort(),
    );
    const audited = gw.identity.listAudit({ limit: 100, action: 'decision.record' });
    expect(audited.map((e) => e.actor).sort()).toEqual(decisions.map((d) => d.operatorId).sort());
  }, 180_000);
});

async function request(gw: TestGateway, probe: Probe, headers: Record<string, string>): Promise<number> {
  const res = await fetch(`${gw.httpUrl}${probe.path}`, {
    method: probe.method,
    headers: {
      ...(probe.body !== undefined ? { 'content-type': 'application/json' } : {}),
      ...headers,
      // A session's headers name JSON; an image says what it is.
      ...(probe.raw !== undefined ? { 'content-type': probe.raw.contentType } : {}),
    },
    ...(probe.body !== undefined ? { body: JSON.stringify(probe.body) } : {}),
    ...(probe.raw !== undefined ? { body: Buffer.from(probe.raw.bytes) } : {}),
  });
  await res.arrayBuffer();
  return res.status;
}

/** 101 when the upgrade is accepted (the socket is closed at once), else the refusal's status. */
function upgradeStatus(gw: TestGateway, path: string, headers: Record<string, string>): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${gw.port}${path}`, { headers, perMessageDeflate: false });
    ws.on('open', () => {
      ws.close();
      resolve(101);
    });
    ws.on('unexpected-response', (_req, res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    ws.on('error', () => undefined);
  });
}
