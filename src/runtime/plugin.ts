import { createHash } from 'node:crypto';
import { PluginStartError } from '../common/errors';
import type { Logger } from '../common/logger';
import { silentLogger } from '../common/logger';
import type { FailurePolicy } from '../abi/enums';
import type { RootContext } from '../abi/contexts';
import type { HostServices } from '../abi/host-services';
import { PluginVm, describeError } from '../abi/plugin-vm';
import type { StreamHost } from '../abi/stream-state';
import { defaultModuleCache, type CompiledPlugin, type ModuleCache } from '../wasm/module-cache';
import { HttpStream } from './http-stream';

/** Envoy PluginConfig + VmConfig, reduced to what the host acts on. */
export interface PluginConfig {
  /** PluginConfig.name: log prefix, property `plugin_name`. */
  readonly name: string;
  /** PluginConfig.root_id: property `plugin_root_id` (AssemblyScript SDKs pick their root context by it). */
  readonly rootId?: string;
  /** VmConfig.vm_id: scopes shared data and queues. */
  readonly vmId?: string;
  /** Buffer 7 at proxy_on_configure. */
  readonly configuration?: Buffer | string;
  /** Buffer 6 at proxy_on_vm_start. */
  readonly vmConfiguration?: Buffer | string;
  /** VmConfig.environment_variables (already resolved): the only variables the guest sees. */
  readonly environment?: Readonly<Record<string, string>>;
  readonly failurePolicy?: FailurePolicy;
  readonly allowOnHeadersStopIteration?: boolean;
  /** FAIL_RELOAD backoff base (Envoy reload_config.backoff, default 1 s). */
  readonly reloadBackoffMs?: number;
}

export type PluginCode = Uint8Array | string | CompiledPlugin;

export interface PluginOptions {
  readonly services: HostServices;
  readonly logger?: Logger;
  readonly moduleCache?: ModuleCache;
  /**
   * The VMs this plugin may share (one registry per worker thread, as Envoy's thread-local Wasm map). Absent:
   * a registry of its own, so the plugin gets a VM of its own.
   */
  readonly vms?: VmRegistry;
}

function toBuffer(v: Buffer | string | undefined): Buffer {
  if (v === undefined) return Buffer.alloc(0);
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
}

/**
 * cpp-host's vm key (makeVmKey): vm_id, the VM configuration and the code's hash. Plugins with one key share one
 * VM per worker; environment variables are not part of it, so the first plugin's apply (as in Envoy).
 */
