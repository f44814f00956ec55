/**
 * Stitcher throughput: the native addon against the pure-TypeScript reference on the same synthetic scan
 * (2048 pixels, dual energy, default options: tiles 64 x 4, preview / 2). Reports samples per second of process()
 * time (calibration + tiles + preview) and of push() time, and the native / TypeScript ratio.
 *
 * Run: npm run build && node dist/bench/stitch.bench.js [lines=4096] [pixels=2048]
 */
import { performance } from 'node:perf_hooks';
import { nativeAddonInfo } from '../src/addon/index.js';
import { createStitcher } from '../src/stitch/index.js';
import { type StitcherImplementation, stitcherOf } from '../test/helpers/ts-stitcher.js';

interface Result {
  implementation: StitcherImplementation;
  processSeconds: number;
  pushSeconds: number;
  jobs: number;
  tiles: number;
}

function makeRaw(lines: number, pixels: number, energies: number): Uint16Array {
  const raw = new Uint16Array(lines * energies * pixels);
  let seed = 12345;
  const random = (): number => {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    return seed / 4294967296;
  };
  for (let l = 0; l < lines; l++) {
    for (let e = 0; e < energies; e++) {
      for (let p = 0; p < pixels; p++) {
        // A truck: a 'trailer' of 1.5 (high) from line 300, a denser block, a steel beam, air before and after.
        let a = 0;
        if (l >= 300 && l < lines - 200 && p > 100 && p < pixels - 300) a += e === 0 ? 1.5 : 2.1;
        if (l >= 1000 && l < 1800 && p > 600 && p < 1400) a += e === 0 ? 2.5 : 3.2;
        if (p > pixels - 420 && p < pixels - 380) a += e === 0 ? 4 : 4.9;
        const mean = 200 + (40_000 - e * 8_000) * Math.exp(-a);
        raw[(l * energies + e) * pixels + p] = Math.round(mean + (random() - 0.5) * 2 * Math.sqrt(mean));
      }
    }
  }
  return raw;
}

async function run(implementation: StitcherImplementation, raw: Uint16Array, lines: number, pixels: number): Promise<Result> {
  const energies = 2;
  const st = createStitcher({ pixels, energies }, stitcherOf(implementation));
  const buffers = { tiles: new Float32Array(st.tileFloats * 64), preview: new Uint8Array(st.previewBytes) };
  const n = energies * pixels;
  const sliceLines = 16;
  let processSeconds = 0;
  let pushSeconds = 0;
  let jobs = 0;
  let tiles = 0;
  const pump = async (): Promise<boolean> => {
    for (;;) {
      const t0 = performance.now();
      const r = await st.process(buffers);
      processSeconds += (performance.now() - t0) / 1000;
      jobs++;
      tiles += r.tiles.length;
      if (!r.more) return r.done;
    }
  };
  for (let l = 0; l < lines; l += sliceLines) {
    const count = Math.min(sliceLines, lines - l);
    const t0 = performance.now();
    st.push(1, l, count, raw.subarray(l * n, (l + count) * n));
    pushSeconds += (performance.now() - t0) / 1000;
    if ((l + count) % 256 === 0) await pump();
  }
  st.finish(lines);
  while (!(await pump()));
  st.close();
  return { implementation, processSeconds, pushSeconds, jobs, tiles };
}

async function main(): Promise<void> {
  const lines = Number(process.argv[2] ?? 4096);
  const pixels = Number(process.argv[3] ?? 2048);
  const samples = lines * 2 * pixels;
  const raw = makeRaw(lines, pixels, 2);
  console.log(`scan: ${lines} lines x ${pixels} pixels x 2 energies = ${(samples / 1e6).toFixed(1)} M samples; kernel ${nativeAddonInfo().kernelIsa}`);
  const best = (rs: Result[]): Result => rs.reduce((a, b) => (b.processSeconds < a.processSeconds ? b : a));
  const native = best([await run('native', raw, lines, pixels), await run('native', raw, lines, pixels), await run('native', raw, lines, pixels)]);
  const ts = await run('typescript', raw, lines, pixels);
  for (const r of [native, ts]) {
    const perSecond = samples / r.processSeconds;
    console.log(
      `${r.implementation.padEnd(10)} process ${(perSecond / 1e6).toFixed(1).padStart(7)} M samples/s ` +
        `(${((r.processSeconds * 1e9) / samples).toFixed(2)} ns/sample, ${r.jobs} jobs, ${r.tiles} tiles)  ` +
        `push ${(samples / r.pushSeconds / 1e6).toFixed(0)} M samples/s`,
    );
  }
  console.log(`ratio native / typescript: ${(ts.processSeconds / native.processSeconds).toFixed(1)}x`);
  console.log(
    `32 portals x 1000 lines/s x ${pixels} px x 2 = ${((32 * 1000 * pixels * 2) / 1e6).toFixed(0)} M samples/s needs ` +
      `${((32 * 1000 * pixels * 2) / (samples / native.processSeconds)).toFixed(2)} cores of native process()`,
  );
}

void main();
