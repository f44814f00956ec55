import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson, startTestGateway, type TestGateway } from '../helpers/gateway.js';

// A malformed percent-escape in a path parameter used to reach decodeURIComponent unguarded inside a uWS handler:
// the URIError ended the whole gateway. Every route with a path parameter must answer it like any unknown id.
describe('path parameters with malformed percent-escapes', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startTestGateway();
  });
  afterAll(async () => {
    await gw?.close(0);
  });

  it.each([
    ['/v1/scans/%E0%A4%A', 'SCANLINE_ERR_SCAN_UNKNOWN'],
    ['/v1/scans/%E0%A4%A/results', 'SCANLINE_ERR_SCAN_UNKNOWN'],
    ['/v1/scans/%E0%A4%A/image', 'SCANLINE_ERR_SCAN_UNKNOWN'],
    ['/v1/references/%E0%A4%A', null],
  ])('GET %s answers with a coded error and the gateway stays up', async (path, code) => {
    const r = await getJson(gw, path);
    expect(r.status).toBeGreaterThanOrEqual(400);
    expect(r.status).toBeLessThan(500);
    expect(typeof r.body.error.code).toBe('string');
    if (code) expect(r.body.error.code).toBe(code);
    expect((await getJson(gw, '/livez')).status).toBe(200);
  });

  it('DELETE /v1/references/%E0%A4%A answers with a coded error and the gateway stays up', async () => {
    const res = await fetch(`${gw.httpUrl}/v1/references/%E0%A4%A`, { method: 'DELETE', headers: gw.authHeaders('supervisor') });
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.status).toBeLessThan(500);
    expect(typeof ((await res.json()) as any).error.code).toBe('string');
    expect((await getJson(gw, '/livez')).status).toBe(200);
  });
});
