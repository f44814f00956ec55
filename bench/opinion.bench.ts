/**
 * Opinion bench (`npm run bench:opinion`): what the out-of-distribution scoring of issue 15 costs per tile, against
 * the goods model's own compute per tile in ONNX Runtime (the baseline, measured in the same run on the same tiles:
 * bench/lib/infer-raw.ts, batch 32, the gateway's threads per worker).
 *
 * Per tile: tileImageFeatures (src/image-stats/image-features.ts) on the raw tile, which the gateway runs on the
 * inference worker beside the model (BatchResult.imageFeatures), then OodModel.score under the top-1 label with an
 * L2-normalised embedding (src/opinion/ood.ts), which the results stage runs on the main thread. Best of --passes
 * passes over --tiles tiles of simulated trucks (seeds from 5000).
 *
 * Writes bench/results/opinion-<stamp>.json; compare the ratio, not the microseconds (a shared VM).
 * Options: --tiles 2048  --passes 5  --no-write
 */
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { DEFAULT_CONFIG } from '../src/config/index.js';
import { DEFAULT_INFERENCE_CONFIG, defaultModelsDir, discoverModels, effectiveIntraOpThreads } from '../src/inference/index.js';
import { IMAGE_FEATURE_COUNT, OodModel, tileImageFeatures } from '../src/opinion/index.js';
import { collectTiles, measureRaw, rawTilesPerS } from './lib/infer-raw.js';
import { machineInfo } from './lib/machine.js';
import { writeResultsJson } from './lib/results-file.js';

const { values: args } = parseArgs({
  options: { tiles: { type: 'string', default: '2048' }, passes: { type: 'string', default: '5' }, 'no-write': { type: 'boolean', default: false } },
});
const count = Number(args.tiles);
const passes = Number(args.passes);
const date = new Date().toISOString();

const models = await discoverModels(defaultModelsDir(), { names: ['goods-v1'] });
const goods = models[0];
const stats = goods.manifest.outOfDistribution;
if (!stats) throw new Error('goods-v1 carries no outOfDistribution statistics');
const ood = new OodModel(stats);
const set = await collectTiles(count, 5000, 1024);
const tiles = set.tiles.slice(0, count);
const size = DEFAULT_CONFIG.stitch.tile.size;
const attenuationMax = DEFAULT_CONFIG.stitch.attenuationMax;
const dim = ood.embeddingDim;
const embedding = new Float32Array(dim).fill(1 / Math.sqrt(dim));
const features = new Float64Array(IMAGE_FEATURE_COUNT);

let bestFeatures = Infinity;
let bestScore = Infinity;
let sink = 0;
for (let p = 0; p < passes; p++) {
  const t0 = performance.now();
  for (const t of tiles) tileImageFeatures(t, size, 2, attenuationMax, features);
  const t1 = performance.now();
  for (let i = 0; i < tiles.length; i++) sink += ood.score(i % goods.manifest.labels.length, features, embedding).score;
  const t2 = performance.now();
  bestFeatures = Math.min(bestFeatures, ((t1 - t0) * 1000) / tiles.length);
  bestScore = Math.min(bestScore, ((t2 - t1) * 1000) / tiles.length);
}
if (!Number.isFinite(sink)) throw new Error('scores are not finite');

const intraOp = effectiveIntraOpThreads(DEFAULT_INFERENCE_CONFIG);
const raw = await measureRaw([goods], DEFAULT_INFERENCE_CONFIG, intraOp, set, 1, 2, () => undefined, [32]);
const modelUsPerTile = 1e6 / rawTilesPerS(raw.models[0].points, 32);
const opinionUs = bestFeatures + bestScore;
const out = {
  bench: 'opinion',
  date,
  machine: machineInfo(),
  tiles: tiles.length,
  passes,
  featuresUsPerTile: Math.round(bestFeatures * 10) / 10,
  scoreUsPerTile: Math.round(bestScore * 10) / 10,
  goodsModelUsPerTile: Math.round(modelUsPerTile * 10) / 10,
  ratioToGoodsModel: Math.round((opinionUs / modelUsPerTile) * 1000) / 1000,
};
console.log(
  `opinion per tile: features ${out.featuresUsPerTile} us (inference worker) + score ${out.scoreUsPerTile} us (results thread); ` +
    `goods-v1 in ONNX Runtime (batch 32, ${intraOp} threads) ${out.goodsModelUsPerTile} us: ratio ${out.ratioToGoodsModel}`,
);
if (!args['no-write']) console.log(`written ${writeResultsJson('opinion', date, out)}`);
