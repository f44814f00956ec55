/**
 * Runs N simulated portals against a gateway, each streaming M trucks one after another (M = 0: until the signal
 * fires), and summarises what was sent, what the gateway answered and the ground truth of every scan.
 *
 * Seeds: truck j of portal i is generateTruck(seed + j * portals + i), so every truck of a run is distinct and
 * `--seed S` with one portal starts with truck S. Portal i's detector (gains, dark, dead pixels) is seeded by
 * hashSeed(seed, 'portal', i).
 */
import { ScanlineError, invalidArgument } from '../../src/errors/index.js';
import { createDetector } from './detector.js';
import { PortalClient, type CalibrationFrames, type SimLog } from './portal-client.js';
import { hashSeed } from './random.js';
import { realismDetectorOptions } from './realism.js';
import { generateTruck, type GenerateTruckOptions } from './scene.js';
import { truthLabels, type TruthLabels } from './truth.js';

export interface SimulatePortalsOptions {
  /** Gateway portal endpoint, e.g. ws://127.0.0.1:8080/v1/portal. */
  url: string;
  /** Portals streaming in parallel. Default 1. */
  portals?: number;
  /** Trucks per portal; 0 = until `signal` aborts. Default 1. */
  trucks?: number;
  /** Seed of the first truck. Default 1. */
  seed?: number;
  /** Detector line rate, lines/s. Default 500. */
  lineRate?: number;
  /** 'realtime' paces lines at the line rate; 'max' sends as fast as the gateway acks. Default 'realtime'. */
  speed?: 'realtime' | 'max';
  /** Detector pixels per line. Default 1024. */
  pixels?: number;
  /** Lines per image slice. Default 16. */
  linesPerSlice?: number;
  /** Most un-acked frames per portal. Default 64. */
  maxInFlight?: number;
  /** Vehicle speed through the portal, m/s. Default 2.25. */
  vehicleSpeedMps?: number;
  /** False renders noiseless counts. Default true. */
  noise?: boolean;
  /** Calibration frames before each scan's slices; false: none (the gateway then uses the leading air lines). */
  calibration?: CalibrationFrames | false;
  /** Truck generation: threat and mismatch probabilities, cargo mix, vehicle kind, body length. */
  truck?: GenerateTruckOptions;
  /** Portal ids are `${portalIdPrefix}-${i + 1}`. Default 'sim'. */
  portalIdPrefix?: string;
  /** Credentials of the portals by portal id (`scanline portal add` prints them); each portal sends its own in hello. */
  credentials?: Readonly<Record<string, string>>;
  /** Pause between two trucks of a portal, ms. Default 2000 in realtime, 0 at max speed. */
  gapMs?: number;
  /** Most scan records kept in the summary (the newest). Default 1000. */
  keepScans?: number;
  signal?: AbortSignal;
  log?: SimLog;
  /** Called after every completed scan. */
  onScan?: (scan: SimulatedScan) => void;
}

export interface SimulatedScan {
  portalId: string;
  streamId: number;
  scanId: string;
  seed: number;
  lines: number;
  slices: number;
  gaps: Array<[number, number]>;
  resumes: number;
  truth: TruthLabels;
}

export interface SimulationFailure {
  portalId: string;
  seed?: number;
  code: string;
  message: string;
}

export interface SimulationSummary {
  url: string;
  portals: number;
  trucksPerPortal: number;
  seed: number;
  speed: 'realtime' | 'max';
  lineRate: number;
  pixels: number;
  scansCompleted: number;
  scansFailed: number;
  slicesSent: number;
  linesSent: number;
  framesSent: number;
  framesResent: number;
  bytesSent: number;
  reconnects: number;
  /** Gateway error frames received, by code. */
  errorsByCode: Record<string, number>;
  failures: SimulationFailure[];
  /** The newest `keepScans` completed scans with their ground truth. */
  scans: SimulatedScan[];
  /** True when the signal stopped the run. */
  aborted: boolean;
  durationMs: number;
}

export const DEFAULT_SIMULATION_OPTIONS = Object.freeze({
  portals: 1,
  trucks: 1, // per portal; 0 = forever
  seed: 1,
  lineRate: 500, // lines/s
  speed: 'realtime' as const,
  pixels: 1024,
  linesPerSlice: 16, // lines
  maxInFlight: 64, // frames
  vehicleSpeedMps: 2.25, // m/s
  portalIdPrefix: 'sim',
  keepScans: 1000,
  realtimeGapMs: 2000, // ms between trucks
});

const CODE = 'SCANLINE_ERR_CLI_USAGE' as const;

