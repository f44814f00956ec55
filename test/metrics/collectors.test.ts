/**
 * The metrics stage on its own: histograms read from HistogramCounts, the operator sink (line-to-screen, the hub's
 * stats, the bounded portal label), and what a scrape of a bare gateway's registry says before any traffic.
 */
import { openTestIdentity } from '../helpers/identity.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/index.js';
import { IngestService } from '../../src/ingest/index.js';
import { silentLogger } from '../../src/log/index.js';
import { GATEWAY_PHASES } from '../../src/main.js';
import { CollectedHistogram, CollectedMetric, createHistogram, OperatorMetrics, observe } from '../../src/metrics/index.js';
import { createGatewayMetrics } from '../../src/server/index.js';
import { ScanStore } from '../../src/storage/index.js';
import { parseExposition, promtoolCheckMetrics, samplesOf, sumOf } from './exposition.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('CollectedHistogram', () => {
  it('renders cumulative buckets, +Inf, _sum and _count from the counts at scrape time', async () => {
    const counts = createHistogram([0.1, 1]);
    const registry = new Registry();
    registry.registerMetric(new CollectedHistogram('t_seconds', 'test', ['model'], () => [{ labels: { model: 'm' }, counts }]) as never);
    for (const v of [0.05, 0.1, 0.5, 3]) observe(counts, v);
    const e = parseExposition(await registry.metrics());
    expect(samplesOf(e, 't_seconds_bucket').map((s) => [s.labels.le, s.value])).toEqual([
      ['0.1', 2],
      ['1', 3],
      ['+Inf', 4],
    ]);
    expect(sumOf(e, 't_seconds_sum')).toBeCloseTo(3.65, 10);
    expect(sumOf(e, 't_seconds_count')).toBe(4);
    // Read again after more observations: nothing was cached at registration.
    observe(counts, 0.2);
    expect(sumOf(parseExposition(await registry.metrics()), 't_seconds_count')).toBe(5);
  });

  it('renders counters and gauges from the reader, one series per sample', async () => {
    let n = 1;
    const registry = new Registry();
    registry.registerMetric(new CollectedMetric('t_total', 'counter', 'test', ['code'], () => [{ labels: { code: 'A' }, value: n }]) as never);
    n = 7;
    const e = parseExposition(await registry.metrics());
    expect(e.types.get('t_total')).toBe('counter');
    expect(samplesOf(e, 't_total')).toEqual([{ name: 't_total', labels: { code: 'A' }, value: 7 }]);
  });
});

describe('OperatorMetrics', () => {
  it('buckets line-to-screen by portal, ignores values that are not durations, and bounds the portal label', () => {
    const m = new OperatorMetrics(2);
    m.observeLineToScreen(0.02, 'lane-1');
    m.observeLineToScreen(0.2, 'lane-1');
    m.observeLineToScreen(Number.NaN, 'lane-1');
    m.observeLineToScreen(-1, 'lane-1');
    m.observeLineToScreen(Infinity, 'lane-1');
    m.observeLineToScreen(0.03, 'lane-2');
    m.observeLineToScreen(0.04, 'lane-3'); // third portal: over the limit of 2
    m.observeLineToScreen(0.05, 'lane-4');
    m.observeLineToScreen(0.06);
    expect([...m.lineToScreen.keys()]).toEqual(['lane-1', 'lane-2', '(other)']);
    expect(m.lineToScreen.get('lane-1')?.count).toBe(2);
    expect(m.lineToScreen.get('(other)')?.count).toBe(3);
  });

  it('reads the hub through its provider, zeros without one', () => {
    const m = new OperatorMetrics(8);
    expect(m.stats()).toEqual({ subscribers: 0, stripsCoalesced: 0, bytesBuffered: 0, disconnectedSlow: 0 });
    m.provideStats(() => ({ subscribers: 3, stripsCoalesced: 10, bytesBuffered: 4096, disconnectedSlow: 1 }));
    expect(m.stats()).toEqual({ subscribers: 3, stripsCoalesced: 10, bytesBuffered: 4096, disconnectedSlow: 1 });
    m.provideStats(null);
    expect(m.stats().subscribers).toBe(0);
  });
});

describe('a gateway registry before any traffic', () => {
  it('registers every family (inference and operator ones empty or zero) and passes promtool', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scanline-metrics-bare-'));
    dirs.push(dir);
    const store = ScanStore.open(dir);
    const identity = openTestIdentity(dir);
    const ingest = new IngestService({ config: resolveConfig({ storage: { dataDir: dir } }), store, log: silentLogger(), portals: identity.identity });
    const metrics = createGatewayMetrics({
      ingest,
      store,
      inference: null,
      results: null,
      phase: () => 'starting',
      phases: GATEWAY_PHASES,
      version: '1.2.3',
      portalLabelLimit: 4,
      processMetrics: true,
    });
    try {
      const text = await metrics.render();
      const check = promtoolCheckMetrics(text);
      expect(check.output).toBe('');
      expect(check.status).toBe(0);
      const e = parseExposition(text);
      expect(e.types.get('scanline_line_to_screen_seconds')).toBe('histogram');
      expect(samplesOf(e, 'scanline_line_to_screen_seconds_count')).toEqual([]);
      expect(sumOf(e, 'scanline_operator_subscribers')).toBe(0);
      expect(sumOf(e, 'scanline_gateway_phase', { phase: 'starting' })).toBe(1);
      expect(samplesOf(e, 'scanline_build_info')[0].labels.version).toBe('1.2.3');
      expect(sumOf(e, 'scanline_portal_connections', { portal: '(none)' })).toBe(0);
      metrics.operator.observeLineToScreen(0.3, 'lane-9');
      expect(sumOf(parseExposition(await metrics.render()), 'scanline_line_to_screen_seconds_count', { portal: 'lane-9' })).toBe(1);
    } finally {
      metrics.close();
      store.close();
      identity.close();
    }
  });
});
