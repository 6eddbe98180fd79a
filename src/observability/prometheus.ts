/**
 * /stats/prometheus on prom-client. Each Envoy stat family (one tag-extracted name) is one prom-client metric
 * whose collect() reads the snapshot of the scrape in progress; families are registered when they first appear
 * (clusters and plugin metrics come and go) and dropped when they disappear.
 *
 * Naming follows Envoy's PrometheusStatsFormatter: `envoy_` + the tag-extracted name with every character
 * outside [a-zA-Z0-9_] replaced by `_`, tags as labels. Custom namespaces (`wasmcustom.`) are stripped and get
 * no prefix. Histograms use Envoy's default buckets.
 */
import type * as PromClient from 'prom-client';
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { HistogramStat, ScalarStat, Stat } from './stats';
import { HistogramBuckets } from './stats-matcher';

export { ENVOY_DEFAULT_BUCKETS } from './stats-matcher';

/** prom-client's Registry.PROMETHEUS_CONTENT_TYPE, as a literal so that naming it loads nothing. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

let promClient: typeof PromClient | undefined;

/**
 * prom-client, loaded at the first scrape: with the @opentelemetry/api it requires it is ~85 modules and a few
 * MB that a sidecar nobody scrapes for Prometheus never needs.
 */
function prom(): typeof PromClient {
  promClient ??= require('prom-client') as typeof PromClient;
  return promClient;
}

/** Envoy's PrometheusStatsFormatter::sanitizeName: every character outside [a-zA-Z0-9_] becomes `_`. */
function sanitizeName(name: string): string {
  return name.replace(/[^a-zA-Z0-9_]/g, '_');
}

/**
 * The Prometheus metric name Envoy gives a stat, or undefined when Envoy leaves it out: a custom-namespace name
 * is printed as the plugin wrote it (no `envoy_`), so one that is empty or starts with a digit is not a valid
 * Prometheus name and is skipped.
 */
export function prometheusName(stat: Pick<Stat, 'tagExtractedName' | 'customNamespace'>): string | undefined {
  const sanitized = sanitizeName(stat.tagExtractedName);
  if (!stat.customNamespace) return `envoy_${sanitized}`;
  return sanitized === '' || /^[0-9]/.test(sanitized) ? undefined : sanitized;
}

/** A stat as one Prometheus sample: its labels are the tags with sanitized names, in Envoy's tag order. */
interface Sample {
  readonly stat: Stat;
  readonly labels: Readonly<Record<string, string>>;
}

function labelsOf(stat: Stat): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const [k, v] of Object.entries(stat.tags)) labels[sanitizeName(k)] = v;
  return labels;
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
  private registryOrUndefined: Registry | undefined;
  private readonly families = new Map<string, Family>();
  private readonly fed = new Map<string, Fed>();
  private current = new Map<string, Sample[]>();
  private chain: Promise<unknown> = Promise.resolve();

  /** `buckets`: stats_config.histogram_bucket_settings (default Envoy's buckets for every histogram). */
  constructor(private readonly buckets: HistogramBuckets = HistogramBuckets.DEFAULT) {}

  private get registry(): Registry {
    this.registryOrUndefined ??= new (prom().Registry)();
    return this.registryOrUndefined;
  }

  /** Renders `stats` in the text exposition format. Scrapes are serialized (collect() reads one snapshot). */
  render(stats: readonly Stat[]): Promise<string> {
    const run = this.chain.then(() => this.renderNow(stats));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async renderNow(stats: readonly Stat[]): Promise<string> {
    const groups = new Map<string, Sample[]>();
    for (const stat of stats) {
      const name = prometheusName(stat);
      if (name === undefined) continue;
      const s = { stat, labels: labelsOf(stat) };
      const g = groups.get(name);
      if (g) {
        // Same family must keep one kind and one label set; a clashing stat (e.g. a plugin counter and gauge
        // sharing a name) is dropped rather than corrupting the family.
        if (g[0]!.stat.kind === stat.kind && labelKey(g[0]!) === labelKey(s)) g.push(s);
      } else {
        groups.set(name, [s]);
      }
    }
    for (const [name, family] of this.families) {
      const g = groups.get(name);
      if (!g || g[0]!.stat.kind !== family.kind || labelKey(g[0]!) !== family.labelNames) {
        this.registry.removeSingleMetric(name);
        this.families.delete(name);
      }
    }
    for (const [name, g] of groups) if (!this.families.has(name)) this.register(name, g[0]!);
    this.current = groups;
    const live = new Set<string>();
    for (const g of groups.values()) for (const { stat } of g) if (stat.kind === 'histogram') live.add(stat.id);
    for (const id of this.fed.keys()) if (!live.has(id)) this.fed.delete(id);
    return this.registry.metrics();
  }

  private register(name: string, sample: Sample): void {
    const first = sample.stat;
    const labelNames = Object.keys(sample.labels).sort();
    const help = helpFor(first);
    // collect() runs inside registry.metrics(), with `this` bound to the prom-client metric.
    const self = this;
    let metric: Counter | Gauge | Histogram;
    switch (first.kind) {
      case 'counter':
        metric = new (prom().Counter)({
          name,
          help,
          labelNames,
          registers: [this.registry],
          collect(this: Counter) {
            this.reset();
            for (const s of self.current.get(name) ?? []) this.inc(s.labels, Number((s.stat as ScalarStat).value));
          },
        });
        break;
      case 'gauge':
        metric = new (prom().Gauge)({
          name,
          help,
          labelNames,
          registers: [this.registry],
          collect(this: Gauge) {
            this.reset();
            for (const s of self.current.get(name) ?? []) this.set(s.labels, Number((s.stat as ScalarStat).value));
          },
        });
        break;
      case 'histogram':
        metric = new (prom().Histogram)({
          name,
          help,
          labelNames,
          // A family is one tag-extracted name: its buckets are those of the first stat's full name.
          buckets: [...this.buckets.for(first.name)],
          registers: [this.registry],
          collect(this: Histogram) {
            for (const s of self.current.get(name) ?? []) self.feed(this, s.stat as HistogramStat, s.labels);
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
  private feed(h: Histogram, s: HistogramStat, labels: Readonly<Record<string, string>>): void {
    let fed = this.fed.get(s.id);
    if (!fed) this.fed.set(s.id, (fed = { count: 0, sum: 0 }));
    const fresh = s.count - fed.count;
    if (fresh <= 0) return;
    const known = s.samples.slice(Math.max(0, s.samples.length - fresh));
    const knownSum = known.reduce((a, b) => a + b, 0);
    for (const v of known) h.observe(labels, v);
    const missing = fresh - known.length;
    if (missing > 0) {
      const mean = (s.sum - fed.sum - knownSum) / missing;
      for (let i = 0; i < missing; i++) h.observe(labels, mean);
    }
    fed.count = s.count;
    fed.sum = s.sum;
  }
}

function labelKey(s: Sample): string {
  return Object.keys(s.labels).sort().join(',');
}

function helpFor(s: Stat): string {
  if (s.customNamespace) return `Plugin-defined metric ${s.tagExtractedName}`;
  return `Envoy stat ${s.tagExtractedName}`;
}
