/**
 * Composition root: wires config → storage → inference (models loaded and warmed) → results → ingest (with the
 * native stitcher) → server, and owns the lifecycle.
 * Lifecycle phases: starting → ready → draining (no new scans, portals told; open scans finish; their tiles are
 * scored) → closing (sockets, storage) → closed.
 */
import { hostname } from 'node:os';
import { resolve } from 'node:path';
import { packageVersion, printableConfig, type GatewayConfig } from './config/index.js';
import { ScanlineError } from './errors/index.js';
import { ResourceStack } from './lifecycle/index.js';
import { IdentityService, OidcSignIn, ReadAudit } from './identity/index.js';
import { checkTileGeometry, createInference, type Inference } from './inference/index.js';
import { imageFeatureProblems } from './opinion/index.js';
import { CloseCode, IngestService, type PortalAuthenticator } from './ingest/index.js';
import { createRootLogger, type Logger } from './log/index.js';
import { OperatorHub } from './operator/index.js';
import { ReferenceChanges, ResultsService } from './results/index.js';
import { createGatewayMetrics, type GatewayMetrics, type HttpServer, type RouteSpec, startHttpServer, type TlsCertificateInfo } from './server/index.js';
import { isNativeStitcherAvailable, type StitcherFactory } from './stitch/index.js';
import { DiskMonitor, IdentityStore, openWithRoom, ScanStore, SpaceReserve } from './storage/index.js';
import { RetentionService } from './retention/index.js';
import { DicosListener, ImportService, WatchFolder } from './imports/index.js';
import { DicosPush } from './push/index.js';
import type { ScanResultsReport } from './protocol/index.js';

/** How long a graceful stop waits at least for the seals of scans that completed (ms). */
const SEAL_GRACE_MS = 10_000;
/** Unsealed completed scans sealed at a start, at most (the oldest first; the rest at the next start). */
const UNSEALED_SWEEP_LIMIT = 1000;
/** Seals written together (`writeSeals`): at most this long after the first waits, or this many. */
const SEAL_BATCH_MS = 250;
const SEAL_BATCH_MAX = 32;
/**
 * What a full disk refused while the gateway runs (the ends of scans, seals) is written again at once when the disk
 * comes back above storage.minFreeBytes, else tried at most this often (ms): a disk still low may have some room.
 */
const REFUSED_RETRY_MS = 30_000;

export const GATEWAY_PHASES = ['starting', 'ready', 'draining', 'closing', 'closed'] as const;
export type GatewayPhase = (typeof GATEWAY_PHASES)[number];

export interface GatewayOptions {
  /** Root logger; by default one is made at config.log.level writing JSON to stdout. */
  log?: Logger;
  /** The stitcher of each scan: the native addon by default; benchmarks pass the TypeScript reference as baseline. */
  stitcher?: StitcherFactory;
  /**
   * Who may speak for which portal id: by default the gateway's identity service (credentials made by `scanline
   * portal add`). An embedding application with its own registry of portals passes its own; bench:security passes
   * one that admits every portal, as the 'identities off' baseline.
   */
  portalAuthenticator?: PortalAuthenticator;
  /**
   * Password of the `admin` account made on a first start (no account in the database); by default
   * SCANLINE_BOOTSTRAP_ADMIN_PASSWORD, else a random one written once to the `gateway ready` log line.
   */
  bootstrapAdminPassword?: string;
}

/** How often open portal connections and operator screens have their credentials checked again, ms. */
export const CREDENTIAL_CHECK_INTERVAL_MS = 5_000;

