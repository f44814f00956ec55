/**
 * The operator feed and decisions through the real gateway (uWS, native stitcher, SQLite), fed by the simulator:
 * late joiners get a snapshot then increments that continue it, bad input gets coded errors and changes nothing,
 * decisions are stored apart from the machine results, and scans, decisions and preview images survive a restart.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ImageFrameKind, MAX_WATCHED_PORTALS } from '../../src/protocol/index.js';
import { simulatePortals } from '../../tools/simulator/index.js';
import { getJson, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { type TestScreen, openScreen, operatorUrl } from './helpers.js';

const CONFIG = { operator: { maxOperators: 4 } };

/** POSTs JSON as the program account `as` (an officer unless it exists with another role); `as` null: no credentials. */
async function post(
  gw: TestGateway,
  path: string,
  body: unknown,
  as: string | null = 'o1',
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any }> {
  const res = await fetch(`${gw.httpUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(as !== null ? { authorization: `Bearer ${gw.accountToken(as)}` } : {}), ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** Status and error code of a refused WebSocket upgrade. */
function refusal(url: string, headers: Record<string, string> = {}): Promise<{ status: number; code: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on('open', () => reject(new Error(`upgrade to ${url} was accepted`)));
    ws.on('error', () => undefined);
    ws.on('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, code: JSON.parse(Buffer.concat(chunks).toString()).error.code }));
    });
  });
}

describe('operator feed and decisions', () => {
  const dir = mkdtempSync(join(tmpdir(), 'scanline-operator-'));
  let gw: TestGateway;
  let scanId = '';
  let totalLines = 0;
  let late: TestScreen;
  let early: TestScreen;

  beforeAll(async () => {
    gw = await startTestGateway(CONFIG, {}, dir);
    early = await openScreen(gw, 'early-1');
    early.send({ type: 'subscribe', portals: ['*'] });
    // One truck in real time at 2000 lines/s (about 2 s): the late screen joins while it is in the portal.
    const sim = simulatePortals({ url: gw.portalUrl, portals: 1, credentials: gw.simulatorCredentials(1), trucks: 1, seed: 11, lineRate: 2000 });
    const until = Date.now() + 20_000;
    while ((gw.ingest.liveScans()[0]?.lines ?? 0) < 800) {
      if (Date.now() > until) throw new Error('the simulated scan did not reach 800 lines');
      await new Promise((r) => setTimeout(r, 10));
    }
    late = await openScreen(gw, 'late-1');
    late.send({ type: 'subscribe', portals: ['sim-1'] });
    const summary = await sim;
    expect(summary.scansCompleted).toBe(1);
    scanId = summary.scans[0].scanId;
    totalLines = summary.scans[0].lines;
    await late.next((r) => r.json?.type === 'scan.completed');
    await early.next((r) => r.json?.type === 'scan.completed');
  }, 60_000);

  afterAll(async () => {
    early?.close();
    late?.close();
    await gw?.close(2_000);
    rmSync(dir, { recursive: true, force: true });
  });

  it('welcomes a screen with the protocol version, its operator id and the lanes', () => {
    const welcome = early.json('welcome')[0];
    expect(welcome).toMatchObject({ protocol: 1, operatorId: 'early-1', lanes: [] });
    expect(late.json('welcome')[0].lanes.map((l: any) => l.portalId)).toEqual(['sim-1']);
  });

  it('gives a late joiner a snapshot of the image so far, then strips that continue it to the last line', async () => {
    const types = late.types();
    const snapshotAt = types.indexOf('scan.snapshot');
    expect(snapshotAt).toBeGreaterThan(-1);
    expect(types.indexOf('scan.completed')).toBeGreaterThan(snapshotAt);
    const snapshot = late.json('scan.snapshot')[0];
    expect(snapshot).toMatchObject({ resync: false, scan: { scanId, portalId: 'sim-1', state: 'receiving' }, results: null, decisions: [] });
    expect(snapshot.preview.width).toBeGreaterThan(0);
    const image = late.images(ImageFrameKind.Snapshot)[0];
    expect(image.header).toMatchObject({ scanId, line: 0, width: snapshot.preview.width, height: 512, seq: snapshot.preview.seq, downsample: 2 });
    // 800 lines were received before the screen joined; the stitched image trails the received lines by less than
    // one tile stride (128 lines) plus a frame, since a frame that completes a tile column is stitched at once.
    expect(image.header.lines).toBeGreaterThanOrEqual(800 - 128 - 16);
    // Strips after the snapshot: every seq once, in order, covering the lines from the snapshot's end to the scan's end.
    const strips = late.images(ImageFrameKind.Strip).filter((s) => s.header.seq > image.header.seq);
    expect(strips.map((s) => s.header.seq)).toEqual(strips.map((_, i) => image.header.seq + 1 + i));
    let covered = image.header.lines;
    for (const s of strips) {
      expect(s.header.line).toBe(covered);
      covered = s.header.line + s.header.lines;
    }
    expect(covered).toBe(totalLines);
    // The early screen saw the scan start (an empty first view) and every strip from seq 1.
    expect(early.json('scan.started')[0].scan.scanId).toBe(scanId);
    expect(early.images(ImageFrameKind.Strip).map((s) => s.header.seq)).toEqual(
      strips.length > 0 ? early.images(ImageFrameKind.Strip).map((_, i) => i + 1) : [],
    );
    expect(early.images(ImageFrameKind.Strip).at(-1)?.header.seq).toBe(strips.at(-1)?.header.seq ?? image.header.seq);
    expect(gw.operator.stats()).toMatchObject({ operators: 2, stripsCoalesced: 0, disconnectedSlow: 0 });
  });

  it('stores the material preview of the ended scan as a PNG file of the scan', async () => {
    await new Promise((r) => setTimeout(r, 200));
    const png = await gw.store.getScanImage(scanId, 'preview.png');
    expect(png).toBeDefined();
    const meta = await sharp(png as Buffer).metadata();
    expect(meta).toMatchObject({ format: 'png', width: Math.ceil(totalLines / 2), height: 512 });
  });

  it('forgets an ended scan per screen once its preview is stored (what it keeps per screen stays bounded)', () => {
    // Two screens watched the scan live; it ended and its preview is stored: neither screen needs it any more.
    expect(gw.operator.stats()).toMatchObject({ operators: 2, trackedScans: 0 });
  });

  it('answers bad feed messages with coded errors and keeps the connection', async () => {
    const s = await openScreen(gw, 'checker');
    s.send('not json');
    s.send({ type: 'subscribe', portals: [42], extra: 1 });
    s.send({ type: 'dance' });
    s.send({ type: 'hello', protocol: 9 });
    s.send({ type: 'subscribe', scans: ['no-such-scan'] });
    s.send({ type: 'resync', scanId });
    await s.next((r) => r.json?.type === 'error' && r.json.code === 'SCANLINE_ERR_OPERATOR_MESSAGE' && /resync/.test(r.json.message));
    const errors = s.json('error');
    expect(errors.map((e) => e.code)).toEqual([
      'SCANLINE_ERR_OPERATOR_MESSAGE',
      'SCANLINE_ERR_OPERATOR_MESSAGE',
      'SCANLINE_ERR_OPERATOR_MESSAGE',
      'SCANLINE_ERR_OPERATOR_VERSION',
      'SCANLINE_ERR_SCAN_UNKNOWN',
      'SCANLINE_ERR_OPERATOR_MESSAGE',
    ]);
    expect(errors[1].problems).toHaveLength(2);
    // A binary message and one beyond operator.maxMessageBytes (16 KiB) are refused the same way, and counted.
    const bad = gw.operator.stats().badMessages;
    s.ws.send(Buffer.from([1, 2, 3]));
    s.send({ type: 'subscribe', portals: ['x'.repeat(60)], scans: Array.from({ length: 200 }, (_, i) => `scan-${i}-${'y'.repeat(80)}`) });
    await s.next((r) => r.json?.type === 'error' && r.json.maxMessageBytes === 16 * 1024);
    expect(
      s
        .json('error')
        .slice(6)
        .map((e) => [e.code, /binary|exceeds/.exec(e.message)?.[0]]),
    ).toEqual([
      ['SCANLINE_ERR_OPERATOR_MESSAGE', 'binary'],
      ['SCANLINE_ERR_OPERATOR_MESSAGE', 'exceeds'],
    ]);
    expect(gw.operator.stats().badMessages).toBe(bad + 2);
    // Lanes beyond MAX_WATCHED_PORTALS are refused by name; the others stay subscribed.
    const lanes = Array.from({ length: MAX_WATCHED_PORTALS }, (_, i) => `lane-${i}`);
    s.send({ type: 'subscribe', portals: lanes });
    await s.next((r) => r.json?.type === 'subscribed' && r.json.portals.length === MAX_WATCHED_PORTALS);
    s.send({ type: 'subscribe', portals: ['one-too-many'] });
    const refused = (await s.next((r) => r.json?.type === 'error' && Array.isArray(r.json.refused))).json;
    expect(refused).toMatchObject({ code: 'SCANLINE_ERR_OPERATOR_MESSAGE', refused: ['one-too-many'] });
    s.send({ type: 'unsubscribe', portals: lanes });
    await s.next((r) => r.json?.type === 'subscribed' && r.json.portals.length === 0);
    expect(s.closeCode).toBeNull();
    // Still usable: a history scan gives its stored snapshot and image.
    s.send({ type: 'subscribe', scans: [scanId] });
    const snap = (await s.next((r) => r.json?.type === 'scan.snapshot')).json;
    expect(snap.scan).toMatchObject({ scanId, state: 'completed', lines: totalLines });
    const img = await s.next((r) => r.image?.header.kind === ImageFrameKind.Snapshot);
    expect(img.image?.header).toMatchObject({ scanId, line: 0, lines: totalLines, width: Math.ceil(totalLines / 2) });
    s.close();
  });

  it('refuses a feed without valid credentials or from a foreign page, and screens beyond operator.maxOperators', async () => {
    const url = operatorUrl(gw.port);
    expect(await refusal(url)).toEqual({ status: 401, code: 'SCANLINE_ERR_AUTH_REQUIRED' });
    // The id the client used to choose (?operator=) no longer names anyone.
    expect(await refusal(`${url}?operator=officer-17`)).toEqual({ status: 401, code: 'SCANLINE_ERR_AUTH_REQUIRED' });
    expect(await refusal(url, { authorization: 'Bearer slt_not-a-token' })).toEqual({ status: 401, code: 'SCANLINE_ERR_AUTH_INVALID' });
    expect(await refusal(url, { authorization: `Bearer ${gw.tokenOf('metrics')}` })).toEqual({ status: 403, code: 'SCANLINE_ERR_AUTH_FORBIDDEN' });
    expect(await refusal(url, { authorization: `Bearer ${gw.tokenOf('viewer')}`, origin: 'http://evil.example' })).toEqual({
      status: 403,
      code: 'SCANLINE_ERR_AUTH_ORIGIN',
    });
    const extra = [await openScreen(gw, 'a'), await openScreen(gw, 'b')];
    expect(await refusal(url, { authorization: `Bearer ${gw.accountToken('c')}` })).toEqual({ status: 503, code: 'SCANLINE_ERR_OPERATOR_TOO_MANY' });
    for (const s of extra) s.close();
  });

  it('records a decision with the signed-in account and time, apart from the machine results, audits it and pushes it to screens', async () => {
    // A screen that started watching the lane after the scan ended hears of decisions on it too.
    const after = await openScreen(gw, 'after-1');
    after.send({ type: 'subscribe', portals: ['sim-1'] });
    await after.next((r) => r.json?.type === 'subscribed');
    const before = Date.now();
    const { status, body } = await post(
      gw,
      `/v1/scans/${scanId}/decision`,
      { verdict: 'inspect', comment: '  open the rear doors ' },
      'officer-17',
      // An id the client names is ignored: who decided is who is signed in.
      { 'X-Scanline-Operator': 'chief-inspector' },
    );
    expect(status).toBe(201);
    expect(body).toMatchObject({
      scanId,
      operatorId: 'officer-17',
      verdict: 'inspect',
      comment: 'open the rear doors',
      suggestions: {},
      machineDecision: null,
      scanState: 'completed',
    });
    expect(Date.parse(body.decidedAt)).toBeGreaterThanOrEqual(before - 1000);
    const pushed = (await early.next((r) => r.json?.type === 'decision')).json;
    expect(pushed.decision).toEqual(body.links ? (({ links, ...d }) => d)(body) : body);
    expect((await after.next((r) => r.json?.type === 'decision')).json).toEqual(pushed);
    expect(after.json('scan.snapshot')).toEqual([]);
    after.close();
    gw.accountToken('supervisor.2', 'supervisor');
    const second = await post(gw, `/v1/scans/${scanId}/decision?operator=chief-inspector`, { verdict: 'clear' }, 'supervisor.2');
    expect(second.status).toBe(201);
    const audited = gw.identity.listAudit({ limit: 10, action: 'decision.record' });
    expect(audited.map((e) => [e.actor, e.target, e.details.verdict, e.outcome])).toEqual([
      ['supervisor.2', scanId, 'clear', 'ok'],
      ['officer-17', scanId, 'inspect', 'ok'],
    ]);
    const scan = await getJson(gw, `/v1/scans/${scanId}`);
    expect(scan.body.decisions.map((d: any) => [d.operatorId, d.verdict])).toEqual([
      ['officer-17', 'inspect'],
      ['supervisor.2', 'clear'],
    ]);
    const list = await getJson(gw, '/v1/scans');
    expect(list.body.scans[0].decisions).toHaveLength(2);
  });

  it('refuses bad decisions with coded errors and stores nothing', async () => {
    gw.accountToken('watcher', 'viewer');
    const cases: Array<[unknown, string | null, Record<string, string>, number, string]> = [
      [{ verdict: 'clear' }, null, {}, 401, 'SCANLINE_ERR_AUTH_REQUIRED'],
      [{ verdict: 'clear' }, null, { 'X-Scanline-Operator': 'officer-17' }, 401, 'SCANLINE_ERR_AUTH_REQUIRED'],
      [{ verdict: 'clear' }, 'watcher', {}, 403, 'SCANLINE_ERR_AUTH_FORBIDDEN'],
      [{ verdict: 'clear' }, 'o1', { 'content-type': 'text/plain' }, 415, 'SCANLINE_ERR_HTTP_CONTENT_TYPE'],
      [{ verdict: 'maybe', comment: 5, extra: true }, 'o1', {}, 400, 'SCANLINE_ERR_HTTP_BAD_BODY'],
      ['{"verdict":', 'o1', {}, 400, 'SCANLINE_ERR_HTTP_BAD_BODY'],
      [{ verdict: 'clear', suggestions: { g0: 'accept' } }, 'o1', {}, 422, 'SCANLINE_ERR_DECISION_UNKNOWN_SUGGESTION'],
    ];
    for (const [body, as, headers, status, code] of cases) {
      const res = await post(gw, `/v1/scans/${scanId}/decision`, body, as, headers);
      expect([res.status, res.body.error?.code]).toEqual([status, code]);
    }
    const bad = await post(gw, `/v1/scans/${scanId}/decision`, { verdict: 'maybe', comment: 5, extra: true });
    expect(bad.body.error.problems).toHaveLength(3);
    const unknown = await post(gw, '/v1/scans/nope/decision', { verdict: 'clear' });
    expect([unknown.status, unknown.body.error.code]).toEqual([404, 'SCANLINE_ERR_SCAN_UNKNOWN']);
    // A malformed percent-escape in the path names no scan (it used to throw inside the uWS handler and end the
    // process); the UI route answers the same way.
    const malformed = await post(gw, '/v1/scans/%E0%A4%A/decision', { verdict: 'clear' });
    expect([malformed.status, malformed.body.error.code]).toEqual([404, 'SCANLINE_ERR_SCAN_UNKNOWN']);
    expect((await getJson(gw, '/v1/scans/%E0%A4%A/decisions')).status).toBe(404);
    const ui = await fetch(`${gw.httpUrl}/ui/%E0%A4%A`);
    expect([ui.status, ((await ui.json()) as any).error.code]).toEqual([404, 'SCANLINE_ERR_HTTP_NOT_FOUND']);
    expect((await getJson(gw, '/livez')).status).toBe(200);
    expect((await getJson(gw, `/v1/scans/${scanId}`)).body.decisions).toHaveLength(2);
  });

  it('keeps scans, decisions and preview images across a restart, and lists the lane again', async () => {
    await gw.close(2_000);
    gw = await startTestGateway(CONFIG, {}, dir);
    const scan = await getJson(gw, `/v1/scans/${scanId}`);
    expect(scan.body.decisions.map((d: any) => d.verdict)).toEqual(['inspect', 'clear']);
    const s = await openScreen(gw, 'after-restart');
    expect((await s.next((r) => r.json?.type === 'welcome')).json.lanes).toMatchObject([
      { portalId: 'sim-1', liveScanId: null, lastScanId: scanId, lastState: 'completed' },
    ]);
    s.send({ type: 'subscribe', scans: [scanId] });
    const snap = (await s.next((r) => r.json?.type === 'scan.snapshot')).json;
    expect(snap.decisions.map((d: any) => d.operatorId)).toEqual(['officer-17', 'supervisor.2']);
    expect((await s.next((r) => r.image?.header.kind === ImageFrameKind.Snapshot)).image?.header.lines).toBe(totalLines);
    s.close();
  });
});
