/**
 * Gateway configuration: one schema with defaults and units, validated once at start-up (every problem listed
 * in one SCANLINE_ERR_CONFIG_INVALID error), then deeply frozen. Sources, lowest precedence first: defaults,
 * a JSON or YAML config file, SCANLINE_* environment variables (env.ts derives one per key), command-line flags.
 */
import { readFileSync } from 'node:fs';
import { resolve as resolvePath } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { ScanlineError } from '../errors/index.js';
import { AuthConfigSchema } from '../identity/index.js';
import { PortalConfigSchema } from '../ingest/index.js';
import { defaultModelsDir, InferenceConfigSchema, refineInferenceConfig } from '../inference/index.js';
import { OperatorConfigSchema, refineOperatorConfig } from '../operator/index.js';
import { deepFreeze, defaultsOf, literalUnion, redactSecrets, SchemaValidator, secretPaths, type Static, Type } from '../schema/index.js';
import { RetentionConfigSchema } from '../retention/index.js';
import { DicosDestinationSchema, DicosListenerConfigSchema, DicosPushConfigSchema, ImportConfigSchema } from './dicos.js';
import { refineStitcherTuning, StitcherTuningSchema } from '../stitch/index.js';
import { renderConfigDocs } from './docs.js';
import { readConfigEnv } from './env.js';
import { isPlainObject, mergeLayer } from './layers.js';

