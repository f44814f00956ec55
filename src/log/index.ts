/**
 * One root pino logger per gateway; each module takes a child with its name (`logger.child({ module: 'ingest' })`).
 * Object first, message second. Nothing per slice at info level: per-slice detail is debug or a metric.
 *
 * Format: JSON lines for machines (journald, log shippers, pipes), or human-readable lines for a person at a
 * terminal ('auto' picks by whether the destination is a TTY). Pretty lines are formatted by pino-pretty as a
 * synchronous stream on the calling thread, not in a transport worker: a terminal's output is small, and the last
 * lines before an exit are never lost in a worker's buffer.
 */
import { pino, type LevelWithSilent, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export function isLogFormat(value: unknown): value is LogFormat {
  return typeof value === 'string' && (LOG_FORMATS as readonly string[]).includes(value);
}

function isTty(stream: NodeJS.WritableStream | undefined): boolean {
  return ((stream ?? process.stdout) as { isTTY?: boolean }).isTTY === true;
}

/** 'json' or 'pretty' for `format` written to `destination` (stdout when absent): 'auto' is pretty on a TTY. */
export function resolveLogFormat(format: LogFormat, destination?: NodeJS.WritableStream): 'json' | 'pretty' {
  if (format !== 'auto') return format;
  return isTty(destination) ? 'pretty' : 'json';
}

/**
 * The root logger, writing to `destination` (default: stdout). JSON lines go to stdout through an asynchronous
 * sonic-boom (flush before exit: `logger.flush(cb)`); pretty lines are written synchronously, in colour on a TTY
 * unless NO_COLOR is set.
 */
export function createRootLogger(level: LevelWithSilent, destination?: NodeJS.WritableStream, format: LogFormat = 'auto'): Logger {
  const options = {
    level,
    base: { service: 'scanline' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  if (resolveLogFormat(format, destination) === 'pretty') {
    const stream = pretty({
      sync: true,
      destination: destination ?? 1,
      colorize: isTty(destination) && process.env.NO_COLOR === undefined,
      translateTime: 'SYS:HH:MM:ss.l',
      // `service` is the same on every line; `module` leads the message instead.
      ignore: 'service,module',
      messageFormat: '{if module}{module}: {end}{msg}',
      singleLine: true,
    });
    return pino(options, stream);
  }
  return pino(options, destination ?? pino.destination({ dest: 1, sync: false }));
}

/** A logger that drops everything, for library use and tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
