import type { Logger } from '../common/logger';
import { PluginStartError, PluginTrapError } from '../common/errors';
import type { AbiVersion } from '../wasm/abi-version';
import { GuestMemory } from '../wasm/guest-memory';
import { ProcExit, buildWasiImports, WASI_MODULE_NAMES } from '../wasm/wasi';
import { WATCHDOG_CHECK, WATCHDOG_MODULE } from '../wasm/instrument';
import { createLimitedMemory, memoryLimitPages } from '../wasm/memory-limit';
import { currentWasmLimitDefaults } from '../wasm/limits-config';
import { moduleInstrumentation } from '../wasm/module-cache';
import { GuestWatchdog, START_FUNCTION } from '../wasm/watchdog';
import { CalloutKind, LOG_LEVEL_NAMES } from './enums';
import { readGuestExports, type GuestExportName, type GuestExports } from './guest-exports';
import { buildHostImports, missingImports } from './host-functions';
import type { HostServices } from './host-services';
import { RootContext, HttpContext, NetworkContext, type Context, type PluginIdentity } from './contexts';
import type { NetworkStreamState, StreamState } from './stream-state';

export interface PluginVmOptions {
  readonly module: WebAssembly.Module;
  readonly abi: AbiVersion;
  /** Scopes shared data and queues (Envoy VmConfig.vm_id). */
  readonly vmId: string;
  /** Delivered at proxy_on_vm_start through buffer 6. */
  readonly vmConfiguration: Buffer;
  /** Only these reach the guest's WASI environment; never the host's. */
  readonly environment: Readonly<Record<string, string>>;
  readonly services: HostServices;
  readonly logger: Logger;
  /** Used in log lines before any plugin is attached. */
  readonly label: string;
  /**
   * Cap on the VM's linear memory (default 1 GiB, Envoy's); `memory.grow` past it returns -1 in the guest.
   * Applies to modules compiled through ModuleCache (which makes their memory an import).
   */
  readonly memoryLimitBytes?: number;
  /** Deadline of one outermost guest call, in ms (default 1 s); past it the call traps and the VM fails. */
  readonly callDeadlineMs?: number;
  /** Deadline of start-up, proxy_on_vm_start and proxy_on_configure, in ms (default 10 s). */
  readonly startDeadlineMs?: number;
}

/**
 * One instantiated module: its memory, exports, contexts, the effective context, and the after-call queue.
 * Calls into the guest go through callGuest(), which sets the current context, turns a trap into a VM failure
 * (logged with the callback name), and runs deferred actions once the outermost call has returned, so the
 * guest is never re-entered from a host function.
 */
export class PluginVm {
  readonly abi: AbiVersion;
  readonly vmId: string;
  readonly vmConfiguration: Buffer;
  readonly services: HostServices;
  readonly logger: Logger;
  readonly contexts = new Map<number, Context>();
  memory!: GuestMemory;
  exports!: GuestExports;
  private instance!: WebAssembly.Instance;
  private nextContext = 1;
  private readonly calloutSeq = [0, 0, 0, 0];
  private current: Context | undefined;
  private effective: Context | undefined;
  private depth = 0;
  private readonly afterCall: Array<() => void> = [];
  private failure: Error | undefined;
  /** Set by the owner before root shutdown callbacks; a trap then is logged as a warning. */
  shuttingDown = false;
  /** Callback currently executing (for logs). */
  private callbackName = '';
  private readonly environment: string[];
  readonly label: string;
  private readonly watchdog: GuestWatchdog;
  private readonly memoryLimitBytes: number;

  private constructor(options: PluginVmOptions) {
    this.abi = options.abi;
    this.vmId = options.vmId;
    this.vmConfiguration = options.vmConfiguration;
    this.services = options.services;
    this.logger = options.logger;
    this.label = options.label;
    this.environment = Object.entries(options.environment).map(([k, v]) => `${k}=${v}`);
    const defaults = currentWasmLimitDefaults(); // the CLI's --wasm-* flags, else the built-in ones
    this.memoryLimitBytes = options.memoryLimitBytes ?? defaults.memoryLimitBytes;
    memoryLimitPages(this.memoryLimitBytes); // a bad limit is refused before anything runs
    this.watchdog = new GuestWatchdog({
      callMs: options.callDeadlineMs ?? defaults.callDeadlineMs,
      startMs: options.startDeadlineMs ?? defaults.startDeadlineMs,
    });
  }

