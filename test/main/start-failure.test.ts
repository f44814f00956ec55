/**
 * The composition root owns the lifecycle: a start that fails half-way (here: the port is taken, after storage and
 * the inference workers exist) closes what it created, last created first, and leaves no file of the data
 * directory open; two gateways in one process share nothing that one's close could break in the other.
 */
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/index.js';
import { startGateway } from '../../src/main.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';

/** Open file descriptors of this process that point under `dir` (Linux /proc). */
function openFilesUnder(dir: string): string[] {
  return readdirSync('/proc/self/fd').flatMap((fd) => {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      return target.startsWith(dir) ? [target] : [];
    } catch {
      return [];
    }
  });
}

describe('startGateway', () => {
  const started: TestGateway[] = [];
  afterAll(async () => {
    for (const g of started) await g.dispose();
  });

  it('closes what it created, in reverse order, when a later step fails', async () => {
    const first = await startTestGateway();
    started.push(first);
    const dir = mkdtempSync(join(tmpdir(), 'scanline-start-failure-'));
    const lines: Array<{ msg: string; resource?: string }> = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line));
        done();
      },
    });
    const config = resolveConfig({
      server: { host: '127.0.0.1', port: first.port },
      storage: { dataDir: dir },
      inference: { enabled: true, workers: 1, intraOpThreads: 1, executionProviders: ['cpu'] },
    });
    await expect(startGateway(config, { log: pino({ level: 'debug' }, sink) })).rejects.toMatchObject({ code: 'SCANLINE_ERR_SERVER_LISTEN' });
    const closed = lines.filter((l) => l.msg === 'closed').map((l) => l.resource);
    expect(closed).toEqual(['metrics', 'dicos push', 'retention', 'operator', 'ingest', 'inference', 'disk monitor', 'identity', 'storage']);
    expect(openFilesUnder(dir)).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
    // The first gateway is untouched by the other's failed start and close.
    const res = await fetch(`${first.httpUrl}/livez`);
    expect(res.status).toBe(200);
  });

  it('runs two gateways in one process that share nothing: closing one leaves the other serving', async () => {
    const a = await startTestGateway();
    const b = await startTestGateway();
    started.push(b);
    await a.close(0);
    expect(a.phase()).toBe('closed');
    expect(b.phase()).toBe('ready');
    expect((await fetch(`${b.httpUrl}/livez`)).status).toBe(200);
  });

  it('closes every resource when a drain step fails, and says so', async () => {
    const g = await startTestGateway();
    const dir = g.dataDir;
    g.operator.close = async () => {
      throw new Error('screens could not be told');
    };
    await expect(g.close(0)).rejects.toThrow('screens could not be told');
    expect(g.phase()).toBe('closed');
    expect(() => g.store.listScans()).toThrow(); // the database is closed
    expect(openFilesUnder(dir)).toEqual([]);
    rmSync(dir, { recursive: true, force: true });
  });

  it('names its URLs with an IPv6 host in brackets', async (ctx) => {
    let g: TestGateway;
    try {
      g = await startTestGateway({ server: { host: '::1', port: 0 } });
    } catch (err) {
      if ((err as { code?: string }).code === 'SCANLINE_ERR_SERVER_LISTEN') return ctx.skip('this machine has no IPv6 loopback');
      throw err;
    }
    started.push(g);
    expect(g.httpUrl).toBe(`http://[::1]:${g.port}`);
    expect(g.portalUrl).toBe(`ws://[::1]:${g.port}/v1/portal`);
    expect((await fetch(`${g.httpUrl}/livez`)).status).toBe(200);
  });
});
