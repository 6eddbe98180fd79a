import { ConfigError } from '../common/errors';
import type { Disposable } from '../common/disposable';
import type { Logger } from '../common/logger';
import { parseRouteConfiguration } from '../http/listener-config';
import type { RouteSource } from '../http/listener';
import { RouteTable } from '../http/route-table';
import type { JsonObject } from '../xds/proto-json';
import type { DeliveredResource, ResourceSink, ResourceSubscriber } from '../xds/resource-sink';
import { RDS_TYPE_URL } from '../xds/type-urls';
import { Readiness } from './readiness';

/**
 * RDS: the route configurations HCMs name with `rds.route_config_name`, one provider per name shared by every
 * chain that names it (Envoy's RdsRouteConfigProvider). A new RouteConfiguration replaces the provider's table in
 * one assignment: streams hold the table they started with, so in-flight requests are never re-routed.
 */

/** One RDS name: its latest table and where it came from (for /config_dump). */
export class RouteConfigProvider implements RouteSource {
  private table: RouteTable | undefined;
  version = '';
  lastUpdated: Date | undefined;
  /** The accepted RouteConfiguration as delivered (proto3 JSON). */
  resource: JsonObject | undefined;
  /** Resolved when the first configuration arrived, or the initial fetch ended without one. */
  readonly readiness = new Readiness();
  refs = 0;

  constructor(
    readonly name: string,
    readonly watch: Disposable | undefined,
  ) {}

  current(): RouteTable | undefined {
    return this.table;
  }

  apply(table: RouteTable, version: string, resource: JsonObject): void {
    this.table = table;
    this.version = version;
    this.resource = resource;
    this.lastUpdated = new Date();
    this.readiness.resolve();
  }
}

export interface RouteConfigDump {
  readonly name: string;
  readonly version: string;
  readonly resource: JsonObject;
  readonly lastUpdated: Date;
}

export class RouteConfigManager implements ResourceSink {
  private readonly providers = new Map<string, RouteConfigProvider>();
  private readonly logger: Logger;

  constructor(
    private readonly subscriber: () => ResourceSubscriber | undefined,
    logger: Logger,
  ) {
    this.logger = logger.child({ component: 'rds' });
  }

  /** A chain's handle on `name` (watched over ADS on first use); dispose() it when the chain's listener goes. */
  subscribe(name: string, initialFetchTimeoutMs: number, path: string): { readonly provider: RouteConfigProvider } & Disposable {
    let p = this.providers.get(name);
    if (!p) {
      const subscriber = this.subscriber();
      if (!subscriber) throw new ConfigError('RDS needs an ADS config source (dynamic_resources.ads_config)', path);
      p = new RouteConfigProvider(name, undefined);
      this.providers.set(name, p);
      (p as { watch: Disposable | undefined }).watch = subscriber.watch(RDS_TYPE_URL, name, { initialFetchTimeoutMs });
    }
    p.refs++;
    const provider = p;
    let disposed = false;
    return {
      provider,
      dispose: () => {
        if (disposed) return;
        disposed = true;
        if (--provider.refs > 0) return;
        this.providers.delete(name);
        provider.watch?.dispose();
      },
    };
  }

  update(resources: readonly DeliveredResource[], removed: readonly string[]): ReadonlyMap<string, string> {
    const errors = new Map<string, string>();
    for (const r of resources) {
      const p = this.providers.get(r.name);
      if (!p) continue; // not (or no longer) watched: nothing uses it
      try {
        const config = parseRouteConfiguration(r.resource, 'route_config');
        if (config.name !== r.name) throw new ConfigError(`name '${config.name}' is not the resource name '${r.name}'`, 'route_config.name');
        p.apply(new RouteTable(config), r.version, r.resource);
        this.logger.info({ name: r.name, version: r.version }, 'route configuration updated');
      } catch (err) {
        errors.set(r.name, (err as Error).message);
        this.logger.warn({ name: r.name, version: r.version, err: (err as Error).message }, 'route configuration rejected; the last good one stays');
      }
    }
    // A removed name is one nobody watches any more (or that the server withdrew): Envoy keeps serving the last
    // configuration a listener holds, so the table stays until the chains using it go.
    for (const name of removed) if (this.providers.has(name)) this.logger.info({ name }, 'route configuration removed by the server; the last one stays in use');
    return errors;
  }

  missing(names: readonly string[]): void {
    for (const name of names) {
      const p = this.providers.get(name);
      if (!p || p.readiness.done) continue;
      this.logger.warn({ name }, 'route configuration did not arrive within its initial fetch timeout; serving without routes (404)');
      p.readiness.resolve();
    }
  }

  /** Every watched configuration that arrived (RoutesConfigDump.dynamic_route_configs). */
  dump(): RouteConfigDump[] {
    const out: RouteConfigDump[] = [];
    for (const p of this.providers.values()) if (p.resource && p.lastUpdated) out.push({ name: p.name, version: p.version, resource: p.resource, lastUpdated: p.lastUpdated });
    return out;
  }
}
