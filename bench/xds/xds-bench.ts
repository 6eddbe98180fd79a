import { performance } from 'node:perf_hooks';
import { ClusterManager } from '../../src/upstream/cluster-manager';
import { AdsClient } from '../../src/xds/ads-client';
import { CDS_TYPE_URL, EDS_TYPE_URL, loadEnvoyProtos } from '../../src/xds/protos';
import { XdsTestServer } from '../../src/testing/xds-control-plane';
import { cla, edsCluster } from '../../test/support/xds-fixtures';

/**
 * 10 000 EDS clusters + 10 000 CLAs (3 endpoints each) over SotW ADS from the test control plane: time from the
 * first response to the last ACK, and RSS. Then, with all of that loaded, 100 single-cluster EDS updates: time
 * from the server push to the ClusterManager's membership event (the event the pools layer hooks).
 * Targets: <= 2 s, <= 300 MB RSS, p50 <= 5 ms. Runs once with SotW and once with Delta: a SotW EDS update
 * necessarily carries all 10 000 CLAs (about 2 MB), a Delta update only the changed one.
 */
export async function runXdsBench(): Promise<void> {
  await runOnce('GRPC');
  await runOnce('DELTA_GRPC');
}

async function runOnce(apiType: 'GRPC' | 'DELTA_GRPC'): Promise<void> {
  const N = 10_000;
  const UPDATES = 100;
  loadEnvoyProtos();
  const server = await XdsTestServer.start();
  const name = (i: number): string => `outbound|6379||redis-${i}.default.svc.cluster.local`;
  const hosts = (i: number, gen: number): [string, number][] => [0, 1, 2].map((k) => [`10.${(i >> 8) & 255}.${i & 255}.${k + 1 + gen * 3}`, 6379]);
  server.setClusters(Array.from({ length: N }, (_, i) => edsCluster(name(i))));
  const clas = Array.from({ length: N }, (_, i) => cla(name(i), hosts(i, 0)));
  server.setEndpoints(clas);
  const cm = new ClusterManager();
  const client = new AdsClient({ target: server.target, node: { id: 'bench' }, sink: cm, initialFetchTimeoutMs: 0, apiType });
  const label = apiType === 'GRPC' ? 'SotW' : 'Delta';
  let firstResponse = 0;
  let lastEdsAck = 0;
  const rssBefore = process.memoryUsage().rss;
  const sub = client.onEvent((e) => {
    if (e.type === 'connected' && firstResponse === 0) firstResponse = performance.now();
    if (e.type === 'ack' && e.typeUrl === EDS_TYPE_URL) lastEdsAck = performance.now();
  });
  try {
    client.start();
    await client.initialized;
    await server.waitFor(() => server.requestsFor(EDS_TYPE_URL).some((r) => r.responseNonce !== ''), 30_000, 'EDS ACK');
    const active = [...cm.activeClusters()].length;
    const loadMs = lastEdsAck - firstResponse;
    global.gc?.();
    const rssMb = process.memoryUsage().rss / 2 ** 20;
    console.log(`xds ${label}: ${active} clusters / ${N} CLAs x 3 endpoints: first response -> last ACK ${loadMs.toFixed(0)} ms (target <= 2000), RSS ${rssMb.toFixed(0)} MB (target <= 300; +${(rssMb - rssBefore / 2 ** 20).toFixed(0)} MB for this run, server included)`);

    const samples: number[] = [];
    for (let u = 0; u < UPDATES; u++) {
      const i = (u * 97) % N;
      clas[i] = cla(name(i), hosts(i, (u % 2) + 1));
      // Only the changed CLA is re-encoded by the control plane; a SotW push still carries all of them.
      server.upsert(EDS_TYPE_URL, [clas[i]!]);
      const seen = new Promise<number>((resolve) => {
        const d = cm.onEvent((e) => {
          if (e.type === 'membership' && e.cluster.name === name(i)) {
            d.dispose();
            resolve(performance.now());
          }
        });
      });
      const t0 = performance.now();
      server.push(EDS_TYPE_URL);
      samples.push((await seen) - t0);
    }
    samples.sort((a, b) => a - b);
    const pct = (p: number): number => samples[Math.min(samples.length - 1, Math.floor((p / 100) * samples.length))]!;
    const shape = apiType === 'GRPC' ? `full ${N}-CLA response` : 'one-resource response';
    console.log(`xds ${label}: single-cluster EDS update (${shape}) -> membership event: p50 ${pct(50).toFixed(2)} ms (target <= 5), p99 ${pct(99).toFixed(2)} ms over ${UPDATES}`);
    void CDS_TYPE_URL;
  } finally {
    sub.dispose();
    await client.close();
    cm.close();
    await server.close();
  }
}

if (require.main === module) {
  runXdsBench().catch((err: unknown) => {
    console.error(err);
    process.exitCode = 1;
  });
}
