/**
 * Retention: what the gateway keeps and for how long, and the deletion of what has expired.
 *
 * Policy (config `retention`), by what the scan is:
 *   - on legal hold:                                 never deleted (`scanline retention hold`);
 *   - ALARM from the machine, or any officer decision: `alarmOrDecidedDays` (default 5 years);
 *   - CLEAR from the machine, completed, no decision: `clearDays` (default 30);
 *   - anything else (UNKNOWN, aborted, interrupted), no decision: `otherDays` (default 90); a scan whose report is
 *     still in progress (being scored, to be scored again at the next start, or never to be: a stop cut an aborted
 *     scan's scoring short, the gateway scores nothing) is kept as an ALARM: its opinion is unknown;
 * and by size: with `maxTotalBytes`, while the scans' files pass it, the oldest scans of the two short classes go
 * first, before their age (never ALARM, decided or held scans). Scans still receiving are never touched.
 *
 * Every deletion is first written to the audit trail (`retention.delete`, with the class, the seal and the ids of
 * the decisions deleted with it, so that `scanline audit verify` knows they were deleted, not removed), then the
 * scan's record, results, embeddings and decisions are deleted (SQLite secure_delete overwrites them) and its files
 * unlinked. The gateway runs the policy every `intervalMinutes`; `scanline retention --dry-run|--apply` runs it by
 * hand.
 *
 * Threads: the JS thread; file sizes and deletions on the libuv pool.
 */
import type { Logger } from '../log/index.js';
import { type Static, Type } from '../schema/index.js';
import type { AuditEvent, RetentionRow, ScanStore } from '../storage/index.js';

const DAY_MS = 86_400_000;

export const RetentionConfigSchema = Type.Object(
  {
    enabled: Type.Boolean({
      default: true,
      description: 'Run the retention policy in the background every intervalMinutes. false = only `scanline retention --apply`.',
    }),
    intervalMinutes: Type.Integer({ minimum: 1, maximum: 10_080, default: 60, unit: 'min', description: 'Between background runs of the retention policy.' }),
    clearDays: Type.Integer({
      minimum: 1,
      maximum: 36_500,
      default: 30,
      unit: 'days',
      description: 'Completed scans the machine judged CLEAR and no officer decided on are kept this long after they ended.',
    }),
    otherDays: Type.Integer({
      minimum: 1,
      maximum: 36_500,
      default: 90,
      unit: 'days',
      description: 'Scans without an officer decision that are neither CLEAR nor ALARM (UNKNOWN, aborted, interrupted) are kept this long.',
    }),
    alarmOrDecidedDays: Type.Integer({
      minimum: 1,
      maximum: 36_500,
      default: 1825,
      unit: 'days',
      description: 'Scans the machine judged ALARM, and every scan an officer decided on, are kept this long (5 years by default).',
    }),
    maxTotalBytes: Type.Integer({
      minimum: 0,
      maximum: 2 ** 53 - 1,
      default: 0,
      unit: 'bytes',
      description:
        "When the scans' files take more than this, the oldest CLEAR and other scans without a decision are deleted before their age, until they fit. " +
        'ALARM, decided and held scans never are. 0 = no size limit.',
    }),
  },
  { additionalProperties: false, default: {}, description: 'How long scans are kept (docs/retention in docs/security.md).' },
);

export type RetentionConfig = Static<typeof RetentionConfigSchema>;

export type RetentionClass = 'alarm-or-decided' | 'clear' | 'other';

/** A scan the policy deletes, and why. */
export interface RetentionCandidate {
  scanId: string;
  portalId: string;
  retentionClass: RetentionClass;
  endedAt: string;
  /** ISO time its class keeps it until. */
  keepUntil: string;
  /** 'age': past keepUntil; 'size': deleted early, the scans take more than maxTotalBytes. */
  reason: 'age' | 'size';
  bytes: number;
  rawSha256: string | null;
  decisionIds: number[];
}

