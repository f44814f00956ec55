/**
 * Log format (src/log): JSON lines for machines, readable lines for a person at a terminal. 'auto' decides by
 * whether the destination is a TTY; `scanline serve --log-format` and SCANLINE_LOG_FORMAT override it. The CLI cases
 * run the compiled dist/ in a child process (`npm test` builds it first), one of them on a real pseudo-terminal
 * (util-linux `script`).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { needTool } from '../helpers/tools.js';
import { createRootLogger, resolveLogFormat } from '../../src/log/index.js';

const BIN = new URL('../../bin/scanline.js', import.meta.url).pathname;
const SCRIPT = '/usr/bin/script';
/** Colour escapes (ESC [ ... m). */
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');
const children: ChildProcess[] = [];
const dirs: string[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function sink(): { stream: Writable; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      text += chunk.toString('utf8');
      done();
    },
  });
  return { stream, text: () => text };
}

/** A stream that says it is a terminal, as process.stdout does on one. */
function ttySink(): { stream: Writable; text: () => string } {
  const s = sink();
  Object.assign(s.stream, { isTTY: true });
  return s;
}

describe('log format', () => {
  it("'auto' is pretty on a TTY and JSON elsewhere; 'json' and 'pretty' are what they say", () => {
    expect(resolveLogFormat('auto', sink().stream)).toBe('json');
    expect(resolveLogFormat('auto', ttySink().stream)).toBe('pretty');
    expect(resolveLogFormat('json', ttySink().stream)).toBe('json');
    expect(resolveLogFormat('pretty', sink().stream)).toBe('pretty');
  });

  it('JSON lines carry level, time, service and module', () => {
    const s = sink();
    createRootLogger('info', s.stream, 'auto').child({ module: 'ingest' }).info({ portalId: 'lane-1' }, 'portal connected');
    const line = JSON.parse(s.text()) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 'info', service: 'scanline', module: 'ingest', portalId: 'lane-1', msg: 'portal connected' });
  });

  it('pretty lines are one readable line per event, written before the call returns; errors keep their stack', () => {
    const s = ttySink();
    const log = createRootLogger('info', s.stream, 'auto').child({ module: 'ingest' });
    log.info({ portalId: 'lane-1' }, 'portal connected');
    // Synchronous: no tick has passed.
    const plain = s.text().replace(ANSI, '');
    expect(plain).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: ingest: portal connected \{"portalId":"lane-1"\}\n$/);
    expect(plain).not.toContain('"service"');
    log.error({ err: new Error('disk gone') }, 'archiving failed');
    const after = s.text().replace(ANSI, '');
    expect(after).toContain('ERROR: ingest: archiving failed');
    expect(after).toMatch(/Error: disk gone\n\s+at /);
  });

  it('colours only a terminal, and not with NO_COLOR', () => {
    const tty = ttySink();
    const saved = process.env.NO_COLOR;
    delete process.env.NO_COLOR;
    try {
      createRootLogger('info', tty.stream, 'pretty').info('coloured');
      expect(tty.text()).toContain('\u001b[');
      process.env.NO_COLOR = '1';
      const noColour = ttySink();
      createRootLogger('info', noColour.stream, 'pretty').info('plain');
      expect(noColour.text()).not.toContain('\u001b[');
    } finally {
      if (saved === undefined) delete process.env.NO_COLOR;
      else process.env.NO_COLOR = saved;
    }
    const pipe = sink();
    createRootLogger('info', pipe.stream, 'pretty').info('plain');
    expect(pipe.text()).not.toContain('\u001b[');
  });
});

function serve(args: string[], env: NodeJS.ProcessEnv, viaTerminal = false): { child: ChildProcess; out: () => string; exited: Promise<number | null> } {
  const dir = mkdtempSync(join(tmpdir(), 'scanline-log-'));
  dirs.push(dir);
  const argv = [BIN, 'serve', '--port', '0', '--data-dir', dir, ...args];
  const fullEnv = { ...process.env, SCANLINE_INFERENCE_ENABLED: 'false', ...env };
  const child = viaTerminal
    ? spawn(SCRIPT, ['-qefc', [process.execPath, ...argv].map((a) => `'${a}'`).join(' '), '/dev/null'], { stdio: ['ignore', 'pipe', 'pipe'], env: fullEnv })
    : spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: fullEnv });
  children.push(child);
  let text = '';
  child.stdout?.on('data', (d: Buffer) => {
    text += d.toString('utf8');
  });
  child.stderr?.on('data', (d: Buffer) => {
    text += d.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  // Colours (on a terminal) stripped.
  return { child, out: () => text.replace(ANSI, ''), exited };
}

async function until(what: string, ok: () => boolean, p: { child: ChildProcess; out: () => string }, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > end || p.child.exitCode !== null) throw new Error(`no ${what}:\n${p.out()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The gateway process under `script` (its only node descendant). */
function nodeUnder(pid: number): number {
  const r = spawnSync('ps', ['-o', 'pid=,comm=', '--ppid', String(pid)], { encoding: 'utf8' });
  for (const line of r.stdout.trim().split('\n')) {
    const [p, comm] = line.trim().split(/\s+/);
    if (comm === 'node') return Number(p);
    if (Number(p) > 0) {
      const deeper = nodeUnder(Number(p));
      if (deeper > 0) return deeper;
    }
  }
  return 0;
}

describe('scanline serve --log-format', () => {
  it('pretty on a pipe when asked, and a bad value exits 2 before anything starts', async () => {
    const p = serve(['--log-format', 'pretty'], {});
    await until('pretty ready line', () => / INFO: gateway ready /.test(p.out()), p);
    expect(p.out()).not.toContain('{"level"');
    p.child.kill('SIGTERM');
    expect(await p.exited).toBe(0);
    expect(p.out()).toContain('INFO: gateway closed');

    const bad = serve(['--log-format', 'fancy'], {});
    expect(await bad.exited).toBe(2);
    expect(bad.out()).toContain('SCANLINE_ERR_CLI_USAGE: Expected one of auto, json, pretty for --log-format but received "fancy"');
    const badEnv = serve([], { SCANLINE_LOG_FORMAT: 'fancy' });
    expect(await badEnv.exited).toBe(2);
    expect(badEnv.out()).toContain('SCANLINE_ERR_CONFIG_INVALID: Expected one of auto, json, pretty for SCANLINE_LOG_FORMAT but received "fancy"');
  }, 40_000);

  it('auto on a terminal writes readable lines; SCANLINE_LOG_FORMAT=json keeps JSON there', async (ctx) => {
    needTool(ctx, SCRIPT, 'bsdutils');
    const cases = [
      { env: {}, ready: / INFO: gateway ready /, json: false },
      { env: { SCANLINE_LOG_FORMAT: 'json' }, ready: /"msg":"gateway ready"/, json: true },
    ];
    for (const c of cases) {
      const p = serve([], c.env, true);
      await until('ready line', () => c.ready.test(p.out()), p);
      const gateway = nodeUnder(p.child.pid as number);
      expect(gateway).toBeGreaterThan(0);
      process.kill(gateway, 'SIGTERM');
      expect(await p.exited).toBe(0);
      expect(p.out().includes('{"level"')).toBe(c.json);
    }
  }, 60_000);
});
