/**
 * Cost of instrumentation (`npm run bench:metrics`):
 *   1. Ingest throughput with metrics on vs off: the gateway (uWS + native stitcher, inference off) with
 *      `metrics.enabled` true and /metrics scraped over HTTP with a `metrics` account's API token, as Prometheus does
 *      (so a scrape's cost includes the token check), every --scrape-interval-ms (default 1 s, 15x more
 *      often than a usual Prometheus scrape), against the same gateway with metrics off, in the same run. Portals
 *      stream at max speed (as fast as acks allow), so any cost shows as lost throughput. One uncounted warm-up run
 *      of each arm, then --rounds rounds alternating off/on (on/off in even rounds); the verdict is the ratio of the
 *      median slices/s (target >= 0.97), with a 90% bootstrap interval over rounds, gateway CPU per MB as a second
 *      view and the median of the per-round ratios as a third. The per-portal hot-path counters exist in both arms
 *      (they are plain increments in the ingest stage); what "off" removes is the registry, the collectors, the
 *      event-loop delay monitor and the scrapes.
 *      Raw archive writes are skipped in both arms (RawWriter.write resolves at once; the archiver still copies the
 *      lines out of the stitcher and counts the write), unless --archive-writes: on the bench VM, page-cache growth
 *      beyond about 4 GB in a few seconds costs ~4 ms of kernel CPU per MB (first touch of guest memory), and a
 *      max-speed run writing ~300 MB/s flips into that state at a random point, losing up to a quarter of its
 *      throughput whatever the metrics do. Without the writes the gateway is faster, so the same metrics cost is a
 *      larger share of it: the comparison is stricter, not looser.
 *   2. Scrape time at 32 portals (archive writes included): 32 portals paced in real time, /metrics scraped every
 *      250 ms: HTTP time (request to last byte, from the scraper process) and render time inside the gateway,
 *      p50 / p99 / max, and the exposition size.
 *
 * The portals run in a forked load generator (bench/lib/load-portals.ts, shared with bench:ingest) and the scraper
 * in a forked process of its own (bench/lib/metrics-scraper.ts), as Prometheus would, on the same machine: only the
 * gateway's side of a scrape is in the gateway's CPU and event loop. The machine is shared: a run during which other
 * processes used more than 10% of a core is repeated up to --retries times (the cleanest attempt is kept) and marked
 * (*) if it stayed contaminated. Results: stdout, bench/results/metrics-<date>.json and the generated section of
 * bench/RESULTS.md (the run it replaces moves to the "Earlier runs" list below it).
 *
 * Options: --rounds 7  --retries 2  --portals 8  --duration-ms 8000  --warmup-ms 3000  --scrape-interval-ms 1000
 *          --archive-writes  --scrape-portals 32  --scrape-line-rate 500  --scrape-duration-ms 8000  --pixels 1024
 *          --no-write
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { machineInfo, waitForQuiet } from './lib/machine.js';
import { writeResultsJson } from './lib/results-file.js';
import {
  CONTAMINATION_PERCENT,
  isContaminated,
  measureIdleCost,
  median,
  quantile,
  runMetricsOnce,
  type IdleCost,
  type MetricsRunResult,
  type MetricsRunSpec,
} from './lib/metrics-run.js';
import { fmt } from './lib/report.js';
import { renderTruckFile, type TruckMeta } from './lib/truck.js';

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '7' },
    retries: { type: 'string', default: '2' },
    portals: { type: 'string', default: '8' },
    'duration-ms': { type: 'string', default: '8000' },
    'warmup-ms': { type: 'string', default: '3000' },
    'archive-writes': { type: 'boolean', default: false },
    'scrape-interval-ms': { type: 'string', default: '1000' },
    'scrape-portals': { type: 'string', default: '32' },
    'scrape-line-rate': { type: 'string', default: '500' },
    'scrape-duration-ms': { type: 'string', default: '8000' },
    pixels: { type: 'string', default: '1024' },
    'no-write': { type: 'boolean', default: false },
  },
});

function positiveInt(name: keyof typeof args): number {
  const v = Number(args[name]);
  if (!Number.isInteger(v) || v <= 0) throw new TypeError(`Expected a positive integer for --${name} but received ${String(args[name])}`);
  return v;
}

const ROUNDS = positiveInt('rounds');
const RETRIES = Number(args.retries);
if (!Number.isInteger(RETRIES) || RETRIES < 0) throw new TypeError(`Expected an integer >= 0 for --retries but received ${String(args.retries)}`);
const PORTALS = positiveInt('portals');
const DURATION_MS = positiveInt('duration-ms');
const WARMUP_MS = positiveInt('warmup-ms');
const SCRAPE_INTERVAL_MS = positiveInt('scrape-interval-ms');
const SCRAPE_PORTALS = positiveInt('scrape-portals');
const SCRAPE_LINE_RATE = positiveInt('scrape-line-rate');
const SCRAPE_DURATION_MS = positiveInt('scrape-duration-ms');
const PIXELS = positiveInt('pixels');
const LINES_PER_FRAME = 16;
const TARGET_RATIO = 0.97;

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const MD_BEGIN = '<!-- bench:metrics:begin (generated by `npm run bench:metrics`; edits inside are overwritten) -->';
const MD_END = '<!-- bench:metrics:end -->';

async function main(): Promise<void> {
  const machine = machineInfo();
  console.log(`machine: ${machine.cpus} CPUs (${machine.cpuModel}), ${machine.ramGiB} GiB, Node ${machine.node}, ${machine.os}`);
  const work = mkdtempSync(join(tmpdir(), 'scanline-bench-metrics-truck-'));
  const truckFile = join(work, 'truck.bin');
  const truck = renderTruckFile(truckFile, { pixels: PIXELS, lineRateHz: 1000, speedMps: 4.5, seed: 7, calibrationLines: LINES_PER_FRAME });
  console.log(`truck: ${truck.lines} lines x ${truck.detector.pixels} px x ${truck.detector.energies} energies`);

  const base: Omit<MetricsRunSpec, 'metrics'> = {
    portals: PORTALS,
    mode: 'max',
    warmupMs: WARMUP_MS,
    durationMs: DURATION_MS,
    lineRateHz: 1000,
    window: 64,
    linesPerFrame: LINES_PER_FRAME,
    scrapeIntervalMs: SCRAPE_INTERVAL_MS,
    skipArchiveWrites: !args['archive-writes'],
  };
  const off: MetricsRunResult[] = [];
  const on: MetricsRunResult[] = [];
  try {
    // Not counted: the first runs of a process pay for JIT, page cache and addon warm-up; each arm has code of its
    // own (the registry's first render), so both are warmed.
    for (const metrics of [false, true]) await runMetricsOnce({ ...base, metrics, durationMs: 2_000, warmupMs: 1_000 }, truckFile, truck);
    for (let round = 1; round <= ROUNDS; round++) {
      // Alternate the order so a drift of the shared machine does not favour one side.
      const order = round % 2 === 1 ? [false, true] : [true, false];
      for (const metrics of order) {
        const r = await cleanestRun({ ...base, metrics }, truckFile, truck, `round ${round} metrics ${metrics ? 'on ' : 'off'}`);
        (metrics ? on : off).push(r);
      }
    }
    const ratio = median(on.map((r) => r.slicesPerS)) / median(off.map((r) => r.slicesPerS));
    const cpuRatio = median(on.map((r) => r.cpuMsPerMb)) / median(off.map((r) => r.cpuMsPerMb));
    const pairedRatio = median(on.map((r, i) => r.slicesPerS / off[i].slicesPerS));
    const [low, high] = bootstrapRatio(off, on);
    const contaminated = [...off, ...on].filter(isContaminated).length;
    const verdict =
      `${ratio >= TARGET_RATIO ? 'PASS' : 'FAIL'}: throughput with metrics on / off = ${fmt(ratio, 3)} (target >= ${TARGET_RATIO}; 90% interval ${fmt(low, 3)}-${fmt(high, 3)}); ` +
      `gateway CPU per MB on / off = ${fmt(cpuRatio, 3)}; median of the per-round ratios = ${fmt(pairedRatio, 3)}` +
      (contaminated > 0 ? `; ${contaminated} of ${off.length + on.length} runs stayed contaminated (*)` : '');
    console.log(verdict);

    await waitForQuiet(15, 1_000, 30_000);
    const idle = await measureIdleCost(base, truckFile, truck);
    const idleLine = idleCostLine(idle, median(off.map((r) => r.cpuPercent)));
    console.log(idleLine);

    const scrape = await cleanestRun(
      {
        ...base,
        metrics: true,
        portals: SCRAPE_PORTALS,
        mode: 'paced',
        lineRateHz: SCRAPE_LINE_RATE,
        warmupMs: 3_000,
        durationMs: SCRAPE_DURATION_MS,
        scrapeIntervalMs: 250,
        skipArchiveWrites: false,
      },
      truckFile,
      truck,
      `scrape at ${SCRAPE_PORTALS} portals`,
    );
    const s = scrape.scrapes!;
    const scrapeLine =
      `scrape at ${SCRAPE_PORTALS} portals (paced ${SCRAPE_LINE_RATE} lines/s each, ${fmt(scrape.slicesPerS, 0)} slices/s): ${s.httpMs.length} scrapes, ` +
      `HTTP p50 ${fmt(quantile(s.httpMs, 0.5), 2)} / p99 ${fmt(quantile(s.httpMs, 0.99), 2)} / max ${fmt(s.httpMs.at(-1), 2)} ms, ` +
      `render p50 ${fmt(quantile(s.renderMs, 0.5), 2)} / p99 ${fmt(quantile(s.renderMs, 0.99), 2)} ms, ${s.series} series, ${fmt(s.bytes / 1024, 1)} KiB`;
    console.log(scrapeLine);

    const date = new Date().toISOString();
    const json = {
      date,
      machine,
      truck: { lines: truck.lines, pixels: truck.detector.pixels },
      options: args,
      off,
      on,
      ratio,
      ratioInterval90: [low, high],
      cpuRatio,
      pairedRatio,
      idle,
      scrape,
    };
    if (!args['no-write']) {
      const jsonRel = writeResultsJson('metrics', date, json);
      updateResults(section(date, machine, jsonRel, off, on, verdict, idleLine, scrapeLine, scrape));
      console.log(`wrote ${jsonRel} and bench/RESULTS.md`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * 90% interval of the ratio of medians, by resampling rounds with replacement (each round keeps its off and on run
 * together, as they ran side by side). Deterministic: a fixed-seed generator, so a re-render gives the same numbers.
 */
