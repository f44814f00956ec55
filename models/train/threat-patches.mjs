// Threat image projection (TIP) library for train_threats.py: the attenuation of each simulated threat on its own,
// at tile resolution. X-ray attenuation is additive along the beam (the simulator sums mu * rho * L per ray, and the
// stitcher's tiles are block means of -ln T), so adding a patch to a tile that holds no threat gives the tile of the
// same load with that threat concealed in it: unlimited paired examples over every load, including the ones that
// look most like threats (steel pipes, machinery). This is the projection real screening systems use to test
// operators.
//
//   node models/train/threat-patches.mjs --seeds A..B --out DIR [--pixels N]
// Writes DIR/patches.f32 (float32 little-endian, each patch [2][h][w]: high, low energy; h down the detector, w along
// the scan, in tile samples of 4 x 4 raw) and DIR/patches.json ({ kinds, downsample, items: [{ kind, variant, seed,
// h, w, offset }] }, offset in floats). Needs `npm run build` (imports dist/).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  THREAT_KINDS,
  createDetector,
  generateTruck,
  sceneFromPrimitives,
  trueAttenuationLines,
  truthLabels,
} from '../../dist/tools/simulator/index.js';
import { DS, blockMeans } from './tile-blocks.mjs';

const args = process.argv.slice(2);
const opt = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : fallback;
};
const m = /^(\d+)\.\.(\d+)$/.exec(opt('seeds', '') ?? '');
const out = opt('out');
if (!m || !out) {
  console.error('usage: node models/train/threat-patches.mjs --seeds A..B --out DIR [--pixels N]');
  process.exit(2);
}
const [first, last] = [Number(m[1]), Number(m[2])];
const pixels = Number(opt('pixels', '1024'));

const det = createDetector({ pixels, noise: false });
const chunks = [];
const items = [];
let offset = 0;
for (let seed = first; seed <= last; seed++) {
  const scene = generateTruck(seed, det, { threatProbability: 1 });
  const truth = truthLabels(scene, det);
  truth.threats.forEach((box, i) => {
    const prims = scene.primitives.filter((p) => p.tag === 'threat' && p.group === i);
    const alone = sceneFromPrimitives(det, prims, { leadingAirLines: scene.leadingAirLines, trailingAirLines: 0, lengthMm: scene.vehicle.lengthMm, seed });
    const l0 = Math.floor(box.lineStart / DS) * DS;
    const l1 = Math.ceil(box.lineEnd / DS) * DS;
    const p0 = Math.floor(box.pixelStart / DS) * DS;
    const p1 = Math.min(pixels, Math.ceil(box.pixelEnd / DS) * DS);
    const lines = l1 - l0;
    const raw = new Float32Array(lines * 2 * pixels);
    trueAttenuationLines(alone, det, l0, lines, raw);
    const w = lines / DS;
    const h = (p1 - p0) / DS;
    const patch = new Float32Array(2 * h * w);
    for (let e = 0; e < 2; e++) blockMeans(raw, e, pixels, p0, p1, lines, patch.subarray(e * h * w, (e + 1) * h * w));
    chunks.push(patch);
    items.push({ kind: box.kind, variant: box.variant, seed, h, w, offset });
    offset += patch.length;
  });
}
mkdirSync(out, { recursive: true });
const all = new Float32Array(offset);
let at = 0;
for (const c of chunks) {
  all.set(c, at);
  at += c.length;
}
writeFileSync(join(out, 'patches.f32'), new Uint8Array(all.buffer));
writeFileSync(join(out, 'patches.json'), JSON.stringify({ kinds: [...THREAT_KINDS], downsample: DS, seeds: [first, last], pixels, items }));
const byKind = Object.fromEntries(THREAT_KINDS.map((k) => [k, items.filter((x) => x.kind === k).length]));
console.log(JSON.stringify({ out, patches: items.length, byKind, floats: offset }));
