/**
 * Gateway configuration: one schema with defaults and units, validated once at start-up (every problem listed
 * in one SCANLINE_ERR_CONFIG_INVALID error), then deeply frozen. Sources, lowest precedence first: defaults,
 * a JSON or YAML config file, SCANLINE_* environment variables (env.ts derives one per key), command-line flags.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { ScanlineError } from '../errors/index.js';
import { DEFAULT_INFERENCE_CONFIG, validateInferenceConfig, type InferenceConfig } from '../inference/config.js';
import { DEFAULT_STITCHER_OPTIONS } from '../stitch/defaults.js';
import { DEFAULT_OPERATOR_CONFIG, validateOperatorConfig, type OperatorConfig } from '../operator/config.js';
import { readConfigEnv } from './env.js';
import { deepFreeze, isPlainObject, mergeLayer } from './layers.js';

export { configLeaves, envVariableName, envVariables, readConfigEnv, type EnvLayer } from './env.js';

export { packageVersion } from './package-info.js';

export interface GatewayConfig {
  server: {
    /** Interface to listen on. 127.0.0.1 by default; set 0.0.0.0 to accept portals from the network. */
    host: string;
    /** TCP port; 0 picks a free port (logged and available as gateway.port). */
    port: number;
  };
  portal: {
    /** Accepted portal tokens; empty means no token is required. */
    tokens: string[];
    /** Open scans per portal connection. */
    maxOpenScans: number;
    /** Largest message the protocol accepts, bytes; larger ones get SCANLINE_ERR_PROTO_OVERSIZE. */
    maxMessageBytes: number;
    /** Largest control (text) message, bytes. */
    maxControlBytes: number;
    /** How far ahead of the first missing seq a frame may be, in frames. */
    reorderWindowSlices: number;
    /** How long a scan whose connection dropped waits for scan.resume before it is aborted, milliseconds. */
    resumeGraceMs: number;
    /** Idle timeout of portal sockets, seconds (uWS pings automatically; 0 disables; 1-7 is not allowed). */
    idleTimeoutSec: number;
    /** Bytes buffered towards one portal before it is considered stuck and disconnected. */
    maxBackpressureBytes: number;
    /**
     * Longest a received line waits before it is stitched, ms. A frame that completes a tile column (or a scan.end)
     * is stitched at once, so tile latency does not depend on this; other frames wait up to this long and are
     * stitched together, and the preview strips and raw-archive writes follow those jobs. 0 = one stitcher job per
     * frame. Each job costs a thread hand-off, a promise, a strip and a file write whatever its size: at 16-line frames
     * and 4,000 lines/s per portal, 50 ms cut the gateway's ingest CPU by ~28% (bench/RESULTS.md).
     */
    stitchMaxDelayMs: number;
  };
  stitch: {
    maxLines: number;
    chunkLines: number;
    reorderWindowLines: number;
    airLines: number;
    deadPixelFraction: number;
    attenuationMax: number;
    maxLinesPerJob: number;
    material: { minAttenuation: number; maxAttenuation: number; ratioThresholds: [number, number, number] };
    tile: { size: number; downsample: number; strideLines: number; overlapPixels: number };
    previewDownsample: number;
  };
  /** Models, execution providers, workers and dynamic batching (src/inference/config.ts documents each key). */
  inference: InferenceConfig;
  results: {
    /**
     * Identifies this gateway in results reports (DICOS machine origin), e.g. "lane-3.border-post-7"; '' = the
     * host name.
     */
    machineId: string;
    /**
     * Cosine similarity (0.5..<1) a goods tile's embedding needs to match an enrolled reference category, unless the
     * enrolment sets its own. Measured on the demo model: same-category tiles mostly 0.8-0.97, other categories'
     * 99th percentile 0.45-0.78 (models/README.md).
     */
    referenceMinSimilarity: number;
  };
  /** Operator screens: connection limit and per-screen backpressure (src/operator/config.ts documents each key). */
  operator: OperatorConfig;
  storage: {
    /** Directory for the SQLite database and scan images. */
    dataDir: string;
    /**
     * Write raw scan lines with O_DIRECT, bypassing the page cache, where the filesystem supports it (else buffered,
     * automatically). Raw lines are written once at up to ~260 MB/s and rarely read soon: through the page cache they
     * cost CPU for fresh cache pages and evict the database's. false = always buffered.
     */
    directIo: boolean;
  };
  metrics: {
    /** Serve Prometheus metrics on GET /metrics. false = no registry, no route (404), no collection. */
    enabled: boolean;
    /**
     * Distinct portal ids that get their own `portal` label value, portals; further portals share
     * portal="(other)". Keeps the label set bounded when portals are not authenticated by token.
     */
    portalLabelLimit: number;
    /** Also export Node.js process metrics (CPU, memory, heap, GC, event-loop delay, file descriptors). */
    processMetrics: boolean;
  };
  shutdown: {
    /**
     * On SIGTERM/SIGINT: how long open scans get to end on their own (portals are told, in a `draining` message)
     * and queued tiles get to be scored, ms. Scans still open then are aborted with their received lines kept.
     */
    drainTimeoutMs: number;
    /**
     * Hard limit from the signal to process exit, ms: a shutdown that has not finished by then (a stuck socket or
     * disk) is abandoned and the process exits with code 1. At least drainTimeoutMs + 1000.
     */
    exitTimeoutMs: number;
  };
  log: {
    level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  };
}

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K] };
export type GatewayConfigInput = DeepPartial<GatewayConfig>;

