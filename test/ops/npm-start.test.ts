/**
 * `npm start` as an operator runs it: a signal sent to the npm process (what systemd, a container runtime or
 * `kill <pid>` does) must reach the gateway, which drains and exits, and the whole process tree must be gone within
 * seconds. npm runs the script through `sh -c` and forwards SIGINT/SIGTERM to that shell only; dash neither forwards
 * them nor exits, so without `exec` in the script the gateway kept scanning. A terminal's Ctrl-C goes to the whole
 * process group: with `exec` the gateway then gets SIGINT twice (from the terminal and forwarded by npm), which must
 * still be one graceful shutdown, not the "second signal: exit now" of an impatient operator.
 * `--ignore-scripts` skips prestart (the build; `npm test` has just built). Inference is off for a quick start.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = new URL('../../', import.meta.url).pathname;
/** Well inside shutdown.exitTimeoutMs (15 s): nothing is left to drain but the demo portal's scan. */
const EXIT_WITHIN_MS = 8_000;

const children: ChildProcess[] = [];
const dirs: string[] = [];
afterAll(() => {
  // Each npm leads its own process group: on a failed test, whatever is left of the tree goes with it.
  for (const c of children) {
    try {
      process.kill(-(c.pid as number), 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Every descendant of `pid` (children first), from ps. */
function descendants(pid: number): number[] {
  const r = spawnSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' });
  const kids = r.stdout
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => n > 0);
  return kids.flatMap((k) => [k, ...descendants(k)]);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('npm start', () => {
  it.each([
    ['SIGINT', 'the npm process'],
    ['SIGTERM', 'the npm process'],
    ['SIGINT', 'the process group (Ctrl-C)'],
  ] as const)(
    '%s sent to %s drains the gateway and ends the process tree',
    async (signal, target) => {
      const dir = mkdtempSync(join(tmpdir(), 'scanline-npm-start-'));
      dirs.push(dir);
      const npm = spawn('npm', ['start', '--ignore-scripts', '--silent'], {
        cwd: ROOT,
        env: { ...process.env, SCANLINE_SERVER_PORT: '0', SCANLINE_STORAGE_DATA_DIR: dir, SCANLINE_INFERENCE_ENABLED: 'false' },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      children.push(npm);
      let out = '';
      npm.stdout?.on('data', (d: Buffer) => {
        out += d.toString('utf8');
      });
      npm.stderr?.on('data', (d: Buffer) => {
        out += d.toString('utf8');
      });
      const exited = new Promise<number | null>((resolve) => npm.once('exit', (code) => resolve(code)));

      const readyBy = Date.now() + 30_000;
      while (!out.includes('"msg":"gateway ready"')) {
        if (Date.now() > readyBy || npm.exitCode !== null) throw new Error(`gateway did not get ready:\n${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const tree = descendants(npm.pid as number);
      expect(tree.length).toBeGreaterThan(0);
      // A fresh install says how to sign in, once, on the line that names the screen.
      const ready = JSON.parse(out.split('\n').find((l) => l.includes('"msg":"gateway ready"')) as string) as Record<string, any>;
      expect(ready.operatorScreen).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      expect(ready.signIn).toMatchObject({ user: 'admin', password: expect.stringMatching(/^[A-Za-z0-9_-]{20}$/) });

      const sent = Date.now();
      if (target === 'the npm process') npm.kill(signal);
      else process.kill(-(npm.pid as number), signal);
      const timeout = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), EXIT_WITHIN_MS).unref());
      const code = await Promise.race([exited, timeout]);
      expect(code, `npm still running ${EXIT_WITHIN_MS} ms after ${signal}:\n${out}`).not.toBe('timeout');
      expect(Date.now() - sent).toBeLessThan(EXIT_WITHIN_MS);
      expect(code).toBe(0);
      expect(tree.filter(alive)).toEqual([]);
      expect(out).toContain(`"signal":"${signal}"`);
      expect(out).toContain('"msg":"draining: no new scans"');
      expect(out).toContain('"msg":"gateway closed"');
      expect(out).not.toContain('second signal');
    },
    60_000,
  );
});
