/**
 * Graceful shutdown of a real `scanline serve` child process (compiled dist/, real signals): SIGTERM arrives while
 * two portals are mid-scan. Portal A keeps streaming and ends its scan inside the drain window; portal B stops
 * sending and never ends its scan. Expected, from docs/protocol.md and the `shutdown` config section:
 * - both portals are told `draining {deadlineMs: shutdown.drainTimeoutMs}`; a new scan.start is refused with
 *   SCANLINE_ERR_GATEWAY_DRAINING; frames of open scans are still accepted and acknowledged;
 * - A completes; B is aborted at the drain deadline with its received lines kept;
 * - every acknowledged slice is on disk byte for byte (raw.u16 of each scan), none is lost;
 * - the process exits 0 within shutdown.exitTimeoutMs of the signal.
 * The timeouts come from SCANLINE_SHUTDOWN_* environment variables, so this also exercises env overrides.
 */
import { openTestIdentity } from '../helpers/identity.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SliceKind, encodeSliceFrame, type GatewayMessage } from '../../src/protocol/index.js';
import { ScanStore } from '../../src/storage/index.js';
import { RawPortal } from '../helpers/raw-portal.js';

const BIN = new URL('../../bin/scanline.js', import.meta.url).pathname;
const PIXELS = 64;
const ENERGIES = 2;
const LINES_PER_SLICE = 16;
const DRAIN_MS = 3_000;
const EXIT_MS = 8_000;

