/**
 * ONNX Runtime's own (native) logger writes to stderr, past pino. On a CPU-only machine, a normal start tries the
 * default GPU providers first (tensorrt, cuda) and ORT logs each failed library load at error severity; with
 * inference.ortLogLevel at its default (fatal) none of that may reach stderr, while the log says once per model and
 * provider, in a few words, why the provider was passed over. The raised level is shown to be what keeps stderr
 * clean: at 'warning' the raw lines appear. Runs the compiled CLI (`npm test` builds dist/ first).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { assertWorkerBuilt } from './helpers.js';

const BIN = new URL('../../bin/scanline.js', import.meta.url).pathname;
const MODELS = new URL('../../models/', import.meta.url).pathname;
const children: ChildProcess[] = [];
const dirs: string[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Starts `scanline serve` with the demo models on 2 workers, waits until ready, stops it; its stdout and stderr. */
async function startAndStop(env: NodeJS.ProcessEnv): Promise<{ stdout: string; stderr: string; code: number | null }> {
  const dir = mkdtempSync(join(tmpdir(), 'scanline-ort-log-'));
  dirs.push(dir);
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--data-dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SCANLINE_INFERENCE_WORKERS: '2', ...env },
  });
  children.push(child);
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d: Buffer) => {
    stdout += d.toString('utf8');
  });
  child.stderr?.on('data', (d: Buffer) => {
    stderr += d.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const end = Date.now() + 60_000;
  while (!stdout.includes('"msg":"gateway ready"')) {
    if (Date.now() > end || child.exitCode !== null) throw new Error(`gateway did not get ready:\n${stdout}\n${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  child.kill('SIGTERM');
  const code = await exited;
  return { stdout, stderr, code };
}

describe("ONNX Runtime's native log on a CPU-only start", () => {
  it('writes nothing to stderr; the log has one short line per model and provider passed over', async () => {
    assertWorkerBuilt();
    const r = await startAndStop({});
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    const lines = r.stdout
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const passedOver = lines.filter((l) => l.msg === 'execution provider passed over').map((l) => `${l.model} ${l.provider}: ${l.reason}`);
    // On this machine (no CUDA libraries); with 2 workers, still once per model.
    const models = readdirSync(MODELS).filter((d) => existsSync(join(MODELS, d, 'model.json')));
    expect(models.length).toBeGreaterThanOrEqual(2);
    expect(passedOver.sort()).toEqual(
      models.flatMap((m) => [`${m} cuda: CUDA libraries not installed`, `${m} tensorrt: TensorRT libraries not installed`]).sort(),
    );
    for (const l of lines) expect(JSON.stringify(l)).not.toMatch(/failed to load shared library/i);
  }, 90_000);

  it("shows ONNX Runtime's raw lines when inference.ortLogLevel is lowered to warning", async () => {
    const r = await startAndStop({ SCANLINE_INFERENCE_ORT_LOG_LEVEL: 'warning' });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/\[E:onnxruntime:/);
  }, 90_000);
});
