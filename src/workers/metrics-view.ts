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

  async refresh(): Promise<void> {
    if (this.refreshing) return;
    this.refreshing = true;
    try {
      this.latest = sumByName(await this.collect());
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
