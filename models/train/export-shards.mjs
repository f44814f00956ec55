// Parallel `scanline dataset`: splits a seed range into shards and exports each in its own process, so a machine
// with many cores (a GPU training box) builds the training sets in a minute instead of half an hour. The shards are
// ordinary dataset directories (DIR/00, DIR/01, ...) that train_*.py take as a list; the tiles are exactly what
// `scanline dataset` writes for the same seeds (the same exporter, imported from dist/).
//
//   node models/train/export-shards.mjs --seeds A..B --out DIR [--shards N] [--threat-probability P] [--keep all|threats]
//                                       [--energies 1|2] [--realism basic|hard]
// Prints one JSON line per shard ({ shard, seeds, tiles, seconds }) and the shard directories on the last line.
// Needs `npm run build`. Imports only the dataset stage (no sharp, ONNX Runtime or uWebSockets.js), so it runs with
// dist/, build/Release and the small pure-JS dependencies of the simulator.
import { fork } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};

if (process.env.SCANLINE_EXPORT_SHARD) {
  // Child: one shard.
  const job = JSON.parse(process.env.SCANLINE_EXPORT_SHARD);
  const { exportDataset } = await import('../../dist/tools/dataset/index.js');
  const summary = await exportDataset({
    seeds: job.seeds,
    out: job.out,
    ...(job.threatProbability === undefined ? {} : { threatProbability: job.threatProbability }),
    keep: job.keep,
    energies: job.energies,
    ...(job.realism === 'hard' ? { truck: { realism: 'hard' } } : {}),
  });
  process.send({ shard: job.shard, seeds: job.seeds, tiles: summary.tiles, seconds: summary.seconds });
  process.exit(0);
}

const m = /^(\d+)\.\.(\d+)$/.exec(opt('seeds', '') ?? '');
const out = opt('out');
if (!m || !out) {
  console.error('usage: node models/train/export-shards.mjs --seeds A..B --out DIR [--shards N] [--threat-probability P] [--keep all|threats]');
  process.exit(2);
}
const first = Number(m[1]);
const last = Number(m[2]);
if (last < first) {
  console.error(`Expected A <= B for --seeds but received ${m[0]}`);
  process.exit(2);
}
const shards = Math.max(1, Math.min(Number(opt('shards', String(availableParallelism()))), last - first + 1));
const tp = opt('threat-probability');
const threatProbability = tp === undefined ? undefined : Number(tp);
const keep = opt('keep', 'all');
const energies = Number(opt('energies', '2'));
if (energies !== 1 && energies !== 2) {
  console.error(`Expected 1 or 2 for --energies but received ${energies}`);
  process.exit(2);
}

const realism = opt('realism', 'basic');
if (realism !== 'basic' && realism !== 'hard') {
  console.error(`Expected basic or hard for --realism but received ${realism}`);
  process.exit(2);
}

const per = Math.ceil((last - first + 1) / shards);
const jobs = [];
for (let s = 0; s < shards; s++) {
  const a = first + s * per;
  const b = Math.min(last, a + per - 1);
  if (a > last) break;
  jobs.push({ shard: s, seeds: [a, b], out: join(out, String(s).padStart(2, '0')), threatProbability, keep, energies, realism });
}
const self = fileURLToPath(import.meta.url);
const results = await Promise.all(
  jobs.map(
    (job) =>
      new Promise((resolve, reject) => {
        const child = fork(self, [], { env: { ...process.env, SCANLINE_EXPORT_SHARD: JSON.stringify(job) }, stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
        let result = null;
        child.on('message', (msg) => {
          result = msg;
          console.log(JSON.stringify(msg));
        });
        child.on('exit', (code) => (code === 0 && result ? resolve(result) : reject(new Error(`shard ${job.shard} (seeds ${job.seeds.join('..')}) exited with ${code}`))));
      }),
  ),
);
console.log(jobs.map((j) => j.out).join(' '));
if (results.length !== jobs.length) process.exit(1);
