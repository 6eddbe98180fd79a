import { PluginStartError } from '../common/errors';
import { MAX_MEMORY_BYTES } from '../common/limits';
import type { MemoryImport } from './instrument';

export const WASM_PAGE_BYTES = 65536;
/** proxy-wasm-cpp-host limits.h PROXY_WASM_HOST_MAX_WASM_MEMORY_SIZE_BYTES: 1 GiB per VM. */
export const DEFAULT_MEMORY_LIMIT_BYTES = MAX_MEMORY_BYTES;
/** A 32-bit memory cannot exceed 4 GiB (65536 pages). */
const MAX_PAGES = 65536;

/** The cap in whole pages; a limit that is not a positive number of bytes of at least one page is refused. */
export function memoryLimitPages(limitBytes: number): number {
  if (!Number.isFinite(limitBytes) || limitBytes < WASM_PAGE_BYTES) {
    throw new RangeError(`memory limit must be at least ${WASM_PAGE_BYTES} bytes (one Wasm page), got ${limitBytes}`);
  }
  return Math.min(Math.floor(limitBytes / WASM_PAGE_BYTES), MAX_PAGES);
}

/**
 * The memory an instrumented module imports: its declared initial size, its maximum lowered to the cap, so
 * V8 itself refuses `memory.grow` past it (the guest sees -1, as with Envoy's V8 flag --wasm_max_mem_pages).
 * A module whose initial memory is already over the cap cannot start (as under Envoy).
 */
export function createLimitedMemory(declared: MemoryImport, limitBytes: number, label: string): WebAssembly.Memory {
  const cap = memoryLimitPages(limitBytes);
  if (declared.initial > cap) {
    throw new PluginStartError(`${label}: the module's initial memory (${declared.initial} pages, ${declared.initial * WASM_PAGE_BYTES} bytes) is over its memory limit of ${cap * WASM_PAGE_BYTES} bytes`);
  }
  const maximum = Math.min(declared.maximum ?? MAX_PAGES, cap);
  try {
    return new WebAssembly.Memory({ initial: declared.initial, maximum, ...(declared.shared ? { shared: true } : {}) });
  } catch (err) {
    throw new PluginStartError(`${label}: cannot allocate ${declared.initial} pages of linear memory: ${(err as Error).message}`, { cause: err });
  }
}
