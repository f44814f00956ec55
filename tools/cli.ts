/**
 * The tooling commands of `scanline`, beside the production CLI (src/cli.ts) rather than inside it: bin/scanline.js
 * hands TOOL_COMMANDS and startDemoPortals to src/cli.ts main(), so src/ never imports tools/.
 *   scanline simulate --url ws://HOST:PORT/v1/portal [--portals N] [--trucks M] [--seed S] [--line-rate HZ]
 *                     [--speed realtime|max] [--pixels N] [--realism basic|hard]
 *   scanline dataset --seeds A..B --out DIR [--pixels N] [--threat-probability P] [--calibration frames|none]
 *                    [--keep all|threats]
 *   scanline eval --seeds A..B [--url ws://HOST:PORT/v1/portal] [--models DIR] [--config FILE] [--portals N]
 *                 [--speed realtime|max] [--threat-probability P] [--mismatch-probability P] [--json] [--log-level L]
 *                 [--log-format F]
 */
import { type Command, type DemoPortals, intOption, logFormatOption, parseOptions, usageError } from '../src/cli.js';
import { loadConfig, type GatewayConfig, type GatewayConfigInput } from '../src/config/index.js';
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { createRootLogger } from '../src/log/index.js';
import { exportDataset } from './dataset/index.js';
import { fitOpinion } from './fit/index.js';
import { join } from 'node:path';
import { defaultModelsDir } from '../src/inference/index.js';
import { DEFAULT_EVAL_OPTIONS, formatEvalTable, runEval } from './eval/index.js';
import { FOREIGN_SCANNER_PROFILES, REALISM_LEVELS, simulatePortals, type ForeignScannerProfile, type Realism } from './simulator/index.js';

/**
 * The simulator the committed demo models were trained on (models/README.md): `simulate` and `serve --demo` stream
 * its trucks by default, so the demo shows what the models make of images like their training data.
 */
const MODELS_REALISM: Realism = 'hard';

const SIMULATE_USAGE = `scanline simulate [options]
  --url URL         gateway portal endpoint (default ws://127.0.0.1:8080/v1/portal)
  --portals N       simulated portals in parallel (default 1)
  --trucks M        trucks per portal; 0 = until interrupted (default 1)
  --seed S          seed of the first truck (default 1)
  --line-rate HZ    detector lines per second (default 500)
  --speed MODE      realtime (paced at the line rate) or max (as fast as acked) (default realtime)
  --pixels N        detector pixels per line (default 1024)
  --credentials FILE
                    the portals' credentials as JSON {"sim-1": "slp_..."} (\`scanline portal add sim-1 ... --json\`
                    on the gateway's machine prints it); each portal says hello with its own
  --realism R       basic or hard: the simulator's trucks and detector (tools/simulator/realism.ts) (default
                    ${MODELS_REALISM}, what the committed demo models were trained on; serve --demo streams the same)
`;

const DATASET_USAGE = `scanline dataset --seeds A..B --out DIR [options]
  --seeds A..B      truck seeds, inclusive (or a single seed A)
  --out DIR         output directory: tiles.f32, goods.u8, threats.u8, index.json
  --pixels N        detector pixels per line (default 1024)
  --threat-probability P
                    probability that a truck carries concealed threats (default 0.1)
  --calibration C   frames (16 dark + 16 air lines, as the simulated portal sends) or none (default frames)
  --keep K          all tiles, or only tiles with threat cells (threats) (default all)
  --energies N      2 (dual-energy tiles) or 1 (a single-energy portal: high energy only, one channel) (default 2)
  --realism R       basic or hard: textured, cluttered, mixed loads, threats in dense goods and behind structure,
                    detector banding, hot pixels, afterglow, speed variation (tools/simulator/realism.ts) (default basic)
  --foreign-scanner PROFILE
                    render every truck as another scanner would: response-curve, blur-noise or texture
                    (for checking out-of-distribution detection; never for training)
`;

