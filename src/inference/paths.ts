/**
 * Where the inference stage finds things on disk: the package root (works from src/ under vitest and from
 * dist/src/ when compiled), the default models directory and the compiled worker script.
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = fileURLToPath(import.meta.url);

/** The nearest directory above this module that holds package.json. */
export function packageRoot(): string {
  let dir = dirname(here);
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return dirname(here);
    dir = parent;
  }
}

/** `<package root>/models`: the demo models' folder, used when no models directory is configured. */
export function defaultModelsDir(): string {
  return join(packageRoot(), 'models');
}

/**
 * The worker thread script. worker_threads run JavaScript only, so this is always the compiled file: the sibling
 * `inference-worker.js` when this module is itself compiled, else (TypeScript sources under vitest)
 * `<package root>/dist/src/inference/inference-worker.js`, which `npm test` builds first through `pretest`.
 */
export function inferenceWorkerUrl(): URL {
  if (here.endsWith('.js')) return new URL('./inference-worker.js', import.meta.url);
  return pathToFileURL(join(packageRoot(), 'dist', 'src', 'inference', 'inference-worker.js'));
}
