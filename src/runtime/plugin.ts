import { readFile } from 'node:fs/promises';
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
}

function toBuffer(v: Buffer | string | undefined): Buffer {
  if (v === undefined) return Buffer.alloc(0);
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
}

/**
 * A loaded plugin: one VM with one root context, started as cpp-host does (start-up, root context create,
 * proxy_on_vm_start with buffer 6, proxy_on_configure with buffer 7; false from either fails the plugin).
 * Streams are created per request. After a trap the plugin follows its failure policy: FAIL_RELOAD builds
 * a new VM for a later stream (with backoff); FAIL_OPEN and FAIL_CLOSED leave it to the caller to bypass
 * or refuse (see `failed` and `failurePolicy`).
 */
export class Plugin {
  readonly config: Required<Pick<PluginConfig, 'name' | 'rootId' | 'vmId' | 'failurePolicy'>> & PluginConfig;
  readonly logger: Logger;
  private vmInstance!: PluginVm;
  private rootContext!: RootContext;
  private reloadAt = 0;
  private reloadBackoffMs: number;
  private closed = false;
  /** Number of VMs created (1 + reloads), for tests and stats. */
  vmGeneration = 0;

  private constructor(
    readonly compiled: CompiledPlugin,
    config: PluginConfig,
    private readonly services: HostServices,
    logger: Logger,
  ) {
    this.config = {
      ...config,
      rootId: config.rootId ?? '',
      vmId: config.vmId ?? '',
      failurePolicy: config.failurePolicy ?? 'FAIL_CLOSED',
    };
    this.logger = logger.child({ plugin: config.name });
    this.reloadBackoffMs = config.reloadBackoffMs ?? 1000;
  }

  static async load(code: PluginCode, config: PluginConfig, options: PluginOptions): Promise<Plugin> {
    const cache = options.moduleCache ?? defaultModuleCache;
    let compiled: CompiledPlugin;
    if (typeof code === 'string') compiled = await cache.compile(await readFile(code));
    else if (code instanceof Uint8Array) compiled = await cache.compile(code);
    else compiled = code;
    const plugin = new Plugin(compiled, config, options.services, options.logger ?? silentLogger());
    plugin.start();
    return plugin;
  }

  get abi(): string {
    return this.compiled.abi;
  }

  get vm(): PluginVm {
    return this.vmInstance;
  }

  get root(): RootContext {
    return this.rootContext;
  }

  get failurePolicy(): FailurePolicy {
    return this.config.failurePolicy;
  }

  /** The current VM's failure, if any. */
  get failed(): Error | undefined {
    return this.closed ? new PluginStartError(`${this.config.name}: plugin closed`) : this.vmInstance.failed;
  }

  private start(): void {
    const vm = PluginVm.create({
      module: this.compiled.module,
      abi: this.compiled.abi,
      vmId: this.config.vmId,
      vmConfiguration: toBuffer(this.config.vmConfiguration),
      environment: this.config.environment ?? {},
      services: this.services,
      logger: this.logger,
      label: this.config.name,
    });
    const root = vm.createRootContext({
      name: this.config.name,
      rootId: this.config.rootId,
      configuration: toBuffer(this.config.configuration),
    });
    vm.callGuest(root, 'proxy_on_context_create', root.id, 0);
    this.check(vm, 'proxy_on_context_create', undefined);
    const vmConfigSize = toBuffer(this.config.vmConfiguration).length;
    this.check(vm, 'proxy_on_vm_start', vm.callGuest(root, 'proxy_on_vm_start', root.id, vmConfigSize));
    const configSize = root.plugin.configuration.length;
    this.check(vm, 'proxy_on_configure', vm.callGuest(root, 'proxy_on_configure', root.id, configSize));
    this.vmInstance = vm;
    this.rootContext = root;
    this.vmGeneration++;
  }

  private check(vm: PluginVm, callback: string, result: number | undefined): void {
    if (vm.failed) {
      vm.close();
      throw new PluginStartError(`plugin '${this.config.name}': ${callback} failed: ${describeError(vm.failed.cause ?? vm.failed)}`, { cause: vm.failed });
    }
    if (result === 0 && callback !== 'proxy_on_context_create') {
      vm.close();
      const what = callback === 'proxy_on_vm_start' ? 'VM start' : 'configure';
      throw new PluginStartError(`plugin '${this.config.name}': ${callback} returned false (${what} failure; the plugin rejected its ${what === 'VM start' ? 'VM configuration' : 'configuration'})`);
    }
  }

  /**
   * A new stream, or undefined when the VM has failed and cannot serve (the caller applies FAIL_OPEN or
   * FAIL_CLOSED). Under FAIL_RELOAD a failed VM is replaced once its backoff has passed.
   */
  createStream(host: StreamHost): HttpStream | undefined {
    if (this.closed) return undefined;
    if (this.vmInstance.failed && !this.tryReload()) return undefined;
    return new HttpStream(this.vmInstance, this.rootContext, host, {
      allowOnHeadersStopIteration: this.config.allowOnHeadersStopIteration === true,
    });
  }

  private tryReload(): boolean {
    if (this.config.failurePolicy !== 'FAIL_RELOAD') return false;
    const now = Date.now();
    if (now < this.reloadAt) return false;
    this.reloadAt = now + this.reloadBackoffMs;
    this.reloadBackoffMs = Math.min(this.reloadBackoffMs * 2, 30_000);
    const old = this.vmInstance;
    try {
      this.start();
      old.close();
      this.reloadBackoffMs = this.config.reloadBackoffMs ?? 1000;
      this.logger.warn({ generation: this.vmGeneration }, 'plugin VM reloaded after failure');
      return true;
    } catch (err) {
      this.logger.error({ err: describeError(err) }, 'plugin VM reload failed');
      return false;
    }
  }

  /** Root shutdown: proxy_on_done (then proxy_on_delete unless the plugin defers with proxy_done), close the VM. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const vm = this.vmInstance;
    const root = this.rootContext;
    vm.shuttingDown = true;
    if (!vm.failed) {
      const done = vm.callGuest(root, 'proxy_on_done', root.id);
      if (done !== 0) vm.callGuest(root, 'proxy_on_delete', root.id);
    }
    vm.close();
  }
}
