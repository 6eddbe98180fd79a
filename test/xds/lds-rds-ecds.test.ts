import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ClusterManager } from '../../src/upstream/cluster-manager';
import { AdsClient, type AdsClientOptions, type XdsEvent } from '../../src/xds/ads-client';
import { CDS_TYPE_URL, ECDS_TYPE_URL, EDS_TYPE_URL, LDS_TYPE_URL, RDS_TYPE_URL } from '../../src/xds/type-urls';
import { XdsTestServer } from '../support/xds-server';
import { cla, edsCluster, recordingManager, staticCluster, until } from '../support/xds-fixtures';
import { listener, RecordingSink, routeConfig, wasmExtension } from './support';

interface Harness {
  server: XdsTestServer;
  client: AdsClient;
  cm: ClusterManager;
  listeners: RecordingSink;
  routes: RecordingSink;
  ecds: RecordingSink;
  events: XdsEvent[];
}

const open: Harness[] = [];

async function harness(setup: (s: XdsTestServer) => void, opts: Partial<AdsClientOptions> = {}, start = true): Promise<Harness> {
  const server = await XdsTestServer.start();
  setup(server);
  const { cm } = recordingManager();
  const listeners = new RecordingSink();
  const routes = new RecordingSink();
  const ecds = new RecordingSink();
  const client = new AdsClient({
    target: server.target,
    node: { id: 'lds-test' },
    sink: cm,
    backoff: { baseMs: 20, maxMs: 200 },
    initialFetchTimeoutMs: 0,
    lds: { initialFetchTimeoutMs: 0 },
    sinks: { listeners, routes, extensionConfigs: ecds },
    ...opts,
  });
  const events: XdsEvent[] = [];
  client.onEvent((e) => events.push(e));
  const h = { server, client, cm, listeners, routes, ecds, events };
  open.push(h);
  if (start) client.start();
  return h;
}

after(async () => {
  for (const h of open) {
    await h.client.close();
    h.cm.close();
    await h.server.close();
  }
});

function statusOf(client: AdsClient, typeUrl: string, name: string) {
  return client.status().types.find((t) => t.typeUrl === typeUrl)?.resources.find((r) => r.name === name);
}

describe('LDS warming order and initialization', () => {
  it('requests LDS only after the clusters and the CLAs of warming clusters, and initializes after the first LDS response', async () => {
    const h = await harness((s) => {
      s.setClusters([edsCluster('c1')]);
      s.setListeners([listener('l1', 10001)]);
    });
    await h.server.waitFor(() => h.server.requestsFor(EDS_TYPE_URL).length > 0, 5000, 'EDS request');
    assert.equal(h.server.requestsFor(LDS_TYPE_URL).length, 0, 'no LDS request while cluster c1 warms');
    assert.equal(h.client.isReady, false);
    const edsAt = h.server.requests.length;
    h.server.setEndpoints([cla('c1', [['10.0.0.1', 80]])]);
    h.server.push(EDS_TYPE_URL);
    await h.client.initialized;
    const ldsAt = h.server.requests.findIndex((r) => r.typeUrl === LDS_TYPE_URL);
    assert.ok(ldsAt >= edsAt, 'LDS first requested after the CLA arrived');
    assert.deepEqual(h.server.requests[ldsAt]?.resourceNames, [], 'LDS is wildcard');
    assert.deepEqual(h.listeners.names(), ['l1'], 'initialized only once the listeners were delivered');
  });

  it('without lds the client never requests listeners; lds without a listener sink is refused', async () => {
    const h = await harness((s) => s.setClusters([staticCluster('s', 1)]), { lds: undefined });
    await h.client.initialized;
    await h.server.waitFor(() => h.server.requestsFor(CDS_TYPE_URL).length >= 2, 5000, 'CDS ACK');
    assert.equal(h.server.requestsFor(LDS_TYPE_URL).length, 0);
    assert.throws(() => new AdsClient({ target: '127.0.0.1:1', node: {}, sink: h.cm, lds: {} }), (e: Error & { code?: string }) => e.code === 'PWS_ERR_CONFIG' && /lds_config/.test(e.message));
  });

  it("LDS initial_fetch_timeout ends the wait, and initialization waits for the RDS names watched meanwhile", async () => {
    const h = await harness((s) => s.setClusters([staticCluster('s', 1)]), { lds: { initialFetchTimeoutMs: 50 } });
    // A static listener's HCM watches its route configuration before initialization.
    const w = h.client.watch(RDS_TYPE_URL, 'static-routes');
    await until(() => h.events.some((e) => e.type === 'initialized') || h.client.counters().dynamic?.['lds']?.init_fetch_timeout === 1, 5000, 'LDS timeout');
    assert.equal(h.client.isReady, false, 'still waiting for the watched route configuration');
    h.server.setRoutes([routeConfig('static-routes', 's')]);
    h.server.push(RDS_TYPE_URL);
    await h.client.initialized;
    assert.ok(h.routes.current.has('static-routes'));
    assert.ok(h.events.some((e) => e.type === 'initialized' && e.reason === 'timeout'));
    w.dispose();
  });
});

