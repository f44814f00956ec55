/**
 * The administrator's retention commands, run on the gateway's machine against its data directory (also while it
 * runs; open scans are never deleted, being 'receiving' in the record):
 *   scanline retention [--dry-run | --apply] [--json]   what the policy deletes now; --apply deletes it
 *   scanline retention hold SCAN_ID --reason TEXT        legal hold: never deleted
 *   scanline retention release SCAN_ID                   the hold ends; the policy applies again
 * Each takes --data-dir DIR and --config FILE; every deletion, hold and release is audited as `cli:<user>`.
 */
import { type Command, parseCommandLine, usageError } from './cli-support.js';
import { ScanlineError } from './errors/index.js';
import { COMMON_OPTIONS, WHERE, configOf, operatorName, print, table } from './identity-commands.js';
import { silentLogger } from './log/index.js';
import { applyRetention, planRetention } from './retention/index.js';
import { IdentityStore, ScanStore } from './storage/index.js';

const RETENTION_USAGE = `scanline retention [--dry-run | --apply] [--json]
  What the retention policy (configuration 'retention') deletes now: scans past their class's age (CLEAR without a
  decision, other without a decision, ALARM or decided), and with retention.maxTotalBytes the oldest short-lived
  scans beyond it. --dry-run (the default) lists them; --apply deletes them, each after its audit entry.
scanline retention hold SCAN_ID --reason TEXT
  Legal hold: the scan is never deleted by the policy, whatever its age.
scanline retention release SCAN_ID
  Ends a legal hold.
${WHERE}
`;

async function withStores<T>(values: Record<string, unknown>, work: (store: ScanStore, identity: IdentityStore) => Promise<T>): Promise<T> {
  const config = configOf(values);
  const store = ScanStore.open(config.storage.dataDir, silentLogger());
  try {
    const identity = IdentityStore.open(config.storage.dataDir);
    try {
      return await work(store, identity);
    } finally {
      identity.close();
    }
  } finally {
    store.close();
  }
}

async function hold(args: string[], on: boolean): Promise<void> {
  const { values, positionals } = parseCommandLine(args, { ...COMMON_OPTIONS, reason: { type: 'string' } }, { min: 1, max: 1, what: 'a scan id' });
  const scanId = positionals[0];
  const reason = typeof values.reason === 'string' ? values.reason.trim() : '';
  if (on && reason === '') throw usageError('retention hold needs --reason TEXT (why the scan must be kept: a case, a court order)');
  const actor = `cli:${operatorName()}`;
  await withStores(values, async (store, identity) => {
    if (!store.setLegalHold(scanId, on ? { by: actor, reason } : null)) {
      throw new ScanlineError('SCANLINE_ERR_SCAN_UNKNOWN', `no scan ${scanId}`, { scanId });
    }
    identity.appendAudit({
      actor,
      action: on ? 'retention.hold' : 'retention.release',
      target: scanId,
      outcome: 'ok',
      address: null,
      details: on ? { reason } : {},
    });
  });
  print(on ? `scan ${scanId} is on legal hold` : `scan ${scanId} is no longer on legal hold`);
}

async function retention(args: string[]): Promise<void> {
  if (args[0] === 'hold') return hold(args.slice(1), true);
  if (args[0] === 'release') return hold(args.slice(1), false);
  const { values } = parseCommandLine(
    args,
    { ...COMMON_OPTIONS, 'dry-run': { type: 'boolean' }, apply: { type: 'boolean' }, json: { type: 'boolean' } },
    { min: 0, max: 0, what: 'no arguments besides the options' },
  );
  if (values['dry-run'] === true && values.apply === true) throw usageError('choose one of --dry-run and --apply');
  const config = configOf(values);
  await withStores(values, async (store, identity) => {
    const plan = await planRetention(store, config.retention);
    const outcome = values.apply === true ? await applyRetention(store, config.retention, plan, (e) => identity.appendAudit(e), `cli:${operatorName()}`) : null;
    if (values.json === true) {
      print(JSON.stringify({ plan, outcome }));
      return;
    }
    print(
      table(
        ['SCAN', 'PORTAL', 'CLASS', 'ENDED', 'KEEP UNTIL', 'WHY', 'BYTES'],
        plan.due.map((d) => [d.scanId, d.portalId, d.retentionClass, d.endedAt, d.keepUntil, d.reason, String(d.bytes)]),
      ),
    );
    print(
      `${plan.due.length} scans due, ${plan.kept} kept, ${plan.held} on legal hold${plan.totalBytes !== null ? `, ${plan.totalBytes} bytes of scans` : ''}`,
    );
    if (outcome) {
      print(`deleted ${outcome.deleted} scans (${outcome.bytes} bytes)`);
      for (const f of outcome.failed) print(`FAILED: ${f.scanId}: ${f.error}`);
    } else {
      print('dry run: nothing deleted (--apply deletes)');
    }
    if (outcome && outcome.failed.length > 0) {
      throw new ScanlineError('SCANLINE_ERR_STORAGE_WRITE', `${outcome.failed.length} scans could not be deleted (listed above)`);
    }
  });
}

export function retentionCommands(): Command[] {
  return [{ name: 'retention', summary: 'apply the retention policy; legal holds', usage: RETENTION_USAGE, run: retention }];
}
