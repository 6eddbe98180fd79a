import { performance } from 'node:perf_hooks';
import { ClusterManager } from '../../src/upstream/cluster-manager';
import { AdsClient } from '../../src/xds/ads-client';
import { CDS_TYPE_URL, EDS_TYPE_URL } from '../../src/xds/type-urls';
import { cla, edsCluster } from '../../test/support/xds-fixtures';
import { GoControlPlane } from '../../test/gocp/go-control-plane';

/**
 * The SotW row against an independent control plane: go-control-plane's own server and snapshot cache
 * (test/xds-go, its own process), 10,000 EDS clusters and CLAs as in xds-bench.ts. Each update is a new snapshot
 * in which one CLA changed and only EDS has a new version (CDS keeps its own, so only EDS is pushed). Timed from
 * the moment the Go server hands the loaded snapshot to its cache (the `at_unix_nanos` of its `set` event,
 * CLOCK_REALTIME) to the ClusterManager's membership event (`performance.timeOrigin + performance.now()`, epoch ms
 * on the same machine). Reading the 20,000-resource snapshot file is before that moment and not timed. Split at
 * the `at_unix_nanos` of the Go server's `response` event (resources marshaled, just before grpc-go's Send):
 * go-control-plane's own part, then grpc-go's send, the transfer and the sidecar (it says nothing after Send).
 * Not the sidecar alone on this process: before each timed push it serializes the 20,000-resource snapshot to a
 * file for the Go server (GoControlPlane.set), and it parses the Go server's event lines (an ACK's lists the
 * 10,000 names) after each update; that garbage is collected here. The output says so.
 * go-control-plane sends a SotW response's resources in Go map order, a new order every response.
 */

const CLUSTERS = 10_000;
const GOAL_MS = 5;

export async function runGoSotwRow(updates: number): Promise<void> {
  let cp: GoControlPlane;
  try {
    cp = await GoControlPlane.start();
  } catch (err) {
    console.log(`xds SotW, go-control-plane: NOT JUDGED (the Go server did not start: ${String(err).split('\n')[0]})`);
    return;
  }
  const name = (i: number): string => `outbound|6379||redis-${i}.default.svc.cluster.local`;
  const hosts = (i: number, gen: number): [string, number][] => [0, 1, 2].map((k) => [`10.${(i >> 8) & 255}.${i & 255}.${k + 1 + gen * 3}`, 6379]);
  const clusters = Array.from({ length: CLUSTERS }, (_, i) => ({ '@type': CDS_TYPE_URL, ...edsCluster(name(i)) }));
  const clas = Array.from({ length: CLUSTERS }, (_, i) => ({ '@type': EDS_TYPE_URL, ...cla(name(i), hosts(i, 0)) }));
  const epochMs = (): number => performance.timeOrigin + performance.now();
  const snapshot = (edsVersion: number): { version: string; versions: Record<string, string>; resources: Record<string, unknown>[] } => ({
    version: '1',
    versions: { [EDS_TYPE_URL]: `e${edsVersion}` },
    resources: [...clusters, ...clas],
  });
  const lastSet = (): number => {
    const e = cp.events.filter((x) => x.event === 'set').pop();
    return Number(e?.['at_unix_nanos']) / 1e6;
  };
  const cm = new ClusterManager();
  const client = new AdsClient({ target: cp.target, node: { id: 'bench' }, sink: cm, initialFetchTimeoutMs: 0, apiType: 'GRPC' });
  try {
    await cp.set(snapshot(0));
    client.start();
    await client.initialized;
    await cp.ack(EDS_TYPE_URL, 'e0');
    const endToEnd: number[] = [];
    const marshal: number[] = [];
    const afterSend: number[] = [];
    const handling: number[] = [];
    const sub = client.onEvent((e) => {
      if (e.type === 'ack' && e.typeUrl === EDS_TYPE_URL) handling.push(e.handlingMs);
    });
    let causal = 0;
    for (let u = 1; u <= updates; u++) {
      const i = (u * 97) % CLUSTERS;
      clas[i] = { '@type': EDS_TYPE_URL, ...cla(name(i), hosts(i, (u % 2) + 1)) };
      // Each ACK event lists 10,000 names: keep no more than one update's worth in this process.
      cp.events.length = 0;
      const seen = new Promise<number>((resolve) => {
        const d = cm.onEvent((e) => {
          if (e.type === 'membership' && e.cluster.name === name(i)) {
            d.dispose();
            resolve(epochMs());
          }
        });
      });
      await cp.set(snapshot(u));
      const setSeenAt = epochMs();
      const seenAt = await seen;
      const at = lastSet();
      const response = await cp.waitFor((e) => e.event === 'response' && e['typeUrl'] === EDS_TYPE_URL && e['version'] === `e${u}`, `the EDS response e${u}`);
      const sentAt = Number(response['at_unix_nanos']) / 1e6;
      marshal.push(sentAt - at);
      afterSend.push(seenAt - sentAt);
      // The Go clock read before the set event reached us, and before the sidecar saw the change: a check
      // that the two processes' clocks agree to within what is measured.
      if (at <= setSeenAt && at <= seenAt) causal++;
      endToEnd.push(seenAt - at);
      await cp.ack(EDS_TYPE_URL, `e${u}`);
    }
    sub.dispose();
    const pct = (p: number, v = endToEnd): number => [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor((p / 100) * v.length))]!;
    const spread = (v: number[]): string => `p50 ${pct(50, v).toFixed(2)} ms, p99 ${pct(99, v).toFixed(2)} ms`;
    console.log(`xds SotW, go-control-plane (its own process): one endpoint change (all ${CLUSTERS} CLAs in each response), ${updates} updates:
  snapshot set -> membership event (end to end)         p50 ${pct(50).toFixed(2)} ms (goal <= ${GOAL_MS}: ${pct(50) <= GOAL_MS ? 'MET' : 'NOT MET'}), p99 ${pct(99).toFixed(2)} ms, min ${Math.min(...endToEnd).toFixed(2)} ms
    go-control-plane: snapshot set -> response marshaled   ${spread(marshal)}
    response marshaled -> membership event (grpc-go's send, transfer, the sidecar)   ${spread(afterSend)}
    client's handling of a response (arrival -> ACK)     ${spread(handling.slice(-updates))}
    clock check: the Go server's timestamp preceded both its set event's arrival and the membership event in ${causal}/${updates} updates
    (this process also wrote each snapshot file and parses the Go server's events: not the sidecar's process alone; go-control-plane sends the CLAs in a new order every response)`);
  } finally {
    await client.close();
    cm.close();
    await cp.close();
  }
}
