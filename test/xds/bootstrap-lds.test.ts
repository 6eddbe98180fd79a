import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { adsClientOptions, parseBootstrap } from '../../src/config/bootstrap';
import { AdsClient } from '../../src/xds/ads-client';
import { LDS_TYPE_URL } from '../../src/xds/type-urls';
import { XdsTestServer } from '../support/xds-server';
import { recordingManager } from '../support/xds-fixtures';
import { listener, RecordingSink } from './support';

/** An Istio-style bootstrap: everything over ADS, lds_config and cds_config `{ads: {}}` with 0s timeouts. */
function bootstrap(port: number, dynamic: string): string {
  return `
node: { id: sidecar~10.0.0.2~pod.ns~ns.svc.cluster.local, cluster: pod.ns }
static_resources:
  clusters:
  - name: xds-grpc
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: xds-grpc
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: ${port} } } } }] }]
dynamic_resources:
  ads_config:
    api_type: GRPC
    transport_api_version: V3
    set_node_on_first_message_only: true
    grpc_services: [{ envoy_grpc: { cluster_name: xds-grpc } }]
${dynamic}
`;
}

const ISTIO = `  cds_config: { ads: {}, resource_api_version: V3, initial_fetch_timeout: 0s }
  lds_config: { ads: {}, resource_api_version: V3, initial_fetch_timeout: 0s }`;

describe('bootstrap dynamic_resources.lds_config', () => {
  it('is read (ADS, V3, initial_fetch_timeout) and passed to the client options', () => {
    const b = parseBootstrap(bootstrap(15010, ISTIO), 'yaml');
    assert.deepEqual(b.lds, { initialFetchTimeoutMs: 0 });
    const { cm } = recordingManager();
    const listeners = new RecordingSink();
    const o = adsClientOptions(b, cm, { listeners });
    assert.deepEqual(o.lds, { initialFetchTimeoutMs: 0 });
    assert.equal(o.sinks?.listeners, listeners);
    const b2 = parseBootstrap(bootstrap(15010, '  lds_config: { ads: {}, initial_fetch_timeout: 3s }'), 'yaml');
    assert.deepEqual(b2.lds, { initialFetchTimeoutMs: 3000 });
    assert.equal(parseBootstrap(bootstrap(15010, '  cds_config: { ads: {} }'), 'yaml').lds, undefined);
    cm.close();
  });

  it('refuses what is not implemented, with the field path', () => {
    const refused: [string, RegExp][] = [
      ['  lds_config: { path_config_source: { path: /etc/envoy/lds.yaml } }', /dynamic_resources\.lds_config\.path_config_source: path_config_source is not supported for LDS/],
      ['  lds_config: { api_config_source: { api_type: GRPC, transport_api_version: V3, grpc_services: [{ envoy_grpc: { cluster_name: xds-grpc } }] } }', /dynamic_resources\.lds_config\.api_config_source: api_config_source is not supported/],
      ['  lds_config: { ads: {}, resource_api_version: V2 }', /dynamic_resources\.lds_config\.resource_api_version: resource_api_version V2 is not supported/],
      ['  cds_config: { self: {} }', /dynamic_resources\.cds_config\.self: self is not supported for CDS/],
      ['  lds_resources_locator: "xdstp://x/envoy.config.listener.v3.Listener/*"', /dynamic_resources\.lds_resources_locator/],
    ];
    for (const [dynamic, message] of refused) {
      assert.throws(() => parseBootstrap(bootstrap(15010, dynamic), 'yaml'), (e: Error & { code?: string }) => e.code === 'PWS_ERR_CONFIG' && message.test(e.message), dynamic);
    }
    const noAds = `
node: { id: n }
dynamic_resources:
  lds_config: { ads: {} }
`;
    assert.throws(() => parseBootstrap(noAds, 'yaml'), /dynamic_resources\.lds_config\.ads: lds_config uses ADS but dynamic_resources\.ads_config is missing/);
  });

  it('an lds_config bootstrap without a listener manager is refused by the client, not silently left without listeners', () => {
    const b = parseBootstrap(bootstrap(15010, ISTIO), 'yaml');
    const { cm } = recordingManager();
    assert.throws(() => new AdsClient(adsClientOptions(b, cm)), (e: Error & { code?: string }) => e.code === 'PWS_ERR_CONFIG' && /dynamic_resources\.lds_config/.test(e.message));
    cm.close();
  });

  it('a client built from an Istio-style bootstrap gets its listeners over ADS', async () => {
    const server = await XdsTestServer.start();
    server.setClusters([]);
    server.setListeners([listener('virtualInbound', 15006), listener('0.0.0.0_8080', 8080)]);
    const b = parseBootstrap(bootstrap(server.port, ISTIO), 'yaml');
    const { cm } = recordingManager();
    const listeners = new RecordingSink();
    const client = new AdsClient(adsClientOptions(b, cm, { listeners }));
    try {
      client.start();
      await client.initialized;
      assert.deepEqual(listeners.names(), ['0.0.0.0_8080', 'virtualInbound']);
      assert.equal(server.requestsFor(LDS_TYPE_URL)[0]?.nodeId, undefined, 'node only on the stream’s first message');
    } finally {
      await client.close();
      cm.close();
      await server.close();
    }
  });
});