export const DEFAULT_CONFIG: GatewayConfig = {
  server: { host: '127.0.0.1', port: 8080 },
  portal: {
    tokens: [],
    maxOpenScans: 4,
    maxMessageBytes: 8 * 1024 * 1024, // bytes: 1000 lines x 2048 px x 2 energies x 2 B fits
    maxControlBytes: 64 * 1024, // bytes
    reorderWindowSlices: 256, // frames
    resumeGraceMs: 30_000, // ms
    idleTimeoutSec: 60, // s
    maxBackpressureBytes: 4 * 1024 * 1024, // bytes
    stitchMaxDelayMs: 50, // ms
  },
  stitch: {
    ...DEFAULT_STITCHER_OPTIONS,
    material: {
      ...DEFAULT_STITCHER_OPTIONS.material,
      ratioThresholds: [...DEFAULT_STITCHER_OPTIONS.material.ratioThresholds] as [number, number, number],
    },
    tile: { ...DEFAULT_STITCHER_OPTIONS.tile },
  },
  inference: structuredClone(DEFAULT_INFERENCE_CONFIG),
  results: { machineId: '', referenceMinSimilarity: 0.85 },
  operator: { ...DEFAULT_OPERATOR_CONFIG },
  storage: { dataDir: './data', directIo: true },
  metrics: { enabled: true, portalLabelLimit: 256, processMetrics: true },
  shutdown: { drainTimeoutMs: 10_000, exitTimeoutMs: 15_000 }, // ms
  log: { level: 'info' },
};

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function describe(v: unknown): string {
  const s = JSON.stringify(v);
  return `${s === undefined ? String(v) : s} of type ${Array.isArray(v) ? 'array' : typeof v}`;
}

function check(problems: string[], ok: boolean, expected: string, name: string, value: unknown): void {
  if (!ok) problems.push(`Expected ${expected} for ${name} but received ${describe(value)}`);
}

function int(v: unknown, min: number, max: number): boolean {
  return Number.isInteger(v) && (v as number) >= min && (v as number) <= max;
}
function num(v: unknown, min: number, max: number): boolean {
  return typeof v === 'number' && Number.isFinite(v) && v >= min && v <= max;
}

