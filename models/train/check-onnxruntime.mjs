// Runs the committed models in ONNX Runtime for Node exactly as the gateway would feed them (the manifest's
// normalisation, float32 NCHW tiles from a `scanline dataset` export) and checks them against their manifests:
// input/output names, shapes and dtypes, fp32 vs fp16 agreement, goods top-1 accuracy and threat cell recall on the
// dataset's tiles. Needs onnxruntime-node in node_modules. Checks the models that read as many energies as the
// dataset has (2: dual-energy tiles; 1: `--energies 1`) and names the others as not checked by it.
//
//   node models/train/check-onnxruntime.mjs DATASET_DIR [--limit N]
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';

const MODELS = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const dataset = args[0];
if (!dataset) {
  console.error('usage: node models/train/check-onnxruntime.mjs DATASET_DIR [--limit N]');
  process.exit(2);
}
const limitAt = args.indexOf('--limit');
const index = JSON.parse(readFileSync(join(dataset, 'index.json'), 'utf8'));
const n = Math.min(index.count, limitAt >= 0 ? Number(args[limitAt + 1]) : 2048);
const channels = index.files.tiles.shape[1];
const tileFloats = channels * 64 * 64;
const raw = readFileSync(join(dataset, 'tiles.f32'));
const tiles = new Float32Array(raw.buffer, raw.byteOffset, index.count * tileFloats).subarray(0, n * tileFloats);
const goods = new Uint8Array(readFileSync(join(dataset, 'goods.u8'))).subarray(0, n);
const cells = 3 * 16 * 16;
const threats = new Uint8Array(readFileSync(join(dataset, 'threats.u8'))).subarray(0, n * cells);

function normalise(x, norm) {
  const out = new Float32Array(x.length);
  const plane = 64 * 64;
  for (let i = 0; i < x.length; i++) {
    const c = Math.floor(i / plane) % channels;
    const v = (x[i] - norm.offset[c]) * norm.scale[c];
    out[i] = Math.min(norm.clampMax, Math.max(norm.clampMin, v));
  }
  return out;
}

async function runAll(path, input, batch = 256) {
  const session = await ort.InferenceSession.create(path, { intraOpNumThreads: 2 });
  const outs = {};
  for (let s = 0; s < n; s += batch) {
    const b = Math.min(batch, n - s);
    const feed = new ort.Tensor('float32', input.subarray(s * tileFloats, (s + b) * tileFloats), [b, channels, 64, 64]);
    const r = await session.run({ [session.inputNames[0]]: feed });
    for (const [name, t] of Object.entries(r)) {
      if (t.type !== 'float32') throw new Error(`${path}: output ${name} is ${t.type}, expected float32`);
      (outs[name] ??= []).push({ dims: t.dims, data: t.data });
    }
  }
  const joined = {};
  for (const [name, parts] of Object.entries(outs)) {
    const per = parts[0].data.length / parts[0].dims[0];
    const data = new Float32Array(n * per);
    let at = 0;
    for (const p of parts) {
      data.set(p.data, at);
      at += p.data.length;
    }
    joined[name] = { dims: [n, ...parts[0].dims.slice(1)], data };
  }
  return { session, outputs: joined };
}

let failed = false;
let checked = 0;
const check = (ok, message) => {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${message}`);
  if (!ok) failed = true;
};

for (const folder of readdirSync(MODELS).filter((d) => existsSync(join(MODELS, d, 'model.json')))) {
  const dir = join(MODELS, folder);
  const m = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8'));
  if (m.input.shape[1] !== channels) {
    console.log(`skip ${folder}: reads ${m.input.shape[1]} energies, ${dataset} has ${channels}`);
    continue;
  }
  checked++;
  const input = normalise(tiles, m.input.normalization);
  const fp32 = await runAll(join(dir, m.files.fp32.path), input);
  check(fp32.session.inputNames.join() === m.input.name, `${folder}: input name ${fp32.session.inputNames}`);
  check(fp32.session.outputNames.join() === m.outputs.map((o) => o.name).join(), `${folder}: output names ${fp32.session.outputNames}`);
  for (const o of m.outputs) {
    const got = fp32.outputs[o.name].dims;
    check(got.length === o.shape.length && o.shape.every((d, i) => d === -1 || d === got[i]), `${folder}: ${o.name} shape ${JSON.stringify(got)} vs ${JSON.stringify(o.shape)}`);
  }
  if (m.files.fp16) {
    const fp16 = await runAll(join(dir, m.files.fp16.path), input);
    for (const o of m.outputs) {
      const a = fp32.outputs[o.name].data;
      const b = fp16.outputs[o.name].data;
      // Heatmap logits are compared as the cell probabilities the gateway uses (sigmoid): large logits differ in
      // fp16 by more than 0.1 where the probability does not change at all.
      const f = o.meaning === 'threat_heatmap_logits' ? (x) => 1 / (1 + Math.exp(-x)) : (x) => x;
      let d = 0;
      for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(f(a[i]) - f(b[i])));
      const what = o.meaning === 'threat_heatmap_logits' ? 'cell probability' : o.name;
      check(d < 0.1, `${folder}: fp16 vs fp32 ${what} max abs diff ${d.toFixed(4)}`);
    }
  }
  if (m.task === 'goods') {
    const L = m.labels.length;
    const logits = fp32.outputs[m.outputs.find((o) => o.meaning === 'class_logits').name].data;
    let right = 0;
    let total = 0;
    for (let i = 0; i < n; i++) {
      if (!m.labels[goods[i]].cargo || m.labels[goods[i]].id === 'empty') continue;
      let best = 0;
      for (let c = 1; c < L; c++) if (logits[i * L + c] > logits[i * L + best]) best = c;
      total++;
      if (best === goods[i]) right++;
    }
    console.log(`     ${folder}: onnxruntime goods top-1 ${(right / Math.max(1, total)).toFixed(4)} over ${total} goods tiles of ${dataset}`);
    check(total === 0 || right / total > 0.8, `${folder}: goods accuracy is in the range the manifest reports`);
  } else {
    const heat = fp32.outputs[m.outputs.find((o) => o.meaning === 'threat_heatmap_logits').name].data;
    const logit = m.labels.map((l) => Math.log(m.thresholds[l.id] / (1 - m.thresholds[l.id])));
    let tp = 0;
    let pos = 0;
    let fpCells = 0;
    for (let i = 0; i < n * cells; i++) {
      const k = Math.floor((i % cells) / 256);
      const on = heat[i] >= logit[k];
      if (threats[i]) {
        pos++;
        if (on) tp++;
      } else if (on) fpCells++;
    }
    console.log(`     ${folder}: onnxruntime cells at threshold: ${tp}/${pos} threat cells, ${fpCells} other cells, over ${n} tiles of ${dataset}`);
  }
}
check(checked > 0, `${checked} models read tiles of ${channels} energies`);
process.exit(failed ? 1 : 0);