export function vmKey(config: Pick<PluginConfig, 'vmId' | 'vmConfiguration' | 'environment'>, codeSha256: string): string {
  // The environment is part of the VM it starts: plugins asking for different variables get VMs of their own
  // rather than the first plugin's environment.
  const env = Object.entries(config.environment ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return createHash('sha256').update(config.vmId ?? '').update('||').update(toBuffer(config.vmConfiguration)).update('||').update(codeSha256)
    .update('||').update(JSON.stringify(env)).digest('hex');
}

/** cpp-host's PluginBase::key: plugins with one key in one VM share one root context. */
function pluginKey(config: PluginConfig): string {
  return createHash('sha256').update(config.name).update('||').update(config.rootId ?? '').update('||').update(toBuffer(config.configuration)).digest('hex');
}

/** One VM instance and the root contexts its plugins run on. */
export class SharedVm {
  /** Root contexts by plugin key, with how many plugins use each. */
  readonly roots = new Map<string, { readonly root: RootContext; users: number }>();
  users = 0;
  constructor(
    readonly key: string,
    readonly vm: PluginVm,
  ) {}
}

/**
 * The VMs of one worker thread (Envoy's thread-local Wasm map, cpp-host getOrCreateThreadLocalWasm): a plugin
 * acquires the live VM of its vm key, or a new one when there is none or it has failed (a failed VM is never
 * handed out again; plugins still on it keep their failure until they reload or close). A VM is closed when
 * its last plugin releases it.
 */
export class VmRegistry {
  private readonly live = new Map<string, SharedVm>();

  acquire(key: string, create: () => PluginVm): SharedVm {
    let shared = this.live.get(key);
    if (!shared || shared.vm.failed) {
      shared = new SharedVm(key, create());
      this.live.set(key, shared);
    }
    shared.users++;
    return shared;
  }

  release(shared: SharedVm): void {
    if (--shared.users > 0) return;
    if (this.live.get(shared.key) === shared) this.live.delete(shared.key);
    shared.vm.close();
  }

  /** VM instances that plugins hold (for tests and stats). */
  get size(): number {
    return this.live.size;
  }
}

/**
 * A loaded plugin: a root context in a VM it may share with other plugins of the same vm key, started as
 * cpp-host does (start-up once per VM; then per plugin root context create, proxy_on_vm_start with buffer 6,
 * proxy_on_configure with buffer 7; false from either fails the plugin). Streams are created per request.
 * A trap fails the VM and so every plugin on it; each then follows its own failure policy: FAIL_RELOAD moves
 * to a new VM for a later stream (with backoff; plugins of the same key that reload share it again);
 * FAIL_OPEN and FAIL_CLOSED leave it to the caller to bypass or refuse (see `failed` and `failurePolicy`).
 */
export class Plugin {
  readonly config: Required<Pick<PluginConfig, 'name' | 'rootId' | 'vmId' | 'failurePolicy'>> & PluginConfig;
  readonly logger: Logger;
  /**
   * The VM logs under no plugin's name: it may be shared, and each of its lines names the plugin (or the VM)
   * itself, so a line never carries `plugin` twice.
   */
  private readonly baseLogger: Logger;
  private shared!: SharedVm;
  private rootContext!: RootContext;
  private reloadAt = 0;
  private reloadBackoffMs: number;
  private closed = false;
  private readonly key: string;
  private readonly rootKey: string;
  /** Number of VMs this plugin has started on (1 + reloads), for tests and stats. */
  vmGeneration = 0;

  private constructor(
    readonly compiled: CompiledPlugin,
    config: PluginConfig,
    private readonly services: HostServices,
    logger: Logger,
    private readonly vms: VmRegistry,
  ) {
    this.config = {
      ...config,
      rootId: config.rootId ?? '',
      vmId: config.vmId ?? '',
      failurePolicy: config.failurePolicy ?? 'FAIL_CLOSED',
    };
    this.baseLogger = logger;
    this.logger = logger.child({ plugin: config.name });
    this.reloadBackoffMs = config.reloadBackoffMs ?? 1000;
    this.key = vmKey(config, compiled.sha256);
    this.rootKey = pluginKey(config);
  }

  static async load(code: PluginCode, config: PluginConfig, options: PluginOptions): Promise<Plugin> {
    const cache = options.moduleCache ?? defaultModuleCache;
    let compiled: CompiledPlugin;
    if (typeof code === 'string') compiled = await cache.compileFile(code);
    else if (code instanceof Uint8Array) compiled = await cache.compile(code);
    else compiled = code;
    const plugin = new Plugin(compiled, config, options.services, options.logger ?? silentLogger(), options.vms ?? new VmRegistry());
    plugin.start();
    return plugin;
  }

  get abi(): string {
    return this.compiled.abi;
  }

  get vm(): PluginVm {
    return this.shared.vm;
  }

  get root(): RootContext {
    return this.rootContext;
  }

  get failurePolicy(): FailurePolicy {
    return this.config.failurePolicy;
  }

  /** close() was called: the plugin serves no new stream. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** The current VM's failure, if any. */
  get failed(): Error | undefined {
    return this.closed ? new PluginStartError(`${this.config.name}: plugin closed`) : this.shared.vm.failed;
  }

  private start(): void {
    const shared = this.vms.acquire(this.key, () => PluginVm.create({
      module: this.compiled.module,
      abi: this.compiled.abi,
      vmId: this.config.vmId,
      vmConfiguration: toBuffer(this.config.vmConfiguration),
      environment: this.config.environment ?? {},
      services: this.services,
      logger: this.baseLogger,
      // A shared VM is named by its vm_id in its own log lines (each plugin's lines carry the plugin's name).
      label: this.config.vmId !== '' ? `vm ${this.config.vmId}` : this.config.name,
    }));
    try {
      this.rootContext = this.startRoot(shared);
    } catch (err) {
      this.vms.release(shared);
      throw err;
    }
    this.shared = shared;
    this.vmGeneration++;
  }

  /**
   * cpp-host WasmBase::start + configure: the plugin's root context (a new one, or the one of an identical
   * plugin on this VM), proxy_on_context_create and proxy_on_vm_start (its onStart), then proxy_on_configure.
   */
  private startRoot(shared: SharedVm): RootContext {
    const vm = shared.vm;
    const existing = shared.roots.get(this.rootKey);
    const root = existing?.root ?? vm.createRootContext({
      name: this.config.name,
      rootId: this.config.rootId,
      configuration: toBuffer(this.config.configuration),
    });
    const abandon = (): void => {
      if (existing) return;
      vm.cancelCallouts(root);
      vm.deleteContext(root);
    };
    try {
      vm.callGuest(root, 'proxy_on_context_create', root.id, 0);
      this.check(vm, 'proxy_on_context_create', undefined);
      const vmConfigSize = toBuffer(this.config.vmConfiguration).length;
      this.check(vm, 'proxy_on_vm_start', vm.callGuest(root, 'proxy_on_vm_start', root.id, vmConfigSize));
      const configSize = root.plugin.configuration.length;
      this.check(vm, 'proxy_on_configure', vm.callGuest(root, 'proxy_on_configure', root.id, configSize));
    } catch (err) {
      abandon();
      throw err;
    }
    if (existing) existing.users++;
    else shared.roots.set(this.rootKey, { root, users: 1 });
    return root;
  }

  private check(vm: PluginVm, callback: string, result: number | undefined): void {
    if (vm.failed) {
      throw new PluginStartError(`plugin '${this.config.name}': ${callback} failed: ${describeError(vm.failed.cause ?? vm.failed)}`, { cause: vm.failed });
    }
    if (result === 0 && callback !== 'proxy_on_context_create') {
      const what = callback === 'proxy_on_vm_start' ? 'VM start' : 'configure';
      throw new PluginStartError(`plugin '${this.config.name}': ${callback} returned false (${what} failure; the plugin rejected its ${what === 'VM start' ? 'VM configuration' : 'configuration'})`);
    }
  }

  /**
   * A new stream, or undefined when the VM has failed and cannot serve (the caller applies FAIL_OPEN or
   * FAIL_CLOSED). Under FAIL_RELOAD a failed VM is replaced once its backoff has passed.
   */
  createStream(host: StreamHost): HttpStream | undefined {
    const current = this.acquireVm();
    if (!current) return undefined;
    return new HttpStream(current.vm, current.root, host, {
      allowOnHeadersStopIteration: this.config.allowOnHeadersStopIteration === true,
    });
  }

  /**
   * The VM and root context a new stream or connection runs on, or undefined when the plugin is closed or its VM
   * has failed (a FAIL_RELOAD plugin first tries a new VM, within its backoff).
   */
  acquireVm(): { readonly vm: PluginVm; readonly root: RootContext } | undefined {
    if (this.closed) return undefined;
    if (this.shared.vm.failed && !this.tryReload()) return undefined;
    return { vm: this.shared.vm, root: this.rootContext };
  }

  private tryReload(): boolean {
    if (this.config.failurePolicy !== 'FAIL_RELOAD') return false;
    const now = Date.now();
    if (now < this.reloadAt) return false;
    this.reloadAt = now + this.reloadBackoffMs;
    this.reloadBackoffMs = Math.min(this.reloadBackoffMs * 2, 30_000);
    const old = this.shared;
    try {
      this.start();
      this.vms.release(old);
      this.reloadBackoffMs = this.config.reloadBackoffMs ?? 1000;
      this.logger.warn({ generation: this.vmGeneration }, 'plugin VM reloaded after failure');
      return true;
    } catch (err) {
      this.logger.error({ err: describeError(err) }, 'plugin VM reload failed');
      return false;
    }
  }

  /**
   * Root shutdown when this is the last plugin on its root context: proxy_on_done (then proxy_on_delete unless
   * the plugin defers with proxy_done), its callouts cancelled; the VM closes with its last plugin.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const shared = this.shared;
    const vm = shared.vm;
    const root = this.rootContext;
    const entry = shared.roots.get(this.rootKey);
    if (entry && entry.root === root && --entry.users === 0) {
      shared.roots.delete(this.rootKey);
      const wasShuttingDown = vm.shuttingDown;
      vm.shuttingDown = true;
      if (!vm.failed) {
        const done = vm.callGuest(root, 'proxy_on_done', root.id);
        if (done !== 0) vm.callGuest(root, 'proxy_on_delete', root.id);
      }
      vm.shuttingDown = wasShuttingDown;
      vm.cancelCallouts(root);
      vm.deleteContext(root);
    }
    this.vms.release(shared);
  }
}
