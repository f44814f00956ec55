/**
 * Logging contract (src/log): JSON lines from one root pino logger, a `module` on every line a stage writes, and
 * nothing per slice at info level: a scan of 200 slices logs exactly as many info lines as a scan of 10.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SliceKind, encodeSliceFrame } from '../../src/protocol/index.js';
import { createRootLogger } from '../../src/log/index.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { RawPortal } from '../helpers/raw-portal.js';

const PIXELS = 32;
const LINES = 8;

interface LogLine {
  level: string;
  module?: string;
  msg: string;
  service: string;
  time: string;
}

describe('gateway logs', () => {
  const lines: LogLine[] = [];
  let gw: TestGateway;

  beforeAll(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString('utf8').split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as LogLine);
        done();
      },
    });
    gw = await startTestGateway({ log: { level: 'info' } }, { log: createRootLogger('info', sink) });
  });
  afterAll(async () => {
    await gw?.dispose();
  });

  async function scan(portalId: string, slices: number): Promise<LogLine[]> {
    const from = lines.length;
    const p = await RawPortal.hello(gw.portalUrl, portalId, { pixels: PIXELS, energies: 2 });
    p.json({ type: 'scan.start', streamId: 1 });
    await p.next((m) => m.type === 'scan.accepted');
    for (let seq = 0; seq < slices; seq++) {
      const values = new Uint16Array(LINES * 2 * PIXELS).fill(1000 + seq);
      p.binary(encodeSliceFrame({ kind: SliceKind.Image, energies: 2, streamId: 1, seq, firstLine: seq * LINES, pixels: PIXELS, acquiredAtUs: 0n }, values));
    }
    await p.next((m) => m.type === 'ack' && m.seq === slices - 1, 20_000);
    p.json({ type: 'scan.end', streamId: 1, totalLines: slices * LINES });
    await p.next((m) => m.type === 'scan.completed', 20_000);
    p.close();
    await p.waitClose();
    await new Promise((r) => setTimeout(r, 100));
    return lines.slice(from);
  }

  it('writes the same info lines for 10 slices as for 200 (nothing per slice)', async () => {
    const short = await scan('log-short', 10);
    const long = await scan('log-long', 200);
    const messages = (ls: LogLine[]) => ls.map((l) => `${l.level} ${l.module} ${l.msg}`);
    expect(messages(long)).toEqual(messages(short));
    expect(messages(short)).toEqual([
      'info ingest portal connected',
      'info ingest scan started',
      'info ingest scan completed',
      'info ingest portal disconnected',
    ]);
  });

  it('writes JSON with level, ISO time, service and the module of the stage', () => {
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) {
      expect(l.service).toBe('scanline');
      expect(['trace', 'debug', 'info', 'warn', 'error', 'fatal']).toContain(l.level);
      expect(new Date(l.time).toISOString()).toBe(l.time);
      if (l.msg !== 'gateway ready') expect(l.module).toMatch(/^[a-z-]+$/);
    }
  });
});
