/**
 * One root pino logger per gateway; each module takes a child with its name (`logger.child({ module: 'ingest' })`).
 * Object first, message second. Nothing per slice at info level: per-slice detail is debug or a metric.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

export function createRootLogger(level: LevelWithSilent, destination?: NodeJS.WritableStream): Logger {
  return pino(
    {
      level,
      base: { service: 'scanline' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}

/** A logger that drops everything, for library use and tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
