import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { AdsClient, type AdsClientOptions, type XdsEvent } from '../../src/xds/ads-client';
import { CDS_TYPE_URL, EDS_TYPE_URL } from '../../src/xds/protos';
import type { ResourceStatusKind } from '../../src/xds/status';
import type { ClusterEvent, ClusterManager } from '../../src/upstream/cluster-manager';
import { XdsTestServer } from '../support/xds-server';
import { cla, edsCluster, hostKeys, recordingManager, until } from '../support/xds-fixtures';

/** The does-not-exist timer (xds.md §4) and resource TTLs (xds.md §7), against the real control plane. */

interface Harness {
  server: XdsTestServer;
  client: AdsClient;
  cm: ClusterManager;
  events: ClusterEvent[];
  xdsEvents: XdsEvent[];
}

const open: Harness[] = [];

after(async () => {
  for (const { server, client, cm } of open) {
    await client.close();
    cm.close();
    await server.close();
  }
});

async function harness(setup: (s: XdsTestServer) => void, opts: Partial<AdsClientOptions> = {}): Promise<Harness> {
  const server = await XdsTestServer.start();
  setup(server);
  const { cm, events } = recordingManager();
  const client = new AdsClient({ target: server.target, node: { id: 'timers' }, sink: cm, backoff: { baseMs: 20, maxMs: 200 }, initialFetchTimeoutMs: 0, ...opts });
  const xdsEvents: XdsEvent[] = [];
  client.onEvent((e) => xdsEvents.push(e));
  const h = { server, client, cm, events, xdsEvents };
  open.push(h);
  client.start();
  return h;
}

function statusOf(client: AdsClient, typeUrl: string, name: string): ResourceStatusKind | undefined {
  return client.status().types.find((t) => t.typeUrl === typeUrl)?.resources.find((r) => r.name === name)?.status;
}

