import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ClusterEvent, ClusterManager } from '../../src/upstream/cluster-manager';
import { AdsClient } from '../../src/xds/ads-client';
import { EDS_TYPE_URL } from '../../src/xds/protos';
import { XdsTestServer } from '../support/xds-server';
import { cla, edsCluster, hostKeys, recordingManager } from '../support/xds-fixtures';

/**
 * go-control-plane sends a SotW response's CLAs in a new order every time (Go map order). The client finds the
 * unchanged ones at their new index by the hash of their name's bytes and a byte comparison with the previous
 * response; these pushes put every CLA at a new index and change one, by a byte that keeps its length (the
 * comparison, not a length check, must catch it), and check that exactly that one is applied.
 */
describe('SotW EDS: a reordered response (every CLA at a new index) applies exactly its one change', () => {
  const N = 120;
  // Names of different lengths, so that runs of equal-length CLAs do not line up by chance.
  const names = Array.from({ length: N }, (_, i) => `reorder-${i}.ns${i % 7}.svc`);
  const gen = new Array<number>(N).fill(0);
  const hostsOf = (i: number): [string, number][] => [[`10.7.${i}.${gen[i]! + 1}`, 8000], [`10.6.${i}.1`, 8000]];
  const clas = (): Record<string, unknown>[] => names.map((n, i) => cla(n, hostsOf(i)));
  let server: XdsTestServer;
  let client: AdsClient;
  let cm: ClusterManager;
  let events: ClusterEvent[];
  /** The index of each CLA in the last response sent. */
  let position = names.map((_, i) => i);

  /** A permutation of the CLAs in which no CLA keeps its index (a seeded shuffle, fixed points swapped away). */
  function reorder(seed: number): number[] {
    const order = names.map((_, i) => i);
    let s = seed;
    for (let k = N - 1; k > 0; k--) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      const j = s % (k + 1);
      [order[k], order[j]] = [order[j]!, order[k]!];
    }
    for (let k = 0; k < N; k++) {
      if (position[order[k]!] === k) {
        const o = (k + 1) % N;
        [order[k], order[o]] = [order[o]!, order[k]!];
      }
    }
    return order;
  }

  async function push(order: number[]): Promise<{ ack: boolean; detail: string | undefined }> {
    const all = clas();
    server.setEndpoints(order.map((i) => all[i]!));
    server.push(EDS_TYPE_URL);
    const o = await server.lastOutcome(EDS_TYPE_URL);
    return { ack: o.ack, detail: o.ack ? undefined : o.detail };
  }

  function assertHosts(what: string): void {
    for (let i = 0; i < N; i++) {
      assert.deepEqual(hostKeys(cm, names[i]!), hostsOf(i).map(([a, p]) => `${a}:${p}`).sort(), `${names[i]} ${what}`);
    }
  }

  before(async () => {
    server = await XdsTestServer.start();
    server.setClusters(names.map((n) => edsCluster(n)));
    server.setEndpoints(clas());
    ({ cm, events } = recordingManager());
    client = new AdsClient({ target: server.target, node: { id: 'sotw-eds-reorder' }, sink: cm, initialFetchTimeoutMs: 0 });
    client.start();
    await client.initialized;
    assertHosts('at first');
  });

  after(async () => {
    await client.close();
    cm.close();
    await server.close();
  });

  it('push after push, each in a new order with one CLA changed in place of one byte', async () => {
    for (const [round, changed] of [7, 0, N - 1, 64, 7].entries()) {
      gen[changed]! += 1; // 10.7.<i>.<gen+1>: the same length for gen < 8
      const order = reorder(round + 1);
      assert.ok(order.every((c, k) => position[c] !== k), 'every CLA is at a new index');
      const success = client.counters().eds[names[3]!]!.update_success;
      const membershipBefore = events.length;
      const r = await push(order);
      position = [];
      order.forEach((c, k) => (position[c] = k));
      assert.equal(r.ack, true, r.detail);
      assertHosts(`after changing ${names[changed]} in round ${round}`);
      const touched = events.slice(membershipBefore).flatMap((e) => (e.type === 'membership' ? [e.cluster.name] : []));
      assert.deepEqual(touched, [names[changed]], 'only the changed cluster sees a membership change');
      assert.equal(client.counters().eds[names[3]!]!.update_success, success + 1, 'an unchanged CLA still counts an update');
      assert.equal(client.versionInfo(EDS_TYPE_URL), server.version(EDS_TYPE_URL));
    }
  });

  it('an unchanged CLA sent twice in a reordered response is a duplicate; the others are kept', async () => {
    const all = clas();
    const order = reorder(99);
    const resources = [...order, order[5]!].map((i) => server.encodeAny(EDS_TYPE_URL, all[i]!));
    const nonce = server.sendRaw({ type_url: EDS_TYPE_URL, version_info: 'v-dup', resources });
    await server.waitFor(() => server.replyTo(nonce) !== undefined, 5000, 'reply to v-dup');
    assert.match(server.replyTo(nonce)?.errorDetail?.message ?? '', new RegExp(`more than one ClusterLoadAssignment for '${names[order[5]!]!.replace(/\./g, '\\.')}'`));
    assertHosts('after a duplicate');
  });

  it('a CLA failing validation in a reordered response rejects all of it; the next one applies', async () => {
    const version = client.versionInfo(EDS_TYPE_URL);
    const all = clas();
    const order = reorder(123);
    const bad = server.encodeAny(EDS_TYPE_URL, cla(names[order[0]!]!, [['10.9.9.9', 70000]]));
    gen[40]! += 1;
    const changed = server.encodeAny(EDS_TYPE_URL, cla(names[40]!, hostsOf(40)));
    gen[40]! -= 1;
    const resources = order.map((i, k) => (k === 0 ? bad : i === 40 ? changed : server.encodeAny(EDS_TYPE_URL, all[i]!)));
    const nonce = server.sendRaw({ type_url: EDS_TYPE_URL, version_info: 'v-bad', resources });
    await server.waitFor(() => server.replyTo(nonce) !== undefined, 5000, 'reply to v-bad');
    assert.match(server.replyTo(nonce)?.errorDetail?.message ?? '', /ClusterLoadAssignment/);
    assert.equal(client.versionInfo(EDS_TYPE_URL), version, 'the last good version stays');
    assertHosts('after a rejected response (the change beside the invalid CLA is not applied)');
    gen[40]! += 1;
    const r = await push(reorder(124));
    assert.equal(r.ack, true, r.detail);
    assertHosts('after the next good response');
  });
});
