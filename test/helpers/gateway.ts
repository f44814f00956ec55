/**
 * Starts a real gateway on 127.0.0.1 with a fresh data directory for one test file. Inference is off unless the
 * test turns it on (`inference: { enabled: true }`): ingest tests need no models and start faster without them.
 *
 * Requests per second per address are not limited (every test client is 127.0.0.1); the limit has its own test.
 * Identities are real: the gateway's first account is `admin` with TEST_ADMIN_PASSWORD; portal credentials, API
 * tokens and signed-in people are made through the gateway's own IdentityService on first use.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig, type GatewayConfigInput } from '../../src/config/index.js';
import type { Role } from '../../src/identity/index.js';
import { silentLogger } from '../../src/log/index.js';
import { startGateway, type Gateway, type GatewayOptions } from '../../src/main.js';
import { forgetPortalCredentials, registerPortalCredentials } from './portal-credentials.js';

export const TEST_ADMIN_PASSWORD = 'test-admin-password-1';
/** Password of the people made by signIn(). */
export const TEST_PERSON_PASSWORD = 'test-person-password-1';

export interface SignedInPerson {
  user: string;
  role: Role;
  /** `scanline_session=<secret>`, for a Cookie header. */
  cookie: string;
  csrfToken: string;
  /** Headers of a state-changing JSON request of this person (cookie, CSRF token, content type). */
  headers: Record<string, string>;
}

export interface TestGateway extends Gateway {
  dataDir: string;
  /** The credential of a portal id on this gateway, made on first use. */
  portalCredential(portalId: string): string;
  /** Credentials of several portal ids, by id. */
  portalCredentials(portalIds: readonly string[]): Record<string, string>;
  /** Credentials of the simulator's portals `<prefix>-1..n` (simulatePortals' `credentials`). */
  simulatorCredentials(portals?: number, prefix?: string): Record<string, string>;
  /** An API token of a program account of `role` (`<role>-bot`), made on first use. */
  tokenOf(role: Role): string;
  /** An API token of the program account `name` (made with `role` on first use, default officer). */
  accountToken(name: string, role?: Role): string;
  /** `{authorization: 'Bearer …'}` with the token of `role` (default viewer). */
  authHeaders(role?: Role): Record<string, string>;
  /** Signs in a person of `role` (`<role>-person`, made on first use) over HTTP. */
  signIn(role: Role): Promise<SignedInPerson>;
  /** Closes the gateway and removes its data directory. */
  dispose(): Promise<void>;
}

export async function startTestGateway(config: GatewayConfigInput = {}, options: GatewayOptions = {}, dataDir?: string): Promise<TestGateway> {
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), 'scanline-test-'));
  const gateway = await startGateway(
    resolveConfig(
      {
        // Every test client is 127.0.0.1 and some make hundreds of requests a second (the access matrix); the rate
        // limit itself is tested with its own setting (test/server/limits.test.ts).
        server: { host: '127.0.0.1', port: 0, requestsPerSecondPerAddress: 1_000_000 },
        // A 1 MiB space reserve instead of 64: a hundred test gateways would otherwise write 6 GB of it
        // (test/storage/disk-full.test.ts sets its own).
        storage: { dataDir: dir, reserveBytes: 1024 * 1024 },
        log: { level: 'silent' },
        inference: { enabled: false },
      },
      config,
    ),
    { log: silentLogger(), bootstrapAdminPassword: TEST_ADMIN_PASSWORD, ...options },
  );
  const by = { name: 'test', address: null };
  const portals = new Map<string, string>();
  const portalCredential = (portalId: string): string => {
    let c = portals.get(portalId);
    if (c === undefined) {
      c = gateway.identity.setPortalCredential(portalId, by).credential;
      portals.set(portalId, c);
    }
    return c;
  };
  const accountTokens = new Map<string, string>();
  const accountToken = (name: string, role: Role = 'officer'): string => {
    let t = accountTokens.get(name);
    if (t === undefined) {
      if (!gateway.identity.listAccounts().some((a) => a.name === name)) gateway.identity.addProgramAccount(name, role, by);
      t = gateway.identity.createToken(name, { label: 'test' }, by).token;
      accountTokens.set(name, t);
    }
    return t;
  };
  const tokenOf = (role: Role): string => accountToken(`${role}-bot`, role);
  registerPortalCredentials(gateway.portalUrl, portalCredential);
  return Object.assign(gateway, {
    dataDir: dir,
    portalCredential,
    portalCredentials: (ids: readonly string[]) => Object.fromEntries(ids.map((id) => [id, portalCredential(id)])),
    simulatorCredentials: (n = 1, prefix = 'sim') =>
      Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}-${i + 1}`, portalCredential(`${prefix}-${i + 1}`)])),
    tokenOf,
    accountToken,
    authHeaders: (role: Role = 'viewer') => ({ authorization: `Bearer ${tokenOf(role)}` }),
    signIn: (role: Role) => signIn(gateway, role),
    async dispose() {
      forgetPortalCredentials(gateway.portalUrl);
      await gateway.close(2_000);
      if (!dataDir) rmSync(dir, { recursive: true, force: true });
    },
  });
}

/** Signs in `<role>-person` (made on first use) with POST /v1/session, as the operator screen does. */
export async function signIn(gateway: Gateway, role: Role, name = `${role}-person`): Promise<SignedInPerson> {
  if (!gateway.identity.listAccounts().some((a) => a.name === name)) {
    await gateway.identity.addAccount(name, role, TEST_PERSON_PASSWORD, { name: 'test', address: null });
  }
  const res = await fetch(`${gateway.httpUrl}/v1/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: name, password: TEST_PERSON_PASSWORD }),
  });
  if (res.status !== 201) throw new Error(`signing in ${name} answered ${res.status}: ${await res.text()}`);
  const body = (await res.json()) as { csrfToken: string };
  const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0];
  return { user: name, role, cookie, csrfToken: body.csrfToken, headers: { cookie, 'x-csrf-token': body.csrfToken, 'content-type': 'application/json' } };
}

/** GET `path` as a viewer (an API token), the body parsed as JSON. */
export async function getJson(gateway: TestGateway, path: string, role: Role = 'viewer'): Promise<{ status: number; body: any }> {
  const res = await fetch(`${gateway.httpUrl}${path}`, { headers: gateway.authHeaders(role) });
  return { status: res.status, body: await res.json() };
}