/** Log levels, most severe first; 'silent' writes nothing. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export { configLeaves, envVariableName, envVariables, readConfigEnv, type EnvLayer } from './env.js';

export { packageVersion } from './package-info.js';
export type { DicosDestination, DicosListenerConfig, DicosPushConfig, ImportConfig } from './dicos.js';

export const GatewayConfigSchema = Type.Object(
  {
    server: Type.Object(
      {
        host: Type.String({
          minLength: 1,
          default: '127.0.0.1',
          expected: 'a host name or address',
          description: 'Interface to listen on. 127.0.0.1 by default; set 0.0.0.0 to accept portals from the network.',
        }),
        port: Type.Integer({
          minimum: 0,
          maximum: 65_535,
          default: 8080,
          description: 'TCP port; 0 picks a free port (logged and available as gateway.port).',
        }),
        allowedHosts: Type.Array(Type.String({ minLength: 1, maxLength: 253, pattern: '^[A-Za-z0-9.:_\\[\\]-]+$', expected: 'a host name or address' }), {
          default: [],
          maxItems: 64,
          description:
            "Host names (or addresses) clients may use to reach the gateway, checked against every request's Host header (a page on a " +
            'rebinding DNS name is refused with SCANLINE_ERR_HTTP_HOST). Always allowed: localhost, 127.0.0.1, ::1, the bound address and, when ' +
            "bound to all interfaces, this machine's host name and interface addresses. Add the name officers type, e.g. scanline.customs.example.",
        }),
        tls: Type.Object(
          {
            cert: Type.String({
              maxLength: 4096,
              default: '',
              description: "PEM certificate chain file (server certificate first). '' = no TLS: plain HTTP and ws:// (behind a TLS-terminating proxy only).",
            }),
            key: Type.String({ maxLength: 4096, default: '', description: 'PEM private key file of the certificate.' }),
            keyPassphrase: Type.String({
              maxLength: 1024,
              default: '',
              secret: true,
              description: "Passphrase of an encrypted key file ('' = not encrypted).",
            }),
            minVersion: literalUnion(['TLSv1.2'], {
              default: 'TLSv1.2',
              description:
                'Oldest TLS version accepted. uWebSockets.js refuses TLS 1.0 and 1.1 itself (measured with openssl s_client), so TLS 1.2 is the floor; it offers no way to refuse 1.2.',
            }),
          },
          {
            additionalProperties: false,
            default: {},
            description:
              'TLS for every route and WebSocket (https://, wss://); the files are read again on SIGHUP without dropping open connections (docs/security.md).',
          },
        ),
        maxConnectionsPerAddress: Type.Integer({
          minimum: 1,
          maximum: 100_000,
          default: 64,
          unit: 'connections',
          description:
            'Open WebSockets (portals and operator screens together) from one client address; more are refused (SCANLINE_ERR_LIMIT_CONNECTIONS). ' +
            'Behind a reverse proxy every client has its address: raise it.',
        }),
        maxRequestsPerAddress: Type.Integer({
          minimum: 1,
          maximum: 100_000,
          default: 16,
          unit: 'requests',
          description:
            'HTTP requests in progress from one client address; more are refused at once (SCANLINE_ERR_LIMIT_REQUESTS, 429). Behind a reverse proxy: raise it.',
        }),
        requestsPerSecondPerAddress: Type.Integer({
          minimum: 1,
          maximum: 1_000_000,
          default: 50,
          unit: 'requests/s',
          description:
            'HTTP requests and WebSocket upgrades one client address may make per second, sustained (twice as many in a burst); more are refused ' +
            'before authentication (SCANLINE_ERR_LIMIT_RATE, 429), so a flood costs a map lookup per request. Behind a reverse proxy: raise it.',
        }),
        refusalDelayMs: Type.Integer({
          minimum: 0,
          maximum: 10_000,
          default: 1000,
          unit: 'ms',
          description:
            'How long a refusal for a limit at the HTTP door (rate, requests, images, connections, screens: 429 or 503) is held before it is answered, so that a client ' +
            'retrying on each answer makes one attempt per this delay instead of flooding the event loop (a tarpit). 0: answer at once.',
        }),
        maxRefusalDelayMs: Type.Integer({
          minimum: 0,
          maximum: 60_000,
          default: 8000,
          unit: 'ms',
          description:
            'The longest a limit refusal is held for a repeat offender: an address with 16 refusals already held waits twice server.refusalDelayMs, with 32 four times, ' +
            'and so on up to this, so that hundreds of sockets of one address come back this much less often. A client that meets a limit now and then waits ' +
            'server.refusalDelayMs. At or below server.refusalDelayMs: no escalation.',
        }),
        maxDelayedRefusals: Type.Integer({
          minimum: 0,
          maximum: 100_000,
          default: 4096,
          unit: 'refusals',
          description: 'Limit refusals held at once (server.refusalDelayMs); beyond this they are answered at once. Each holds its socket.',
        }),
        imageCacheBytes: Type.Integer({
          minimum: 0,
          maximum: 4 * 1024 ** 3,
          default: 64 * 1024 ** 2,
          unit: 'bytes',
          description:
            'png16 images of ended scans kept in memory for later requests (the lane screen, a second officer, a retry), for at most 5 minutes, ' +
            'least recently used dropped first; an image over a quarter of this is not kept. Concurrent requests for one image share one render ' +
            'whatever this is. 0: keep none.',
        }),
        imageBytesPerSecondPerAddress: Type.Integer({
          minimum: 1024 * 1024,
          maximum: 100 * 1024 ** 3,
          default: 32 * 1024 ** 2,
          unit: 'bytes/s',
          description:
            'How fast one client address is sent png16 scan images, other scan images over 256 KiB (?view=) and DICOS files (bursts of one second allowed): a screen gets a 2048 px truck ' +
            "(~15 MB) in half a second, and no client can take the gateway's cores and network by pulling images as fast as they come. " +
            'Behind a reverse proxy every client has its address: raise it.',
        }),
        maxConcurrentImages: Type.Integer({
          minimum: 1,
          maximum: 64,
          default: 1,
          unit: 'images',
          description:
            'Scan images rendered at once (GET /v1/scans/:id/image); each holds the scan in memory and uses the thread pool the raw archive writes through.',
        }),
        maxQueuedImages: Type.Integer({
          minimum: 0,
          maximum: 1024,
          default: 8,
          unit: 'images',
          description: 'Image requests waiting for a render slot; more are refused at once (SCANLINE_ERR_LIMIT_IMAGES, 503).',
        }),
        allowedOrigins: Type.Array(
          Type.String({ minLength: 1, maxLength: 300, pattern: '^https?://[^/]+$', expected: 'an origin such as https://review.example' }),
          {
            default: [],
            maxItems: 64,
            description:
              "Origins besides the gateway's own whose pages may send state-changing requests and open the operator feed with a session " +
              '(SCANLINE_ERR_AUTH_ORIGIN otherwise), e.g. a review workstation served elsewhere. Empty: same origin only.',
          },
        ),
      },
      { additionalProperties: false, default: {}, description: 'Where the gateway listens (portals, operator screens, HTTP API, metrics).' },
    ),
    auth: AuthConfigSchema,
    portal: PortalConfigSchema,
    stitch: StitcherTuningSchema,
    inference: InferenceConfigSchema,
    results: Type.Object(
      {
        machineId: Type.String({
          maxLength: 256,
          default: '',
          description: "Identifies this gateway in results reports (DICOS machine origin), e.g. 'lane-3.border-post-7'; '' = the host name.",
        }),
        referenceMinSimilarity: Type.Number({
          minimum: 0.5,
          maximum: 0.999,
          default: 0.85,
          description:
            "Cosine similarity a goods tile's embedding needs to match an enrolled reference category, unless the enrolment sets its own. " +
            "The default lies between the demo goods model's same-category and other-category similarities (models/README.md, 'Reference samples').",
        }),
        triage: Type.Object(
          {
            greenMinConfidence: Type.Number({
              minimum: 0.5,
              maximum: 1,
              default: 0.98,
              description:
                'GREEN (may be released without an image review) needs a CLEAR scan whose every goods segment has at least this calibrated confidence; ' +
                "below it a CLEAR scan is AMBER. The defaults of both bounds are chosen on validation trucks for GREEN precision >= 99.5% (models/README.md, 'Triage'); " +
                '1 turns GREEN off.',
            }),
            greenMaxThreatPeak: Type.Number({
              minimum: 0,
              maximum: 1,
              default: 0.5,
              description:
                "GREEN also needs the scan's most suspicious threat cell at most this share of its label's threshold (a scan that came close to " +
                'an alert is reviewed). 1: any scan without an alert may be GREEN.',
            }),
          },
          { additionalProperties: false, default: {}, description: 'Triage of every scan: GREEN, AMBER (review) or RED (ALARM).' },
        ),
      },
      { additionalProperties: false, default: {}, description: 'Machine results: suggestions, alerts, declaration check.' },
    ),
    references: Type.Object(
      {
        approvals: Type.Union([Type.Literal(1), Type.Literal(2)], {
          default: 2,
          expected: '1 or 2',
          description:
            'Supervisors needed for a change of the reference categories (enrol, replace, delete): 2 = proposed by one, in effect when a different ' +
            'one approves (four eyes); 1 = in effect at once (a single-supervisor site; still audited).',
        }),
      },
      { additionalProperties: false, default: {}, description: "Reference categories change the machine's opinion: who must agree to a change." },
    ),
    operator: OperatorConfigSchema,
    retention: RetentionConfigSchema,
    import: ImportConfigSchema,
    dicos: Type.Object(
      {
        institution: Type.Union([Type.String({ minLength: 1, maxLength: 64 }), Type.Null()], {
          default: null,
          description: 'Institution Name written into every DICOS object the gateway writes (e.g. the customs office and checkpoint); null writes it empty.',
        }),
        listener: DicosListenerConfigSchema,
        destinations: Type.Array(DicosDestinationSchema, {
          default: [],
          maxItems: 64,
          description: 'Where the DICOS objects of every final scan are pushed by C-STORE (archives, review workstations); empty: nowhere.',
        }),
        push: DicosPushConfigSchema,
      },
      { additionalProperties: false, default: {}, description: 'DICOS objects the gateway writes (GET /v1/scans/:scanId/dicos, docs/dicos.md).' },
    ),
    storage: Type.Object(
      {
        dataDir: Type.String({
          minLength: 1,
          default: './data',
          expected: 'a directory path',
          description: 'Directory for the SQLite database and scan images (a relative path is taken from the working directory).',
        }),
        directIo: Type.Boolean({
          default: true,
          description:
            'Write raw scan lines with O_DIRECT, bypassing the page cache, where the filesystem supports it (else buffered, automatically). ' +
            "Raw lines are written once at up to ~260 MB/s and rarely read soon: through the page cache they cost CPU for fresh cache pages and evict the database's " +
            "(bench/RESULTS.md, 'Raw archive with O_DIRECT'). " +
            'false = always buffered.',
        }),
        minFreeBytes: Type.Integer({
          minimum: 0,
          maximum: 2 ** 50,
          default: 2 * 1024 * 1024 * 1024,
          unit: 'bytes',
          description:
            "Free space the data directory's disk must keep: below it new scans are refused (SCANLINE_ERR_STORAGE_FULL), /readyz is not ready and " +
            'ScanlineDiskSpaceLow fires; open scans go on. A busy lane writes ~5 GB an hour (2048 px x 2 energies at 1000 lines/s, trucks back to back).',
        }),
        reserveBytes: Type.Integer({
          minimum: 0,
          maximum: 1024 * 1024 * 1024,
          default: 64 * 1024 * 1024,
          unit: 'bytes',
          description:
            "A file of this size held in the data directory and given up when the disk is full, so that officers' decisions and the audit trail of " +
            "people's acts can still be written (not seals, refusals or a session's last use: seals are made once space is back); made again " +
            'once space is back, and taken over after a restart. 0 = none.',
        }),
        diskCheckIntervalMs: Type.Integer({
          minimum: 100,
          maximum: 600_000,
          default: 5_000,
          unit: 'ms',
          description: "How often the free space of the data directory's disk is read (statfs).",
        }),
        checkpointIntervalMs: Type.Integer({
          minimum: 100,
          maximum: 60_000,
          default: 1_000,
          unit: 'ms',
          description:
            "How often a worker thread checkpoints the scan database's WAL into the database file (PASSIVE: never waits for a writer). " +
            "SQLite's own checkpoint would run inside a commit on the event loop.",
        }),
        ackMaxDelayMs: Type.Integer({
          minimum: 0,
          maximum: 100,
          default: 2,
          unit: 'ms',
          description:
            'Group commit: how long a sync may wait before it starts, gathering the frames of every scan that arrive meanwhile into one fdatasync per file. ' +
            'Frames arriving while a sync runs share the next one. 0 = start at once. Bounds the extra ack delay on a quiet gateway; ' +
            "under load the syncs batch on their own (bench/RESULTS.md, 'Durable acks').",
        }),
      },
      { additionalProperties: false, default: {}, description: 'Scan records (SQLite) and raw images (files).' },
    ),
    metrics: Type.Object(
      {
        enabled: Type.Boolean({ default: true, description: 'Serve Prometheus metrics on GET /metrics. false = no registry, no route (404), no collection.' }),
        portalLabelLimit: Type.Integer({
          minimum: 1,
          maximum: 10_000,
          default: 256,
          unit: 'portals',
          description: 'Distinct portal ids that get their own `portal` label value; further portals share portal="(other)". Keeps the label set bounded.',
        }),
        processMetrics: Type.Boolean({
          default: true,
          description: 'Also export Node.js process metrics (CPU, memory, heap, GC, event-loop delay, file descriptors).',
        }),
      },
      { additionalProperties: false, default: {}, description: 'Prometheus metrics.' },
    ),
    shutdown: Type.Object(
      {
        drainTimeoutMs: Type.Integer({
          minimum: 0,
          maximum: 3_600_000,
          default: 10_000,
          unit: 'ms',
          description:
            'On SIGTERM/SIGINT: how long open scans get to end on their own (portals are told, in a `draining` message) and queued tiles get ' +
            'to be scored. Scans still open then are aborted with their received lines kept.',
        }),
        exitTimeoutMs: Type.Integer({
          minimum: 1_000,
          maximum: 3_700_000,
          default: 15_000,
          unit: 'ms',
          description:
            'Hard limit from the signal to process exit: a shutdown that has not finished by then (a stuck socket or disk) is abandoned and ' +
            'the process exits with code 1. At least drainTimeoutMs + 1000.',
        }),
      },
      { additionalProperties: false, default: {}, description: 'Graceful shutdown.' },
    ),
    log: Type.Object(
      {
        level: literalUnion(LOG_LEVELS, { default: 'info', description: 'Lowest level written.' }),
      },
      { additionalProperties: false, default: {}, description: 'Logging.' },
    ),
  },
  { additionalProperties: false },
);

export type GatewayConfig = Static<typeof GatewayConfigSchema>;

type DeepPartial<T> = { [K in keyof T]?: T[K] extends object ? (T[K] extends readonly unknown[] ? T[K] : DeepPartial<T[K]>) : T[K] };
export type GatewayConfigInput = DeepPartial<GatewayConfig>;

/** Every key at its default: what an empty config file and environment give. */
export const DEFAULT_CONFIG: Readonly<GatewayConfig> = deepFreeze(defaultsOf(GatewayConfigSchema));

