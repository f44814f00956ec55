import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { checkModelIo, checkTileGeometry, loadModel, validateManifest } from '../../src/inference/index.js';
import { createSession } from '../../src/inference/ort.js';
import { BAD_MODELS_DIR, MODELS_DIR, rejection } from './helpers.js';

async function fixtureManifest(name = 'goods-tiny'): Promise<Record<string, any>> {
  return JSON.parse(await readFile(join(MODELS_DIR, name, 'model.json'), 'utf8'));
}

describe('validateManifest', () => {
  it('accepts the fixture manifests', async () => {
    expect(validateManifest(await fixtureManifest('goods-tiny'))).toEqual([]);
    expect(validateManifest(await fixtureManifest('threats-tiny'))).toEqual([]);
  });

  it('lists every problem at once', async () => {
    const m = await fixtureManifest();
    m.manifestVersion = 2;
    m.name = 'Goods Tiny';
    m.version = 'v1';
    m.task = 'cargo';
    m.files.fp32.sha256 = 'ABC';
    m.files.fp16.path = '../elsewhere/model.onnx';
    m.input.shape = [1, 2, 64, 64];
    m.input.dtype = 'float16';
    m.input.channels = ['attenuation_high', 'attenuation_high'];
    m.input.normalization.scale = [0.5, 0];
    m.input.normalization.clampMin = 9;
    m.outputs[1].meaning = 'features';
    m.labels[0].hsCodes = ['12a'];
    m.labels[1].id = 'air';
    m.extra = true;
    const problems = validateManifest(m);
    const expected = [
      /manifestVersion/,
      /for name but received "Goods Tiny"/,
      /for version/,
      /for task but received "cargo"/,
      /files\.fp32\.sha256/,
      /files\.fp16\.path/,
      /input\.shape/,
      /input\.dtype/,
      /input\.channels/,
      /input\.normalization\.scale/,
      /Expected a number below clampMax 4 for input\.normalization\.clampMin but received 9/,
      /outputs\[1\]\.meaning/,
      /labels\[0\]\.hsCodes/,
      /Expected an id no earlier label has for labels\[1\]\.id but received "air"/,
      /Unknown key extra/,
    ];
    for (const re of expected)
      expect(
        problems.some((p) => re.test(p)),
        `no problem matching ${re}: ${problems.join(' | ')}`,
      ).toBe(true);
    expect(problems.length).toBeGreaterThanOrEqual(expected.length);
  });

  it('checks task rules across fields (logits vs labels, heatmap cells, thresholds)', async () => {
    const goods = await fixtureManifest('goods-tiny');
    goods.outputs[0].shape = [-1, 4];
    delete goods.thresholds.suggest;
    expect(validateManifest(goods)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^Expected \[-1, 5\] \(the class_logits output has one class per label\) for outputs\[0\]\.shape but received \[-1,4\]/),
        expect.stringMatching(/\(required for a goods model\) for thresholds\.suggest but received undefined/),
      ]),
    );
    const threats = await fixtureManifest('threats-tiny');
    threats.outputs[0].shape = [-1, 3, 15, 15];
    delete threats.thresholds.firearm;
    threats.labels[0].cargo = true;
    expect(validateManifest(threats)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/\(the heatmap cells tile the 64x64 input evenly\) for outputs\[0\]\.shape but received \[-1,3,15,15\]/),
        expect.stringMatching(/\(required: one threshold per threat label\) for thresholds\.firearm but received undefined/),
        expect.stringMatching(/^Expected no cargo flag \(it is for goods models only\) for labels\[0\]\.cargo but received true/),
      ]),
    );
  });

  it('reports each mistake once, at its own path, nested ones included', async () => {
    const m = await fixtureManifest();
    m.files.fp32.extra = 1;
    m.files.fp16.path = '/models/goods.onnx';
    m.input.tile = { size: '64', downsample: 4 };
    m.input.normalization.offset = [Number.NaN, Number.POSITIVE_INFINITY];
    // Not also "a goods model needs an output with meaning class_logits": that output is there, with a bad shape.
    m.outputs[0].shape = [2, 5];
    m.labels[2] = null;
    m.thresholds.suggest = 1.5;
    m.thresholds.other = 0.5;
    expect(validateManifest(m)).toEqual([
      'Unknown key files.fp32.extra',
      'Expected a relative path inside the model folder for files.fp16.path but received "/models/goods.onnx" of type string',
      'Expected a positive integer for input.tile.size but received "64" of type string',
      'Expected a finite number for input.normalization.offset[0] but received NaN of type number',
      'Expected a finite number for input.normalization.offset[1] but received Infinity of type number',
      'Expected [-1, ...positive integers] (batch first, at least 2 dimensions) for outputs[0].shape but received [2,5] of type array',
      'Expected an object {id, name, hsCodes} for labels[2] but received null of type null',
      'Expected a probability 0..1 for thresholds.suggest but received 1.5 of type number',
      'Expected no threshold but "suggest" on a goods model for thresholds.other but received 0.5 of type number',
    ]);
  });

  it('names the shape of a non-object manifest', () => {
    expect(validateManifest([])).toEqual(['Expected an object for the manifest but received [] of type array']);
  });
});

