/**
 * `scanline user | token | portal | audit` as an administrator runs them (compiled dist/ through bin/scanline.js, a
 * child process per command, the password on standard input, one data directory shared by the whole file): what
 * each prints and its exit code, that secrets appear once on stdout and never in listings, that every change is
 * audited as `cli:<os user>`, and that a real gateway started on the same data directory honours what the commands
 * did (sign-in only while enabled, a revoked token refused, also when revoked while the gateway runs).
 * `npm test` builds dist/ first (pretest).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

const BIN = new URL('../bin/scanline.js', import.meta.url).pathname;
const ACTOR = `cli:${userInfo().username}`;
const ALICE_PASSWORD = 'alice-password-1';
const children: ChildProcess[] = [];
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'scanline-identity-cli-'));
});

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `scanline ARGS --data-dir DIR`, writing `stdin` (if any) to its standard input and closing it. */
function scanline(args: string[], stdin?: string): Promise<Ran> {
  // Without SCANLINE_* variables of the environment running the tests: the data directory is the flag's.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SCANLINE_')));
  const child = spawn(process.execPath, [BIN, ...args, '--data-dir', dir], { stdio: ['pipe', 'pipe', 'pipe'], env });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  if (stdin !== undefined) child.stdin!.write(stdin);
  child.stdin!.end();
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

/** Runs a command that must succeed; returns its stdout. */
async function ok(args: string[], stdin?: string): Promise<string> {
  const r = await scanline(args, stdin);
  expect(r.code, `scanline ${args.join(' ')}: ${r.stderr}`).toBe(0);
  return r.stdout;
}

async function signIn(g: TestGateway, username: string, password: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${g.httpUrl}/v1/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function statusWithToken(g: TestGateway, path: string, token: string): Promise<number> {
  const res = await fetch(`${g.httpUrl}${path}`, { headers: { authorization: `Bearer ${token}` } });
  await res.arrayBuffer();
  return res.status;
}

interface ListedToken {
  id: string;
  account: string;
  label: string | null;
  expiresAt: string | null;
  revokedAt: string | null;
}

// The tests run in order on one data directory: each builds on what the ones before did.
describe('scanline user | token | portal | audit', () => {
  let revokedToken = '';
  let promToken = '';

  it('user add reads the password from standard input; user list --json shows the account without its hash', async () => {
    const out = await ok(['user', 'add', 'alice', '--role', 'officer'], `${ALICE_PASSWORD}\n`);
    expect(out).toBe('account alice added with role officer\n');
    const accounts = JSON.parse(await ok(['user', 'list', '--json'])) as Array<Record<string, unknown>>;
    expect(accounts).toEqual([
      { name: 'alice', role: 'officer', source: 'local', disabled: false, password: true, createdAt: expect.any(String), updatedAt: expect.any(String) },
    ]);
    const table = await ok(['user', 'list']);
    expect(table.split('\n')[0]).toMatch(/^NAME\s+ROLE\s+STATE\s+SIGN-IN\s+CREATED$/);
    expect(table).toMatch(/alice\s+officer\s+enabled\s+password\s/);
  });

  it('refuses a password that is too short (exit 1, SCANLINE_ERR_ACCOUNT_INVALID), an empty one, and a taken name', async () => {
    const short = await scanline(['user', 'add', 'bob', '--role', 'viewer'], 'short\n');
    expect(short.code).toBe(1);
    expect(short.stderr).toContain('SCANLINE_ERR_ACCOUNT_INVALID: a password needs 12 to 1024 characters');
    expect(short.stdout).toBe('');
    const empty = await scanline(['user', 'add', 'bob', '--role', 'viewer'], '');
    expect(empty.code).toBe(1);
    expect(empty.stderr).toContain('SCANLINE_ERR_ACCOUNT_INVALID: no password on standard input');
    const taken = await scanline(['user', 'add', 'alice', '--role', 'admin'], 'another-password-2\n');
    expect(taken.code).toBe(1);
    expect(taken.stderr).toContain('SCANLINE_ERR_ACCOUNT_EXISTS');
    const badRole = await scanline(['user', 'add', 'bob', '--role', 'root'], 'bob-password-22\n');
    expect(badRole.code).toBe(1);
    expect(badRole.stderr).toContain('SCANLINE_ERR_ACCOUNT_INVALID: Expected a role');
    const names = (JSON.parse(await ok(['user', 'list', '--json'])) as Array<{ name: string }>).map((a) => a.name);
    expect(names).toEqual(['alice']);
  });

  it('exits 2 with the usage of the command on a bad invocation', async () => {
    const noRole = await scanline(['user', 'add', 'bob'], 'bob-password-22\n');
    expect(noRole.code).toBe(2);
    expect(noRole.stderr).toContain('SCANLINE_ERR_CLI_USAGE: --role is required (metrics, viewer, officer, supervisor, admin)');
    expect(noRole.stderr).toContain('Usage: scanline user <add|passwd|disable|enable|role|list>');
    const noName = await scanline(['user', 'add', '--role', 'viewer']);
    expect(noName.code).toBe(2);
    expect(noName.stderr).toContain('Expected one account name but received none');
    const unknownAction = await scanline(['token', 'mint']);
    expect(unknownAction.code).toBe(2);
    expect(unknownAction.stderr).toContain('Expected create, list or revoke after token but received "mint"');
    const badExpiry = await scanline(['token', 'create', '--user', 'alice', '--expires', '30']);
    expect(badExpiry.code).toBe(2);
    expect(badExpiry.stderr).toContain('Expected 1d..3650d for --expires but received "30"');
    const badLimit = await scanline(['audit', '--limit', '0']);
    expect(badLimit.code).toBe(2);
  });

  it('token create prints only the slt_ token on stdout; token list shows it without the secret', async () => {
    expect(await ok(['user', 'add', 'prom', '--role', 'metrics', '--no-password'])).toContain('account prom added with role metrics (no password');
    const created = await scanline(['token', 'create', '--user', 'prom', '--label', 'scrape', '--expires', '30d']);
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/^slt_[A-Za-z0-9_-]{43}\n$/);
    promToken = created.stdout.trim();
    expect(created.stderr).toMatch(/^token [0-9a-f]{12} for prom, expires \d{4}-\d\d-\d\dT[\d:.]+Z; shown once:\n$/);
    const listedJson = await ok(['token', 'list', '--json']);
    expect(listedJson).not.toContain(promToken);
    expect(listedJson).not.toContain('secretHash');
    const tokens = JSON.parse(listedJson) as ListedToken[];
    expect(tokens).toHaveLength(1);
    expect(tokens[0]).toMatchObject({ account: 'prom', label: 'scrape', revokedAt: null });
    expect(created.stderr).toContain(`token ${tokens[0].id} for prom`);
    // 30 days from now, give or take the run
    expect(Math.abs(Date.parse(tokens[0].expiresAt!) - (Date.now() + 30 * 86_400_000))).toBeLessThan(60_000);
    expect(JSON.parse(await ok(['token', 'list', '--user', 'alice', '--json']))).toEqual([]);
    // a token for an account that does not exist
    const ghost = await scanline(['token', 'create', '--user', 'ghost']);
    expect(ghost.code).toBe(1);
    expect(ghost.stderr).toContain('SCANLINE_ERR_ACCOUNT_UNKNOWN');
    expect(ghost.stdout).toBe('');
  });

  it('token revoke marks the token revoked; an unknown id exits 1', async () => {
    await ok(['user', 'add', 'bot', '--role', 'viewer', '--no-password']);
    revokedToken = (await ok(['token', 'create', '--user', 'bot', '--label', 'old'])).trim();
    const id = (JSON.parse(await ok(['token', 'list', '--user', 'bot', '--json'])) as ListedToken[])[0].id;
    expect(await ok(['token', 'revoke', id])).toBe(`token ${id} revoked\n`);
    const listed = JSON.parse(await ok(['token', 'list', '--user', 'bot', '--json'])) as ListedToken[];
    expect(listed[0]).toMatchObject({ id, label: 'old', expiresAt: null, revokedAt: expect.any(String) });
    const table = await ok(['token', 'list']);
    expect(table).toMatch(new RegExp(`${id}\\s+bot\\s+old\\s+revoked\\s+never\\s+never`));
    expect(table).toMatch(/prom\s+scrape\s+active\s/);
    const unknown = await scanline(['token', 'revoke', 'ffffffffffff']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('SCANLINE_ERR_TOKEN_UNKNOWN');
  });

  it('portal add --json prints a map of slp_ credentials; adding again rotates; portal revoke marks it revoked', async () => {
    const made = JSON.parse(await ok(['portal', 'add', 'lane-1', 'lane-2', '--json'])) as Record<string, string>;
    expect(Object.keys(made)).toEqual(['lane-1', 'lane-2']);
    for (const c of Object.values(made)) expect(c).toMatch(/^slp_[A-Za-z0-9_-]{43}$/);
    expect(made['lane-1']).not.toBe(made['lane-2']);
    const plain = await scanline(['portal', 'add', 'lane-3']);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(/^lane-3 slp_[A-Za-z0-9_-]{43}\n$/);
    const rotated = JSON.parse(await ok(['portal', 'add', 'lane-2', '--json'])) as Record<string, string>;
    expect(rotated['lane-2']).toMatch(/^slp_/);
    expect(rotated['lane-2']).not.toBe(made['lane-2']);
    expect(await ok(['portal', 'revoke', 'lane-1'])).toContain('portal lane-1 revoked');
    const portals = JSON.parse(await ok(['portal', 'list', '--json'])) as Array<{ portalId: string; revokedAt: string | null }>;
    expect(portals.map((p) => [p.portalId, p.revokedAt === null ? 'active' : 'revoked'])).toEqual([
      ['lane-1', 'revoked'],
      ['lane-2', 'active'],
      ['lane-3', 'active'],
    ]);
    expect(JSON.stringify(portals)).not.toMatch(/slp_|credentialHash/);
    const bad = await scanline(['portal', 'add', 'lane 4']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('SCANLINE_ERR_PORTAL_INVALID');
    const unknown = await scanline(['portal', 'revoke', 'lane-9']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('SCANLINE_ERR_PORTAL_UNKNOWN');
  });

  it('user disable and user role change the account', async () => {
    expect(await ok(['user', 'disable', 'alice'])).toBe('account alice disabled\n');
    expect(await ok(['user', 'role', 'alice', 'supervisor'])).toBe('account alice now has role supervisor; its sessions ended\n');
    const alice = (JSON.parse(await ok(['user', 'list', '--json'])) as Array<Record<string, unknown>>).find((a) => a.name === 'alice');
    expect(alice).toMatchObject({ role: 'supervisor', disabled: true });
    const badRole = await scanline(['user', 'role', 'alice', 'overlord']);
    expect(badRole.code).toBe(1);
    expect(badRole.stderr).toContain('SCANLINE_ERR_ACCOUNT_INVALID');
    const unknown = await scanline(['user', 'disable', 'ghost']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('SCANLINE_ERR_ACCOUNT_UNKNOWN');
  });

  it('audit --json lists every change, newest first, with the actor cli:<os user>', async () => {
    const events = JSON.parse(await ok(['audit', '--json'])) as Array<{
      actor: string;
      action: string;
      target: string;
      outcome: string;
      details: Record<string, unknown>;
    }>;
    const changes = events.map((e) => [e.action, e.target]);
    expect(changes).toEqual([
      ['account.role', 'alice'],
      ['account.disable', 'alice'],
      ['portal.revoke', 'lane-1'],
      ['portal.rotate', 'lane-2'],
      ['portal.create', 'lane-3'],
      ['portal.create', 'lane-2'],
      ['portal.create', 'lane-1'],
      ['token.revoke', expect.stringMatching(/^[0-9a-f]{12}$/)],
      ['token.create', expect.stringMatching(/^[0-9a-f]{12}$/)],
      ['account.create', 'bot'],
      ['token.create', expect.stringMatching(/^[0-9a-f]{12}$/)],
      ['account.create', 'prom'],
      ['account.create', 'alice'],
    ]);
    for (const e of events) {
      expect(e.actor).toBe(ACTOR);
      expect(e.outcome).toBe('ok');
    }
    expect(events[0].details).toMatchObject({ from: 'officer', to: 'supervisor' });
    expect(JSON.stringify(events)).not.toMatch(/sl[tp]_|alice-password/);
    const filtered = JSON.parse(await ok(['audit', '--action', 'account.create', '--limit', '2', '--json'])) as Array<{ target: string }>;
    expect(filtered.map((e) => e.target)).toEqual(['bot', 'prom']);
    const table = await ok(['audit', '--limit', '1']);
    expect(table.split('\n')[0]).toMatch(/^ID\s+AT\s+ACTOR\s+ACTION\s+TARGET\s+OUTCOME\s+ADDRESS\s+DETAILS$/);
    expect(table.split('\n')[1]).toContain(`${ACTOR}  account.role`);
  });

  it('a gateway on the same data directory honours the commands, also those run while it is up', async () => {
    const g = await startTestGateway({}, {}, dir);
    try {
      // accounts existed, so the gateway made no admin of its own
      expect(g.identity.listAccounts().map((a) => a.name)).toEqual(['alice', 'bot', 'prom']);
      // disabled: refused with the same answer as a wrong password
      const disabled = await signIn(g, 'alice', ALICE_PASSWORD);
      expect(disabled.status).toBe(401);
      expect(disabled.body.error).toMatchObject({ code: 'SCANLINE_ERR_AUTH_INVALID', message: 'wrong account name or password' });
      expect(await ok(['user', 'enable', 'alice'])).toBe('account alice enabled\n');
      const enabled = await signIn(g, 'alice', ALICE_PASSWORD);
      expect(enabled.status).toBe(201);
      expect(enabled.body).toMatchObject({ user: 'alice', role: 'supervisor', kind: 'session' });
      expect((await signIn(g, 'alice', 'not-her-password')).status).toBe(401);

      // the revoked token is refused, a fresh one works, and a revocation made now takes effect at once
      expect(await statusWithToken(g, '/v1/scans', revokedToken)).toBe(401);
      const fresh = (await ok(['token', 'create', '--user', 'bot'])).trim();
      expect(await statusWithToken(g, '/v1/scans', fresh)).toBe(200);
      const freshId = (JSON.parse(await ok(['token', 'list', '--user', 'bot', '--json'])) as ListedToken[]).find((t) => t.revokedAt === null)!.id;
      await ok(['token', 'revoke', freshId]);
      expect(await statusWithToken(g, '/v1/scans', fresh)).toBe(401);

      // the metrics account's token reads /metrics and nothing else
      expect(await statusWithToken(g, '/metrics', promToken)).toBe(200);
      expect(await statusWithToken(g, '/v1/scans', promToken)).toBe(403);

      // disabling while the gateway runs stops the session cookie too
      const cookie = (
        await fetch(`${g.httpUrl}/v1/session`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ username: 'alice', password: ALICE_PASSWORD }),
        })
      ).headers
        .get('set-cookie')!
        .split(';')[0];
      expect((await fetch(`${g.httpUrl}/v1/session`, { headers: { cookie } })).status).toBe(200);
      await ok(['user', 'disable', 'alice']);
      expect((await fetch(`${g.httpUrl}/v1/session`, { headers: { cookie } })).status).toBe(401);
      expect((await signIn(g, 'alice', ALICE_PASSWORD)).status).toBe(401);

      // the gateway's own sign-ins are in the trail the command shows
      const logins = JSON.parse(await ok(['audit', '--action', 'session.login', '--json'])) as Array<{ outcome: string; address: string }>;
      expect(logins.map((e) => e.outcome)).toEqual(['refused', 'ok', 'refused', 'ok', 'refused']);
      expect(logins[0].address).toBe('127.0.0.1');
    } finally {
      await g.dispose();
    }
  });
});
