/**
 * An acknowledgement survives kill -9: the real gateway (bin/scanline.js serve, a child process with its own data
 * directory on a fixed port) is killed with SIGKILL 20 times at random moments while 4 simulated portals stream trucks
 * (two as fast as acks allow, two paced at the detector's line rate) and reconnect and resume on their own. After
 * each restart:
 * - the gateway never asks a portal again for a frame it had acknowledged before it was killed (the `resume` nextSeq
 *   is past the last ack the portal heard);
 * and at the end every scan is completed with no gaps, its raw lines bit-exact in both energies to what the
 * simulator rendered, and its results report final.
 *
 * The portals' frames are re-rendered on demand by the simulator, so bit-exact raw files alone would not show a lost
 * acknowledged frame: the resume check is what does.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import sharp from 'sharp';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type GatewayMessage, SliceKind, encodeSliceFrame } from '../../src/protocol/index.js';
import { RawPortal } from '../helpers/raw-portal.js';
import { ScanStore } from '../../src/storage/index.js';
import { createDetector, generateTruck, PortalClient, renderAir, renderDark, renderLines, type Detector, type Scene } from '../../tools/simulator/index.js';
import { freePort } from '../helpers/free-port.js';
import { openTestIdentity } from '../helpers/identity.js';

const BIN = new URL('../../bin/scanline.js', import.meta.url).pathname;
const KILLS = 20;
const PORTALS = 4;
const PIXELS = 256;

interface Child {
  process: ChildProcess;
  exited: Promise<number | null>;
}

/** Every gateway started: each test leaves its last one running, and no test may outlive the file (each holds ~300 MB). */
const started: Child[] = [];