const EVAL_USAGE = `scanline eval --seeds A..B [options]
  Streams held-out trucks (generated as \`dataset\` does; training used seeds 1000-4999, use 5000 and up) through
  a real gateway over the portal protocol, polls GET /v1/scans/:id/results while they stream, and scores the
  final reports against the simulator's ground truth:
    goods top-1     per tile position the stitcher produced, labelled as for training; tiles whose label is a
                    goods category (not empty, vehicle or air) are correct when the final suggestion segment
                    covering the tile's centre line has that category as top-1 (no segment: wrong)
    threat recall   truth threats overlapped by any threat alert box; false alarms: alerts overlapping no truth
                    threat, per scan
    mismatch recall mis-declared trucks whose report's declaration status is mismatch; also the false-mismatch
                    rate on honest trucks
    suggestions off the cargo
                    final suggestion segments over no tile labelled cargo (a goods category or an empty bay):
                    on the cab, chassis or air; per scan, with their top-1 labels
    first correct suggestion
                    per truth goods segment: from sending the slice with its first line to the first polled report
                    showing an overlapping segment with the right top-1 (ms; and lines received minus its first line)
    opinion         goods ECE (segment confidence over the goods tiles it covers) and threat ECE (alert
                    probability against overlapping a truth threat); UNKNOWN and out-of-distribution shares;
                    triage shares; GREEN precision (GREEN trucks with no threat and a true declaration) and
                    its curve as the GREEN threshold moves; 95% CIs by bootstrap over trucks
    hints           on trucks out of distribution (their threat boxes are hints, not alerts): truth threats a
                    hint overlaps, and hints over no threat
  Targets: goods top-1 >= 90%, threat recall >= 90% at <= 0.1 false alarms per scan, mismatch recall >= 90%,
  goods ECE <= 0.05, GREEN precision >= 99.5% and no GREEN truck with a threat or a false declaration.
  Exit code 0 whether or not they are met, unless --targets is given.
  --seeds A..B      truck seeds, inclusive (or a single seed A)
  --targets         exit 1 when a target is missed
  --energies N      2 (dual-energy portals) or 1 (single-energy portals: the gateway's single-energy models)
  --realism R       basic or hard: the trucks of the harder simulator (as for dataset) (default ${MODELS_REALISM},
                    what the committed demo models were trained on)
  --scans-out FILE  write every scored truck's record as a JSON line (e.g. to choose the triage bounds)
  --foreign-scanner PROFILE
                    render the trucks as another scanner would (response-curve, blur-noise, texture): the
                    gateway should call them out of distribution
  --url URL         portal endpoint of a running gateway; without it a gateway with the default config (plus
                    --config, SCANLINE_* environment variables and --models, as for serve) is started on a free
                    port with a temporary data directory
  --credentials FILE
                    with --url: the credentials of portals eval-1 ... eval-N as JSON (\`scanline portal add ... --json\`);
                    the results are read with the API token in SCANLINE_API_TOKEN (a viewer's)
  --models DIR      models directory of the started gateway (inference.modelsDir)
  --config FILE     configuration file (JSON or YAML) of the started gateway
  --portals N       trucks streamed at a time, each from its own portal (default ${DEFAULT_EVAL_OPTIONS.portals})
  --speed MODE      realtime (500 lines/s, as a truck drives through) or max (as fast as acked) (default realtime)
  --threat-probability P
                    probability that a truck carries concealed threats (default ${DEFAULT_EVAL_OPTIONS.threatProbability})
  --mismatch-probability P
                    probability that a truck's declaration lies (default ${DEFAULT_EVAL_OPTIONS.mismatchProbability}, the simulator's)
  --json            print the figures as one JSON object on the last line: scans, goodsTop1, threatRecall,
                    falseAlarmsPerScan, mismatchRecall, firstSuggestionMs {p50, p99}, and more
  --log-level L     log level of the started gateway, written to stderr (default warn)
  --log-format F    auto|json|pretty, as for serve (auto: readable when stderr is a terminal)
`;

