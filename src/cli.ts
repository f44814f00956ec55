/**
 * The `scanline` command line: the production command (serve) and the dispatcher every command goes through
 * (usage text, exit codes). Tooling commands (simulate, dataset, eval: tools/cli.ts) and the simulated portals of
 * `serve --demo N` are handed in by the entry, bin/scanline.js, the one place that joins src/ and tools/:
 * production never imports tooling.
 *   scanline serve [--port P] [--host H] [--data-dir DIR] [--demo N] [--config FILE] [--log-level L]
 *                  [--log-format F] [--print-config]
 * Exit codes: 0 success, 1 runtime failure, 2 usage or configuration error.
 */
import { loadConfig, printableConfig, type GatewayConfigInput } from './config/index.js';
import { ScanlineError } from './errors/index.js';
import { createRootLogger, type Logger } from './log/index.js';
import { startGateway } from './main.js';
import { type Command, intOption, logFormatOption, parseOptions, usageError } from './cli-support.js';
import { identityCommands } from './identity-commands.js';
import { dicosCommands } from './dicos-commands.js';
import { importCommands } from './import-commands.js';
import { retentionCommands } from './retention-commands.js';

export { type Command, intOption, logFormatOption, parseOptions, usageError } from './cli-support.js';

/** A repeat of the signal that started the shutdown within this long is the same request (see serve's stop()), ms. */
const SAME_REQUEST_MS = 1_000;

/** Ids of the simulated portals of `serve --demo N`: sim-1 ... sim-N. */
const DEMO_PORTAL_PREFIX = 'sim';

/** Errors that exit with status 2. */
const EXIT_2_CODES: ReadonlySet<string> = new Set(['SCANLINE_ERR_CLI_USAGE', 'SCANLINE_ERR_CONFIG_INVALID', 'SCANLINE_ERR_STORAGE_SCHEMA']);

export interface DemoPortalsOptions {
  /** Portal endpoint of the gateway just started. */
  url: string;
  /** Simulated portals streaming in parallel (serve --demo N). */
  portals: number;
  /** Their ids are `<portalIdPrefix>-1` ... `<portalIdPrefix>-N`. */
  portalIdPrefix: string;
  /** Each portal's credential, by portal id (made by serve at each start; the old ones stop working). */
  credentials: Record<string, string>;
  /** Aborted when the gateway starts shutting down: the portals abort their scans and stop. */
  signal: AbortSignal;
  /** Child of the gateway's logger (module demo-portal). */
  log: Logger;
}

/**
 * Starts the simulated portals of `serve --demo N`: they stream trucks into the gateway until `signal` aborts, and
 * the promise settles once they have stopped. Provided by tools/ (startDemoPortals in tools/cli.ts).
 */
export type DemoPortals = (options: DemoPortalsOptions) => Promise<unknown>;

export interface CliOptions {
  /** Commands besides serve: the tooling commands of tools/cli.ts (bin/scanline.js passes them). */
  commands?: readonly Command[];
  /** The simulated portals of `serve --demo N`; without it, --demo is a usage error. */
  demo?: DemoPortals;
}

const SERVE_USAGE = `scanline serve [options]
  The operator screen is served at http://HOST:PORT/ (the "gateway ready" log line names it: operatorScreen).
  --port P          TCP port (default 8080; 0 picks a free port)
  --host H          interface to listen on (default 127.0.0.1; 0.0.0.0 for all)
  --data-dir DIR    where scans are stored (default ./data)
  --demo N          also run N simulated portals streaming trucks into this gateway
  --config FILE     configuration file, JSON or YAML (.yaml/.yml) (src/config/index.ts lists every key, its
                    default and unit)
  --log-level L     fatal|error|warn|info|debug|trace|silent (default info)
  --log-format F    auto|json|pretty: auto writes readable lines when stdout is a terminal, JSON lines otherwise
                    (default auto; also SCANLINE_LOG_FORMAT)
  --print-config    print the effective configuration as JSON (portal tokens redacted) and exit
  Every configuration key can also be set by an environment variable: SCANLINE_ + the key's path in upper
  snake case, e.g. SCANLINE_SERVER_PORT=9000, SCANLINE_INFERENCE_BATCHING_MAX_BATCH_SIZE=16,
  SCANLINE_PORTAL_TOKENS=tok-a-123,tok-b-456. Precedence: defaults < --config file < environment < flags.
  SIGHUP: read the TLS certificate and key (server.tls) again; open connections keep the old one.
  SIGTERM/SIGINT: no new scans (portals are told), open scans get shutdown.drainTimeoutMs to end, then the gateway
  closes; the process exits within shutdown.exitTimeoutMs (code 1 if the shutdown did not finish by then).
`;

