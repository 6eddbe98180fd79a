/**
 * Run-time log level for a pino logger tree, for /logging?level=. pino children copy their level when they are
 * created and never follow the parent afterwards, so this tracks every child (through pino's `onChild` hook,
 * which children inherit) and sets the level on all of them, like Envoy's `/logging?level=` changes every logger.
 * Attach it right after the root logger is created: children made earlier are not seen.
 */
import type { Logger, LevelWithSilent } from 'pino';

/** Envoy's log levels (spdlog names), as /logging?level= takes them. */
export type EnvoyLogLevel = 'trace' | 'debug' | 'info' | 'warning' | 'error' | 'critical' | 'off';

export const ENVOY_LOG_LEVELS: readonly EnvoyLogLevel[] = ['trace', 'debug', 'info', 'warning', 'error', 'critical', 'off'];

const TO_PINO: Readonly<Record<EnvoyLogLevel, LevelWithSilent>> = {
  trace: 'trace',
  debug: 'debug',
  info: 'info',
  warning: 'warn',
  error: 'error',
  critical: 'fatal',
  off: 'silent',
};

export function toPinoLevel(level: EnvoyLogLevel): LevelWithSilent {
  return TO_PINO[level];
}

/**
 * What proxy_get_log_level (and Higress's get_log_level foreign function) answers for a pino level: Envoy
 * returns its wasm logger's spdlog level as an integer (Context::getLogLevel), trace 0, debug 1, info 2, warn 3,
 * error 4, critical 5 and off 6. SDKs compare their line's level against it and skip the proxy_log call when the
 * line is below (wasm-go's DefaultLog: `level < hostLevel`), so `off` must be above critical, not equal to it.
 */
const SPDLOG_LEVEL: Readonly<Record<string, number>> = { trace: 0, debug: 1, info: 2, warn: 3, error: 4, fatal: 5, silent: 6 };

export function proxyLogLevel(pinoLevel: string): number {
  return SPDLOG_LEVEL[pinoLevel] ?? SPDLOG_LEVEL['info']!;
}

export function fromPinoLevel(level: string): EnvoyLogLevel {
  switch (level) {
    case 'trace':
    case 'debug':
    case 'info':
    case 'error':
      return level;
    case 'warn':
      return 'warning';
    case 'fatal':
      return 'critical';
    case 'silent':
      return 'off';
    default:
      return 'info';
  }
}

export class LogLevelControl {
  private readonly children = new Set<WeakRef<Logger>>();
  private readonly registry = new FinalizationRegistry<WeakRef<Logger>>((ref) => this.children.delete(ref));

  constructor(private readonly root: Logger) {
    const previous = root.onChild;
    root.onChild = (child: Logger): void => {
      const ref = new WeakRef(child);
      this.children.add(ref);
      this.registry.register(child, ref);
      previous.call(root, child);
    };
  }

  get(): EnvoyLogLevel {
    return fromPinoLevel(this.root.level);
  }

  set(level: EnvoyLogLevel): void {
    const pinoLevel = toPinoLevel(level);
    this.root.level = pinoLevel;
    for (const ref of this.children) {
      const child = ref.deref();
      if (child) child.level = pinoLevel;
      else this.children.delete(ref);
    }
  }
}
