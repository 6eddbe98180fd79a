import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AdsClient } from '../../src/xds/ads-client';
import { EDS_TYPE_URL } from '../../src/xds/protos';
import type { AnyMessage } from '../../src/xds/protos';
import type { ClusterManager } from '../../src/upstream/cluster-manager';
import { XdsTestServer } from '../support/xds-server';
import { cla, edsCluster, hostKeys, recordingManager, until } from '../support/xds-fixtures';

/**
 * SotW EDS responses are read lazily: unchanged CLAs are recognised by position or by name without decoding.
 * These check that the shortcut keeps the protocol's outcomes when the order changes or names repeat.
 */
describe('SotW EDS: unchanged CLAs are skipped, whatever the order', () => {
  let server: XdsTestServer;
  let client: AdsClient;
  let cm: ClusterManager;
  const names = ['e0', 'e1', 'e2', 'e3'];
  let anys: AnyMessage[];

  before(async () => {
    server = await XdsTestServer.start();
    server.setClusters(names.map((n) => edsCluster(n)));
    server.setEndpoints(names.map((n, i) => cla(n, [['10.9.0.' + (i + 1), 1]])));
    ({ cm } = recordingManager());
    client = new AdsClient({ target: server.target, node: { id: 'sotw-eds' }, sink: cm, initialFetchTimeoutMs: 0 });
    client.start();
    await client.initialized;
    anys = names.map((n, i) => server.encodeAny(EDS_TYPE_URL, cla(n, [['10.9.0.' + (i + 1), 1]])));
  });

  after(async () => {
    await client.close();
    cm.close();
    await server.close();
  });

  async function send(resources: AnyMessage[], version: string): Promise<{ nack: string | undefined }> {
    const nonce = server.sendRaw({ type_url: EDS_TYPE_URL, version_info: version, resources });
    await server.waitFor(() => server.replyTo(nonce) !== undefined, 5000, `reply to ${version}`);
    return { nack: server.replyTo(nonce)?.errorDetail?.message };
  }

  it('applies a change in a reordered response and keeps the rest', async () => {
    const changed = server.encodeAny(EDS_TYPE_URL, cla('e2', [['10.9.1.3', 1]]));
    const success0 = client.counters().eds['e0']?.update_success ?? 0;
    const r = await send([anys[3]!, changed, anys[1]!, anys[0]!], 'v-reorder');
    assert.equal(r.nack, undefined);
    assert.deepEqual(hostKeys(cm, 'e2'), ['10.9.1.3:1']);
    assert.deepEqual(hostKeys(cm, 'e0'), ['10.9.0.1:1']);
    assert.deepEqual(hostKeys(cm, 'e3'), ['10.9.0.4:1']);
    assert.equal(client.counters().eds['e0']?.update_success, success0 + 1, 'an unchanged CLA still counts as an update, as in Envoy');
    anys[2] = changed;
  });

  it('rejects an unchanged CLA sent twice, and the changed one beside it still applies', async () => {
    const changed = server.encodeAny(EDS_TYPE_URL, cla('e1', [['10.9.2.2', 1]]));
    const r = await send([anys[0]!, changed, anys[2]!, anys[3]!, anys[0]!], 'v-dup');
    assert.match(r.nack ?? '', /more than one ClusterLoadAssignment for 'e0'/);
    assert.equal(client.versionInfo(EDS_TYPE_URL), 'v-reorder');
    assert.deepEqual(hostKeys(cm, 'e0'), ['10.9.0.1:1']);
    assert.deepEqual(hostKeys(cm, 'e1'), ['10.9.2.2:1'], "valid CLAs are applied (Envoy's partial acceptance)");
    anys[1] = changed;
  });

  it('a CLA failing validation rejects the whole response: a changed sibling is not applied either', async () => {
    const changed = server.encodeAny(EDS_TYPE_URL, cla('e0', [['10.9.7.7', 7]]));
    const bad = server.encodeAny(EDS_TYPE_URL, cla('e3', [['10.9.3.4', 70000]]));
    const rejected0 = client.counters().eds['e0']?.update_rejected ?? 0;
    const r = await send([changed, anys[1]!, anys[2]!, bad], 'v-bad-sibling');
    assert.match(r.nack ?? '', /ClusterLoadAssignment 'e3'/);
    assert.deepEqual(hostKeys(cm, 'e0'), ['10.9.0.1:1'], 'the valid change beside an invalid CLA is not applied (Envoy decodes the response first)');
    assert.equal(client.counters().eds['e0']?.update_rejected, rejected0 + 1);
  });

  it('re-applies after a NACK: the same bytes again at the same place are not mistaken for accepted ones', async () => {
    const bad = server.encodeAny(EDS_TYPE_URL, cla('e3', [['10.9.3.4', 70000]]));
    const r1 = await send([anys[0]!, anys[1]!, anys[2]!, bad], 'v-bad');
    assert.match(r1.nack ?? '', /ClusterLoadAssignment 'e3'/);
    assert.deepEqual(hostKeys(cm, 'e3'), ['10.9.0.4:1']);
    const good = server.encodeAny(EDS_TYPE_URL, cla('e3', [['10.9.3.4', 4]]));
    const r2 = await send([anys[0]!, anys[1]!, anys[2]!, good], 'v-good');
    assert.equal(r2.nack, undefined);
    assert.deepEqual(hostKeys(cm, 'e3'), ['10.9.3.4:4']);
    await until(() => client.versionInfo(EDS_TYPE_URL) === 'v-good', 1000, 'version');
  });
});

