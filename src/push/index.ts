/**
 * Push stage: the DICOS objects of final scans sent to configured destinations (dicos.destinations) by C-STORE, as
 * an SCU through dcmjs-dimse: central archives, review workstations, risk management.
 *
 * What is sent, and when (docs/dicos.md, "Push"): once a scan's machine results are final (or, without inference,
 * once it completed), its DX images and MACHINE TDR (item `scan`); once an officer decides, that decision's OPERATOR
 * TDR (item `decision:<id>`). Each is queued in the scan database (dicos_push_queue) per destination before anything
 * is sent, retried with exponential backoff (dicos.push.retryInitialMs doubling to retryMaxMs) until the
 * destination takes it, and survives restarts. One association at a time per destination.
 * Threads: the gateway's JS thread; building the objects is synchronous (as for GET /v1/scans/:id/dicos).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dimse from 'dcmjs-dimse';
import { type DicosFile, type MaterialThresholds, buildScanExport } from '../dicos/index.js';
import type { Logger } from '../log/index.js';
import type { ScanResultsReport } from '../protocol/index.js';
import { type ScanStore, type StoredPush, readJournal } from '../storage/index.js';
import type { DicosDestination, DicosPushConfig } from '../config/index.js';

const { Client } = dimse;
const { CStoreRequest } = dimse.requests;
const { Status } = dimse.constants;

export interface PushStats {
  /** Sets of objects sent or failed, by destination. */
  readonly sent: Map<string, number>;
  readonly failures: Map<string, number>;
  readonly objectsSent: Map<string, number>;
}

export interface DicosPushOptions {
  store: ScanStore;
  destinations: DicosDestination[];
  config: DicosPushConfig;
  /** The scan's final machine report, or undefined (none, or not final). */
  report: (scanId: string) => ScanResultsReport | undefined;
  machine: { machineId: string; version: string };
  institution: string | null;
  airLines: number;
  material: MaterialThresholds;
  /** The gateway's AE title, the calling one when a destination names none. */
  aeTitle: string;
  log: Logger;
}

/** The objects of an export a destination asked for (dicos.destinations[].objects), and of one queued item. */
function filesOf(all: DicosFile[], item: string, wanted: readonly string[]): DicosFile[] {
  if (item.startsWith('decision:')) {
    const id = item.slice('decision:'.length);
    return wanted.includes('tdr-operator') ? all.filter((f) => f.name === `tdr-operator-${id}.dcm`) : [];
  }
  return all.filter(
    (f) =>
      (wanted.includes('dx-processing') && f.name.startsWith('dx-processing-')) ||
      (wanted.includes('dx-presentation') && (f.name === 'dx-presentation.dcm' || f.name === 'dx-material.dcm')) ||
      (wanted.includes('tdr-machine') && f.name === 'tdr-machine.dcm'),
  );
}

export class DicosPush {
  readonly stats: PushStats = { sent: new Map(), failures: new Map(), objectsSent: new Map() };
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  /** Items whose queue row could not be updated (a full disk), by push id: not sent again before this time (ms). */
  private readonly heldUntil = new Map<number, number>();
  /** Work was queued while a run was going on: the run looks once more before it ends. */
  private again = false;
  private closed = false;
  private wake: Promise<void> | null = null;

  constructor(private readonly options: DicosPushOptions) {}

  /** Queues a final scan for every destination (its results final, or completed without inference). */
  scanFinal(scanId: string): void {
    const at = new Date().toISOString();
    for (const d of this.options.destinations) if (d.enabled) this.options.store.enqueuePush(scanId, d.name, 'scan', at);
    this.kick();
  }

  /** Queues an officer's decision (its OPERATOR TDR) for every destination that takes them. */
  decisionRecorded(scanId: string, decisionId: number): void {
    const at = new Date().toISOString();
    for (const d of this.options.destinations) {
      if (d.enabled && d.objects.includes('tdr-operator')) this.options.store.enqueuePush(scanId, d.name, `decision:${decisionId}`, at);
    }
    this.kick();
  }

