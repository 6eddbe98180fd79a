import { ConfigError } from '../common/errors';
import type { Disposable } from '../common/disposable';
import type { Logger } from '../common/logger';
import { HttpListener, staticFilter, staticRoutes, type ChainSources, type HttpFilterSource, type HttpListenerOptions, type RouteSource } from '../http/listener';
import { parseListener, type FilterChainConfig, type ListenerConfig, type ListenerParseOptions, type WasmFilterConfig } from '../http/listener-config';
import type { Plugin } from '../runtime/plugin';
import { RouteTable } from '../http/route-table';
import type { UpstreamPools } from '../http/upstream-pools';
import type { JsonObject } from '../xds/proto-json';
import type { DeliveredResource, ResourceSink } from '../xds/resource-sink';
import type { ExtensionConfigManager, PluginLoader } from './extension-config-manager';
import { ListenerSocket } from './listener-socket';
import type { RouteConfigManager } from './route-config-manager';

/**
 * Envoy's listener manager for this data plane: static (bootstrap) listeners, and listeners added, changed and
 * removed at run time over LDS. A listener version is built completely first (inline plugins loaded, RDS and
 * ECDS watched); a build error is that listener's NACK reason and the version before it keeps serving. A new
 * version warms until its route configurations and extension configs arrive (or their initial fetch ends), then
 * takes over: on the same socket when the address is unchanged (the port stays bound and no connection is
 * refused), while the version before drains (HTTP/1 `connection: close`, HTTP/2 GOAWAY, HCM drain_timeout, then
 * its connections close) and then releases its plugins and subscriptions. A removed listener stops accepting and
 * drains the same way.
 */

export type ListenerState = 'warming' | 'active' | 'draining';

/** One version of a listener. */
interface Version {
  readonly config: ListenerConfig;
  /** The LDS resource (proto3 JSON); undefined for a static listener. */
  readonly resource: JsonObject | undefined;
  readonly version: string;
  readonly lastUpdated: Date;
  /** The resource's identity: an identical resend changes nothing (Envoy: "listener unchanged"). */
  readonly key: string;
  readonly listener: HttpListener;
  readonly socket: ListenerSocket;
  readonly ready: Promise<void>;
  /** Subscriptions and plugins this version holds, released once it has drained. */
  readonly holds: readonly Disposable[];
}

interface Entry {
  readonly name: string;
  readonly isStatic: boolean;
  active: Version | undefined;
  warming: Version | undefined;
  readonly draining: Set<Version>;
  /** The last rejected update (ListenersConfigDump error_state). */
  error: { readonly details: string; readonly version: string; readonly at: Date; readonly resource: JsonObject } | undefined;
}

export interface ListenerVersionDump {
  readonly version: string;
  readonly resource: JsonObject;
  readonly lastUpdated: Date;
}

export interface DynamicListenerDump {
  readonly name: string;
  readonly active?: ListenerVersionDump;
  readonly warming?: ListenerVersionDump;
  readonly draining?: ListenerVersionDump;
  readonly error?: { readonly details: string; readonly version: string; readonly at: Date; readonly resource: JsonObject };
}

export interface ListenerManagerOptions {
  readonly pools: UpstreamPools;
  readonly logger: Logger;
  readonly node?: HttpListenerOptions['node'];
  readonly routes: RouteConfigManager;
  readonly extensions: ExtensionConfigManager;
  readonly loadPlugin: PluginLoader;
  /** Secrets and the base directory for LDS listeners (static SDS secrets by name, relative code filenames). */
  readonly parseOptions?: ListenerParseOptions;
  /** Where a listener binds; default its configured address (workers bind loopback, ephemeral). */
  readonly bindListener?: (config: ListenerConfig) => ListenerConfig;
  /** How long shutdown lets in-flight streams finish. */
  readonly drainTimeoutMs: number;
}

function errorText(err: unknown): string {
  // Paths inside an LDS resource start at the listener (".filter_chains[0]..." reads "filter_chains[0]...").
  return (err as Error).message.replace(/^\./, '');
}

export class ListenerManager implements ResourceSink {
  private readonly entries = new Map<string, Entry>();
  private readonly logger: Logger;
  private readonly retiredCounters: Record<string, number> = {};
  private closing: Promise<void> | null = null;

  constructor(private readonly options: ListenerManagerOptions) {
    this.logger = options.logger.child({ component: 'lds' });
  }

