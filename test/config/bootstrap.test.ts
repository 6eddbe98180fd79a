import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ConfigError } from '../../src/common/errors';
import { bootstrapFromJson, clusterToConfig, parseBootstrap } from '../../src/config/bootstrap';
import { decodeProtoJson, toProtoJson, type JsonValue, type ProtoObject } from '../../src/xds/proto-json';
import { loadEnvoyProtos } from '../../src/xds/protos';
import { ProtoValidator } from '../../src/xds/validate';

const protos = loadEnvoyProtos();
const validator = new ProtoValidator(protos);
const DUMP = JSON.parse(readFileSync('/work/shared/vectors/higress_config_dump.json', 'utf8')) as { configs: Record<string, unknown>[] };
const CONTRIB_GOLANG = 'type.googleapis.com/envoy.extensions.filters.http.golang.v3alpha.Config';

/** `actual` equals `expected` except that `expected` may carry default values the canonical form omits. */
function equalModuloDefaults(expected: JsonValue | undefined, actual: JsonValue | undefined, path = ''): void {
  const isDefault = (v: JsonValue | undefined): boolean =>
    v === undefined || v === 0 || v === false || v === '' || (Array.isArray(v) && v.length === 0) || (typeof v === 'object' && v !== null && !Array.isArray(v) && Object.keys(v).length === 0);
  if (actual === undefined) return assert.ok(isDefault(expected), `${path}: missing in output: ${JSON.stringify(expected)}`);
  if (typeof expected !== 'object' || expected === null || typeof actual !== 'object' || actual === null) {
    return assert.deepEqual(actual, expected, path);
  }
  if (Array.isArray(expected)) {
    assert.ok(Array.isArray(actual), path);
    assert.equal(actual.length, expected.length, path);
    expected.forEach((e, i) => equalModuloDefaults(e, (actual as JsonValue[])[i], `${path}[${i}]`));
    return;
  }
  const a = actual as Record<string, JsonValue>;
  for (const k of new Set([...Object.keys(expected), ...Object.keys(a)])) equalModuloDefaults(expected[k], a[k], `${path}.${k}`);
}

function stripContrib(v: unknown): unknown {
  if (Array.isArray(v)) return v.filter((x) => !JSON.stringify(x).includes(CONTRIB_GOLANG)).map(stripContrib);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, stripContrib(x)]));
  return v;
}

const YAML = `
node:
  id: sidecar~10.0.0.2~pod.ns~ns.svc.cluster.local
  cluster: pod.ns
  metadata: { ISTIO_VERSION: "1.22", LABELS: { app: demo } }
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: 15000 } }
static_resources:
  clusters:
  - name: xds-grpc
    type: STATIC
    connect_timeout: 1s
    typed_extension_protocol_options:
      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:
        "@type": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions
        explicit_http_config: { http2_protocol_options: {} }
    load_assignment:
      cluster_name: xds-grpc
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 127.0.0.1, port_value: 15010 } } } }] }]
  - name: redis-dns
    type: STRICT_DNS
    dns_refresh_rate: 200s
    load_assignment:
      cluster_name: redis-dns
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: localhost, port_value: 6379 } } } }] }]
dynamic_resources:
  ads_config:
    api_type: DELTA_GRPC
    transport_api_version: V3
    set_node_on_first_message_only: true
    grpc_services: [{ envoy_grpc: { cluster_name: xds-grpc } }]
  cds_config: { ads: {}, resource_api_version: V3, initial_fetch_timeout: 2.5s }
`;

