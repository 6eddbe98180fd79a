import type { JsonObject } from '../../src/xds/proto-json';
import type { DeliveredResource, ResourceSink } from '../../src/xds/resource-sink';

/**
 * What the LDS/RDS/ECDS tests feed: a sink that keeps what it was given (the listener, route and extension
 * managers are other modules; here the client's side of the seam is under test) and can refuse named resources
 * the way a manager refuses one it cannot build.
 */
export class RecordingSink implements ResourceSink {
  readonly updates: { readonly resources: readonly DeliveredResource[]; readonly removed: readonly string[] }[] = [];
  readonly current = new Map<string, DeliveredResource>();
  readonly missingNames: string[] = [];
  /** name -> the build error update() returns for it. */
  readonly refuse = new Map<string, string>();

  update(resources: readonly DeliveredResource[], removed: readonly string[]): ReadonlyMap<string, string> {
    this.updates.push({ resources, removed });
    const errors = new Map<string, string>();
    for (const r of resources) {
      const reason = this.refuse.get(r.name);
      if (reason !== undefined) errors.set(r.name, reason);
      else this.current.set(r.name, r);
    }
    for (const n of removed) this.current.delete(n);
    return errors;
  }

  missing(names: readonly string[]): void {
    this.missingNames.push(...names);
  }

  names(): string[] {
    return [...this.current.keys()].sort();
  }
}

const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';

/** An HTTP listener whose HCM takes its routes from RDS `routeName` (and an ECDS filter `ecdsName`, if given). */
export function listener(name: string, port: number, routeName = `${name}-routes`, extra: { statPrefix?: string; ecdsName?: string } = {}): JsonObject {
  const filters: JsonObject[] = [];
  if (extra.ecdsName) {
    filters.push({
      name: extra.ecdsName,
      config_discovery: { config_source: { ads: {}, resource_api_version: 'V3' }, type_urls: ['type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm'] },
    });
  }
  filters.push({ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } });
  return {
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: port } },
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': HCM,
              stat_prefix: extra.statPrefix ?? name,
              rds: { route_config_name: routeName, config_source: { ads: {}, resource_api_version: 'V3' } },
              http_filters: filters,
            },
          },
        ],
      },
    ],
  };
}

export function routeConfig(name: string, cluster: string, domains: readonly string[] = ['*']): JsonObject {
  return { name, virtual_hosts: [{ name: 'vh', domains: [...domains], routes: [{ match: { prefix: '/' }, route: { cluster } }] }] };
}

/** An ECDS resource: a Wasm filter config whose plugin configuration is `value`. */
export function wasmExtension(name: string, value: string): JsonObject {
  return {
    name,
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm',
      config: {
        name,
        root_id: name,
        configuration: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value },
        vm_config: { runtime: 'envoy.wasm.runtime.v8', code: { local: { filename: '/plugins/x.wasm' } } },
      },
    },
  };
}