function validate(c: GatewayConfig): string[] {
  const p: string[] = [];
  check(p, typeof c.server.host === 'string' && c.server.host.length > 0, 'a host name or address', 'server.host', c.server.host);
  check(p, int(c.server.port, 0, 65535), 'an integer 0..65535', 'server.port', c.server.port);
  check(
    p,
    Array.isArray(c.portal.tokens) && c.portal.tokens.every((t) => typeof t === 'string' && t.length >= 8),
    'an array of strings of at least 8 characters',
    'portal.tokens',
    c.portal.tokens,
  );
  check(p, int(c.portal.maxOpenScans, 1, 64), 'an integer 1..64', 'portal.maxOpenScans', c.portal.maxOpenScans);
  check(p, int(c.portal.maxMessageBytes, 1024, 64 * 1024 * 1024), 'an integer 1024..67108864', 'portal.maxMessageBytes', c.portal.maxMessageBytes);
  check(p, int(c.portal.maxControlBytes, 1024, 1024 * 1024), 'an integer 1024..1048576', 'portal.maxControlBytes', c.portal.maxControlBytes);
  check(p, int(c.portal.reorderWindowSlices, 1, 65536), 'an integer 1..65536', 'portal.reorderWindowSlices', c.portal.reorderWindowSlices);
  check(p, int(c.portal.resumeGraceMs, 0, 3_600_000), 'an integer 0..3600000', 'portal.resumeGraceMs', c.portal.resumeGraceMs);
  check(
    p,
    c.portal.idleTimeoutSec === 0 || int(c.portal.idleTimeoutSec, 8, 960),
    '0 or an integer 8..960 (uWebSockets.js aborts on 1..7)',
    'portal.idleTimeoutSec',
    c.portal.idleTimeoutSec,
  );
  check(p, int(c.portal.stitchMaxDelayMs, 0, 1000), 'an integer 0..1000', 'portal.stitchMaxDelayMs', c.portal.stitchMaxDelayMs);
  check(
    p,
    int(c.portal.maxBackpressureBytes, 64 * 1024, 1 << 30),
    'an integer 65536..1073741824',
    'portal.maxBackpressureBytes',
    c.portal.maxBackpressureBytes,
  );
  const s = c.stitch;
  check(p, int(s.maxLines, 64, 1 << 20), 'an integer 64..1048576', 'stitch.maxLines', s.maxLines);
  check(p, int(s.chunkLines, 1, 65536), 'an integer 1..65536', 'stitch.chunkLines', s.chunkLines);
  check(p, int(s.reorderWindowLines, 0, 1 << 20), 'an integer 0..1048576', 'stitch.reorderWindowLines', s.reorderWindowLines);
  check(p, int(s.airLines, 1, 4096), 'an integer 1..4096', 'stitch.airLines', s.airLines);
  check(p, num(s.deadPixelFraction, 0, 1), 'a number 0..1', 'stitch.deadPixelFraction', s.deadPixelFraction);
  check(p, num(s.attenuationMax, 0.1, 30), 'a number 0.1..30', 'stitch.attenuationMax', s.attenuationMax);
  check(p, int(s.maxLinesPerJob, 1, 65536), 'an integer 1..65536', 'stitch.maxLinesPerJob', s.maxLinesPerJob);
  check(p, int(s.previewDownsample, 1, 16), 'an integer 1..16', 'stitch.previewDownsample', s.previewDownsample);
  check(p, int(s.tile?.size, 8, 1024), 'an integer 8..1024', 'stitch.tile.size', s.tile?.size);
  check(p, int(s.tile?.downsample, 1, 16), 'an integer 1..16', 'stitch.tile.downsample', s.tile?.downsample);
  check(p, int(s.tile?.strideLines, 1, 65536), 'an integer 1..65536', 'stitch.tile.strideLines', s.tile?.strideLines);
  check(p, int(s.tile?.overlapPixels, 0, 4095), 'an integer 0..4095', 'stitch.tile.overlapPixels', s.tile?.overlapPixels);
  if (int(s.tile?.size, 8, 1024) && int(s.tile?.downsample, 1, 16) && int(s.tile?.overlapPixels, 0, 4095)) {
    check(
      p,
      s.tile.overlapPixels < s.tile.size * s.tile.downsample,
      `an integer below the tile span ${s.tile.size * s.tile.downsample}`,
      'stitch.tile.overlapPixels',
      s.tile.overlapPixels,
    );
  }
  check(p, num(s.material?.minAttenuation, 0, 30), 'a number 0..30', 'stitch.material.minAttenuation', s.material?.minAttenuation);
  check(p, num(s.material?.maxAttenuation, 0, 30), 'a number 0..30', 'stitch.material.maxAttenuation', s.material?.maxAttenuation);
  const t = s.material?.ratioThresholds;
  check(
    p,
    Array.isArray(t) && t.length === 3 && t.every((x) => num(x, 0, 10)) && t[0] > t[1] && t[1] > t[2],
    'three decreasing numbers in 0..10',
    'stitch.material.ratioThresholds',
    t,
  );
  p.push(...validateInferenceConfig(c.inference));
  check(
    p,
    typeof c.results.machineId === 'string' && c.results.machineId.length <= 256,
    'a string of at most 256 characters',
    'results.machineId',
    c.results.machineId,
  );
  check(p, num(c.results.referenceMinSimilarity, 0.5, 0.999), 'a number 0.5..0.999', 'results.referenceMinSimilarity', c.results.referenceMinSimilarity);
  p.push(...validateOperatorConfig(c.operator));
  check(p, typeof c.storage.dataDir === 'string' && c.storage.dataDir.length > 0, 'a directory path', 'storage.dataDir', c.storage.dataDir);
  check(p, typeof c.storage.directIo === 'boolean', 'a boolean', 'storage.directIo', c.storage.directIo);
  check(p, typeof c.metrics.enabled === 'boolean', 'a boolean', 'metrics.enabled', c.metrics.enabled);
  check(p, int(c.metrics.portalLabelLimit, 1, 10_000), 'an integer 1..10000', 'metrics.portalLabelLimit', c.metrics.portalLabelLimit);
  check(p, typeof c.metrics.processMetrics === 'boolean', 'a boolean', 'metrics.processMetrics', c.metrics.processMetrics);
  check(p, int(c.shutdown.drainTimeoutMs, 0, 3_600_000), 'an integer 0..3600000', 'shutdown.drainTimeoutMs', c.shutdown.drainTimeoutMs);
  check(p, int(c.shutdown.exitTimeoutMs, 1_000, 3_700_000), 'an integer 1000..3700000', 'shutdown.exitTimeoutMs', c.shutdown.exitTimeoutMs);
  if (int(c.shutdown.drainTimeoutMs, 0, 3_600_000) && int(c.shutdown.exitTimeoutMs, 1_000, 3_700_000)) {
    check(
      p,
      c.shutdown.exitTimeoutMs >= c.shutdown.drainTimeoutMs + 1_000,
      `an integer of at least shutdown.drainTimeoutMs + 1000 (${c.shutdown.drainTimeoutMs + 1_000})`,
      'shutdown.exitTimeoutMs',
      c.shutdown.exitTimeoutMs,
    );
  }
  check(p, LOG_LEVELS.includes(c.log.level), `one of ${LOG_LEVELS.join(', ')}`, 'log.level', c.log.level);
  return p;
}