export interface RetentionPlan {
  at: string;
  due: RetentionCandidate[];
  /** Ended scans kept (not due). */
  kept: number;
  /** Scans on legal hold (kept whatever their age). */
  held: number;
  /** Bytes of all ended scans' files, when maxTotalBytes asked for it (else null). */
  totalBytes: number | null;
}

/**
 * The retention class of an ended scan. A report left in progress (the only one stored before the final report is
 * written at the scan's start, UNKNOWN, so it cannot say whether an ALARM was raised since) keeps the scan with the
 * alarms: its machine opinion is not known. Such a completed scan is normally scored again at the gateway's next start
 * (and then classed by its final report), but one never scored (a gateway with inference disabled) expires with the
 * alarms, never by size, instead of being kept for ever. A scan the gateway is scoring now is kept by its isLive.
 */
export function classOf(row: Pick<RetentionRow, 'machineDecision' | 'decisionIds' | 'state'> & Partial<Pick<RetentionRow, 'resultsStatus'>>): RetentionClass {
  if (row.decisionIds.length > 0 || row.machineDecision === 'ALARM' || row.resultsStatus === 'in-progress') return 'alarm-or-decided';
  if (row.state === 'completed' && row.machineDecision === 'CLEAR') return 'clear';
  return 'other';
}

function daysOf(c: RetentionClass, config: RetentionConfig): number {
  return c === 'alarm-or-decided' ? config.alarmOrDecidedDays : c === 'clear' ? config.clearDays : config.otherDays;
}

function candidate(row: RetentionRow, c: RetentionClass, keepUntil: number, reason: RetentionCandidate['reason'], bytes: number): RetentionCandidate {
  return {
    scanId: row.scanId,
    portalId: row.portalId,
    retentionClass: c,
    endedAt: row.endedAt,
    keepUntil: new Date(keepUntil).toISOString(),
    reason,
    bytes,
    rawSha256: row.rawSha256,
    decisionIds: row.decisionIds,
  };
}

/** What the policy would delete now. Reads the store (and, with maxTotalBytes, every ended scan's file sizes). */
export async function planRetention(store: ScanStore, config: RetentionConfig, now = new Date()): Promise<RetentionPlan> {
  const rows = store.retentionRows();
  const due: RetentionCandidate[] = [];
  let held = 0;
  const sizes = new Map<string, number>();
  const bytesOf = async (scanId: string): Promise<number> => {
    let b = sizes.get(scanId);
    if (b === undefined) sizes.set(scanId, (b = await store.scanBytes(scanId)));
    return b;
  };
  const remaining: Array<{ row: RetentionRow; c: RetentionClass; keepUntil: number }> = [];
  for (const row of rows) {
    if (row.legalHold) {
      held++;
      continue;
    }
    const c = classOf(row);
    const keepUntil = Date.parse(row.endedAt) + daysOf(c, config) * DAY_MS;
    if (keepUntil <= now.getTime()) {
      due.push(candidate(row, c, keepUntil, 'age', await bytesOf(row.scanId)));
    } else {
      remaining.push({ row, c, keepUntil });
    }
  }
  let totalBytes: number | null = null;
  if (config.maxTotalBytes > 0) {
    totalBytes = 0;
    for (const row of rows) totalBytes += await bytesOf(row.scanId);
    let left = totalBytes - due.reduce((sum, d) => sum + d.bytes, 0);
    // Oldest first (rows are ordered by end time); only the two short classes give way to size.
    for (const { row, c, keepUntil } of remaining) {
      if (left <= config.maxTotalBytes) break;
      if (c === 'alarm-or-decided') continue;
      const bytes = await bytesOf(row.scanId);
      due.push(candidate(row, c, keepUntil, 'size', bytes));
      left -= bytes;
    }
  }
  return { at: now.toISOString(), due, kept: rows.length - held - due.length, held, totalBytes };
}

export interface RetentionOutcome {
  deleted: number;
  /** The scans deleted, in order. */
  deletedScanIds: string[];
  bytes: number;
  failed: Array<{ scanId: string; error: string }>;
}

