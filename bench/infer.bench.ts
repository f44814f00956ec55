/**
 * Inference bench (`npm run bench:infer`), in one run:
 *   1. raw ONNX Runtime throughput of each model on this machine (tiles/s at batch 1..64; bench/lib/infer-raw.ts),
 *      the baseline every other number is compared with;
 *   2. throughput at saturation, as a ratio to raw (target >= 0.8): (a) the gateway (startGateway, default config,
 *      real models) fed by simulated portals at max speed, and (b) the gateway's inference stage alone
 *      (createInference().submit() from this process, no portals), which shows the batcher + worker overhead
 *      without ingest competing for the CPU (bench/lib/infer-direct.ts), and how much the event loop is delayed while
 *      its batches run, as a ratio to the compute time of one batch (target < 0.5; on the JS thread it would be ~1);
 *   3. latency from a tile's last line arriving to its result being applied, p50/p99, with the batcher as
 *      configured vs batch size 1, at 1, 8 and 32 portals paced at the detector's line rate, with the event-loop
 *      delay p99 of each run (target < 5 ms) (bench/lib/infer-gateway.ts); the largest portal count once more with
 *      inference disabled gives the event-loop baseline of ingest alone.
 * The gateway runs in this process; the simulated portals run in a forked child (bench/lib/load-portals.ts).
 * Results: stdout, bench/results/infer-<date>.json and the generated section of bench/RESULTS.md.
 *
 * The machine may be shared: before each run the bench waits (up to --quiet-wait-ms) for it to be quiet, and a gateway run
 * during which other processes used more than 10% of a core is repeated up to --retries times (the cleanest kept).
 *
 * Options: --models DIR (default <package>/models)  --portals 1,8,32  --line-rate 500  --pixels 1024
 *          --speed-mps 2.25  --seed 7  --warmup-ms (one truck + 1 s)  --duration-ms 10000  --sat-portals 8  --sat-warmup-ms 4000
 *          --sat-duration-ms 8000  --direct-warmup-ms 2000  --direct-duration-ms 8000  --direct-outstanding 256
 *          --raw-seconds 1  --raw-passes 2  --raw-tiles 256  --retries 1  --quiet-wait-ms 90000  --no-off-run  --no-write (stdout only)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_CONFIG } from '../src/config/index.js';
import {
  DEFAULT_INFERENCE_CONFIG,
  defaultModelsDir,
  discoverModels,
  effectiveIntraOpThreads,
  selectModelFor,
  type LoadedModel,
} from '../src/inference/index.js';
import { ortVersion } from '../src/inference/ort.js';
import { runDirect, type DirectRunResult } from './lib/infer-direct.js';
import { runGateway, type GatewayRunResult, type GatewayRunSpec } from './lib/infer-gateway.js';
import { collectTiles, combinedRate, measureRaw } from './lib/infer-raw.js';
import { measureRawAlone, measureRawBeside, type RawAloneResult, type RawBesideResult } from './lib/raw-beside.js';
import {
  INFER_CONTAMINATION_PERCENT,
  batchingRatioTable,
  besideCeiling,
  besideCeilingVerdict,
  besideIngestVerdict,
  eventLoopBesideBatchesVerdict,
  eventLoopVerdict,
  inferMarkdownSection,
  latencyPerModelTable,
  latencyTable,
  rawTable,
  saturationRatio,
  saturationTable,
  saturationVerdict,
  updateInferMarkdown,
  withAdjacentRaw,
  type InferVerdict,
  type SaturationRatio,
} from './lib/infer-report.js';
import { machineInfo, otherLoad, processCpu, waitForQuiet, type OtherLoad } from './lib/machine.js';
import { writeResultsJson } from './lib/results-file.js';
import { fmt } from './lib/report.js';
import { renderTruckFile } from './lib/truck.js';

const { values: args } = parseArgs({
  options: {
    models: { type: 'string', default: '' },
    portals: { type: 'string', default: '1,8,32' },
    'line-rate': { type: 'string', default: '500' },
    pixels: { type: 'string', default: '1024' },
    'speed-mps': { type: 'string', default: '2.25' },
    seed: { type: 'string', default: '7' },
    'warmup-ms': { type: 'string', default: '' },
    'duration-ms': { type: 'string', default: '10000' },
    'sat-portals': { type: 'string', default: '8' },
    'sat-warmup-ms': { type: 'string', default: '4000' },
    'sat-duration-ms': { type: 'string', default: '8000' },
    'direct-warmup-ms': { type: 'string', default: '2000' },
    'direct-duration-ms': { type: 'string', default: '8000' },
    'direct-outstanding': { type: 'string', default: '256' },
    'raw-seconds': { type: 'string', default: '1' },
    'raw-passes': { type: 'string', default: '2' },
    'raw-tiles': { type: 'string', default: '256' },
    retries: { type: 'string', default: '1' },
    'quiet-wait-ms': { type: 'string', default: '90000' },
    'no-off-run': { type: 'boolean', default: false },
    'no-write': { type: 'boolean', default: false },
  },
});

function positive(name: string, integer = true): number {
  const raw = args[name as keyof typeof args];
  const v = Number(raw);
  if (!(v > 0) || (integer && !Number.isInteger(v)))
    throw new TypeError(`Expected a positive ${integer ? 'integer' : 'number'} for --${name} but received ${String(raw)}`);
  return v;
}

const PORTALS = String(args.portals)
  .split(',')
  .map((s) => Number(s.trim()));
if (PORTALS.some((n) => !Number.isInteger(n) || n <= 0)) throw new TypeError(`Expected a list of positive integers for --portals but received ${args.portals}`);
const LINE_RATE = positive('line-rate');
const PIXELS = positive('pixels');
const SPEED_MPS = positive('speed-mps', false);
const SEED = Number(args.seed);
/** '' = one whole truck at the line rate plus 1 s (computed once the truck is rendered); see latencyWarmupMs. */
const WARMUP_MS_ARG = args['warmup-ms'] === '' ? null : positive('warmup-ms');
const DURATION_MS = positive('duration-ms');
const SAT_PORTALS = positive('sat-portals');
const SAT_WARMUP_MS = positive('sat-warmup-ms');
const SAT_DURATION_MS = positive('sat-duration-ms');
const DIRECT_WARMUP_MS = positive('direct-warmup-ms');
const DIRECT_DURATION_MS = positive('direct-duration-ms');
const DIRECT_OUTSTANDING = positive('direct-outstanding');
const RAW_SECONDS = positive('raw-seconds', false);
const RAW_PASSES = positive('raw-passes');
const RAW_TILES = positive('raw-tiles');
const QUIET_WAIT_MS = positive('quiet-wait-ms');
const RETRIES = Number(args.retries);
if (!Number.isInteger(RETRIES) || RETRIES < 0) throw new TypeError(`Expected an integer >= 0 for --retries but received ${args.retries}`);
const LINES_PER_FRAME = 16;
/** Raw re-measured around every saturation run (the batch sizes a batcher uses at saturation), s per size. */
const BRACKET_SIZES: readonly number[] = Object.freeze([4, 8, 16, 32]);
const BRACKET_SECONDS = 0.4;
const WINDOW = 64;
const PORTAL_BUFFER_MS = 2_000;

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** Per task, the model a gateway serves `channels`-channel tiles with (the gateway's own rule: selectModelFor). */
function servedModels(models: readonly LoadedModel[], channels: number): LoadedModel[] {
  return [...new Set(models.map((m) => m.manifest.task))].flatMap((task) => selectModelFor(models, task, channels) ?? []);
}

async function main(): Promise<void> {
  const started = performance.now();
  const machine = machineInfo();
  const modelsDir = resolve(args.models || defaultModelsDir());
  const found = await discoverModels(modelsDir);
  if (found.length === 0) throw new Error(`no models found in ${modelsDir} (use --models DIR)`);
  const inferenceDefaults = DEFAULT_INFERENCE_CONFIG;
  // Raw ONNX Runtime gets the whole machine: one session per model on every core (what one worker with the automatic
  // intra-op count would use), whatever the gateway's worker count.
  const intraOp = effectiveIntraOpThreads({ workers: 1, intraOpThreads: inferenceDefaults.intraOpThreads });
  console.log(
    `machine: ${machine.cpus} CPUs (${machine.cpuModel}), ${machine.ramGiB} GiB, Node ${machine.node}, ${machine.os}; onnxruntime-node ${ortVersion()}`,
  );

  // Real tiles for the raw and direct runs: simulated trucks through the gateway's native stitcher.
  let t = performance.now();
  const tiles = await collectTiles(RAW_TILES, SEED, PIXELS);
  const tileSource = `${tiles.tiles.length} tiles of simulated trucks (seeds ${tiles.seeds.join(', ')}, ${tiles.pixels} pixels) through the native stitcher with the gateway's stitch options`;
  console.log(`tiles: ${tileSource} (${fmt((performance.now() - t) / 1000, 1)} s)`);
  // Every part measures the models that serve these tiles, and only those: per task, the one the gateway picks for
  // the tiles' energy count (Inference.modelFor). The gateway and direct runs load just these (inference.models), so
  // raw, direct and gateway compare the same work. A model for another energy count would idle in the gateway, be timed
  // in raw on the tiles' first channels alone (packTile packs a model's own channels) and have every tile the direct
  // run submits refused.
  const loaded = servedModels(found, tiles.channels);
  if (loaded.length === 0) throw new Error(`no model in ${modelsDir} reads ${tiles.channels}-channel tiles`);
  const served = loaded.map((m) => m.manifest.name);
  const idle = found.filter((m) => !served.includes(m.manifest.name)).map((m) => m.manifest.name);
  console.log(
    `models (${modelsDir}) for ${tiles.channels}-energy tiles: ${loaded.map((m) => `${m.manifest.name}@${m.manifest.version}`).join(', ')}; ${intraOp} intra-op threads` +
      (idle.length > 0 ? `; not measured (another energy count or not picked): ${idle.join(', ')}` : ''),
  );

  const work = mkdtempSync(join(tmpdir(), 'scanline-bench-infer-truck-'));
  const truckFile = join(work, 'truck.bin');
  t = performance.now();
  const truck = renderTruckFile(truckFile, { pixels: PIXELS, lineRateHz: LINE_RATE, speedMps: SPEED_MPS, seed: SEED, calibrationLines: LINES_PER_FRAME });
  console.log(`truck: ${truck.vehicle?.kind ?? '-'}, ${truck.lines} lines x ${truck.detector.pixels} px (${fmt((performance.now() - t) / 1000, 1)} s)`);
  // Latency runs measure the steady state a shift sees: every portal is on its second truck or later, so the first
  // truck of all portals starting at once (memory pools and JIT still cold) stays out of the window.
  const WARMUP_MS = WARMUP_MS_ARG ?? Math.ceil((truck.lines / LINE_RATE) * 1000 + 1000);

  const failures: string[] = [];
  let rawOther: OtherLoad | null = null;
  let saturation: GatewayRunResult | null = null;
  let pacedSaturation: GatewayRunResult | null = null;
  /** (a'') right before and right after (a'), those that ran. */
  const rawBeside: RawBesideResult[] = [];
  const rawAlone: RawAloneResult[] = [];
  let direct: DirectRunResult | null = null;
  let direct2: DirectRunResult | null = null;
  const brackets: Array<Awaited<ReturnType<typeof measureRaw>>['models']> = [];
  const latency: GatewayRunResult[] = [];
  try {
    // 1. Raw.
    let raw: Awaited<ReturnType<typeof measureRaw>> | null = null;
    for (let attempt = 0; attempt <= RETRIES; attempt++) {
      await waitForQuiet(15, 2_000, QUIET_WAIT_MS);
      const p0 = processCpu();
      const r0 = performance.now();
      const r = await measureRaw(loaded, inferenceDefaults, intraOp, tiles, RAW_SECONDS, RAW_PASSES, (line) => console.log(line));
      const other = otherLoad(p0, processCpu(), new Set([process.pid]), (performance.now() - r0) / 1000);
      console.log(`raw: other processes used ${fmt(other.processesPercent, 0)}% of a core`);
      if (raw === null || other.processesPercent < (rawOther?.processesPercent ?? Infinity)) {
        raw = r;
        rawOther = other;
      }
      if (other.processesPercent <= INFER_CONTAMINATION_PERCENT) break;
    }
    if (raw === null) throw new Error('no raw measurement');
    console.log(`\n${rawTable(raw.models)}\n`);
    const bracket = async (): Promise<number> => {
      const b = await measureRaw(loaded, inferenceDefaults, intraOp, tiles, BRACKET_SECONDS, 1, () => undefined, BRACKET_SIZES);
      brackets.push(b.models);
      console.log(`raw bracket: ${b.models.map((m) => `${m.model} ${m.points.map((p) => `${p.batchSize}:${Math.round(p.tilesPerS)}`).join(' ')}`).join('; ')}`);
      return brackets.length - 1;
    };

    const gatewayRun = async (spec: GatewayRunSpec, label: string): Promise<GatewayRunResult | null> => {
      let best: GatewayRunResult | null = null;
      try {
        for (let attempt = 0; attempt <= RETRIES; attempt++) {
          const busy = await waitForQuiet(15, 2_000, QUIET_WAIT_MS);
          process.stdout.write(
            `run: ${label}${attempt > 0 ? ` (attempt ${attempt + 1})` : ''}${busy >= 15 ? ` [machine still ${fmt(busy, 0)}% busy]` : ''} ... `,
          );
          const r = await runGateway(spec, { modelsDir, models: served, truckFile, truck }, spec.warmupMs + spec.durationMs + 90_000);
          r.attempts = attempt + 1;
          console.log(
            r.models.length === 0
              ? `inference off, ELD p99 ${fmt(r.eventLoopDelayMs.p99, 2)} ms, gw CPU ${fmt(r.gatewayCpuPercent, 0)}%, other processes ${fmt(r.foreignPercent, 0)}%`
              : `produced ${fmt(r.tilesProducedPerS, 0)} tiles/s, scored ${r.models.map((m) => fmt(m.okPerS, 0)).join('/')} /s, ` +
                  `p50 ${fmt(r.latencyMs.p50, 1)} ms, p99 ${fmt(r.latencyMs.p99, 1)} ms, rejected ${r.models.map((m) => m.rejected).join('/')}, ` +
                  `expired ${r.models.map((m) => m.expired).join('/')}, ELD p99 ${fmt(r.eventLoopDelayMs.p99, 2)} ms, gw CPU ${fmt(r.gatewayCpuPercent, 0)}%, ` +
                  `other processes ${fmt(r.foreignPercent, 0)}%`,
          );
          if (best === null || (r.foreignPercent ?? 0) < (best.foreignPercent ?? 0)) best = r;
          if ((r.foreignPercent ?? 0) <= INFER_CONTAMINATION_PERCENT) break;
        }
      } catch (err) {
        const message = `${label}: ${err instanceof Error ? err.message : String(err)}`;
        failures.push(message);
        console.log(`FAILED\n  ${message}`);
      }
      return best;
    };

    // 2a. Saturation through the whole gateway.
    const base = { lineRateHz: LINE_RATE, linesPerFrame: LINES_PER_FRAME, window: WINDOW, portalBufferMs: PORTAL_BUFFER_MS };
    const b0 = await bracket();
    saturation = await gatewayRun(
      { ...base, batching: 'default', portals: SAT_PORTALS, mode: 'max', warmupMs: SAT_WARMUP_MS, durationMs: SAT_DURATION_MS, startSpreadMs: 0 },
      `saturation: gateway, ${SAT_PORTALS} portals at max speed`,
    );
    const b1 = await bracket();
    // 2a'. Saturation as a 2-core box can honestly run it: portals paced so that the stitcher produces tiles at the rate
    // raw ONNX Runtime absorbs at batch 32 (both models); ingest then takes what that tile rate costs, no more.
    const raw32 = raw.models.map((m) => m.points.find((p) => p.batchSize === 32)?.tilesPerS ?? m.best.tilesPerS);
    const pacedTilesPerS = combinedRate(raw32[0], raw32[1] ?? Infinity);
    const pacedLineRate = Math.max(1, Math.round(pacedTilesPerS / tiles.tilesPerLine / SAT_PORTALS));
    const pacedSpec: GatewayRunSpec = {
      ...base,
      lineRateHz: pacedLineRate,
      batching: 'default',
      portals: SAT_PORTALS,
      mode: 'paced',
      warmupMs: SAT_WARMUP_MS,
      durationMs: SAT_DURATION_MS,
      startSpreadMs: (DEFAULT_CONFIG.stitch.tile.strideLines * 1000) / pacedLineRate,
    };
    // 2a''. Raw ONNX Runtime beside the same ingest load: the baseline that shares the CPU with ingest as (a') does,
    // so (a') / (a'') is what the gateway's own serving path costs on a contended CPU (bench/lib/raw-beside.ts). Run
    // right before and right after (a') and compared as their mean, as raw is around every saturation run: this VM
    // drifts by tens of percent within minutes.
    const besideSpec: GatewayRunSpec = { ...pacedSpec, batching: 'off' };
    const besideSettings = {
      threads: inferenceDefaults.workers,
      intraOpThreads: effectiveIntraOpThreads(inferenceDefaults),
      nice: inferenceDefaults.workerNice,
      schedIdle: inferenceDefaults.workerSchedIdle,
      batchSize: 32,
    };
    const besideRun = async (when: 'before' | 'after'): Promise<void> => {
      try {
        await waitForQuiet(15, 2_000, QUIET_WAIT_MS);
        process.stdout.write(
          `run: raw ONNX Runtime in ${besideSettings.threads} threads beside an ingest-only gateway, the portals of (a'), ${when} (a') ... `,
        );
        const r = await measureRawBeside(loaded, tiles, besideSettings, () =>
          runGateway(besideSpec, { modelsDir, models: served, truckFile, truck }, besideSpec.warmupMs + besideSpec.durationMs + 90_000),
        );
        rawBeside.push(r);
        console.log(
          `raw ${fmt(r.tilesPerS, 0)} tiles/s through both models; gateway (ingest only) CPU ${fmt(r.ingest.gatewayCpuPercent, 0)}%, ` +
            `other processes ${fmt(r.ingest.foreignPercent, 0)}%`,
        );
      } catch (err) {
        const message = `raw beside ingest (${when} (a')): ${err instanceof Error ? err.message : String(err)}`;
        failures.push(message);
        console.log(`FAILED\n  ${message}`);
      }
    };
    // The (a'') threads alone, before the first (a'') and after the last: (a'') / alone is the ceiling of (a').
    const aloneRun = async (when: 'before' | 'after'): Promise<void> => {
      try {
        await waitForQuiet(15, 2_000, QUIET_WAIT_MS);
        process.stdout.write(`run: the same raw threads alone, ${when} (a'') ... `);
        const r = await measureRawAlone(loaded, tiles, besideSettings, 2_000, SAT_DURATION_MS);
        rawAlone.push(r);
        console.log(`raw ${fmt(r.tilesPerS, 0)} tiles/s through both models`);
      } catch (err) {
        const message = `raw threads alone (${when} (a'')): ${err instanceof Error ? err.message : String(err)}`;
        failures.push(message);
        console.log(`FAILED\n  ${message}`);
      }
    };
    await aloneRun('before');
    await besideRun('before');
    const b1p = await bracket();
    pacedSaturation = await gatewayRun(
      pacedSpec,
      `saturation: gateway, ${SAT_PORTALS} portals paced at ${pacedLineRate} lines/s (~${Math.round(pacedTilesPerS)} tiles/s, raw capacity at batch 32)`,
    );
    const b2 = await bracket();
    if (pacedSaturation) {
      await besideRun('after');
      await aloneRun('after');
    }

    const strideMs = (DEFAULT_CONFIG.stitch.tile.strideLines * 1000) / LINE_RATE;

    // 2b. Saturation of the inference stage alone.
    try {
      await waitForQuiet(15, 2_000, QUIET_WAIT_MS);
      process.stdout.write(`run: saturation: createInference().submit() from this process, ${DIRECT_OUTSTANDING} tiles outstanding per model ... `);
      direct = await runDirect({ modelsDir, models: served }, tiles, {
        warmupMs: DIRECT_WARMUP_MS,
        durationMs: DIRECT_DURATION_MS,
        outstanding: DIRECT_OUTSTANDING,
        portals: 8,
      });
      console.log(
        `scored ${direct.models.map((m) => fmt(m.okPerS, 0)).join('/')} /s, CPU ${fmt(direct.cpuPercent, 0)}%, ELD p99 ${fmt(direct.eventLoopDelayMs.p99, 2)} ms ` +
          `(${fmt(direct.eventLoopP99PerBatch, 2)} x a batch of ${fmt(direct.batchComputeMs, 1)} ms), other processes ${fmt(direct.otherLoad.processesPercent, 0)}%`,
      );
    } catch (err) {
      const message = `direct submit: ${err instanceof Error ? err.message : String(err)}`;
      failures.push(message);
      console.log(`FAILED\n  ${message}`);
    }
    const b3 = await bracket();
    // 2c. The same with inference.workers 1 (the default before 2026-11-25): one session per model on all intra-op
    // threads, one batch at a time, kept as the comparison for the 2-worker default.
    try {
      await waitForQuiet(15, 2_000, QUIET_WAIT_MS);
      process.stdout.write(`run: saturation: createInference({ workers: 1 }).submit() from this process ... `);
      direct2 = await runDirect({ modelsDir, models: served, workers: 1 }, tiles, {
        warmupMs: DIRECT_WARMUP_MS,
        durationMs: DIRECT_DURATION_MS,
        outstanding: DIRECT_OUTSTANDING,
        portals: 8,
      });
      console.log(`scored ${direct2.models.map((m) => fmt(m.okPerS, 0)).join('/')} /s, CPU ${fmt(direct2.cpuPercent, 0)}%`);
    } catch (err) {
      const message = `direct submit (workers 1): ${err instanceof Error ? err.message : String(err)}`;
      failures.push(message);
      console.log(`FAILED\n  ${message}`);
    }
    const b4 = await bracket();

    // 3. Latency, batcher vs batch size 1, paced portals.
    for (const portals of PORTALS) {
      for (const batching of ['default', 'batch-1'] as const) {
        const r = await gatewayRun(
          { ...base, batching, portals, mode: 'paced', warmupMs: WARMUP_MS, durationMs: DURATION_MS, startSpreadMs: strideMs },
          `latency: ${portals} portals x ${LINE_RATE} lines/s, ${batching === 'default' ? 'batcher' : 'batch size 1'}`,
        );
        if (r) latency.push(r);
      }
    }
    // Event-loop baseline: the largest portal count again with inference disabled (ingest-only gateway).
    if (!args['no-off-run']) {
      const portals = Math.max(...PORTALS);
      const r = await gatewayRun(
        { ...base, batching: 'off', portals, mode: 'paced', warmupMs: WARMUP_MS, durationMs: DURATION_MS, startSpreadMs: strideMs },
        `event-loop baseline: ${portals} portals x ${LINE_RATE} lines/s, inference off`,
      );
      if (r) latency.push(r);
    }

    const ratios: SaturationRatio[] = [];
    const verdicts: InferVerdict[] = [];
    if (saturation) {
      const s = withAdjacentRaw(
        saturationRatio(`(a) gateway, ${SAT_PORTALS} portals at max speed (old definition)`, saturation.models, raw.models),
        saturation.models,
        brackets[b0],
        brackets[b1],
      );
      ratios.push(s);
      verdicts.push(
        saturationVerdict(
          s,
          saturation.foreignPercent,
          `ingest + stitching + load generator shared the ${machine.cpus} CPUs (gateway ${fmt(saturation.gatewayCpuPercent, 0)}% of one core, load generator ${fmt(saturation.loadgenCpuPercent, 0)}%)`,
        ),
      );
    }
    if (pacedSaturation) {
      const p = pacedSaturation;
      const s = withAdjacentRaw(
        saturationRatio(`(a') gateway, ${p.spec.portals} portals paced at raw capacity (${p.spec.lineRateHz} lines/s each)`, p.models, raw.models),
        p.models,
        brackets[b1p],
        brackets[b2],
      );
      ratios.push(s);
      verdicts.push(
        saturationVerdict(
          s,
          p.foreignPercent,
          `the stitcher produced ${fmt(p.tilesProducedPerS, 0)} tiles/s; ingest + stitching took their share of the ${machine.cpus} CPUs (gateway ${fmt(p.gatewayCpuPercent, 0)}% of one core, load generator ${fmt(p.loadgenCpuPercent, 0)}%)`,
        ),
      );
    }
    if (pacedSaturation && rawBeside.length > 0) {
      verdicts.push(besideIngestVerdict(pacedSaturation, rawBeside));
      if (rawAlone.length > 0) verdicts.push(besideCeilingVerdict(rawBeside, rawAlone, besideCeiling(rawBeside, rawAlone)));
    }
    if (direct) {
      const s = withAdjacentRaw(
        saturationRatio('(b) inference stage alone, submit() in-process', direct.models, raw.models),
        direct.models,
        brackets[b2],
        brackets[b3],
      );
      ratios.push(s);
      verdicts.push(saturationVerdict(s, direct.otherLoad.processesPercent, 'no portals, ingest or stitching'));
      verdicts.push(eventLoopBesideBatchesVerdict(direct));
    }
    if (direct2) {
      const s = withAdjacentRaw(
        saturationRatio('(b2) inference stage alone, inference.workers 1 (the previous default)', direct2.models, raw.models),
        direct2.models,
        brackets[b3],
        brackets[b4],
      );
      ratios.push(s);
      verdicts.push(saturationVerdict(s, direct2.otherLoad.processesPercent, 'informative: not the shipped default'));
    }
    if (latency.length > 0) verdicts.push(eventLoopVerdict(latency));

    console.log(
      `\nSaturation:\n${saturationTable(ratios)}\n\nLatency:\n${latencyTable(latency)}\n\n${batchingRatioTable(latency)}\n\n${latencyPerModelTable(latency)}\n`,
    );
    for (const v of verdicts) console.log(v.line);
    for (const f of failures) console.log(`RUN FAILED: ${f}`);
    const durationS = (performance.now() - started) / 1000;
    console.log(`\nbench took ${fmt(durationS / 60, 1)} min`);

    if (!args['no-write']) {
      const date = new Date().toISOString();
      const models = loaded.map((m) => ({ name: m.manifest.name, version: m.manifest.version, task: m.manifest.task, sha256: m.manifest.files.fp32.sha256 }));
      const b = inferenceDefaults.batching;
      const defaults = {
        maxBatchSize: b.maxBatchSize,
        preferredBatchSizes: [...b.preferredBatchSizes],
        maxQueueDelayMicros: b.maxQueueDelayMicros,
        idleDispatch: b.idleDispatch,
        maxInFlightBatches: b.maxInFlightBatches,
        maxQueueTiles: b.maxQueueTiles,
        workers: inferenceDefaults.workers,
        workerNice: inferenceDefaults.workerNice,
        workerSchedIdle: inferenceDefaults.workerSchedIdle,
        deadlineMs: b.defaultDeadlineMs.live,
      };
      const modelsRel = relative(REPO, modelsDir) || '.';
      const jsonRel = writeResultsJson('infer', date, {
        date,
        machine,
        ortVersion: ortVersion(),
        durationS,
        modelsDir: modelsRel,
        models,
        defaults,
        tileSource,
        truck,
        raw,
        rawOther,
        brackets,
        saturation,
        pacedSaturation,
        rawBeside,
        rawAlone,
        direct,
        direct2,
        ratios,
        latency,
        verdicts,
        failures,
      });
      const section = inferMarkdownSection({
        date,
        machine,
        ortVersion: ortVersion(),
        commandLine:
          process.env.npm_lifecycle_event === 'bench:infer'
            ? ['npm run bench:infer', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' ')
            : ['node dist/bench/infer.bench.js', ...process.argv.slice(2)].join(' '),
        jsonFile: jsonRel,
        durationS,
        modelsDir: modelsRel,
        models,
        rawSettings: raw.settings,
        raw: raw.models,
        rawOther,
        tileSource,
        truck,
        saturation,
        pacedSaturation,
        rawBeside,
        rawAlone,
        direct,
        ratios,
        latency,
        verdicts,
        failures,
        defaults,
      });
      updateInferMarkdown(join(REPO, 'bench', 'RESULTS.md'), section);
      console.log(`wrote ${jsonRel} and bench/RESULTS.md`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  if (failures.length > 0) process.exitCode = 1;
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