/**
 * Builds the effective configuration from defaults and the given layers (later layers win), validates it and
 * returns it frozen. Throws SCANLINE_ERR_CONFIG_INVALID listing every problem (unknown keys included).
 */
export function resolveConfig(...layers: GatewayConfigInput[]): GatewayConfig {
  return resolveLayers(layers, [], new Map());
}

export interface LoadConfigOptions {
  /** JSON config file (lowest precedence after the defaults). */
  file?: string;
  /** Environment to read SCANLINE_* overrides from (default process.env); false reads none. */
  env?: NodeJS.ProcessEnv | false;
  /** Layers above the environment, e.g. command-line flags, later ones winning. */
  layers?: GatewayConfigInput[];
}

/**
 * The effective configuration of `scanline serve`: defaults < config file < environment < `layers`. Throws one
 * SCANLINE_ERR_CONFIG_INVALID listing every problem: unknown keys and variables, values that do not parse, values
 * out of range (a value set by a variable names it, e.g. "... for server.port but received 70000 ... (from
 * SCANLINE_SERVER_PORT)").
 */
export function loadConfig(options: LoadConfigOptions = {}): GatewayConfig {
  const layers: GatewayConfigInput[] = [];
  if (options.file !== undefined) layers.push(readConfigFile(options.file));
  let problems: string[] = [];
  let sources = new Map<string, string>();
  if (options.env !== false) {
    const fromEnv = readConfigEnv(DEFAULT_CONFIG as unknown as Record<string, unknown>, options.env ?? process.env);
    layers.push(fromEnv.layer as GatewayConfigInput);
    problems = fromEnv.problems;
    sources = fromEnv.sources;
  }
  layers.push(...(options.layers ?? []));
  return resolveLayers(layers, problems, sources);
}