/**
 * Deletes what `plan` names, each scan after its `retention.delete` audit entry is written (`audit` must throw when
 * it cannot write: then the scan is kept). `actor`: `system:retention` for the gateway, `cli:<user>` by hand.
 * Each scan is read again first: one put on hold, decided on, judged ALARM or being scored since the plan was made
 * is skipped, and the entry names the decisions it has now.
 */
export async function applyRetention(
  store: ScanStore,
  config: RetentionConfig,
  plan: RetentionPlan,
  audit: (event: AuditEvent) => void,
  actor: string,
  isLive: (scanId: string) => boolean = () => false,
): Promise<RetentionOutcome> {
  const out: RetentionOutcome = { deleted: 0, deletedScanIds: [], bytes: 0, failed: [] };
  const at = new Date(plan.at).getTime();
  for (const planned of plan.due) {
    // Read again: a decision, a final ALARM or a hold may have come since the plan was made.
    const row = store.retentionRows(planned.scanId)[0];
    if (!row || isLive(planned.scanId) || row.legalHold) continue;
    const retentionClass = classOf(row);
    if (retentionClass !== planned.retentionClass && (retentionClass === 'alarm-or-decided' || planned.reason === 'size')) continue;
    if (planned.reason === 'age' && Date.parse(row.endedAt) + daysOf(retentionClass, config) * DAY_MS > at) continue;
    const c: RetentionCandidate = { ...planned, retentionClass, decisionIds: row.decisionIds, rawSha256: row.rawSha256 };
    try {
      audit({
        actor,
        action: 'retention.delete',
        target: c.scanId,
        outcome: 'ok',
        address: null,
        details: {
          portalId: c.portalId,
          class: c.retentionClass,
          reason: c.reason,
          endedAt: c.endedAt,
          keepUntil: c.keepUntil,
          bytes: c.bytes,
          sha256: c.rawSha256,
          decisionIds: c.decisionIds,
        },
      });
      await store.deleteScan(c.scanId);
      out.deleted++;
      out.deletedScanIds.push(c.scanId);
      out.bytes += c.bytes;
    } catch (err) {
      out.failed.push({ scanId: c.scanId, error: (err as Error).message });
    }
  }
  return out;
}

export interface RetentionServiceOptions {
  store: ScanStore;
  config: RetentionConfig;
  audit: (event: AuditEvent) => void;
  /** True while a scan is open (never deleted then). */
  isLive: (scanId: string) => boolean;
  /** Called with each scan deleted, after its files and record are gone (e.g. to drop its cached images). */
  onDeleted?: (scanId: string) => void;
  log: Logger;
}

/** The background run of the policy in the gateway; counters for metrics. */
export class RetentionService {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  readonly stats = { runs: 0, deleted: 0, bytes: 0, failures: 0 };

  constructor(private readonly o: RetentionServiceOptions) {}

  start(): void {
    if (!this.o.config.enabled || this.timer) return;
    this.timer = setInterval(() => void this.runOnce(), this.o.config.intervalMinutes * 60_000);
    this.timer.unref();
    void this.runOnce();
  }

  /** One run now (a run in progress is awaited instead). */
  runOnce(): Promise<void> {
    this.running ??= this.run().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
  }

  private async run(): Promise<void> {
    try {
      const plan = await planRetention(this.o.store, this.o.config);
      const outcome = await applyRetention(this.o.store, this.o.config, plan, this.o.audit, 'system:retention', this.o.isLive);
      this.stats.runs++;
      this.stats.deleted += outcome.deleted;
      this.stats.bytes += outcome.bytes;
      this.stats.failures += outcome.failed.length;
      for (const scanId of outcome.deletedScanIds) this.o.onDeleted?.(scanId);
      if (outcome.deleted > 0 || outcome.failed.length > 0) {
        this.o.log.info(
          { deleted: outcome.deleted, bytes: outcome.bytes, failed: outcome.failed.slice(0, 10), kept: plan.kept, held: plan.held },
          'retention run',
        );
      }
    } catch (err) {
      this.stats.failures++;
      this.o.log.error({ err }, 'the retention run failed');
    }
  }
}