export interface Gateway {
  readonly config: GatewayConfig;
  readonly port: number;
  /** ws://host:port/v1/portal (wss:// with server.tls) */
  readonly portalUrl: string;
  /** http://host:port (https:// with server.tls) */
  readonly httpUrl: string;
  readonly ingest: IngestService;
  readonly store: ScanStore;
  /** Accounts, sessions, API tokens, portal credentials and the audit trail. */
  readonly identity: IdentityService;
  /** null when config.inference.enabled is false. */
  readonly inference: Inference | null;
  readonly results: ResultsService | null;
  /** Operator screens: the feed's hub (stats() for metrics), fed by ingest and results. */
  readonly operator: OperatorHub;
  /** Prometheus metrics (GET /metrics); null when config.metrics.enabled is false. */
  readonly metrics: GatewayMetrics | null;
  /** Every HTTP route and WebSocket with the access it needs (docs/security.md; the access matrix test holds it). */
  readonly routes: readonly RouteSpec[];
  /** The port of the DICOS network service (dicos.listener), null when it is off. */
  readonly dicosPort: number | null;
  readonly log: Logger;
  phase(): GatewayPhase;
  /**
   * Reads server.tls's certificate and key again (SIGHUP): new connections get them, open ones (scans in progress)
   * are not dropped. Throws SCANLINE_ERR_SERVER_TLS when the files are not usable; the old certificate stays.
   */
  reloadTls(): Promise<TlsCertificateInfo>;
  /**
   * Graceful stop: refuse new scans and tell portals, give open scans up to `drainTimeoutMs` (default
   * config.shutdown.drainTimeoutMs) to end (then abort them, keeping their lines), close sockets and storage.
   * Calls after the first return the first call's promise.
   */
  close(drainTimeoutMs?: number): Promise<void>;
}

