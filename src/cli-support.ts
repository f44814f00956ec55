/**
 * What every `scanline` command shares: the Command shape, option parsing and the usage error. Apart from cli.ts
 * so that command modules (identity-commands.ts, tools/cli.ts) use it without importing the dispatcher.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ScanlineError } from './errors/index.js';
import { LOG_FORMATS, isLogFormat, type LogFormat } from './log/index.js';

/** One `scanline` command: its name, its line in the command list, its section of the usage text and its run. */
export interface Command {
  name: string;
  /** One line for the command list of `scanline help`. */
  summary: string;
  /** Its section of `scanline help`: the synopsis line, then its options. Shown after a usage error. */
  usage: string;
  /** Runs the command; throws a ScanlineError for the user (usageError() for a bad invocation). */
  run(args: string[]): Promise<void>;
}

/** A bad invocation: exit code 2; main() prints the message and the usage of the command (all of it if none). */
export function usageError(message: string): ScanlineError {
  return new ScanlineError('SCANLINE_ERR_CLI_USAGE', message);
}

/** The options of a command (no positionals); an unknown or malformed option is a usage error. */
export function parseOptions(args: string[], options: ParseArgsConfig['options']): Record<string, string | boolean | undefined> {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values as Record<string, string | boolean | undefined>;
  } catch (err) {
    throw usageError((err as Error).message);
  }
}

/**
 * The log format: --log-format, else SCANLINE_LOG_FORMAT, else auto. Read here rather than from the configuration
 * (it belongs there as log.format once the config schema has it).
 */
export function logFormatOption(values: Record<string, unknown>): LogFormat {
  const flag = values['log-format'];
  if (flag !== undefined) {
    if (!isLogFormat(flag)) throw usageError(`Expected one of ${LOG_FORMATS.join(', ')} for --log-format but received ${JSON.stringify(flag)}`);
    return flag;
  }
  const env = process.env.SCANLINE_LOG_FORMAT;
  if (env === undefined) return 'auto';
  if (!isLogFormat(env)) {
    const problem = `Expected one of ${LOG_FORMATS.join(', ')} for SCANLINE_LOG_FORMAT but received ${JSON.stringify(env)}`;
    throw new ScanlineError('SCANLINE_ERR_CONFIG_INVALID', problem, { problems: [problem] });
  }
  return env;
}

/** Integer option --name in min..max, `fallback` when absent. */
export function intOption(values: Record<string, unknown>, name: string, fallback: number, min: number, max: number): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw usageError(`Expected an integer ${min}..${max} for --${name} but received ${JSON.stringify(raw)}`);
  return n;
}

/** Options and positional arguments of a command; an unknown option, or too few or too many positionals, is a usage error. */
export function parseCommandLine(
  args: string[],
  options: ParseArgsConfig['options'],
  positionals: { min: number; max: number; what: string },
): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: true }) as typeof parsed;
  } catch (err) {
    throw usageError((err as Error).message);
  }
  const n = parsed.positionals.length;
  if (n < positionals.min || n > positionals.max) {
    throw usageError(`Expected ${positionals.what} but received ${n === 0 ? 'none' : parsed.positionals.map((p) => JSON.stringify(p)).join(' ')}`);
  }
  return parsed;
}
