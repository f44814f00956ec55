/**
 * Who looked at what: a scan's image and results read over HTTP, and the scan shown on an operator screen, are
 * `scan.read` entries of the audit trail under the reading account, once per account, scan and kind of read in
 * ten minutes (a program polling results is one act, not one row per poll).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReadAudit } from '../../src/identity/index.js';
import { SliceKind, encodeSliceFrame } from '../../src/protocol/index.js';
import { openScreen } from '../operator/helpers.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { RawPortal } from '../helpers/raw-portal.js';

describe('reads of scans in the audit trail', () => {
  let gw: TestGateway;
  let scanId = '';

  beforeAll(async () => {
    gw = await startTestGateway();
    const p = await RawPortal.hello(gw.portalUrl, 'lane-read', { pixels: 32, energies: 2 });
    p.json({ type: 'scan.start', streamId: 1 });
    scanId = ((await p.next((m) => m.type === 'scan.accepted')) as { scanId: string }).scanId;
    for (let seq = 0; seq < 4; seq++) {
      p.binary(
        encodeSliceFrame(
          { kind: SliceKind.Image, energies: 2, streamId: 1, seq, firstLine: seq * 16, pixels: 32, acquiredAtUs: 0n },
          new Uint16Array(16 * 64).fill(20_000),
        ),
      );
    }
    p.json({ type: 'scan.end', streamId: 1, totalLines: 64 });
    await p.next((m) => m.type === 'scan.completed');
    p.close();
  });

  afterAll(async () => {
    await gw?.dispose();
  });

  it('records image reads and a scan shown on a screen once per account and scan', async () => {
    for (let i = 0; i < 3; i++) {
      const res = await fetch(`${gw.httpUrl}/v1/scans/${scanId}/image?energy=low&format=png16`, { headers: gw.authHeaders('viewer') });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    const screen = await openScreen(gw, 'desk-7', 'viewer');
    screen.send({ type: 'subscribe', scans: [scanId] });
    await screen.next((r) => r.json?.type === 'scan.snapshot');
    screen.close();
    const reads = gw.identity.listAudit({ limit: 20, action: 'scan.read' }).map((e) => [e.actor, e.target, e.details.what]);
    expect(reads).toEqual([
      ['desk-7', scanId, 'screen'],
      ['viewer-bot', scanId, 'image'],
    ]);
  });

  it('writes a read again once the window has passed, and forgets the oldest reads beyond its bound', () => {
    const written: string[] = [];
    let now = 0;
    const reads = new ReadAudit({ record: (e) => written.push(`${e.actor} ${e.target} ${String(e.details.what)}`) }, 1000, () => now);
    reads.read('a', 's1', 'results', null);
    now = 999;
    reads.read('a', 's1', 'results', null);
    reads.read('a', 's1', 'image', null);
    reads.read('b', 's1', 'results', null);
    now = 1000;
    reads.read('a', 's1', 'results', null);
    expect(written).toEqual(['a s1 results', 'a s1 image', 'b s1 results', 'a s1 results']);
  });
});
