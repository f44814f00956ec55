/**
 * GET /v1/scans/:scanId/image with view=: the material (or grey) preview with the machine's suggestions and threat
 * boxes burned in, from a real gateway with the demo models and one simulated truck; the raw 16-bit image stays.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScanResultsReport } from '../../src/protocol/index.js';
import { labelRows, overlaySvg } from '../../src/server/operator-image.js';
import { simulatePortals } from '../../tools/simulator/index.js';
import { getJson, startTestGateway, type TestGateway } from '../helpers/gateway.js';

describe('images for people', () => {
  let gw: TestGateway;
  let scanId = '';
  let lines = 0;

  beforeAll(async () => {
    gw = await startTestGateway({ inference: { enabled: true } });
    const sim = await simulatePortals({
      url: gw.portalUrl,
      portals: 1,
      credentials: gw.simulatorCredentials(1),
      trucks: 1,
      seed: 5200,
      lineRate: 1000,
      truck: { categories: ['tobacco'], threats: ['narcotics', 'firearm'], mismatchProbability: 1, realism: 'hard' },
    });
    scanId = sim.scans[0].scanId;
    lines = sim.scans[0].lines;
    const until = Date.now() + 60_000;
    while ((await getJson(gw, `/v1/scans/${scanId}/results`)).body.status !== 'final') {
      if (Date.now() > until) throw new Error('results not final');
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 300)); // preview.png is written once the last strip is out
  }, 120_000);

  afterAll(async () => {
    await gw?.close(5_000);
  });

  const get = async (query: string): Promise<{ status: number; type: string | null; body: Buffer; headers: Headers }> => {
    const res = await fetch(`${gw.httpUrl}/v1/scans/${encodeURIComponent(scanId)}/image?${query}`, { headers: gw.authHeaders() });
    return { status: res.status, type: res.headers.get('content-type'), body: Buffer.from(await res.arrayBuffer()), headers: res.headers };
  };

  it('renders the material view with suggestions and threat boxes burned in, in each format', async () => {
    const { default: sharp } = await import('sharp');
    for (const [format, type] of [
      ['webp', 'image/webp'],
      ['jpeg', 'image/jpeg'],
      ['png', 'image/png'],
    ] as const) {
      const r = await get(`view=material&format=${format}`);
      expect([r.status, r.type, r.headers.get('x-scanline-overlays'), r.headers.get('x-scanline-lines')]).toEqual([200, type, 'burned-in', String(lines)]);
      expect(await sharp(r.body).metadata()).toMatchObject({ format, width: Math.ceil(lines / 2), height: 512 });
    }
    // Overlays change pixels; the grey view has no colour.
    const plain = await sharp((await get('view=material&format=png&overlays=0')).body)
      .raw()
      .toBuffer();
    const burned = await sharp((await get('view=material&format=png')).body)
      .raw()
      .toBuffer();
    expect(plain.equals(burned)).toBe(false);
    const grey = await sharp((await get('view=grey&format=png&overlays=0')).body)
      .raw()
      .toBuffer({ resolveWithObject: true });
    let coloured = 0;
    for (let i = 0; i < grey.data.length; i += grey.info.channels) if (grey.data[i] !== grey.data[i + 1] || grey.data[i] !== grey.data[i + 2]) coloured++;
    expect(coloured).toBe(0);
  });

  it('keeps the raw 16-bit image and refuses bad parameters with a coded error', async () => {
    const raw = await get('energy=high&format=png16');
    expect([raw.status, raw.type, raw.headers.get('x-scanline-lines')]).toEqual([200, 'image/png', String(lines)]);
    for (const q of ['view=colour', 'view=material&format=png16', 'view=grey&overlays=yes']) {
      const r = await get(q);
      expect([r.status, JSON.parse(r.body.toString()).error.code]).toEqual([400, 'SCANLINE_ERR_HTTP_BAD_QUERY']);
    }
  });
});

describe('burned-in overlay labels', () => {
  it('puts a label on the first row where it does not overlap the labels before it', () => {
    expect(
      labelRows([
        { x: 0, width: 100 },
        { x: 50, width: 100 },
        { x: 120, width: 10 },
        { x: 160, width: 10 },
        { x: 155, width: 10 },
      ]),
    ).toEqual([0, 1, 0, 0, 1]);
  });

  it('stacks the top-3 labels of neighbouring segments instead of drawing one over the other', async () => {
    const { default: sharp } = await import('sharp');
    const top3 = (name: string) => [
      { label: name, name: `${name} products`, hsCodes: ['2402'], probability: 0.61 },
      { label: 'empty', name: 'Empty cargo bay', hsCodes: [], probability: 0.3 },
      { label: 'clothing', name: 'Clothing', hsCodes: ['6203'], probability: 0.05 },
    ];
    const segment = (id: string, startLine: number, endLine: number) => ({ id, startLine, endLine, top3: top3(id), confidence: 0.61, final: true });
    // Segments 64 preview columns wide: each label (about 60 characters) is far wider than its segment.
    const report = {
      goods: { segments: [segment('a', 0, 128), segment('b', 128, 256), segment('c', 2048, 2176)] },
      threats: [{ id: 't0', name: 'Firearm', probability: 0.97, box: { lineStart: 300, lineEnd: 340, pixelStart: 100, pixelEnd: 140 } }],
    } as unknown as ScanResultsReport;
    const svg = overlaySvg(1200, 512, 2, report);
    const rows = [...svg.matchAll(/<text x="([\d.]+)" y="([\d.]+)"[^>]*>([^<]*)</g)].map((m) => ({ x: Number(m[1]), y: Number(m[2]), text: m[3] }));
    expect(rows.map((r) => r.text.split(' ')[0])).toEqual(['a', 'b', 'c', 'Firearm']);
    expect(rows[1].y).toBeGreaterThan(rows[0].y); // b starts under a's label: next row
    expect(rows[2].y).toBe(rows[0].y); // c is clear of both: first row again
    expect(await sharp(Buffer.from(svg)).metadata()).toMatchObject({ format: 'svg', width: 1200, height: 512 });
  });
});
