import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
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

/**
 * A compiled module as another thread's cache adopts it: WebAssembly.Module is structured-clonable to worker
 * threads (V8 shares the compiled code, nothing is compiled again), but a WeakMap entry does not travel with it.
 */
export interface SharedModule extends CompiledPlugin {
  readonly instrumentation: ModuleInstrumentation | undefined;
  /** The code files it was compiled from: compileFile() of one of them in the adopting cache reads nothing. */
  readonly files: readonly string[];
}

/** Where a module of this cache came from: rewritten now, rewritten on disk, compiled as it was, or adopted from another thread. */
export type ModuleSource = 'instrumented' | 'disk' | 'plain' | 'shared';

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
  /** Code files whose module was adopted (their bytes were read by the thread that compiled them). */
  private readonly adoptedFiles = new Map<string, Promise<CompiledPlugin>>();
  private readonly instrument: boolean;
  private readonly disk: InstrumentCache | undefined;
  /** Load timings of the last compile() that did work, for the benchmark. */
  lastLoad: { readonly source: Exclude<ModuleSource, 'shared'>; readonly ms: number } | undefined;
  /** Modules this cache holds, by where each came from (a worker's are all 'shared' when nothing is compiled twice). */
  readonly loads: Record<ModuleSource, number> = { instrumented: 0, disk: 0, plain: 0, shared: 0 };

  constructor(options: ModuleCacheOptions = {}) {
    this.instrument = options.instrument ?? true;
    const dir = options.cacheDir === undefined ? defaultInstrumentCacheDir() : options.cacheDir;
    this.disk = this.instrument && dir !== null ? new InstrumentCache(dir, CHECK_BUDGET) : undefined;
  }

  /** The module of a code file: the adopted one for a file another thread compiled (see adopt()), else compile() of its bytes now. */
  async compileFile(filename: string): Promise<CompiledPlugin> {
    return this.adoptedFiles.get(filename) ?? this.compile(await readFile(filename));
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

  /** `compiled` (a module of this cache) with its instrumentation, to post to a worker for adopt(). */
  shareable(compiled: CompiledPlugin, files: readonly string[]): SharedModule {
    return { module: compiled.module, abi: compiled.abi, sha256: compiled.sha256, instrumentation: moduleInstrumentation(compiled.module), files };
  }

  /**
   * Takes modules another thread compiled (shareable() there, structured-cloned here): compile() of the same
   * bytes, or compileFile() of a file they came from, then hands them out as they are, so every thread runs the
   * code that thread read (a file changed on disk since is not read again). A module already here is kept.
   */
  adopt(modules: readonly SharedModule[]): void {
    for (const m of modules) {
      let entry = this.modules.get(m.sha256);
      if (!entry) {
        if (m.instrumentation) instrumentation.set(m.module, m.instrumentation);
        noteModuleDigest(m.module, m.sha256);
        entry = Promise.resolve({ module: m.module, abi: m.abi, sha256: m.sha256 });
        this.modules.set(m.sha256, entry);
        this.loads.shared++;
      }
      for (const f of m.files) this.adoptedFiles.set(f, entry);
    }
  }

  private async compileModule(bytes: Uint8Array, sha256: string): Promise<CompiledPlugin> {
    const started = performance.now();
    // V8's own verdict first: a malformed module is reported as V8 words it, whatever binaryen would say.
    if (!WebAssembly.validate(bytes)) await compileOrThrow(bytes);
    let module: WebAssembly.Module;
    let source: Exclude<ModuleSource, 'shared'> = 'plain';
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
    this.loads[source]++;
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