describe('SotW LDS: delivery, change, removal, NACKs', () => {
  let h: Harness;
  before(async () => {
    h = await harness((s) => {
      s.setClusters([staticCluster('s', 1)]);
      s.setListeners([listener('l1', 10001), listener('l2', 10002)]);
    });
    await h.client.initialized;
  });

  it('delivers listeners as proto3 JSON with Any resolved and ACKs', async () => {
    assert.deepEqual(h.listeners.names(), ['l1', 'l2']);
    const l1 = h.listeners.current.get('l1')!;
    const hcm = ((l1.resource['filter_chains'] as { filters: { typed_config: Record<string, unknown> }[] }[])[0]!.filters[0]!.typed_config);
    assert.equal(hcm['@type'], 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager');
    assert.equal((hcm['rds'] as { route_config_name: string }).route_config_name, 'l1-routes');
    const o = await h.server.lastOutcome(LDS_TYPE_URL);
    assert.equal(o.ack, true);
    assert.equal(l1.version, h.server.version(LDS_TYPE_URL));
    assert.equal(statusOf(h.client, LDS_TYPE_URL, 'l1')?.status, 'ACKED');
    assert.equal(statusOf(h.client, LDS_TYPE_URL, 'l1')?.resource?.['name'], 'l1');
  });

  it('a change delivers only the changed listener; one left out is removed', async () => {
    const n = h.listeners.updates.length;
    h.server.setListeners([listener('l1', 10001, 'other-routes')]);
    h.server.push(LDS_TYPE_URL);
    assert.equal((await h.server.lastOutcome(LDS_TYPE_URL)).ack, true);
    const u = h.listeners.updates.slice(n);
    assert.equal(u.length, 1);
    assert.deepEqual(u[0]!.resources.map((r) => r.name), ['l1']);
    assert.deepEqual(u[0]!.removed, ['l2']);
    assert.equal(statusOf(h.client, LDS_TYPE_URL, 'l2'), undefined);
  });

  it('an unchanged resend is ACKed without a delivery', async () => {
    const n = h.listeners.updates.length;
    h.server.setListeners([listener('l1', 10001, 'other-routes')]);
    h.server.sendRaw({ type_url: LDS_TYPE_URL, version_info: 'same', resources: [h.server.encodeAny(LDS_TYPE_URL, listener('l1', 10001, 'other-routes'))] });
    assert.equal((await h.server.lastOutcome(LDS_TYPE_URL)).ack, true);
    assert.equal(h.listeners.updates.length, n);
    assert.equal(h.client.versionInfo(LDS_TYPE_URL), 'same');
  });

  it('a listener failing validation rejects the whole response: no sibling applied, nothing removed', async () => {
    const before = h.client.versionInfo(LDS_TYPE_URL);
    const n = h.listeners.updates.length;
    const bad = { ...listener('bad', 10003), address: { socket_address: { address: '127.0.0.1', port_value: 70000 } } };
    h.server.setListeners([listener('fresh', 10004), bad]);
    h.server.push(LDS_TYPE_URL);
    const o = await h.server.lastOutcome(LDS_TYPE_URL);
    assert.equal(o.ack, false);
    assert.ok(!o.ack && /LDS 'bad': address\.socket_address\.port_value: value must be <= 65535/.test(o.detail), !o.ack ? o.detail : '');
    assert.ok(!o.ack && o.version === before && o.code === 13);
    assert.equal(h.listeners.updates.length, n, 'the sink was not called');
    assert.deepEqual(h.listeners.names(), ['l1'], 'l1 (left out) kept, fresh not added');
    const st = statusOf(h.client, LDS_TYPE_URL, 'bad');
    assert.equal(st?.status, 'NACKED');
    assert.match(st?.error?.details ?? '', /port_value/);
  });

  it("a listener that fails to build is rejected alone, with the reason; the last good one keeps serving", async () => {
    const before = h.client.versionInfo(LDS_TYPE_URL);
    // stat_prefix min_len lives inside the HCM typed_config: Envoy finds it building that listener.
    h.server.setListeners([listener('l1', 10001, 'other-routes', { statPrefix: '' }), listener('l5', 10005)]);
    h.server.push(LDS_TYPE_URL);
    const o = await h.server.lastOutcome(LDS_TYPE_URL);
    assert.ok(!o.ack && /LDS 'l1': .*stat_prefix: value length must be at least 1/.test(o.detail), !o.ack ? o.detail : 'ACKed');
    assert.equal(o.version, before);
    assert.deepEqual(h.listeners.names(), ['l1', 'l5'], 'l5 applied; l1 as it was');
    assert.equal(((h.listeners.current.get('l1')!.resource['filter_chains'] as { filters: { typed_config: { stat_prefix: string } }[] }[])[0]!.filters[0]!.typed_config.stat_prefix), 'l1');
    const st = statusOf(h.client, LDS_TYPE_URL, 'l1');
    assert.equal(st?.status, 'NACKED');
    assert.equal(st?.resource?.['name'], 'l1', 'the accepted listener stays in the status');
  });

  it('a build error the listener manager returns NACKs with its reason', async () => {
    h.listeners.refuse.set('l6', 'filter chain uses an unsupported filter');
    h.server.setListeners([listener('l1', 10001), listener('l5', 10005), listener('l6', 10006)]);
    h.server.push(LDS_TYPE_URL);
    const o = await h.server.lastOutcome(LDS_TYPE_URL);
    assert.ok(!o.ack && /LDS 'l6': filter chain uses an unsupported filter/.test(o.detail));
    assert.equal(statusOf(h.client, LDS_TYPE_URL, 'l1')?.status, 'ACKED', 'the fixed l1 applied');
    assert.equal(statusOf(h.client, LDS_TYPE_URL, 'l6')?.status, 'NACKED');
    assert.ok((h.client.counters().dynamic?.['lds']?.update_rejected ?? 0) >= 3);
    const lastError = h.client.status().types.find((t) => t.typeUrl === LDS_TYPE_URL)?.lastError;
    assert.match(lastError?.details ?? '', /l6/);
  });
});

describe('SotW RDS and ECDS: named subscriptions', () => {
  let h: Harness;
  before(async () => {
    h = await harness((s) => {
      s.setClusters([staticCluster('s', 1)]);
      s.setRoutes([routeConfig('r1', 's'), routeConfig('r2', 's')]);
      s.setExtensionConfigs([wasmExtension('plugin-a', 'a1')]);
    }, { lds: undefined });
    await h.client.initialized;
  });

  it('requests nothing until watched; watching asks for the name and delivers it', async () => {
    assert.equal(h.server.requestsFor(RDS_TYPE_URL).length, 0);
    const w = h.client.watch(RDS_TYPE_URL, 'r1');
    await until(() => h.routes.current.has('r1'), 5000, 'r1 delivered');
    assert.deepEqual(h.server.requestsFor(RDS_TYPE_URL)[0]?.resourceNames, ['r1']);
    assert.equal((await h.server.lastOutcome(RDS_TYPE_URL)).ack, true);
    assert.equal(h.routes.current.has('r2'), false, 'r2 is not requested');
    assert.equal(statusOf(h.client, RDS_TYPE_URL, 'r1')?.status, 'ACKED');
    void w;
  });

  it('ignores resources it did not request', async () => {
    const n = h.routes.updates.length;
    h.server.sendRaw({ type_url: RDS_TYPE_URL, version_info: 'extra', resources: [h.server.encodeAny(RDS_TYPE_URL, routeConfig('r1', 's')), h.server.encodeAny(RDS_TYPE_URL, routeConfig('zzz', 's'))] });
    assert.equal((await h.server.lastOutcome(RDS_TYPE_URL)).ack, true);
    assert.equal(h.routes.updates.length, n);
    assert.equal(statusOf(h.client, RDS_TYPE_URL, 'zzz'), undefined);
  });

  it('watches in one tick are one request; reference counts decide the unsubscription and its removal', async () => {
    const n = h.server.requestsFor(RDS_TYPE_URL).length;
    const a = h.client.watch(RDS_TYPE_URL, 'r2');
    const b = h.client.watch(RDS_TYPE_URL, 'r2');
    const c = h.client.watch(RDS_TYPE_URL, 'r3');
    await until(() => h.routes.current.has('r2'), 5000, 'r2 delivered');
    const sent = h.server.requestsFor(RDS_TYPE_URL).slice(n);
    assert.deepEqual(sent[0]?.resourceNames, ['r1', 'r2', 'r3'], 'the three watches of one tick went out as one request');
    a.dispose();
    await new Promise<void>((resolve) => setImmediate(resolve)); // past the flush of the disposal
    assert.ok(h.routes.current.has('r2'), 'still watched by b');
    assert.equal(statusOf(h.client, RDS_TYPE_URL, 'r2')?.status, 'ACKED');
    const m = h.server.requestsFor(RDS_TYPE_URL).length;
    b.dispose();
    c.dispose();
    await until(() => !h.routes.current.has('r2'), 5000, 'r2 removed from the sink');
    await h.server.waitFor(() => h.server.requestsFor(RDS_TYPE_URL).slice(m).some((r) => r.resourceNames.join() === 'r1'), 5000, 'unsubscription');
    assert.equal(statusOf(h.client, RDS_TYPE_URL, 'r2'), undefined);
    assert.equal(statusOf(h.client, RDS_TYPE_URL, 'r3'), undefined);
  });

  it('a bad route configuration is NACKed with the reason while the last good one stays', async () => {
    const before = h.client.versionInfo(RDS_TYPE_URL);
    h.server.setRoutes([routeConfig('r1', 's', [])]);
    h.server.push(RDS_TYPE_URL);
    const o = await h.server.lastOutcome(RDS_TYPE_URL);
    assert.ok(!o.ack && /RDS 'r1': virtual_hosts\[0\]\.domains: /.test(o.detail), !o.ack ? o.detail : 'ACKed');
    assert.equal(o.version, before);
    assert.deepEqual((h.routes.current.get('r1')!.resource['virtual_hosts'] as { domains: string[] }[])[0]!.domains, ['*']);
    assert.equal(statusOf(h.client, RDS_TYPE_URL, 'r1')?.status, 'NACKED');
    h.server.setRoutes([routeConfig('r1', 's', ['a.example'])]);
    h.server.push(RDS_TYPE_URL);
    assert.equal((await h.server.lastOutcome(RDS_TYPE_URL)).ack, true);
    assert.equal(statusOf(h.client, RDS_TYPE_URL, 'r1')?.status, 'ACKED');
    assert.equal(statusOf(h.client, RDS_TYPE_URL, 'r1')?.error, undefined);
  });

  it('a watched name that never comes is DOES_NOT_EXIST after its initial_fetch_timeout, and applied when it comes', async () => {
    const w = h.client.watch(RDS_TYPE_URL, 'late', { initialFetchTimeoutMs: 50 });
    await until(() => h.routes.missingNames.includes('late'), 5000, 'missing');
    assert.equal(statusOf(h.client, RDS_TYPE_URL, 'late')?.status, 'DOES_NOT_EXIST');
    assert.ok(h.events.some((e) => e.type === 'does-not-exist' && e.typeUrl === RDS_TYPE_URL && e.names.includes('late')));
    h.server.upsert(RDS_TYPE_URL, [routeConfig('late', 's')]);
    h.server.push(RDS_TYPE_URL);
    await until(() => h.routes.current.has('late'), 5000, 'late delivered');
    assert.equal(statusOf(h.client, RDS_TYPE_URL, 'late')?.status, 'ACKED');
    w.dispose();
  });

  it('ECDS: delivers a watched extension config and NACKs one without typed_config, keeping the last good', async () => {
    const w = h.client.watch(ECDS_TYPE_URL, 'plugin-a');
    await until(() => h.ecds.current.has('plugin-a'), 5000, 'plugin-a delivered');
    const tc = h.ecds.current.get('plugin-a')!.resource['typed_config'] as { '@type': string; config: { configuration: { value: string } } };
    assert.equal(tc['@type'], 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm');
    assert.equal(tc.config.configuration.value, 'a1');
    h.server.setExtensionConfigs([{ name: 'plugin-a' }]);
    h.server.push(ECDS_TYPE_URL);
    const o = await h.server.lastOutcome(ECDS_TYPE_URL);
    assert.ok(!o.ack && /ECDS 'plugin-a': typed_config: value is required/.test(o.detail), !o.ack ? o.detail : 'ACKed');
    assert.equal((h.ecds.current.get('plugin-a')!.resource['typed_config'] as typeof tc).config.configuration.value, 'a1');
    h.ecds.refuse.set('plugin-a', 'plugin failed to load: bad magic');
    h.server.setExtensionConfigs([wasmExtension('plugin-a', 'a2')]);
    h.server.push(ECDS_TYPE_URL);
    const o2 = await h.server.lastOutcome(ECDS_TYPE_URL);
    assert.ok(!o2.ack && /plugin failed to load: bad magic/.test(o2.detail));
    assert.equal(statusOf(h.client, ECDS_TYPE_URL, 'plugin-a')?.status, 'NACKED');
    w.dispose();
  });

  it('watching a type without a sink, or a wildcard type, is refused', () => {
    assert.throws(() => h.client.watch(LDS_TYPE_URL, 'x'), /cannot be watched/);
    assert.throws(() => h.client.watch(CDS_TYPE_URL, 'x'), /cannot be watched/);
  });
});

describe('Delta: LDS, RDS, ECDS', () => {
  let h: Harness;
  before(async () => {
    h = await harness((s) => {
      s.setClusters([staticCluster('s', 1)]);
      s.setListeners([listener('d1', 10011, 'dr1'), listener('d2', 10012, 'dr2')]);
      s.setRoutes([routeConfig('dr1', 's'), routeConfig('dr2', 's')]);
      s.setExtensionConfigs([wasmExtension('de1', 'x')]);
    }, { apiType: 'DELTA_GRPC' });
    await h.client.initialized;
  });

  it('subscribes "*" to LDS and names to RDS, with subscribe/unsubscribe diffs', async () => {
    assert.deepEqual(h.listeners.names(), ['d1', 'd2']);
    assert.deepEqual(h.server.requestsFor(LDS_TYPE_URL)[0]?.subscribe, ['*']);
    const w1 = h.client.watch(RDS_TYPE_URL, 'dr1');
    const w2 = h.client.watch(RDS_TYPE_URL, 'dr2');
    await until(() => h.routes.current.size === 2, 5000, 'routes delivered');
    const first = h.server.requestsFor(RDS_TYPE_URL)[0];
    assert.deepEqual([...(first?.subscribe ?? [])].sort(), ['dr1', 'dr2']);
    assert.equal(first?.responseNonce, '');
    const n = h.server.requestsFor(RDS_TYPE_URL).length;
    w2.dispose();
    await h.server.waitFor(() => h.server.requestsFor(RDS_TYPE_URL).slice(n).some((r) => r.unsubscribe.includes('dr2')), 5000, 'unsubscribe');
    await until(() => !h.routes.current.has('dr2'), 5000, 'dr2 removed');
    void w1;
  });

  it('removed_resources removes a listener; a bad one is NACKed and changes nothing', async () => {
    h.server.remove(LDS_TYPE_URL, ['d2']);
    h.server.push(LDS_TYPE_URL);
    await until(() => !h.listeners.current.has('d2'), 5000, 'd2 removed');
    assert.equal((await h.server.lastOutcome(LDS_TYPE_URL)).ack, true);
    const n = h.listeners.updates.length;
    h.server.upsert(LDS_TYPE_URL, [{ ...listener('d3', 10013), address: { socket_address: { address: '127.0.0.1', port_value: 70000 } } }, listener('d4', 10014)]);
    h.server.push(LDS_TYPE_URL);
    const o = await h.server.lastOutcome(LDS_TYPE_URL);
    assert.ok(!o.ack && /LDS 'd3'/.test(o.detail));
    assert.equal(h.listeners.updates.length, n);
    assert.deepEqual(h.listeners.names(), ['d1']);
  });

  it('ECDS over Delta, and a reconnect resubscribes every type with initial_resource_versions', async () => {
    const w = h.client.watch(ECDS_TYPE_URL, 'de1');
    await until(() => h.ecds.current.has('de1'), 5000, 'de1');
    const n = h.server.requests.length;
    h.server.killStreams();
    await h.server.waitFor(() => [LDS_TYPE_URL, RDS_TYPE_URL, ECDS_TYPE_URL].every((t) => h.server.requests.slice(n).some((r) => r.typeUrl === t)), 10_000, 'resubscription');
    const fresh = h.server.requests.slice(n);
    const lds = fresh.find((r) => r.typeUrl === LDS_TYPE_URL)!;
    assert.deepEqual(lds.subscribe, ['*']);
    assert.deepEqual(Object.keys(lds.initialResourceVersions), ['d1']);
    const ecds = fresh.find((r) => r.typeUrl === ECDS_TYPE_URL)!;
    assert.deepEqual(ecds.subscribe, ['de1']);
    assert.ok(ecds.initialResourceVersions['de1']);
    const order = fresh.map((r) => r.typeUrl).filter((t, i, a) => a.indexOf(t) === i);
    assert.deepEqual(order.slice(0, 1), [CDS_TYPE_URL], 'CDS first on the new stream');
    assert.ok(order.indexOf(LDS_TYPE_URL) < order.indexOf(RDS_TYPE_URL), 'LDS before RDS');
    w.dispose();
  });
});

describe('CDS all-or-nothing (issue 11)', () => {
  it('a SotW CDS response that carries one invalid cluster changes nothing at all (no cluster removed, no valid sibling half-applied)', async () => {
    const h = await harness((s) => {
      s.setClusters([staticCluster('keep', 7001), staticCluster('change', 7002)]);
    }, { lds: undefined });
    await h.client.initialized;
    const version = h.client.versionInfo(CDS_TYPE_URL);
    const hashBefore = h.cm.configOf('change')?.hash;
    const events: string[] = [];
    h.cm.onEvent((e) => events.push(e.type));
    // 'keep' left out (would be removed), 'change' changed, 'added' new, 'bad' invalid (PGV: connect_timeout > 0).
    h.server.setClusters([staticCluster('change', 7999), staticCluster('added', 7003), { ...staticCluster('bad', 7004), connect_timeout: '0s' }]);
    h.server.push(CDS_TYPE_URL);
    const o = await h.server.lastOutcome(CDS_TYPE_URL);
    assert.ok(!o.ack && /cluster 'bad'/.test(o.detail));
    assert.equal(o.version, version);
    assert.equal(h.client.versionInfo(CDS_TYPE_URL), version);
    assert.ok(h.cm.configOf('keep'), 'no cluster removed');
    assert.equal(h.cm.configOf('change')?.hash, hashBefore, 'the valid change not applied');
    assert.equal(h.cm.configOf('added'), undefined, 'the valid new cluster not added');
    assert.deepEqual(events, [], 'the cluster manager saw nothing');
  });
});

describe('TTL of delivered resources', () => {
  it('an LDS listener whose TTL runs out is removed; sent again it is back', async () => {
    const h = await harness((s) => {
      s.setClusters([staticCluster('s', 1)]);
      s.setListeners([listener('ttl', 10022)], { ttlMs: 100 });
    });
    await h.client.initialized;
    assert.deepEqual(h.listeners.names(), ['ttl'], 'delivered from inside its Resource wrapper');
    await until(() => !h.listeners.current.has('ttl'), 5000, 'ttl expired');
    assert.deepEqual(h.listeners.updates.at(-1)?.removed, ['ttl']);
    assert.equal(statusOf(h.client, LDS_TYPE_URL, 'ttl'), undefined);
    h.server.setListeners([listener('ttl', 10022, 'new-routes')]);
    h.server.push(LDS_TYPE_URL);
    await until(() => h.listeners.current.has('ttl'), 5000, 'ttl back');
    assert.equal(statusOf(h.client, LDS_TYPE_URL, 'ttl')?.status, 'ACKED');
  });
});
