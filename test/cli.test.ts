/**
 * The `scanline` command as a user runs it (compiled dist/, a child process, real signals): `serve --demo` streams
 * simulated trucks into its own gateway; `simulate` streams into a running one; usage errors exit 2. Without the
 * tooling bin/scanline.js joins to it, the production CLI offers serve alone, and no demo portals.
 * `npm test` builds dist/ first (pretest).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { main } from '../src/cli.js';
import { startTestGateway } from './helpers/gateway.js';

const BIN = new URL('../bin/scanline.js', import.meta.url).pathname;
const children: ChildProcess[] = [];
const dirs: string[] = [];

afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function run(args: string[], env: NodeJS.ProcessEnv = {}): { child: ChildProcess; out: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  children.push(child);
  let text = '';
  child.stdout!.on('data', (d) => (text += d));
  child.stderr!.on('data', (d) => (text += d));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, out: () => text, exited };
}

async function until<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('scanline CLI', () => {
  it('serve --port 0 --demo 1 logs its port, receives a simulated truck, and drains on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scanline-cli-'));
    dirs.push(dir);
    const p = run(['serve', '--port', '0', '--demo', '1', '--data-dir', dir]);
    const port = await until('the ready log line', () => {
      const m = /"port":(\d+),.*"msg":"gateway ready"/.exec(p.out());
      return m ? Number(m[1]) : undefined;
    });
    // A first start makes the admin account and says once, in the ready line, how to sign in.
    const ready0 = JSON.parse(
      p
        .out()
        .split('\n')
        .find((l) => l.includes('"msg":"gateway ready"')) as string,
    ) as {
      operatorScreen: string;
      signIn: { user: string; password: string };
    };
    expect(ready0.signIn.user).toBe('admin');
    expect(ready0.signIn.password).toMatch(/^[A-Za-z0-9_-]{20}$/);
    expect(ready0.operatorScreen).toBe(`http://127.0.0.1:${port}/`);
    const session = await fetch(`http://127.0.0.1:${port}/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'admin', password: ready0.signIn.password }),
    });
    expect(session.status).toBe(201);
    const cookie = (session.headers.get('set-cookie') ?? '').split(';')[0];
    // Without credentials /readyz says only whether the gateway is ready; signed in, also what serves each model.
    const anonymous = (await (await fetch(`http://127.0.0.1:${port}/readyz`)).json()) as Record<string, unknown>;
    expect(Object.keys(anonymous).sort()).toEqual(['checks', 'ready']);
    expect((await fetch(`http://127.0.0.1:${port}/v1/scans`)).status).toBe(401);
    const ready = await fetch(`http://127.0.0.1:${port}/readyz`, { headers: { cookie } });
    expect(ready.status).toBe(200);
    const readyBody = (await ready.json()) as { ready: boolean; checks: Record<string, string>; inference: { models: Record<string, { provider: string }> } };
    expect(readyBody).toMatchObject({ ready: true, checks: { stitcher: 'ok', storage: 'ok', inference: 'ok', phase: 'ok' } });
    // The demo models are loaded by default (the dual-energy pair and the single-energy pair); this machine has no GPU
    // libraries, so they run on the CPU.
    expect(Object.keys(readyBody.inference.models).sort()).toEqual(['goods-1e-v1', 'goods-v1', 'threats-1e-v1', 'threats-v1']);
    // The demo portal's first truck is being received: lines grow while it is in the beam.
    const scan = await until('a scan with lines', async () => {
      const body = (await (await fetch(`http://127.0.0.1:${port}/v1/scans`, { headers: { cookie } })).json()) as {
        scans: Array<{ scanId: string; lines: number; state: string }>;
      };
      return body.scans.find((s) => s.lines > 100);
    });
    expect(scan.state).toBe('receiving');
    expect(scan.scanId).toMatch(/^sim-1-/);
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    expect(p.out()).toContain('"msg":"gateway closed"');
  });

  it('simulate streams trucks at max speed into a running gateway and prints a summary', async () => {
    const g = await startTestGateway();
    try {
      // The portals' credentials, made by the administrator's command on the running gateway's database.
      const add = run(['portal', 'add', 'sim-1', 'sim-2', '--json', '--data-dir', g.dataDir]);
      expect(await add.exited).toBe(0);
      const credentials = JSON.parse(add.out().trim().split('\n').at(-1) as string) as Record<string, string>;
      expect(Object.keys(credentials)).toEqual(['sim-1', 'sim-2']);
      const file = join(g.dataDir, 'credentials.json');
      writeFileSync(file, JSON.stringify(credentials));
      const p = run([
        'simulate',
        '--url',
        g.portalUrl,
        '--portals',
        '2',
        '--trucks',
        '1',
        '--seed',
        '5',
        '--speed',
        'max',
        '--pixels',
        '256',
        '--credentials',
        file,
      ]);
      expect(await p.exited).toBe(0);
      const summary = JSON.parse(p.out().slice(p.out().indexOf('{\n'))) as { scansCompleted: number; scansFailed: number };
      expect(summary).toMatchObject({ scansCompleted: 2, scansFailed: 0 });
      expect(g.store.listScans({ state: 'completed' })).toHaveLength(2);
    } finally {
      await g.dispose();
    }
  });

  it('exits 2 with the usage text on a bad option, and on invalid configuration', async () => {
    const bad = run(['serve', '--port', 'eighty']);
    expect(await bad.exited).toBe(2);
    expect(bad.out()).toContain('SCANLINE_ERR_CLI_USAGE: Expected an integer 0..65535 for --port but received "eighty"');
    const realism = run(['simulate', '--realism', 'glossy']);
    expect(await realism.exited).toBe(2);
    expect(realism.out()).toContain('SCANLINE_ERR_CLI_USAGE: Expected one of basic, hard for --realism but received "glossy"');
    const unknown = run(['teleport']);
    expect(await unknown.exited).toBe(2);
    expect(unknown.out()).toContain('Usage: scanline <command>');
  });

  it('production alone (src/cli.ts without the tools bin/scanline.js hands it) has no demo portals: serve --demo is a usage error', async () => {
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      process.exitCode = undefined;
      await main(['serve', '--port', '0', '--demo', '1']);
      expect(process.exitCode).toBe(2);
      expect(String(stderr.mock.calls.at(-1)?.[0])).toContain('SCANLINE_ERR_CLI_USAGE: --demo needs the portal simulator of tools/');
      await main(['simulate']);
      expect(String(stderr.mock.calls.at(-1)?.[0])).toContain('unknown command "simulate"');
    } finally {
      process.exitCode = undefined;
      stderr.mockRestore();
    }
  });

  it('eval configures the gateway it starts from SCANLINE_* variables too, and stops on a bad one before starting', async () => {
    const bad = run(['eval', '--seeds', '5000'], { SCANLINE_PORTAL_STITCH_MAX_DELAY_MS: '5000' });
    expect(await bad.exited).toBe(2);
    expect(bad.out()).toContain('SCANLINE_ERR_CONFIG_INVALID');
    expect(bad.out()).toContain('portal.stitchMaxDelayMs but received 5000 of type number (from SCANLINE_PORTAL_STITCH_MAX_DELAY_MS)');
    expect(bad.out()).not.toContain('eval 1/1');
  });
});
