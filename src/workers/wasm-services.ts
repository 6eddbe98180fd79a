import { ConfigError } from '../common/errors';
import type { WasmServiceConfig } from '../config/bootstrap';
import { HCM_TYPE, parseListeners, ROUTER_FILTER_TYPE, WASM_FILTER_TYPE, type WasmFilterConfig } from '../http/listener-config';

/**
 * `bootstrap_extensions` of type envoy.extensions.wasm.v3.WasmService (`envoy.bootstrap.wasm`): a Wasm VM started
 * at boot with one root context and no streams; it ticks, and it shares data and queues (by vm_id) and, when not
 * a singleton, the VM itself with the HTTP plugins of the same vm key on each worker. Envoy: `singleton: true`
 * runs once, on the main thread; `singleton: false` once per worker thread.
 */
export interface WasmService {
  readonly singleton: boolean;
  /** The service's PluginConfig, read exactly as an HTTP filter's. */
  readonly plugin: WasmFilterConfig;
}

/** Where the adapter below puts the PluginConfig, so errors can be renamed to the service's own path. */
const ADAPTER_BASE = 'bootstrap_extensions';
const ADAPTER_CONFIG_PATH = `${ADAPTER_BASE}[0].filter_chains[0].filters[0].typed_config.http_filters[0].typed_config.config`;

/**
 * Reads each service's PluginConfig with the HTTP filter's reader (one reader of PluginConfig for both, so the
 * two cannot drift apart): the config is wrapped in a one-filter listener, and errors are renamed to the
 * service's path. (listener-config.ts does not export its PluginConfig reader on its own.)
 */
export function parseWasmServices(services: readonly WasmServiceConfig[]): WasmService[] {
  return services.map((s) => {
    const listener = {
      name: s.path,
      address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
      filter_chains: [{
        filters: [{
          name: 'envoy.filters.network.http_connection_manager',
          typed_config: {
            '@type': HCM_TYPE,
            stat_prefix: 'wasm_service',
            route_config: { name: 'wasm_service', virtual_hosts: [] },
            http_filters: [
              { name: 'envoy.bootstrap.wasm', typed_config: { '@type': WASM_FILTER_TYPE, config: s.config } },
              { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER_FILTER_TYPE } },
            ],
          },
        }],
      }],
    };
    let plugin: WasmFilterConfig | undefined;
    try {
      const parsed = parseListeners([listener], { path: ADAPTER_BASE })[0];
      plugin = parsed?.wasmFilters[0] ?? parsed?.remoteWasmFilters[0]; // code.remote is fetched when the service loads
    } catch (err) {
      if (err instanceof ConfigError && err.path.startsWith(ADAPTER_CONFIG_PATH)) {
        const rest = err.path.slice(ADAPTER_CONFIG_PATH.length);
        const message = err.message.startsWith(`${err.path}: `) ? err.message.slice(err.path.length + 2) : err.message;
        throw new ConfigError(message, `${s.path}.config${rest}`, { cause: err });
      }
      throw err;
    }
    if (!plugin) throw new ConfigError('WasmService needs a config (PluginConfig)', `${s.path}.config`);
    return { singleton: s.singleton, plugin: { ...plugin, filterName: 'envoy.bootstrap.wasm', path: s.path } };
  });
}
