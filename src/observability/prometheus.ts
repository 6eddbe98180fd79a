/**
 * /stats/prometheus on prom-client. Each Envoy stat family (one tag-extracted name) is one prom-client metric
 * whose collect() reads the snapshot of the scrape in progress; families are registered when they first appear
 * (clusters and plugin metrics come and go) and dropped when they disappear.
 *
 * Naming follows Envoy's PrometheusStatsFormatter: `envoy_` + the tag-extracted name with every character
 * outside [a-zA-Z0-9_] replaced by `_`, tags as labels. Custom namespaces (`wasmcustom.`) are stripped and get
 * no prefix. Histograms use Envoy's default buckets.
 */
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { HistogramStat, ScalarStat, Stat } from './stats';

/** Envoy's default histogram bucket bounds (`histogram_bucket_settings` default). */
export const ENVOY_DEFAULT_BUCKETS = [
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
];

export const PROMETHEUS_CONTENT_TYPE = Registry.PROMETHEUS_CONTENT_TYPE;

/** The Prometheus metric name Envoy gives a stat. */
export function prometheusName(stat: Pick<Stat, 'tagExtractedName' | 'customNamespace'>): string {
  const sanitized = stat.tagExtractedName.replace(/[^a-zA-Z0-9_]/g, '_');
  if (!stat.customNamespace) return `envoy_${sanitized}`;
  return /^[0-9]/.test(sanitized) ? `_${sanitized}` : sanitized;
}

interface Family {
  readonly kind: Stat['kind'];
  readonly labelNames: string;
  readonly metric: Counter | Gauge | Histogram;
}

/** Per histogram identity: how many observations (and their sum) were already fed to prom-client. */
interface Fed {
  count: number;
  sum: number;
}

export class PrometheusExporter {
  private readonly registry = new Registry();
  private readonly families = new Map<string, Family>();
  private readonly fed = new Map<string, Fed>();
  private current = new Map<string, Stat[]>();
  private chain: Promise<unknown> = Promise.resolve();

  /** Renders `stats` in the text exposition format. Scrapes are serialized (collect() reads one snapshot). */
  render(stats: readonly Stat[]): Promise<string> {
    const run = this.chain.then(() => this.renderNow(stats));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async renderNow(stats: readonly Stat[]): Promise<string> {
    const groups = new Map<string, Stat[]>();
    for (const s of stats) {
      const name = prometheusName(s);
      const g = groups.get(name);
      if (g) {
        // Same family must keep one kind and one label set; a clashing stat (e.g. a plugin counter and gauge
        // sharing a name) is dropped rather than corrupting the family.
        if (g[0]!.kind === s.kind && labelKey(g[0]!) === labelKey(s)) g.push(s);
      } else {
        groups.set(name, [s]);
      }
    }
    for (const [name, family] of this.families) {
      const g = groups.get(name);
      if (!g || g[0]!.kind !== family.kind || labelKey(g[0]!) !== family.labelNames) {
        this.registry.removeSingleMetric(name);
        this.families.delete(name);
      }
    }
    for (const [name, g] of groups) if (!this.families.has(name)) this.register(name, g[0]!);
    this.current = groups;
    const live = new Set<string>();
    for (const g of groups.values()) for (const s of g) if (s.kind === 'histogram') live.add(s.id);
    for (const id of this.fed.keys()) if (!live.has(id)) this.fed.delete(id);
    return this.registry.metrics();
  }

  private register(name: string, first: Stat): void {
    const labelNames = Object.keys(first.tags).sort();
    const help = helpFor(first);
    // collect() runs inside registry.metrics(), with `this` bound to the prom-client metric.
    const self = this;
    let metric: Counter | Gauge | Histogram;
    switch (first.kind) {
      case 'counter':
        metric = new Counter({
          name,
          help,
          labelNames,
          registers: [this.registry],
          collect(this: Counter) {
            this.reset();
            for (const s of self.current.get(name) ?? []) this.inc(s.tags, Number((s as ScalarStat).value));
          },
        });
        break;
      case 'gauge':
        metric = new Gauge({
          name,
          help,
          labelNames,
          registers: [this.registry],
          collect(this: Gauge) {
            this.reset();
            for (const s of self.current.get(name) ?? []) this.set(s.tags, Number((s as ScalarStat).value));
          },
        });
        break;
      case 'histogram':
        metric = new Histogram({
          name,
          help,
          labelNames,
          buckets: ENVOY_DEFAULT_BUCKETS,
          registers: [this.registry],
          collect(this: Histogram) {
            for (const s of self.current.get(name) ?? []) self.feed(this, s as HistogramStat);
          },
        });
        break;
    }
    this.families.set(name, { kind: first.kind, labelNames: labelNames.join(','), metric });
  }

  /**
   * Observes what the histogram recorded since the last scrape. The registry keeps the last 1024 samples; if more
   * arrived meanwhile, the missing ones are observed at their mean, so _count and _sum stay exact and only their
   * bucket placement is approximate.
   */
  private feed(h: Histogram, s: HistogramStat): void {
    let fed = this.fed.get(s.id);
    if (!fed) this.fed.set(s.id, (fed = { count: 0, sum: 0 }));
    const fresh = s.count - fed.count;
    if (fresh <= 0) return;
    const known = s.samples.slice(Math.max(0, s.samples.length - fresh));
    const knownSum = known.reduce((a, b) => a + b, 0);
    for (const v of known) h.observe(s.tags, v);
    const missing = fresh - known.length;
    if (missing > 0) {
      const mean = (s.sum - fed.sum - knownSum) / missing;
      for (let i = 0; i < missing; i++) h.observe(s.tags, mean);
    }
    fed.count = s.count;
    fed.sum = s.sum;
  }
}

function labelKey(s: Stat): string {
  return Object.keys(s.tags).sort().join(',');
}

function helpFor(s: Stat): string {
  if (s.customNamespace) return `Plugin-defined metric ${s.name}`;
  return `Envoy stat ${s.tagExtractedName}`;
}
