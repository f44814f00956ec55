/**
 * The retention policy (src/retention) on a real store: which scans are due by class and age, legal hold, the size
 * cap, deletion after its audit entry (and the audit trail still verifies: a deleted sealed scan and its decisions are
 * known deleted, not removed), files and rows gone, and `scanline retention` by hand.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config/index.js';
import { applyRetention, classOf, planRetention, type RetentionConfig } from '../../src/retention/index.js';
import { decisionSeal, IdentityStore, ScanStore, type ScanRecord } from '../../src/storage/index.js';
import { scanRecord } from '../helpers/scan-record.js';

const BIN = new URL('../../bin/scanline.js', import.meta.url).pathname;
const NOW = new Date('2026-12-06T12:00:00.000Z');
const DAY = 86_400_000;

const dirs: string[] = [];
const closers: Array<() => void> = [];
afterEach(() => {
  for (const c of closers.splice(0)) c();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function daysAgo(n: number): string {
  return new Date(NOW.getTime() - n * DAY).toISOString();
}

function config(patch: Partial<RetentionConfig> = {}): RetentionConfig {
  return { ...resolveConfig({}).retention, ...patch };
}

interface Fixture {
  dir: string;
  store: ScanStore;
  identity: IdentityStore;
}

function fixture(): Fixture {
  const dir = mkdtempSync(join(tmpdir(), 'scanline-retention-'));
  dirs.push(dir);
  const store = ScanStore.open(dir, undefined, { directIo: false });
  const identity = IdentityStore.open(dir);
  closers.push(() => {
    store.close();
    identity.close();
  });
  return { dir, store, identity };
}

/** An ended scan with 4 KiB of raw lines, sealed, with a machine decision (or none) and officers' decisions. */
async function scan(
  f: Fixture,
  scanId: string,
  endedDaysAgo: number,
  machine: 'ALARM' | 'CLEAR' | 'UNKNOWN' | null,
  decisions = 0,
  state: ScanRecord['state'] = 'completed',
): Promise<void> {
  const endedAt = daysAgo(endedDaysAgo);
  const raw = f.store.createScan(scanRecord(scanId, endedAt));
  await raw.write(0, new Uint8Array(4096).fill(7));
  await raw.close();
  f.store.updateScan(scanId, { state, lines: 16, endedAt });
  const sha = await f.store.sealScan(scanId);
  f.identity.appendAudit({ actor: 'portal:lane-1', action: 'scan.seal', target: scanId, outcome: 'ok', address: null, details: { lines: 16, sha256: sha } });
  if (machine) f.store.putResults(scanId, machine, { status: 'final', alarmDecision: machine });
  for (let i = 0; i < decisions; i++) {
    const d = f.store.putDecision({
      scanId,
      operatorId: 'officer-1',
      verdict: 'clear',
      comment: null,
      suggestions: {},
      machineDecision: machine ?? 'UNKNOWN',
      scanState: state,
      decidedAt: endedAt,
    });
    f.identity.appendAudit({
      actor: 'officer-1',
      action: 'decision.record',
      target: scanId,
      outcome: 'ok',
      address: null,
      details: { decisionId: d.id, sealed: decisionSeal(d) },
    });
  }
}