/**
 * Unchanged runs are found by comparing byte ranges of consecutive responses and bisecting where they differ.
 * Changes of other lengths shift everything after them; every CLA must still end up exactly as sent.
 */
describe('SotW EDS: changes found by range bisection', () => {
  let server: XdsTestServer;
  let client: AdsClient;
  let cm: ClusterManager;
  const N = 40;
  const names = Array.from({ length: N }, (_, i) => `b${i}`);
  const hostsOf = (i: number, gen: number): [string, number][] => Array.from({ length: 1 + ((i + gen) % 3) }, (_, k) => [`10.8.${i}.${k + 1 + gen * 10}`, 6000 + gen]);

  before(async () => {
    server = await XdsTestServer.start();
    server.setClusters(names.map((n) => edsCluster(n)));
    server.setEndpoints(names.map((n, i) => cla(n, hostsOf(i, 0))));
    ({ cm } = recordingManager());
    client = new AdsClient({ target: server.target, node: { id: 'bisect' }, sink: cm, initialFetchTimeoutMs: 0 });
    client.start();
    await client.initialized;
  });

  after(async () => {
    await client.close();
    cm.close();
    await server.close();
  });

  it('applies scattered changes of different sizes and keeps the rest, push after push', async () => {
    const gen = new Array<number>(N).fill(0);
    const rounds = [[0], [39], [5, 6, 20], [1, 17, 38], [10], [0, 39], [22, 23, 24, 25]];
    for (const changed of rounds) {
      for (const i of changed) gen[i]! += 1;
      server.upsert(EDS_TYPE_URL, changed.map((i) => cla(names[i]!, hostsOf(i, gen[i]!))));
      server.push(EDS_TYPE_URL);
      const o = await server.lastOutcome(EDS_TYPE_URL);
      assert.equal(o.ack, true);
      for (let i = 0; i < N; i++) {
        assert.deepEqual(hostKeys(cm, names[i]!), hostsOf(i, gen[i]!).map(([a, p]) => `${a}:${p}`).sort(), `${names[i]} after changing ${changed.join(',')}`);
      }
    }
    assert.equal(client.counters().eds['b3']?.update_success, 1 + rounds.length, 'unchanged CLAs still count an update each');
  });
});
