import { MetricType } from '../abi/enums';

export interface PluginMetric {
  readonly id: number;
  readonly type: MetricType;
  readonly name: string;
  value: bigint;
  /** Histogram observations (bounded: the last 1024), for the admin view. */
  readonly samples: bigint[];
  count: number;
  sum: bigint;
}

/**
 * Metrics plugins define (proxy_define_metric). One registry per process: the same name and type from two
 * VMs (or two workers) is the same metric, as in Envoy's stats store. Admin exports them under Envoy's
 * custom namespace `wasmcustom.` (stripped in Prometheus output, as Envoy does).
 */
export class MetricsRegistry {
  private readonly byId = new Map<number, PluginMetric>();
  private readonly byName = new Map<string, PluginMetric>();
  private nextId = 1;

  define(type: MetricType, name: string): PluginMetric {
    const key = `${type}\0${name}`;
    let m = this.byName.get(key);
    if (!m) {
      m = { id: this.nextId++, type, name, value: 0n, samples: [], count: 0, sum: 0n };
      this.byName.set(key, m);
      this.byId.set(m.id, m);
    }
    return m;
  }

  get(id: number): PluginMetric | undefined {
    return this.byId.get(id);
  }

  all(): PluginMetric[] {
    return [...this.byId.values()];
  }
}