  /** Instantiates the module and runs its start-up (`_initialize` + `main`, or `_start`). */
  static create(options: PluginVmOptions): PluginVm {
    const vm = new PluginVm(options);
    vm.instantiate(options.module);
    return vm;
  }

  private instantiate(module: WebAssembly.Module): void {
    const env = buildHostImports(this, this.abi, module);
    const wasi = buildWasiImports({
      memory: () => this.memory,
      environment: this.environment,
      stdout: (text) => this.pluginLog(2, text),
      stderr: (text) => this.pluginLog(4, text),
    });
    const imports: WebAssembly.Imports = { env };
    for (const name of WASI_MODULE_NAMES) imports[name] = wasi;
    const instrumented = moduleInstrumentation(module);
    if (instrumented) {
      imports[WATCHDOG_MODULE] = { [WATCHDOG_CHECK]: this.watchdog.check };
      const declared = instrumented.memory;
      if (declared) imports[declared.module] = { ...imports[declared.module], [declared.name]: createLimitedMemory(declared, this.memoryLimitBytes, this.label) };
    }
    const missing = missingImports(module, imports);
    if (missing.length > 0) {
      throw new PluginStartError(`${this.label}: module imports functions this host does not provide for ABI ${this.abi}: ${missing.join(', ')}`);
    }
    // Instantiation runs the module's start function (AssemblyScript's top-level statements): under the watchdog too.
    this.watchdog.arm(START_FUNCTION);
    try {
      this.instance = new WebAssembly.Instance(module, imports);
    } catch (err) {
      const deadline = this.watchdog.deadlineError();
      if (deadline) throw new PluginStartError(`${this.label}: instantiation failed: ${describeError(deadline)}`, { cause: deadline });
      throw new PluginStartError(`${this.label}: instantiation failed: ${(err as Error).message}`, { cause: err });
    } finally {
      this.watchdog.disarm();
    }
    const memory = this.instance.exports['memory'];
    if (!(memory instanceof WebAssembly.Memory)) throw new PluginStartError(`${this.label}: module exports no memory`);
    this.memory = new GuestMemory(memory, () => this.watchdog.poll());
    this.watchdog.attach(this.instance);
    this.exports = readGuestExports(this.instance, this.abi);
    if (!this.exports.malloc && !this.exports.proxy_on_memory_allocate) {
      throw new PluginStartError(`${this.label}: module exports neither malloc nor proxy_on_memory_allocate`);
    }
    this.runStartup();
  }

  /** cpp-host: `_initialize` then `main(0, 0)` if exported; otherwise `_start`. proc_exit(0) there is normal completion. */
  private runStartup(): void {
    const steps: Array<[GuestExportName, number[]]> = this.exports._initialize
      ? [['_initialize', []], ...(this.exports.main ? [['main', [0, 0]] as [GuestExportName, number[]]] : [])]
      : this.exports._start
        ? [['_start', []]]
        : [];
    for (const [name, args] of steps) {
      this.watchdog.arm(name);
      try {
        this.exports[name]!(...args);
      } catch (err) {
        if (err instanceof ProcExit && err.exitCode === 0) continue;
        const cause = this.watchdog.deadlineError() ?? err;
        throw new PluginStartError(`${this.label}: ${name} failed: ${describeError(cause)}`, { cause });
      } finally {
        this.watchdog.disarm();
      }
    }
  }

  get failed(): Error | undefined {
    return this.failure;
  }

  /** The context host functions act on: the effective one if the guest set it, else the current one. */
  activeContext(): Context | undefined {
    return this.effective ?? this.current;
  }

  setEffectiveContext(id: number): boolean {
    const ctx = this.contexts.get(id);
    if (!ctx) return false;
    this.effective = ctx;
    return true;
  }

  nextCalloutToken(kind: CalloutKind): number {
    const seq = ++this.calloutSeq[kind]!;
    return ((seq << 2) | kind) >>> 0;
  }

  /** Queue work for after the outermost guest call returns (or run it on a later tick if the VM is idle). */
  defer(action: () => void): void {
    if (this.depth > 0) this.afterCall.push(action);
    else setImmediate(action);
  }