const configValidator = new SchemaValidator(GatewayConfigSchema, {
  unknownKey: (path) => `Unknown configuration key ${path}`,
  refine: (c, ctx) => {
    // Each section's rules run once its object exists; their own ctx.ok() checks skip fields that failed already.
    const isObject = (v: unknown): boolean => typeof v === 'object' && v !== null;
    if (isObject(c.stitch) && isObject(c.stitch.tile) && isObject(c.stitch.material)) refineStitcherTuning(c.stitch, ctx.at('stitch'));
    if (isObject(c.inference) && isObject(c.inference.batching)) refineInferenceConfig(c.inference, ctx.at('inference'));
    if (isObject(c.operator)) refineOperatorConfig(c.operator, ctx.at('operator'));
    const tls = isObject(c.server) ? c.server.tls : undefined;
    if (tls && isObject(tls) && ctx.ok('server.tls.cert', 'server.tls.key') && (tls.cert === '') !== (tls.key === '')) {
      const missing = tls.cert === '' ? 'server.tls.cert' : 'server.tls.key';
      ctx.fail(missing, `a file path (server.tls.cert and server.tls.key go together)`, '');
    }
    const oidc = isObject(c.auth) ? c.auth.oidc : undefined;
    if (oidc && isObject(oidc) && ctx.ok('auth.oidc.issuer', 'auth.oidc.clientId', 'auth.oidc.redirectUri') && oidc.issuer !== '') {
      if (!/^https?:\/\/[^/]/.test(oidc.issuer)) ctx.fail('auth.oidc.issuer', 'an http(s) URL', oidc.issuer);
      if (oidc.clientId === '') ctx.fail('auth.oidc.clientId', 'the client id registered with the provider (auth.oidc.issuer is set)', '');
      if (!/^https?:\/\/[^/]+\/v1\/session\/oidc\/callback$/.test(oidc.redirectUri)) {
        ctx.fail('auth.oidc.redirectUri', "this gateway's URL ending in /v1/session/oidc/callback (auth.oidc.issuer is set)", oidc.redirectUri);
      }
    }
    const sd = c.shutdown;
    if (isObject(sd) && ctx.ok('shutdown.drainTimeoutMs', 'shutdown.exitTimeoutMs') && sd.exitTimeoutMs < sd.drainTimeoutMs + 1_000) {
      ctx.fail('shutdown.exitTimeoutMs', `an integer of at least shutdown.drainTimeoutMs + 1000 (${sd.drainTimeoutMs + 1_000})`, sd.exitTimeoutMs);
    }
  },
});

