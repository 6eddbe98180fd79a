import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { AdsClient, type XdsEvent } from '../../src/xds/ads-client';
import type { ClusterManager } from '../../src/upstream/cluster-manager';
import { XdsTestServer } from '../support/xds-server';
import { recordingManager, staticCluster, until } from '../support/xds-fixtures';

/**
 * Issue 14 item 5: after a control-plane outage the stream comes back on the client's own full-jitter schedule
 * (Envoy's 500 ms -> 30 s, here scaled down to 20 -> 200 ms), with no second backoff from grpc-js underneath
 * (its subchannel waits 1 s x 1.6 up to 120 s between connection attempts by default, during which every call
 * fails at once). `random` is pinned so the schedule is exact.
 */
describe('ADS reconnect after the control plane goes away', () => {
  let server: XdsTestServer;
  let client: AdsClient;
  let cm: ClusterManager;
  after(async () => {
    await client?.close();
    cm?.close();
    await server?.close();
  });

  it('retries on the jittered schedule while down, and the first attempt after the restart connects', async () => {
    server = await XdsTestServer.start();
    server.setClusters([staticCluster('s', 7001)]);
    ({ cm } = recordingManager());
    client = new AdsClient({ target: server.target, node: { id: 'reconnect' }, sink: cm, initialFetchTimeoutMs: 0, backoff: { baseMs: 20, maxMs: 200, random: () => 0.999 } });
    const events: XdsEvent[] = [];
    client.onEvent((e) => events.push(e));
    client.start();
    await client.initialized;
    const delays = (): number[] => events.flatMap((e) => (e.type === 'disconnected' ? [e.retryInMs] : []));
    const connects = (): number => events.filter((e) => e.type === 'connected').length;

    await server.stop();
    // Down for well over grpc-js's default 1 s first backoff (and its 1.6 s second one).
    await until(() => delays().length >= 12, 20_000, 'a dozen failed attempts');
    assert.deepEqual(delays().slice(0, 6), [19, 39, 79, 159, 199, 199], 'full jitter, doubling from the base to the cap');
    assert.equal(client.connected, false);
    assert.ok(cm.configOf('s'), 'the last config is kept while down');

    const failedBeforeRestart = delays().length;
    const connectedBefore = connects();
    await server.restart();
    // The client resubscribes at the version it has: the server has nothing new and sends nothing yet.
    await server.waitFor(() => server.streamCount === 1, 20_000, 'a stream from the client');
    // At most the attempt already in flight when the server came back fails; the next one connects.
    assert.ok(delays().length - failedBeforeRestart <= 1, `failed attempts after the restart: ${delays().length - failedBeforeRestart}`);
    assert.equal(connects(), connectedBefore + (client.connected ? 1 : 0));

    // A message arrives: connected, and the schedule starts again from the base.
    server.setClusters([staticCluster('s', 7001), staticCluster('t', 7002)]);
    server.push();
    await until(() => cm.configOf('t') !== undefined, 5000, 'update after the restart');
    assert.equal(client.connected, true);
    assert.equal(client.reconnectAttempts, 0);
    const n = delays().length;
    server.killStreams();
    await until(() => delays().length > n, 5000, 'disconnect after kill');
    assert.equal(delays()[n], 19, 'backoff reset by the response');
  });
});