  /**
   * For completions arriving from the event loop (callout replies): run now if the VM is idle, else after the
   * current guest call. Never re-enters a running guest; saves a loop turn per reply.
   */
  whenIdle(action: () => void): void {
    if (this.depth > 0) this.afterCall.push(action);
    else action();
  }

  get inGuestCall(): boolean {
    return this.depth > 0;
  }

  createRootContext(plugin: PluginIdentity): RootContext {
    const root = new RootContext(this, this.nextContext++, plugin);
    this.contexts.set(root.id, root);
    return root;
  }

  createHttpContext(root: RootContext, stream: StreamState): HttpContext {
    const ctx = new HttpContext(this, this.nextContext++, root, stream);
    this.contexts.set(ctx.id, ctx);
    return ctx;
  }

  createNetworkContext(root: RootContext, connection: NetworkStreamState): NetworkContext {
    const ctx = new NetworkContext(this, this.nextContext++, root, connection);
    this.contexts.set(ctx.id, ctx);
    return ctx;
  }

  /** The context is gone (after proxy_on_delete): unregistered, and a stream context keeps nothing of its stream. */
  deleteContext(ctx: Context): void {
    this.contexts.delete(ctx.id);
    if (!(ctx instanceof RootContext)) ctx.detach();
  }

  /**
   * Calls a guest export with `ctx` as the current context. Returns the guest's result, 0 for a void export,
   * or undefined if the export is missing, the VM has failed, or the call trapped (the VM is then failed).
   * Up to five i32 arguments, spelled out rather than a rest array and a spread: this runs for every callback of
   * every stream. Arguments past the export's own parameters are ignored by the guest, missing ones are 0.
   */
  callGuest(ctx: Context | undefined, name: GuestExportName, a0?: number, a1?: number, a2?: number, a3?: number, a4?: number): number | undefined {
    const fn = this.exports[name];
    if (!fn || this.failure) return undefined;
    const savedCurrent = this.current;
    const savedEffective = this.effective;
    const savedName = this.callbackName;
    this.current = ctx;
    this.effective = undefined;
    this.callbackName = name;
    if (this.depth++ === 0) this.watchdog.arm(name);
    let result: number | undefined;
    try {
      const r = fn(a0 ?? 0, a1 ?? 0, a2 ?? 0, a3 ?? 0, a4 ?? 0);
      result = typeof r === 'number' ? r : 0;
    } catch (err) {
      this.fail(name, err);
      result = undefined;
    } finally {
      if (--this.depth === 0) this.watchdog.disarm();
      this.current = savedCurrent;
      this.effective = savedEffective;
      this.callbackName = savedName;
    }
    if (this.depth === 0) this.runAfterCall();
    return result;
  }

  private runAfterCall(): void {
    while (this.afterCall.length > 0) {
      const action = this.afterCall.shift()!;
      try {
        action();
      } catch (err) {
        this.logger.error({ plugin: this.label, err: describeError(err) }, 'after-VM-call action failed');
      }
    }
  }

  private fail(callback: string, err: unknown): void {
    // A trap the watchdog caused (the guest ran `unreachable` on its answer) is reported as the deadline.
    const deadline = this.watchdog.deadlineError();
    const cause = deadline ?? err;
    const message = describeError(cause);
    this.failure = deadline
      ? new PluginTrapError(`${this.label}: ${deadline.message}`, { cause })
      : new PluginTrapError(`${this.label}: ${callback} trapped: ${message}`, { cause });
    // A plugin that aborts in its root proxy_on_done while the host shuts it down is not an operational error
    // (the AssemblyScript SDKs do, looking the root up in their stream-context map).
    if (this.shuttingDown) this.logger.warn({ plugin: this.label, callback, err: message }, 'plugin trapped during shutdown');
    else this.logger.error({ plugin: this.label, callback, err: message }, 'plugin VM failed');
    for (const ctx of this.contexts.values()) {
      if (ctx instanceof RootContext) this.cancelCallouts(ctx);
    }
  }

