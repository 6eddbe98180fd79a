import { Pool } from 'undici';
import type { Disposable } from '../common/disposable';
import type { Logger } from '../common/logger';
import { silentLogger } from '../common/logger';
import type { ClusterManager, LiveCluster } from '../upstream/cluster-manager';
import type { Host } from '../upstream/types';
import { UpstreamTrafficStats } from '../upstream/traffic-stats';

/**
 * Keep-alive HTTP/1.1 connection pools, one undici Pool per (cluster, host), owned here and not by the cluster
 * (Envoy's ThreadLocalClusterManager keeps host→pool maps outside the cluster entry). Pools of hosts that
 * leave a cluster, and of removed or redefined clusters, are closed (they finish their in-flight requests).
 * In-flight counts feed LEAST_REQUEST.
 */
export class UpstreamPools {
  private readonly pools = new Map<string, Pool>();
  private readonly active = new Map<string, number>();
  /** Envoy's upstream_rq_* and host rq_* counters for the requests routed through these pools. */
  readonly traffic = new UpstreamTrafficStats();
  private readonly subscription: Disposable;
  private readonly logger: Logger;
  private closing: Promise<void> | null = null;

  constructor(
    private readonly clusters: ClusterManager,
    logger: Logger = silentLogger(),
  ) {
    this.logger = logger.child({ component: 'upstream_http' });
    this.subscription = clusters.onEvent((event) => {
      if (event.type === 'membership') for (const h of event.removed) this.drop(event.cluster.name, h.key);
      else if (event.type === 'removed' || event.type === 'updated') this.dropCluster(event.type === 'removed' ? event.name : event.cluster.name);
    });
  }

  get closed(): boolean {
    return this.closing !== null;
  }

  cluster(name: string): LiveCluster | undefined {
    return this.clusters.get(name);
  }

  /** The host the cluster's LB picks (LEAST_REQUEST sees this side's in-flight counts). */
  chooseHost(cluster: LiveCluster): Host | undefined {
    return cluster.chooseHost((h) => this.active.get(`${cluster.name}\0${h.key}`) ?? 0);
  }

  pool(cluster: LiveCluster, host: Host): Pool {
    const key = `${cluster.name}\0${host.key}`;
    let pool = this.pools.get(key);
    if (!pool) {
      const origin = `http://${host.key}`;
      pool = new Pool(origin, {
        connect: { timeout: cluster.config.connectTimeoutMs },
        // The router owns the request timeout (route timeout), so undici's own timers are off.
        headersTimeout: 0,
        bodyTimeout: 0,
        keepAliveTimeout: 60_000,
        pipelining: 1,
      });
      this.pools.set(key, pool);
      this.logger.debug({ cluster: cluster.name, host: host.key }, 'upstream pool created');
    }
    return pool;
  }

  /** Tracks one in-flight request on a host; call the returned function exactly once when it ends. */
  track(cluster: string, host: Host): () => void {
    const key = `${cluster}\0${host.key}`;
    this.active.set(key, (this.active.get(key) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const n = (this.active.get(key) ?? 1) - 1;
      if (n <= 0) this.active.delete(key);
      else this.active.set(key, n);
    };
  }

  private drop(cluster: string, hostKey: string): void {
    const key = `${cluster}\0${hostKey}`;
    const pool = this.pools.get(key);
    if (!pool) return;
    this.pools.delete(key);
    pool.close().catch(() => undefined);
  }

  private dropCluster(cluster: string): void {
    for (const key of [...this.pools.keys()]) if (key.startsWith(`${cluster}\0`)) this.drop(cluster, key.slice(cluster.length + 1));
  }

  /** Drains every pool (in-flight requests finish), then releases them. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.subscription.dispose();
      const pools = [...this.pools.values()];
      this.pools.clear();
      await Promise.all(pools.map((p) => p.close().catch(() => undefined)));
    })();
    return this.closing;
  }

  /** Fails in-flight requests and closes every socket now. */
  async destroy(): Promise<void> {
    this.subscription.dispose();
    const pools = [...this.pools.values()];
    this.pools.clear();
    this.closing ??= Promise.resolve();
    await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)));
  }
}