  /** Active listeners, static ones first (in bootstrap order), then dynamic ones in the order they were added. */
  get listeners(): HttpListener[] {
    const out: HttpListener[] = [];
    for (const e of this.entries.values()) if (e.active && e.isStatic) out.push(e.active.listener);
    for (const e of this.entries.values()) if (e.active && !e.isStatic) out.push(e.active.listener);
    return out;
  }

  /** The active listener named `name`. */
  listener(name: string): HttpListener | undefined {
    return this.entries.get(name)?.active?.listener;
  }

  /** Listeners warming (waiting for their RDS/ECDS resources). */
  get warmingCount(): number {
    let n = 0;
    for (const e of this.entries.values()) if (e.warming) n++;
    return n;
  }

  /** Versions still draining after an update or removal. */
  get drainingCount(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.draining.size;
    return n;
  }

  /**
   * Starts the bootstrap's listeners: each is built, warmed (a static HCM may use RDS/ECDS too) and started, in
   * order. Rejects with the first build or bind error.
   */
  async startStatic(configs: readonly ListenerConfig[]): Promise<void> {
    const versions: Array<[Entry, Version]> = [];
    for (const config of configs) {
      const entry: Entry = { name: config.name, isStatic: true, active: undefined, warming: undefined, draining: new Set(), error: undefined };
      const v = await this.build(config, undefined, '', undefined);
      entry.warming = v;
      this.entries.set(entry.name || `#static${this.entries.size}`, entry);
      versions.push([entry, v]);
    }
    for (const [entry, v] of versions) await this.activate(entry, v);
  }

  /** LDS: per-listener build errors (name -> reason); the listeners that built are applied. */
  async update(resources: readonly DeliveredResource[], removed: readonly string[]): Promise<ReadonlyMap<string, string>> {
    const errors = new Map<string, string>();
    for (const r of resources) {
      try {
        await this.addOrUpdate(r);
      } catch (err) {
        const details = errorText(err);
        errors.set(r.name, details);
        let entry = this.entries.get(r.name);
        if (!entry) {
          // Kept for error_state even though no version of it serves (Envoy lists it too).
          entry = { name: r.name, isStatic: false, active: undefined, warming: undefined, draining: new Set(), error: undefined };
          this.entries.set(r.name, entry);
        }
        if (!entry.isStatic) entry.error = { details, version: r.version, at: new Date(), resource: r.resource };
        this.logger.warn({ listener: r.name, version: r.version, err: details }, 'listener rejected; the last good version keeps serving');
      }
    }
    for (const name of removed) this.remove(name);
    return errors;
  }

  private async addOrUpdate(r: DeliveredResource): Promise<void> {
    if (this.closing) throw new ConfigError('the listener manager is shutting down');
    const existing = this.entries.get(r.name);
    if (existing?.isStatic) throw new ConfigError(`cannot update static listener '${r.name}' over LDS`);
    const key = JSON.stringify(r.resource);
    const latest = existing?.warming ?? existing?.active;
    if (latest && latest.key === key) return;
    const config = parseListener(r.resource, '', this.options.parseOptions);
    if (config.name !== r.name) throw new ConfigError(`name '${config.name}' is not the resource name '${r.name}'`, 'name');
    this.refuseDuplicateAddress(r.name, config);
    const v = await this.build(config, r.resource, r.version, existing);
    // Built (awaited): the entry may have been replaced or removed meanwhile only by this same serialized path.
    let entry = this.entries.get(r.name);
    if (!entry) {
      entry = { name: r.name, isStatic: false, active: undefined, warming: undefined, draining: new Set(), error: undefined };
      this.entries.set(r.name, entry);
    }
    entry.error = undefined;
    const superseded = entry.warming;
    entry.warming = v;
    if (superseded) this.discard(entry, superseded);
    this.logger.info({ listener: r.name, version: r.version, update: entry.active !== undefined }, 'listener warming');
    const activation = this.activate(entry, v).catch((err: unknown) => this.logger.error({ listener: r.name, err: (err as Error).message }, 'listener activation failed'));
    this.activations.add(activation);
    void activation.finally(() => this.activations.delete(activation));
  }

  private readonly activations = new Set<Promise<void>>();

  /** Resolves once every listener warming now has become active (or been superseded). */
  async settled(): Promise<void> {
    while (this.activations.size > 0) await Promise.all([...this.activations]);
  }

