import { ConfigError } from '../common/errors';
import { DEFAULT_MEMORY_LIMIT_BYTES, memoryLimitPages } from './memory-limit';
import { DEFAULT_CALL_DEADLINE_MS, DEFAULT_START_DEADLINE_MS } from './watchdog';

/**
 * The process-wide defaults of every VM's limits (PluginVmOptions may still set its own). Envoy has no such
 * settings (no deadline; the memory cap is V8's --wasm_max_mem_pages), so they are the sidecar's own: the CLI's
 * --wasm-memory-limit / --wasm-call-deadline / --wasm-start-deadline, carried in these environment variables so
 * that worker threads, which start with a copy of the environment, apply the same ones.
 */
export interface WasmLimitDefaults {
  readonly memoryLimitBytes: number;
  readonly callDeadlineMs: number;
  readonly startDeadlineMs: number;
}

export const WASM_LIMIT_ENV = {
  memoryLimitBytes: 'PWS_WASM_MEMORY_LIMIT_BYTES',
  callDeadlineMs: 'PWS_WASM_CALL_DEADLINE_MS',
  startDeadlineMs: 'PWS_WASM_START_DEADLINE_MS',
} as const satisfies Record<keyof WasmLimitDefaults, string>;

const BUILT_IN: WasmLimitDefaults = {
  memoryLimitBytes: DEFAULT_MEMORY_LIMIT_BYTES,
  callDeadlineMs: DEFAULT_CALL_DEADLINE_MS,
  startDeadlineMs: DEFAULT_START_DEADLINE_MS,
};

function positive(raw: string, name: string): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n <= 0) throw new ConfigError(`must be a positive integer, got '${raw}'`, name);
  return n;
}

/** Reads the defaults from `env`; a malformed value is a ConfigError naming the variable. */
export function wasmLimitDefaults(env: NodeJS.ProcessEnv = process.env): WasmLimitDefaults {
  const out: Record<keyof WasmLimitDefaults, number> = { ...BUILT_IN };
  for (const key of Object.keys(WASM_LIMIT_ENV) as Array<keyof WasmLimitDefaults>) {
    const raw = env[WASM_LIMIT_ENV[key]];
    if (raw !== undefined && raw !== '') out[key] = positive(raw, WASM_LIMIT_ENV[key]);
  }
  try {
    memoryLimitPages(out.memoryLimitBytes);
  } catch (err) {
    throw new ConfigError((err as Error).message, WASM_LIMIT_ENV.memoryLimitBytes, { cause: err });
  }
  return out;
}

let cached: { readonly key: string; readonly value: WasmLimitDefaults } | undefined;

/** wasmLimitDefaults(process.env), re-read only when the variables change. */
export function currentWasmLimitDefaults(): WasmLimitDefaults {
  const key = Object.values(WASM_LIMIT_ENV).map((k) => process.env[k] ?? '').join('\0');
  if (cached?.key !== key) cached = { key, value: wasmLimitDefaults() };
  return cached.value;
}