  /**
   * Starts sending. `withResults`: the gateway scores scans (a scan is final when its report is), else a completed scan
   * is final. First, scans of the last dicos.push.backfillHours that no destination's queue holds are queued.
   */
  start(withResults = true): void {
    const hours = this.options.config.backfillHours;
    if (hours > 0) {
      const since = new Date(Date.now() - hours * 3_600_000).toISOString();
      const at = new Date().toISOString();
      for (const d of this.options.destinations) {
        if (!d.enabled) continue;
        const missing = this.options.store.scansNotQueuedFor(d.name, since, withResults);
        for (const scanId of missing) this.options.store.enqueuePush(scanId, d.name, 'scan', at);
        if (missing.length > 0) this.options.log.info({ destination: d.name, scans: missing.length }, 'final scans never queued for DICOS push are queued now');
      }
    }
    this.timer = setInterval(() => this.kick(), this.options.config.pollIntervalMs);
    this.timer.unref();
    this.kick();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.wake;
  }

  /**
   * Sends what is due: the destinations side by side, each one item at a time. Work queued while a run goes on is
   * picked up by that run (it looks again before it ends).
   */
  private kick(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    this.wake = this.runDue()
      .catch((err: unknown) => this.options.log.error({ err }, 'DICOS push failed'))
      .finally(() => {
        this.running = false;
        if (this.again && !this.closed) {
          this.again = false;
          this.kick();
        }
      });
  }

  private async runDue(): Promise<void> {
    for (;;) {
      this.again = false;
      if (this.closed) return;
      const due = this.options.store.duePushes(new Date().toISOString(), 256);
      if (due.length === 0) return;
      const byDestination = new Map<string, StoredPush[]>();
      for (const p of due) byDestination.set(p.destination, [...(byDestination.get(p.destination) ?? []), p]);
      // Holds past their time are dropped (also those of items retention deleted with their scans).
      const now = Date.now();
      for (const [id, until] of this.heldUntil) if (until <= now) this.heldUntil.delete(id);
      // Every destination's loop ends before the next round (or another kick) starts: one send of an item at a time.
      const loops = await Promise.allSettled(
        [...byDestination.values()].map(async (list) => {
          for (const push of list) {
            if (this.closed) return;
            // Held in memory (its row could not be updated): the destination's other items go on meanwhile.
            const held = this.heldUntil.get(push.id);
            if (held !== undefined && held > Date.now()) continue;
            // After a failure, the rest of this destination's items wait for their own retry time.
            if (!(await this.send(push))) return;
          }
        }),
      );
      for (const loop of loops) if (loop.status === 'rejected') this.options.log.error({ err: loop.reason }, 'DICOS push failed');
      if (!this.again) return;
    }
  }

  /** Sends one item; true when the destination took it. */
  private async send(push: StoredPush): Promise<boolean> {
    const { store, log, config } = this.options;
    const destination = this.options.destinations.find((d) => d.name === push.destination);
    if (!destination) {
      // A destination removed from the configuration: its queue waits (it may come back); looked at again later.
      const later = Date.now() + config.retryMaxMs;
      try {
        store.pushFailed(push.id, new Date(later).toISOString(), 'destination no longer configured');
      } catch (err) {
        this.heldUntil.set(push.id, later);
        log.error({ err, pushId: push.id }, 'recording a DICOS push for a destination no longer configured failed; the item waits in memory');
      }
      return false;
    }
    const delay = Math.min(config.retryMaxMs, config.retryInitialMs * 2 ** Math.min(push.attempts, 30));
    let files: DicosFile[];
    try {
      files = await this.build(push, destination);
      if (files.length > 0) await this.store(destination, files);
    } catch (err) {
      const next = new Date(Date.now() + delay).toISOString();
      const message = (err as Error).message ?? String(err);
      this.stats.failures.set(destination.name, (this.stats.failures.get(destination.name) ?? 0) + 1);
      log.warn(
        { destination: destination.name, scanId: push.scanId, item: push.item, attempt: push.attempts + 1, next, msg: message },
        'DICOS push failed; will retry',
      );
      try {
        store.pushFailed(push.id, next, message);
        this.heldUntil.delete(push.id);
      } catch (writeErr) {
        // The queue row keeps its old retry time (a full disk): held here instead, so it is not sent at every poll.
        this.heldUntil.set(push.id, Date.parse(next));
        log.error({ err: writeErr, pushId: push.id }, 'recording a failed DICOS push failed; the item waits in memory');
      }
      return false;
    }
    // The destination has the objects. Should recording it fail (a full disk), the item is sent again later: the
    // same SOP instances (their UIDs derive from the scan), which a receiver keeps once.
    try {
      store.pushSent(push.id, new Date().toISOString());
      this.heldUntil.delete(push.id);
    } catch (err) {
      this.heldUntil.set(push.id, Date.now() + delay);
      log.error(
        { err, pushId: push.id, destination: destination.name, scanId: push.scanId },
        'a DICOS push was taken but could not be recorded as sent; it is sent again later',
      );
      return false;
    }
    this.stats.sent.set(destination.name, (this.stats.sent.get(destination.name) ?? 0) + 1);
    this.stats.objectsSent.set(destination.name, (this.stats.objectsSent.get(destination.name) ?? 0) + files.length);
    log.info({ destination: destination.name, scanId: push.scanId, item: push.item, objects: files.length }, 'DICOS objects pushed');
    return true;
  }

