/**
 * Who looked at what: reads of a scan's images and results (HTTP) and a scan shown on an operator screen go to the
 * audit trail as `scan.read` entries. One entry per account, scan and kind of read per `windowMs` (10 minutes): a
 * screen that shows a scan for an hour, or a program polling results, is one act, not thousands of fsync'd rows.
 * At most MAX_KEYS remembered reads; the oldest are forgotten first (a read then is written again).
 *
 * Threads: gateway JS thread.
 */
import { setRecent } from '../memory/index.js';
import type { AuditTrail } from './identity-service.js';

const MAX_KEYS = 50_000;

export type ScanReadKind = 'image' | 'results' | 'screen' | 'dicos';

export class ReadAudit {
  private readonly last = new Map<string, number>();

  constructor(
    private readonly audit: AuditTrail,
    private readonly windowMs = 10 * 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records that `account` read `what` of `scanId` (unless it did within the window). */
  read(account: string, scanId: string, what: ScanReadKind, address: string | null, details: Record<string, unknown> = {}): void {
    const key = `${account}\u0000${scanId}\u0000${what}`;
    const t = this.now();
    const seen = this.last.get(key);
    if (seen !== undefined && t - seen < this.windowMs) return;
    setRecent(this.last, key, t, MAX_KEYS);
    this.audit.record({ actor: account, action: 'scan.read', target: scanId, outcome: 'ok', address, details: { what, ...details } });
  }
}
