import { performance } from 'node:perf_hooks';
import { ClusterManager } from '../../src/upstream/cluster-manager';
import { AdsClient, type XdsEvent } from '../../src/xds/ads-client';
import { XdsTestServer } from '../../src/testing/xds-control-plane';
import { staticCluster } from '../../test/support/xds-fixtures';
import { envNumber } from '../support/env';

/**
 * Issue 14 item 5, at full scale: the control plane is down for a minute (XDS_OUTAGE_S, default 60) and comes
 * back on the same port; the client runs Envoy's default schedule (full jitter, 500 ms doubling to 30 s). Prints
 * the attempts made, the delay the client had scheduled when the server came back, and how long after the
 * restart the stream was re-established. Held to: reconnected no later than that scheduled delay (plus the
 * connect itself), i.e. never more than 30 s, with no grpc-js backoff (1 s x 1.6 up to 120 s) on top.
 * Not part of `make bench` (it takes a minute by design): `node dist/bench/xds/reconnect-outage.js`.
 */
async function main(): Promise<void> {
  const outageMs = envNumber('XDS_OUTAGE_S', 60) * 1000;
  const server = await XdsTestServer.start();
  server.setClusters([staticCluster('s', 7001)]);
  const cm = new ClusterManager({ resolver: async () => ['127.0.0.1'] });
  const client = new AdsClient({ target: server.target, node: { id: 'outage-bench' }, sink: cm, initialFetchTimeoutMs: 0 });
  const disconnects: { at: number; retryInMs: number }[] = [];
  client.onEvent((e: XdsEvent) => {
    if (e.type === 'disconnected') disconnects.push({ at: performance.now(), retryInMs: e.retryInMs });
  });
  try {
    client.start();
    await client.initialized;
    await server.stop();
    const downAt = performance.now();
    await new Promise((r) => setTimeout(r, outageMs));
    const last = disconnects[disconnects.length - 1];
    const pendingMs = last ? Math.max(0, last.at + last.retryInMs - performance.now()) : 0;
    const failedBefore = disconnects.length;
    await server.restart();
    const upAt = performance.now();
    await server.waitFor(() => server.streamCount > 0, 120_000, 'reconnect');
    const lagMs = performance.now() - upAt;
    console.log(
      `xds reconnect: control plane down ${((upAt - downAt) / 1000).toFixed(0)} s, ${failedBefore} failed attempts while down; ` +
        `next attempt was due in ${pendingMs.toFixed(0)} ms when it came back; stream re-established after ${lagMs.toFixed(0)} ms ` +
        `(held to: <= the scheduled delay + connect, <= 30 s; failed attempts after the restart: ${disconnects.length - failedBefore})`,
    );
  } finally {
    await client.close();
    cm.close();
    await server.close();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