const children: ChildProcess[] = [];
const dirs: string[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Deterministic, distinct per portal, line, energy and pixel, so a misplaced or lost line cannot go unnoticed. */
function sliceValues(portal: number, firstLine: number): Uint16Array {
  const v = new Uint16Array(LINES_PER_SLICE * ENERGIES * PIXELS);
  for (let l = 0; l < LINES_PER_SLICE; l++) {
    for (let i = 0; i < ENERGIES * PIXELS; i++) v[l * ENERGIES * PIXELS + i] = (((firstLine + l) * 131 + i * 7 + portal * 1009) % 60_000) + 500;
  }
  return v;
}

class StreamingPortal {
  /** Lines [0, acked) are acknowledged by the gateway (cumulative ack). */
  ackedSeq = -1;
  seq = 0;

  constructor(
    readonly portal: RawPortal,
    readonly index: number,
  ) {
    portal.ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      const m = JSON.parse(data.toString()) as GatewayMessage;
      if (m.type === 'ack') this.ackedSeq = Math.max(this.ackedSeq, m.seq);
    });
  }

  sendSlice(): void {
    const firstLine = this.seq * LINES_PER_SLICE;
    this.portal.binary(
      encodeSliceFrame(
        { kind: SliceKind.Image, energies: ENERGIES, streamId: 1, seq: this.seq, firstLine, pixels: PIXELS, acquiredAtUs: 0n },
        sliceValues(this.index, firstLine),
      ),
    );
    this.seq++;
  }

  async sendAndWaitAck(slices: number): Promise<void> {
    for (let i = 0; i < slices; i++) this.sendSlice();
    const until = Date.now() + 10_000;
    while (this.ackedSeq < this.seq - 1) {
      if (Date.now() > until) throw new Error(`portal ${this.index}: acks stopped at seq ${this.ackedSeq} of ${this.seq - 1}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

function expectLinesOnDisk(store: ScanStore, scanId: string, portal: number, slices: number): void {
  const raw = readFileSync(store.rawPath(scanId));
  const bytesPerSlice = LINES_PER_SLICE * ENERGIES * PIXELS * 2;
  expect(raw.byteLength).toBeGreaterThanOrEqual(slices * bytesPerSlice);
  for (let s = 0; s < slices; s++) {
    const expected = Buffer.from(sliceValues(portal, s * LINES_PER_SLICE).buffer);
    const stored = raw.subarray(s * bytesPerSlice, (s + 1) * bytesPerSlice);
    if (!stored.equals(expected)) throw new Error(`scan ${scanId}: slice ${s} (lines ${s * LINES_PER_SLICE}..) differs on disk`);
  }
}

describe('scanline serve: SIGTERM mid-scan', () => {
  it('drains open scans, refuses new ones, keeps every acknowledged slice and exits within the timeout', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'scanline-shutdown-'));
    dirs.push(dir);
    // The portals' identities, made on the data directory before the gateway starts (as `scanline portal add` does).
    const ids = openTestIdentity(dir);
    const credentials = [1, 2].map((i) => ids.portalCredential(`shutdown-${i}`));
    ids.close();
    const child = spawn(process.execPath, [BIN, 'serve', '--port', '0', '--data-dir', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        ...process.env,
        SCANLINE_INFERENCE_ENABLED: 'false',
        SCANLINE_SHUTDOWN_DRAIN_TIMEOUT_MS: String(DRAIN_MS),
        SCANLINE_SHUTDOWN_EXIT_TIMEOUT_MS: String(EXIT_MS),
      },
    });
    children.push(child);
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    const exited = new Promise<{ code: number | null; at: number }>((resolve) => child.on('exit', (code) => resolve({ code, at: Date.now() })));
    const until = Date.now() + 30_000;
    let port = 0;
    while (port === 0) {
      const m = /"port":(\d+),.*"msg":"gateway ready"/.exec(out);
      if (m) port = Number(m[1]);
      else if (Date.now() > until || child.exitCode !== null) throw new Error(`gateway did not start:\n${out}`);
      else await new Promise((r) => setTimeout(r, 50));
    }
    const url = `ws://127.0.0.1:${port}/v1/portal`;

    const portals = await Promise.all(
      [1, 2].map(
        async (i) => new StreamingPortal(await RawPortal.hello(url, `shutdown-${i}`, { pixels: PIXELS, energies: ENERGIES }, { token: credentials[i - 1] }), i),
      ),
    );
    const [a, b] = portals;
    const scanIds: string[] = [];
    for (const p of portals) {
      p.portal.json({ type: 'scan.start', streamId: 1 });
      const accepted = (await p.portal.next((m) => m.type === 'scan.accepted')) as GatewayMessage & { scanId: string };
      scanIds.push(accepted.scanId);
      await p.sendAndWaitAck(8);
    }

    const signalledAt = Date.now();
    child.kill('SIGTERM');
    for (const p of portals) {
      const draining = (await p.portal.next((m) => m.type === 'draining')) as GatewayMessage & { deadlineMs: number };
      expect(draining.deadlineMs).toBe(DRAIN_MS);
    }
    // Open scans still take frames; new scans are refused.
    await a.sendAndWaitAck(8);
    await b.sendAndWaitAck(4);
    const refused = await a.portal.expectError(() => a.portal.json({ type: 'scan.start', streamId: 2 }));
    expect(refused.code).toBe('SCANLINE_ERR_GATEWAY_DRAINING');
    a.portal.json({ type: 'scan.end', streamId: 1, totalLines: a.seq * LINES_PER_SLICE });
    const completed = (await a.portal.next((m) => m.type === 'scan.completed')) as GatewayMessage & { lines: number; gaps: unknown[] };
    expect(completed).toMatchObject({ scanId: scanIds[0], lines: 16 * LINES_PER_SLICE, gaps: [] });
    // B never ends its scan: it is aborted when the drain window closes.
    const aborted = (await b.portal.next((m) => m.type === 'scan.aborted', DRAIN_MS + 5_000)) as GatewayMessage & { reason: string };
    expect(aborted.reason).toMatch(/shut down/);

    const { code, at } = await exited;
    expect(code).toBe(0);
    const elapsed = at - signalledAt;
    expect(elapsed).toBeGreaterThanOrEqual(DRAIN_MS - 200);
    expect(elapsed).toBeLessThan(EXIT_MS);
    expect(out).toContain('"msg":"gateway closed"');

    const store = ScanStore.open(dir);
    try {
      const recA = store.getScan(scanIds[0])!;
      const recB = store.getScan(scanIds[1])!;
      expect(recA).toMatchObject({ state: 'completed', lines: 16 * LINES_PER_SLICE, gaps: [] });
      expect(recB).toMatchObject({ state: 'aborted', lines: 12 * LINES_PER_SLICE, gaps: [] });
      expectLinesOnDisk(store, scanIds[0], 1, a.ackedSeq + 1);
      expectLinesOnDisk(store, scanIds[1], 2, b.ackedSeq + 1);
      expect(a.ackedSeq + 1).toBe(16);
      expect(b.ackedSeq + 1).toBe(12);
    } finally {
      store.close();
    }
  }, 60_000);
});