/** Sends heartbeats every `everyMs` until the returned function is called. */
function heartbeats(server: XdsTestServer, typeUrl: string, everyMs: number): () => void {
  const t = setInterval(() => server.heartbeat(typeUrl), everyMs);
  return () => clearInterval(t);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('does-not-exist timer (SotW EDS)', () => {
  it('marks a CLA that never comes DOES_NOT_EXIST, warms its cluster empty, and applies it when it comes', async () => {
    const h = await harness(
      (s) => {
        s.setClusters([edsCluster('present'), edsCluster('ghost')]);
        s.setEndpoints([cla('present', [['10.7.0.1', 1]])]);
      },
      { resourceTimeoutMs: 200 },
    );
    await until(() => h.cm.get('present') !== undefined, 5000, 'present active');
    assert.equal(h.cm.get('ghost'), undefined, 'ghost is still warming');
    assert.equal(h.client.isReady, false, 'a warming EDS cluster blocks initialization');
    assert.equal(statusOf(h.client, EDS_TYPE_URL, 'ghost'), 'REQUESTED');

    await h.client.initialized;
    assert.ok(h.xdsEvents.some((e) => e.type === 'initialized' && e.reason === 'fetched'));
    assert.equal(statusOf(h.client, EDS_TYPE_URL, 'ghost'), 'DOES_NOT_EXIST');
    assert.equal(statusOf(h.client, EDS_TYPE_URL, 'present'), 'ACKED');
    assert.ok(h.cm.get('ghost'), 'the cluster finished warming');
    assert.deepEqual(hostKeys(h.cm, 'ghost'), [], '... with no hosts');
    assert.equal(h.client.counters().eds['ghost']?.init_fetch_timeout, 1);
    assert.equal(h.client.counters().eds['present']?.init_fetch_timeout, 0);
    assert.deepEqual(hostKeys(h.cm, 'present'), ['10.7.0.1:1']);

    // A resource that appears later is applied.
    h.server.upsert(EDS_TYPE_URL, [cla('ghost', [['10.7.0.2', 2]])]);
    h.server.push(EDS_TYPE_URL);
    await until(() => hostKeys(h.cm, 'ghost').length === 1, 5000, 'late CLA applied');
    assert.deepEqual(hostKeys(h.cm, 'ghost'), ['10.7.0.2:2']);
    assert.equal(statusOf(h.client, EDS_TYPE_URL, 'ghost'), 'ACKED');
    assert.ok(h.events.some((e) => e.type === 'membership' && e.cluster.name === 'ghost'));
  });

  it("uses each cluster's own eds_config.initial_fetch_timeout, as Envoy's EDS subscriptions do; 0 keeps the client's timer", async () => {
    const quick = { ...edsCluster('quick'), eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3', initial_fetch_timeout: '0.2s' } } };
    const patient = { ...edsCluster('patient'), eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3', initial_fetch_timeout: '0s' } } };
    // The client-wide default is far away: only the clusters' own timeouts can end the warming in time.
    const h = await harness((s) => s.setClusters([quick, patient, edsCluster('default-timeout')]), { resourceTimeoutMs: 600_000 });
    await until(() => statusOf(h.client, EDS_TYPE_URL, 'quick') === 'DOES_NOT_EXIST', 10_000, 'quick timed out');
    assert.ok(h.cm.get('quick'), 'quick finished warming with no hosts');
    assert.deepEqual(hostKeys(h.cm, 'quick'), []);
    assert.equal(statusOf(h.client, EDS_TYPE_URL, 'patient'), 'REQUESTED', 'initial_fetch_timeout 0s: the client timer (600 s here)');
    assert.equal(statusOf(h.client, EDS_TYPE_URL, 'default-timeout'), 'REQUESTED');
    assert.equal(h.cm.get('patient'), undefined);
  });

  it('starts for names subscribed later, and not for names that arrive in time', async () => {
    const h = await harness(
      (s) => {
        s.setClusters([edsCluster('first')]);
        s.setEndpoints([cla('first', [['10.7.1.1', 1]])]);
      },
      { resourceTimeoutMs: 150 },
    );
    await h.client.initialized;
    h.server.upsert(CDS_TYPE_URL, [edsCluster('later')]);
    h.server.push(CDS_TYPE_URL);
    await until(() => statusOf(h.client, EDS_TYPE_URL, 'later') === 'DOES_NOT_EXIST', 5000, 'later timed out');
    assert.ok(h.cm.get('later'));
    assert.equal(statusOf(h.client, EDS_TYPE_URL, 'first'), 'ACKED');
    assert.equal(h.client.counters().eds['first']?.init_fetch_timeout, 0);
  });
});

describe('resource TTL', () => {
  it('SotW EDS: heartbeats keep a CLA, expiry removes its hosts, a resend brings them back', async () => {
    const h = await harness((s) => {
      s.setClusters([edsCluster('ttl-eds')]);
      s.setEndpoints([cla('ttl-eds', [['10.8.0.1', 1]])], { ttlMs: 300 });
    });
    await h.client.initialized;
    assert.deepEqual(hostKeys(h.cm, 'ttl-eds'), ['10.8.0.1:1']);
    const acks = (): number => h.xdsEvents.filter((e) => e.type === 'ack' && e.typeUrl === EDS_TYPE_URL).length;
    const acks0 = acks();
    const stop = heartbeats(h.server, EDS_TYPE_URL, 100);
    try {
      await until(() => acks() >= acks0 + 6, 5000, 'six heartbeats ACKed'); // ~600 ms, twice the TTL
      assert.deepEqual(hostKeys(h.cm, 'ttl-eds'), ['10.8.0.1:1'], 'heartbeats refresh the TTL');
    } finally {
      stop();
    }
    await until(() => hostKeys(h.cm, 'ttl-eds').length === 0, 5000, 'TTL expiry');
    assert.ok(h.cm.get('ttl-eds'), 'the cluster keeps its config');
    assert.equal(statusOf(h.client, EDS_TYPE_URL, 'ttl-eds'), 'DOES_NOT_EXIST');
    assert.ok(h.events.some((e) => e.type === 'membership' && e.cluster.name === 'ttl-eds' && e.removed.length === 1));

    // The same CLA again, without a TTL: applied, and it stays.
    h.server.setEndpoints([cla('ttl-eds', [['10.8.0.1', 1]])]);
    h.server.push(EDS_TYPE_URL);
    await until(() => hostKeys(h.cm, 'ttl-eds').length === 1, 5000, 'resent CLA applied');
    assert.equal(statusOf(h.client, EDS_TYPE_URL, 'ttl-eds'), 'ACKED');
  });

  it('SotW EDS: a resend with a new TTL refreshes it; a resend without TTL removes the timer', async () => {
    const h = await harness((s) => {
      s.setClusters([edsCluster('ttl-a'), edsCluster('ttl-b')]);
      s.setEndpoints([cla('ttl-a', [['10.8.1.1', 1]]), cla('ttl-b', [['10.8.1.2', 1]])], { ttlMs: 250 });
    });
    await h.client.initialized;
    h.server.setEndpoints([cla('ttl-a', [['10.8.1.1', 1]]), cla('ttl-b', [['10.8.1.2', 1]])], { ttlMs: 60_000 });
    h.server.push(EDS_TYPE_URL);
    await until(() => h.server.requestsFor(EDS_TYPE_URL).some((r) => r.responseNonce === h.server.lastNonce), 5000, 'ACK of the resend');
    h.server.setEndpoints([cla('ttl-a', [['10.8.1.1', 1]])], { ttlMs: 60_000 });
    h.server.upsert(EDS_TYPE_URL, [cla('ttl-b', [['10.8.1.2', 1]])]); // unwrapped: no TTL
    h.server.push(EDS_TYPE_URL);
    await until(() => h.server.requestsFor(EDS_TYPE_URL).some((r) => r.responseNonce === h.server.lastNonce), 5000, 'ACK of the second resend');
    await sleep(600); // more than twice the first TTL: nothing may expire
    assert.deepEqual(hostKeys(h.cm, 'ttl-a'), ['10.8.1.1:1']);
    assert.deepEqual(hostKeys(h.cm, 'ttl-b'), ['10.8.1.2:1']);
    assert.equal(statusOf(h.client, EDS_TYPE_URL, 'ttl-a'), 'ACKED');
  });

  it('SotW CDS: an expired cluster is removed and its EDS name unsubscribed', async () => {
    const h = await harness((s) => {
      s.setClusters([edsCluster('keep')]);
      s.setEndpoints([cla('keep', [['10.8.2.1', 1]]), cla('ttl-cds', [['10.8.2.2', 1]])]);
    });
    await h.client.initialized;
    h.server.setClusters([edsCluster('ttl-cds')], { ttlMs: 300 });
    h.server.upsert(CDS_TYPE_URL, [edsCluster('keep')]); // without a TTL
    h.server.push(CDS_TYPE_URL);
    await until(() => hostKeys(h.cm, 'ttl-cds').length === 1, 5000, 'ttl-cds active');
    const stop = heartbeats(h.server, CDS_TYPE_URL, 100);
    const cdsAcks = (): number => h.xdsEvents.filter((e) => e.type === 'ack' && e.typeUrl === CDS_TYPE_URL).length;
    const acks0 = cdsAcks();
    try {
      await until(() => cdsAcks() >= acks0 + 6, 5000, 'six CDS heartbeats ACKed');
      assert.ok(h.cm.get('ttl-cds'), 'heartbeats keep the cluster');
      assert.ok(h.cm.get('keep'), 'a heartbeat response does not remove the clusters it carries');
    } finally {
      stop();
    }
    await until(() => h.events.some((e) => e.type === 'removed' && e.name === 'ttl-cds'), 5000, 'cluster TTL expiry');
    assert.equal(h.cm.get('ttl-cds'), undefined);
    assert.ok(h.cm.get('keep'));
    assert.equal(statusOf(h.client, CDS_TYPE_URL, 'ttl-cds'), undefined);
    await h.server.waitFor(() => {
      const eds = h.server.requestsFor(EDS_TYPE_URL);
      const last = eds[eds.length - 1];
      return last !== undefined && last.resourceNames.length === 1 && last.resourceNames[0] === 'keep';
    }, 5000, 'EDS unsubscribe of the expired cluster');
  });

  it('Delta: heartbeats keep a CLA; on expiry its cluster loses its hosts', async () => {
    const h = await harness(
      (s) => {
        s.setClusters([edsCluster('dttl')]);
        s.setEndpoints([cla('dttl', [['10.8.3.1', 1]])], { ttlMs: 300 });
      },
      { apiType: 'DELTA_GRPC' },
    );
    await h.client.initialized;
    assert.deepEqual(hostKeys(h.cm, 'dttl'), ['10.8.3.1:1']);
    const acks = (): number => h.xdsEvents.filter((e) => e.type === 'ack' && e.typeUrl === EDS_TYPE_URL).length;
    const acks0 = acks();
    const stop = heartbeats(h.server, EDS_TYPE_URL, 100);
    try {
      await until(() => acks() >= acks0 + 6, 5000, 'six Delta heartbeats ACKed');
      assert.deepEqual(hostKeys(h.cm, 'dttl'), ['10.8.3.1:1']);
    } finally {
      stop();
    }
    await until(() => hostKeys(h.cm, 'dttl').length === 0, 5000, 'Delta TTL expiry');
    assert.ok(h.cm.get('dttl'));
    assert.equal(statusOf(h.client, EDS_TYPE_URL, 'dttl'), 'DOES_NOT_EXIST');
  });

  it('advertises TTL and Resource-in-SotW support in Node.client_features', async () => {
    const h = await harness((s) => s.setClusters([]), { node: { id: 'features', client_features: ['custom.feature'] } });
    await h.server.waitFor(() => h.server.requests.length > 0, 5000, 'first request');
    const features = h.server.requests[0]?.clientFeatures ?? [];
    for (const f of ['custom.feature', 'xds.config.supports-resource-ttl', 'xds.config.resource-in-sotw', 'envoy.config.supports-resource-ttl']) {
      assert.ok(features.includes(f), `missing ${f} in ${features.join(', ')}`);
    }
  });
});