  /** Envoy refuses a listener on the address another listener (by name) is bound to. */
  private refuseDuplicateAddress(name: string, config: ListenerConfig): void {
    if (config.port === 0) return;
    for (const e of this.entries.values()) {
      if (e.name === name) continue;
      for (const v of [e.active, e.warming]) {
        if (v && v.config.port === config.port && v.config.address === config.address) {
          throw new ConfigError(`address ${config.address}:${config.port} is already used by listener '${e.name}'`, 'address');
        }
      }
    }
  }

  /** Builds a version: plugins loaded, RDS/ECDS watched, the socket bound (or shared with the version it replaces). */
  private async build(config: ListenerConfig, resource: JsonObject | undefined, version: string, existing: Entry | undefined): Promise<Version> {
    const holds: Disposable[] = [];
    const readies: Promise<void>[] = [];
    let ownSocket: ListenerSocket | undefined;
    try {
      const chains = config.defaultFilterChain ? [...config.filterChains, config.defaultFilterChain] : config.filterChains;
      const sources: ChainSources[] = [];
      for (const chain of chains) sources.push(await this.chainSources(chain, holds, readies));
      const bound = this.options.bindListener?.(config) ?? config;
      const shared = [existing?.warming, existing?.active].find((v) => v && v.config.address === config.address && v.config.port === config.port && !v.socket.closed)?.socket;
      let socket = shared;
      if (!socket) {
        socket = ownSocket = new ListenerSocket(bound.address, bound.port);
        await socket.listen();
      }
      const listener = new HttpListener({
        config: bound, sources: (_c, i) => sources[i]!, pools: this.options.pools, logger: this.options.logger, socket,
        statAddress: config.address, ...(this.options.node ? { node: this.options.node } : {}),
      });
      return { config, resource, version, lastUpdated: new Date(), key: resource ? JSON.stringify(resource) : '', listener, socket, ready: Promise.all(readies).then(() => undefined), holds };
    } catch (err) {
      for (const h of holds.reverse()) h.dispose();
      await ownSocket?.close();
      throw err;
    }
  }

  private async chainSources(chain: FilterChainConfig, holds: Disposable[], readies: Promise<void>[]): Promise<ChainSources> {
    if (chain.network.kind === 'tcp') {
      const filters: HttpFilterSource[] = [];
      for (const f of chain.network.tcp.wasmFilters) filters.push(staticFilter(await this.loadInline(f, holds)));
      return { filters };
    }
    const hcm = chain.network.hcm;
    const hPath = `${chain.path}.filters[0].typed_config`;
    let routes: RouteSource;
    if (hcm.routes.kind === 'static') routes = staticRoutes(new RouteTable(hcm.routes.config));
    else {
      const sub = this.options.routes.subscribe(hcm.routes.name, hcm.routes.initialFetchTimeoutMs, `${hPath}.rds`);
      holds.push(sub);
      readies.push(sub.provider.readiness.promise);
      routes = sub.provider;
    }
    const filters: HttpFilterSource[] = [];
    for (const f of hcm.httpFilters) {
      if (f.type === 'wasm') {
        filters.push(staticFilter(await this.loadInline(f, holds)));
      } else {
        let source;
        try {
          source = await this.options.extensions.subscribe(f);
        } catch (err) {
          if (err instanceof ConfigError) throw err;
          throw new ConfigError(`default_config plugin failed to load: ${(err as Error).message}`, `${f.path}.config_discovery.default_config`, { cause: err });
        }
        holds.push(source);
        readies.push(source.ready);
        filters.push(source);
      }
    }
    return { routes, filters };
  }

  /** An inline Wasm filter's plugin, closed with the version that holds it. */
  private async loadInline(f: WasmFilterConfig, holds: Disposable[]): Promise<Plugin> {
    let plugin: Plugin;
    try {
      plugin = await this.options.loadPlugin(f);
    } catch (err) {
      throw new ConfigError(`plugin failed to load: ${(err as Error).message}`, f.path, { cause: err });
    }
    holds.push({ dispose: () => plugin.close() });
    return plugin;
  }

  /** Once warm, a version takes over from the active one (which drains) if it is still the latest. */
  private async activate(entry: Entry, v: Version): Promise<void> {
    await v.ready;
    if (entry.warming !== v || this.closing) return;
    entry.warming = undefined;
    const old = entry.active;
    entry.active = v;
    await v.listener.start();
    this.logger.info({ listener: entry.name, version: v.version, port: v.listener.port, replaced: old !== undefined }, 'listener active');
    if (old) this.retire(entry, old, old.socket !== v.socket);
  }