function bootstrapRatio(off: MetricsRunResult[], on: MetricsRunResult[], samples = 2_000): [number, number] {
  let seed = 0x9e3779b9;
  const random = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
  const ratios: number[] = [];
  for (let k = 0; k < samples; k++) {
    const picks = off.map(() => Math.floor(random() * off.length));
    ratios.push(median(picks.map((i) => on[i].slicesPerS)) / median(picks.map((i) => off[i].slicesPerS)));
  }
  ratios.sort((a, b) => a - b);
  return [quantile(ratios, 0.05), quantile(ratios, 0.95)];
}

/**
 * One run, repeated up to RETRIES times while other processes used more than CONTAMINATION_PERCENT of a core during
 * it; the cleanest attempt is kept.
 */
async function cleanestRun(spec: MetricsRunSpec, truckFile: string, truck: TruckMeta, label: string): Promise<MetricsRunResult> {
  let best: MetricsRunResult | null = null;
  let attempts = 0;
  for (let attempt = 1; attempt <= RETRIES + 1; attempt++) {
    attempts = attempt;
    const busy = await waitForQuiet(15, 1_000, 30_000);
    const r = await runMetricsOnce(spec, truckFile, truck);
    console.log(
      `${label}${attempt > 1 ? ` (attempt ${attempt})` : ''}: ${fmt(r.slicesPerS, 0)} slices/s, ${fmt(r.mbPerS, 1)} MB/s, gateway CPU ${fmt(r.cpuPercent, 0)}% ` +
        `(JS thread ${fmt(r.mainThreadPercent, 0)}%), ${fmt(r.cpuMsPerMb, 2)} ms/MB, ${fmt(r.linesPerStitchJob, 0)} lines/stitch job, ${r.errors} errors` +
        `${r.scrapes ? `, ${r.scrapes.httpMs.length} scrapes (HTTP p50 ${fmt(quantile(r.scrapes.httpMs, 0.5), 2)} ms, render p50 ${fmt(quantile(r.scrapes.renderMs, 0.5), 2)} ms)` : ''}; ` +
        `other processes ${fmt(r.foreignPercent, 0)}% of a core${busy >= 15 ? ` (machine still ${fmt(busy, 0)}% busy before)` : ''}`,
    );
    if (best === null || r.foreignPercent < best.foreignPercent) best = r;
    if (!isContaminated(r)) break;
  }
  return { ...(best as MetricsRunResult), attempts };
}

