/**
 * `scanline import` against a running gateway: a directory with a dual-energy pair and a single-energy file becomes
 * two scans (the pair sent together), a bad file is reported with its code and the exit status is non-zero; without
 * a token it is a usage error.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newUid } from '../../src/dicos/index.js';
import { testDx } from '../helpers/dicos.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

const BIN = resolve(__dirname, '../../bin/scanline.js');

function dx(energy: 'high' | 'low' | 'single', study: string): Uint8Array {
  return testDx({ energy, rows: 32, columns: 80, inspection: { studyInstanceUid: study, ooiId: 'CLI 1' }, fill: (i) => 40_000 + (i % 5_000) }).bytes;
}

function run(args: string[], env: Record<string, string>): Promise<{ status: number; out: string }> {
  return new Promise((done) =>
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, encoding: 'utf8' }, (err, stdout, stderr) =>
      done({ status: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}` }),
    ),
  );
}

describe('scanline import', () => {
  let gw: TestGateway;
  const dir = mkdtempSync(join(tmpdir(), 'scanline-import-cli-'));

  beforeAll(async () => {
    gw = await startTestGateway();
    const study = newUid();
    writeFileSync(join(dir, '1-high.dcm'), dx('high', study));
    writeFileSync(join(dir, '1-low.dcm'), dx('low', study));
    writeFileSync(join(dir, '2.dcm'), dx('single', newUid()));
    writeFileSync(join(dir, '3.dcm'), 'not a DICOS file');
  });

  afterAll(async () => {
    await gw?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends a folder, pairing the energies of one inspection, and reports each inspection', async () => {
    const r = await run(['import', dir, '--url', gw.httpUrl, '--hs-codes', '0803'], { SCANLINE_API_TOKEN: gw.tokenOf('officer') });
    expect(r.status, r.out).not.toBe(0); // one bad file
    expect(r.out).toMatch(/1-high\.dcm \+ .*1-low\.dcm: scan \S+ \(80 lines, 2 energies\)/);
    expect(r.out).toMatch(/2\.dcm: scan \S+ \(80 lines, 1 energies\)/);
    expect(r.out).toMatch(/3\.dcm: ERROR SCANLINE_ERR_DICOS_PARSE/);
    const scans = gw.store.listScans({ portalId: 'import' });
    expect(scans.map((s) => s.detector.energies).sort()).toEqual([1, 2]);
    expect(scans.every((s) => s.declaration?.hsCodes[0] === '0803' && s.origin?.receivedBy === 'officer-bot')).toBe(true);
  });

  it('needs a token, and says so', async () => {
    const r = await run(['import', dir, '--url', gw.httpUrl], { SCANLINE_API_TOKEN: '' });
    expect(r.status).toBe(2);
    expect(r.out).toMatch(/SCANLINE_API_TOKEN/);
  });
});
