/**
 * Model discovery: one folder per model under a models directory, each with a model.json. Folders without one
 * (e.g. training scripts) are ignored. Selection by name (configuration) and by task (the results stage).
 */
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { ScanlineError } from '../errors/index.js';
import { MANIFEST_FILE, loadModel, type LoadedModel } from './manifest.js';
import type { ModelTask } from './manifest-types.js';

export interface DiscoverOptions {
  /** Manifest names to load; empty or absent = every model found. A name that no folder provides is an error. */
  names?: readonly string[];
}

/** Reads the `name` of a model.json without validating the rest (for selection before full validation). */
async function peekName(dir: string): Promise<string | undefined> {
  try {
    const v = JSON.parse(await readFile(join(dir, MANIFEST_FILE), 'utf8')) as { name?: unknown };
    return typeof v.name === 'string' ? v.name : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Loads every selected model under `modelsDir`, sorted by name. Throws SCANLINE_ERR_MODEL_MANIFEST /
 * SCANLINE_ERR_MODEL_CHECKSUM for the first invalid model (folders in name order), SCANLINE_ERR_MODEL_MANIFEST
 * when two models share a name, and SCANLINE_ERR_MODEL_NOT_FOUND for a selected name no folder provides.
 * A missing models directory holds no models (not an error unless names were selected).
 */
export async function discoverModels(modelsDir: string, options: DiscoverOptions = {}): Promise<LoadedModel[]> {
  const root = resolve(modelsDir);
  const wanted = options.names && options.names.length > 0 ? new Set(options.names) : undefined;
  let entries: string[] = [];
  if (existsSync(root)) {
    entries = (await readdir(root, { withFileTypes: true }))
      .filter((e) => e.isDirectory() && existsSync(join(root, e.name, MANIFEST_FILE)))
      .map((e) => e.name)
      .sort();
  }
  const models: LoadedModel[] = [];
  for (const folder of entries) {
    const dir = join(root, folder);
    // With a selection, a model that is not selected is not validated: a broken unused model must not block start.
    if (wanted) {
      const name = await peekName(dir);
      if (name === undefined || !wanted.has(name)) continue;
    }
    const model = await loadModel(dir);
    const twin = models.find((m) => m.manifest.name === model.manifest.name);
    if (twin) {
      throw new ScanlineError('SCANLINE_ERR_MODEL_MANIFEST', `two models are named "${model.manifest.name}": ${twin.dir} and ${model.dir}`, {
        problems: [`name "${model.manifest.name}" is used by ${twin.dir} and ${model.dir}`],
      });
    }
    models.push(model);
  }
  if (wanted) {
    const missing = [...wanted].filter((n) => !models.some((m) => m.manifest.name === n));
    if (missing.length > 0) {
      throw new ScanlineError('SCANLINE_ERR_MODEL_NOT_FOUND', `no model named ${missing.map((n) => `"${n}"`).join(', ')} in ${root}`, {
        modelsDir: root,
        missing,
      });
    }
  }
  return models.sort((a, b) => (a.manifest.name < b.manifest.name ? -1 : a.manifest.name > b.manifest.name ? 1 : 0));
}

/** The models for a task, in name order. */
export function modelsForTask(models: readonly LoadedModel[], task: ModelTask): LoadedModel[] {
  return models.filter((m) => m.manifest.task === task);
}

/**
 * The model that serves a task: the only one for it, or the first by name when several are loaded (select one
 * with `inference.models` to be explicit). undefined when none is.
 */
export function selectModel(models: readonly LoadedModel[], task: ModelTask): LoadedModel | undefined {
  return modelsForTask(models, task)[0];
}

/** The model that serves a task for tiles of `channels` energies: selectModel among the models that read that many. */
export function selectModelFor(models: readonly LoadedModel[], task: ModelTask, channels: number): LoadedModel | undefined {
  return selectModel(
    models.filter((m) => m.manifest.input.shape[1] === channels),
    task,
  );
}
