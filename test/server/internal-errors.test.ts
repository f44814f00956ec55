/**
 * A failure nobody anticipated (a plain Error from deep inside a handler) is SCANLINE_ERR_INTERNAL at every
 * boundary that answers a client: the client gets the code and the generic message, never the exception's text,
 * stack or paths; the gateway logs it once, at error level, with the stack. Before, HTTP borrowed
 * SCANLINE_ERR_STORAGE_READ and the portal path SCANLINE_ERR_STITCH_FAILED or SCANLINE_ERR_PROTO_INVALID.
 * The failures are provoked by replacing one method of a live object of the real gateway for one request.
 */
import { Writable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../src/errors/index.js';
import type { ActiveScan } from '../../src/ingest/active-scan.js';
import { SliceKind, encodeSliceFrame } from '../../src/protocol/index.js';
import { createRootLogger } from '../../src/log/index.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { RawPortal } from '../helpers/raw-portal.js';

const SECRET = 'disk I/O error at /var/lib/scanline-secret/scans.db';
const GENERIC = ERROR_CODES.SCANLINE_ERR_INTERNAL.message;
const PIXELS = 16;

interface LogLine {
  level: string;
  msg: string;
  err?: { code?: string; message?: string; stack?: string };
  [key: string]: unknown;
}

describe('unexpected failures answer SCANLINE_ERR_INTERNAL', () => {
  const lines: LogLine[] = [];
  let gw: TestGateway;
  const restore: Array<() => void> = [];

  /** Replaces `obj[name]` with a function that throws a plain Error naming a path, until the test ends. */
  function breakMethod<T extends object>(obj: T, name: keyof T & string): void {
    const own = Object.hasOwn(obj, name);
    const original = obj[name];
    (obj as Record<string, unknown>)[name] = () => {
      throw new Error(SECRET);
    };
    restore.push(() => {
      if (own) (obj as Record<string, unknown>)[name] = original;
      else delete (obj as Record<string, unknown>)[name];
    });
  }

  function internalLogs(): LogLine[] {
    return lines.filter((l) => l.err?.code === 'SCANLINE_ERR_INTERNAL');
  }

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString('utf8').split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as LogLine);
        done();
      },
    });
    gw = await startTestGateway({ log: { level: 'info' } }, { log: createRootLogger('info', sink) });
  });
  afterEach(() => {
    for (const r of restore.splice(0)) r();
    lines.length = 0;
  });
  afterAll(async () => {
    await gw?.dispose();
  });

  async function waitForLog(): Promise<LogLine[]> {
    for (let i = 0; i < 100 && internalLogs().length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 50));
    return internalLogs();
  }

  function expectLoggedOnceWithStack(logs: LogLine[]): void {
    expect(logs).toHaveLength(1);
    expect(logs[0].level).toBe('error');
    expect(logs[0].err?.stack).toContain(SECRET);
    expect(logs[0].err?.stack).toMatch(/\n\s+at /);
  }

  it('HTTP: a route whose handler throws a plain Error answers 500 with the code and no internals', async () => {
    breakMethod(gw.store, 'listScans');
    const res = await fetch(`${gw.httpUrl}/v1/scans`, { headers: gw.authHeaders() });
    const text = await res.text();
    expect(res.status).toBe(500);
    expect(JSON.parse(text)).toEqual({ error: { code: 'SCANLINE_ERR_INTERNAL', message: GENERIC } });
    expect(text).not.toContain('scanline-secret');
    expect(text).not.toContain('disk I/O');
    const logs = await waitForLog();
    expectLoggedOnceWithStack(logs);
    expect(logs[0].request).toBe('GET /v1/scans');
    // The gateway carries on.
    for (const r of restore.splice(0)) r();
    expect((await fetch(`${gw.httpUrl}/v1/scans`, { headers: gw.authHeaders() })).status).toBe(200);
  });

  it('HTTP: coded errors keep their code and are not logged as failures', async () => {
    const res = await fetch(`${gw.httpUrl}/v1/scans/no-such-scan`, { headers: gw.authHeaders() });
    expect(res.status).toBe(404);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('SCANLINE_ERR_SCAN_UNKNOWN');
    expect(lines.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('portal, binary frame: an unexpected failure is an error frame with the code, and the connection carries on', async () => {
    const p = await RawPortal.hello(gw.portalUrl, 'lane-internal-bin', { pixels: PIXELS, energies: 1 });
    p.json({ type: 'scan.start', streamId: 1 });
    await p.next((m) => m.type === 'scan.accepted');
    const scan = gw.ingest.liveScans().find((s) => s.portalId === 'lane-internal-bin');
    expect(scan).toBeDefined();
    // The scan's state machine behind the read-only view (the failure is planted inside ingest).
    breakMethod(scan as ActiveScan, 'acceptFrame');
    const frame = (seq: number): Uint8Array =>
      encodeSliceFrame(
        { kind: SliceKind.Image, energies: 1, streamId: 1, seq, firstLine: seq * 4, pixels: PIXELS, acquiredAtUs: 0n },
        new Uint16Array(4 * PIXELS).fill(1000),
      );
    const e = await p.expectError(() => p.binary(frame(0)));
    expect(e).toEqual({ type: 'error', code: 'SCANLINE_ERR_INTERNAL', message: GENERIC });
    expect(JSON.stringify(p.messages)).not.toContain('scanline-secret');
    expectLoggedOnceWithStack(await waitForLog());
    for (const r of restore.splice(0)) r();
    p.binary(frame(0));
    expect(await p.next((m) => m.type === 'ack')).toMatchObject({ type: 'ack', streamId: 1, seq: 0 });
    p.close();
    await p.waitClose();
  });

  it('portal, control message: an unexpected failure is not reported as the portal sending an invalid message', async () => {
    const p = await RawPortal.hello(gw.portalUrl, 'lane-internal-text', { pixels: PIXELS, energies: 1 });
    breakMethod(gw.store, 'hasScan');
    const e = await p.expectError(() => p.json({ type: 'scan.start', streamId: 1 }));
    expect(e).toEqual({ type: 'error', code: 'SCANLINE_ERR_INTERNAL', message: GENERIC });
    expect(JSON.stringify(p.messages)).not.toContain('scanline-secret');
    expectLoggedOnceWithStack(await waitForLog());
    p.close();
    await p.waitClose();
  });
});
