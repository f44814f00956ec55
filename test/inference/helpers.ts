// Shared fixtures for the inference tests: the fixture models, deterministic tiles, a backend wrapper that holds
// batches until the test releases them, and a check that the compiled worker (dist/) is current.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { ScanlineError } from '../../src/errors/index.js';
import type { BackendLoadOptions, BackendStatus, BatchResult, InferenceBackend, LoadedModel } from '../../src/inference/index.js';

export const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
export const MODELS_DIR = join(FIXTURES, 'models');
export const BAD_MODELS_DIR = join(FIXTURES, 'bad-models');
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const TILE_FLOATS = 2 * 64 * 64;

/** Worker threads load dist/: fail loudly when it is missing or older than the sources (run `npx tsc` first). */
export function assertWorkerBuilt(): void {
  const worker = join(ROOT, 'dist/src/inference/inference-worker.js');
  if (!existsSync(worker)) throw new Error(`${worker} is missing: run \`npx tsc -p tsconfig.json\` (npm test does) before vitest`);
  const built = statSync(worker).mtimeMs;
  // The worker's own folder and the image statistics it computes (src/image-stats).
  for (const dir of ['src/inference', 'src/image-stats']) {
    for (const f of readdirSync(join(ROOT, dir))) {
      if (f.endsWith('.ts') && statSync(join(ROOT, dir, f)).mtimeMs > built + 1000) {
        throw new Error(`dist/ is older than ${dir}/${f}: run \`npx tsc -p tsconfig.json\` before vitest`);
      }
    }
  }
}

/** The ScanlineError a promise rejects with; fails the test when it resolves or rejects with anything else. */
export async function rejection(p: Promise<unknown>): Promise<ScanlineError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ScanlineError);
    return err as ScanlineError;
  }
  throw new Error('expected a rejection');
}

/** A deterministic tile of raw attenuation values in [0, 6) (seeded LCG). */
export function makeTile(seed: number): Float32Array {
  let s = (seed * 2654435761) >>> 0 || 1;
  const t = new Float32Array(TILE_FLOATS);
  for (let i = 0; i < t.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    t[i] = (s / 4294967296) * 6;
  }
  return t;
}

export interface HeldBatch {
  model: string;
  batchSize: number;
  /** First float of each tile in the batch, as packed. */
  firstFloats: number[];
  release(): void;
  fail(err: Error): void;
}

/**
 * Wraps a real backend: each batch is recorded and held until the test calls release() (or fail()); with
 * `autoRelease` batches go straight through. Lets batcher tests control timing while ONNX Runtime computes the
 * outputs for real.
 */
export class GatedBackend implements InferenceBackend {
  readonly kind = 'gated';
  readonly inputNormalization: InferenceBackend['inputNormalization'];
  readonly held: HeldBatch[] = [];
  readonly batches: Array<{ model: string; batchSize: number; firstFloats: number[]; at: number }> = [];
  autoRelease = false;
  private waiters: Array<() => void> = [];

  constructor(
    private readonly inner: InferenceBackend,
    private readonly tileFloats = TILE_FLOATS,
  ) {
    this.inputNormalization = inner.inputNormalization;
  }

  load(models: readonly LoadedModel[], options: BackendLoadOptions): Promise<void> {
    return this.inner.load(models, options);
  }

  run(model: string, batch: Float32Array, batchSize: number): Promise<BatchResult> {
    const firstFloats = Array.from({ length: batchSize }, (_, i) => batch[i * this.tileFloats]);
    this.batches.push({ model, batchSize, firstFloats, at: performance.now() });
    if (this.autoRelease) return this.inner.run(model, batch, batchSize);
    return new Promise<BatchResult>((resolve, reject) => {
      const h: HeldBatch = {
        model,
        batchSize,
        firstFloats,
        release: () => {
          this.held.splice(this.held.indexOf(h), 1);
          this.inner.run(model, batch, batchSize).then(resolve, reject);
        },
        fail: (err) => {
          this.held.splice(this.held.indexOf(h), 1);
          reject(err);
        },
      };
      this.held.push(h);
      for (const w of this.waiters.splice(0)) w();
    });
  }

  /** Resolves once at least n batches are held. */
  async waitHeld(n: number, timeoutMs = 5_000): Promise<void> {
    const until = performance.now() + timeoutMs;
    while (this.held.length < n) {
      if (performance.now() > until) throw new Error(`expected ${n} held batches, have ${this.held.length}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 20);
      });
    }
  }

  releaseAll(): void {
    for (const h of [...this.held]) h.release();
  }

  status(): BackendStatus {
    return this.inner.status();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}

export const tick = (ms = 0): Promise<void> => new Promise((r) => setTimeout(r, ms));
