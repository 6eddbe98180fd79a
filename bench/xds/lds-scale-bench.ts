import { fork } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Disposable } from '../../src/common/disposable';
import { ClusterManager } from '../../src/upstream/cluster-manager';
import { AdsClient } from '../../src/xds/ads-client';
import type { JsonObject } from '../../src/xds/proto-json';
import type { DeliveredResource, ResourceSink } from '../../src/xds/resource-sink';
import { RDS_TYPE_URL } from '../../src/xds/type-urls';
import { loadEnvoyProtos } from '../../src/xds/protos';
import { routeName } from './scale-control-plane';
import { envNumber } from '../support/env';

/**
 * Issue 11's benchmark: 1,000 listeners + 1,000 route configurations + 10,000 clusters over SotW ADS, the control
 * plane in its own process. Prints the time from start to `initialized` (CDS, the 10,000 CLAs, LDS, then the RDS
 * names the listeners watch), the sidecar's RSS alone, and one route update to applied, p50/p99.
 * The listener side is a stand-in until the listener manager consumes LDS: a sink that keeps each listener and
 * watches its HCM's rds.route_config_name, as the manager will; no sockets are bound. The output says so.
 * XDS_SCALE_CLUSTERS / XDS_SCALE_LISTENERS change the sizes.
 */

/** The listener manager's part in this bench: keep the listener, watch its route configuration. */
class WatchingListenerSink implements ResourceSink {
  readonly listeners = new Map<string, { resource: JsonObject; watch: Disposable | undefined }>();
  constructor(private readonly subscriber: { watch(typeUrl: string, name: string): Disposable }) {}

  update(resources: readonly DeliveredResource[], removed: readonly string[]): ReadonlyMap<string, string> {
    for (const r of resources) {
      const chains = (r.resource['filter_chains'] as JsonObject[] | undefined) ?? [];
      const hcm = (((chains[0]?.['filters'] as JsonObject[] | undefined) ?? [])[0]?.['typed_config'] as JsonObject | undefined) ?? {};
      const rds = (hcm['rds'] as JsonObject | undefined)?.['route_config_name'];
      const old = this.listeners.get(r.name);
      const watch = typeof rds === 'string' ? this.subscriber.watch(RDS_TYPE_URL, rds) : undefined;
      old?.watch?.dispose();
      this.listeners.set(r.name, { resource: r.resource, watch });
    }
    for (const n of removed) {
      this.listeners.get(n)?.watch?.dispose();
      this.listeners.delete(n);
    }
    return new Map();
  }
}

class RouteSink implements ResourceSink {
  readonly routes = new Map<string, DeliveredResource>();
  private waiter: { name: string; resolve: () => void } | undefined;
  update(resources: readonly DeliveredResource[], removed: readonly string[]): ReadonlyMap<string, string> {
    for (const r of resources) {
      this.routes.set(r.name, r);
      if (this.waiter?.name === r.name) {
        this.waiter.resolve();
        this.waiter = undefined;
      }
    }
    for (const n of removed) this.routes.delete(n);
    return new Map();
  }
  next(name: string): Promise<void> {
    return new Promise((resolve) => (this.waiter = { name, resolve }));
  }
}

export async function runLdsScaleBench(): Promise<void> {
  const clusters = envNumber('XDS_SCALE_CLUSTERS', 10_000);
  const listeners = envNumber('XDS_SCALE_LISTENERS', 1_000);
  loadEnvoyProtos();
  const child = fork(path.join(__dirname, 'scale-control-plane.js'), [String(clusters), String(listeners)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  let nextId = 0;
  const pending = new Map<number, () => void>();
  const target = await new Promise<string>((resolve, reject) => {
    child.once('error', reject);
    child.on('message', (m: { target?: string; id?: number }) => {
      if (m.target) resolve(m.target);
      else if (m.id !== undefined) {
        pending.get(m.id)?.();
        pending.delete(m.id);
      }
    });
  });
  const call = (msg: Record<string, unknown>): Promise<void> =>
    new Promise((resolve) => {
      const id = ++nextId;
      pending.set(id, resolve);
      child.send({ ...msg, id });
    });
  const cm = new ClusterManager();
  const routes = new RouteSink();
  let client: AdsClient | undefined;
  const listenerSink = new WatchingListenerSink({ watch: (t, n) => client!.watch(t, n) });
  client = new AdsClient({ target, node: { id: 'scale-bench' }, sink: cm, initialFetchTimeoutMs: 0, lds: { initialFetchTimeoutMs: 0 }, resourceTimeoutMs: 0, sinks: { listeners: listenerSink, routes } });
  const rssBefore = process.memoryUsage().rss;
  try {
    const t0 = performance.now();
    client.start();
    await client.initialized;
    const readyMs = performance.now() - t0;
    global.gc?.();
    const rssMb = process.memoryUsage().rss / 2 ** 20;
    console.log(
      `xds LDS/RDS scale (SotW, control plane in its own process): ${[...cm.activeClusters()].length} clusters + ${listenerSink.listeners.size} listeners + ${routes.routes.size} route configurations: ` +
        `start -> initialized ${readyMs.toFixed(0)} ms; sidecar RSS ${rssMb.toFixed(0)} MB (+${(rssMb - rssBefore / 2 ** 20).toFixed(0)} MB for the config). ` +
        `Listener side: a stand-in sink that keeps listeners and watches their RDS names (no listener manager yet, no sockets bound).`,
    );
    const UPDATES = 50;
    const samples: number[] = [];
    for (let u = 0; u < UPDATES; u++) {
      const i = (u * 37) % listeners;
      const applied = routes.next(routeName(i));
      const t = performance.now();
      await call({ op: 'route', index: i, gen: u + 1 });
      await applied;
      samples.push(performance.now() - t);
    }
    samples.sort((a, b) => a - b);
    const pct = (p: number): number => samples[Math.min(samples.length - 1, Math.floor((p / 100) * samples.length))]!;
    console.log(`xds RDS: one route configuration update (SotW: the ${listeners} watched ones resent) -> delivered to the route sink: p50 ${pct(50).toFixed(2)} ms, p99 ${pct(99).toFixed(2)} ms over ${UPDATES}; load average ${loadavg()[0]!.toFixed(1)} on ${cpus().length} cores`);
  } finally {
    await client.close();
    cm.close();
    await call({ op: 'close' });
  }
}

if (require.main === module) {
  runLdsScaleBench().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
