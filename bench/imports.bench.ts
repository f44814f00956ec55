/**
 * bench:imports (`npm run bench:imports`): DICOS images through the network listener to results, against the same
 * trucks streamed by a portal, in one run on one gateway (demo models, CPU).
 *
 * 1. Baseline: K simulated trucks (dual energy, 1024 px) streamed over portal protocol v1 at max speed; time from the
 *    first frame to the last final report.
 * 2. The same scans exported as DICOS (GET /v1/scans/:id/dicos); their 2K DX For Processing files sent by dcmtk's
 *    storescu to the gateway's C-STORE SCP in one association; time from storescu's start to the last final report
 *    of the imported scans, as DX files/s and scans/s; the ratio of import to portal throughput.
 * 3. Per imported scan, the time from the last byte of its last C-STORE (as the listener received it) to its first
 *    goods suggestion: p50, p95, max.
 * Writes bench/results/imports-<stamp>.json and prints a section for bench/RESULTS.md. Absolute numbers belong to the
 * machine recorded with them; compare the ratio.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { unzipSync } from 'fflate';
import { resolveConfig } from '../src/config/index.js';
import { silentLogger } from '../src/log/index.js';
import { startGateway } from '../src/main.js';
import { simulatePortals } from '../tools/simulator/index.js';
import { benchProgramToken } from './lib/gateways.js';
import { machineInfo } from './lib/machine.js';
import { fmt } from './lib/report.js';
import { writeResultsJson } from './lib/results-file.js';

const { values: args } = parseArgs({
  options: {
    trucks: { type: 'string', default: '6' },
    pixels: { type: 'string', default: '1024' },
    'no-write': { type: 'boolean', default: false },
  },
});
const TRUCKS = Number(args.trucks);
const PIXELS = Number(args.pixels);
const SOURCE_AE = 'BENCHSCU';
const SOURCE_PORTAL = 'bench-scanner';

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

async function main(): Promise<void> {
  const date = new Date().toISOString();
  const machine = machineInfo();
  const dir = mkdtempSync(join(tmpdir(), 'scanline-bench-imports-'));
  const files = mkdtempSync(join(tmpdir(), 'scanline-bench-imports-files-'));
  const gw = await startGateway(
    resolveConfig({
      server: { host: '127.0.0.1', port: 0, requestsPerSecondPerAddress: 1_000_000 },
      storage: { dataDir: dir, reserveBytes: 1024 * 1024 },
      log: { level: 'silent' },
      inference: { enabled: true },
      dicos: { listener: { enabled: true, port: 0, sources: [{ aeTitle: SOURCE_AE, portalId: SOURCE_PORTAL, addresses: [] }] } },
    }),
    { log: silentLogger(), bootstrapAdminPassword: 'bench-admin-password-1' },
  );
  try {
    const results = gw.results;
    if (!results || gw.dicosPort === null) throw new Error('the bench needs inference and the DICOS listener');
    const firstSuggestion = new Map<string, number>();
    results.addListener({
      suggestions(scanId, _portal, segments) {
        if (segments.length > 0 && !firstSuggestion.has(scanId)) firstSuggestion.set(scanId, Date.now());
      },
    });
    const isFinal = (scanId: string): boolean => (results.report(scanId) as { status?: string } | undefined)?.status === 'final';
    const waitFinal = async (ids: () => string[], count: number): Promise<number> => {
      for (;;) {
        const list = ids();
        if (list.length >= count && list.every(isFinal)) return Date.now();
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    gw.identity.setPortalCredential(SOURCE_PORTAL, { name: 'bench', address: null });

    // 1. Baseline: the portal path.
    const credentials = { 'sim-1': gw.identity.setPortalCredential('sim-1', { name: 'bench', address: null }).credential };
    const portalStart = Date.now();
    const sim = await simulatePortals({ url: gw.portalUrl, portals: 1, credentials, trucks: TRUCKS, seed: 7100, speed: 'max', pixels: PIXELS });
    if (sim.scansCompleted !== TRUCKS) throw new Error(`the simulator completed ${sim.scansCompleted} of ${TRUCKS} scans`);
    const streamed = sim.scans.map((s) => s.scanId);
    const portalEnd = await waitFinal(() => streamed, TRUCKS);
    const portalSeconds = (portalEnd - portalStart) / 1000;
    const lines = sim.scans.reduce((n, s) => n + s.lines, 0);

    // 2. The same scans as DICOS, sent by storescu.
    const token = benchProgramToken(gw.identity, 'bench-viewer', 'viewer', 'bench:imports');
    const paths: string[] = [];
    let dxBytes = 0;
    for (const scanId of streamed) {
      const res = await fetch(`${gw.httpUrl}/v1/scans/${encodeURIComponent(scanId)}/dicos`, { headers: { authorization: `Bearer ${token}` } });
      if (res.status !== 200) throw new Error(`export of ${scanId}: ${res.status} ${await res.text()}`);
      const zip = unzipSync(new Uint8Array(await res.arrayBuffer()));
      for (const name of ['dx-processing-high.dcm', 'dx-processing-low.dcm']) {
        const path = join(files, `${scanId}-${name}`);
        writeFileSync(path, zip[name]);
        dxBytes += zip[name].byteLength;
        paths.push(path);
      }
    }
    const importedIds = (): string[] => gw.store.listScans({ portalId: SOURCE_PORTAL, limit: 10_000 }).map((s) => s.scanId);
    const importStart = Date.now();
    const sent = await new Promise<{ code: number; output: string }>((done) =>
      execFile('/usr/bin/storescu', ['-R', '-aet', SOURCE_AE, '-aec', 'SCANLINE', '-xs', '127.0.0.1', String(gw.dicosPort), ...paths], (err, so, se) =>
        done({ code: err ? 1 : 0, output: `${so}${se}` }),
      ),
    );
    const storedAt = Date.now();
    if (sent.code !== 0) throw new Error(`storescu failed: ${sent.output}`);
    const importEnd = await waitFinal(importedIds, TRUCKS);
    const importSeconds = (importEnd - importStart) / 1000;
    const latencies = importedIds()
      .map((id) => {
        const receivedAt = Date.parse(gw.store.getScan(id)?.origin?.receivedAt ?? '');
        const first = firstSuggestion.get(id);
        return first === undefined || Number.isNaN(receivedAt) ? Number.NaN : first - receivedAt;
      })
      .filter((v) => Number.isFinite(v))
      .sort((a, b) => a - b);

    const out = {
      date,
      machine,
      trucks: TRUCKS,
      pixels: PIXELS,
      lines,
      portal: { seconds: portalSeconds, scansPerSecond: TRUCKS / portalSeconds, linesPerSecond: lines / portalSeconds },
      dicos: {
        files: paths.length,
        megabytes: dxBytes / 1e6,
        storescuSeconds: (storedAt - importStart) / 1000,
        seconds: importSeconds,
        filesPerSecond: paths.length / importSeconds,
        scansPerSecond: TRUCKS / importSeconds,
        lastByteToFirstSuggestionMs: {
          p50: quantile(latencies, 0.5),
          p95: quantile(latencies, 0.95),
          max: latencies[latencies.length - 1],
          n: latencies.length,
        },
      },
      ratioImportToPortal: TRUCKS / importSeconds / (TRUCKS / portalSeconds),
    };
    const file = args['no-write'] ? null : writeResultsJson('imports', date, out);
    const l = out.dicos.lastByteToFirstSuggestionMs;
    process.stdout.write(
      [
        `### Run of ${date}`,
        '',
        `${machine.cpus} CPUs (${machine.cpuModel}), ${machine.ramGiB} GiB, Node ${machine.node}; ${TRUCKS} dual-energy trucks of ${PIXELS} px, ${lines} lines in all; demo models on CPU.${file ? ` Raw: \`${file}\`.` : ''}`,
        '',
        '| path | to the last final report | scans/s | DX files/s |',
        '|---|---|---|---|',
        `| portal protocol v1 (baseline), max speed | ${fmt(portalSeconds, 2)} s | ${fmt(out.portal.scansPerSecond, 2)} | — |`,
        `| DICOS C-STORE (storescu, one association, ${paths.length} files, ${fmt(out.dicos.megabytes, 0)} MB) | ${fmt(importSeconds, 2)} s | ${fmt(out.dicos.scansPerSecond, 2)} | ${fmt(out.dicos.filesPerSecond, 2)} |`,
        '',
        `Import / portal throughput: **${fmt(out.ratioImportToPortal, 2)}**. storescu finished after ${fmt(out.dicos.storescuSeconds, 2)} s.`,
        `Last byte of a C-STORE (the second energy) to the scan's first goods suggestion: p50 ${fmt(l.p50, 0)} ms, p95 ${fmt(l.p95, 0)} ms, max ${fmt(l.max, 0)} ms (n = ${l.n}).`,
        '',
      ].join('\n'),
    );
  } finally {
    await gw.close(5_000);
    rmSync(dir, { recursive: true, force: true });
    rmSync(files, { recursive: true, force: true });
  }
}

await main();