async function simulate(args: string[]): Promise<void> {
  const v = parseOptions(args, {
    url: { type: 'string' },
    portals: { type: 'string' },
    trucks: { type: 'string' },
    seed: { type: 'string' },
    'line-rate': { type: 'string' },
    speed: { type: 'string' },
    pixels: { type: 'string' },
    credentials: { type: 'string' },
    realism: { type: 'string' },
  });
  const realism = realismOption(v, MODELS_REALISM);
  const speed = (v.speed as string | undefined) ?? 'realtime';
  if (speed !== 'realtime' && speed !== 'max') throw usageError(`Expected realtime or max for --speed but received ${JSON.stringify(speed)}`);
  const url = (v.url as string | undefined) ?? 'ws://127.0.0.1:8080/v1/portal';
  if (!/^wss?:\/\/.+/.test(url)) throw usageError(`Expected a ws:// or wss:// URL for --url but received ${JSON.stringify(url)}`);
  const abort = new AbortController();
  process.on('SIGINT', () => abort.abort());
  process.on('SIGTERM', () => abort.abort());
  const summary = await simulatePortals({
    url,
    portals: intOption(v, 'portals', 1, 1, 256),
    trucks: intOption(v, 'trucks', 1, 0, 1_000_000),
    seed: intOption(v, 'seed', 1, 0, 0xffffffff),
    lineRate: intOption(v, 'line-rate', 500, 1, 20_000),
    speed,
    pixels: intOption(v, 'pixels', 1024, 16, 4096),
    ...(typeof v.credentials === 'string' ? { credentials: readCredentials(v.credentials) } : {}),
    truck: { realism },
    signal: abort.signal,
    log: (level, msg, fields) => {
      if (level !== 'debug') process.stderr.write(`${msg}${fields ? ` ${JSON.stringify(fields)}` : ''}\n`);
    },
  });
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
}

