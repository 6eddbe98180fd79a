import { MetricType } from '../abi/enums';
import type { Logger } from '../common/logger';
import type { PluginMetric } from '../services/metrics';
import type { WorkerMetrics } from './worker-pool';

/**
 * Plugin metrics across worker threads, for the admin endpoint (which reads synchronously): the sum of every
 * worker's snapshot by (type, name), as Envoy's stats store shows one value per name whatever the thread.
 * Refreshed in the background every `intervalMs`; a scrape sees values at most that old.
 */
export class WorkerMetricsView {
  private latest: PluginMetric[] = [];
  private latestCounters: Record<string, number> = {};
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