function resolveLayers(layers: GatewayConfigInput[], earlier: string[], sources: Map<string, string>): GatewayConfig {
  const unknown: string[] = [];
  let merged: unknown = structuredClone(DEFAULT_CONFIG);
  for (const layer of layers) merged = mergeLayer(merged, layer, '', unknown);
  const config = merged as GatewayConfig;
  const invalid = validate(config).map((problem) => {
    for (const [path, variable] of sources) if (problem.includes(` for ${path} but `)) return `${problem} (from ${variable})`;
    return problem;
  });
  const problems = [...earlier, ...unknown.map((k) => `Unknown configuration key ${k}`), ...invalid];
  if (problems.length > 0) {
    throw new ScanlineError('SCANLINE_ERR_CONFIG_INVALID', `invalid configuration:\n  - ${problems.join('\n  - ')}`, { problems });
  }
  return deepFreeze(config);
}

/** Keys whose values are secrets: shown as "<redacted>" by printableConfig. */
const SECRET_KEYS: ReadonlyArray<readonly string[]> = [['portal', 'tokens']];

/**
 * The configuration as `scanline serve --print-config` shows it: every key with its effective value, secrets
 * (portal tokens) replaced by "<redacted>" so the output can be pasted into a ticket.
 */
export function printableConfig(config: GatewayConfig): Record<string, unknown> {
  const copy = structuredClone(config) as unknown as Record<string, unknown>;
  for (const path of SECRET_KEYS) {
    let o: unknown = copy;
    for (const k of path.slice(0, -1)) o = isPlainObject(o) ? o[k] : undefined;
    const last = path[path.length - 1];
    if (!isPlainObject(o) || o[last] === undefined) continue;
    o[last] = Array.isArray(o[last]) ? (o[last] as unknown[]).map(() => '<redacted>') : '<redacted>';
  }
  return copy;
}

/**
 * Reads a config file as one layer for resolveConfig: YAML when the name ends in .yaml or .yml (YAML 1.2 core schema,
 * duplicate keys refused), JSON otherwise. Unreadable or unparsable files throw SCANLINE_ERR_CONFIG_INVALID.
 */
export function readConfigFile(path: string): GatewayConfigInput {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ScanlineError('SCANLINE_ERR_CONFIG_INVALID', `cannot read config file ${path}: ${(err as Error).message}`);
  }
  const yaml = /\.ya?ml$/i.test(path);
  let value: unknown;
  try {
    // YAML 1.2 core schema: only true/false are booleans (no YAML 1.1 "yes"/"no"/"on"), duplicate keys are errors.
    value = yaml ? parseYaml(text, { version: '1.2', schema: 'core', uniqueKeys: true, strict: true, prettyErrors: true }) : JSON.parse(text);
  } catch (err) {
    throw new ScanlineError('SCANLINE_ERR_CONFIG_INVALID', `config file ${path} is not valid ${yaml ? 'YAML' : 'JSON'}: ${(err as Error).message}`);
  }
  if (!isPlainObject(value)) {
    throw new ScanlineError(
      'SCANLINE_ERR_CONFIG_INVALID',
      `config file ${path} is not valid ${yaml ? 'YAML' : 'JSON'} configuration: the top level is not an object (mapping)`,
    );
  }
  return value as GatewayConfigInput;
}
