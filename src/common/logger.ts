import pino, { type Logger, type LevelWithSilent } from 'pino';

/**
 * The process logger (pino, JSON lines on stderr so stdout stays free for command output). Components take a
 * child with `component` set; plugin logs carry `plugin` and the plugin's own level.
 * Redis passwords and other credentials are never passed to a logger: the redact list is a second line of defence.
 */
export type { Logger };

export const REDACT_PATHS = ['password', '*.password', 'pass', '*.pass', 'auth', '*.auth', 'credentials', '*.credentials'];

export function createLogger(
  level: LevelWithSilent = (process.env['PWS_LOG_LEVEL'] as LevelWithSilent) ?? 'info',
  destination: pino.DestinationStream = pino.destination({ fd: 2, sync: false }),
): Logger {
  return pino({ level, base: { pid: process.pid }, redact: { paths: REDACT_PATHS, censor: '[redacted]' } }, destination);
}

/**
 * The top-level keys of one JSON log line, in order, with repeats (JSON.parse keeps only the last of a
 * repeated key, so it cannot tell). Log lines must never repeat one: jq, pino-pretty and log shippers each pick a
 * different copy.
 */
export function topLevelKeys(line: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  let expectKey = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (ch === '"') {
      let j = i + 1;
      while (j < line.length && line[j] !== '"') j += line[j] === '\\' ? 2 : 1;
      if (depth === 1 && expectKey) keys.push(JSON.parse(line.slice(i, j + 1)) as string);
      expectKey = false;
      i = j;
    } else if (ch === '{' || ch === '[') {
      depth++;
      expectKey = ch === '{' && depth === 1;
    } else if (ch === '}' || ch === ']') {
      depth--;
    } else if (ch === ',' && depth === 1) {
      expectKey = true;
    }
  }
  return keys;
}

/** A logger that drops everything: the default for library users and tests that don't care. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
