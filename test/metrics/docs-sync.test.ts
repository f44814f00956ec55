/**
 * docs/metrics.md is the contract ops teams build dashboards on: every registered metric is listed there with its
 * type and labels, and nothing is listed that the gateway does not serve. Also checks the naming rules the doc
 * states (prefix, unit suffixes, counters end in _total) and the label names Prometheus would accept.
 */
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import type { MetricDescription } from '../../src/metrics/index.js';
import { standaloneMetrics } from './exposition.js';

const DOC = new URL('../../docs/metrics.md', import.meta.url);

interface DocRow {
  name: string;
  type: string;
  labels: string[];
}

function documented(): DocRow[] {
  const text = readFileSync(DOC, 'utf8');
  const section = text.slice(text.indexOf('\n## Every metric'));
  expect(section.length).toBeGreaterThan(100);
  return section
    .split('\n')
    .filter((l) => l.startsWith('| `scanline_'))
    .map((l) => {
      const cells = l.split(/(?<!\\)\|/).map((c) => c.trim());
      return {
        name: cells[1].replace(/`/g, ''),
        type: cells[2],
        labels: cells[3] === '—' ? [] : cells[3].split(',').map((s) => s.trim().replace(/`/g, '')),
      };
    });
}

const standalone = standaloneMetrics('scanline-metrics-docs-');
const metrics = standalone.metrics;
const registered: MetricDescription[] = metrics.describe();

afterAll(() => standalone.close());

describe('docs/metrics.md', () => {
  it('lists every registered metric with its type and labels, and nothing else', () => {
    const doc = documented();
    const docByName = new Map(doc.map((d) => [d.name, d]));
    expect(docByName.size).toBe(doc.length);
    const regByName = new Map(registered.map((r) => [r.name, r]));
    expect([...regByName.keys()].filter((n) => !docByName.has(n))).toEqual([]);
    expect([...docByName.keys()].filter((n) => !regByName.has(n))).toEqual([]);
    for (const r of registered) {
      expect({ name: r.name, type: docByName.get(r.name)?.type, labels: docByName.get(r.name)?.labels }).toEqual({
        name: r.name,
        type: r.type,
        labels: [...r.labelNames],
      });
    }
  });

  it('names every metric scanline_* with a unit or _total suffix, and uses valid label names', () => {
    const unit = /_(seconds|bytes|tiles|batches|ratio|fds|info|total)$/;
    for (const r of registered) {
      expect(r.name).toMatch(/^scanline_[a-z0-9_]+$/);
      if (r.type === 'counter') expect(r.name).toMatch(/_total$/);
      else if (r.type === 'histogram' || r.type === 'summary') expect(r.name).toMatch(unit);
      for (const l of r.labelNames) expect(l).toMatch(/^[a-z][a-z_]*$/);
      expect(r.labelNames).not.toContain('scan');
      expect(r.labelNames).not.toContain('scan_id');
      expect(r.help.length).toBeGreaterThan(10);
    }
  });

  it('serves exactly the registered families', async () => {
    const text = await metrics.render();
    const families = new Set([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => `${m[1]} ${m[2]}`));
    expect(families).toEqual(new Set(registered.map((r) => `${r.name} ${r.type}`)));
  });
});
