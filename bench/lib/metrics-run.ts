/**
 * One run of the metrics bench: a gateway (src/main.ts startGateway, uWS + native stitcher, inference off so
 * ingest is what is measured) with metrics on or off, the forked load generator of the ingest bench
 * (bench/lib/load-portals.ts) streaming one rendered truck from N portals, and, with metrics on, a scraper that
 * GETs /metrics over HTTP at a fixed interval for the whole measured window, as Prometheus would (more often).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { resolveConfig } from '../../src/config/index.js';
import { silentLogger } from '../../src/log/index.js';
import { startGateway } from '../../src/main.js';
import type { LoadCounters, LoadMode } from './load-protocol.js';
import { runLoadWindow } from './load-window.js';
import type { TruckMeta } from './truck.js';

export interface MetricsRunSpec {
  metrics: boolean;
  portals: number;
  mode: LoadMode;
  warmupMs: number;
  durationMs: number;
  lineRateHz: number;
  window: number;
  linesPerFrame: number;
  /** With metrics on: one GET /metrics every scrapeIntervalMs during the measured window. */
  scrapeIntervalMs: number;
}

export interface ScrapeTimes {
  /** HTTP GET /metrics, request sent to body read, ms (sorted). */
  httpMs: number[];
  /** registry render time inside the gateway for the same scrapes, ms (sorted). */
  renderMs: number[];
  bytes: number;
  series: number;
}

export interface MetricsRunResult {
  spec: MetricsRunSpec;
  slicesPerS: number;
  mbPerS: number;
  errors: number;
  counters: LoadCounters;
  /** Gateway process CPU over the window, % of one core. */
  cpuPercent: number;
  scrapes: ScrapeTimes | null;
}

export async function runMetricsOnce(spec: MetricsRunSpec, truckFile: string, truck: TruckMeta, timeoutMs = 90_000): Promise<MetricsRunResult> {
  const dataDir = mkdtempSync(join(tmpdir(), 'scanline-bench-metrics-'));
  const gateway = await startGateway(
    resolveConfig({
      server: { host: '127.0.0.1', port: 0 },
      storage: { dataDir },
      log: { level: 'silent' },
      inference: { enabled: false },
      metrics: { enabled: spec.metrics },
      // The load generator disconnects mid-scan at the end of a run: abort those scans at once.
      portal: { resumeGraceMs: 0 },
    }),
    { log: silentLogger(), stitcher: 'native' },
  );
  const scrapes: ScrapeTimes = { httpMs: [], renderMs: [], bytes: 0, series: 0 };
  let scraping = false;
  let scraper: Promise<void> = Promise.resolve();
  const metrics = gateway.metrics;
  // Time the registry's render inside the gateway too (same scrapes): wraps render(), which the route calls.
  if (metrics) {
    const render = metrics.render.bind(metrics);
    (metrics as { render: () => Promise<string> }).render = async () => {
      const t = performance.now();
      const text = await render();
      if (scraping) scrapes.renderMs.push(performance.now() - t);
      return text;
    };
  }
  const scrapeLoop = async (): Promise<void> => {
    while (scraping) {
      const t = performance.now();
      const res = await fetch(`${gateway.httpUrl}/metrics`);
      const text = await res.text();
      if (res.status !== 200) throw new Error(`GET /metrics answered ${res.status}: ${text.slice(0, 200)}`);
      scrapes.httpMs.push(performance.now() - t);
      scrapes.bytes = text.length;
      scrapes.series = text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
      await new Promise((r) => setTimeout(r, Math.max(0, spec.scrapeIntervalMs - (performance.now() - t))));
    }
  };
  try {
    const measured = await runLoadWindow(
      {
        url: gateway.portalUrl,
        portals: spec.portals,
        mode: spec.mode,
        lineRateHz: spec.lineRateHz,
        window: spec.window,
        bufferLines: Math.round(spec.lineRateHz * 2),
        warmupMs: spec.warmupMs,
        durationMs: spec.durationMs,
        truckFile,
        detector: truck.detector,
        linesPerFrame: spec.linesPerFrame,
      },
      timeoutMs,
      `metrics ${spec.metrics ? 'on' : 'off'} x${spec.portals} ${spec.mode}`,
      {
        onStart: () => {
          if (metrics) {
            scraping = true;
            scraper = scrapeLoop();
          }
          return { t: performance.now(), cpu: process.cpuUsage() };
        },
        onEnd: () => {
          scraping = false;
          return { t: performance.now(), cpu: process.cpuUsage() };
        },
      },
    );
    await scraper;
    const c = measured.counters;
    const s = c.windowMs / 1000;
    const cpuSeconds = (measured.end.cpu.user - measured.start.cpu.user + measured.end.cpu.system - measured.start.cpu.system) / 1e6;
    scrapes.httpMs.sort((a, b) => a - b);
    scrapes.renderMs.sort((a, b) => a - b);
    return {
      spec,
      slicesPerS: c.slicesAcked / s,
      mbPerS: c.payloadBytesAcked / 1e6 / s,
      errors: Object.values(c.errorsByCode).reduce((a, b) => a + b, 0) + c.unexpectedCloses,
      counters: c,
      cpuPercent: (cpuSeconds / ((measured.end.t - measured.start.t) / 1000)) * 100,
      scrapes: metrics ? scrapes : null,
    };
  } finally {
    scraping = false;
    await gateway.close(1_000);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** The q-quantile (0..1) of sorted values, nearest rank; NaN when empty. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export function median(values: readonly number[]): number {
  return quantile([...values].sort((a, b) => a - b), 0.5);
}
