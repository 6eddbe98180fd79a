import assert from 'node:assert/strict';
import { fromProtoJson } from '../../src/xds/proto-json';
import { after, before, describe, it } from 'node:test';
import { AdsClient, NACK_STATUS_CODE, type XdsEvent } from '../../src/xds/ads-client';
import { CDS_TYPE_URL, EDS_TYPE_URL, loadEnvoyProtos } from '../../src/xds/protos';

const protos = loadEnvoyProtos();
import type { ClusterManager, ClusterEvent } from '../../src/upstream/cluster-manager';
import { XdsTestServer } from '../support/xds-server';
import { cla, edsCluster, hostKeys, recordingManager, staticCluster, until } from '../support/xds-fixtures';

const NODE = { id: 'sidecar~10.0.0.1~test.default~default.svc.cluster.local', cluster: 'test' };

interface Harness {
  server: XdsTestServer;
  client: AdsClient;
  cm: ClusterManager;
  events: ClusterEvent[];
  xdsEvents: XdsEvent[];
}

const open: Array<{ server: XdsTestServer; client: AdsClient; cm: ClusterManager }> = [];

async function harness(setup: (s: XdsTestServer) => void, opts: Partial<ConstructorParameters<typeof AdsClient>[0]> = {}): Promise<Harness> {
  const server = await XdsTestServer.start();
  setup(server);
  const { cm, events } = recordingManager();
  const client = new AdsClient({ target: server.target, node: NODE, sink: cm, backoff: { baseMs: 20, maxMs: 200 }, ...opts });
  const xdsEvents: XdsEvent[] = [];
  client.onEvent((e) => xdsEvents.push(e));
  open.push({ server, client, cm });
  client.start();
  return { server, client, cm, events, xdsEvents };
}

/** The client's reply to the latest response of a type. */
function lastReply(server: XdsTestServer, typeUrl: string) {
  const reqs = server.requestsFor(typeUrl);
  return reqs[reqs.length - 1];
}

after(async () => {
  for (const { server, client, cm } of open) {
    await client.close();
    cm.close();
    await server.close();
  }
});

