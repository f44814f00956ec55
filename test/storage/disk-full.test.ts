/**
 * The disk as a monitored resource, on a real full disk: the gateway's data directory on a small tmpfs mounted by the
 * test (needs root, as CI runs; elsewhere the mount fails and so does the test, it is never skipped).
 * - below storage.minFreeBytes: scan.start refused with SCANLINE_ERR_STORAGE_FULL, /readyz not ready with the reason,
 *   scanline_storage_free_bytes below scanline_storage_min_free_bytes (what the alert rule compares);
 * - disk completely full: an open scan's lines that cannot be written are not acknowledged (the scan is aborted with
 *   SCANLINE_ERR_STORAGE_WRITE), the lines acknowledged before stay bit-exact, and an officer's decision is still
 *   recorded (the space reserve is given up for it);
 * - the reserve is kept for people's acts: a refused sign-in (its entry then in the log only) and a token's first use
 *   (its last use not noted; the request goes on) on the full disk do not take it;
 * - space freed: scans are accepted again and the reserve is back;
 * - a seal refused on the full disk is written (late) once the disk has room again, without a restart; so is a
 *   final results report (served from memory meanwhile);
 * - a gateway restarted on a disk below minFreeBytes takes over the reserve file and still records a decision once
 *   the disk is full; one restarted on a disk with no room at all gives the reserve up to open its databases, and
 *   without one is refused with SCANLINE_ERR_STORAGE_FULL.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statfsSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type GatewayMessage, SliceKind, encodeSliceFrame } from '../../src/protocol/index.js';
import { SpaceReserve } from '../../src/storage/index.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { RawPortal } from '../helpers/raw-portal.js';

const PIXELS = 256;
const BYTES_PER_LINE = PIXELS * 2 * 2;
const MiB = 1024 * 1024;

// checkpointIntervalMs 60 s: no checkpoint during the test, so the WAL only grows and every write on the full disk
// needs new blocks. (Checkpointed, the WAL is reused from its start, and a small write may still fit on a full disk:
// then nothing is refused, which is not what these steps test.)
let mount = '';
let g: TestGateway;

/** A gateway on the tmpfs's data directory (inference off unless asked for). */
function startGatewayOnMount(o: { inference?: boolean } = {}): Promise<TestGateway> {
  return startTestGateway(
    {
      storage: { minFreeBytes: 40 * MiB, reserveBytes: 8 * MiB, diskCheckIntervalMs: 100, checkpointIntervalMs: 60_000, directIo: false },
      inference: { enabled: o.inference === true },
    },
    {},
    join(mount, 'data'),
  );
}

/** Starts scan `scanId` on a new portal and has its first 10 frames (160 lines) acknowledged. */
async function scanWithTenFrames(portalId: string, scanId: string): Promise<RawPortal> {
  const portal = await RawPortal.hello(g.portalUrl, portalId, { pixels: PIXELS, energies: 2 });
  portal.json({ type: 'scan.start', streamId: 1, scanId });
  await portal.next((m) => m.type === 'scan.accepted');
  for (let s = 0; s < 10; s++) portal.binary(frame(1, s, s * 16));
  await portal.next((m) => m.type === 'ack' && m.streamId === 1 && m.seq === 9);
  return portal;
}

beforeAll(async () => {
  mount = mkdtempSync(join(tmpdir(), 'scanline-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=96m', 'tmpfs', mount]);
  mkdirSync(join(mount, 'data'));
  g = await startGatewayOnMount();
}, 60_000);

