import { isIP } from 'node:net';
import { ConfigError } from '../common/errors';

/**
 * The Envoy v3 bootstrap `run` makes from flags (`--plugin`, `--upstream`, `--cluster`, `--wasm-plugin` ...), so a
 * plugin author runs their plugin without writing one. The result is an ordinary bootstrap: it goes through the
 * same loader and validation as a hand-written file, and `--print-bootstrap` shows it.
 */

export interface QuickPlugin {
  /** Filter name (Envoy's PluginConfig.name; Istio names it `<namespace>.<name>`). */
  readonly name: string;
  readonly file: string;
  /** The plugin's configuration as JSON text (Higress plugins parse JSON), or '' for none. */
  readonly configuration: string;
  readonly rootId: string;
  readonly vmId: string;
  readonly failOpen: boolean;
  readonly environment: Readonly<Record<string, string>>;
  /** Where the plugin came from, for error messages: `--plugin #2` or `wasm-plugin.yaml (doc 1)`. */
  readonly origin: string;
}

export interface QuickCluster {
  readonly name: string;
  readonly endpoints: ReadonlyArray<{ readonly host: string; readonly port: number }>;
}

export interface QuickStart {
  readonly listen: { readonly host: string; readonly port: number };
  readonly admin: { readonly host: string; readonly port: number };
  /** The route's cluster; undefined answers every request with a direct response naming the missing flag. */
  readonly upstream: QuickCluster | undefined;
  readonly clusters: readonly QuickCluster[];
  readonly plugins: readonly QuickPlugin[];
  readonly routeTimeout: string;
}

export const DEFAULT_LISTEN = '127.0.0.1:10000';
export const DEFAULT_ADMIN = '127.0.0.1:9901';
const DEFAULT_UPSTREAM_CLUSTER = 'upstream';

/** `host:port` (IPv6 in brackets); `what` names the flag in the error. */
export function parseHostPort(text: string, what: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) throw new ConfigError(`expected host:port, got '${text}'`, what);
  return { host: (m[1] ?? m[2])!, port };
}

/** `--cluster name=host:port[,host:port...]`: the name may hold `|` and `=` (Istio's `outbound|6379||redis...`). */
export function parseClusterFlag(text: string, index: number): QuickCluster {
  const what = `--cluster #${index + 1}`;
  const eq = text.lastIndexOf('=');
  if (eq <= 0) throw new ConfigError(`expected name=host:port[,host:port...], got '${text}'`, what);
  const name = text.slice(0, eq);
  const endpoints = text.slice(eq + 1).split(',').map((e) => parseHostPort(e.replace(/^[a-z]+:\/\//, ''), what));
  return { name, endpoints };
}

/**
 * `--upstream [name=]http://host:port`. Only plain HTTP: an https:// upstream would need an UpstreamTlsContext,
 * which this sidecar does not implement, and sending plaintext where TLS was asked for is never acceptable.
 */
export function parseUpstreamFlag(text: string): QuickCluster {
  const eq = text.indexOf('=');
  const hasName = eq > 0 && !text.slice(0, eq).includes('://');
  const name = hasName ? text.slice(0, eq) : DEFAULT_UPSTREAM_CLUSTER;
  const raw = hasName ? text.slice(eq + 1) : text;
  let url: URL;
  try {
    url = new URL(raw.includes('://') ? raw : `http://${raw}`);
  } catch {
    throw new ConfigError(`not a URL: '${raw}'`, '--upstream');
  }
  if (url.protocol === 'https:') throw new ConfigError('https upstreams (UpstreamTlsContext) are not supported; use http://', '--upstream');
  if (url.protocol !== 'http:') throw new ConfigError(`unsupported scheme '${url.protocol}' (only http://)`, '--upstream');
  if (url.pathname !== '/' || url.search || url.username) throw new ConfigError('give only scheme, host and port (routes are not rewritten)', '--upstream');
  return { name, endpoints: [{ host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 80) }] };
}

function socketAddress(host: string, port: number): Record<string, unknown> {
  return { socket_address: { address: host, port_value: port } };
}

function clusterJson(c: QuickCluster): Record<string, unknown> {
  // A name that is not an IP literal is resolved as Envoy's STRICT_DNS does; IPs stay STATIC.
  const dns = c.endpoints.some((e) => isIP(e.host) === 0);
  return {
    name: c.name,
    type: dns ? 'STRICT_DNS' : 'STATIC',
    connect_timeout: '1s',
    load_assignment: {
      cluster_name: c.name,
      endpoints: [{ lb_endpoints: c.endpoints.map((e) => ({ endpoint: { address: socketAddress(e.host, e.port) } })) }],
    },
  };
}

function wasmFilterJson(p: QuickPlugin): Record<string, unknown> {
  const env = Object.keys(p.environment).length > 0 ? { environment_variables: { key_values: p.environment } } : {};
  return {
    name: 'envoy.filters.http.wasm',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm',
      config: {
        name: p.name,
        root_id: p.rootId,
        vm_config: { vm_id: p.vmId, runtime: 'envoy.wasm.runtime.v8', code: { local: { filename: p.file } }, ...env },
        configuration: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: p.configuration },
        fail_open: p.failOpen,
      },
    },
  };
}

/** The bootstrap for a QuickStart: one listener, the plugins in order, then the router. */
export function quickBootstrap(q: QuickStart): Record<string, unknown> {
  const names = new Set<string>();
  const clusters = [...(q.upstream ? [q.upstream] : []), ...q.clusters];
  clusters.forEach((c, i) => {
    if (names.has(c.name)) throw new ConfigError(`cluster '${c.name}' is given twice`, i === 0 && q.upstream ? '--upstream' : `--cluster #${i + (q.upstream ? 0 : 1)}`);
    names.add(c.name);
  });
  const pluginNames = new Set<string>();
  for (const p of q.plugins) {
    if (pluginNames.has(p.name)) throw new ConfigError(`two plugins are named '${p.name}': give one a --name`, p.origin);
    pluginNames.add(p.name);
  }
  const route = q.upstream
    ? { name: 'default', match: { prefix: '/' }, route: { cluster: q.upstream.name, timeout: q.routeTimeout } }
    : { name: 'default', match: { prefix: '/' }, direct_response: { status: 200, body: { inline_string: 'no --upstream given: this is the sidecar\'s direct response\n' } } };
  return {
    node: { id: 'proxy-wasm-sidecar', cluster: 'local' },
    admin: { address: socketAddress(q.admin.host, q.admin.port) },
    static_resources: {
      listeners: [{
        name: 'ingress',
        address: socketAddress(q.listen.host, q.listen.port),
        filter_chains: [{
          filters: [{
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: 'ingress_http',
              route_config: { name: 'local_route', virtual_hosts: [{ name: 'local', domains: ['*'], routes: [route] }] },
              http_filters: [
                ...q.plugins.map(wasmFilterJson),
                { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } },
              ],
            },
          }],
        }],
      }],
      clusters: clusters.map(clusterJson),
    },
  };
}