/** docs/config.md as the schema says it should be (`npm run docs:config` writes it). */
export function configDocs(): string {
  return renderConfigDocs(GatewayConfigSchema);
}

/** Every problem of a complete configuration object, in schema order; empty when valid. */
export function configProblems(config: unknown): string[] {
  return configValidator.problems(config);
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
    const fromEnv = readConfigEnv(DEFAULT_CONFIG as unknown as Record<string, unknown>, options.env ?? process.env, secretPaths(GatewayConfigSchema));
    layers.push(fromEnv.layer as GatewayConfigInput);
    problems = fromEnv.problems;
    sources = fromEnv.sources;
  }
  layers.push(...(options.layers ?? []));
  return resolveLayers(layers, problems, sources);
}

function resolveLayers(layers: GatewayConfigInput[], earlier: string[], sources: Map<string, string>): GatewayConfig {
  let merged: unknown = structuredClone(DEFAULT_CONFIG);
  for (const layer of layers) merged = mergeLayer(merged, layer);
  const invalid = configProblems(merged).map((problem) => {
    for (const [path, variable] of sources) if (problem.includes(` for ${path} but `)) return `${problem} (from ${variable})`;
    return problem;
  });
  const problems = [...earlier, ...invalid];
  if (problems.length > 0) {
    throw new ScanlineError('SCANLINE_ERR_CONFIG_INVALID', `invalid configuration:\n  - ${problems.join('\n  - ')}`, { problems });
  }
  return deepFreeze(merged as GatewayConfig);
}

/**
 * The configuration as `scanline serve --print-config` shows it: every key with its effective value, secrets (keys
 * the schema marks `secret`, e.g. portal tokens) replaced by "<redacted>" so the output can be pasted into a ticket,
 * and paths as the gateway resolves them (the data directory made absolute, the default models directory named).
 */
export function printableConfig(config: GatewayConfig, cwd = process.cwd()): Record<string, unknown> {
  const copy = redactSecrets(GatewayConfigSchema, structuredClone(config)) as GatewayConfig;
  copy.storage.dataDir = resolvePath(cwd, copy.storage.dataDir);
  copy.inference.modelsDir = copy.inference.modelsDir === '' ? defaultModelsDir() : resolvePath(cwd, copy.inference.modelsDir);
  return copy as unknown as Record<string, unknown>;
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
