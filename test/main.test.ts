/**
 * What a new operator reads when the gateway starts: the "gateway ready" line names the operator screen's URL, and
 * `scanline help` says where the screen is.
 */
import { spawnSync } from 'node:child_process';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRootLogger } from '../src/log/index.js';
import { startTestGateway, type TestGateway } from './helpers/gateway.js';

const BIN = new URL('../bin/scanline.js', import.meta.url).pathname;

describe('gateway ready', () => {
  const lines: Array<Record<string, unknown>> = [];
  let gw: TestGateway;
  beforeAll(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString('utf8').split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
        done();
      },
    });
    gw = await startTestGateway({ log: { level: 'info' } }, { log: createRootLogger('info', sink, 'json') });
  });
  afterAll(async () => {
    await gw?.dispose();
  });

  it('names the operator screen URL, which serves the screen', async () => {
    await new Promise((r) => setTimeout(r, 50)); // pino writes asynchronously
    const ready = lines.find((l) => l.msg === 'gateway ready');
    expect(ready?.operatorScreen).toBe(`http://127.0.0.1:${gw.port}/`);
    const res = await fetch(ready?.operatorScreen as string);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/html/);
  });

  it('scanline help says where the operator screen is', () => {
    const r = spawnSync(process.execPath, [BIN, 'help'], { encoding: 'utf8' });
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('The operator screen is served at http://HOST:PORT/');
  });
});
