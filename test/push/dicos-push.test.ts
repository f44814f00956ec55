/**
 * DICOS push to a real C-STORE SCP, dcmtk's storescp: a final scan's DX images and MACHINE TDR arrive, an officer's
 * decision arrives as an OPERATOR TDR; while the destination is down the decision waits in the queue (metrics show
 * it), survives a restart of the gateway, and arrives once the destination is back. A push the archive took but the
 * queue could not record (a full disk) is not counted a failure and is sent again after its retry time.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { GatewayConfigInput } from '../../src/config/index.js';
import { SopClass } from '../../src/dicos/index.js';
import { simulatePortals } from '../../tools/simulator/index.js';
import { freePort } from '../helpers/free-port.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { skipWithout } from '../helpers/tools.js';

const STORESCP = '/usr/bin/storescp';

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** SOP class, TDR type and operator of each file storescp wrote. */
function received(dir: string): Array<{ sop: string; tdrType: string | null; operator: string | null; scanlinePrivate: boolean }> {
  return readdirSync(dir).map((name) => {
    const dump = execFileSync('/usr/bin/dcmdump', ['-q', '-Un', join(dir, name)], { encoding: 'utf8', maxBuffer: 64 * 1024 ** 2 });
    const value = (tag: string): string | null => dump.match(new RegExp(`\\(${tag}\\) \\w\\w \\[([^\\]]*)\\]`))?.[1] ?? null;
    const sop = dump.match(/^\(0008,0016\) UI \[([\w.]+)\]/m)?.[1] ?? '';
    return { sop, tdrType: value('4010,1027'), operator: value('0008,0100') ?? value('0008,0119'), scanlinePrivate: /\(0029,1000\)/.test(dump) };
  });
}

describe.skipIf(skipWithout(STORESCP))('DICOS push to storescp', () => {
  const archive = mkdtempSync(join(tmpdir(), 'scanline-archive-'));
  const dataDir = mkdtempSync(join(tmpdir(), 'scanline-push-data-'));
  let scp: ChildProcess | null = null;
  let gw: TestGateway | null = null;
  let port = 0;

  const startScp = async (): Promise<void> => {
    scp = spawn(STORESCP, ['-pm', '+xa', '-aet', 'ARCHIVE', '-od', archive, String(port)], { stdio: 'ignore' });
    await new Promise((r) => setTimeout(r, 300));
  };
  const stopScp = async (): Promise<void> => {
    const p = scp;
    scp = null;
    if (!p) return;
    p.kill('SIGTERM');
    await new Promise((r) => p.once('exit', r));
  };
  const config = (): GatewayConfigInput => ({
    inference: { enabled: true },
    dicos: {
      destinations: [
        {
          name: 'archive',
          host: '127.0.0.1',
          port,
          calledAeTitle: 'ARCHIVE',
          objects: ['dx-processing', 'dx-presentation', 'tdr-machine', 'tdr-operator'],
          enabled: true,
        },
      ],
      push: { retryInitialMs: 200, retryMaxMs: 1_000, pollIntervalMs: 100, timeoutMs: 15_000 },
    },
  });

  afterAll(async () => {
    await stopScp();
    await gw?.close(5_000);
    rmSync(archive, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('pushes a final scan, queues a decision while the archive is down, keeps it over a restart, delivers it after', async () => {
    port = await freePort();
    await startScp();
    gw = await startTestGateway(config(), {}, dataDir);
    const sim = await simulatePortals({
      url: gw.portalUrl,
      portals: 1,
      credentials: gw.simulatorCredentials(1),
      trucks: 1,
      seed: 5210,
      speed: 'max',
      truck: { threats: ['firearm'], realism: 'hard' },
    });
    const scanId = sim.scans[0].scanId;
    await until('the scan in the archive', () => readdirSync(archive).length >= 5);
    const first = received(archive);
    expect(first.map((f) => f.sop).sort()).toEqual(
      [SopClass.DxForPresentation, SopClass.DxForPresentation, SopClass.DxForProcessing, SopClass.DxForProcessing, SopClass.ThreatDetectionReport].sort(),
    );
    expect(first.find((f) => f.sop === SopClass.ThreatDetectionReport)?.tdrType).toBe('MACHINE');
    // Scanline's private attribute (the calibration that makes a re-import exact) travels with the images.
    expect(first.filter((f) => f.sop === SopClass.DxForProcessing).map((f) => f.scanlinePrivate)).toEqual([true, true]);

    // Marked sent once every C-STORE was answered (under load the answers can trail the files).
    await until('the scan marked sent', () => gw!.store.pendingPushes().length === 0);

    // The archive goes down; an officer decides; the OPERATOR report waits in the queue.
    await stopScp();
    const officer = await gw.signIn('officer');
    const decided = await fetch(`${gw.httpUrl}/v1/scans/${encodeURIComponent(scanId)}/decision`, {
      method: 'POST',
      headers: officer.headers,
      body: JSON.stringify({ verdict: 'inspect', comment: 'open the trailer' }),
    });
    expect(decided.status).toBe(201);
    const metrics = async (): Promise<string> => (await fetch(`${gw!.httpUrl}/metrics`, { headers: gw!.authHeaders('metrics') })).text();
    await until('a failed attempt', async () => /scanline_dicos_push_failures_total\{destination="archive"\} [1-9]/.test(await metrics()));
    expect(await metrics()).toMatch(/scanline_dicos_push_pending\{destination="archive"\} 1/);

    // A restart keeps the queue.
    await gw.close(5_000);
    gw = await startTestGateway(config(), {}, dataDir);
    expect(gw.store.pendingPushes()).toEqual([expect.objectContaining({ destination: 'archive', pending: 1 })]);
    await startScp();
    await until('the decision in the archive', () => readdirSync(archive).length >= 6);
    const operator = received(archive).find((f) => f.tdrType === 'OPERATOR');
    expect(operator?.operator).toBe('officer-person');
    await until('an empty queue', () => gw!.store.pendingPushes().length === 0);

    // The archive takes a decision but the queue cannot record it (SQLite's "database or disk is full", injected into
    // this one write): the item is held in memory and sent again after its retry time, not at every poll, and the
    // queue empties once the write goes through. The objects are the same (their UIDs derive from the scan).
    const store = gw.store;
    const pushSent = store.pushSent.bind(store);
    let refused = 0;
    store.pushSent = (id: number, at: string): void => {
      if (refused++ === 0) throw Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
      pushSent(id, at);
    };
    const failures = async (): Promise<number> => Number((await metrics()).match(/scanline_dicos_push_failures_total\{destination="archive"\} (\d+)/)?.[1]);
    const failuresBefore = await failures();
    try {
      const again = await fetch(`${gw.httpUrl}/v1/scans/${encodeURIComponent(scanId)}/decision`, {
        method: 'POST',
        headers: officer.headers,
        body: JSON.stringify({ verdict: 'clear', comment: 'nothing found' }),
      });
      expect(again.status).toBe(201);
      await until('the second decision recorded as sent', () => refused >= 2 && gw!.store.pendingPushes().length === 0);
      expect(refused).toBe(2);
      // The archive took it both times: not a failed push.
      expect(await failures()).toBe(failuresBefore);
      expect(received(archive).filter((f) => f.tdrType === 'OPERATOR').length).toBeGreaterThanOrEqual(2);
    } finally {
      store.pushSent = pushSent;
    }
  }, 180_000);
});