describe('loadModel', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'scanline-model-'));
    await cp(join(MODELS_DIR, 'goods-tiny'), dir, { recursive: true });
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('loads a valid model with absolute file paths and tile/output sizes', async () => {
    const m = await loadModel(dir);
    expect(m.manifest.name).toBe('goods-tiny');
    expect(m.files.fp32).toBe(join(dir, 'goods-tiny.onnx'));
    expect(m.files.fp16).toBe(join(dir, 'goods-tiny.fp16.onnx'));
    expect(m.tileFloats).toBe(2 * 64 * 64);
    expect(m.outputFloats).toEqual({ logits: 5, embedding: 16 });
    expect(Object.isFrozen(m.manifest.input.normalization.offset)).toBe(true);
  });

  it('refuses a file whose sha256 differs from the manifest', async () => {
    const file = join(dir, 'goods-tiny.fp16.onnx');
    const bytes = await readFile(file);
    bytes[bytes.length - 1] ^= 0xff;
    await writeFile(file, bytes);
    const err = await rejection(loadModel(dir));
    expect(err.code).toBe('SCANLINE_ERR_MODEL_CHECKSUM');
    expect(err.message).toMatch(/files\.fp16: .*goods-tiny\.fp16\.onnx has sha256 [0-9a-f]{64}, the manifest says/);
  });

  it('refuses a missing model file with the checksum code', async () => {
    await rm(join(dir, 'goods-tiny.onnx'));
    expect((await rejection(loadModel(dir))).code).toBe('SCANLINE_ERR_MODEL_CHECKSUM');
  });

  it('refuses a missing, non-JSON or invalid manifest with every problem in details', async () => {
    await writeFile(join(dir, 'model.json'), '{ not json');
    expect((await rejection(loadModel(dir))).code).toBe('SCANLINE_ERR_MODEL_MANIFEST');
    const m = await fixtureManifest();
    m.task = 'x';
    m.outputs = [];
    await writeFile(join(dir, 'model.json'), JSON.stringify(m));
    const err = await rejection(loadModel(dir));
    expect(err.code).toBe('SCANLINE_ERR_MODEL_MANIFEST');
    expect(err.details.problems).toHaveLength(2);
    await rm(join(dir, 'model.json'));
    expect((await rejection(loadModel(dir))).code).toBe('SCANLINE_ERR_MODEL_MANIFEST');
  });
});

describe('checkModelIo against real ONNX Runtime sessions', () => {
  const cpu = { provider: 'cpu' as const, deviceId: 0, intraOpThreads: 1, allowSpinning: false };

  it('finds no difference for the fixture models, fp16 variant included', async () => {
    for (const name of ['goods-tiny', 'threats-tiny']) {
      const m = await loadModel(join(MODELS_DIR, name));
      for (const file of [m.files.fp32, m.files.fp16].filter((f): f is string => !!f)) {
        const s = await createSession(file, cpu);
        expect(checkModelIo(m.manifest, s.inputMetadata, s.outputMetadata)).toEqual([]);
        await s.release();
      }
    }
  });

  it('lists the wrong input name and the wrong output shape of the mismatched fixture', async () => {
    const m = await loadModel(join(BAD_MODELS_DIR, 'goods-wrong-io'));
    const s = await createSession(m.files.fp32, cpu);
    const problems = checkModelIo(m.manifest, s.inputMetadata, s.outputMetadata);
    await s.release();
    expect(problems).toEqual([
      'the ONNX model has no input "input" (its inputs: "tiles")',
      'the ONNX model has an input "tiles" the manifest does not declare',
      'output "logits" has shape ["batch", 5], the manifest says [-1, 7]',
    ]);
  });

  it('flags a fixed batch dimension and a wrong element type', () => {
    const m = { input: { name: 'x', shape: [-1, 2, 64, 64] }, outputs: [{ name: 'y', shape: [-1, 3] }] } as never;
    expect(
      checkModelIo(
        m,
        [{ name: 'x', isTensor: true, type: 'float32', shape: [8, 2, 64, 64] }],
        [{ name: 'y', isTensor: true, type: 'float16', shape: ['n', 3] }],
      ),
    ).toEqual(['input "x" has a fixed batch dimension 8; it must be dynamic', 'output "y" has element type float16, the manifest says float32']);
  });
});

describe('checkTileGeometry', () => {
  it('compares the trained tile geometry with the stitcher', async () => {
    const m = (await loadModel(join(MODELS_DIR, 'goods-tiny'))).manifest;
    expect(checkTileGeometry(m, { size: 64, downsample: 4 })).toEqual([]);
    expect(checkTileGeometry(m, { size: 32, downsample: 2 }, 1)).toEqual([
      'model goods-tiny takes 64x64 tiles, the stitcher makes 32x32 (stitch.tile.size)',
      'model goods-tiny was trained on tiles downsampled 4x, the stitcher downsamples 2x (stitch.tile.downsample)',
      'model goods-tiny takes 2 channels, the stitcher makes 1-channel tiles',
    ]);
  });
});