function section(
  date: string,
  machine: ReturnType<typeof machineInfo>,
  jsonRel: string,
  off: MetricsRunResult[],
  on: MetricsRunResult[],
  verdict: string,
  idleLine: string,
  scrapeLine: string,
  scrape: MetricsRunResult,
): string {
  // Rows in the order they ran: round by round, off/on alternating.
  const rows = off.flatMap((o, i) => {
    const pair = [o, on[i]];
    return (i % 2 === 0 ? pair : pair.reverse()).map(
      (r) =>
        `| ${i + 1} | ${r.spec.metrics ? `on, scraped every ${r.spec.scrapeIntervalMs} ms` : 'off'}${isContaminated(r) ? ' (*)' : ''} | ${fmt(r.slicesPerS, 0)} | ${fmt(r.mbPerS, 1)} | ` +
        `${fmt(r.cpuPercent, 0)} | ${fmt(r.mainThreadPercent, 0)} | ${fmt(r.cpuMsPerMb, 2)} | ${fmt(r.linesPerStitchJob, 0)} | ${r.errors} | ${r.scrapes ? r.scrapes.httpMs.length : '-'} | ` +
        `${fmt(r.foreignPercent, 0)} | ${r.attempts} |`,
    );
  });
  const s = scrape.scrapes!;
  return `${MD_BEGIN}
### Run of ${date}

Machine: ${machine.cpus} CPUs (${machine.cpuModel}), ${machine.ramGiB} GiB RAM, Node ${machine.node}, ${machine.os}.
Command: \`npm run bench:metrics\`. Raw numbers: \`${jsonRel}\`.

**${verdict}.**

Throughput: the shipped gateway (uWS + native stitcher, inference off)${args['archive-writes'] ? ' with raw archive writes' : ', raw archive writes skipped in both arms (bench/metrics.bench.ts says why: page-cache growth on this VM flips runs into a slow state at random)'},
${PORTALS} portals at max speed, ${fmt(WARMUP_MS / 1000, 1)} s warm-up then ${fmt(DURATION_MS / 1000, 1)} s measured, one uncounted warm-up run per arm, then ${ROUNDS} rounds alternating
off/on; ratio of the medians, with a 90% bootstrap interval over rounds.
The scraper runs in its own process (as Prometheus would), so only the gateway's side of a scrape is in its CPU.
Registry render inside the gateway during the metrics-on runs (wall time, waits for the CPU included): ${renderLine(on)}.
Other processes: CPU used during the run by anything but the bench, its load generator and scraper, % of one core;
a run above ${CONTAMINATION_PERCENT}% is repeated (up to ${RETRIES} more attempts, the cleanest kept) and marked (*) if it stayed above.
Lines per stitcher job: the stitcher batches the lines received while its previous job ran; fewer lines per job
means more per-job work per MB, whatever caused it.

| round | metrics | slices/s | MB/s | gateway CPU % | JS thread % | CPU ms/MB | lines/stitch job | errors | scrapes | other processes % | attempts |
|--:|:--|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|
${rows.join('\n')}

Direct cost, no load (CPU time of the gateway process, which nothing else moves): ${idleLine}.

Scrape time: ${scrapeLine}.
Render is the registry's text rendering inside the gateway (what a scrape costs the event loop); HTTP adds the
round trip through uWS to the scraper process. Exposition: ${s.series} series, ${fmt(s.bytes / 1024, 1)} KiB.
${MD_END}`;
}