  /** Cancel a root's pending callouts without callbacks and stop its timer (root deleted, VM failed or closed). */
  cancelCallouts(root: RootContext): void {
    root.redisEpoch++; // replies still on their way are dropped; release() below cancels the calls
    for (const call of root.pendingHttp.values()) call.cancel();
    root.pendingHttp.clear();
    for (const { call } of root.pendingGrpc.values()) call.cancel();
    root.pendingGrpc.clear();
    if (root.tickTimer) clearInterval(root.tickTimer);
    root.tickTimer = undefined;
    for (const r of root.queueRegistrations.splice(0)) r.dispose();
    this.services.redis?.release(root);
  }

  /**
   * Copies bytes into guest memory through the guest allocator and writes (ptr, len) to the two out-pointers.
   * An empty result is (0, 0) without calling the allocator (Go's allocator panics on 0).
   */
  copyOut(bytes: Uint8Array, ptrPtr: number, sizePtr: number): boolean {
    if (bytes.length === 0) return this.memory.setU32(ptrPtr, 0) && this.memory.setU32(sizePtr, 0);
    const ptr = this.allocate(bytes.length);
    if (ptr === 0) return false;
    return this.memory.write(ptr, bytes) && this.memory.setU32(ptrPtr, ptr) && this.memory.setU32(sizePtr, bytes.length);
  }

  /** cpp-host prefers malloc, the spec proxy_on_memory_allocate; every SDK exports one that works. 0 = failure. */
  allocate(size: number): number {
    const alloc = this.exports.malloc ?? this.exports.proxy_on_memory_allocate;
    if (!alloc || this.failure) return 0;
    const name = this.exports.malloc ? 'malloc' : 'proxy_on_memory_allocate';
    if (this.depth++ === 0) this.watchdog.arm(name);
    try {
      const ptr = alloc(size);
      return typeof ptr === 'number' ? ptr >>> 0 : 0;
    } catch (err) {
      this.fail(name, err);
      return 0;
    } finally {
      if (--this.depth === 0) this.watchdog.disarm();
    }
  }

  /** A guest function from the exported `__indirect_function_table` (the note's Redis variant). */
  tableFunction(index: number): ((...args: number[]) => unknown) | undefined {
    // wasm-ld and Rust export it as __indirect_function_table; AssemblyScript's --exportTable as `table`.
    const table = this.instance.exports['__indirect_function_table'] ?? this.instance.exports['table'];
    if (!(table instanceof WebAssembly.Table)) return undefined;
    if (!Number.isInteger(index) || index < 0 || index >= table.length) return undefined;
    const f: unknown = table.get(index);
    return typeof f === 'function' ? (f as (...args: number[]) => unknown) : undefined;
  }

  /** Runs a table function like an export (same trap handling and after-call queue); arguments as callGuest's. */
  callTable(ctx: Context, index: number, a0?: number, a1?: number, a2?: number, a3?: number, a4?: number): boolean {
    const f = this.tableFunction(index);
    if (!f || this.failure) return false;
    const savedCurrent = this.current;
    const savedEffective = this.effective;
    this.current = ctx;
    this.effective = undefined;
    if (this.depth++ === 0) this.watchdog.arm(`table[${index}]`);
    let ok = true;
    try {
      f(a0 ?? 0, a1 ?? 0, a2 ?? 0, a3 ?? 0, a4 ?? 0);
    } catch (err) {
      this.fail(`table[${index}]`, err);
      ok = false;
    } finally {
      if (--this.depth === 0) this.watchdog.disarm();
      this.current = savedCurrent;
      this.effective = savedEffective;
    }
    if (this.depth === 0) this.runAfterCall();
    return ok;
  }

  /** proxy_log and WASI stdio, under the plugin's name. */
  pluginLog(level: number, message: string): void {
    const ctx = this.activeContext();
    const plugin = ctx ? ctx.root.plugin.name : this.label;
    const name = LOG_LEVEL_NAMES[level] ?? 'info';
    const pinoLevel = name === 'critical' ? 'fatal' : name;
    this.logger[pinoLevel]({ plugin, wasm_level: name }, message);
  }

  get currentCallback(): string {
    return this.callbackName;
  }

  /** Stops timers and cancels every callout; the VM is unusable afterwards. */
  close(): void {
    for (const ctx of this.contexts.values()) if (ctx instanceof RootContext) this.cancelCallouts(ctx);
    this.contexts.clear();
    this.failure ??= new PluginTrapError(`${this.label}: VM closed`);
  }
}

export function describeError(err: unknown): string {
  if (err instanceof ProcExit) return err.message;
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