describe('ADS SotW: CDS + EDS end to end', () => {
  let h: Harness;
  before(async () => {
    h = await harness((s) => {
      s.setClusters([edsCluster('redis-a'), edsCluster('redis-b'), staticCluster('static-x', 7000)]);
      s.setEndpoints([cla('redis-a', [['10.0.0.1', 6379], ['10.0.0.2', 6379]]), cla('redis-b', [['10.0.0.3', 6380]])]);
    });
    await h.client.initialized;
  });

  it('activates every cluster with its hosts', () => {
    assert.deepEqual([...h.cm.activeClusters()].map((c) => c.name).sort(), ['redis-a', 'redis-b', 'static-x']);
    assert.deepEqual(hostKeys(h.cm, 'redis-a'), ['10.0.0.1:6379', '10.0.0.2:6379']);
    assert.deepEqual(hostKeys(h.cm, 'redis-b'), ['10.0.0.3:6380']);
    assert.deepEqual(hostKeys(h.cm, 'static-x'), ['127.0.0.1:7000']);
    const a = h.cm.get('redis-a');
    assert.equal(a?.config.lbPolicy, 'LEAST_REQUEST');
    assert.equal(a?.config.connectTimeoutMs, 10_000);
    assert.equal(a?.hosts[0]?.health, 'HEALTHY');
    assert.equal(a?.hosts[0]?.locality.region, 'r1');
    assert.equal(h.client.connected, true);
  });

  it('sends node first, wildcard CDS, then EDS by name, and ACKs both', async () => {
    await h.server.waitFor(() => h.server.requestsFor(EDS_TYPE_URL).length >= 2, 5000, 'EDS ACK');
    const [first, ...rest] = h.server.requests;
    assert.equal(first?.typeUrl, CDS_TYPE_URL);
    assert.equal(first?.nodeId, NODE.id);
    assert.deepEqual(first?.resourceNames, []);
    assert.equal(first?.versionInfo, '');
    assert.ok(rest.every((r) => r.nodeId === undefined), 'node only on the first message');
    const cds = h.server.requestsFor(CDS_TYPE_URL);
    assert.equal(cds[1]?.versionInfo, '1');
    assert.notEqual(cds[1]?.responseNonce, '');
    assert.equal(cds[1]?.errorDetail, undefined);
    const eds = h.server.requestsFor(EDS_TYPE_URL);
    assert.deepEqual([...(eds[0]?.resourceNames ?? [])].sort(), ['redis-a', 'redis-b']);
    assert.equal(eds[1]?.versionInfo, '1');
    assert.equal(h.client.versionInfo(CDS_TYPE_URL), '1');
    const st = h.client.status();
    assert.equal(st.counters.cds.update_success, 1);
    assert.equal(st.counters.eds['redis-a']?.update_success, 1);
    assert.equal(st.types.find((t) => t.typeUrl === CDS_TYPE_URL)?.resources.find((r) => r.name === 'redis-a')?.status, 'ACKED');
  });

  it('an EDS update emits a membership event', async () => {
    const n = h.events.length;
    h.server.setEndpoints([cla('redis-a', [['10.0.0.1', 6379], ['10.0.0.9', 6379]]), cla('redis-b', [['10.0.0.3', 6380]])]);
    h.server.push(EDS_TYPE_URL);
    await until(() => h.events.slice(n).some((e) => e.type === 'membership'), 5000, 'membership');
    const ev = h.events.slice(n).find((e) => e.type === 'membership');
    assert.ok(ev && ev.type === 'membership');
    assert.equal(ev.cluster.name, 'redis-a');
    assert.deepEqual(ev.added.map((x) => x.key), ['10.0.0.9:6379']);
    assert.deepEqual(ev.removed.map((x) => x.key), ['10.0.0.2:6379']);
  });

  it('an empty SotW EDS response is a no-op', async () => {
    const nonce = h.server.sendRaw({ type_url: EDS_TYPE_URL, version_info: '77', resources: [] });
    await h.server.waitFor(() => h.server.replyTo(nonce) !== undefined, 5000, 'ack');
    assert.equal(h.server.replyTo(nonce)?.errorDetail, undefined);
    assert.deepEqual(hostKeys(h.cm, 'redis-b'), ['10.0.0.3:6380']);
    assert.ok((h.client.counters().eds['redis-b']?.update_empty ?? 0) >= 1);
  });
});

