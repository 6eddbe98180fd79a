import { ConfigError } from '../common/errors';
import { isObject, object, only, str, type JsonFields } from '../config/json-fields';
import { WASM_FILTER_TYPE, durationMs, parseWasmFilterAny, type WasmFilterConfig } from '../http/listener-config';

/**
 * A listener's filter chain made of network filters rather than an HttpConnectionManager: any number of
 * envoy.filters.network.wasm filters, then the terminal envoy.filters.network.tcp_proxy. Input is proto3 JSON
 * (snake_case, `@type` Any wrappers); every error names the JSON path of the offending field, and every field
 * this data plane does not act on is refused rather than accepted and ignored.
 */

export const NETWORK_WASM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.wasm.v3.Wasm';
export const TCP_PROXY_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';

/** Envoy's TcpProxy.idle_timeout default (1 hour); an explicit 0s disables it. */
export const DEFAULT_TCP_IDLE_TIMEOUT_MS = 60 * 60 * 1000;

export interface TcpProxyConfig {
  /** filters[].name. */
  readonly filterName: string;
  /** JSON path of the filter, for errors and logs. */
  readonly path: string;
  /** `tcp.<stat_prefix>.*` stats. */
  readonly statPrefix: string;
  readonly cluster: string;
  /** 0: no idle timeout. */
  readonly idleTimeoutMs: number;
}

export interface NetworkFilterChainConfig {
  /** The Wasm network filters in listener order: reads pass them in this order, writes in reverse (Envoy). */
  readonly wasmFilters: readonly WasmFilterConfig[];
  readonly tcpProxy: TcpProxyConfig;
}

/**
 * Reads one filter's PluginConfig (`typed_config.config`) as the HTTP Wasm filter does: the message is the
 * same, so is its parsing (src/http/listener-config.ts). `filterPath` is the filter's JSON path.
 */
export type WasmFilterParser = (filterName: string, typedConfig: JsonFields, filterPath: string) => WasmFilterConfig;

export interface NetworkFilterChainDeps {
  readonly wasmFilter: WasmFilterParser;
}

/**
 * The HTTP Wasm filter's parser applied to the network one: both typed_configs are a `Wasm { config: PluginConfig }`
 * (envoy.extensions.filters.{http,network}.wasm.v3), so the Any is read as the HTTP one. Code filenames resolve
 * against the working directory; PluginConfig fields newer than the loaded protos are read from the config itself.
 */
export const readNetworkWasmFilter: WasmFilterParser = (name, typedConfig, filterPath) =>
  parseWasmFilterAny(name, { ...typedConfig, '@type': WASM_FILTER_TYPE }, `${filterPath}.typed_config`);

const FILTER_FIELDS = ['name', 'typed_config'];
const NETWORK_WASM_FIELDS = ['@type', 'config'];
/** TcpProxy fields acted on; the rest (weighted_clusters, access_log, hash_policy, tunneling_config, ...) are refused. */
const TCP_PROXY_FIELDS = ['@type', 'stat_prefix', 'cluster', 'idle_timeout'];

function typeOf(filter: unknown): string | undefined {
  if (!isObject(filter) || !isObject(filter['typed_config'])) return undefined;
  const t = filter['typed_config']['@type'];
  return typeof t === 'string' ? t : undefined;
}

/**
 * True when a filter chain is for this module: its last filter is a tcp_proxy (a chain ending in an
 * HttpConnectionManager belongs to the HTTP listener). The listener configuration calls this to choose.
 */
export function isNetworkFilterChain(filters: readonly unknown[]): boolean {
  return filters.length > 0 && typeOf(filters[filters.length - 1]) === TCP_PROXY_TYPE;
}

function tcpProxy(name: string, tc: JsonFields, path: string): TcpProxyConfig {
  const tpath = `${path}.typed_config`;
  only(tc, TCP_PROXY_FIELDS, tpath);
  const statPrefix = str(tc['stat_prefix'], `${tpath}.stat_prefix`);
  // Envoy's PGV rule: stat_prefix min_len 1.
  if (statPrefix === '') throw new ConfigError('must not be empty', `${tpath}.stat_prefix`);
  const cluster = str(tc['cluster'], `${tpath}.cluster`);
  if (cluster === '') throw new ConfigError('must not be empty', `${tpath}.cluster`);
  const idle = durationMs(tc['idle_timeout'], `${tpath}.idle_timeout`);
  if (idle !== undefined && idle < 0) throw new ConfigError('must not be negative', `${tpath}.idle_timeout`);
  return { filterName: name, path, statPrefix, cluster, idleTimeoutMs: idle ?? DEFAULT_TCP_IDLE_TIMEOUT_MS };
}

/**
 * Parses `filter_chains[i].filters` (at `path`) into Wasm network filters and the terminal tcp_proxy. Wasm
 * filters after the tcp_proxy, other network filters, and chains without a tcp_proxy are refused.
 */
export function parseNetworkFilterChain(filters: readonly unknown[], path: string, deps: NetworkFilterChainDeps = { wasmFilter: readNetworkWasmFilter }): NetworkFilterChainConfig {
  const wasmFilters: WasmFilterConfig[] = [];
  let proxy: TcpProxyConfig | undefined;
  filters.forEach((f, i) => {
    const p = `${path}[${i}]`;
    const fo = object(f, p);
    if (!fo) throw new ConfigError('is required', p);
    only(fo, FILTER_FIELDS, p);
    const name = str(fo['name'], `${p}.name`, '');
    if (proxy) throw new ConfigError(`filter '${name}' follows the terminal tcp_proxy filter`, p);
    const tc = object(fo['typed_config'], `${p}.typed_config`);
    if (!tc) throw new ConfigError('is required', `${p}.typed_config`);
    const type = str(tc['@type'], `${p}.typed_config.@type`);
    if (type === NETWORK_WASM_TYPE) {
      only(tc, NETWORK_WASM_FIELDS, `${p}.typed_config`);
      wasmFilters.push(deps.wasmFilter(name, tc, p));
    } else if (type === TCP_PROXY_TYPE) {
      proxy = tcpProxy(name, tc, p);
    } else {
      throw new ConfigError(`network filter ${type} is not supported (envoy.filters.network.wasm and envoy.filters.network.tcp_proxy only)`, `${p}.typed_config.@type`);
    }
  });
  if (!proxy) throw new ConfigError('the last network filter must be envoy.filters.network.tcp_proxy', path);
  return { wasmFilters, tcpProxy: proxy };
}
