import { MetricType } from '../abi/enums';
import type { Logger } from '../common/logger';
import type { PluginMetric } from '../services/metrics';
import type { WorkerMetrics } from './worker-pool';
import type { RedisClusterStats, RedisHostStats, RedisStats } from '../redis/pool-manager';
import { sumTraffic, type TrafficSnapshot } from '../upstream/traffic-stats';

/**
 * Plugin metrics across worker threads, for the admin endpoint (which reads synchronously): the sum of every
 * worker's snapshot by (type, name), as Envoy's stats store shows one value per name whatever the thread.
 * Refreshed in the background every `intervalMs`; a scrape sees values at most that old.
 */
export class WorkerMetricsView {
  private latest: PluginMetric[] = [];
  private latestCounters: Record<string, number> = {};
  private latestTraffic: TrafficSnapshot = {};
  private latestRedis: RedisStats | undefined;
  private readonly timer: NodeJS.Timeout;
  private refreshing = false;

  constructor(
    private readonly collect: () => Promise<readonly WorkerMetrics[]>,
    private readonly logger: Logger,
    intervalMs = 1000,
  ) {
    this.timer = setInterval(() => void this.refresh(), intervalMs);
    this.timer.unref();
  }

  all(): readonly PluginMetric[] {
    return this.latest;
  }

  /** Routed HTTP requests per cluster and host, summed over the workers. */
  traffic(): TrafficSnapshot {
    return this.latestTraffic;
  }

  /** The workers' Redis pools, as one: counters summed per cluster and host, pools listed side by side. */
  redis(): RedisStats | undefined {
    return this.latestRedis;
  }

  /** The workers' own counters by full Envoy name, summed. */
  counters(): Readonly<Record<string, number>> {
    return this.latestCounters;
  }

  async refresh(): Promise<void> {
    if (this.refreshing) return;
    this.refreshing = true;
    try {
      const perWorker = await this.collect();
      this.latest = sumByName(perWorker);
      this.latestCounters = sumCounters(perWorker.map((w) => w.counters ?? {}));
      this.latestTraffic = sumTraffic(perWorker.map((w) => w.traffic ?? {}));
      this.latestRedis = sumRedisStats(perWorker.map((w) => w.redis).filter((r): r is RedisStats => r !== undefined));
    } catch (err) {
      this.logger.warn({ err: (err as Error).message }, 'collecting worker metrics failed');
    } finally {
      this.refreshing = false;
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}

/** Counters by name, summed (across listeners, or across workers: Envoy's store shows one value per name). */
export function sumCounters(records: readonly Readonly<Record<string, number>>[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of records) for (const [k, v] of Object.entries(r)) out[k] = (out[k] ?? 0) + v;
  return out;
}

export function sumByName(perWorker: readonly WorkerMetrics[]): PluginMetric[] {
  const out = new Map<string, PluginMetric>();
  for (const { metrics } of perWorker) {
    for (const m of metrics) {
      const key = `${m.type}\0${m.name}`;
      let total = out.get(key);
      if (!total) out.set(key, (total = { id: out.size + 1, type: m.type, name: m.name, value: 0n, samples: [], count: 0, sum: 0n }));
      total.value += m.value;
      total.count += m.count;
      total.sum += m.sum;
      if (m.type === MetricType.Histogram) total.samples.push(...m.samples.slice(-1024 + total.samples.length));
    }
  }
  return [...out.values()];
}

/** Every worker's Redis stats as one pool manager's: per-cluster counters and per-host figures added up. */
export function sumRedisStats(perWorker: readonly RedisStats[]): RedisStats | undefined {
  if (perWorker.length === 0) return undefined;
  const clusters = new Map<string, { c: Omit<RedisClusterStats, 'hosts'> & Record<string, unknown>; hosts: Map<string, RedisHostStats> }>();
  for (const stats of perWorker) {
    for (const c of stats.clusters) {
      let t = clusters.get(c.cluster);
      if (!t) clusters.set(c.cluster, (t = { c: { cluster: c.cluster, calls: 0, errors: 0, timeouts: 0, error_replies: 0, cx_active: 0, pools: 0 }, hosts: new Map() }));
      const sum = t.c as { calls: number; errors: number; timeouts: number; error_replies: number; cx_active: number; pools: number };
      sum.calls += c.calls;
      sum.errors += c.errors;
      sum.timeouts += c.timeouts;
      sum.error_replies += c.error_replies;
      sum.cx_active += c.cx_active;
      sum.pools += c.pools;
      for (const h of c.hosts) {
        const prev = t.hosts.get(h.host);
        t.hosts.set(h.host, prev
          ? { host: h.host, cx_active: prev.cx_active + h.cx_active, rq_total: prev.rq_total + h.rq_total, rq_active: prev.rq_active + h.rq_active }
          : { ...h });
      }
    }
  }
  return {
    clusters: [...clusters.values()].map(({ c, hosts }) => ({ ...(c as Omit<RedisClusterStats, 'hosts'>), hosts: [...hosts.values()] })),
    pools: perWorker.flatMap((s) => s.pools),
  };
}