describe('retention policy', () => {
  it('classifies scans: ALARM or decided, CLEAR without a decision, other', () => {
    expect(classOf({ machineDecision: 'ALARM', decisionIds: [], state: 'completed' })).toBe('alarm-or-decided');
    expect(classOf({ machineDecision: 'CLEAR', decisionIds: [3], state: 'completed' })).toBe('alarm-or-decided');
    expect(classOf({ machineDecision: 'CLEAR', decisionIds: [], state: 'completed' })).toBe('clear');
    expect(classOf({ machineDecision: 'CLEAR', decisionIds: [], state: 'aborted' })).toBe('other');
    expect(classOf({ machineDecision: null, decisionIds: [], state: 'interrupted' })).toBe('other');
  });

  it('deletes what expired by class, keeps held scans, audits each deletion first, and the audit trail still verifies', async () => {
    const f = fixture();
    await scan(f, 'clear-old', 31, 'CLEAR');
    await scan(f, 'clear-new', 29, 'CLEAR');
    await scan(f, 'clear-decided-old', 400, 'CLEAR', 2);
    await scan(f, 'alarm-old', 1826, 'ALARM', 1);
    await scan(f, 'alarm-kept', 1824, 'ALARM');
    await scan(f, 'unknown-old', 91, 'UNKNOWN');
    await scan(f, 'aborted-new', 60, null, 0, 'aborted');
    await scan(f, 'held-old', 2000, 'CLEAR');
    expect(f.store.setLegalHold('held-old', { by: 'cli:admin', reason: 'case 2026/17' })).toBe(true);

    const plan = await planRetention(f.store, config(), NOW);
    expect(plan.due.map((d) => [d.scanId, d.retentionClass, d.reason])).toEqual([
      ['alarm-old', 'alarm-or-decided', 'age'],
      ['unknown-old', 'other', 'age'],
      ['clear-old', 'clear', 'age'],
    ]);
    expect(plan.held).toBe(1);
    expect(plan.kept).toBe(4);

    const outcome = await applyRetention(f.store, config(), plan, (e) => f.identity.appendAudit(e), 'system:retention');
    expect(outcome).toMatchObject({ deleted: 3, deletedScanIds: ['alarm-old', 'unknown-old', 'clear-old'], failed: [] });
    expect(outcome.bytes).toBeGreaterThanOrEqual(3 * 4096);
    for (const id of ['alarm-old', 'unknown-old', 'clear-old']) {
      expect(f.store.getScan(id)).toBeUndefined();
      expect(f.store.getResults(id)).toBeUndefined();
      expect(f.store.listDecisions(id)).toEqual([]);
      expect(existsSync(f.store.scanDir(id))).toBe(false);
    }
    expect(f.store.getScan('held-old')).toBeDefined();
    const entries = f.identity.listAudit({ action: 'retention.delete', limit: 10 });
    expect(entries.map((e) => e.target).sort()).toEqual(['alarm-old', 'clear-old', 'unknown-old']);
    expect(entries.find((e) => e.target === 'alarm-old')?.details).toMatchObject({ class: 'alarm-or-decided', decisionIds: [expect.any(Number)] });
    const report = await f.identity.verify(join(f.dir, 'scans'));
    expect(report.problems).toEqual([]);

    // A scan removed by hand (not by the policy) is still named.
    rmSync(f.store.rawPath('clear-new'));
    expect((await f.identity.verify(join(f.dir, 'scans'))).problems).toEqual([expect.stringMatching(/raw lines of scan clear-new were removed/)]);
  });

  it('a report left in progress keeps a scan with the alarms (completed, aborted or interrupted), then it expires; one being scored is kept', async () => {
    const f = fixture();
    // As stored at every scan's start: the only in-progress report there is, UNKNOWN.
    const inProgress = (id: string) => f.store.putResults(id, 'UNKNOWN', { status: 'in-progress', alarmDecision: 'UNKNOWN' });
    // A completed scan is scored again at the next start, but one that never is (inference disabled) is not kept for ever.
    await scan(f, 'completed-unscored', 1900, null);
    inProgress('completed-unscored');
    await scan(f, 'completed-unscored-new', 120, null);
    inProgress('completed-unscored-new');
    await scan(f, 'aborted-unscored', 1900, null, 0, 'aborted');
    inProgress('aborted-unscored');
    await scan(f, 'interrupted-unscored', 1850, null, 0, 'interrupted');
    inProgress('interrupted-unscored');
    await scan(f, 'aborted-unscored-new', 120, null, 0, 'aborted');
    inProgress('aborted-unscored-new');
    await scan(f, 'aborted-scoring', 1900, null, 0, 'aborted');
    inProgress('aborted-scoring');
    expect(classOf({ machineDecision: 'UNKNOWN', decisionIds: [], state: 'aborted', resultsStatus: 'in-progress' })).toBe('alarm-or-decided');

    const plan = await planRetention(f.store, config(), NOW);
    expect(plan.due.map((d) => [d.scanId, d.retentionClass])).toEqual([
      ['aborted-scoring', 'alarm-or-decided'],
      ['aborted-unscored', 'alarm-or-decided'],
      ['completed-unscored', 'alarm-or-decided'],
      ['interrupted-unscored', 'alarm-or-decided'],
    ]);
    // A scan the gateway is still scoring is kept by its isLive.
    const outcome = await applyRetention(
      f.store,
      config(),
      plan,
      (e) => f.identity.appendAudit(e),
      'system:retention',
      (id) => id === 'aborted-scoring',
    );
    expect(outcome.deletedScanIds).toEqual(['aborted-unscored', 'completed-unscored', 'interrupted-unscored']);
    expect(f.store.getScan('completed-unscored-new')).toBeDefined();
    expect(f.store.getScan('aborted-unscored-new')).toBeDefined();
    expect(f.store.getScan('aborted-scoring')).toBeDefined();
  });

  it('reads each scan again before deleting it: one decided on since the plan was made is kept; a deletion that failed after its entry is still verified', async () => {
    const f = fixture();
    await scan(f, 'clear-old', 31, 'CLEAR');
    await scan(f, 'other-old', 120, 'UNKNOWN');
    const plan = await planRetention(f.store, config(), NOW);
    expect(plan.due.map((d) => d.scanId)).toEqual(['other-old', 'clear-old']);
    f.store.putDecision({
      scanId: 'clear-old',
      operatorId: 'officer-2',
      verdict: 'inspect',
      comment: null,
      suggestions: {},
      machineDecision: 'CLEAR',
      scanState: 'completed',
      decidedAt: NOW.toISOString(),
    });
    const outcome = await applyRetention(f.store, config(), plan, (e) => f.identity.appendAudit(e), 'system:retention');
    expect(outcome.deleted).toBe(1);
    expect(f.store.getScan('clear-old')).toBeDefined();
    expect(f.store.getScan('other-old')).toBeUndefined();
    // An entry whose deletion did not happen (the process stopped in between): the scan is still checked, not reported.
    f.identity.appendAudit({
      actor: 'system:retention',
      action: 'retention.delete',
      target: 'clear-old',
      outcome: 'ok',
      address: null,
      details: { decisionIds: [] },
    });
    const report = await f.identity.verify(join(f.dir, 'scans'));
    expect(report.problems.filter((p) => !/decision 1 on scan clear-old has no audit entry/.test(p))).toEqual([]);
    expect(report.scansChecked).toBeGreaterThanOrEqual(1);
  });

  it('with maxTotalBytes, deletes the oldest short-lived scans first until the rest fit, never ALARM, decided or held ones', async () => {
    const f = fixture();
    await scan(f, 'a-alarm', 10, 'ALARM');
    await scan(f, 'b-clear', 9, 'CLEAR');
    await scan(f, 'c-decided', 8, 'CLEAR', 1);
    await scan(f, 'd-other', 7, 'UNKNOWN');
    await scan(f, 'e-clear', 6, 'CLEAR');
    const one = await f.store.scanBytes('b-clear');
    const plan = await planRetention(f.store, config({ maxTotalBytes: 3 * one }), NOW);
    expect(plan.due.map((d) => [d.scanId, d.reason])).toEqual([
      ['b-clear', 'size'],
      ['d-other', 'size'],
    ]);
    expect(plan.totalBytes).toBe(5 * one);
  });

  it('`scanline retention` lists what is due without deleting it, --apply deletes it, and hold/release are audited', () => {
    const f = fixture();
    return (async () => {
      await scan(f, 'old-1', 40, 'CLEAR');
      await scan(f, 'old-2', 40, 'CLEAR');
      const cfg = join(f.dir, 'config.json');
      writeFileSync(cfg, JSON.stringify({ storage: { dataDir: f.dir } }));
      const run = (...args: string[]) => spawnSync(process.execPath, [BIN, 'retention', ...args, '--config', cfg], { encoding: 'utf8' });
      const held = run('hold', 'old-2', '--reason', 'case 2026/18');
      expect(held.status, held.stderr).toBe(0);
      const noReason = run('hold', 'old-1');
      expect(noReason.status).not.toBe(0);
      expect(noReason.stderr).toMatch(/--reason/);
      const dry = run('--dry-run');
      expect(dry.status, dry.stderr).toBe(0);
      expect(dry.stdout).toMatch(/old-1 +lane-1 +clear/);
      expect(dry.stdout).not.toMatch(/old-2 +lane-1/);
      expect(dry.stdout).toMatch(/dry run: nothing deleted/);
      expect(f.store.getScan('old-1')).toBeDefined();
      const applied = run('--apply', '--json');
      expect(applied.status, applied.stderr).toBe(0);
      expect(JSON.parse(applied.stdout).outcome).toMatchObject({ deleted: 1 });
      expect(f.store.getScan('old-1')).toBeUndefined();
      expect(f.store.getScan('old-2')).toBeDefined();
      expect(run('release', 'old-2').status).toBe(0);
      expect(f.identity.listAudit({ limit: 20 }).map((e) => e.action)).toEqual(
        expect.arrayContaining(['retention.hold', 'retention.release', 'retention.delete']),
      );
    })();
  }, 60_000);
});
