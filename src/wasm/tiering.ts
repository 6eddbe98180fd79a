import { setFlagsFromString } from 'node:v8';

/**
 * V8 compiles a plugin's functions with Liftoff when first called and moves a function to TurboFan once it has run
 * `--wasm-tiering-budget` (about bytes of code executed; 1.8 MB by default). A Go plugin's start-up runs large
 * init functions once, long enough to cross that budget: TurboFan then optimises code that never runs again, and
 * the malloc arenas of its compile jobs keep ~9 MiB of a sidecar's idle RSS (92 -> 83 MiB with the Go Higress
 * add-header plugin at --concurrency 1). Ten times the budget leaves those to Liftoff, and request paths, which run
 * on every request, still reach TurboFan within the first requests (the chain probe's CPU per stream is the same).
 */
export const WASM_TIERING_BUDGET = 18_000_000;

const FLAG = '--wasm-tiering-budget';

/**
 * Sets the budget process-wide (V8 flags are per process: worker threads share it) unless the operator set one
 * (`node --wasm-tiering-budget=N`, or in NODE_OPTIONS). Before the first module is instantiated: an instance
 * takes its budget then.
 */
export function applyWasmTieringBudget(execArgv: readonly string[] = process.execArgv, nodeOptions = process.env['NODE_OPTIONS'] ?? ''): boolean {
  const given = (arg: string): boolean => arg === FLAG || arg.startsWith(`${FLAG}=`) || arg === '--wasm_tiering_budget' || arg.startsWith('--wasm_tiering_budget=');
  if (execArgv.some(given) || nodeOptions.split(/\s+/).some(given)) return false;
  setFlagsFromString(`${FLAG}=${WASM_TIERING_BUDGET}`);
  return true;
}
