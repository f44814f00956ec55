/**
 * scanIds the gateway picks for a scan.start without one (src/ingest/ingest-service.ts): unique, within the
 * protocol's 64 characters whatever the portalId, and drawn again when the random part collides (found by the frame
 * path fuzz, test/fuzz/portal-frames.test.ts: hundreds of scans a second on one lane drew a taken id and got
 * SCANLINE_ERR_SCAN_ID_TAKEN for a scanId they never chose).
 */
import type * as crypto from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type TestGateway, startTestGateway } from '../helpers/gateway.js';
import { RawPortal } from '../helpers/raw-portal.js';

/** randomBytes hands out these buffers first (then the real ones), so a test can make the random part collide. */
const forced: Buffer[] = [];
vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof crypto>();
  const randomBytes = (size: number): Buffer => forced.shift() ?? real.randomBytes(size);
  return { ...real, default: { ...real, randomBytes }, randomBytes };
});

const ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;

async function start(portal: RawPortal, streamId: number): Promise<{ type: string; scanId?: string; code?: string }> {
  const from = portal.messages.length;
  portal.json({ type: 'scan.start', streamId });
  return (await portal.next((m) => (m.type === 'scan.accepted' && m.streamId === streamId) || m.type === 'error', 10_000, from)) as {
    type: string;
    scanId?: string;
    code?: string;
  };
}

describe('gateway-picked scanIds', () => {
  let g: TestGateway;

  beforeAll(async () => {
    g = await startTestGateway();
  });

  afterAll(async () => {
    await g?.dispose();
  });

  it('keep the time and random part within 64 characters for a 64-character portalId', async () => {
    const portalId = `lane-${'x'.repeat(59)}`;
    const portal = await RawPortal.hello(g.portalUrl, portalId, { pixels: 8, energies: 1 });
    const ids: string[] = [];
    for (const streamId of [1, 2, 3]) {
      const m = await start(portal, streamId);
      expect(m.type, JSON.stringify(m)).toBe('scan.accepted');
      ids.push(m.scanId!);
      portal.json({ type: 'scan.abort', streamId, reason: 'test' });
    }
    for (const id of ids) {
      expect(id).toMatch(ID);
      expect(id).toMatch(/^lane-x+-\d{8}T\d{6}Z-[0-9a-f]{6}$/);
    }
    expect(new Set(ids).size).toBe(3);
    portal.close();
  });

  it('are drawn again when the random part gives a taken id', async () => {
    const portal = await RawPortal.hello(g.portalUrl, 'lane-collide', { pixels: 8, energies: 1 });
    forced.push(Buffer.from('abcdef', 'hex'));
    const first = await start(portal, 1);
    expect(first.scanId).toMatch(/-abcdef$/);
    // The same bytes again (within the same second the id would be the same), then other ones.
    forced.push(Buffer.from('abcdef', 'hex'), Buffer.from('abcdef', 'hex'), Buffer.from('012345', 'hex'));
    const second = await start(portal, 2);
    expect(second.type, JSON.stringify(second)).toBe('scan.accepted');
    expect(second.scanId).not.toBe(first.scanId);
    if (second.scanId!.slice(0, -6) === first.scanId!.slice(0, -6)) expect(second.scanId).toMatch(/-012345$/);
    forced.length = 0;
    portal.close();
  });
});
