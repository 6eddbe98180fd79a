import { createHash } from 'node:crypto';
import { PluginLoadError } from '../common/errors';
import { detectAbiVersion, type AbiVersion } from './abi-version';
import { noteModuleDigest } from '../abi/host-call-recorder';
import type { InstrumentedModule, MemoryImport } from './instrument';
import { defaultInstrumentCacheDir, InstrumentCache } from './instrument-cache';
import { runInstrumentation } from './instrument-runner';
import { CHECK_BUDGET } from './watchdog';

export interface CompiledPlugin {
  readonly module: WebAssembly.Module;
  readonly abi: AbiVersion;
  /** Of the code as delivered (vm keys, sha256 checks), not of the instrumented module. */
  readonly sha256: string;
}

/** What the host must supply to an instrumented module: the watchdog import and its (capped) memory. */
export interface ModuleInstrumentation {
  /** The memory the module imports, with the limits it declared; absent if it has none. */
  readonly memory?: MemoryImport;
}

const instrumentation = new WeakMap<WebAssembly.Module, ModuleInstrumentation>();

/** How `module` was instrumented, or undefined for a module compiled as it was (no watchdog, no memory cap). */
export function moduleInstrumentation(module: WebAssembly.Module): ModuleInstrumentation | undefined {
  return instrumentation.get(module);
}

export interface ModuleCacheOptions {
  /**
   * Rewrite modules for the deadline and the memory cap (src/wasm/instrument.ts). Default true; false only for
   * measuring what the instrumentation costs.
   */
  readonly instrument?: boolean;
  /** Directory for instrumented modules across runs; default under os.tmpdir(); null: memory only. */
  readonly cacheDir?: string | null;
}

/**
 * Compiles each distinct module once (keyed by sha256) and hands the same WebAssembly.Module to every VM,
 * as Envoy shares compiled code across VMs and workers. Modules are instrumented first (watchdog hooks, memory
 * as an import), the result kept on disk so the next start skips the rewrite. A malformed module, or one the
 * instrumentation cannot rewrite, is a PluginLoadError.
 */
export class ModuleCache {
  private readonly modules = new Map<string, Promise<CompiledPlugin>>();
  private readonly instrument: boolean;
  private readonly disk: InstrumentCache | undefined;
  /** Load timings of the last compile() that did work, for the benchmark. */
  lastLoad: { readonly source: 'instrumented' | 'disk' | 'plain'; readonly ms: number } | undefined;

  constructor(options: ModuleCacheOptions = {}) {
    this.instrument = options.instrument ?? true;
    const dir = options.cacheDir === undefined ? defaultInstrumentCacheDir() : options.cacheDir;
    this.disk = this.instrument && dir !== null ? new InstrumentCache(dir, CHECK_BUDGET) : undefined;
  }

  compile(bytes: Uint8Array): Promise<CompiledPlugin> {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    let entry = this.modules.get(sha256);
    if (!entry) {
      entry = this.compileModule(bytes, sha256);
      this.modules.set(sha256, entry);
      entry.catch(() => this.modules.delete(sha256));
    }
    return entry;
  }

  get size(): number {
    return this.modules.size;
  }

  private async compileModule(bytes: Uint8Array, sha256: string): Promise<CompiledPlugin> {
    const started = performance.now();
    // V8's own verdict first: a malformed module is reported as V8 words it, whatever binaryen would say.
    if (!WebAssembly.validate(bytes)) await compileOrThrow(bytes);
    let module: WebAssembly.Module;
    let source: 'instrumented' | 'disk' | 'plain' = 'plain';
    if (!this.instrument) {
      module = await compileOrThrow(bytes);
    } else {
      let rewritten = await this.disk?.get(sha256);
      let compiled = rewritten ? await WebAssembly.compile(rewritten.bytes).catch(() => undefined) : undefined;
      source = 'disk';
      if (!compiled) {
        source = 'instrumented';
        try {
          rewritten = await runInstrumentation(bytes, CHECK_BUDGET);
        } catch (err) {
          throw new PluginLoadError(`cannot instrument the module for the plugin watchdog: ${(err as Error).message}`, { cause: err });
        }
        compiled = await compileInstrumented(rewritten);
        await this.disk?.put(sha256, rewritten);
      }
      module = compiled;
      instrumentation.set(module, rewritten!.memory ? { memory: rewritten!.memory } : {});
    }
    this.lastLoad = { source, ms: performance.now() - started };
    noteModuleDigest(module, sha256);
    return { module, abi: detectAbiVersion(module), sha256 };
  }
}

async function compileOrThrow(bytes: Uint8Array): Promise<WebAssembly.Module> {
  try {
    return await WebAssembly.compile(bytes);
  } catch (err) {
    throw new PluginLoadError(`not a valid WebAssembly module: ${(err as Error).message}`, { cause: err });
  }
}

async function compileInstrumented(rewritten: InstrumentedModule): Promise<WebAssembly.Module> {
  try {
    return await WebAssembly.compile(rewritten.bytes);
  } catch (err) {
    throw new PluginLoadError(`the instrumented module does not compile: ${(err as Error).message}`, { cause: err });
  }
}

/** The process-wide cache used when callers don't bring their own. */
export const defaultModuleCache = new ModuleCache();