/**
 * The direct measurement in words: CPU per scrape, the idle cost of metrics on (event-loop delay monitor), and what
 * both add up to at the bench's scrape interval as a share of the gateway's CPU in the metrics-off runs.
 */
function idleCostLine(c: IdleCost, offCpuPercent: number): string {
  const perSecond = c.onMsPerS - c.offMsPerS + (c.cpuMsPerScrape * 1000) / SCRAPE_INTERVAL_MS;
  return (
    `a scrape costs the gateway ${fmt(c.cpuMsPerScrape, 2)} ms of CPU (${c.scrapes} scrapes in ${c.seconds} s); metrics on and not scraped ` +
    `${fmt(c.onMsPerS, 2)} ms CPU per second against ${fmt(c.offMsPerS, 2)} off; at one scrape per ${SCRAPE_INTERVAL_MS} ms that is ` +
    `${fmt(perSecond, 1)} ms of CPU per second, ${fmt((perSecond / (offCpuPercent * 10)) * 100, 2)}% of the gateway's CPU in the metrics-off runs (an upper bound: ` +
    'under load the loop is awake anyway)'
  );
}

/** Render time of the metrics-on throughput runs: per scrape, and per second of measured window. */
function renderLine(on: MetricsRunResult[]): string {
  const all = on.flatMap((r) => r.scrapes?.renderMs ?? []).sort((a, b) => a - b);
  const perSecond = median(on.map((r) => (r.scrapes ? r.scrapes.renderMs.reduce((x, y) => x + y, 0) / (r.counters.windowMs / 1000) : 0)));
  return `p50 ${fmt(quantile(all, 0.5), 2)} / p99 ${fmt(quantile(all, 0.99), 2)} ms per scrape, ${fmt(perSecond, 2)} ms per second of run (median)`;
}

