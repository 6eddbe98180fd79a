import pino, { type Logger, type LevelWithSilent } from 'pino';

/**
 * The process logger (pino, JSON lines on stderr so stdout stays free for command output). Components take a
 * child with `component` set; plugin logs carry `plugin` and the plugin's own level.
 * Redis passwords and other credentials are never passed to a logger: the redact list is a second line of defence.
 */
export type { Logger };

export const REDACT_PATHS = ['password', '*.password', 'pass', '*.pass', 'auth', '*.auth', 'credentials', '*.credentials'];

export function createLogger(level: LevelWithSilent = (process.env['PWS_LOG_LEVEL'] as LevelWithSilent) ?? 'info'): Logger {
  return pino(
    { level, base: { pid: process.pid }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } },
    pino.destination({ fd: 2, sync: false }),
  );
}

/** A logger that drops everything: the default for library users and tests that don't care. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