afterAll(async () => {
  await g?.dispose();
  if (mount) {
    // Worker threads of the last gateway (inference, WAL checkpoints) may still be closing their files on a loaded
    // machine: tried for a few seconds, then detached lazily (freed once the last file on it is closed).
    for (let i = 0; ; i++) {
      try {
        execFileSync('umount', [mount], { stdio: 'pipe' });
        break;
      } catch {
        if (i >= 20) {
          execFileSync('umount', ['-l', mount]);
          break;
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    rmSync(mount, { recursive: true, force: true });
  }
}, 30_000);

function lineValues(firstLine: number, lines: number): Uint16Array {
  const out = new Uint16Array(lines * 2 * PIXELS);
  for (let i = 0; i < out.length; i++) out[i] = ((firstLine * 2 * PIXELS + i) * 37) % 60_000;
  return out;
}

function frame(streamId: number, seq: number, firstLine: number, lines = 16): Uint8Array {
  return encodeSliceFrame({ kind: SliceKind.Image, energies: 2, streamId, seq, firstLine, pixels: PIXELS, acquiredAtUs: 0n }, lineValues(firstLine, lines));
}

/** Writes a file of zeros into the mount until `leave` bytes are free (0: until the disk is full). */
function fill(name: string, leave: number): void {
  const fd = openSync(join(mount, name), 'w');
  const chunk = Buffer.alloc(MiB);
  try {
    for (;;) {
      const s = statfsSync(mount);
      const free = s.bavail * s.bsize;
      const n = Math.min(chunk.length, free - leave);
      if (n <= 0) break;
      writeSync(fd, chunk, 0, n);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
}

async function until(what: string, ok: () => Promise<boolean> | boolean, timeoutMs = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!(await ok())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${g.httpUrl}/metrics`, { headers: g.authHeaders('admin') })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : Number.NaN;
}

async function decide(scanId: string): Promise<number> {
  const res = await fetch(`${g.httpUrl}/v1/scans/${scanId}/decision`, {
    method: 'POST',
    headers: { ...g.authHeaders('officer'), 'content-type': 'application/json' },
    body: JSON.stringify({ verdict: 'clear', comment: 'disk full test' }),
  });
  return res.status;
}

describe('a full data directory', () => {
  it('refuses new scans below minFreeBytes, acknowledges only what it stored, still records decisions, and recovers when space is freed', async () => {
    const portal = await RawPortal.hello(g.portalUrl, 'lane-disk', { pixels: PIXELS, energies: 2 });
    // Scan A completes while there is room.
    portal.json({ type: 'scan.start', streamId: 1, scanId: 'disk-a' });
    await portal.next((m) => m.type === 'scan.accepted');
    for (let s = 0; s < 10; s++) portal.binary(frame(1, s, s * 16));
    portal.json({ type: 'scan.end', streamId: 1, totalLines: 160 });
    await portal.next((m) => m.type === 'scan.completed' && m.streamId === 1);
    // Its seal is written in a batch up to 250 ms later (src/main.ts writeSeals): on disk before the disk fills, or its
    // audit entry would take the space reserve that scan B's refused lines below must not get.
    await until('disk-a sealed', async () => g.store.sealOf('disk-a') !== null);
    expect(await decide('disk-a')).toBe(201);
    expect(await metric('scanline_storage_reserve_bytes')).toBe(8 * MiB);

    // A program account whose token is first used once the disk is full (its last use cannot be noted then).
    const lateToken = g.accountToken('late-reader', 'viewer');

    // Scan B is open, 10 frames acknowledged.
    portal.json({ type: 'scan.start', streamId: 2, scanId: 'disk-b' });
    await portal.next((m) => m.type === 'scan.accepted' && m.streamId === 2);
    for (let s = 0; s < 10; s++) portal.binary(frame(2, s, s * 16));
    await portal.next((m) => m.type === 'ack' && m.streamId === 2 && m.seq === 9);

    // Below storage.minFreeBytes: no new scan, /readyz says why, the metrics show it.
    fill('filler-1', 20 * MiB);
    await until('readyz not ready', async () => (await fetch(`${g.httpUrl}/readyz`)).status === 503);
    const ready = (await (await fetch(`${g.httpUrl}/readyz`, { headers: g.authHeaders('viewer') })).json()) as { checks?: Record<string, unknown> };
    expect(JSON.stringify(ready)).toMatch(/storage\.minFreeBytes/);
    expect(await metric('scanline_storage_free_bytes')).toBeLessThan(await metric('scanline_storage_min_free_bytes'));
    portal.json({ type: 'scan.start', streamId: 3, scanId: 'disk-c' });
    const refused = (await portal.next((m) => m.type === 'error' && m.streamId === 3)) as Extract<GatewayMessage, { type: 'error' }>;
    expect(refused.code).toBe('SCANLINE_ERR_STORAGE_FULL');

    // Completely full: scan B's next lines cannot be written, so they are not acknowledged and the scan is aborted.
    fill('filler-2', 0);
    const before = portal.messages.length;
    for (let s = 10; s < 40; s++) portal.binary(frame(2, s, s * 16));
    const aborted = await portal.next((m) => m.type === 'scan.aborted' && m.streamId === 2, 10_000, before);
    expect(aborted).toMatchObject({ scanId: 'disk-b' });
    const acksAfter = portal.messages.slice(before).filter((m) => m.type === 'ack' && m.streamId === 2) as Array<{ seq: number }>;
    const lastAck = Math.max(9, ...acksAfter.map((a) => a.seq));
    expect(portal.messages.slice(before).some((m) => m.type === 'error' && m.code === 'SCANLINE_ERR_STORAGE_WRITE')).toBe(true);
    // Every acknowledged line is stored bit-exact.
    const raw = readFileSync(g.store.rawPath('disk-b'));
    const ackedLines = (lastAck + 1) * 16;
    expect(raw.byteLength).toBeGreaterThanOrEqual(ackedLines * BYTES_PER_LINE);
    expect(Buffer.compare(raw.subarray(0, ackedLines * BYTES_PER_LINE), Buffer.from(lineValues(0, ackedLines).buffer))).toBe(0);

    // Writes that never take the reserve: a refused sign-in stays refused (its entry goes to the log), a token's first
    // use is answered without noting it. The reserve is still there for the decision below.
    const wrong = await fetch(`${g.httpUrl}/v1/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'nobody', password: 'not-the-password-1' }),
    });
    expect(wrong.status).toBe(401);
    expect(JSON.stringify(await wrong.json())).toMatch(/SCANLINE_ERR_AUTH_INVALID/);
    const first = await fetch(`${g.httpUrl}/v1/scans/disk-a`, { headers: { authorization: `Bearer ${lateToken}` } });
    expect(first.status).toBe(200);
    expect(await metric('scanline_storage_reserve_bytes')).toBe(8 * MiB);
    expect(await metric('scanline_identity_writes_failed_total{kind="refusal"}')).toBe(1);
    // (At least: a token last used over a minute before, on a slow machine, is noted again too.)
    expect(await metric('scanline_identity_writes_failed_total{kind="bookkeeping"}')).toBeGreaterThanOrEqual(1);

    // An officer's decision is still recorded (the reserve is given up for it), and audited.
    expect(await decide('disk-a')).toBe(201);
    expect(await metric('scanline_storage_reserve_bytes')).toBe(0);
    expect(g.store.listDecisions('disk-a')).toHaveLength(2);

    // Space freed: accepting again, the reserve back.
    rmSync(join(mount, 'filler-1'));
    rmSync(join(mount, 'filler-2'));
    await until('readyz ready', async () => (await fetch(`${g.httpUrl}/readyz`)).status === 200);
    portal.json({ type: 'scan.start', streamId: 4, scanId: 'disk-d' });
    expect(await portal.next((m) => (m.type === 'scan.accepted' || m.type === 'error') && m.streamId === 4)).toMatchObject({ type: 'scan.accepted' });
    portal.json({ type: 'scan.abort', streamId: 4, reason: 'test over' });
    await portal.next((m) => m.type === 'scan.aborted' && m.streamId === 4);
    await until('reserve back', async () => (await metric('scanline_storage_reserve_bytes')) === 8 * MiB);
    portal.ws.close();
  }, 60_000);

  it('writes the record and seal of a scan the full disk refused once there is room again, and keeps the reserve across a restart on a full disk', async () => {
    const portal = await scanWithTenFrames('lane-disk-2', 'disk-e');
    // The disk fills before the scan ends: its lines and journal are synced, but its record and seal cannot be written.
    fill('filler-3', 0);
    portal.json({ type: 'scan.end', streamId: 1, totalLines: 160 });
    expect(await portal.next((m) => (m.type === 'scan.completed' || m.type === 'scan.aborted') && m.streamId === 1)).toMatchObject({
      type: 'scan.completed',
      lines: 160,
    });
    await until('the record waits for room', async () => (await metric('scanline_storage_pending_records')) === 1);
    await new Promise((r) => setTimeout(r, 500)); // past the seal batch (250 ms)
    expect(g.store.sealOf('disk-e')).toBeNull();
    // Reads show the scan as it ended while its record waits, also filtered by state.
    expect(g.store.getScan('disk-e')).toMatchObject({ state: 'completed', lines: 160 });
    expect(g.store.listScans({ state: 'completed', limit: 1000 }).map((r) => r.scanId)).toContain('disk-e');
    expect(g.store.listScans({ state: 'receiving', limit: 1000 }).map((r) => r.scanId)).not.toContain('disk-e');
    expect(await metric('scanline_storage_pending_seals')).toBe(1);
    const shown = await fetch(`${g.httpUrl}/v1/scans/disk-e`, { headers: g.authHeaders('viewer') });
    expect(JSON.stringify(await shown.json())).toMatch(/"state":"completed"/);
    // Room again: the record, then the seal (late), without a restart; the raw lines are as acknowledged.
    rmSync(join(mount, 'filler-3'));
    await until('disk-e sealed', async () => g.store.sealOf('disk-e') !== null);
    expect(g.store.getScan('disk-e')).toMatchObject({ state: 'completed', lines: 160 });
    expect(await metric('scanline_storage_pending_records')).toBe(0);
    expect(await metric('scanline_storage_pending_seals')).toBe(0);
    const sealEntry = g.identity.listAudit({ limit: 10, action: 'scan.seal' }).find((e) => e.target === 'disk-e');
    expect(sealEntry?.details).toMatchObject({ lines: 160, late: true });
    expect(Buffer.compare(readFileSync(g.store.rawPath('disk-e')), Buffer.from(lineValues(0, 160).buffer))).toBe(0);
    portal.ws.close();

    // A restart on a disk below storage.minFreeBytes: the reserve file left by the run before is taken over, so a
    // decision is still recorded once the disk is full.
    fill('filler-4', 20 * MiB);
    await g.dispose();
    g = await startGatewayOnMount();
    expect(await metric('scanline_storage_reserve_bytes')).toBe(8 * MiB);
    await decide('disk-e'); // the officer's token made while there is room
    fill('filler-5', 0);
    expect(await decide('disk-e')).toBe(201);
    expect(await metric('scanline_storage_reserve_bytes')).toBe(0);
    expect(g.store.listDecisions('disk-e')).toHaveLength(2);
    // A restart on a disk with no room at all and no reserve left: refused with a code that says what to do.
    await g.dispose();
    fill('filler-6', 0);
    await expect(startGatewayOnMount()).rejects.toMatchObject({ code: 'SCANLINE_ERR_STORAGE_FULL' });
    // With the reserve a previous run left: it is given up to open the databases, and made again once there is room.
    rmSync(join(mount, 'filler-6'));
    expect(SpaceReserve.at(join(mount, 'data'), 8 * MiB).ensure()).toBe(true);
    fill('filler-7', 0);
    g = await startGatewayOnMount();
    expect(g.store.getScan('disk-e')).toMatchObject({ state: 'completed', lines: 160 });
    expect(await metric('scanline_storage_reserve_bytes')).toBe(0);
    for (const f of ['filler-4', 'filler-5', 'filler-7']) rmSync(join(mount, f));
    await until('reserve back', async () => (await metric('scanline_storage_reserve_bytes')) === 8 * MiB);
  }, 60_000);

  it('serves a final results report the full disk refused from memory and stores it once there is room', async () => {
    await g.dispose();
    g = await startGatewayOnMount({ inference: true });
    // The tokens of this gateway are made while there is room (making one is an act that may take the reserve).
    g.authHeaders('admin');
    g.authHeaders('viewer');
    const portal = await scanWithTenFrames('lane-disk-3', 'disk-f');
    fill('filler-8', 0);
    portal.json({ type: 'scan.end', streamId: 1, totalLines: 160 });
    await portal.next((m) => m.type === 'scan.completed' && m.streamId === 1);
    await until('the final report waits for room', async () => (await metric('scanline_storage_pending_reports')) >= 1, 30_000);
    const served = await fetch(`${g.httpUrl}/v1/scans/disk-f/results`, { headers: g.authHeaders('viewer') });
    expect(JSON.stringify(await served.json())).toMatch(/"status":"final"/);
    expect((g.store.getResults('disk-f') as { status?: string } | undefined)?.status).not.toBe('final');
    rmSync(join(mount, 'filler-8'));
    await until('the final report stored', async () => (await metric('scanline_storage_pending_reports')) === 0);
    expect((g.store.getResults('disk-f') as { status?: string }).status).toBe('final');
    portal.ws.close();
  }, 90_000);
});