async function serve(args: string[], demoPortals: DemoPortals | undefined): Promise<void> {
  const v = parseOptions(args, {
    port: { type: 'string' },
    host: { type: 'string' },
    'data-dir': { type: 'string' },
    demo: { type: 'string' },
    config: { type: 'string' },
    'log-level': { type: 'string' },
    'log-format': { type: 'string' },
    'print-config': { type: 'boolean' },
  });
  const logFormat = logFormatOption(v);
  const flags: GatewayConfigInput = {};
  if (v.port !== undefined) flags.server = { ...flags.server, port: intOption(v, 'port', 8080, 0, 65535) };
  if (typeof v.host === 'string') flags.server = { ...flags.server, host: v.host };
  if (typeof v['data-dir'] === 'string') flags.storage = { dataDir: v['data-dir'] };
  if (typeof v['log-level'] === 'string') flags.log = { level: v['log-level'] as 'info' };
  const config = loadConfig({ ...(typeof v.config === 'string' ? { file: v.config } : {}), env: process.env, layers: [flags] });
  const demo = intOption(v, 'demo', 0, 0, 64);
  if (demo > 0 && !demoPortals) throw usageError('--demo needs the portal simulator of tools/, which this entry does not provide');
  if (v['print-config'] === true) {
    process.stdout.write(`${JSON.stringify(printableConfig(config), null, 2)}\n`);
    return;
  }

  // Signals are taken from before the start: the `gateway ready` line is written inside startGateway, and a SIGTERM
  // sent on reading it (a supervisor, a test) arrived before the handlers below existed and killed the process
  // without a drain. One that comes before the gateway exists is acted on as soon as it does.
  let pendingSignal: string | null = null;
  let onSignal: (signal: string) => void = (signal) => {
    pendingSignal ??= signal;
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  const gateway = await startGateway(config, { log: createRootLogger(config.log.level, undefined, logFormat) });
  const demoAbort = new AbortController();
  let demoRun: Promise<unknown> = Promise.resolve();
  const { drainTimeoutMs, exitTimeoutMs } = config.shutdown;
  let stopping: { signal: string; at: number } | null = null;
  const stop = (signal: string): void => {
    if (stopping) {
      // Ctrl-C under `npm start` delivers SIGINT twice within a millisecond: to the process group, and forwarded by
      // npm to its child (this process, through exec). The same signal again within a second is that one request.
      if (signal === stopping.signal && Date.now() - stopping.at < SAME_REQUEST_MS) return;
      gateway.log.warn({ signal }, 'second signal: exiting now');
      exitAfterFlush(gateway.log, 1);
      return;
    }
    stopping = { signal, at: Date.now() };
    gateway.log.info({ signal, drainTimeoutMs, exitTimeoutMs }, 'shutting down');
    // The backstop: whatever hangs (a disk, a worker), the process is gone by exitTimeoutMs.
    setTimeout(() => {
      gateway.log.error({ exitTimeoutMs, phase: gateway.phase() }, 'shutdown did not finish within shutdown.exitTimeoutMs; exiting');
      exitAfterFlush(gateway.log, 1);
    }, exitTimeoutMs).unref();
    demoAbort.abort();
    void Promise.allSettled([demoRun])
      .then(() => gateway.close(drainTimeoutMs))
      .then(
        () => exitAfterFlush(gateway.log, 0),
        (err: unknown) => {
          gateway.log.error({ err }, 'shutdown failed');
          exitAfterFlush(gateway.log, 1);
        },
      );
  };
  onSignal = stop;
  // SIGHUP: a renewed certificate (server.tls) is read again; open connections keep theirs. Without TLS, or with
  // unusable files, the gateway says why and carries on as it was.
  process.on('SIGHUP', () => {
    gateway.reloadTls().catch((err: unknown) => gateway.log.error({ err }, 'TLS reload refused; the previous certificate stays in use'));
  });

  if (pendingSignal !== null) {
    stop(pendingSignal);
    return;
  }

  // The demo portals start once the signals are handled: a SIGTERM that arrives while their credentials are being
  // written (fsync'd) must drain the gateway, not kill it (the ready line may already be out by then).
  if (demo > 0 && demoPortals) {
    const log = gateway.log.child({ module: 'demo-portal' });
    log.info({ portals: demo, url: gateway.portalUrl }, 'starting simulated demo portals');
    // The demo portals are portals like any other: each gets its own credential, made anew at each start.
    const credentials: Record<string, string> = {};
    for (let i = 1; i <= demo; i++) {
      const portalId = `${DEMO_PORTAL_PREFIX}-${i}`;
      credentials[portalId] = gateway.identity.setPortalCredential(portalId, { name: 'system:demo', address: null }).credential;
    }
    demoRun = demoPortals({
      url: gateway.portalUrl,
      portals: demo,
      portalIdPrefix: DEMO_PORTAL_PREFIX,
      credentials,
      signal: demoAbort.signal,
      log,
    }).catch((err: unknown) => log.error({ err }, 'demo portal stopped'));
  }
}

/** Exits once the logger's asynchronous destination has written what it holds (the last lines say why we exit). */
function exitAfterFlush(log: Logger, code: number): void {
  log.flush(() => process.exit(code));
  // A destination that never calls back must not keep the process alive.
  setTimeout(() => process.exit(code), 500).unref();
}

/** The production commands, serve with the simulated portals it is given (or none). */
function productionCommands(demo: DemoPortals | undefined): Command[] {
  return [
    { name: 'serve', summary: 'run the gateway', usage: SERVE_USAGE, run: (args) => serve(args, demo) },
    ...identityCommands(),
    ...retentionCommands(),
    ...dicosCommands(),
    ...importCommands(),
  ];
}

/** The whole usage text: every command, then each command's section. */
function usageText(commands: readonly Command[]): string {
  const list = [...commands, { name: 'help', summary: 'show this text' }].map((c) => `  ${c.name.padEnd(11)} ${c.summary}`).join('\n');
  return `Usage: scanline <command> [options]\n\nCommands:\n${list}\n\n${commands.map((c) => c.usage).join('\n')}`;
}

/**
 * Runs one command line: serve, the commands in `options.commands`, or help. Sets process.exitCode; `serve` keeps
 * running until a signal. bin/scanline.js calls it with the tooling commands and the demo portals of tools/.
 */
export async function main(argv: string[], options: CliOptions = {}): Promise<void> {
  const commands = [...productionCommands(options.demo), ...(options.commands ?? [])];
  const [name, ...rest] = argv;
  const command = commands.find((c) => c.name === name);
  try {
    if (command) return await command.run(rest);
    if (name === undefined || name === 'help' || name === '--help' || name === '-h') {
      process.stdout.write(usageText(commands));
      return;
    }
    throw usageError(`unknown command ${JSON.stringify(name)}`);
  } catch (err) {
    if (err instanceof ScanlineError) {
      const usage = err.code === 'SCANLINE_ERR_CLI_USAGE' ? `\n\n${command ? `Usage: ${command.usage}` : usageText(commands)}` : '';
      process.stderr.write(`scanline: ${err.code}: ${err.message}${usage}\n`);
      // 2: nothing a restart fixes (a usage or configuration error, a database from a newer release); systemd does not
      // restart on it (ops/scanline.service RestartPreventExitStatus=2).
      process.exitCode = EXIT_2_CODES.has(err.code) ? 2 : 1;
      return;
    }
    throw err;
  }
}