describe('ADS SotW: NACKs keep the previous config', () => {
  let h: Harness;
  before(async () => {
    h = await harness((s) => {
      s.setClusters([edsCluster('good'), staticCluster('s1', 7001)]);
      s.setEndpoints([cla('good', [['10.1.0.1', 6379]])]);
    });
    await h.client.initialized;
  });

  async function nackFor(push: () => string): Promise<{ message: string; code: number; version: string }> {
    const nonce = push();
    await h.server.waitFor(() => h.server.replyTo(nonce) !== undefined, 5000, `reply to ${nonce}`);
    const reply = h.server.replyTo(nonce)!;
    assert.ok(reply.errorDetail, 'expected a NACK');
    return { message: reply.errorDetail.message, code: reply.errorDetail.code, version: reply.versionInfo };
  }

  function pushClusters(clusters: Record<string, unknown>[]): string {
    const v = h.server.setClusters(clusters);
    assert.ok(v);
    h.server.push(CDS_TYPE_URL);
    return h.server.lastNonce;
  }

  it('empty cluster name', async () => {
    const before = h.client.versionInfo(CDS_TYPE_URL);
    const n = await nackFor(() => pushClusters([edsCluster('good'), staticCluster('s1', 7001), { ...staticCluster('x', 1), name: '' }]));
    assert.equal(n.code, NACK_STATUS_CODE);
    assert.match(n.message, /name: value length must be at least 1 characters \(string\.min_len\)/);
    assert.equal(n.version, before);
    assert.equal(h.client.versionInfo(CDS_TYPE_URL), before);
  });

  it('port > 65535', async () => {
    const before = h.client.versionInfo(CDS_TYPE_URL);
    const n = await nackFor(() => pushClusters([edsCluster('good'), staticCluster('s1', 7001), staticCluster('bad-port', 70000)]));
    assert.match(
      n.message,
      /cluster 'bad-port': load_assignment\.endpoints\[0\]\.lb_endpoints\[0\]\.endpoint\.address\.socket_address\.port_value: value must be <= 65535 \(uint32\.lte\)/,
    );
    assert.equal(n.version, before);
    assert.equal(h.cm.get('bad-port'), undefined);
  });

  it('wrong type URL', async () => {
    const before = h.client.versionInfo(CDS_TYPE_URL);
    const wrong = h.server.encodeAny(EDS_TYPE_URL, cla('good', [['10.9.9.9', 1]]));
    const n = await nackFor(() => h.server.sendRaw({ type_url: CDS_TYPE_URL, version_info: 'bad', resources: [wrong] }));
    assert.match(n.message, /type URL type\.googleapis\.com\/envoy\.config\.endpoint\.v3\.ClusterLoadAssignment does not match/);
    assert.equal(n.version, before);
    assert.ok(h.cm.get('good'), 'existing clusters are not removed by a response that only failed');
  });

  it('duplicate names', async () => {
    const before = h.client.versionInfo(CDS_TYPE_URL);
    const a = h.server.encodeAny(CDS_TYPE_URL, edsCluster('good'));
    const s = h.server.encodeAny(CDS_TYPE_URL, staticCluster('s1', 7001));
    const n = await nackFor(() => h.server.sendRaw({ type_url: CDS_TYPE_URL, version_info: 'dup', resources: [a, s, a] }));
    assert.match(n.message, /duplicate cluster name 'good'/);
    assert.equal(n.version, before);
  });

  it('EDS cluster without eds_config', async () => {
    const before = h.client.versionInfo(CDS_TYPE_URL);
    const n = await nackFor(() => pushClusters([edsCluster('good'), staticCluster('s1', 7001), { name: 'no-eds', type: 'EDS', connect_timeout: '1s', eds_cluster_config: { service_name: 'x' } }]));
    assert.match(n.message, /cluster 'no-eds': eds_cluster_config\.eds_config: an EDS cluster needs an eds_config/);
    assert.equal(n.version, before);
    assert.equal(h.cm.configOf('no-eds'), undefined);
  });

  it('a cluster failing validation rejects the whole response: nothing applied, nothing removed (Envoy decodes first)', async () => {
    const before = h.client.versionInfo(CDS_TYPE_URL);
    // s1 is left out and 'fresh' is new: neither change may happen, because zero-timeout fails its PGV rule.
    const n = await nackFor(() => pushClusters([edsCluster('good'), staticCluster('fresh', 7002), { ...staticCluster('zero-timeout', 1), connect_timeout: '0s' }]));
    assert.match(n.message, /cluster 'zero-timeout': connect_timeout: value must be > 0s \(duration\.gt\)/);
    assert.equal(n.version, before);
    assert.equal(h.cm.configOf('fresh'), undefined, 'a valid sibling of an invalid cluster is not applied');
    assert.deepEqual(hostKeys(h.cm, 's1'), ['127.0.0.1:7001'], 'a cluster the rejected response left out is kept');
    const st = h.client.status().types.find((t) => t.typeUrl === CDS_TYPE_URL);
    assert.equal(st?.resources.find((r) => r.name === 'zero-timeout')?.status, 'NACKED');
    assert.ok(st?.lastError?.details.includes('zero-timeout'));
    assert.ok(h.client.counters().cds.update_rejected >= 1);
  });

  it("a cluster that only fails to build is rejected alone: its valid siblings apply (Envoy's cds_api_helper)", async () => {
    const before = h.client.versionInfo(CDS_TYPE_URL);
    const n = await nackFor(() => pushClusters([edsCluster('good'), staticCluster('s1', 7001), staticCluster('fresh', 7002), { name: 'no-eds2', type: 'EDS', connect_timeout: '1s', eds_cluster_config: { service_name: 'x' } }]));
    assert.match(n.message, /cluster 'no-eds2': eds_cluster_config\.eds_config: an EDS cluster needs an eds_config/);
    assert.equal(n.version, before);
    assert.deepEqual(hostKeys(h.cm, 'fresh'), ['127.0.0.1:7002']);
    assert.equal(h.cm.configOf('no-eds2'), undefined);
  });

  it('a typed_config that does not unpack rejects that cluster alone, as Envoy finds it building the cluster', async () => {
    const before = h.client.versionInfo(CDS_TYPE_URL);
    const good = h.server.encodeAny(CDS_TYPE_URL, edsCluster('good'));
    const s1 = h.server.encodeAny(CDS_TYPE_URL, staticCluster('s1', 7001));
    const fresh = h.server.encodeAny(CDS_TYPE_URL, staticCluster('fresh2', 7004));
    const plain = fromProtoJson(protos, protos.Cluster, staticCluster('bad-any', 7005));
    plain['transport_socket'] = { name: 'envoy.transport_sockets.raw_buffer', typed_config: { type_url: 'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer', value: Buffer.from([0xff, 0xff, 0xff]) } };
    const bad = { type_url: CDS_TYPE_URL, value: protos.Cluster.encode(plain).finish() };
    const n = await nackFor(() => h.server.sendRaw({ type_url: CDS_TYPE_URL, version_info: 'bad-any', resources: [good, s1, fresh, bad] }));
    assert.match(n.message, /cluster 'bad-any': transport_socket\.typed_config: cannot decode/);
    assert.equal(n.version, before);
    assert.deepEqual(hostKeys(h.cm, 'fresh2'), ['127.0.0.1:7004']);
    assert.equal(h.cm.configOf('bad-any'), undefined);
  });

  it('a cluster asking for an upstream TLS feature it cannot honour is refused, never connected to without it', async () => {
    const tls = {
      ...staticCluster('tls-upstream', 7443),
      transport_socket: {
        name: 'envoy.transport_sockets.tls',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
          sni: 'api.example.com',
          common_tls_context: { validation_context: { match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: 'api.example.com' } }] } },
        },
      },
    };
    const n = await nackFor(() => pushClusters([edsCluster('good'), staticCluster('s1', 7001), staticCluster('fresh', 7002), tls]));
    assert.match(n.message, /cluster 'tls-upstream': transport_socket\.typed_config\.common_tls_context\.validation_context\.match_typed_subject_alt_names: is not supported by this data plane/);
    assert.equal(h.cm.configOf('tls-upstream'), undefined);
    assert.deepEqual(hostKeys(h.cm, 'fresh'), ['127.0.0.1:7002']);
  });

  it('EDS: duplicate CLAs and bad ports are NACKed, hosts kept', async () => {
    const before = h.client.versionInfo(EDS_TYPE_URL);
    const a = h.server.encodeAny(EDS_TYPE_URL, cla('good', [['10.1.0.7', 6379]]));
    const dup = await nackFor(() => h.server.sendRaw({ type_url: EDS_TYPE_URL, version_info: 'e-dup', resources: [a, a] }));
    assert.match(dup.message, /more than one ClusterLoadAssignment for 'good'/);
    assert.equal(dup.version, before);
    const bad = h.server.encodeAny(EDS_TYPE_URL, cla('good', [['10.1.0.7', 65536]]));
    const port = await nackFor(() => h.server.sendRaw({ type_url: EDS_TYPE_URL, version_info: 'e-port', resources: [bad] }));
    assert.match(port.message, /ClusterLoadAssignment 'good': endpoints\[0\]\.lb_endpoints\[0\]\.endpoint\.address\.socket_address\.port_value: value must be <= 65535 \(uint32\.lte\)/);
    assert.deepEqual(hostKeys(h.cm, 'good'), ['10.1.0.1:6379']);
  });
});

