/**
 * The files in ops/ are what sites deploy: the Prometheus alert rules must load (`promtool check rules`), fire when
 * they should (`promtool test rules`), and, like the Grafana dashboard, use only metrics the gateway serves. Every
 * dashboard query is also parsed by promtool (as a recording rule), so a PromQL typo fails here, not on a wall
 * screen at a border post.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PROMTOOL, standaloneMetrics } from '../metrics/exposition.js';

const OPS = new URL('../../ops/', import.meta.url).pathname;
const standalone = standaloneMetrics('scanline-ops-');
const { metrics, dir } = standalone;
afterAll(() => standalone.close());

/** Series names a family exposes: histograms and summaries add _bucket / _sum / _count. */
function servedSeries(): Set<string> {
  const out = new Set<string>();
  for (const m of metrics.describe()) {
    out.add(m.name);
    if (m.type === 'histogram') for (const s of ['_bucket', '_sum', '_count']) out.add(m.name + s);
    if (m.type === 'summary') for (const s of ['_sum', '_count']) out.add(m.name + s);
  }
  return out;
}

function promtool(args: string[]): { status: number | null; output: string } {
  const r = spawnSync(PROMTOOL, args, { encoding: 'utf8', cwd: OPS });
  if (r.error) throw new Error(`cannot run ${PROMTOOL} (Debian package prometheus): ${r.error.message}`);
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

function metricNames(expr: string): string[] {
  return [...new Set([...expr.matchAll(/\bscanline_[a-z0-9_]+/g)].map((m) => m[0]))];
}

interface Panel {
  id: number;
  type: string;
  title: string;
  targets?: Array<{ expr: string; refId: string }>;
}

describe('ops/prometheus-alerts.yml', () => {
  it('passes promtool check rules', () => {
    const r = promtool(['check', 'rules', 'prometheus-alerts.yml']);
    expect(r.output).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });

  it('passes its promtool unit tests (ops/prometheus-alerts.test.yml)', () => {
    const r = promtool(['test', 'rules', 'prometheus-alerts.test.yml']);
    expect(r.output).toContain('SUCCESS');
    expect(r.status).toBe(0);
  });

  it('uses only metrics the gateway serves', () => {
    const text = readFileSync(join(OPS, 'prometheus-alerts.yml'), 'utf8');
    const exprs = [...text.matchAll(/^\s+expr: (\|\n(?:\s{10}.*\n)+|.*)$/gm)].map((m) => m[1]);
    expect(exprs.length).toBeGreaterThanOrEqual(15);
    const served = servedSeries();
    const used = exprs.flatMap(metricNames);
    expect(used.filter((n) => !served.has(n))).toEqual([]);
    // The alert families are all there.
    for (const alert of [
      'ScanlinePortalSilentDuringScan',
      'ScanlineLineToResultOverBudget',
      'ScanlineLineToScreenOverBudget',
      'ScanlineBatcherQueueSaturated',
      'ScanlineLinesMissing',
      'ScanlineTilesNotScored',
    ]) {
      expect(text).toContain(`alert: ${alert}`);
    }
  });
});

describe('ops/grafana-dashboard.json', () => {
  const dashboard = JSON.parse(readFileSync(join(OPS, 'grafana-dashboard.json'), 'utf8')) as {
    uid: string;
    panels: Panel[];
    templating: { list: Array<{ name: string }> };
  };
  const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

  it('has unique panel ids and a query in every graph', () => {
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels.filter((x) => x.type !== 'row')) expect(p.targets?.length ?? 0).toBeGreaterThan(0);
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(['datasource', 'instance', 'portal']);
  });

  it('queries only metrics the gateway serves, and shows both end-to-end latencies', () => {
    const served = servedSeries();
    const used = queries.flatMap((q) => metricNames(q.expr));
    expect(used.filter((n) => !served.has(n))).toEqual([]);
    expect(used).toContain('scanline_line_to_result_seconds_bucket');
    expect(used).toContain('scanline_line_to_screen_seconds_bucket');
  });

  it('has queries that promtool parses', () => {
    // Grafana's variables become what they expand to, then each query is checked as a recording rule.
    const rules = queries.map((q, i) => {
      const expr = q.expr.replaceAll('$__rate_interval', '1m').replaceAll('$instance', '.*').replaceAll('$portal', '.*');
      return `      - record: dashboard:query_${i}\n        expr: ${JSON.stringify(expr)}\n`;
    });
    const file = join(dir, 'dashboard-queries.yml');
    writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${rules.join('')}`);
    const r = promtool(['check', 'rules', file]);
    expect(r.output).toContain(`SUCCESS: ${queries.length} rules found`);
    expect(r.status).toBe(0);
  });
});
