/**
 * Reads Prometheus text exposition (format 0.0.4) back into samples, for tests that check what /metrics says.
 * Strict on what the gateway writes: `name{label="value",...} number` lines, # HELP / # TYPE comments, blank lines.
 */
import { openTestIdentity } from '../helpers/identity.js';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveConfig } from '../../src/config/index.js';
import { IngestService } from '../../src/ingest/index.js';
import { silentLogger } from '../../src/log/index.js';
import { GATEWAY_PHASES } from '../../src/main.js';
import { createGatewayMetrics, type GatewayMetrics } from '../../src/server/index.js';
import { ScanStore } from '../../src/storage/index.js';

export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  samples: ParsedSample[];
  /** Family name → declared type. */
  types: Map<string, string>;
  help: Map<string, string>;
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseExposition(text: string): Exposition {
  const samples: ParsedSample[] = [];
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith('# TYPE ')) {
      const [name, type] = line.slice(7).split(' ');
      types.set(name, type);
      continue;
    }
    if (line.startsWith('# HELP ')) {
      const rest = line.slice(7);
      const i = rest.indexOf(' ');
      help.set(rest.slice(0, i), rest.slice(i + 1));
      continue;
    }
    if (line.startsWith('#')) continue;
    const m = SAMPLE.exec(line);
    if (!m) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    if (Number.isNaN(value) && m[3] !== 'NaN') throw new Error(`not a number in ${line}`);
    samples.push({ name: m[1], labels, value });
  }
  return { samples, types, help };
}

/** The sum of the samples named `name` whose labels include `match`. */
export function sumOf(e: Exposition, name: string, match: Record<string, string> = {}): number {
  return e.samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)).reduce((a, s) => a + s.value, 0);
}

/** Samples named `name` (with `match` in their labels). */
export function samplesOf(e: Exposition, name: string, match: Record<string, string> = {}): ParsedSample[] {
  return e.samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
}

export const PROMTOOL = process.env.PROMTOOL ?? '/usr/bin/promtool';

/** Runs `promtool check metrics` on the text; returns its exit status and what it printed. */
export function promtoolCheckMetrics(text: string): { status: number | null; output: string } {
  const r = spawnSync(PROMTOOL, ['check', 'metrics'], { input: text, encoding: 'utf8' });
  if (r.error) throw new Error(`cannot run ${PROMTOOL} (Debian package prometheus): ${r.error.message}`);
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/**
 * The gateway's full metrics registry over an idle ingest stage and a scan store in a fresh directory (no
 * inference, results or portals): every family registered, for tests that read names, types and labels.
 * `close()` releases the registry, the store and the directory.
 */
export function standaloneMetrics(prefix: string): { metrics: GatewayMetrics; dir: string; close(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const store = ScanStore.open(dir);
  const identity = openTestIdentity(dir);
  const metrics = createGatewayMetrics({
    ingest: new IngestService({ config: resolveConfig({ storage: { dataDir: dir } }), store, log: silentLogger(), portals: identity.identity }),
    store,
    inference: null,
    results: null,
    phase: () => 'ready',
    phases: GATEWAY_PHASES,
    version: '0.0.0',
    portalLabelLimit: 8,
    processMetrics: true,
    disk: () => ({ free: 5e9, total: 1e10, minFree: 2e9, used: 1e6, reserve: 0, pendingRecords: 0, pendingSeals: 0, pendingReports: 0 }),
    retention: () => ({ runs: 0, deleted: 0, bytes: 0, failures: 0 }),
    imports: () => ({ outcomes: new Map(), inProgress: 0, queued: 0, quarantinedFiles: 0, quarantineDropped: 0, quarantineBytes: 0, linesImported: 0 }),
    push: () => ({ stats: { sent: new Map(), failures: new Map(), objectsSent: new Map() }, pending: [], destinations: ['archive'] }),
    dicosListener: () => ({ associations: new Map([['accepted', 1]]), objects: new Map([['imported', 1]]), echoes: 0, open: 0, waiting: 0 }),
  });
  return {
    metrics,
    dir,
    close() {
      metrics.close();
      store.close();
      identity.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
