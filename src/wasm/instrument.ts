/**
 * Load-time rewriting of a plugin module so the host keeps control of it (issue 14):
 *
 * - **Deadline.** Every loop header, and the entry of every function that makes a call (src/wasm/watchdog-hooks.ts
 *   places the hooks), decrements a counter global; when it reaches zero the guest calls the import `pws_watchdog.check`,
 *   which reads the monotonic clock and answers a fresh budget, or 0 once the outermost guest call has run past
 *   its deadline. On 0 the guest executes `unreachable`: a trap, which Wasm code cannot catch (a JS exception
 *   could be, by a module's catch_all), so the whole guest stack unwinds to the host. Any unbounded execution
 *   passes a loop header or the entry of a calling function unboundedly often, so it cannot avoid the check.
 * - **Memory cap.** The module's own memory becomes an import (`pws_watchdog.memory`) with the limits it
 *   declared, so the host supplies a WebAssembly.Memory whose maximum is min(declared, cap): one compiled module
 *   serves plugins with different caps, and `memory.grow` past the cap returns -1 in the guest, as under
 *   Envoy's V8 (whose engine-wide --wasm_max_mem_pages gives the same -1). A memory the module already
 *   imports keeps its names; its declared limits are recorded the same way.
 *
 * Runs binaryen (ESM, with top-level await), so it is meant to run in a process of its own (instrument-child.ts):
 * binaryen's own heap is a Wasm memory that never shrinks, and a 6 MB Go module takes seconds to rewrite.
 */

export const WATCHDOG_MODULE = 'pws_watchdog';
export const WATCHDOG_CHECK = 'check';
export const WATCHDOG_MEMORY = 'memory';
/** The counter global, exported so the host can spend it at once (GuestWatchdog.poll). */
export const WATCHDOG_BUDGET_EXPORT = 'pws_watchdog_budget';
/**
 * Bumped whenever the rewrite changes, so cached results of an older rewrite are not reused. The cache key
 * also carries binaryen's version.
 */
export const INSTRUMENTATION_VERSION = 5;

/** The linear memory the instrumented module imports, with the limits its code declared. */
export interface MemoryImport {
  readonly module: string;
  readonly name: string;
  /** Pages. */
  readonly initial: number;
  /** Pages; absent when the module declared no maximum. */
  readonly maximum?: number;
  readonly shared: boolean;
}

export interface InstrumentedModule {
  readonly bytes: Uint8Array;
  /** Absent when the module has no memory at all (it is refused later, at instantiation). */
  readonly memory?: MemoryImport;
}

import type binaryen from 'binaryen';
import { exportIndex, ExternalKind, functionImportIndex } from './binary';
import { withoutLocalNames } from './name-section';
import { placeWatchdogHooks } from './watchdog-hooks';

type Binaryen = typeof binaryen;
type Module = binaryen.Module;

// TypeScript compiles `import()` to require() under CommonJS; binaryen is ESM-only with top-level await.
const importEsm = new Function('specifier', 'return import(specifier)') as (specifier: string) => Promise<{ default: Binaryen }>;

let binaryenPromise: Promise<Binaryen> | undefined;
export function loadBinaryen(): Promise<Binaryen> {
  binaryenPromise ??= importEsm('binaryen').then((m) => m.default);
  return binaryenPromise;
}

/** What Node 20's V8 runs without flags; newer proposals (compact imports, GC) must not be emitted. */
function supportedFeatures(b: Binaryen): number {
  const F = b.Features;
  return F.Atomics | F.MutableGlobals | F.NontrappingFPToInt | F.SIMD128 | F.BulkMemory | F.BulkMemoryOpt | F.SignExt
    | F.ExceptionHandling | F.TailCall | F.ReferenceTypes | F.Multivalue;
}

const BUDGET = 'pws_budget';
const CHECK = 'pws_check';

export class InstrumentError extends Error {
  override name = 'InstrumentError';
}

export async function instrument(bytes: Uint8Array, initialBudget: number): Promise<InstrumentedModule> {
  const b = await loadBinaryen();
  let m: Module;
  try {
    m = b.readBinary(bytes);
  } catch (err) {
    throw new InstrumentError(`binaryen cannot read the module: ${(err as Error).message}`);
  }
  try {
    m.setFeatures(supportedFeatures(b));
    if (m.getGlobal(BUDGET) !== 0 || m.getFunction(CHECK) !== 0 || m.getExport(WATCHDOG_BUDGET_EXPORT) !== 0) {
      throw new InstrumentError(`the module already defines ${BUDGET}, ${CHECK} or ${WATCHDOG_BUDGET_EXPORT}`);
    }
    const memory = importMemory(b, m);
    // The counter and the host's check; the hooks themselves are placed in the emitted bytes (watchdog-hooks.ts).
    m.addGlobal(BUDGET, b.i32, true, m.i32.const(initialBudget));
    m.addGlobalExport(BUDGET, WATCHDOG_BUDGET_EXPORT);
    m.addFunctionImport(CHECK, WATCHDOG_MODULE, WATCHDOG_CHECK, b.none, b.i32);
    // Keep the name section, less its local names: trap messages and stack traces name the plugin's functions.
    const savedDebug = b.getDebugInfo();
    b.setDebugInfo(true);
    let out: Uint8Array;
    try {
      out = m.emitBinary();
    } finally {
      b.setDebugInfo(savedDebug);
    }
    const bytesOut = withoutLocalNames(withWatchdogHooks(out));
    return memory ? { bytes: bytesOut, memory } : { bytes: bytesOut };
  } finally {
    m.dispose();
  }
}

/** The emitted module with its hooks placed, the budget global found by its export and the check by its import. */
function withWatchdogHooks(bytes: Uint8Array): Uint8Array {
  const budgetGlobal = exportIndex(bytes, WATCHDOG_BUDGET_EXPORT, ExternalKind.Global);
  const check = functionImportIndex(bytes, WATCHDOG_MODULE, WATCHDOG_CHECK);
  if (budgetGlobal === undefined || check === undefined) throw new InstrumentError('binaryen did not emit the watchdog\'s budget export and check import');
  return placeWatchdogHooks(bytes, { budgetGlobal, check }).bytes;
}

function importMemory(b: Binaryen, m: Module): MemoryImport | undefined {
  if (!m.hasMemory()) return undefined;
  const info = m.getMemoryInfo();
  if (info.is64) throw new InstrumentError('64-bit memories are not supported');
  if (info.module) {
    return { module: info.module, name: info.base ?? '', initial: info.initial, ...(info.max !== undefined ? { maximum: info.max } : {}), shared: info.shared };
  }
  let internal: string | undefined;
  for (let i = 0; i < m.getNumExports(); i++) {
    const e = b.getExportInfo(m.getExportByIndex(i));
    if (e.kind === b.ExternalMemory) {
      internal = e.value;
      break;
    }
  }
  // A module that exports no memory is refused at instantiation; there is nothing to cap for the host then.
  if (internal === undefined) return undefined;
  m.addMemoryImport(internal, WATCHDOG_MODULE, WATCHDOG_MEMORY, info.shared);
  return { module: WATCHDOG_MODULE, name: WATCHDOG_MEMORY, initial: info.initial, ...(info.max !== undefined ? { maximum: info.max } : {}), shared: info.shared };
}
