import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/common/logger';
import { Sidecar } from '../../src/main';
import { TempDir } from '../http/helpers';
import { until } from '../support/until';
import { TestUpstream, readBytes, tcpProxyFilter, wasmNetworkFilter } from './helpers';
import { connect } from 'node:net';
import { once } from 'node:events';

// The whole sidecar from a bootstrap whose listener's filter chain is a Wasm network filter then tcp_proxy.
test('a bootstrap listener with envoy.filters.network.wasm + tcp_proxy serves TCP, with the tcp.* stats in /stats', async () => {
  const tmp = new TempDir();
  const up = await TestUpstream.start({ echo: true });
  const file = tmp.write('bootstrap.json', {
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    static_resources: {
      listeners: [{
        name: 'tcp-in',
        address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
        filter_chains: [{ filters: [wasmNetworkFilter({ plugin: 'tcp-probe', name: 'probe', rootId: 'tcp_probe', configuration: 'prefix_upstream=P:' }), tcpProxyFilter('backend')] }],
      }],
      clusters: [{
        name: 'backend', type: 'STATIC', connect_timeout: '1s',
        load_assignment: { cluster_name: 'backend', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: up.port } } } }] }] },
      }],
    },
  });
  const sidecar = await Sidecar.start({ configFile: file, logger: silentLogger(), drainTimeoutMs: 1000 });
  try {
    const port = sidecar.publicListeners[0]!.port;
    const c = connect({ host: '127.0.0.1', port });
    await once(c, 'connect');
    c.write('via bootstrap');
    assert.equal((await readBytes(c, 15)).toString(), 'P:via bootstrap');
    c.destroy();
    const admin = sidecar.admin!.boundAddress()!;
    await until(async () => {
      const text = await (await fetch(`http://127.0.0.1:${admin.port}/stats`)).text();
      return /^tcp\.tcp_test\.downstream_cx_total: 1$/m.test(text) && /^tcp\.tcp_test\.downstream_cx_rx_bytes_total: 13$/m.test(text);
    }, 5000, 'tcp stats in /stats');
  } finally {
    await sidecar.stop();
    await up.close();
    tmp.cleanup();
  }
});

test('failure_policy on a network Wasm filter in a bootstrap is read as on the HTTP one', async () => {
  const tmp = new TempDir();
  const file = tmp.write('bootstrap.json', {
    static_resources: {
      listeners: [{
        name: 'tcp-in',
        address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
        filter_chains: [{ filters: [wasmNetworkFilter({ plugin: 'tcp-probe', name: 'probe', rootId: 'tcp_probe', failurePolicy: 'FAIL_OPEN' }), tcpProxyFilter('backend')] }],
      }],
      clusters: [{ name: 'backend', type: 'STATIC', load_assignment: { cluster_name: 'backend', endpoints: [] } }],
    },
  });
  try {
    const sidecar = await Sidecar.start({ configFile: file, logger: silentLogger(), drainTimeoutMs: 0 });
    assert.equal(sidecar.publicListeners.length, 1);
    await sidecar.stop();
  } finally {
    tmp.cleanup();
  }
});