export async function startGateway(config: GatewayConfig, options: GatewayOptions = {}): Promise<Gateway> {
  const log = options.log ?? createRootLogger(config.log.level);
  let phase: GatewayPhase = 'starting';
  const stitcherKind = options.stitcher ? 'custom' : 'native';
  if (stitcherKind === 'native' && !isNativeStitcherAvailable()) {
    // Loading again to surface the precise reason (SCANLINE_ERR_STITCH_ADDON_LOAD with path and cause).
    isNativeStitcherAvailable(true);
  }
  // Every resource registers its close as it is created; a start that fails half-way closes what exists, in reverse.
  const resources = new ResourceStack(log.child({ module: 'lifecycle' }));
  try {
    // The disk as a monitored resource (src/storage/disk-space.ts): below storage.minFreeBytes no new scan; a reserve
    // that decisions and the audit trail of people's acts may use when the disk is full anyway. The reserve a previous
    // run left is taken over first, so a gateway restarted on a disk that filled keeps it; where the disk has no room
    // at all it is given up to open the databases (a gateway that cannot start records no decision either).
    const storageLog = log.child({ module: 'storage' });
    const reserve = SpaceReserve.at(resolve(config.storage.dataDir), config.storage.reserveBytes, storageLog);
    reserve.adopt();
    const store = resources.defer(
      'storage',
      openWithRoom(config.storage.dataDir, reserve, 'opening the scan database', () =>
        ScanStore.open(config.storage.dataDir, storageLog, { directIo: config.storage.directIo }),
      ),
      (s) => s.close(),
    );
    // Its WAL is checkpointed by a worker thread, not inside a commit on the event loop (src/storage/wal-checkpointer.ts).
    store.startCheckpointer(config.storage.checkpointIntervalMs);
    const identityStore = resources.defer(
      'identity',
      openWithRoom(config.storage.dataDir, reserve, 'opening the gateway database', () => IdentityStore.open(config.storage.dataDir)),
      (s) => s.close(),
    );
    identityStore.leaveCheckpointsToWorker();
    /** Run after every disk sample (set below, once the seals exist: it writes what a full disk refused). */
    let afterDiskSample: (cameBack: boolean) => void = () => undefined;
    store.spaceReserve = reserve;
    identityStore.spaceReserve = reserve;
    let ingestForDisk: IngestService | null = null;
    const disk = resources.defer(
      'disk monitor',
      new DiskMonitor({
        dataDir: store.dataDir,
        minFreeBytes: config.storage.minFreeBytes,
        intervalMs: config.storage.diskCheckIntervalMs,
        writtenBytes: () => ingestForDisk?.stats.storageBytes ?? 0,
        afterSample: ({ low, cameBack }) => {
          // ensure() logs its own failures and never throws (a failure here must not skip the retries below).
          if (!low) reserve.ensure();
          afterDiskSample(cameBack);
        },
        log: storageLog,
      }),
      (d) => d.close(),
    );
    if (!disk.low) reserve.ensure();
    disk.start();
    const identity = new IdentityService({ store: identityStore, config: config.auth, log: log.child({ module: 'identity' }) });
    // A fresh install refuses the anonymous: its first account is an admin whose password is shown once.
    const bootstrap = await identity.bootstrapAdmin(options.bootstrapAdminPassword ?? process.env.SCANLINE_BOOTSTRAP_ADMIN_PASSWORD);
    // The configuration each run started with is part of the record (secrets redacted).
    identity.record({
      actor: 'system',
      action: 'gateway.start',
      target: null,
      outcome: 'ok',
      address: null,
      details: { version: packageVersion() ?? '0.0.0', config: printableConfig(config) },
    });
    const reads = new ReadAudit(identity);
    let inference: Inference | null = null;
    let results: ResultsService | null = null;
    if (config.inference.enabled) {
      // The inference workers read each goods tile's image statistics (out-of-distribution scoring) off the event loop.
      const imageFeatures = { attenuationMax: config.stitch.attenuationMax };
      inference = resources.defer('inference', await createInference({ config: config.inference, log, imageFeatures }), (i) => i.close({ drainTimeoutMs: 0 }));
      // A model trained on another tile geometry would get tiles it was never trained on: refuse to start.
      const problems = inference.models.flatMap((m) => checkTileGeometry(m, config.stitch.tile));
      // Out-of-distribution statistics fitted on other image statistics would score every tile wrong.
      for (const m of inference.models) if (m.outOfDistribution) problems.push(...imageFeatureProblems(m.outOfDistribution).map((p) => `${m.name}: ${p}`));
      if (problems.length > 0) {
        throw new ScanlineError('SCANLINE_ERR_MODEL_MISMATCH', `models do not fit the stitcher's tiles:\n  - ${problems.join('\n  - ')}`, { problems });
      }
      results = new ResultsService({
        inference,
        store,
        log: log.child({ module: 'results' }),
        tile: config.stitch.tile,
        machine: { version: packageVersion() ?? '0.0.0', machineId: config.results.machineId || hostname() },
        referenceMinSimilarity: config.results.referenceMinSimilarity,
        greenMinConfidence: config.results.triage.greenMinConfidence,
        greenMaxThreatPeak: config.results.triage.greenMaxThreatPeak,
        attenuationMax: config.stitch.attenuationMax,
        portalLabelLimit: config.metrics.portalLabelLimit,
      });
    }
    const ingest = resources.defer(
      'ingest',
      new IngestService({
        config,
        store,
        log: log.child({ module: 'ingest' }),
        stitcher: options.stitcher,
        portals: options.portalAuthenticator ?? identity,
        storageRefusal: () => disk.refusal(),
      }),
      (i) => i.close(),
    );
    ingestForDisk = ingest;
    if (results) ingest.listen(results.ingestListener());
    const operator = resources.defer(
      'operator',
      new OperatorHub({
        store,
        results,
        config: config.operator,
        previewDownsample: config.stitch.previewDownsample,
        gateway: `scanline ${packageVersion() ?? '0.0.0'}`,
        log: log.child({ module: 'operator' }),
        // scanline_line_to_screen_seconds; `metrics` is assigned below, before any screen can connect.
        observeLineToScreen: (seconds: number, portalId?: string) => metrics?.operator.observeLineToScreen(seconds, portalId),
        onScanShown: (operatorId: string, scanId: string) => {
          try {
            reads.read(operatorId, scanId, 'screen', null);
          } catch (err) {
            log.error({ err, operatorId, scanId }, 'recording a scan shown on a screen failed');
          }
        },
      }),
      (o) => o.close(),
    );
    ingest.listen(operator.ingestListener());
    // Every completed scan is sealed: the SHA-256 of its raw lines in its record and in the audit chain
    // (src/storage/integrity.ts; `scanline audit verify` checks them).
    // Seals being written; a graceful stop waits for them before the store closes (a scan completed just before it
    // stayed unsealed otherwise: `scanline eval` saw 9 of 100 at its gateway's close, "scan store is closed").
    const sealing = new Set<Promise<void>>();
    /** Scans whose seal is being written: one seal per scan, whichever path (completion, the start's sweep) comes first. */
    const sealingIds = new Set<string>();
    // Seals are written in batches. The digests finish one at a time (integrity.ts), and their audit entries and
    // records' UPDATEs go to disk together, one transaction per database per SEAL_BATCH_MS or SEAL_BATCH_MAX seals,
    // instead of two fsyncs on the event loop per scan (under bench:ingest's raw writes the record's alone took p90
    // 31 ms, max 52 ms: bench/RESULTS.md, after the ingest run). A crash before a batch is written leaves its scans to
    // the next start's sweep (late: true), as a crash between a scan's end and its seal always did.
    interface DigestedSeal {
      scanId: string;
      portalId: string;
      lines: number;
      late: boolean;
      sha256: string;
      /** Settles the seal's promise (in `sealing`) once its batch is written or has failed. */
      written: () => void;
    }
    const digestedSeals: DigestedSeal[] = [];
    /**
     * Seals whose audit entries could not be written (a full disk: they never take the space reserve), by scan id,
     * with their digests: written again by afterDiskSample (late: true) without reading the raw files again. Lost at
     * a stop, they are made by the next start's sweep. Retention keeps their scans meanwhile (isLive).
     */
    const refusedSeals = new Map<string, DigestedSeal>();
    /** Seals whose audit entries are written but not their records: only the records are written again. */
    const unrecordedSeals = new Map<string, DigestedSeal>();
    const sealWaits = (scanId: string): boolean => refusedSeals.has(scanId) || unrecordedSeals.has(scanId);
    /** Set whenever digestedSeals holds a seal and no batch is being written: it writes them SEAL_BATCH_MS later. */
    let sealBatchTimer: ReturnType<typeof setTimeout> | null = null;
    /**
     * Writes every digested seal, synchronously on the JS thread: the audit entries first (one IMMEDIATE
     * transaction), then the records (one transaction). That order keeps a record from carrying a seal the chain does
     * not have: if the records' write fails, they stay unsealed and the next start seals them again (late: true; the
     * chain then holds two entries with the same digest, which `audit verify` accepts). Scans whose record is gone
     * (retention) are left out. Never throws; settles every seal of the batch.
     */
    const writeSeals = (): void => {
      if (sealBatchTimer !== null) clearTimeout(sealBatchTimer);
      sealBatchTimer = null;
      const batch = digestedSeals.splice(0);
      if (batch.length === 0) return;
      const live = batch.filter((s) => store.hasScan(s.scanId));
      try {
        identity.recordAll(
          live.map((s) => ({
            actor: `portal:${s.portalId}`,
            action: 'scan.seal',
            target: s.scanId,
            outcome: 'ok' as const,
            address: null,
            details: { lines: s.lines, sha256: s.sha256, ...(s.late ? { late: true } : {}) },
          })),
          // Not from the space reserve, kept for people's acts on a full disk: a seal refused for want of space is
          // made again at the next start (late: true).
          false,
        );
      } catch {
        // Logged by the identity service; written again once there is room (afterDiskSample), or by the next start.
        for (const s of live) refusedSeals.set(s.scanId, { ...s, late: true, written: () => undefined });
        for (const s of live) unrecordedSeals.delete(s.scanId);
        for (const s of batch) s.written();
        return;
      }
      try {
        store.recordSeals(live);
        // A deferred commit, synced off the JS thread. Lost to a power cut before that, a seal is made again at the
        // next start (late: true), with a second audit entry of the same digest.
        store.durable().catch((err: unknown) => log.error({ err, scanIds: live.map((s) => s.scanId) }, 'making the seals durable failed'));
      } catch (err) {
        // Their audit entries are written: only the records are written again (afterDiskSample).
        for (const s of live) unrecordedSeals.set(s.scanId, { ...s, written: () => undefined });
        log.error({ err, scanIds: live.map((s) => s.scanId) }, 'writing the seals of completed scans into their records failed');
      } finally {
        for (const s of batch) s.written();
      }
    };
    const seal = (scanId: string, portalId: string, lines: number, late: boolean): Promise<void> => {
      if (sealingIds.has(scanId) || sealWaits(scanId) || store.sealOf(scanId) !== null) return Promise.resolve();
      sealingIds.add(scanId);
      const written = store
        .digestRaw(scanId)
        .then(
          (sha256) =>
            new Promise<void>((resolve) => {
              digestedSeals.push({ scanId, portalId, lines, late, sha256, written: resolve });
              if (digestedSeals.length >= SEAL_BATCH_MAX) writeSeals();
              else sealBatchTimer ??= setTimeout(writeSeals, SEAL_BATCH_MS);
            }),
        )
        .catch((err: unknown) => log.error({ err, scanId }, 'sealing a completed scan failed'))
        .finally(() => {
          sealingIds.delete(scanId);
          sealing.delete(written);
        });
      sealing.add(written);
      return written;
    };
    // A completed scan scored again after a restart was sealed when it completed the first time (or is by the sweep).
    ingest.listen({ scanCompleted: (scan) => void seal(scan.scanId, scan.portalId, scan.lines, false) });
    results?.addListener(operator.resultsListener());
    // Scans the previous run left open (a crash) are rebuilt from their journals and scored again before any portal
    // connects, so their portals can resume them (src/ingest recoverOpenScans).
    ingest.recoverOpenScans({ rescoreCompleted: results !== null });
    // Completed scans the previous run did not get to seal (it crashed between a scan's end and its seal, or its
    // disk failed then) are sealed now in the background, `late: true` in their audit entries: a batch's worth at a
    // time (their digests queue, the batch is written when full). A stop, or a scan completing meanwhile, may wait
    // behind up to SEAL_BATCH_MAX of those digests (tens of ms each).
    const sweep = (async () => {
      let batch: Array<Promise<void>> = [];
      for (const record of store.unsealedCompletedScans(UNSEALED_SWEEP_LIMIT)) {
        if (phase !== 'starting' && phase !== 'ready') break;
        batch.push(seal(record.scanId, record.portalId, record.lines, true));
        if (batch.length >= SEAL_BATCH_MAX) {
          await Promise.all(batch);
          batch = [];
        }
      }
      await Promise.all(batch);
    })();
    sealing.add(sweep);
    void sweep.finally(() => sealing.delete(sweep));
    // What a full disk refused while the gateway runs is written once it has room: the ends of scans (their lines and
    // journals were synced: ScanStore.endScan), their final results reports (served from memory meanwhile), then the
    // seals of completed scans (their digests kept). At once when
    // the disk comes back above storage.minFreeBytes, else every REFUSED_RETRY_MS while anything waits.
    let retriedAt = Date.now();
    afterDiskSample = (cameBack) => {
      const waiting = store.pendingEndCount + refusedSeals.size + unrecordedSeals.size + (results?.unstoredCount ?? 0);
      if (phase !== 'ready' || waiting === 0) return;
      if (!cameBack && Date.now() - retriedAt < REFUSED_RETRY_MS) return;
      retriedAt = Date.now();
      const ended = store.retryPendingEnds();
      if (ended.length > 0) {
        log.info({ scanIds: ended }, 'the ends of scans a full disk refused are written');
        store.durable().catch((err: unknown) => log.error({ err, scanIds: ended }, 'making the ends of scans durable failed'));
      }
      if ((results?.unstoredCount ?? 0) > 0) results?.retryUnstored();
      if (unrecordedSeals.size > 0) {
        const again = [...unrecordedSeals.values()].filter((s) => store.hasScan(s.scanId) && store.sealOf(s.scanId) === null);
        try {
          store.recordSeals(again);
          unrecordedSeals.clear();
          store.durable().catch((err: unknown) => log.error({ err, scanIds: again.map((s) => s.scanId) }, 'making the seals durable failed'));
        } catch (err) {
          log.warn({ err, seals: again.length }, 'the records of sealed scans still cannot be written');
        }
      }
      if (refusedSeals.size === 0) return;
      // All in one batch (one transaction for their audit entries, one for their records).
      const again = [...refusedSeals.values()].filter((s) => store.sealOf(s.scanId) === null);
      refusedSeals.clear();
      digestedSeals.push(...again);
      writeSeals();
    };
    // Expired scans are deleted in the background, each after its audit entry (src/retention). A deleted scan's
    // rendered images leave the server's cache at once (set once the server exists; retention may run before).
    let dropCachedImages: (scanId: string) => void = () => undefined;
    const retention = resources.defer(
      'retention',
      new RetentionService({
        store,
        config: config.retention,
        audit: (e) => identityStore.appendAudit(e),
        // A scan being sealed is not deleted under its seal (the seal's audit entry would follow its deletion's), nor
        // one still being scored (an aborted scan's tiles may still be in the models when it ended).
        isLive: (scanId) => ingest.getLiveScan(scanId) !== undefined || sealingIds.has(scanId) || sealWaits(scanId) || (results?.isScoring(scanId) ?? false),
        onDeleted: (scanId) => dropCachedImages(scanId),
        log: log.child({ module: 'retention' }),
      }),
      (r) => r.close(),
    );
    retention.start();
    // Images from installed scanners (POST /v1/imports) are fed to ingest as an in-process portal (src/imports).
    const imports = new ImportService({
      ingest,
      config: config.import,
      dataDir: config.storage.dataDir,
      // A refused import's entry does not take the space reserve, nor fail the refusal (IdentityService.recordRefusal).
      audit: (e) => (e.outcome === 'refused' ? void identity.recordRefusal(e) : identity.record(e)),
      log: log.child({ module: 'imports' }),
      diskRefusal: () => disk.refusal(),
    });
    // Final scans and decisions pushed as DICOS to dicos.destinations, queued in the database (src/push).
    const push = resources.defer(
      'dicos push',
      new DicosPush({
        store,
        destinations: config.dicos.destinations,
        config: config.dicos.push,
        report: (scanId) => results?.report(scanId) as ScanResultsReport | undefined,
        machine: { machineId: config.results.machineId || hostname(), version: packageVersion() ?? '0.0.0' },
        institution: config.dicos.institution,
        airLines: config.stitch.airLines,
        material: config.stitch.material,
        aeTitle: config.dicos.listener.aeTitle,
        log: log.child({ module: 'push' }),
      }),
      (p) => p.close(),
    );
    if (config.dicos.destinations.length > 0) {
      if (results) results.addListener({ final: (report) => push.scanFinal(report.scanId) });
      else ingest.listen({ scanCompleted: (scan) => push.scanFinal(scan.scanId) });
      push.start(results !== null);
    }
    // The DICOS network service (dicos.listener): made here so that metrics can read it; it listens after the HTTP
    // server, so that a gateway that cannot serve HTTP never takes images.
    const dicosListener = config.dicos.listener.enabled
      ? new DicosListener({
          config: config.dicos.listener,
          imports,
          portalActive: (portalId) => identity.portalActive(portalId),
          dataDir: config.storage.dataDir,
          log: log.child({ module: 'dicos' }),
          diskRefusal: () => disk.refusal(),
        })
      : null;
    await imports.open();
    const metrics = config.metrics.enabled
      ? resources.defer(
          'metrics',
          createGatewayMetrics({
            ingest,
            store,
            inference,
            results,
            phase: () => phase,
            phases: GATEWAY_PHASES,
            version: packageVersion() ?? '0.0.0',
            portalLabelLimit: config.metrics.portalLabelLimit,
            processMetrics: config.metrics.processMetrics,
            // The server starts after the metrics: these read it once it exists.
            refusals: () => server?.refusals() ?? new Map(),
            signIns: () => ({ ok: identity.stats.signIns, failed: identity.stats.signInFailures, locked: identity.stats.signInsLocked }),
            identityWritesFailed: () => ({ refusalsUnrecorded: identity.stats.refusalsUnrecorded, bookkeeping: identity.stats.bookkeepingFailures }),
            renders: () => ({ running: server?.renders.active ?? 0, queued: server?.renders.queued ?? 0 }),
            imageCache: () => ({ ...(server?.imageCache.stats ?? { hits: 0, shared: 0, rendered: 0 }), bytes: server?.imageCache.bytes ?? 0 }),
            delayedRefusals: () => ({ held: server?.pacer.held ?? 0, total: server?.pacer.delayedTotal ?? 0, escalated: server?.pacer.escalatedTotal ?? 0 }),
            auditHead: () => identity.auditHead(),
            retention: () => retention.stats,
            imports: () => imports.stats,
            push: () => ({ stats: push.stats, pending: store.pendingPushes(), destinations: config.dicos.destinations.map((d) => d.name) }),
            ...(dicosListener ? { dicosListener: () => dicosListener.stats } : {}),
            disk: () => ({
              free: disk.freeBytes,
              total: disk.totalBytes,
              minFree: disk.minFreeBytes,
              used: disk.usedBytes,
              reserve: reserve.held ? reserve.bytes : 0,
              pendingRecords: store.pendingEndCount,
              pendingSeals: refusedSeals.size + unrecordedSeals.size,
              pendingReports: results?.unstoredCount ?? 0,
            }),
          }),
          (m) => m.close(),
        )
      : null;
    metrics?.operator.provideStats(() => {
      const s = operator.stats();
      return { subscribers: s.operators, stripsCoalesced: s.stripsCoalesced, bytesBuffered: s.bytesBuffered, disconnectedSlow: s.disconnectedSlow };
    });
    let server: HttpServer | undefined;
    server = resources.defer(
      'server',
      await startHttpServer({
        config,
        ingest,
        store,
        identity,
        reads,
        oidc: new OidcSignIn(config.auth.oidc, identity, log.child({ module: 'oidc' })),
        log: log.child({ module: 'server' }),
        readiness: {
          stitcher: () => (stitcherKind === 'custom' || isNativeStitcherAvailable() ? null : 'native stitcher addon not loaded'),
          storage: () => (store.isWritable() ? null : 'scan store is not writable'),
          disk: () => disk.refusal(),
          ...(inference ? { inference: () => (inference.status().ready ? null : (inference.status().reason ?? 'inference is not ready')) } : {}),
          phase: () => (phase === 'ready' ? null : `gateway is ${phase}`),
          listening: () => (server?.listening === true ? null : 'not listening for connections'),
        },
        readinessDetails: () => (inference ? { inference: readinessView(inference) } : { inference: 'disabled' }),
        ...(results
          ? {
              results,
              references: new ReferenceChanges({
                results,
                store,
                approvals: config.references.approvals,
                audit: identity,
                log: log.child({ module: 'references' }),
              }),
            }
          : {}),
        ...(metrics ? { metrics } : {}),
        operator,
        imports,
        onDecision: (scanId, decisionId) => push.decisionRecorded(scanId, decisionId),
      }),
      (s) => s.closeAll(),
    );
    const listening = server;
    dropCachedImages = (scanId) => listening.imageCache.dropScan(scanId);
    // Expired images leave the cache every minute, also when no image is asked for.
    const imageCacheSweep = setInterval(() => listening.imageCache.dropExpired(), 60_000);
    imageCacheSweep.unref();
    resources.defer('image cache sweep', imageCacheSweep, (t) => clearInterval(t));
    if (dicosListener) await resources.defer('dicos listener', dicosListener, (l) => l.close()).start();
    if (config.import.watchDir !== null) {
      resources
        .defer(
          'watched folder',
          new WatchFolder({
            dir: config.import.watchDir,
            intervalMs: config.import.watchIntervalMs,
            pairWaitMs: config.import.watchPairWaitMs,
            imports,
            limits: { maxRows: 4096, maxColumns: config.stitch.maxLines },
            log: log.child({ module: 'watch' }),
          }),
          (w) => w.close(),
        )
        .start();
    }
    // Revoked portal credentials, signed-out sessions and disabled accounts take effect on open connections too,
    // also when the change was made by `scanline portal|user|token` in another process.
    let sweeps = 0;
    const credentialCheck = setInterval(() => {
      try {
        ingest.closeRevokedPortals();
        listening.closeSignedOut();
        if (++sweeps % 60 === 0) identity.sweepSessions();
      } catch (err) {
        log.error({ err }, 'checking open connections against revoked credentials failed');
      }
    }, CREDENTIAL_CHECK_INTERVAL_MS);
    credentialCheck.unref();
    resources.defer('credential check', credentialCheck, (t) => clearInterval(t));
    // Where a client on this machine reaches the gateway: a wildcard bind is reached on loopback; an IPv6 literal
    // goes in brackets in a URL.
    const bound = config.server.host === '0.0.0.0' ? '127.0.0.1' : config.server.host === '::' ? '::1' : config.server.host;
    const host = bound.includes(':') ? `[${bound}]` : bound;
    let closing: Promise<void> | null = null;
    /**
     * Draining follows the data: stop listening and accepting scans, let open scans end (portals told), let their
     * tiles be scored and the reports stored, then screens are told and every resource is closed, last created first.
     */
    const drainAndClose = async (drainTimeoutMs: number): Promise<void> => {
      phase = 'draining';
      log.info({ openScans: ingest.liveScans().length, drainTimeoutMs }, 'draining: no new scans');
      try {
        listening.stopListening();
        const deadline = Date.now() + drainTimeoutMs;
        ingest.stopAccepting(drainTimeoutMs);
        await ingest.drain(drainTimeoutMs);
        // Portals hear 1001 (going away), the code docs/protocol.md gives, not a dropped socket.
        ingest.closeConnections(CloseCode.GoingAway, 'gateway shutting down');
        if (results) await results.drain(Math.max(0, deadline - Date.now()));
        // Tiles inference refuses from here on leave their scans' reports in progress, for the next start to score.
        results?.stopScoring();
        await inference?.close({ drainTimeoutMs: Math.max(0, deadline - Date.now()) });
        // Reports and embeddings the store refused get one more try before the store closes.
        if ((results?.unstoredCount ?? 0) > 0) results?.retryUnstored();
        // Every scan that completed is sealed before the store closes (each seal is one read of its raw file): until
        // the drain deadline, and at least SEAL_GRACE_MS (a drain that used its whole time still gets its seals).
        const sealsBy = Math.max(deadline, Date.now() + SEAL_GRACE_MS);
        while (sealing.size > 0 && Date.now() < sealsBy) {
          await Promise.race([Promise.all(sealing), new Promise((r) => setTimeout(r, sealsBy - Date.now()))]);
        }
        if (sealing.size > 0) log.error({ unsealed: sealing.size }, 'stopping with completed scans not sealed (the disk did not answer in time)');
        phase = 'closing';
        // Screens are told the gateway goes away (and previews of the scans that just ended are written) while their
        // sockets are still open; the server's close then ends every connection.
        await operator.close();
      } finally {
        // Whatever failed above, every resource is closed (a failure is logged and rethrown after).
        phase = 'closing';
        try {
          await resources.closeAll();
        } finally {
          phase = 'closed';
          log.info('gateway closed');
        }
      }
    };
    const gateway: Gateway = {
      config,
      port: listening.port,
      portalUrl: `${listening.tls ? 'wss' : 'ws'}://${host}:${listening.port}/v1/portal`,
      httpUrl: `${listening.tls ? 'https' : 'http'}://${host}:${listening.port}`,
      ingest,
      store,
      identity,
      inference,
      results,
      operator,
      metrics,
      routes: listening.routes,
      dicosPort: dicosListener?.port ?? null,
      log,
      phase: () => phase,
      reloadTls: () => listening.reloadTls(),
      close(drainTimeoutMs = config.shutdown.drainTimeoutMs) {
        closing ??= drainAndClose(drainTimeoutMs);
        return closing;
      },
    };
    phase = 'ready';
    log.info(
      {
        host: config.server.host,
        port: listening.port,
        // Where a person opens the operator screen (served by this gateway, GET /), and, on a first start, how to sign in.
        operatorScreen: `${gateway.httpUrl}/`,
        ...(bootstrap
          ? {
              signIn: bootstrap.generated
                ? { user: bootstrap.name, password: bootstrap.password, note: 'shown once; change it with `scanline user passwd admin`' }
                : { user: bootstrap.name, password: 'from SCANLINE_BOOTSTRAP_ADMIN_PASSWORD' },
            }
          : {}),
        dataDir: store.dataDir,
        stitcher: stitcherKind,
        // Version, provider and precision per model; why other providers were passed over is on /readyz and in
        // one short line each from inference (a CPU-only machine passes over the GPU ones, as expected).
        models: inference
          ? Object.fromEntries(Object.entries(inference.status().models).map(([name, m]) => [name, `${m.version} on ${m.provider} (${m.precision})`]))
          : 'inference disabled',
      },
      'gateway ready',
    );
    return gateway;
  } catch (err) {
    phase = 'closing';
    await resources.closeAll().catch(() => undefined); // each failure is logged by the stack; the start error wins
    phase = 'closed';
    throw err;
  }
}

/** What /readyz and the ready log say about inference: each model's version, provider and precision. */
function readinessView(inference: Inference): { ready: boolean; backend: string; models: Record<string, unknown> } {
  const s = inference.status();
  return {
    ready: s.ready,
    backend: s.backend.kind,
    models: Object.fromEntries(
      Object.entries(s.models).map(([name, m]) => [
        name,
        {
          task: m.task,
          version: m.version,
          provider: m.provider,
          precision: m.precision,
          // Why other providers were passed over (first ready worker's view).
          providerAttempts: s.backend.workers.flatMap((w) => w.models).find((r) => r.model === name)?.attempts ?? [],
        },
      ]),
    ),
  };
}
