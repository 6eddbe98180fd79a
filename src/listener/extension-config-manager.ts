import { ConfigError } from '../common/errors';
import type { Disposable } from '../common/disposable';
import type { Logger } from '../common/logger';
import { parseWasmFilterAny, type EcdsFilterConfig, type WasmFilterConfig } from '../http/listener-config';
import type { FilterLease, HttpFilterSource } from '../http/listener';
import type { Plugin } from '../runtime/plugin';
import type { JsonObject } from '../xds/proto-json';
import type { DeliveredResource, ResourceSink, ResourceSubscriber } from '../xds/resource-sink';
import { ECDS_TYPE_URL } from '../xds/type-urls';
import { PluginGeneration } from './plugin-generation';
import { Readiness } from './readiness';

/**
 * ECDS for the Wasm filter: http filters with `config_discovery` name a TypedExtensionConfig, watched over ADS.
 * A new configuration's plugin is loaded off to the side (compiled, VM started, configured) and swapped in only
 * once that succeeded; streams already running finish on the plugin they started with, which then closes. A
 * configuration whose plugin fails to load is refused with the reason (the NACK) and the last good plugin stays.
 */

export type PluginLoader = (filter: WasmFilterConfig) => Promise<Plugin>;

const MISSING: FilterLease = { plugin: undefined, release: () => undefined };

/** One ECDS resource name: the current plugin built from it, shared by every filter that names it. */
export class ExtensionConfigSubscription {
  current: PluginGeneration | undefined;
  version = '';
  lastUpdated: Date | undefined;
  resource: JsonObject | undefined;
  readonly readiness = new Readiness();
  /** The type_urls of each filter subscribed (a resource must be of a type every one of them allows). */
  readonly typeUrls = new Map<object, readonly string[]>();
  watch: Disposable | undefined;

  constructor(readonly name: string) {}
}

/** One http filter's view of its ECDS subscription (Envoy's DynamicFilterConfigProvider): its own default_config. */
export class EcdsFilterSource implements HttpFilterSource, Disposable {
  private disposed = false;

  constructor(
    private readonly sub: ExtensionConfigSubscription,
    readonly spec: EcdsFilterConfig,
    private readonly defaultPlugin: PluginGeneration | undefined,
    private readonly release: () => void,
  ) {}

  /** Warm once the resource arrived or its initial fetch ended; at once with apply_default_config_without_warming. */
  get ready(): Promise<void> {
    return this.spec.applyDefaultConfigWithoutWarming && this.defaultPlugin ? Promise.resolve() : this.sub.readiness.promise;
  }

  acquire(): FilterLease {
    const g = this.sub.current ?? this.defaultPlugin;
    return g ? g.acquire() : MISSING;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.defaultPlugin?.retire();
    this.release();
  }
}

export interface EcdsConfigDump {
  readonly name: string;
  readonly version: string;
  readonly resource: JsonObject;
  readonly lastUpdated: Date;
}

export class ExtensionConfigManager implements ResourceSink {
  private readonly subs = new Map<string, ExtensionConfigSubscription>();
  private readonly logger: Logger;

  constructor(
    private readonly subscriber: () => ResourceSubscriber | undefined,
    private readonly load: PluginLoader,
    logger: Logger,
    /** Resolves relative code filenames in delivered configurations. */
    private readonly baseDir: string = process.cwd(),
  ) {
    this.logger = logger.child({ component: 'ecds' });
  }

  /** A filter's source for `spec` (its default_config loaded now); dispose() it when the filter's listener goes. */
  async subscribe(spec: EcdsFilterConfig): Promise<EcdsFilterSource> {
    const subscriber = this.subscriber();
    if (!subscriber) throw new ConfigError('ECDS needs an ADS config source (dynamic_resources.ads_config)', `${spec.path}.config_discovery.config_source`);
    const defaultPlugin = spec.defaultConfig ? new PluginGeneration(await this.load(spec.defaultConfig), this.logger) : undefined;
    let sub = this.subs.get(spec.configName);
    if (!sub) {
      sub = new ExtensionConfigSubscription(spec.configName);
      this.subs.set(spec.configName, sub);
      sub.watch = subscriber.watch(ECDS_TYPE_URL, spec.configName, { initialFetchTimeoutMs: spec.initialFetchTimeoutMs });
    }
    const key = {};
    sub.typeUrls.set(key, spec.typeUrls);
    const owner = sub;
    return new EcdsFilterSource(owner, spec, defaultPlugin, () => {
      owner.typeUrls.delete(key);
      if (owner.typeUrls.size > 0) return;
      this.subs.delete(owner.name);
      owner.watch?.dispose();
      owner.current?.retire();
    });
  }

  async update(resources: readonly DeliveredResource[], removed: readonly string[]): Promise<ReadonlyMap<string, string>> {
    const errors = new Map<string, string>();
    for (const r of resources) {
      const sub = this.subs.get(r.name);
      if (!sub) continue;
      try {
        const filter = this.parse(sub, r.resource);
        // Off to the side: the current plugin serves until the new one has started and accepted its configuration.
        const plugin = await this.load(filter);
        if (this.subs.get(r.name) !== sub) {
          plugin.close();
          continue;
        }
        const old = sub.current;
        sub.current = new PluginGeneration(plugin, this.logger);
        sub.version = r.version;
        sub.resource = r.resource;
        sub.lastUpdated = new Date();
        sub.readiness.resolve();
        old?.retire();
        this.logger.info({ name: r.name, version: r.version, draining: old?.active ?? 0 }, 'extension config applied');
      } catch (err) {
        errors.set(r.name, (err as Error).message);
        this.logger.warn({ name: r.name, version: r.version, err: (err as Error).message }, 'extension config rejected; the last good plugin stays');
      }
    }
    // Envoy keeps the last configuration when the server withdraws it (a filter never loses its config at run time).
    for (const name of removed) if (this.subs.has(name)) this.logger.info({ name }, 'extension config removed by the server; the last one stays in use');
    return errors;
  }

  missing(names: readonly string[]): void {
    for (const name of names) {
      const sub = this.subs.get(name);
      if (!sub || sub.readiness.done) continue;
      this.logger.warn({ name }, 'extension config did not arrive within its initial fetch timeout; its default_config serves (without one, requests fail)');
      sub.readiness.resolve();
    }
  }

  private parse(sub: ExtensionConfigSubscription, resource: JsonObject): WasmFilterConfig {
    const typed = resource['typed_config'];
    const type = typed && typeof typed === 'object' && !Array.isArray(typed) ? String((typed as JsonObject)['@type'] ?? '') : '';
    for (const urls of sub.typeUrls.values()) {
      if (!urls.includes(type)) throw new ConfigError(`type ${type || '(none)'} is not among the filter's config_discovery.type_urls`, 'typed_config.@type');
    }
    return parseWasmFilterAny(sub.name, typed, 'typed_config', this.baseDir);
  }

  /** Every subscribed configuration that was applied (EcdsConfigDump.ecds_filters). */
  dump(): EcdsConfigDump[] {
    const out: EcdsConfigDump[] = [];
    for (const s of this.subs.values()) if (s.resource && s.lastUpdated) out.push({ name: s.name, version: s.version, resource: s.resource, lastUpdated: s.lastUpdated });
    return out;
  }

  /** Shutdown: every current plugin retires (each closes when its streams are done). */
  close(): void {
    for (const s of this.subs.values()) {
      s.watch?.dispose();
      s.current?.retire();
    }
    this.subs.clear();
  }
}
