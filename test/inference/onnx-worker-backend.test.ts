// Execution provider selection and model checks in the workers, on a machine without a GPU (as CI always is):
// GPU providers fail cleanly, the CPU takes over, and the choice and the reasons are reported and logged.
import { readFileSync, readdirSync } from 'node:fs';
import { Writable } from 'node:stream';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ScanlineError } from '../../src/errors/index.js';
import { createRootLogger, silentLogger } from '../../src/log/index.js';
import { OnnxWorkerBackend, discoverModels, resolveInferenceConfig, type InferenceConfigInput, type LoadedModel } from '../../src/inference/index.js';
import { BAD_MODELS_DIR, MODELS_DIR, assertWorkerBuilt } from './helpers.js';

let models: LoadedModel[];
let backend: OnnxWorkerBackend | null = null;

beforeAll(async () => {
  assertWorkerBuilt();
  models = await discoverModels(MODELS_DIR);
});
afterEach(async () => {
  await backend?.close();
  backend = null;
});

function make(config: InferenceConfigInput, log = silentLogger()): OnnxWorkerBackend {
  backend = new OnnxWorkerBackend({ config: resolveInferenceConfig({ intraOpThreads: 1, ...config }), log });
  return backend;
}

async function loadError(b: OnnxWorkerBackend, m: readonly LoadedModel[]): Promise<ScanlineError> {
  try {
    await b.load(m, { warmupBatchSizes: [1, 2] });
  } catch (err) {
    expect(err).toBeInstanceOf(ScanlineError);
    return err as ScanlineError;
  }
  throw new Error('expected load to fail');
}

describe('execution providers', () => {
  it('falls back from tensorrt and cuda to cpu, reports why, and logs the choice', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, cb) {
        lines.push(...String(chunk).split('\n').filter(Boolean));
        cb();
      },
    });
    const b = make({}, createRootLogger('info', sink));
    await b.load(models, { warmupBatchSizes: [1, 2, 3] });
    const s = b.status();
    expect(s.ready).toBe(true);
    // The scheduling every worker reported: SCHED_IDLE by default on Linux, the niceness elsewhere.
    expect(s.kind).toMatch(
      process.platform === 'linux' ? /^onnxruntime-node 1\.\d+\.\d+ in 2 worker threads \(SCHED_IDLE\)$/ : /^onnxruntime-node 1\.\d+\.\d+ in 2 worker threads/,
    );
    expect(s.models).toEqual({ 'goods-tiny': { provider: 'cpu', precision: 'fp32' }, 'threats-tiny': { provider: 'cpu', precision: 'fp32' } });
    const goods = s.workers[0].models.find((m) => m.model === 'goods-tiny')!;
    // The fp16 file is tried first on GPU providers; a provider that cannot be set up is not tried again with fp32.
    expect(goods.attempts.map((a) => [a.provider, a.precision, a.ok])).toEqual([
      ['tensorrt', 'fp16', false],
      ['cuda', 'fp16', false],
      ['cpu', 'fp32', true],
    ]);
    for (const a of goods.attempts.slice(0, 2)) expect(a.error).toMatch(/Failed to load shared library .*ONNXRUNTIME_NODE_INSTALL=cuda12/);
    expect(goods.warmup.batchSizes).toEqual([1, 2, 3]);
    const threats = s.workers[0].models.find((m) => m.model === 'threats-tiny')!;
    expect(threats.attempts.map((a) => `${a.provider}/${a.precision}`)).toEqual(['tensorrt/fp32', 'cuda/fp32', 'cpu/fp32']);
    await new Promise((r) => setTimeout(r, 50)); // pino writes asynchronously
    const logged = lines.map((l) => JSON.parse(l));
    // Every worker logs its own choice, in one short line.
    const chosen = logged.find((l) => l.model === 'goods-tiny' && l.provider === 'cpu' && l.worker === 0);
    expect(chosen).toMatchObject({ level: 'info', worker: 0, precision: 'fp32', msg: 'model goods-tiny runs on cpu (fp32)' });
    // Each provider passed over is one line with a short reason, once per model (not per worker); the full error
    // stays in the attempts above (/readyz).
    const passedOver = logged.filter((l) => l.msg === 'execution provider passed over' && l.model === 'goods-tiny');
    expect(passedOver.map((l) => [l.level, l.provider, l.reason, l.hint])).toEqual([
      ['info', 'tensorrt', 'TensorRT libraries not installed', 'README.md, GPU setup'],
      ['info', 'cuda', 'CUDA libraries not installed', 'README.md, GPU setup'],
    ]);
    for (const l of logged) expect(JSON.stringify(l).length).toBeLessThan(400);
  });

  /** Field of /proc/self/task/<tid>/stat after the command name: 16 = nice, 38 = scheduling policy (5 = SCHED_IDLE). */
  const statField = (tid: string, i: number): number => Number(readFileSync(`/proc/self/task/${tid}/stat`, 'utf8').split(') ')[1].split(' ')[i]);

  it.runIf(process.platform === 'linux')('runs the workers at the configured niceness with workerSchedIdle off, the main thread unchanged', async () => {
    const b = make({ executionProviders: ['cpu'], workerNice: 7, workerSchedIdle: false });
    await b.load(models, { warmupBatchSizes: [1] });
    const nices = readdirSync('/proc/self/task').map((t) => statField(t, 16));
    expect(nices.filter((n) => n === 7).length).toBeGreaterThanOrEqual(1);
    expect(statField(String(process.pid), 16)).toBe(0);
    expect(new Set(b.status().workers.map((w) => w.scheduling))).toEqual(new Set(['nice 7']));
  });

  it.runIf(process.platform === 'linux')('runs the workers and the ONNX Runtime threads they start under SCHED_IDLE by default', async () => {
    const before = new Set(readdirSync('/proc/self/task'));
    const b = make({ executionProviders: ['cpu'], intraOpThreads: 2 });
    await b.load(models, { warmupBatchSizes: [1] });
    expect(new Set(b.status().workers.map((w) => w.scheduling))).toEqual(new Set(['idle']));
    const idle = readdirSync('/proc/self/task').filter((t) => !before.has(t) && statField(t, 38) === 5);
    // Each worker thread itself and the intra-op thread ONNX Runtime starts for it (2 intra-op threads = the caller + 1).
    expect(idle.length).toBeGreaterThanOrEqual(2);
    expect(statField(String(process.pid), 38)).toBe(0);
  });

  it('refuses to load when no configured provider can open the model, listing every attempt', async () => {
    const err = await loadError(make({ executionProviders: ['cuda'] }), models);
    expect(err.code).toBe('SCANLINE_ERR_MODEL_LOAD');
    expect(err.details.attempts).toEqual([
      expect.objectContaining({ provider: 'cuda', ok: false, error: expect.stringMatching(/Failed to load shared library/) }),
    ]);
  });

  it('refuses a model whose ONNX inputs and outputs do not match its manifest', async () => {
    const bad = await discoverModels(BAD_MODELS_DIR);
    const b = make({ executionProviders: ['cpu'] });
    const err = await loadError(b, bad);
    expect(err.code).toBe('SCANLINE_ERR_MODEL_MISMATCH');
    expect(err.message).toMatch(/model goods-wrong-io .* does not match its manifest/);
    expect(err.details.problems).toEqual([
      'the ONNX model has no input "input" (its inputs: "tiles")',
      'the ONNX model has an input "tiles" the manifest does not declare',
      'output "logits" has shape ["batch", 5], the manifest says [-1, 7]',
    ]);
    expect(b.status().ready).toBe(false);
  });
});