describe('ADS SotW: removal, wrapper, restart, backoff', () => {
  let h: Harness;
  before(async () => {
    h = await harness((s) => {
      s.setClusters([edsCluster('a'), edsCluster('b'), staticCluster('dyn-static', 7003)], { wrap: true });
      s.setEndpoints([cla('a', [['10.2.0.1', 1]]), cla('b', [['10.2.0.2', 2]])], { wrap: true });
    });
    await h.client.initialized;
  });

  it('unwraps envoy.service.discovery.v3.Resource', () => {
    assert.deepEqual(hostKeys(h.cm, 'a'), ['10.2.0.1:1']);
    assert.deepEqual(hostKeys(h.cm, 'b'), ['10.2.0.2:2']);
  });

  it('removes dynamic clusters missing from a SotW CDS response, never static ones', async () => {
    h.cm.addOrUpdateCluster({ ...h.cm.get('dyn-static')!.config, name: 'bootstrap-static', addedViaApi: false, hash: 'boot' });
    const n = h.events.length;
    h.server.setClusters([edsCluster('a')]);
    h.server.push(CDS_TYPE_URL);
    await until(() => h.events.slice(n).filter((e) => e.type === 'removed').length === 2, 5000, 'removed events');
    const removed = h.events.slice(n).flatMap((e) => (e.type === 'removed' ? [e.name] : [])).sort();
    assert.deepEqual(removed, ['b', 'dyn-static']);
    assert.ok(h.cm.get('bootstrap-static'), 'static clusters are untouched');
    assert.ok(h.cm.get('a'));
    // The EDS subscription shrinks to the remaining names in one request.
    await h.server.waitFor(() => {
      const eds = lastReply(h.server, EDS_TYPE_URL);
      return eds !== undefined && eds.resourceNames.length === 1 && eds.resourceNames[0] === 'a';
    }, 5000, 'EDS resubscription');
  });

  it('keeps the last config across a control-plane restart and resubscribes with the last versions', async () => {
    const cdsVersion = h.client.versionInfo(CDS_TYPE_URL);
    const edsVersion = h.client.versionInfo(EDS_TYPE_URL);
    assert.notEqual(cdsVersion, '');
    await h.server.stop();
    await until(() => !h.client.connected, 5000, 'disconnect');
    assert.deepEqual(hostKeys(h.cm, 'a'), ['10.2.0.1:1'], 'last good config kept');
    const before = h.server.requests.length;
    await h.server.restart();
    await h.server.waitFor(() => h.server.requests.length >= before + 2, 10_000, 'resubscription');
    const fresh = h.server.requests.slice(before);
    assert.equal(fresh[0]?.typeUrl, CDS_TYPE_URL);
    assert.equal(fresh[0]?.versionInfo, cdsVersion);
    assert.equal(fresh[0]?.responseNonce, '', 'nonces do not survive a reconnect');
    assert.equal(fresh[0]?.nodeId, NODE.id, 'node again on the first message of the new stream');
    assert.equal(fresh[1]?.typeUrl, EDS_TYPE_URL);
    assert.equal(fresh[1]?.versionInfo, edsVersion);
    assert.deepEqual(fresh[1]?.resourceNames, ['a']);
    // New config after the restart still flows.
    h.server.setEndpoints([cla('a', [['10.2.0.5', 1]])]);
    h.server.push(EDS_TYPE_URL);
    await until(() => hostKeys(h.cm, 'a')[0] === '10.2.0.5:1', 5000, 'post-restart update');
    assert.equal(h.client.connected, true);
  });

  it('resets the backoff when a message arrives', async () => {
    const delays = (): number[] => h.xdsEvents.flatMap((e) => (e.type === 'disconnected' ? [e.retryInMs] : []));
    const n0 = delays().length;
    await h.server.stop();
    // Server down: every failed attempt doubles the interval (20, 40, 80, 160, 200 ms caps).
    await until(() => delays().length >= n0 + 4, 10_000, 'several failed attempts');
    await h.server.restart();
    h.server.setClusters([edsCluster('a'), edsCluster('c')]);
    h.server.setEndpoints([cla('a', [['10.2.0.5', 1]]), cla('c', [['10.2.0.6', 1]])]);
    await until(() => h.cm.get('c') !== undefined, 10_000, 'reconnected and updated');
    const n1 = delays().length;
    h.server.killStreams();
    await until(() => delays().length > n1, 5000, 'disconnect after kill');
    const after = delays()[n1]!;
    assert.ok(after < 20, `backoff restarted from the 20 ms base, got ${after}`);
  });
});

describe('ADS: initial_fetch_timeout', () => {
  it('initializes on timeout when the control plane sends nothing', async () => {
    const h = await harness(() => {}, { initialFetchTimeoutMs: 100 });
    await h.client.initialized;
    assert.ok(h.xdsEvents.some((e) => e.type === 'initialized' && e.reason === 'timeout'));
    assert.equal(h.client.counters().cds.init_fetch_timeout, 1);
  });
});
