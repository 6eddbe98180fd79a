import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError } from '../../src/common/errors';
import {
  DEFAULT_TCP_IDLE_TIMEOUT_MS, TCP_PROXY_TYPE, isNetworkFilterChain, parseNetworkFilterChain,
} from '../../src/tcp/network-config';
import { tcpProxyFilter, wasmNetworkFilter } from './helpers';

const BASE = 'static_resources.listeners[0].filter_chains[0].filters';

function refused(filters: unknown[], path: string): void {
  assert.throws(() => parseNetworkFilterChain(filters, BASE), (err: unknown) => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.equal(err.path, path);
    return true;
  });
}

test('a Wasm network filter then tcp_proxy: the PluginConfig as the HTTP filter reads it, the proxy fields', () => {
  const chain = parseNetworkFilterChain([
    wasmNetworkFilter({ plugin: 'tcp-probe', name: 'probe', rootId: 'tcp_probe', configuration: 'hold=x', failurePolicy: 'FAIL_OPEN' }),
    tcpProxyFilter('backend', { idle_timeout: '2.5s' }),
  ], BASE);
  assert.equal(chain.wasmFilters.length, 1);
  const w = chain.wasmFilters[0]!;
  assert.equal(w.name, 'probe');
  assert.equal(w.rootId, 'tcp_probe');
  assert.equal(w.configuration.toString(), 'hold=x');
  assert.equal(w.failurePolicy, 'FAIL_OPEN');
  assert.deepEqual(chain.tcpProxy, { filterName: 'envoy.filters.network.tcp_proxy', path: `${BASE}[1]`, statPrefix: 'tcp_test', cluster: 'backend', idleTimeoutMs: 2500 });
  assert.equal(parseNetworkFilterChain([tcpProxyFilter('b')], BASE).tcpProxy.idleTimeoutMs, DEFAULT_TCP_IDLE_TIMEOUT_MS, "Envoy's 1 h default");
  assert.equal(parseNetworkFilterChain([tcpProxyFilter('b', { idle_timeout: '0s' })], BASE).tcpProxy.idleTimeoutMs, 0, '0s disables it');
});

test('every tcp_proxy field not implemented is refused with its path', () => {
  refused([tcpProxyFilter('b', { access_log: [{ name: 'x' }] })], `${BASE}[0].typed_config.access_log`);
  refused([tcpProxyFilter('b', { max_connect_attempts: 3 })], `${BASE}[0].typed_config.max_connect_attempts`);
  refused([{ name: 'tcp', typed_config: { '@type': TCP_PROXY_TYPE, stat_prefix: 's', weighted_clusters: { clusters: [] } } }], `${BASE}[0].typed_config.weighted_clusters`);
  refused([{ name: 'tcp', typed_config: { '@type': TCP_PROXY_TYPE, cluster: 'b' } }], `${BASE}[0].typed_config.stat_prefix`);
  refused([{ name: 'tcp', typed_config: { '@type': TCP_PROXY_TYPE, stat_prefix: '', cluster: 'b' } }], `${BASE}[0].typed_config.stat_prefix`);
  refused([tcpProxyFilter('b', { idle_timeout: 'soon' })], `${BASE}[0].typed_config.idle_timeout`);
});

test('chains: the tcp_proxy is terminal and required; other network filters are refused; the Wasm config is checked', () => {
  refused([tcpProxyFilter('b'), wasmNetworkFilter({ plugin: 'tcp-probe', name: 'late', rootId: 'tcp_probe' })], `${BASE}[1]`);
  refused([wasmNetworkFilter({ plugin: 'tcp-probe', name: 'alone', rootId: 'tcp_probe' })], BASE);
  refused([{ name: 'echo', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.echo.v3.Echo' } }, tcpProxyFilter('b')], `${BASE}[0].typed_config.@type`);
  refused([{ ...tcpProxyFilter('b'), config_discovery: {} }], `${BASE}[0].config_discovery`);
  const noVm = wasmNetworkFilter({ plugin: 'tcp-probe', name: 'w', rootId: 'tcp_probe' });
  delete ((noVm['typed_config'] as Record<string, Record<string, unknown>>)['config'])!['vm_config'];
  refused([noVm, tcpProxyFilter('b')], `${BASE}[0].typed_config.config.vm_config`);
  const noCode = wasmNetworkFilter({ plugin: 'tcp-probe', name: 'w', rootId: 'tcp_probe' });
  delete ((noCode['typed_config'] as Record<string, Record<string, Record<string, unknown>>>)['config']!['vm_config']!)['code'];
  refused([noCode, tcpProxyFilter('b')], `${BASE}[0].typed_config.config.vm_config.code`);
});

test('isNetworkFilterChain: a chain ending in tcp_proxy is a TCP chain; an HCM chain is not', () => {
  assert.equal(isNetworkFilterChain([wasmNetworkFilter({ plugin: 'tcp-probe', name: 'w', rootId: 'tcp_probe' }), tcpProxyFilter('b')]), true);
  assert.equal(isNetworkFilterChain([{ name: 'hcm', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager' } }]), false);
  assert.equal(isNetworkFilterChain([]), false);
});
