/**
 * Acceptance of the inference stage through the real gateway: uWS, the native stitcher, the committed demo models
 * in ONNX Runtime worker threads, the dynamic batcher, the results stage and SQLite, fed by the simulator over
 * protocol v1 in real time. Suggestions must appear while the truck is still in the portal, planted threats must
 * raise alerts, every tile must end in exactly one counted outcome, and results and enrolled references must
 * survive a restart.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ScanResultsReport } from '../../src/protocol/index.js';
import { simulatePortals, type SimulatedScan } from '../../tools/simulator/index.js';
import { getJson, startTestGateway, type TestGateway } from '../helpers/gateway.js';

const INFERENCE = { inference: { enabled: true } };

async function finalReport(gw: TestGateway, scanId: string, timeoutMs = 60_000): Promise<ScanResultsReport> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const { status, body } = await getJson(gw, `/v1/scans/${encodeURIComponent(scanId)}/results`);
    expect(status).toBe(200);
    if (body.status === 'final') return body as ScanResultsReport;
    if (Date.now() > until) throw new Error(`results of ${scanId} not final after ${timeoutMs} ms: ${JSON.stringify(body.algorithms)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function overlaps(a: { lineStart: number; lineEnd: number; pixelStart: number; pixelEnd: number }, b: typeof a): boolean {
  return a.lineStart < b.lineEnd && b.lineStart < a.lineEnd && a.pixelStart < b.pixelEnd && b.pixelStart < a.pixelEnd;
}

/** POSTs JSON with the API token `token` (default: the supervisor-bot's). */
async function post(gw: TestGateway, path: string, body: unknown, token = gw.tokenOf('supervisor')): Promise<{ status: number; body: any }> {
  const res = await fetch(`${gw.httpUrl}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

describe('gateway with the demo models', () => {
  let gw: TestGateway;
  let dataDir: string;
  const scans: SimulatedScan[] = [];
  const reports = new Map<string, ScanResultsReport>();
  /** Per scan: was the scan still receiving lines when its first suggestion / alert was produced? */
  const firstSuggestion = new Map<string, { receiving: boolean; lines: number }>();
  const firstAlert = new Map<string, { receiving: boolean; lines: number }>();

  beforeAll(async () => {
    gw = await startTestGateway(INFERENCE);
    dataDir = gw.dataDir;
    const moment = (scanId: string): { receiving: boolean; lines: number } => {
      const live = gw.ingest.getLiveScan(scanId);
      return { receiving: live?.state === 'receiving', lines: live?.lines ?? -1 };
    };
    gw.results?.addListener({
      suggestions(scanId, _portal, segments) {
        if (segments.length > 0 && !firstSuggestion.has(scanId)) firstSuggestion.set(scanId, moment(scanId));
      },
      alert(scanId) {
        if (!firstAlert.has(scanId)) firstAlert.set(scanId, moment(scanId));
      },
    });
    // Two portals at once, in real time (500 lines/s): cigarettes declared as something else, with narcotics and a
    // firearm concealed in the load (the demo threat model finds these kinds far more often than explosives:
    // models/README.md).
    const sim = await simulatePortals({
      url: gw.portalUrl,
      portals: 2,
      credentials: gw.simulatorCredentials(2),
      trucks: 1,
      seed: 5200,
      truck: { categories: ['tobacco'], threats: ['narcotics', 'firearm'], mismatchProbability: 1, realism: 'hard' },
    });
    expect(sim.scansCompleted).toBe(2);
    scans.push(...sim.scans);
    for (const s of scans) reports.set(s.scanId, await finalReport(gw, s.scanId));
  }, 180_000);

  afterAll(async () => {
    await gw?.close(5_000);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('loads both demo models, warmed up, and reports how they run on /readyz', async () => {
    const { status, body } = await getJson(gw, '/readyz');
    expect(status).toBe(200);
    expect(body.checks.inference).toBe('ok');
    // The dual-energy pair and the single-energy models (scored only for single-energy portals' scans).
    expect(Object.keys(body.inference.models)).toEqual(expect.arrayContaining(['goods-v1', 'threats-v1', 'goods-1e-v1', 'threats-1e-v1']));
    for (const m of Object.values(body.inference.models) as Array<{ provider: string; precision: string }>) {
      expect(m.provider).toBe('cpu'); // CI has no GPU; GPU providers are tried first and fall back
      expect(m.precision).toBe('fp32');
    }
  });

  it('suggests the goods while the truck is still in the portal and flags the false declaration', () => {
    for (const s of scans) {
      const report = reports.get(s.scanId) as ScanResultsReport;
      expect(firstSuggestion.get(s.scanId)?.receiving, `first suggestion of ${s.scanId} came before scan.end`).toBe(true);
      expect(firstSuggestion.get(s.scanId)?.lines).toBeLessThan(s.truth.totalLines);
      const top = report.goods.segments.map((g) => g.top3[0].label);
      expect(top).toContain('tobacco');
      expect(s.truth.declaration?.mismatch).toBe(true);
      expect(report.goods.declaration.status).toBe('mismatch');
      expect(report.goods.declaration.undeclared.map((u) => u.label)).toContain('tobacco');
      expect(report.alarmDecision).toBe('ALARM');
      expect(report.objects.some((o) => o.assessment === 'UNDECLARED_GOODS' && o.category === 'tobacco')).toBe(true);
    }
  });

  it('raises alerts for the planted threats as soon as their tiles are scored', () => {
    let planted = 0;
    let found = 0;
    for (const s of scans) {
      const report = reports.get(s.scanId) as ScanResultsReport;
      expect(s.truth.threats.length).toBeGreaterThan(0);
      expect(firstAlert.get(s.scanId)?.receiving, `first alert of ${s.scanId} came before scan.end`).toBe(true);
      for (const t of s.truth.threats) {
        planted++;
        if (report.objects.some((o) => o.assessment === 'THREAT' && overlaps(o.box, t))) found++;
      }
      for (const o of report.objects.filter((x) => x.assessment === 'THREAT')) {
        expect(['firearm', 'narcotics', 'explosive']).toContain(o.category);
        expect(o.algorithm).toBe('threats-v1');
        expect(o.probability).toBeGreaterThan(0);
      }
    }
    expect(found / planted).toBeGreaterThanOrEqual(0.5);
  });

  it('ends every tile in exactly one counted outcome, per scan and in total', () => {
    let produced = 0;
    for (const s of scans) {
      const report = reports.get(s.scanId) as ScanResultsReport;
      produced += report.tilesProduced;
      expect(report.tilesProduced).toBeGreaterThan(0);
      expect(report.algorithms.map((a) => a.name).sort()).toEqual(['goods-v1', 'threats-v1']);
      for (const a of report.algorithms) {
        expect(a.tiles.submitted).toBe(report.tilesProduced);
        expect(a.tiles.ok + a.tiles.rejected + a.tiles.expired + a.tiles.failed).toBe(a.tiles.submitted);
        expect(a.tiles.pending).toBe(0);
        expect(a.version).toBe(a.name === 'threats-v1' ? '5.0.0' : '2.1.0');
      }
    }
    const stats = gw.results?.stats;
    expect(stats?.tilesProduced).toBe(produced);
    expect(gw.ingest.stats.tilesProduced).toBe(produced);
    for (const [, c] of stats?.models ?? []) expect(c.ok + c.rejected + c.expired + c.failed).toBe(c.submitted);
    const inference = gw.inference?.stats.models;
    for (const [name, m] of inference ?? []) {
      const live = m.tiles.live;
      // These trucks come from dual-energy portals: the single-energy models see none of their tiles.
      expect(live.submitted, name).toBe(name.includes('-1e-') ? 0 : produced);
      expect(live.ok + live.rejected + live.expired + live.failed).toBe(live.submitted);
    }
  });

  it('enrols a reference category from a scan region, matches it in later scans, and keeps it across a restart', async () => {
    const source = scans[0];
    const seg = source.truth.cargoSegments.find((c) => c.category === 'tobacco');
    expect(seg).toBeDefined();
    const region = { scanId: source.scanId, lineStart: seg!.startLine, lineEnd: seg!.endLine };

    // Caller errors, each with its code; nothing is enrolled by them.
    expect((await post(gw, '/v1/references', { id: 'Bad Id', name: '', hsCodes: ['24'], samples: [] })).body.error.code).toBe('SCANLINE_ERR_HTTP_BAD_BODY');
    expect((await post(gw, '/v1/references', { id: 'tobacco', name: 'Tobacco', hsCodes: ['2402'], samples: [region] })).status).toBe(409);
    const outside = await post(gw, '/v1/references', {
      id: 'nothing',
      name: 'Nothing',
      hsCodes: [],
      samples: [{ ...region, lineStart: 900_000, lineEnd: 900_100 }],
    });
    expect([outside.status, outside.body.error.code]).toEqual([422, 'SCANLINE_ERR_REFERENCE_NO_TILES']);
    const unknown = await post(gw, '/v1/references', { id: 'nothing', name: 'Nothing', hsCodes: [], samples: [{ ...region, scanId: 'no-such-scan' }] });
    expect([unknown.status, unknown.body.error.code]).toEqual([404, 'SCANLINE_ERR_SCAN_UNKNOWN']);
    const garbled = await fetch(`${gw.httpUrl}/v1/references`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...gw.authHeaders('supervisor') },
      body: '{"id": ',
    });
    expect([garbled.status, ((await garbled.json()) as any).error.code]).toEqual([400, 'SCANLINE_ERR_HTTP_BAD_BODY']);
    expect((await getJson(gw, '/v1/references')).body.references).toEqual([]);

    // Four eyes: one supervisor proposes, nothing changes until another approves.
    const proposed = await post(gw, '/v1/references', { id: 'cigarettes-x', name: 'Cigarettes, brand X cartons', hsCodes: ['240220'], samples: [region] });
    expect(proposed.status).toBe(202);
    expect(proposed.body.proposal).toMatchObject({ action: 'enrol', referenceId: 'cigarettes-x', state: 'pending', proposedBy: 'supervisor-bot' });
    expect((await getJson(gw, '/v1/references')).body.references).toEqual([]);
    const proposalId = proposed.body.proposal.id as number;
    const self = await post(gw, `/v1/reference-proposals/${proposalId}/approve`, {});
    expect([self.status, self.body.error.code]).toEqual([403, 'SCANLINE_ERR_REFERENCE_SAME_SUPERVISOR']);
    const officer = await post(gw, `/v1/reference-proposals/${proposalId}/approve`, {}, gw.tokenOf('officer'));
    expect([officer.status, officer.body.error.code]).toEqual([403, 'SCANLINE_ERR_AUTH_FORBIDDEN']);
    const second = gw.accountToken('supervisor-2', 'supervisor');
    const approved = await post(gw, `/v1/reference-proposals/${proposalId}/approve`, {}, second);
    expect(approved.status).toBe(200);
    expect(approved.body.proposal).toMatchObject({ state: 'approved', decidedBy: 'supervisor-2' });
    const enrolled = { body: approved.body.reference };
    expect(enrolled.body).toMatchObject({
      id: 'cigarettes-x',
      model: 'goods-v1',
      embeddingDim: 64,
      minSimilarity: 0.85,
      proposedBy: 'supervisor-bot',
      approvedBy: 'supervisor-2',
    });
    expect(enrolled.body.samples).toBeGreaterThan(3);
    expect((await post(gw, `/v1/reference-proposals/${proposalId}/approve`, {}, second)).body.error.code).toBe('SCANLINE_ERR_REFERENCE_PROPOSAL_DECIDED');
    expect(
      gw.identity
        .listAudit({ limit: 10 })
        .filter((e) => e.action.startsWith('reference.'))
        .map((e) => [e.action, e.actor, e.outcome]),
    ).toEqual([
      ['reference.approve', 'supervisor-2', 'ok'],
      ['reference.enrol', 'supervisor-2', 'ok'],
      ['reference.approve', 'supervisor-bot', 'refused'],
      ['reference.propose', 'supervisor-bot', 'ok'],
    ]);

    // A later truck with the same goods, declared as cigarettes (2402): the reference category is suggested.
    const sim = await simulatePortals({
      url: gw.portalUrl,
      portals: 1,
      credentials: gw.simulatorCredentials(1),
      trucks: 1,
      seed: 5300,
      speed: 'max',
      truck: { categories: ['tobacco'], threatProbability: 0, mismatchProbability: 0, realism: 'hard' },
    });
    const later = await finalReport(gw, sim.scans[0].scanId);
    expect(later.goods.references).toEqual(['cigarettes-x']);
    // The report names the reference that influenced the suggestion, and who proposed and approved it.
    expect(later.goods.referenceCategories).toEqual([
      { id: 'cigarettes-x', name: 'Cigarettes, brand X cartons', proposedBy: 'supervisor-bot', approvedBy: 'supervisor-2' },
    ]);
    expect(later.goods.segments.map((s) => s.top3[0].label)).toContain('cigarettes-x');
    expect(later.goods.declaration.status).toBe('match');

    // Restart on the same data directory: references and final results are still there.
    await gw.close(5_000);
    gw = await startTestGateway(INFERENCE, {}, dataDir);
    const listed = await getJson(gw, '/v1/references');
    expect(listed.body.references.map((r: { id: string }) => r.id)).toEqual(['cigarettes-x']);
    const stored = await getJson(gw, `/v1/scans/${encodeURIComponent(source.scanId)}/results`);
    expect(stored.body).toEqual(reports.get(source.scanId));

    const del = await fetch(`${gw.httpUrl}/v1/references/cigarettes-x`, { method: 'DELETE', headers: gw.authHeaders('supervisor') });
    expect(del.status).toBe(202);
    const deletion = ((await del.json()) as any).proposal;
    expect(deletion).toMatchObject({ action: 'delete', referenceId: 'cigarettes-x', state: 'pending' });
    expect((await getJson(gw, '/v1/references/cigarettes-x')).status).toBe(200);
    const removed = await post(gw, `/v1/reference-proposals/${deletion.id}/approve`, {}, gw.accountToken('supervisor-2', 'supervisor'));
    expect([removed.status, removed.body.deleted]).toEqual([200, 'cigarettes-x']);

    // A single-supervisor site (references.approvals 1): the change takes effect at once, recorded as proposed and
    // approved by the same person.
    await gw.close(5_000);
    gw = await startTestGateway({ ...INFERENCE, references: { approvals: 1 } }, {}, dataDir);
    const direct = await post(gw, '/v1/references', { id: 'cigarettes-y', name: 'Cigarettes, brand Y', hsCodes: ['240220'], samples: [region] });
    expect(direct.status).toBe(201);
    expect(direct.body).toMatchObject({ id: 'cigarettes-y', proposedBy: 'supervisor-bot', approvedBy: 'supervisor-bot' });
    expect(gw.identity.listAudit({ limit: 2 }).map((e) => e.action)).toEqual(['reference.enrol', 'reference.propose']);
    expect((await getJson(gw, '/v1/references/cigarettes-x')).body.error.code).toBe('SCANLINE_ERR_REFERENCE_UNKNOWN');
  }, 120_000);
});