describe('bootstrap loading', () => {
  it('loads YAML: node, static clusters, ADS, cds_config, admin', () => {
    const b = parseBootstrap(YAML, 'yaml');
    assert.equal(b.node.id, 'sidecar~10.0.0.2~pod.ns~ns.svc.cluster.local');
    assert.equal(b.node.cluster, 'pod.ns');
    assert.deepEqual(b.node.metadata, { ISTIO_VERSION: '1.22', LABELS: { app: 'demo' } });
    assert.deepEqual(b.ads, { apiType: 'DELTA_GRPC', target: '127.0.0.1:15010', clusterName: 'xds-grpc', setNodeOnFirstMessageOnly: true });
    assert.deepEqual(b.cds, { ads: true, initialFetchTimeoutMs: 2500 });
    assert.deepEqual(b.admin, { address: '127.0.0.1', port: 15000 });
    const dns = b.staticClusters.find((c) => c.name === 'redis-dns');
    assert.equal(dns?.type, 'STRICT_DNS');
    assert.equal(dns?.dnsRefreshRateMs, 200_000);
    assert.equal(dns?.connectTimeoutMs, 5000, 'connect_timeout defaults to 5 s');
    assert.equal(dns?.addedViaApi, false);
    assert.equal(dns?.loadAssignment[0]?.address, 'localhost');
    assert.equal(b.staticClusters[0]?.source['@type'], 'type.googleapis.com/envoy.config.cluster.v3.Cluster');
  });

  it('loads the same document as JSON', () => {
    const fromYaml = parseBootstrap(YAML, 'yaml');
    const fromJson = parseBootstrap(JSON.stringify(fromYaml.json), 'json');
    assert.deepEqual(fromJson.json, fromYaml.json);
    assert.equal(fromJson.staticClusters[1]?.hash, fromYaml.staticClusters[1]?.hash);
  });

  it('names the JSON path of an unknown @type, an unknown field and a PGV violation', () => {
    const doc = parseBootstrap(YAML, 'yaml').json as Record<string, JsonValue>;
    const bad = JSON.parse(JSON.stringify(doc)) as { static_resources: { clusters: Record<string, unknown>[] } };
    (bad.static_resources.clusters[0]!['typed_extension_protocol_options'] as Record<string, Record<string, unknown>>)['envoy.extensions.upstreams.http.v3.HttpProtocolOptions']!['@type'] = 'type.googleapis.com/nope.Missing';
    assert.throws(() => bootstrapFromJson(bad), (e: unknown) => e instanceof ConfigError &&
      e.path === 'static_resources.clusters[0].typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].@type' && /unknown Any type/.test(e.message));
    const typo = JSON.parse(JSON.stringify(doc)) as { static_resources: { clusters: Record<string, unknown>[] } };
    typo.static_resources.clusters[1]!['conect_timeout'] = '1s';
    assert.throws(() => bootstrapFromJson(typo), (e: unknown) => e instanceof ConfigError && e.path === 'static_resources.clusters[1].conect_timeout');
    const port = JSON.parse(JSON.stringify(doc).replace('15010', '99999')) as unknown;
    assert.throws(() => bootstrapFromJson(port), (e: unknown) => e instanceof ConfigError && e.code === 'PWS_ERR_CONFIG' &&
      e.path === 'static_resources.clusters[0].load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value');
  });

  it('loads the Higress gateway bootstrap (ADS over a unix pipe, SotW, node once, 0s fetch timeout)', () => {
    const boot = (DUMP.configs[0] as { bootstrap: unknown }).bootstrap;
    const b = bootstrapFromJson(boot);
    assert.equal(b.node.id, 'router~10.0.0.159~higress-gateway-798c6c8fd7-lhkmw.himarket-system~himarket-system.svc.cluster.local');
    assert.deepEqual(b.ads, { apiType: 'GRPC', target: 'unix:./etc/istio/proxy/XDS', clusterName: 'xds-grpc', setNodeOnFirstMessageOnly: true });
    assert.deepEqual(b.cds, { ads: true, initialFetchTimeoutMs: 0 });
    assert.deepEqual(b.staticClusters.map((c) => c.name), ['prometheus_stats', 'agent', 'sds-grpc', 'xds-grpc']);
    assert.equal(b.staticListeners.length, 2);
    equalModuloDefaults(boot as JsonValue, b.json);
  });

  it('round-trips every cluster of the Higress ClustersConfigDump and converts it', () => {
    const dump = DUMP.configs[1] as { static_clusters: { cluster: Record<string, unknown> }[]; dynamic_active_clusters: { cluster: Record<string, unknown>; version_info: string }[] };
    const all = [...dump.static_clusters, ...dump.dynamic_active_clusters];
    assert.equal(all.length, 10);
    const types: Record<string, string> = {};
    const tlsClusters: string[] = [];
    for (const entry of all) {
      const { '@type': _t, ...json } = entry.cluster;
      void _t;
      const msg = decodeProtoJson(protos, protos.Cluster, json) as unknown as ProtoObject;
      equalModuloDefaults(json as JsonValue, toProtoJson(protos, protos.Cluster, msg));
      const c = clusterToConfig(protos, validator, msg, { versionInfo: 'v', addedViaApi: true });
      if (JSON.stringify(json).includes('envoy.transport_sockets.tls')) {
        // Upstream TLS is implemented: the cluster keeps its UpstreamTlsContext (here, SNI only), never plaintext.
        assert.ok(c.ok && c.value.tls?.sni, `${c.name}: TLS accepted with its SNI`);
        tlsClusters.push(c.name);
      }
      assert.ok(c.ok, JSON.stringify(!c.ok && c.errors));
      types[c.name] = c.value.type;
      equalModuloDefaults(entry.cluster as JsonValue, c.value.source as JsonValue);
    }
    assert.equal(types['outbound|80||log-collector.higress-system.svc.cluster.local'], 'EDS');
    assert.equal(types['outbound|8080||ant.dns'], 'STRICT_DNS');
    assert.equal(types['BlackHoleCluster'], 'STATIC');
    assert.ok(tlsClusters.length > 0 && tlsClusters.every((n) => /^outbound\|443\|\|.*\.dns$/.test(n)), `TLS clusters: ${tlsClusters.join(', ')}`);
  });

  it('round-trips the rest of the dump except the contrib golang filter', () => {
    const any = protos.lookup('google.protobuf.Any')!;
    for (const cfg of DUMP.configs.slice(2)) {
      const json = stripContrib(cfg) as Record<string, unknown>;
      const msg = decodeProtoJson(protos, any, json) as unknown as ProtoObject;
      equalModuloDefaults(json as JsonValue, toProtoJson(protos, any, msg));
    }
    assert.throws(() => decodeProtoJson(protos, any, DUMP.configs[2]), (e: unknown) => e instanceof ConfigError && e.message.includes(CONTRIB_GOLANG));
  });

  it('converts clusters: EDS service name default, cluster_type extensions, LOGICAL_DNS, CLA hosts', () => {
    const conv = (json: Record<string, unknown>) => clusterToConfig(protos, validator, decodeProtoJson(protos, protos.Cluster, json) as unknown as ProtoObject, { versionInfo: '3', addedViaApi: true });
    const eds = conv({ name: 'e', type: 'EDS', eds_cluster_config: { eds_config: { ads: {} } } });
    assert.ok(eds.ok);
    assert.equal(eds.value.edsServiceName, 'e');
    assert.equal(eds.value.versionInfo, '3');
    const redis = conv({ name: 'r', cluster_type: { name: 'envoy.clusters.redis', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.clusters.redis.v3.RedisClusterConfig' } } });
    assert.ok(redis.ok);
    assert.equal(redis.value.type, 'UNSUPPORTED');
    assert.equal(redis.value.typeDetail, 'cluster_type envoy.clusters.redis');
    const od = conv({ name: 'o', type: 'ORIGINAL_DST', lb_policy: 'CLUSTER_PROVIDED' });
    assert.ok(od.ok);
    assert.equal(od.value.lbPolicy, 'CLUSTER_PROVIDED');
    const st = conv({
      name: 's', type: 'STATIC', lb_policy: 'MAGLEV',
      load_assignment: { cluster_name: 's', endpoints: [
        { priority: 1, locality: { region: 'eu', zone: 'a', sub_zone: 'x' }, lb_endpoints: [{ endpoint: { hostname: 'h1', address: { socket_address: { address: '10.0.0.1', port_value: 1 } } }, health_status: 'DEGRADED', load_balancing_weight: 7 }] },
      ] },
    });
    assert.ok(st.ok);
    assert.deepEqual(st.value.loadAssignment, [{ address: '10.0.0.1', port: 1, health: 'DEGRADED', weight: 7, priority: 1, hostname: 'h1', locality: { region: 'eu', zone: 'a', subZone: 'x' } }]);
    const ldns = conv({ name: 'l', type: 'LOGICAL_DNS', load_assignment: { cluster_name: 'l', endpoints: [{ lb_endpoints: [
      { endpoint: { address: { socket_address: { address: 'a', port_value: 1 } } } },
      { endpoint: { address: { socket_address: { address: 'b', port_value: 1 } } } }] }] } });
    assert.ok(!ldns.ok);
    assert.match(ldns.errors.join(), /single lb_endpoint/);
  });
});
