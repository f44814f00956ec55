/**
 * Acceptance of GET /metrics: a real gateway with the demo models (CPU), fed by the simulator over protocol v1,
 * scraped over HTTP. The exposition must pass `promtool check metrics` (parse and lint), and the counters must add
 * up against what the simulator says it sent and against each other:
 *   slices sent (simulator) = scanline_slices_received_total, per portal and in total
 *   lines sent = scanline_lines_received_total; scans completed = scanline_scans_ended_total{outcome="completed"}
 *   per model: tiles produced = submitted = sum of the outcomes (ok / rejected / expired / failed), nothing pending
 *   per model: line-to-result observations = tiles scored ok
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_INFERENCE_CONFIG } from '../../src/inference/index.js';
import { simulatePortals, type SimulationSummary } from '../../tools/simulator/index.js';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { parseExposition, promtoolCheckMetrics, samplesOf, sumOf, type Exposition } from './exposition.js';

async function scrape(gw: TestGateway): Promise<{ text: string; contentType: string | null; e: Exposition }> {
  const res = await fetch(`${gw.httpUrl}/metrics`, { headers: gw.authHeaders('metrics') });
  expect(res.status).toBe(200);
  const text = await res.text();
  return { text, contentType: res.headers.get('content-type'), e: parseExposition(text) };
}

describe('GET /metrics with the simulator and the demo models', () => {
  let gw: TestGateway;
  let sim: SimulationSummary;
  let final: { text: string; contentType: string | null; e: Exposition };

  beforeAll(async () => {
    gw = await startTestGateway({ inference: { enabled: true } });
    sim = await simulatePortals({ url: gw.portalUrl, portals: 2, credentials: gw.simulatorCredentials(2), trucks: 1, seed: 41, speed: 'max', pixels: 1024 });
    // The scans are complete; their last tiles may still be queued or running. Wait until every tile has an outcome.
    const until = Date.now() + 60_000;
    for (;;) {
      final = await scrape(gw);
      const produced = sumOf(final.e, 'scanline_tiles_produced_total');
      const done = (model: string) => sumOf(final.e, 'scanline_inference_tiles_total', { model });
      // The simulator's portals are dual-energy: the single-energy models (a "-1e-" name) see none of their tiles.
      const models = [...new Set(samplesOf(final.e, 'scanline_inference_tiles_total').map((s) => s.labels.model))].filter((m) => !m.includes('-1e-'));
      if (models.length > 0 && models.every((m) => done(m) === produced)) break;
      if (Date.now() > until) throw new Error(`tiles still pending after 60 s: produced ${produced}, done ${models.map(done).join(', ')}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }, 180_000);

  afterAll(async () => {
    await gw?.dispose();
  });

  it('serves the Prometheus text format and passes promtool check metrics', () => {
    expect(final.contentType).toBe('text/plain; version=0.0.4; charset=utf-8');
    const check = promtoolCheckMetrics(final.text);
    expect(check.output).toBe('');
    expect(check.status).toBe(0);
  });

  it('counts every slice, line and scan the simulator sent, per portal', () => {
    expect(sim.scansCompleted).toBe(2);
    expect(sim.scansFailed).toBe(0);
    expect(sim.slicesSent).toBeGreaterThan(100);
    const e = final.e;
    expect(sumOf(e, 'scanline_slices_received_total')).toBe(sim.slicesSent);
    expect(sumOf(e, 'scanline_lines_received_total')).toBe(sim.linesSent);
    for (const scan of sim.scans) {
      expect(sumOf(e, 'scanline_slices_received_total', { portal: scan.portalId })).toBe(scan.slices);
      expect(sumOf(e, 'scanline_lines_received_total', { portal: scan.portalId })).toBe(scan.lines);
      expect(sumOf(e, 'scanline_scans_started_total', { portal: scan.portalId })).toBe(1);
      expect(sumOf(e, 'scanline_scans_ended_total', { portal: scan.portalId, outcome: 'completed' })).toBe(1);
      expect(sumOf(e, 'scanline_portal_connections', { portal: scan.portalId })).toBe(0);
    }
    expect(sumOf(e, 'scanline_scans_ended_total', { outcome: 'aborted' })).toBe(0);
    expect(sumOf(e, 'scanline_lines_missing_total')).toBe(0);
    expect(sumOf(e, 'scanline_protocol_errors_total')).toBe(0);
    expect(sumOf(e, 'scanline_scans_active')).toBe(0);
    // Frames: every image slice plus the calibration frames, and the control messages (hello, scan.start, scan.end).
    expect(sumOf(e, 'scanline_frames_received_total')).toBeGreaterThan(sim.slicesSent);
    expect(sumOf(e, 'scanline_received_bytes_total')).toBeGreaterThanOrEqual(sim.bytesSent);
  });

  it('gives every tile the stitcher produced exactly one outcome per model', () => {
    const e = final.e;
    const produced = sumOf(e, 'scanline_tiles_produced_total');
    expect(produced).toBeGreaterThan(0);
    const all = [...new Set(samplesOf(e, 'scanline_inference_tiles_total').map((s) => s.labels.model))].sort();
    expect(all).toEqual(['goods-1e-v1', 'goods-v1', 'threats-1e-v1', 'threats-v1']);
    // Dual-energy portals: every tile goes to the dual-energy pair, none to the single-energy models.
    expect(sumOf(e, 'scanline_inference_tiles_submitted_total', { model: 'goods-1e-v1' })).toBe(0);
    expect(sumOf(e, 'scanline_inference_tiles_submitted_total', { model: 'threats-1e-v1' })).toBe(0);
    const models = all.filter((m) => !m.includes('-1e-'));
    for (const model of models) {
      expect(sumOf(e, 'scanline_inference_tiles_submitted_total', { model })).toBe(produced);
      expect(sumOf(e, 'scanline_inference_tiles_total', { model })).toBe(produced);
      expect(sumOf(e, 'scanline_inference_queued_tiles', { model })).toBe(0);
      expect(sumOf(e, 'scanline_inference_in_flight_batches', { model })).toBe(0);
      const ok = sumOf(e, 'scanline_inference_tiles_total', { model, outcome: 'ok' });
      expect(sumOf(e, 'scanline_line_to_result_seconds_count', { model })).toBe(ok);
      expect(sumOf(e, 'scanline_inference_queue_wait_seconds_count', { model })).toBe(ok);
      // Batch sizes add up to the tiles dispatched; compute is labelled with the provider serving the model.
      expect(sumOf(e, 'scanline_inference_batch_size_tiles_sum', { model })).toBe(ok);
      expect(samplesOf(e, 'scanline_inference_compute_seconds_count', { model }).map((s) => s.labels.provider)).toEqual(['cpu']);
    }
  });

  it('exposes the latency histograms, the operator feed at zero, storage and the process', () => {
    const e = final.e;
    expect(e.types.get('scanline_line_to_result_seconds')).toBe('histogram');
    expect(e.types.get('scanline_line_to_screen_seconds')).toBe('histogram');
    // One series per model and portal (every simulated portal); buckets are cumulative and end at +Inf = _count.
    const portals = [...new Set(sim.scans.map((s) => s.portalId))].sort();
    for (const model of ['goods-v1', 'threats-v1']) {
      expect([...new Set(samplesOf(e, 'scanline_line_to_result_seconds_count', { model }).map((s) => s.labels.portal))].sort()).toEqual(portals);
      for (const portal of portals) {
        const buckets = samplesOf(e, 'scanline_line_to_result_seconds_bucket', { model, portal });
        expect(buckets.length).toBeGreaterThan(1);
        for (let i = 1; i < buckets.length; i++) expect(buckets[i].value).toBeGreaterThanOrEqual(buckets[i - 1].value);
        expect(buckets.at(-1)).toMatchObject({ labels: { le: '+Inf' }, value: sumOf(e, 'scanline_line_to_result_seconds_count', { model, portal }) });
        expect(sumOf(e, 'scanline_line_to_result_seconds_count', { model, portal })).toBeGreaterThan(0);
      }
    }
    expect(sumOf(e, 'scanline_operator_subscribers')).toBe(0);
    expect(sumOf(e, 'scanline_storage_writable')).toBe(1);
    expect(sumOf(e, 'scanline_storage_failures_total')).toBe(0);
    expect(sumOf(e, 'scanline_storage_written_bytes_total')).toBeGreaterThan(0);
    expect(sumOf(e, 'scanline_storage_write_seconds_count')).toBeGreaterThan(0);
    expect(sumOf(e, 'scanline_stitch_duration_seconds_count')).toBeGreaterThan(0);
    expect(sumOf(e, 'scanline_gateway_phase', { phase: 'ready' })).toBe(1);
    expect(sumOf(e, 'scanline_inference_workers', { state: 'ready' })).toBe(DEFAULT_INFERENCE_CONFIG.workers);
    expect(sumOf(e, 'scanline_inference_worker_busy_seconds_total')).toBeGreaterThan(0);
    expect(sumOf(e, 'scanline_process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(sumOf(e, 'scanline_event_loop_busy_seconds_total')).toBeGreaterThan(0);
  });

  it('never uses a scan id as a label value', () => {
    const scanIds = new Set(sim.scans.map((s) => s.scanId));
    for (const s of final.e.samples) for (const v of Object.values(s.labels)) expect(scanIds.has(v)).toBe(false);
  });
});

describe('GET /metrics switched off', () => {
  it('answers 404 with a coded error when metrics.enabled is false', async () => {
    const gw = await startTestGateway({ metrics: { enabled: false } });
    try {
      expect(gw.metrics).toBeNull();
      const res = await fetch(`${gw.httpUrl}/metrics`, { headers: gw.authHeaders('metrics') });
      expect(res.status).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('SCANLINE_ERR_HTTP_NOT_FOUND');
    } finally {
      await gw.dispose();
    }
  });
});
