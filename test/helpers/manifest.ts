/**
 * A model manifest for tests that never read its files: a 2-channel 64 x 64 input and the outputs a task needs
 * (goods: class logits and a 4-d embedding; threats: a 16 x 16 heatmap); `extra` overrides any field.
 */
import type { ModelLabel, ModelManifest } from '../../src/inference/index.js';

export const testManifest = (
  task: 'goods' | 'threats',
  labels: ModelLabel[],
  thresholds: Record<string, number>,
  extra: Partial<ModelManifest> = {},
): ModelManifest =>
  ({
    manifestVersion: 1,
    name: `${task}-test`,
    version: '1.2.3',
    task,
    description: '',
    files: { fp32: { path: 'model.onnx', sha256: '0'.repeat(64) } },
    input: {
      name: 'tiles',
      shape: [-1, 2, 64, 64],
      dtype: 'float32',
      layout: 'NCHW',
      channels: ['attenuation_high', 'attenuation_low'],
      tile: { size: 64, downsample: 4 },
      normalization: { offset: [0, 0], scale: [1, 1], clampMin: -8, clampMax: 8 },
    },
    outputs:
      task === 'goods'
        ? [
            { name: 'class_logits', shape: [-1, labels.length], dtype: 'float32', meaning: 'class_logits' },
            { name: 'embedding', shape: [-1, 4], dtype: 'float32', meaning: 'embedding' },
          ]
        : [{ name: 'heat', shape: [-1, labels.length, 16, 16], dtype: 'float32', meaning: 'threat_heatmap_logits' }],
    labels,
    thresholds,
    ...extra,
  }) as ModelManifest;