  /** Drains a version that served; its socket closes first when no newer version uses it. */
  private retire(entry: Entry, v: Version, closeSocket: boolean): void {
    entry.draining.add(v);
    if (closeSocket) void v.socket.close();
    void v.listener.drain().then(() => this.release(entry, v));
  }

  /** A warming version that will never serve (superseded, or its listener removed). */
  private discard(entry: Entry, v: Version): void {
    const shared = [entry.active, entry.warming].some((o) => o && o !== v && o.socket === v.socket);
    if (!shared) void v.socket.close();
    void v.listener.destroy().then(() => this.release(entry, v));
  }

  private release(entry: Entry, v: Version): void {
    entry.draining.delete(v);
    for (const [k, n] of Object.entries(v.listener.counters())) this.retiredCounters[k] = (this.retiredCounters[k] ?? 0) + n;
    for (const h of [...v.holds].reverse()) {
      try {
        h.dispose();
      } catch (err) {
        this.logger.error({ listener: entry.name, err: (err as Error).message }, 'releasing a listener version failed');
      }
    }
    if (!entry.active && !entry.warming && entry.draining.size === 0 && this.entries.get(entry.name) === entry && !entry.error) this.entries.delete(entry.name);
  }

  /** LDS removal: the listener stops accepting and drains; a warming version is dropped. Static listeners stay. */
  private remove(name: string): void {
    const entry = this.entries.get(name);
    if (!entry || entry.isStatic) return;
    entry.error = undefined;
    this.logger.info({ listener: name }, 'listener removed');
    const warming = entry.warming;
    const active = entry.active;
    entry.warming = entry.active = undefined;
    if (warming) this.discard(entry, warming);
    if (active) this.retire(entry, active, true);
    if (!warming && !active && entry.draining.size === 0) this.entries.delete(name);
  }

  /** Counters of every listener version, those already retired included (Envoy's stats outlive a listener). */
  counters(): Record<string, number> {
    const out: Record<string, number> = { ...this.retiredCounters };
    for (const e of this.entries.values()) {
      for (const v of [e.active, ...e.draining]) {
        if (!v) continue;
        for (const [k, n] of Object.entries(v.listener.counters())) out[k] = (out[k] ?? 0) + n;
      }
    }
    return out;
  }

  /** ListenersConfigDump.dynamic_listeners, as plain data. */
  dump(): DynamicListenerDump[] {
    const out: DynamicListenerDump[] = [];
    const view = (v: Version | undefined): ListenerVersionDump | undefined => (v?.resource ? { version: v.version, resource: v.resource, lastUpdated: v.lastUpdated } : undefined);
    for (const e of this.entries.values()) {
      if (e.isStatic) continue;
      const active = view(e.active);
      const warming = view(e.warming);
      const draining = view([...e.draining].at(-1));
      out.push({ name: e.name, ...(active ? { active } : {}), ...(warming ? { warming } : {}), ...(draining ? { draining } : {}), ...(e.error ? { error: e.error } : {}) });
    }
    return out;
  }

  /**
   * Shutdown: every socket stops accepting, every version (active, warming, draining) lets its in-flight streams
   * finish (up to drainTimeoutMs) and closes; then their plugins and subscriptions are released.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const all: Array<[Entry, Version]> = [];
      for (const e of this.entries.values()) for (const v of [e.active, e.warming, ...e.draining]) if (v) all.push([e, v]);
      // Stop accepting first, but wait on the drains, not on the sockets: net.Server.close's callback waits for
      // every accepted connection, so a stuck one would hold shutdown past the drain time.
      const socketsClosed = Promise.all(all.map(([, v]) => v.socket.close()));
      await Promise.all(all.map(([, v]) => v.listener.close(this.options.drainTimeoutMs)));
      await socketsClosed;
      for (const [e, v] of all) {
        if (e.draining.has(v) || e.active === v || e.warming === v) {
          e.draining.delete(v);
          for (const h of [...v.holds].reverse()) {
            try {
              h.dispose();
            } catch (err) {
              this.logger.error({ listener: e.name, err: (err as Error).message }, 'releasing a listener failed');
            }
          }
        }
      }
      this.entries.clear();
    })();
    return this.closing;
  }
}
