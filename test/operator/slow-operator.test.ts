/**
 * One operator screen that reads slowly must not hold up the others or the ingest, must still receive every alert,
 * and its coalesced strips must be counted. Real gateway with the demo models, the simulator in real time, two
 * real WebSocket screens: one reads everything, one reads nothing until every report is final, then catches up.
 *
 * Only behaviour is asserted here (what arrives, in which order, how it is counted), never how fast: the latency
 * of the screen that reads while another one stalls is measured by bench:fanout against a run without the stalled
 * screen.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ImageFrameKind } from '../../src/protocol/index.js';
import type { ScanResultsReport } from '../../src/protocol/index.js';
import { simulatePortals, type SimulationSummary } from '../../tools/simulator/index.js';
import { getJson, startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { type TestScreen, openScreen } from './helpers.js';

// A small strip budget so a screen that stops reading is behind after a few strips (the default is 1 MiB), and
// full-resolution previews: at the default 2x2 downsampling two trucks' strips (about 1 MB) fit in the loopback
// socket buffers of a screen that does not read, so the gateway would never see it fall behind.
// What this test follows must not depend on how busy the machine is:
// - the inference workers run at normal priority: by default they run under SCHED_IDLE and get a CPU only when
//   nothing else wants one, so beside any CPU-bound process the reports took minutes to become final;
// - a live tile waits for its batch up to 10 minutes instead of 5 s (a tile past its deadline expires by design,
//   and the threats the test follows would be missing);
// - no idle timeout: a screen that reads nothing cannot answer uWS's pings either, and uWS would close the frozen
//   screen (1006) if the reports took longer than operator.idleTimeoutSec (60 s).
const CONFIG = {
  inference: { enabled: true, workerSchedIdle: false, workerNice: 0, batching: { defaultDeadlineMs: { live: 600_000 } } },
  stitch: { previewDownsample: 1 },
  operator: { stripBufferBytes: 16 * 1024, maxBufferedBytes: 16 * 1024 * 1024, idleTimeoutSec: 0 },
};
const LINE_RATE = 500;

describe('a slow operator screen', () => {
  let gw: TestGateway;
  let fast: TestScreen;
  let slow: TestScreen;
  let sim: SimulationSummary;
  const report = new Map<string, ScanResultsReport>();
  /** Preview strips ingest emitted, as `${scanId}:${line}`. */
  const emitted: string[] = [];

  beforeAll(async () => {
    gw = await startTestGateway(CONFIG);
    gw.ingest.listen({ preview: (scan, strip) => emitted.push(`${scan.scanId}:${strip.line}`) });
    fast = await openScreen(gw, 'fast-1');
    slow = await openScreen(gw, 'slow-1');
    for (const s of [fast, slow]) s.send({ type: 'subscribe', portals: ['*'] });
    await fast.next((r) => r.json?.type === 'subscribed');
    await slow.next((r) => r.json?.type === 'subscribed');
    // The slow screen reads nothing while the trucks pass (a frozen browser tab), then catches up.
    slow.pause();
    // Two lanes, two trucks each: about 8 MB of strips, well beyond what the loopback socket buffers absorb.
    sim = await simulatePortals({
      url: gw.portalUrl,
      portals: 2,
      credentials: gw.simulatorCredentials(2),
      trucks: 2,
      seed: 5200,
      lineRate: LINE_RATE,
      truck: { categories: ['tobacco'], threats: ['narcotics', 'firearm'], mismatchProbability: 1, realism: 'hard' },
    });
    // One deadline for all reports, generous: a busy machine shares its CPUs with the inference workers.
    const until = Date.now() + 180_000;
    for (const s of sim.scans) {
      for (;;) {
        const r = (await getJson(gw, `/v1/scans/${encodeURIComponent(s.scanId)}/results`)).body as ScanResultsReport;
        if (r.status === 'final') {
          report.set(s.scanId, r);
          break;
        }
        if (Date.now() > until) throw new Error(`results of ${s.scanId} not final`);
        await new Promise((res) => setTimeout(res, 100));
      }
    }
    // Now the slow screen catches up: everything queued for it arrives, then its resync snapshots (their images are
    // encoded after the JSON part): wait until it shows every scan whole and the hub holds nothing for it.
    if (slow.closeCode !== null) throw new Error(`the slow screen was closed (${slow.closeCode}) while it read nothing`);
    slow.resume();
    for (const s of sim.scans) await slow.next((r) => r.json?.type === 'results.final' && r.json.scanId === s.scanId, 30_000);
    const caughtUp = Date.now() + 60_000;
    while (Date.now() < caughtUp && !(gw.operator.stats().trackedScans === 0 && sim.scans.every((s) => coveredLines(slow, s.scanId) === s.lines))) {
      await new Promise((res) => setTimeout(res, 50));
    }
  }, 300_000);

  afterAll(async () => {
    fast?.close();
    slow?.close();
    await gw?.close(5_000);
  });

  it('does not hold up the ingest: every truck completed, whole, while the slow screen read nothing', async () => {
    expect(sim.scansCompleted).toBe(4);
    for (const s of sim.scans) {
      const { body } = await getJson(gw, `/v1/scans/${encodeURIComponent(s.scanId)}`);
      expect({ state: body.state, lines: body.lines, gaps: body.gaps }).toEqual({ state: 'completed', lines: s.lines, gaps: [] });
    }
  });

  it('does not hold up the other screen: it gets every strip, in order, and never needs a resync', () => {
    const strips = fast.images(ImageFrameKind.Strip);
    expect(strips.map((s) => `${s.header.scanId}:${s.header.line}`).sort()).toEqual([...emitted].sort());
    for (const s of sim.scans) {
      const seqs = strips.filter((i) => i.header.scanId === s.scanId).map((i) => i.header.seq);
      expect(seqs).toEqual(seqs.map((_, k) => k + 1));
    }
    expect(fast.json('scan.snapshot').filter((m) => m.resync)).toEqual([]);
  });

  it('still receives every alert, the same updates as the fast screen', () => {
    const alertsOf = (s: TestScreen): string[] => s.json('alert').map((m) => `${m.scanId}/${m.alert.id}@${m.alert.updatedAt}`);
    expect(alertsOf(slow)).toEqual(alertsOf(fast));
    // Applying its updates in order, the slow screen shows exactly the final alerts of each scan. `merged` belongs
    // to the update that joined alerts (the screen drops the ids it names), not to the alert: whether an alert's last
    // update is such a join depends on the order tiles are scored in.
    const byId = (a: { id: string }, b: { id: string }): number => a.id.localeCompare(b.id);
    for (const [scanId, r] of report) {
      expect(r.threats.length).toBeGreaterThan(0);
      const shown = new Map<string, { id: string }>();
      for (const m of slow.json('alert').filter((a) => a.scanId === scanId)) {
        const { merged, ...alert } = m.alert;
        for (const id of merged ?? []) shown.delete(id);
        shown.set(alert.id, alert);
      }
      expect([...shown.values()].sort(byId)).toEqual([...r.threats].sort(byId));
    }
    expect(slow.json('suggestions')).toHaveLength(fast.json('suggestions').length);
    expect(slow.json('scan.completed')).toHaveLength(4);
    expect(slow.closeCode).toBeNull();
  });

  it('coalesces its strips, counts them, and resyncs it from snapshots that cover each whole scan', () => {
    const stats = gw.operator.stats();
    const fastStrips = fast.images(ImageFrameKind.Strip).length;
    const slowStrips = slow.images(ImageFrameKind.Strip).length;
    expect(stats.stripsCoalesced).toBeGreaterThan(0);
    // Both screens had each scan's first view before its first strip, so every strip was offered to each of them
    // once, and each offer is counted exactly once: sent, or coalesced (a snapshot replaced it, the strip that
    // triggered a resync included).
    expect(stats.stripsSent + stats.stripsCoalesced).toBe(2 * stats.stripsEncoded);
    // Every strip handed to a socket arrived.
    expect(fastStrips + slowStrips).toBe(stats.stripsSent);
    expect(stats.resyncs).toBeGreaterThan(0);
    expect(stats.disconnectedSlow).toBe(0);
    // Caught up and every scan ended: the hub keeps nothing per screen for them any more.
    expect(stats.trackedScans).toBe(0);
    for (const s of sim.scans) expect(coveredLines(slow, s.scanId)).toBe(s.lines);
  });
});

/** Lines of a scan a screen's image shows: the furthest line reached by a snapshot or a strip it received. */
function coveredLines(screen: TestScreen, scanId: string): number {
  return Math.max(
    0,
    ...screen
      .images(ImageFrameKind.Snapshot)
      .filter((i) => i.header.scanId === scanId)
      .map((i) => i.header.lines),
    ...screen
      .images(ImageFrameKind.Strip)
      .filter((i) => i.header.scanId === scanId)
      .map((i) => i.header.line + i.header.lines),
  );
}
