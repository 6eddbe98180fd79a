import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { freePort } from '../../src/common/free-port';
import { silentLogger } from '../../src/common/logger';
import { Sidecar } from '../../src/main';
import { TempDir } from '../http/helpers';
import { pluginPath } from '../support/plugins';
import { XdsTestServer } from '../support/xds-server';
import { until } from '../support/until';

export const HCM = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
export const ROUTER = { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } };
export const WASM = 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm';
type Json = Record<string, unknown>;

/**
 * An upstream that answers `<name> <x-added-by request header>` with the request's x-added-by echoed back, and
 * holds any request to /hold until release() (so a test can keep a stream in flight across an update).
 */
export class NamedUpstream {
  private held: Array<() => void> = [];
  private holdWaiters: Array<() => void> = [];
  private constructor(readonly name: string, readonly server: Server) {}

  static async start(name: string): Promise<NamedUpstream> {
    let up!: NamedUpstream;
    const server = createServer((req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      req.on('end', () => {
        const answer = (): void => {
          res.setHeader('content-type', 'text/plain');
          res.end(`${name} ${String(req.headers['x-added-by'] ?? '-')}`);
        };
        if (req.url?.startsWith('/hold')) {
          up.held.push(answer);
          for (const w of up.holdWaiters.splice(0)) w();
        } else answer();
      });
    });
    up = new NamedUpstream(name, server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return up;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** Resolves once `n` requests are held. */
  async holding(n = 1): Promise<void> {
    while (this.held.length < n) await new Promise<void>((r) => this.holdWaiters.push(r));
  }

  release(): void {
    for (const a of this.held.splice(0)) a();
  }

  close(): Promise<void> {
    this.release();
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

export function staticCluster(name: string, port: number): Json {
  return {
    name, type: 'STATIC', connect_timeout: '1s',
    load_assignment: { cluster_name: name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } }] }] },
  };
}

/** An inline envoy.filters.http.wasm filter running build/plugins/<plugin>.wasm. */
export function wasmFilter(name: string, plugin: string, rootId: string, configuration: string): Json {
  return { name, typed_config: wasmAny(name, plugin, rootId, configuration) };
}

export function wasmAny(name: string, plugin: string, rootId: string, configuration: string, vmId = name): Json {
  return {
    '@type': WASM,
    config: {
      name, root_id: rootId,
      vm_config: { vm_id: vmId, runtime: 'envoy.wasm.runtime.v8', code: { local: { filename: pluginPath(plugin) } } },
      configuration: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: configuration },
    },
  };
}

/**
 * An ECDS TypedExtensionConfig: the add-header plugin adding `x-added-by: <value>` (or another plugin). Each
 * value gets a vm_id of its own, so each configuration runs on a VM of its own: the AssemblyScript SDK keeps one
 * root context per module, so two configurations sharing a VM would share one configuration.
 */
export function addHeaderExtension(name: string, value: string, plugin = 'add-header', rootId = 'add_header'): Json {
  return { name, typed_config: wasmAny(name, plugin, rootId, value, `${name}-${value}`) };
}

/** An http filter configured over ECDS. */
export function ecdsFilter(name: string, extra: Json = {}): Json {
  return { name, config_discovery: { config_source: { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' }, type_urls: [WASM], ...extra } };
}

export function routeConfig(name: string, cluster: string, extraRoutes: readonly Json[] = []): Json {
  return { name, virtual_hosts: [{ name: 'vh', domains: ['*'], routes: [...extraRoutes, { name: 'all', match: { prefix: '/' }, route: { cluster } }] }] };
}

export interface ListenerSpec {
  readonly port?: number;
  /** RDS route config name; else inline routes to `cluster`. */
  readonly rds?: string;
  readonly cluster?: string;
  readonly filters?: readonly Json[];
  readonly statPrefix?: string;
  readonly drainTimeout?: string;
  readonly chain?: Json;
}

/** A Listener (proto3 JSON) with one HCM on 127.0.0.1. */
export function listener(name: string, spec: ListenerSpec = {}): Json {
  const hcm: Json = {
    '@type': HCM,
    stat_prefix: spec.statPrefix ?? name,
    http_filters: [...(spec.filters ?? []), ROUTER],
    ...(spec.rds
      ? { rds: { route_config_name: spec.rds, config_source: { ads: {}, initial_fetch_timeout: '0s', resource_api_version: 'V3' } } }
      : { route_config: routeConfig(`${name}-inline`, spec.cluster ?? 'app-a') }),
    ...(spec.drainTimeout ? { drain_timeout: spec.drainTimeout } : {}),
  };
  return {
    name,
    address: { socket_address: { address: '127.0.0.1', port_value: spec.port ?? 0 } },
    filter_chains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: hcm }], ...(spec.chain ?? {}) }],
  };
}

export interface Env {
  readonly xds: XdsTestServer;
  readonly a: NamedUpstream;
  readonly b: NamedUpstream;
  readonly sidecar: Sidecar;
  readonly adminUrl: string;
  /** The bound port of the active listener `name`. */
  port(name: string): number;
  close(): Promise<void>;
}

/**
 * A real Sidecar whose listeners come over LDS from the project's control plane (ADS, SotW by default), with
 * static clusters app-a and app-b (two NamedUpstreams). `setup` fills the control plane before the sidecar starts.
 */
export async function startEnv(setup: (xds: XdsTestServer) => void, options: { readonly apiType?: 'GRPC' | 'DELTA_GRPC'; readonly staticListeners?: readonly Json[]; readonly clusters?: readonly Json[] } = {}): Promise<Env> {
  const tmp = new TempDir();
  const a = await NamedUpstream.start('A');
  const b = await NamedUpstream.start('B');
  const xds = await XdsTestServer.start();
  const adminPort = await freePort();
  xds.setClusters([]);
  setup(xds);
  const doc = {
    node: { id: 'sidecar~127.0.0.1~listener-test~default.svc.cluster.local', cluster: 'listener-test' },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: adminPort } } },
    static_resources: {
      listeners: options.staticListeners ?? [],
      clusters: [staticCluster('app-a', a.port), staticCluster('app-b', b.port), staticCluster('xds-grpc', xds.port), ...(options.clusters ?? [])],
    },
    dynamic_resources: {
      ads_config: { api_type: options.apiType ?? 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'xds-grpc' } }], set_node_on_first_message_only: true },
      cds_config: { ads: {}, resource_api_version: 'V3', initial_fetch_timeout: '1s' },
      lds_config: { ads: {}, resource_api_version: 'V3', initial_fetch_timeout: '0s' },
    },
  };
  const file = tmp.write('bootstrap.json', doc);
  const sidecar = await Sidecar.start({ configFile: file, logger: silentLogger(), drainTimeoutMs: 5000 });
  return {
    xds, a, b, sidecar,
    adminUrl: `http://127.0.0.1:${adminPort}`,
    port: (name) => {
      const l = sidecar.listenerManager?.listener(name);
      if (!l) throw new Error(`listener ${name} is not active`);
      return l.port;
    },
    close: async () => {
      await sidecar.stop();
      await xds.close();
      await a.close();
      await b.close();
      tmp.cleanup();
    },
  };
}

/** Waits until the active version of dynamic listener `name` is `version`. */
export async function activeVersion(env: Env, name: string, version: string): Promise<void> {
  await until(() => env.sidecar.listenerManager?.dump().find((d) => d.name === name)?.active?.version === version, 10_000, `listener ${name} active at ${version}`, 5);
}
