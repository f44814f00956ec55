// How visible each held-out threat is, from the simulator's physics, beside whether `scanline eval` found it: is a
// missed threat the model's failure, or was it hidden beyond what the image can show?
//
//   node models/train/threat-visibility.mjs --scans FILE [--realism hard|basic] [--threat-probability P]
//     [--mismatch-probability P] [--energies 2|1] [--out FILE]
// FILE: `scanline eval --scans-out` of the same run (same seeds, realism and probabilities, which regenerate the very
// trucks). Needs `npm run build` (imports dist/).
//
// Per threat, at tile resolution (4 x 4 raw samples, high energy), from the noise-free attenuation of the scene with
// the threat and of the threat alone (the scene's own line edges, so the hard simulator's varying speed is kept):
//   signal   mean attenuation the threat adds over its core (cells at >= half its peak)
//   clutter  standard deviation of the rest of the scene in a window 64 raw samples around the threat (cells the
//            threat does not touch): how much the load itself varies there
//   noise-limited SNR  an ideal observer that knows the threat's shape, in photon and read noise alone: per core cell
//            the contrast left under the stitcher's clamp (10) over the tile-mean noise of -ln T (air counts 50,000,
//            read noise 6 counts, 16 raw samples a cell), summed in quadrature
// Prints recall by signal-to-clutter quintile and by concealment; --out writes one JSON line per threat.
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { evalTruck } from '../../dist/tools/eval/trucks.js';
import { trueAttenuationLines } from '../../dist/tools/simulator/index.js';
import { DS, blockMeans } from './tile-blocks.mjs';

const { values: a } = parseArgs({
  options: {
    scans: { type: 'string' },
    realism: { type: 'string', default: 'hard' },
    'threat-probability': { type: 'string', default: '0.5' },
    'mismatch-probability': { type: 'string', default: '0.2' },
    energies: { type: 'string', default: '2' },
    out: { type: 'string' },
  },
});
if (!a.scans) {
  console.error('usage: node models/train/threat-visibility.mjs --scans FILE [--realism hard|basic] [--out FILE]');
  process.exit(2);
}
const MARGIN = 64;
const CLAMP = 10;
const AIR_COUNTS = 50000;
const READ_NOISE = 6;
const options = {
  threatProbability: Number(a['threat-probability']),
  mismatchProbability: Number(a['mismatch-probability']),
  realism: a.realism,
  energies: Number(a.energies),
};

/** Block means of one energy over pixels p0..p1: [h][w] float64. */
const blocks = (raw, energy, pixels, p0, p1, lines) => blockMeans(raw, energy, pixels, p0, p1, lines, new Float64Array(((p1 - p0) / DS) * (lines / DS)));

