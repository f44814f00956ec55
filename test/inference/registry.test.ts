import { cp, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { discoverModels, selectModel } from '../../src/inference/index.js';
import { MODELS_DIR, rejection } from './helpers.js';

describe('model registry', () => {
  it('discovers every model folder, sorted by name, and selects by task', async () => {
    const models = await discoverModels(MODELS_DIR);
    expect(models.map((m) => m.manifest.name)).toEqual(['goods-tiny', 'threats-tiny']);
    expect(selectModel(models, 'threats')?.manifest.name).toBe('threats-tiny');
    expect(selectModel(models, 'goods')?.manifest.name).toBe('goods-tiny');
  });

  it('loads only the named models, and refuses a name no folder provides', async () => {
    expect((await discoverModels(MODELS_DIR, { names: ['threats-tiny'] })).map((m) => m.manifest.name)).toEqual(['threats-tiny']);
    const err = await rejection(discoverModels(MODELS_DIR, { names: ['goods-tiny', 'goods-v9'] }));
    expect(err.code).toBe('SCANLINE_ERR_MODEL_NOT_FOUND');
    expect(err.details.missing).toEqual(['goods-v9']);
  });

  it('treats a missing directory as empty and refuses two models with one name', async () => {
    expect(await discoverModels(join(MODELS_DIR, 'nope'))).toEqual([]);
    const dir = await mkdtemp(join(tmpdir(), 'scanline-models-'));
    try {
      await cp(join(MODELS_DIR, 'goods-tiny'), join(dir, 'a'), { recursive: true });
      await cp(join(MODELS_DIR, 'goods-tiny'), join(dir, 'b'), { recursive: true });
      const err = await rejection(discoverModels(dir));
      expect(err.code).toBe('SCANLINE_ERR_MODEL_MANIFEST');
      expect(err.message).toMatch(/two models are named "goods-tiny"/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