  /** The objects of one queued item, built from the stored scan as GET /v1/scans/:id/dicos builds them. */
  private async build(push: StoredPush, destination: DicosDestination): Promise<DicosFile[]> {
    const { store } = this.options;
    const record = store.getScan(push.scanId);
    if (!record) return []; // deleted by retention meanwhile: nothing left to send
    // A decision needs only its OPERATOR report: the images are not read or built for it.
    const raw = push.item.startsWith('decision:')
      ? null
      : await store.readRaw(push.scanId, record.lines, record.detector.pixels * record.detector.energies * 2);
    const journal = readJournal(store.journalPath(push.scanId));
    const report = this.options.report(push.scanId) ?? null;
    const all = buildScanExport({
      record,
      raw,
      calibration: journal?.frames.filter((f) => f.payload !== null) ?? [],
      airLines: this.options.airLines,
      report: report !== null && report.status === 'final' ? report : null,
      decisions: store.listDecisions(push.scanId),
      machine: this.options.machine,
      institution: this.options.institution,
      material: this.options.material,
    });
    return filesOf(all, push.item, destination.objects);
  }

  /** One association: every file by C-STORE; resolves when each got Success, rejects on the first failure. */
  private async store(destination: DicosDestination, files: DicosFile[]): Promise<void> {
    const dir = await mkdtemp(join(tmpdir(), 'scanline-push-'));
    try {
      const paths: string[] = [];
      for (const f of files) {
        const path = join(dir, f.name);
        await writeFile(path, f.bytes);
        paths.push(path);
      }
      await new Promise<void>((resolve, reject) => {
        const client = new Client();
        const failures: string[] = [];
        let answered = 0;
        for (const path of paths) {
          const request = new CStoreRequest(path);
          request.on('response', (response: { getStatus(): number }) => {
            answered++;
            const status = response.getStatus();
            // Warnings (Bxxx: stored, with coercion or elements discarded) are stored: the destination has it.
            if (status !== Status.Success && (status & 0xf000) !== 0xb000)
              failures.push(`${path.split('/').pop()}: status 0x${status.toString(16).padStart(4, '0')}`);
          });
          client.addRequest(request);
        }
        client.on('networkError', (e: Error) => reject(new Error(`network: ${e.message}`)));
        client.on('associationRejected', (r: { reason?: number }) => reject(new Error(`association rejected (reason ${r?.reason ?? '?'})`)));
        client.on('closed', () => {
          if (failures.length > 0) reject(new Error(failures.join('; ')));
          else if (answered < paths.length) reject(new Error(`${paths.length - answered} of ${paths.length} objects were not answered`));
          else resolve();
        });
        client.send(destination.host, destination.port, destination.callingAeTitle ?? this.options.aeTitle, destination.calledAeTitle, {
          connectTimeout: this.options.config.timeoutMs,
          associationTimeout: this.options.config.timeoutMs,
          pduTimeout: this.options.config.timeoutMs,
        });
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}