function int(name: string, v: unknown, lo: number, hi: number): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) throw invalidArgument(CODE, `an integer in [${lo}, ${hi}]`, name, v);
  return v;
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function abortableDelay(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (ms <= 0 || signal?.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Streams simulated trucks into a gateway. Resolves with the summary; rejects only on invalid options. */
export async function simulatePortals(options: SimulatePortalsOptions): Promise<SimulationSummary> {
  const d = DEFAULT_SIMULATION_OPTIONS;
  if (typeof options?.url !== 'string' || !/^wss?:\/\/.+/.test(options.url)) throw invalidArgument(CODE, 'a ws:// or wss:// URL', 'url', options?.url);
  const portals = int('portals', options.portals ?? d.portals, 1, 1024);
  const trucks = int('trucks', options.trucks ?? d.trucks, 0, Number.MAX_SAFE_INTEGER);
  const seed = int('seed', options.seed ?? d.seed, 0, Number.MAX_SAFE_INTEGER);
  const lineRate = options.lineRate ?? d.lineRate;
  if (typeof lineRate !== 'number' || !(lineRate > 0 && lineRate <= 20_000)) throw invalidArgument(CODE, 'a line rate in (0, 20000] Hz', 'lineRate', lineRate);
  const speed = options.speed ?? d.speed;
  if (speed !== 'realtime' && speed !== 'max') throw invalidArgument(CODE, "'realtime' or 'max'", 'speed', speed);
  const pixels = int('pixels', options.pixels ?? d.pixels, 1, 4096);
  const keepScans = int('keepScans', options.keepScans ?? d.keepScans, 0, 1_000_000);
  const gapMs = int('gapMs', options.gapMs ?? (speed === 'realtime' ? d.realtimeGapMs : 0), 0, 3_600_000);
  const prefix = options.portalIdPrefix ?? d.portalIdPrefix;
  const log: SimLog = options.log ?? (() => undefined);
  const signal = options.signal;
  if (trucks === 0 && !signal) throw invalidArgument(CODE, 'an AbortSignal (trucks 0 runs until it aborts)', 'signal', signal);

  // Build every portal's detector and client first: invalid options fail here, before anything connects.
  const setups = Array.from({ length: portals }, (_, i) => {
    const detector = createDetector({
      pixels,
      lineRateHz: lineRate,
      speedMps: options.vehicleSpeedMps ?? d.vehicleSpeedMps,
      noise: options.noise ?? true,
      seed: hashSeed(seed, 'portal', i),
      // The hard simulator's trucks come with its detector's effects (realism.ts), as in datasets and eval.
      ...realismDetectorOptions(options.truck?.realism, pixels),
    });
    const portalId = `${prefix}-${i + 1}`;
    const client = new PortalClient({
      url: options.url,
      portalId,
      detector,
      ...(options.credentials?.[portalId] !== undefined ? { token: options.credentials[portalId] } : {}),
      linesPerSlice: options.linesPerSlice ?? d.linesPerSlice,
      maxInFlight: options.maxInFlight ?? d.maxInFlight,
      speed,
      calibration: options.calibration,
      log,
      signal,
    });
    return { i, detector, portalId, client };
  });
  // Validate truck options once (generateTruck throws on bad ones).
  generateTruck(seed, setups[0].detector, options.truck);

  const started = performance.now();
  const summary: SimulationSummary = {
    url: options.url,
    portals,
    trucksPerPortal: trucks,
    seed,
    speed,
    lineRate,
    pixels,
    scansCompleted: 0,
    scansFailed: 0,
    slicesSent: 0,
    linesSent: 0,
    framesSent: 0,
    framesResent: 0,
    bytesSent: 0,
    reconnects: 0,
    errorsByCode: {},
    failures: [],
    scans: [],
    aborted: false,
    durationMs: 0,
  };
  const fail = (portalId: string, truckSeed: number | undefined, err: unknown): void => {
    summary.scansFailed++;
    const code = err instanceof ScanlineError ? err.code : 'SCANLINE_ERR_SIM_CONNECTION';
    const message = err instanceof Error ? err.message : String(err);
    if (summary.failures.length < 1000) summary.failures.push({ portalId, ...(truckSeed !== undefined ? { seed: truckSeed } : {}), code, message });
    log('warn', 'simulated scan failed', { portalId, seed: truckSeed, code, message });
  };

  const runPortal = async ({ i, detector, portalId, client }: (typeof setups)[number]): Promise<void> => {
    try {
      for (let j = 0; trucks === 0 || j < trucks; j++) {
        if (signal?.aborted) break;
        if (client.draining) {
          log('info', 'gateway draining; portal stops starting scans', { portalId });
          break;
        }
        const truckSeed = seed + j * portals + i;
        const scene = generateTruck(truckSeed, detector, options.truck);
        try {
          const result = await client.scan(scene);
          summary.scansCompleted++;
          const record: SimulatedScan = {
            portalId,
            streamId: result.streamId,
            scanId: result.scanId,
            seed: truckSeed,
            lines: result.completed.lines,
            slices: result.slices,
            gaps: result.completed.gaps,
            resumes: result.resumes,
            truth: truthLabels(scene, detector),
          };
          if (keepScans > 0) {
            summary.scans.push(record);
            if (summary.scans.length > keepScans) summary.scans.shift();
          }
          options.onScan?.(record);
        } catch (err) {
          if (signal?.aborted) break;
          fail(portalId, truckSeed, err);
          if (err instanceof ScanlineError && err.code === 'SCANLINE_ERR_SIM_CONNECTION') {
            if (trucks !== 0) break;
            // Forever mode (demos): wait for the gateway to come back.
            await abortableDelay(2_000, signal);
          }
        }
        if (trucks === 0 || j < trucks - 1) await abortableDelay(gapMs, signal);
      }
    } finally {
      await client.close();
    }
  };

  log('info', 'simulation starting', { url: options.url, portals, trucks, seed, speed, lineRate, pixels });
  await Promise.all(setups.map(runPortal));

  for (const { client } of setups) {
    summary.slicesSent += client.stats.slicesSent;
    summary.linesSent += client.stats.linesSent;
    summary.framesSent += client.stats.framesSent;
    summary.framesResent += client.stats.framesResent;
    summary.bytesSent += client.stats.bytesSent;
    summary.reconnects += client.stats.reconnects;
    for (const [code, n] of Object.entries(client.errorCounts)) summary.errorsByCode[code] = (summary.errorsByCode[code] ?? 0) + n;
  }
  summary.aborted = signal?.aborted ?? false;
  summary.durationMs = Math.round(performance.now() - started);
  log('info', 'simulation finished', { scansCompleted: summary.scansCompleted, scansFailed: summary.scansFailed, durationMs: summary.durationMs });
  return summary;
}