function startGateway(dir: string, port: number): Promise<Child> {
  const child = spawn(process.execPath, [BIN, 'serve', '--port', String(port), '--data-dir', dir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    // A 1 MiB space reserve: 21 starts would otherwise write 64 MiB each.
    env: {
      ...process.env,
      SCANLINE_BOOTSTRAP_ADMIN_PASSWORD: 'crash-test-admin-password',
      SCANLINE_LOG_LEVEL: 'info',
      SCANLINE_STORAGE_RESERVE_BYTES: '1048576',
    },
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  started.push({ process: child, exited });
  return new Promise((resolve, reject) => {
    let out = '';
    // Every run's log goes to <dir>/gateway.log, for a failing test to show.
    const log = join(dir, 'gateway.log');
    child.stdout?.on('data', (c: Buffer) => appendFileSync(log, c));
    child.stderr?.on('data', (c: Buffer) => appendFileSync(log, c));
    const onData = (chunk: Buffer): void => {
      out += chunk.toString();
      if (out.includes('"gateway ready"')) {
        child.stdout?.off('data', onData);
        resolve({ process: child, exited });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
    void exited.then((code) => reject(new Error(`gateway exited (${code}) before it was ready:\n${out.slice(-4000)}`)));
  });
}

interface ScanTrack {
  scanId: string;
  scene: Scene;
  detector: Detector;
  /** The highest seq the portal heard acknowledged (cumulative). */
  acked: number;
}

const dirs: string[] = [];
let gateway: Child | null = null;
afterAll(async () => {
  for (const child of started) if (child.process.exitCode === null && child.process.signalCode === null) child.process.kill('SIGKILL');
  await Promise.all(started.map((child) => child.exited));
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('kill -9 while portals stream', () => {
  it(`loses no acknowledged line over ${KILLS} kills: every scan completes bit-exact with its results`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scanline-crash-'));
    dirs.push(dir);
    ScanStore.open(dir, undefined, { directIo: false }).close();
    const identity = openTestIdentity(dir);
    const tokens = Array.from({ length: PORTALS }, (_, i) => identity.portalCredential(`crash-${i}`));
    identity.close();
    const port = await freePort();
    gateway = await startGateway(dir, port);

    const scans = new Map<string, ScanTrack>();
    const violations: string[] = [];
    let stopping = false;
    const portalRuns = tokens.map(async (token, p) => {
      const detector = createDetector({ pixels: PIXELS, seed: 11 + p });
      const byStream = new Map<number, ScanTrack>();
      const client = new PortalClient({
        url: `ws://127.0.0.1:${port}/v1/portal`,
        portalId: `crash-${p}`,
        token,
        detector,
        speed: p < 2 ? 'max' : 'realtime',
        reconnectAttempts: 200,
        reconnectDelayMs: 50,
        replyTimeoutMs: 60_000,
        ackTimeoutMs: 3_000,
        onMessage: (m: GatewayMessage) => {
          if (m.type === 'ack') {
            const t = byStream.get(m.streamId);
            if (t && m.seq > t.acked) t.acked = m.seq;
          } else if (m.type === 'resume') {
            const t = byStream.get(m.streamId);
            if (t && m.nextSeq <= t.acked) violations.push(`${t.scanId}: resumed at ${m.nextSeq} after seq ${t.acked} was acknowledged`);
          }
        },
      });
      await client.connect();
      for (let i = 0; !stopping; i++) {
        const scene = generateTruck(1000 * p + i, detector, { mismatchProbability: 0 });
        const track: ScanTrack = { scanId: `crash-${p}-${i}`, scene, detector, acked: -1 };
        scans.set(track.scanId, track);
        // The client numbers streams from 1, one per scan.
        byStream.set(i + 1, track);
        await client.scan(scene, { scanId: track.scanId });
      }
      client.close();
    });
    const failed = Promise.all(portalRuns).then(
      () => null,
      (err: unknown) => err,
    );

    for (let k = 0; k < KILLS; k++) {
      await new Promise((r) => setTimeout(r, 200 + Math.random() * 1300));
      gateway.process.kill('SIGKILL');
      await gateway.exited;
      gateway = await startGateway(dir, port);
    }
    stopping = true;
    const failure = await failed;
    if (failure) {
      const log = join(dir, 'gateway.log');
      const problems = existsSync(log)
        ? readFileSync(log, 'utf8')
            .split('\n')
            .filter((l) => /"level":"(warn|error|fatal)"/.test(l))
        : [];
      throw new Error(`${(failure as Error).message}\ngateway warnings and errors:\n${problems.slice(-40).join('\n')}`);
    }
    expect(violations).toEqual([]);

    // Results are final once every tile is scored; the gateway scores on after the portals are done.
    const store = ScanStore.open(dir, undefined, { directIo: false });
    try {
      const deadline = Date.now() + 120_000;
      for (const t of scans.values()) {
        while ((store.getResults(t.scanId) as { status?: string } | undefined)?.status !== 'final') {
          if (Date.now() > deadline) throw new Error(`results of ${t.scanId} not final: ${JSON.stringify(store.getResults(t.scanId))?.slice(0, 300)}`);
          await new Promise((r) => setTimeout(r, 100));
        }
        const record = store.getScan(t.scanId);
        expect(record, t.scanId).toMatchObject({ state: 'completed', lines: t.scene.totalLines, gaps: [] });
        const want = new Uint16Array(t.scene.totalLines * 2 * PIXELS);
        renderLines(t.scene, t.detector, 0, t.scene.totalLines, want);
        const raw = readFileSync(store.rawPath(t.scanId));
        expect(Buffer.compare(raw, Buffer.from(want.buffer)), `${t.scanId}: raw lines differ from what the portal sent`).toBe(0);
      }
    } finally {
      store.close();
    }
    expect(scans.size).toBeGreaterThanOrEqual(PORTALS);
  }, 600_000);
});

describe('kill -9 during a scan, no portal afterwards', () => {
  it('serves the interrupted scan, image and results, after the restart without any portal action', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scanline-crash-'));
    dirs.push(dir);
    ScanStore.open(dir, undefined, { directIo: false }).close();
    const identity = openTestIdentity(dir);
    const token = identity.portalCredential('lane-r');
    await identity.identity.addAccount('viewer-1', 'viewer', 'viewer-1-password-long-enough', { name: 'test', address: null });
    const apiToken = identity.identity.createToken('viewer-1', {}, { name: 'test', address: null }).token;
    identity.close();
    const port = await freePort();
    gateway = await startGateway(dir, port);

    const detector = createDetector({ pixels: PIXELS, seed: 5 });
    const scene = generateTruck(77, detector, { mismatchProbability: 0 });
    const LINES = 640;
    const lines = new Uint16Array(LINES * 2 * PIXELS);
    renderLines(scene, detector, 0, LINES, lines);
    const portal = await RawPortal.hello(`ws://127.0.0.1:${port}/v1/portal`, 'lane-r', { pixels: PIXELS, energies: 2 }, { token });
    portal.json({ type: 'scan.start', streamId: 1, scanId: 'interrupted-1' });
    await portal.next((m) => m.type === 'scan.accepted');
    let seq = 0;
    const send = (kind: SliceKind, firstLine: number, data: Uint16Array): void =>
      portal.binary(encodeSliceFrame({ kind, energies: 2, streamId: 1, seq: seq++, firstLine, pixels: PIXELS, acquiredAtUs: 0n }, data));
    const dark = new Uint16Array(16 * 2 * PIXELS);
    renderDark(detector, 16, dark, scene.noiseSeed);
    send(SliceKind.Dark, 0, dark);
    const air = new Uint16Array(16 * 2 * PIXELS);
    renderAir(detector, 16, air, scene.noiseSeed);
    send(SliceKind.Air, 0, air);
    for (let first = 0; first < LINES; first += 16) send(SliceKind.Image, first, lines.subarray(first * 2 * PIXELS, (first + 16) * 2 * PIXELS));
    await portal.next((m) => m.type === 'ack' && m.seq === seq - 1, 30_000);
    gateway.process.kill('SIGKILL');
    await gateway.exited;
    portal.ws.terminate();
    gateway = await startGateway(dir, port);

    const headers = { authorization: `Bearer ${apiToken}` };
    const base = `http://127.0.0.1:${port}/v1/scans/interrupted-1`;
    const scan = (await (await fetch(base, { headers })).json()) as { lines: number; state: string };
    expect(scan).toMatchObject({ lines: LINES, state: 'receiving' });
    interface Report {
      recovered: { lines: number } | null;
      lines: number;
      status: string;
      algorithms: Array<{ tiles: { submitted: number } }>;
    }
    let report: Report = { recovered: null, lines: 0, status: '', algorithms: [] };
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const res = await fetch(`${base}/results`, { headers });
      expect(res.status).toBe(200);
      report = (await res.json()) as Report;
      if (report.algorithms.length > 0 && report.algorithms.every((a) => a.tiles.submitted > 0)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(report.recovered).toMatchObject({ lines: LINES });
    expect(report.algorithms.length).toBe(2);
    expect(report.algorithms.every((a) => a.tiles.submitted > 0)).toBe(true);
    const image = await fetch(`${base}/image?energy=high&format=png16`, { headers });
    expect(image.status).toBe(200);
    const { data, info } = await sharp(Buffer.from(await image.arrayBuffer()))
      .toColourspace('grey16')
      .raw({ depth: 'ushort' })
      .toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([LINES, PIXELS]);
    const plane = new Uint16Array(data.buffer, data.byteOffset, data.byteLength / 2);
    let mismatches = 0;
    for (let p = 0; p < PIXELS; p++) for (let l = 0; l < LINES; l++) if (plane[p * LINES + l] !== lines[l * 2 * PIXELS + p]) mismatches++;
    expect(mismatches).toBe(0);
  }, 120_000);
});
