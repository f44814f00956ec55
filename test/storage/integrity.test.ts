/**
 * The audit trail as a hash chain, decisions and completed scans sealed in it: a gateway records sign-ins, a sealed
 * scan and a decision; then each kind of tampering is done to a copy of its data directory by hand (as someone
 * with the database and the files would) and `verify` (and `scanline audit verify`) must name it: an entry edited,
 * an entry removed, two entries reordered, the newest entries removed, a raw line edited, a raw file replaced by a
 * directory, a decision edited, a decision removed. An untouched copy holds.
 */
import Database from 'better-sqlite3';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SliceKind, encodeSliceFrame } from '../../src/protocol/index.js';
import { IdentityStore } from '../../src/storage/index.js';
import { startTestGateway } from '../helpers/gateway.js';
import { RawPortal } from '../helpers/raw-portal.js';

const BIN = new URL('../../bin/scanline.js', import.meta.url).pathname;
const PIXELS = 32;

describe('tamper-evident audit trail', () => {
  const root = mkdtempSync(join(tmpdir(), 'scanline-integrity-'));
  const original = join(root, 'original');
  let scanId = '';
  let copies = 0;

  beforeAll(async () => {
    const gw = await startTestGateway({}, {}, original);
    await gw.signIn('officer');
    const p = await RawPortal.hello(gw.portalUrl, 'lane-seal', { pixels: PIXELS, energies: 2 });
    p.json({ type: 'scan.start', streamId: 1, scanId: 'sealed-scan' });
    await p.next((m) => m.type === 'scan.accepted');
    for (let seq = 0; seq < 8; seq++) {
      const data = new Uint16Array(16 * 2 * PIXELS).fill(20_000 + seq);
      p.binary(encodeSliceFrame({ kind: SliceKind.Image, energies: 2, streamId: 1, seq, firstLine: seq * 16, pixels: PIXELS, acquiredAtUs: 0n }, data));
    }
    p.json({ type: 'scan.end', streamId: 1, totalLines: 128 });
    scanId = ((await p.next((m) => m.type === 'scan.completed')) as { scanId: string }).scanId;
    p.close();
    // The seal is written just after completion.
    for (let i = 0; i < 100 && gw.identity.listAudit({ limit: 1, action: 'scan.seal' }).length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    const res = await fetch(`${gw.httpUrl}/v1/scans/${scanId}/decision`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...gw.authHeaders('officer') },
      body: JSON.stringify({ verdict: 'inspect', comment: 'check pallet 3' }),
    });
    expect(res.status).toBe(201);
    await gw.signIn('viewer');
    await gw.close(2_000);
  }, 30_000);

  afterAll(() => rmSync(root, { recursive: true, force: true }));

  /** A copy of the data directory, changed by `tamper`, then verified. */
  async function verifyAfter(tamper: (db: Database.Database, dir: string) => void): Promise<string[]> {
    const dir = join(root, `copy-${++copies}`);
    cpSync(original, dir, { recursive: true });
    const db = new Database(join(dir, 'scanline.db'));
    try {
      tamper(db, dir);
    } finally {
      db.close();
    }
    const store = IdentityStore.open(dir);
    try {
      return (await store.verify(join(dir, 'scans'))).problems;
    } finally {
      store.close();
    }
  }

  const ids = (db: Database.Database, action: string): number[] =>
    (db.prepare('SELECT id FROM audit_events WHERE action = ? ORDER BY id').all(action) as Array<{ id: number }>).map((r) => r.id);

  it('holds when nothing was touched, and seals what it should', async () => {
    const store = IdentityStore.open(original);
    try {
      const report = await store.verify(join(original, 'scans'));
      expect(report.problems).toEqual([]);
      expect(report).toMatchObject({ unsealed: 0, decisionsChecked: 1, scansChecked: 1 });
      expect(report.entries).toBeGreaterThanOrEqual(8);
      expect(report.head?.hash).toMatch(/^[0-9a-f]{64}$/);
      expect(store.listAudit({ limit: 100 }).map((e) => e.action)).toEqual(
        expect.arrayContaining(['gateway.start', 'account.create', 'session.login', 'portal.create', 'scan.seal', 'decision.record']),
      );
    } finally {
      store.close();
    }
    const cli = spawnSync(process.execPath, [BIN, 'audit', 'verify', '--data-dir', original], { encoding: 'utf8' });
    expect(cli.status).toBe(0);
    expect(cli.stdout).toContain('everything holds');
  });

  it('names an entry whose bytes were changed', async () => {
    let edited = 0;
    const problems = await verifyAfter((db) => {
      edited = ids(db, 'session.login')[0];
      db.prepare(`UPDATE audit_events SET actor = 'someone-else' WHERE id = ?`).run(edited);
    });
    expect(problems).toEqual([`audit entry ${edited} (session.login) was edited`]);
  });

  it('names entries removed from the middle, and the newest entries removed', async () => {
    let removed = 0;
    const middle = await verifyAfter((db) => {
      removed = ids(db, 'session.login')[0];
      db.prepare('DELETE FROM audit_events WHERE id = ?').run(removed);
    });
    expect(middle).toEqual([`audit entries ${removed}..${removed} were removed (entry ${removed + 1} follows entry ${removed - 1})`]);
    let newest = 0;
    const tail = await verifyAfter((db) => {
      newest = (db.prepare('SELECT max(id) AS id FROM audit_events').get() as { id: number }).id;
      db.prepare('DELETE FROM audit_events WHERE id >= ?').run(newest - 1);
    });
    expect(tail).toContain(`audit entries ${newest - 1}..${newest} were removed (the newest entries)`);
  });

  it('names entries whose hashes were removed, a whole chain downgraded included', async () => {
    const problems = await verifyAfter((db) => db.prepare(`UPDATE audit_events SET actor = 'mallory', hash = NULL, prev_hash = NULL`).run());
    expect(problems.length).toBeGreaterThanOrEqual(8);
    expect(problems[0]).toMatch(/^audit entry 1 has no hash/);
  });

  it('names two entries swapped', async () => {
    let a = 0;
    let b = 0;
    const problems = await verifyAfter((db) => {
      [a, b] = ids(db, 'account.create').slice(0, 2);
      const cols = 'at, actor, action, target, outcome, address, details';
      const ra = db.prepare(`SELECT ${cols} FROM audit_events WHERE id = ?`).get(a) as Record<string, unknown>;
      const rb = db.prepare(`SELECT ${cols} FROM audit_events WHERE id = ?`).get(b) as Record<string, unknown>;
      const set = db.prepare(
        'UPDATE audit_events SET at = @at, actor = @actor, action = @action, target = @target, outcome = @outcome, address = @address, details = @details WHERE id = @id',
      );
      set.run({ ...rb, id: a });
      set.run({ ...ra, id: b });
    });
    expect(problems).toEqual([`audit entry ${a} (account.create) was edited`, `audit entry ${b} (account.create) was edited`]);
  });

  it('names a raw line edited on disk, and a decision edited or removed in the database', async () => {
    const raw = await verifyAfter((_db, dir) => {
      const fd = openSync(join(dir, 'scans', scanId, 'raw.u16'), 'r+');
      const byte = Buffer.alloc(1);
      readSync(fd, byte, 0, 1, 1000);
      byte[0] ^= 0x01;
      writeSync(fd, byte, 0, 1, 1000);
      closeSync(fd);
    });
    expect(raw).toEqual([expect.stringMatching(new RegExp(`^the raw lines of scan ${scanId} were edited \\(sealed in audit entry \\d+\\)$`))]);
    // Raw lines replaced by something that is not a file: named, and the rest is still checked.
    const replaced = await verifyAfter((db, dir) => {
      const path = join(dir, 'scans', scanId, 'raw.u16');
      rmSync(path);
      mkdirSync(path);
      db.prepare(`UPDATE scan_decisions SET verdict = 'clear'`).run();
    });
    expect(replaced).toEqual([
      expect.stringMatching(new RegExp(`^decision 1 on scan ${scanId} was edited \\(sealed in audit entry \\d+\\)$`)),
      expect.stringMatching(new RegExp(`^the raw lines of scan ${scanId} cannot be read \\(sealed in audit entry \\d+\\): .*not a regular file$`)),
    ]);
    const edited = await verifyAfter((db) => db.prepare(`UPDATE scan_decisions SET verdict = 'clear'`).run());
    expect(edited).toEqual([expect.stringMatching(new RegExp(`^decision 1 on scan ${scanId} was edited \\(sealed in audit entry \\d+\\)$`))]);
    const removed = await verifyAfter((db) => db.prepare('DELETE FROM scan_decisions').run());
    expect(removed).toEqual([expect.stringMatching(/^decision 1 was removed \(sealed in audit entry \d+\)$/)]);
    // The command line says so, and exits 1.
    const dir = join(root, `copy-${copies}`);
    const cli = spawnSync(process.execPath, [BIN, 'audit', 'verify', '--data-dir', dir], { encoding: 'utf8' });
    expect(cli.status).toBe(1);
    expect(cli.stdout).toContain('PROBLEM: decision 1 was removed');
    expect(cli.stderr).toContain('SCANLINE_ERR_AUDIT_TAMPERED');
  });
});