const HISTORY_HEADING = '### Earlier runs';

/**
 * Replaces the generated section and keeps the run it replaces in the history list below it (its date, verdict and
 * raw file), newest first; hand-written notes outside the markers survive.
 */
function updateResults(sectionText: string): void {
  const file = join(REPO, 'bench', 'RESULTS.md');
  const current = existsSync(file) ? readFileSync(file, 'utf8') : '';
  const begin = current.indexOf(MD_BEGIN.slice(0, 25));
  const end = current.indexOf(MD_END);
  const heading = '## Metrics instrumentation (`npm run bench:metrics`)';
  if (begin < 0 || end <= begin) {
    writeFileSync(file, `${current.trimEnd()}\n\n${heading}\n\n${sectionText}\n`);
    return;
  }
  const previous = current.slice(begin, end);
  const runOf = /^### Run of (\S+)/m.exec(previous)?.[1];
  const machineLine = /^Machine: (.+)$/m.exec(previous)?.[1];
  const verdictLine = /^\*\*(.+)\*\*$/m.exec(previous)?.[1];
  const raw = /Raw numbers: `([^`]+)`/.exec(previous)?.[1];
  const entry =
    runOf && verdictLine ? `- ${runOf}: ${verdictLine}${machineLine ? ` Machine: ${machineLine}` : ''}${raw ? ` Raw numbers: \`${raw}\`.` : ''}` : null;
  let after = current.slice(end + MD_END.length);
  if (entry) {
    const h = after.indexOf(HISTORY_HEADING);
    const nextSection = after.search(/\n## /);
    if (h >= 0 && (nextSection < 0 || h < nextSection)) {
      const listStart = after.indexOf('\n\n', h) + 2;
      after = `${after.slice(0, listStart)}${entry}\n${after.slice(listStart)}`;
    } else {
      after = `\n\n${HISTORY_HEADING}\n\n${entry}\n${after.replace(/^\n+/, '\n')}`;
    }
  }
  writeFileSync(file, current.slice(0, begin) + sectionText + after);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
