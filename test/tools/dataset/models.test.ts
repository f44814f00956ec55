/**
 * The committed model registry (models/<name>/model.json): every manifest parses, follows the contract of
 * src/inference/manifest-types.ts, names files that exist and whose sha256 matches, and agrees with the gateway's
 * tile geometry and the dataset's labels. Pure Node: no ONNX Runtime needed.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DEFAULT_CONFIG } from '../../../src/config/index.js';
import { GOODS_LABELS, NON_CARGO_LABELS, THREAT_LABELS } from '../../../tools/dataset/index.js';
import type { ModelManifest } from '../../../src/inference/manifest-types.js';
import { CARGO_CATEGORY_INFO, type CargoCategory } from '../../../tools/simulator/cargo.js';

const MODELS = fileURLToPath(new URL('../../../models/', import.meta.url));
const folders = readdirSync(MODELS).filter((d) => existsSync(join(MODELS, d, 'model.json')));

function sha256(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

describe('models/ registry', () => {
  it('holds the goods and threats demo models, dual- and single-energy', () => {
    expect(folders).toEqual(expect.arrayContaining(['goods-v1', 'threats-v1', 'goods-1e-v1', 'threats-1e-v1']));
  });

  for (const folder of folders) {
    describe(folder, () => {
      const dir = join(MODELS, folder);
      const m = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as ModelManifest;

      it('follows the manifest contract', () => {
        expect(m.manifestVersion).toBe(1);
        expect(m.name).toBe(folder);
        expect(m.version).toMatch(/^\d+\.\d+\.\d+$/);
        expect(['goods', 'threats']).toContain(m.task);
        expect(m.description.length).toBeGreaterThan(0);
        const t = DEFAULT_CONFIG.stitch.tile;
        // Dual-energy models read [high, low]; single-energy ones (a name with "-1e-") the high energy only.
        const channels = folder.includes('-1e-') ? 1 : 2;
        expect(m.input).toEqual({
          name: 'tiles',
          shape: [-1, channels, t.size, t.size],
          dtype: 'float32',
          layout: 'NCHW',
          channels: channels === 2 ? ['attenuation_high', 'attenuation_low'] : ['attenuation_high'],
          tile: { size: t.size, downsample: t.downsample },
          normalization: m.input.normalization,
        });
        const n = m.input.normalization;
        expect(n.offset).toHaveLength(channels);
        expect(n.scale).toHaveLength(channels);
        expect(n.scale.every((s) => Number.isFinite(s) && s !== 0)).toBe(true);
        expect(n.clampMin).toBeLessThan(n.clampMax);
        for (const o of m.outputs) {
          expect(o.dtype).toBe('float32');
          expect(o.shape[0]).toBe(-1);
          expect(o.name.length).toBeGreaterThan(0);
        }
        expect(new Set(m.outputs.map((o) => o.name)).size).toBe(m.outputs.length);
        expect(new Set(m.labels.map((l) => l.id)).size).toBe(m.labels.length);
        for (const l of m.labels) {
          expect(l.name.length).toBeGreaterThan(0);
          expect(Array.isArray(l.hsCodes)).toBe(true);
          for (const hs of l.hsCodes) expect(hs).toMatch(/^\d{4}(\d{2})*$/);
        }
      });

      it('names files that exist and match their sha256', () => {
        const files = [m.files.fp32, ...(m.files.fp16 ? [m.files.fp16] : [])];
        for (const f of files) {
          const path = join(dir, f.path);
          expect(existsSync(path), f.path).toBe(true);
          expect(f.sha256).toMatch(/^[0-9a-f]{64}$/);
          expect(sha256(path), f.path).toBe(f.sha256);
        }
        // Demo models stay small: CI and users run the committed files.
        for (const f of files) expect(statSync(join(dir, f.path)).size).toBeLessThan(2 * 1024 * 1024);
      });

      if (m.task === 'goods') {
        it('outputs class logits over its labels and an embedding; labels carry HS codes; suggest threshold set', () => {
          const logits = m.outputs.find((o) => o.meaning === 'class_logits');
          const embedding = m.outputs.find((o) => o.meaning === 'embedding');
          expect(logits?.shape).toEqual([-1, m.labels.length]);
          expect(embedding?.shape).toHaveLength(2);
          expect(m.labels.map((l) => l.id)).toEqual([...GOODS_LABELS]);
          for (const l of m.labels) {
            const nonCargo = (NON_CARGO_LABELS as readonly string[]).includes(l.id);
            expect(l.cargo).toBe(!nonCargo);
            const hs = nonCargo ? null : CARGO_CATEGORY_INFO[l.id as CargoCategory].hsCode;
            expect(l.hsCodes).toEqual(hs ? [hs] : []);
          }
          expect(m.thresholds.suggest).toBeGreaterThan(0);
          expect(m.thresholds.suggest).toBeLessThan(1);
        });
      }

      if (m.task === 'threats') {
        it('outputs a per-cell heatmap over its labels with one threshold per label', () => {
          const heatmap = m.outputs.find((o) => o.meaning === 'threat_heatmap_logits');
          expect(heatmap?.shape).toEqual([-1, m.labels.length, 16, 16]);
          expect(m.labels.map((l) => l.id)).toEqual([...THREAT_LABELS]);
          expect(Object.keys(m.thresholds).sort()).toEqual([...THREAT_LABELS].sort());
          for (const v of Object.values(m.thresholds)) expect(v > 0 && v < 1).toBe(true);
        });
      }

      it('records its training provenance: no training or validation seed among the held-out 5000-5999 or the unseen 6000-6599', () => {
        type Range = [number, number];
        const t = m.training as { trainSeeds: Range; validationSeeds: Range; trainSeedRanges?: Range[]; validationSeedRanges?: Range[]; validation: unknown };
        // The ranges the seeds lie in where recorded; a manifest from before them has [first, last] alone.
        const train = t.trainSeedRanges ?? [t.trainSeeds];
        const validation = t.validationSeedRanges ?? [t.validationSeeds];
        const overlaps = (a: Range, b: Range): boolean => a[0] <= b[1] && b[0] <= a[1];
        for (const ranges of [train, validation]) {
          ranges.forEach(([first, last], i) => {
            expect(first).toBeLessThanOrEqual(last);
            // In seed order and apart, so that the first and last stand for the whole list.
            if (i > 0) expect(first).toBeGreaterThan(ranges[i - 1][1]);
            // 5000-5999: `scanline eval`'s held-out trucks; 6000-6599: threshold choice and the opinion fit's validation.
            expect(overlaps([first, last], [5000, 6999])).toBe(false);
          });
        }
        expect([train[0][0], train.at(-1)![1]]).toEqual(t.trainSeeds);
        expect([validation[0][0], validation.at(-1)![1]]).toEqual(t.validationSeeds);
        expect(t.validation).toBeDefined();
        // Thresholds chosen again after training (compare_threats.py) come from seeds neither held out nor trained on.
        const choice = (m.training as { thresholdChoice?: { seeds: Range } }).thresholdChoice;
        if (choice) {
          expect(overlaps(choice.seeds, [5000, 5999])).toBe(false);
          for (const r of train) expect(overlaps(choice.seeds, r)).toBe(false);
        }
      });

      const initFrom = (m.training as { initFrom?: { name: string; version: string; sha256: string } }).initFrom;
      if (initFrom) {
        it('names the model it was fine-tuned from, by a hash of its weights', () => {
          expect(initFrom.sha256).toMatch(/^[0-9a-f]{64}$/);
          // A start whose weights are still in the registry is the very file committed there (threats-1e-v1 3.0.0
          // from threats-v1 5.0.0); one replaced since (threats-v1 4.0.0, run.sh THREATS_INIT=base) is pinned by
          // run.sh's sha256 check.
          const start = folders.includes(initFrom.name) ? (JSON.parse(readFileSync(join(MODELS, initFrom.name, 'model.json'), 'utf8')) as ModelManifest) : null;
          if (start?.files.fp32.sha256 !== initFrom.sha256) {
            // The same version with other weights would be a manifest that lies.
            expect(start?.version).not.toBe(initFrom.version);
            expect(readFileSync(join(MODELS, 'train', 'run.sh'), 'utf8')).toContain(initFrom.sha256);
          }
        });
      }
    });
  }
});