/** Portal credentials from a JSON file {"portal-id": "credential"}, as `scanline portal add --json` prints them. */
function readCredentials(path: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw usageError(`cannot read --credentials ${path}: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) || !Object.values(parsed).every((c) => typeof c === 'string')) {
    throw usageError(`Expected a JSON object of portal id to credential strings in --credentials ${path}`);
  }
  return parsed as Record<string, string>;
}

function seedRange(raw: unknown): [number, number] {
  const m = typeof raw === 'string' ? /^(\d+)(?:\.\.(\d+))?$/.exec(raw) : null;
  const first = m ? Number(m[1]) : NaN;
  const last = m ? Number(m[2] ?? m[1]) : NaN;
  if (!Number.isSafeInteger(first) || !Number.isSafeInteger(last) || first > last) {
    throw usageError(`Expected a seed range A..B (integers, A <= B) for --seeds but received ${JSON.stringify(raw)}`);
  }
  return [first, last];
}

async function dataset(args: string[]): Promise<void> {
  const v = parseOptions(args, {
    seeds: { type: 'string' },
    out: { type: 'string' },
    pixels: { type: 'string' },
    'threat-probability': { type: 'string' },
    calibration: { type: 'string' },
    keep: { type: 'string' },
    energies: { type: 'string' },
    realism: { type: 'string' },
    'foreign-scanner': { type: 'string' },
  });
  const seeds = seedRange(v.seeds);
  const realism = realismOption(v);
  if (typeof v.out !== 'string' || v.out.length === 0) throw usageError('Expected a directory for --out but received nothing');
  let threatProbability: number | undefined;
  if (v['threat-probability'] !== undefined) {
    threatProbability = Number(v['threat-probability']);
    if (!(threatProbability >= 0 && threatProbability <= 1)) {
      throw usageError(`Expected a probability 0..1 for --threat-probability but received ${JSON.stringify(v['threat-probability'])}`);
    }
  }
  const calibration = (v.calibration as string | undefined) ?? 'frames';
  if (calibration !== 'frames' && calibration !== 'none')
    throw usageError(`Expected frames or none for --calibration but received ${JSON.stringify(calibration)}`);
  const keep = (v.keep as string | undefined) ?? 'all';
  if (keep !== 'all' && keep !== 'threats') throw usageError(`Expected all or threats for --keep but received ${JSON.stringify(keep)}`);
  const foreign = v['foreign-scanner'] as string | undefined;
  if (foreign !== undefined && !(FOREIGN_SCANNER_PROFILES as readonly string[]).includes(foreign))
    throw usageError(`Expected one of ${FOREIGN_SCANNER_PROFILES.join(', ')} for --foreign-scanner but received ${JSON.stringify(foreign)}`);
  const total = seeds[1] - seeds[0] + 1;
  const summary = await exportDataset({
    seeds,
    out: v.out,
    pixels: intOption(v, 'pixels', 1024, 16, 4096),
    threatProbability,
    ...(realism === 'hard' ? { truck: { realism } } : {}),
    ...(calibration === 'none' ? { calibration: false } : {}),
    keep,
    ...(foreign ? { foreignScanner: foreign as ForeignScannerProfile } : {}),
    energies: intOption(v, 'energies', 2, 1, 2) as 1 | 2,
    log: (msg, fields) => {
      const done = fields.done as number;
      if (done === total || done % 10 === 0) process.stderr.write(`${msg} ${JSON.stringify(fields)}\n`);
    },
  });
  process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
}

function realismOption(values: Record<string, unknown>, fallback: Realism = 'basic'): Realism {
  const raw = (values.realism as string | undefined) ?? fallback;
  if (!(REALISM_LEVELS as readonly string[]).includes(raw))
    throw usageError(`Expected one of ${REALISM_LEVELS.join(', ')} for --realism but received ${JSON.stringify(raw)}`);
  return raw as Realism;
}

function probabilityOption(values: Record<string, unknown>, name: string): number | undefined {
  const raw = values[name];
  if (raw === undefined) return undefined;
  const p = Number(raw);
  if (!(typeof raw === 'string' && raw.trim() !== '' && p >= 0 && p <= 1))
    throw usageError(`Expected a probability 0..1 for --${name} but received ${JSON.stringify(raw)}`);
  return p;
}

async function evaluate(args: string[]): Promise<void> {
  const v = parseOptions(args, {
    seeds: { type: 'string' },
    url: { type: 'string' },
    models: { type: 'string' },
    config: { type: 'string' },
    portals: { type: 'string' },
    speed: { type: 'string' },
    'threat-probability': { type: 'string' },
    'mismatch-probability': { type: 'string' },
    json: { type: 'boolean' },
    targets: { type: 'boolean' },
    'foreign-scanner': { type: 'string' },
    'scans-out': { type: 'string' },
    energies: { type: 'string' },
    realism: { type: 'string' },
    'log-level': { type: 'string' },
    'log-format': { type: 'string' },
    credentials: { type: 'string' },
  });
  const seeds = seedRange(v.seeds);
  const logFormat = logFormatOption(v);
  const speed = (v.speed as string | undefined) ?? DEFAULT_EVAL_OPTIONS.speed;
  if (speed !== 'realtime' && speed !== 'max') throw usageError(`Expected realtime or max for --speed but received ${JSON.stringify(speed)}`);
  const url = v.url as string | undefined;
  if (url !== undefined && !/^wss?:\/\/.+/.test(url)) throw usageError(`Expected a ws:// or wss:// URL for --url but received ${JSON.stringify(url)}`);
  if (url !== undefined && (v.models !== undefined || v.config !== undefined))
    throw usageError('--models and --config configure the gateway eval starts; they cannot be used with --url');
  if (url === undefined && v.credentials !== undefined) throw usageError("--credentials is for a gateway given with --url; eval makes its own gateway's");
  if (typeof v.models === 'string' && v.models.length === 0) throw usageError('Expected a directory for --models but received ""');
  const level = ((v['log-level'] as string | undefined) ?? 'warn') as GatewayConfig['log']['level'];
  const flags: GatewayConfigInput = { log: { level } };
  if (typeof v.models === 'string') flags.inference = { modelsDir: v.models };
  // The started gateway is configured as `scanline serve` would be: defaults < --config < SCANLINE_* environment <
  // flags (eval then sets its own port and data directory). Resolved here, so a bad file or variable stops eval
  // before anything starts. With --url the gateway is someone else's: the environment is not read.
  const layers: GatewayConfigInput[] =
    url === undefined ? [loadConfig({ ...(typeof v.config === 'string' ? { file: v.config } : {}), env: process.env, layers: [flags] })] : [flags];
  const total = seeds[1] - seeds[0] + 1;
  let done = 0;
  const scansOut = v['scans-out'] as string | undefined;
  if (scansOut !== undefined) writeFileSync(scansOut, '');
  const abort = new AbortController();
  process.on('SIGINT', () => abort.abort());
  process.on('SIGTERM', () => abort.abort());
  const summary = await runEval({
    seeds,
    ...(url !== undefined
      ? {
          url,
          ...(typeof v.credentials === 'string' ? { credentials: readCredentials(v.credentials) } : {}),
          ...(process.env.SCANLINE_API_TOKEN ? { token: process.env.SCANLINE_API_TOKEN } : {}),
        }
      : { gatewayConfig: layers, gatewayLog: createRootLogger(level, process.stderr, logFormat) }),
    portals: intOption(v, 'portals', DEFAULT_EVAL_OPTIONS.portals, 1, 64),
    speed,
    threatProbability: probabilityOption(v, 'threat-probability'),
    mismatchProbability: probabilityOption(v, 'mismatch-probability'),
    ...(v['foreign-scanner'] !== undefined ? { foreignScanner: v['foreign-scanner'] as ForeignScannerProfile } : {}),
    energies: intOption(v, 'energies', 2, 1, 2) as 1 | 2,
    realism: realismOption(v, MODELS_REALISM),
    signal: abort.signal,
    onScan: (s) => {
      done++;
      if (scansOut !== undefined) appendFileSync(scansOut, `${JSON.stringify(s)}\n`);
      const goods = Object.values(s.goods).reduce((a, g) => [a[0] + g.correct, a[1] + g.tiles], [0, 0]);
      const found = s.threats.truth.filter((t) => t.found).length;
      const falseAlarms = s.threats.alerts.filter((a) => a.falseAlarm).length;
      process.stderr.write(
        `eval ${done}/${total}: seed ${s.seed} ${s.scanId}: goods ${goods[0]}/${goods[1]} tiles, threats ${found}/${s.threats.truth.length} (${falseAlarms} false), ` +
          `declaration ${s.declaration.status}${s.declaration.mismatch ? ` (lies: ${s.declaration.mismatch})` : ''}\n`,
      );
    },
    onFailure: (f) => {
      done++;
      process.stderr.write(`eval ${done}/${total}: seed ${f.seed} failed: ${f.code}: ${f.message}\n`);
    },
  });
  process.stdout.write(`${formatEvalTable(summary)}\n`);
  if (v.json === true) process.stdout.write(`${JSON.stringify(summary)}\n`);
  if (v.targets === true && !summary.targets.allMet) {
    process.stderr.write('scanline eval: a target was missed (see the table)\n');
    process.exitCode = 1;
  }
}

/**
 * The simulated portals of `scanline serve --demo N`: N portals streaming generated trucks in real time (500
 * lines/s, seeds from 1) until the gateway stops them; the simulator's log lines go to the gateway's logger.
 */
export const startDemoPortals: DemoPortals = ({ url, portals, portalIdPrefix, credentials, signal, log }) =>
  simulatePortals({
    url,
    portals,
    portalIdPrefix,
    credentials,
    trucks: 0,
    seed: 1,
    lineRate: 500,
    speed: 'realtime',
    truck: { realism: MODELS_REALISM },
    signal,
    log: (level, msg, fields) => log[level](fields ?? {}, msg),
  });

const FIT_OPINION_USAGE = `scanline fit-opinion --fit DIR --validation DIR [options]
  --fit DIR         a \`scanline dataset\` export of the training distribution (out-of-distribution statistics)
  --validation DIR  an export of validation seeds: goods temperature, tile thresholds, the scan rule, alert calibration
  --check DIR       an export only scored, e.g. made with --foreign-scanner (repeatable)
  --models DIR      the models folder (default models/)
  --goods NAME      the goods model's folder in it (default goods-v1)
  --threats NAME    the threats model's folder in it (default threats-v1); none: fit the goods model alone
  --choose-thresholds FA
                    choose the threat thresholds again on the validation scans: the most threats found at no more
                    than FA false alarms per scan (e.g. 0.05); written with --write
  --tile-quantile Q share of the validation tiles each out-of-distribution view keeps inside (default 0.995); lower
                    flags more tiles, of the validation scans as of foreign ones
  --write           write calibration and outOfDistribution (and chosen thresholds) into their model.json
Prints what was fitted, with ECE before and after and the out-of-distribution rates, as JSON.
`;

async function fitOpinionCommand(args: string[]): Promise<void> {
  const v = parseOptions(args, {
    fit: { type: 'string' },
    validation: { type: 'string' },
    check: { type: 'string', multiple: true },
    models: { type: 'string' },
    goods: { type: 'string' },
    threats: { type: 'string' },
    'choose-thresholds': { type: 'string' },
    'tile-quantile': { type: 'string' },
    write: { type: 'boolean' },
  });
  const tileQuantile = v['tile-quantile'] === undefined ? undefined : Number(v['tile-quantile']);
  if (tileQuantile !== undefined && !(tileQuantile >= 0.9 && tileQuantile < 1))
    throw usageError(`Expected a share in [0.9, 1) for --tile-quantile but received ${JSON.stringify(v['tile-quantile'])}`);
  const budget = v['choose-thresholds'] === undefined ? undefined : Number(v['choose-thresholds']);
  if (budget !== undefined && !(budget > 0 && budget <= 10))
    throw usageError(`Expected false alarms per scan in (0, 10] for --choose-thresholds but received ${JSON.stringify(v['choose-thresholds'])}`);
  if (typeof v.fit !== 'string' || typeof v.validation !== 'string') throw usageError('Expected dataset directories for --fit and --validation');
  const models = (v.models as string | undefined) ?? defaultModelsDir();
  const result = await fitOpinion({
    fit: v.fit,
    validation: v.validation,
    check: (v.check as string[] | undefined) ?? [],
    goodsDir: join(models, (v.goods as string | undefined) ?? 'goods-v1'),
    ...(v.threats === 'none' ? {} : { threatsDir: join(models, (v.threats as string | undefined) ?? 'threats-v1') }),
    ...(budget !== undefined ? { chooseThresholds: budget } : {}),
    ...(tileQuantile !== undefined ? { tileQuantile } : {}),
    write: v.write === true,
    log: (m) => process.stderr.write(`fit-opinion: ${m}\n`),
  });
  process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
}

/** simulate, dataset and eval, in the order `scanline help` lists them. */
export const TOOL_COMMANDS: readonly Command[] = Object.freeze([
  { name: 'simulate', summary: 'stream simulated trucks into a gateway', usage: SIMULATE_USAGE, run: simulate },
  { name: 'dataset', summary: 'export labelled training tiles of simulated trucks (models/train/)', usage: DATASET_USAGE, run: dataset },
  { name: 'eval', summary: "score a gateway's models on held-out simulated trucks", usage: EVAL_USAGE, run: evaluate },
  {
    name: 'fit-opinion',
    summary: 'fit calibration and out-of-distribution statistics into the model manifests (models/train/)',
    usage: FIT_OPINION_USAGE,
    run: fitOpinionCommand,
  },
]);