const rows = [];
for (const line of readFileSync(a.scans, 'utf8').split('\n')) {
  if (!line) continue;
  const rec = JSON.parse(line);
  // An out-of-distribution scan's boxes are hints: its threats are scored there.
  const scored = rec.outOfDistribution ? (rec.hints?.truth ?? []) : rec.threats.truth;
  if (scored.length === 0) continue;
  const truck = evalTruck(rec.seed, options);
  const det = truck.detector;
  const n = det.pixels;
  truck.truth.threats.forEach((box, i) => {
    const ev = scored[i];
    if (!ev || ev.kind !== box.kind) throw new Error(`seed ${rec.seed}: threat ${i} is ${box.kind} here, ${ev?.kind} in ${a.scans}: other options?`);
    const alone = { ...truck.scene, primitives: truck.scene.primitives.filter((p) => p.tag === 'threat' && p.group === i) };
    const l0 = Math.max(0, Math.floor((box.lineStart - MARGIN) / DS) * DS);
    const l1 = Math.min(truck.scene.totalLines, Math.ceil((box.lineEnd + MARGIN) / DS) * DS);
    const lines = Math.floor((l1 - l0) / DS) * DS;
    const p0 = Math.max(0, Math.floor((box.pixelStart - MARGIN) / DS) * DS);
    const p1 = Math.min(n, Math.ceil((box.pixelEnd + MARGIN) / DS) * DS);
    const full = new Float32Array(lines * 2 * n);
    const own = new Float32Array(lines * 2 * n);
    trueAttenuationLines(truck.scene, det, l0, lines, full);
    trueAttenuationLines(alone, det, l0, lines, own);
    const F = blocks(full, 0, n, p0, p1, lines);
    const T = blocks(own, 0, n, p0, p1, lines);
    let peak = 0;
    for (const v of T) peak = Math.max(peak, v);
    let signal = 0;
    let core = 0;
    let snr2 = 0;
    let bg = 0;
    let bg2 = 0;
    let around = 0;
    for (let c = 0; c < F.length; c++) {
      const background = F[c] - T[c];
      if (peak > 0 && T[c] >= 0.5 * peak) {
        signal += T[c];
        core++;
        const counts = AIR_COUNTS * Math.exp(-background);
        const sigma = Math.sqrt(counts + READ_NOISE * READ_NOISE) / Math.max(counts, 1e-9) / DS;
        snr2 += ((Math.min(F[c], CLAMP) - Math.min(background, CLAMP)) / sigma) ** 2;
      } else if (T[c] < 0.02) {
        bg += background;
        bg2 += background * background;
        around++;
      }
    }
    signal = core > 0 ? signal / core : 0;
    const mean = around > 0 ? bg / around : 0;
    const clutter = around > 0 ? Math.sqrt(Math.max(0, bg2 / around - mean * mean)) : 0;
    rows.push({
      seed: rec.seed,
      threat: i,
      kind: box.kind,
      concealment: ev.concealment ?? null,
      found: ev.found,
      outOfDistribution: rec.outOfDistribution === true,
      signal: Number(signal.toFixed(3)),
      clutter: Number(clutter.toFixed(3)),
      signalToClutter: Number((signal / Math.max(clutter, 1e-3)).toFixed(3)),
      noiseLimitedSnr: Number(Math.sqrt(snr2).toFixed(1)),
    });
  });
}
if (a.out) writeFileSync(a.out, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');

const pct = (xs) => (xs.length === 0 ? '-' : `${((100 * xs.filter((r) => r.found).length) / xs.length).toFixed(0)}%`);
const inDist = rows.filter((r) => !r.outOfDistribution);
console.log(`${inDist.length} threats on scans in distribution (${rows.length - inDist.length} more as hints); found ${pct(inDist)}`);
for (const th of [5, 20]) {
  const hidden = inDist.filter((r) => r.noiseLimitedSnr < th);
  console.log(`noise-limited SNR < ${th}: ${hidden.length} threats (${pct(hidden)} found); the rest ${pct(inDist.filter((r) => r.noiseLimitedSnr >= th))}`);
}
const sorted = [...inDist].sort((x, y) => x.signalToClutter - y.signalToClutter);
console.log('signal / clutter quintile   threats  found  median signal  median clutter');
for (let q = 0; q < 5; q++) {
  const part = sorted.slice(Math.floor((q * sorted.length) / 5), Math.floor(((q + 1) * sorted.length) / 5));
  if (part.length === 0) continue;
  const med = (k) => [...part.map((r) => r[k])].sort((x, y) => x - y)[part.length >> 1];
  console.log(
    `  ${part[0].signalToClutter.toFixed(2).padStart(6)} - ${part[part.length - 1].signalToClutter.toFixed(2).padEnd(8)}  ${String(part.length).padStart(7)}  ${pct(part).padStart(5)}  ${med('signal').toFixed(2).padStart(13)}  ${med('clutter').toFixed(2).padStart(14)}`,
  );
}
for (const how of [...new Set(inDist.map((r) => r.concealment))].sort()) {
  const part = inDist.filter((r) => r.concealment === how);
  const med = (k) => [...part.map((r) => r[k])].sort((x, y) => x - y)[part.length >> 1];
  console.log(`  ${String(how).padEnd(12)} ${String(part.length).padStart(4)} threats, found ${pct(part).padStart(4)}; median signal ${med('signal').toFixed(2)}, clutter ${med('clutter').toFixed(2)}, signal/clutter ${med('signalToClutter').toFixed(2)}`);
}
