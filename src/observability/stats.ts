/**
 * The sidecar's stats, named as Envoy names them (xds.md §14), computed on demand from the sources. One snapshot
 * feeds /stats (text and JSON) and /stats/prometheus, so the three always agree.
 *
 * Names (`<c>` is the cluster name, or its `alt_stat_name`, with `:` replaced by `_` as Envoy does):
 *
 *   server.state (gauge: 0 LIVE, 1 DRAINING, 2 PRE_INITIALIZING, 3 INITIALIZING), server.live, server.uptime
 *   cluster_manager.active_clusters, cluster_manager.warming_clusters                      gauges
 *   cluster_manager.cluster_added, cluster_manager.cluster_modified, cluster_manager.cluster_removed   counters
 *   cluster_manager.cds.{update_attempt,update_success,update_rejected,update_failure,update_empty,init_fetch_timeout}
 *   control_plane.connected_state                                                          (with ADS only)
 *   cluster.<c>.membership_total|membership_healthy|membership_degraded|membership_excluded|max_host_weight  gauges
 *   cluster.<c>.membership_change                                                          counter
 *   cluster.<c>.update_attempt|update_success|update_rejected|update_failure|update_empty|init_fetch_timeout  (EDS: from the ADS client)
 *   cluster.<c>.upstream_cx_active, cluster.<c>.upstream_rq_active                         gauges (Redis pools)
 *   cluster.<c>.upstream_rq_total                                                          counter (Redis pools)
 *   redis.<c>.calls|errors|timeouts|error_replies                                          counters (Redis pools)
 *   redis.<c>.cx_active|pools                                                              gauges (Redis pools)
 *   wasm.envoy.wasm.runtime.v8.active                                                      gauge: plugins not failed
 *   wasmcustom.<name>                                                                      plugin-defined metrics
 *
 * Tags (Prometheus labels) come from Envoy's tag extraction (tag-extractor.ts) over the full names, with the
 * bootstrap's `stats_config` (default: Envoy's default tags, so `cluster.<c>.*` and `redis.<c>.*` carry
 * `envoy.cluster_name`, and their tag-extracted names are `cluster.<stat>` and `redis.<stat>`). `wasmcustom.` is a
 * custom namespace: Prometheus output strips it and adds no `envoy_` prefix (Envoy's behaviour for Wasm custom
 * metrics).
 */
import type { WorkerPoolStatus } from '../workers/worker-pool';
import type { Disposable } from '../common/disposable';
import type { ClusterEvent, LiveCluster } from '../upstream/cluster-manager';
import type { TrafficSnapshot } from '../upstream/traffic-stats';
import type { ClusterConfig } from '../upstream/types';
import type { RedisStats } from '../redis/pool-manager';
import type { PluginMetric } from '../services/metrics';
import type { XdsStatus } from '../xds/status';
import { TagProducer } from './tag-extractor';
import { StatsMatcher } from './stats-matcher';

export type StatKind = 'counter' | 'gauge' | 'histogram';

interface StatBase {
  /** The full Envoy name, e.g. `cluster.redis-a.membership_total`. */
  readonly name: string;
  /**
   * The name with tag values removed (Envoy's tag-extracted name), e.g. `cluster.membership_total`; for custom
   * namespaces, without the namespace.
   */
  readonly tagExtractedName: string;
  /** Tag name -> value, in Envoy's extraction order (Prometheus prints the labels in this order). */
  readonly tags: Readonly<Record<string, string>>;
  /** True for `wasmcustom.*`: Prometheus output has no `envoy_` prefix. */
  readonly customNamespace: boolean;
}

export interface ScalarStat extends StatBase {
  readonly kind: 'counter' | 'gauge';
  readonly value: number | bigint;
}

export interface HistogramStat extends StatBase {
  readonly kind: 'histogram';
  readonly count: number;
  readonly sum: number;
  /** The most recent observations (the registry keeps the last 1024). */
  readonly samples: readonly number[];
  /** Stable identity of the underlying metric, so exporters can feed only new observations. */
  readonly id: string;
}

export type Stat = ScalarStat | HistogramStat;

/** Envoy's tag name for a cluster (`envoy_cluster_name` as a Prometheus label). */
export const CLUSTER_TAG = 'envoy.cluster_name';
export const WASM_CUSTOM_NAMESPACE = 'wasmcustom';

/** Envoy's `server.state` gauge values. */
const STATE_VALUE: Readonly<Record<string, number>> = { LIVE: 0, DRAINING: 1, PRE_INITIALIZING: 2, INITIALIZING: 3 };

export interface StatsInputs {
  readonly state: string;
  readonly uptimeSeconds: number;
  readonly active: readonly LiveCluster[];
  readonly warming: readonly ClusterConfig[];
  readonly xds: XdsStatus | undefined;
  readonly redis: RedisStats | undefined;
  readonly pluginMetrics: readonly PluginMetric[];
  /** Other components' counters by full Envoy name (listener protocol stats: `http.<stat_prefix>.*`, `listener.*`). */
  readonly counters?: Readonly<Record<string, number>> | undefined;
  /** Routed HTTP requests per cluster (cluster.<name>.upstream_rq_*). */
  readonly traffic?: TrafficSnapshot | undefined;
  readonly pluginsActive: number;
  /** Worker threads, when there are any (server.concurrency / workers_live / workers_restarting / worker_restarts). */
  readonly workers?: WorkerPoolStatus | undefined;
}

/** The stat-name form of a cluster name: `alt_stat_name` if set, `:` → `_` (Envoy). */
export function clusterStatName(config: ClusterConfig): string {
  const alt = config.source['alt_stat_name'];
  const name = typeof alt === 'string' && alt !== '' ? alt : config.name;
  return name.replace(/:/g, '_');
}

/**
 * Counts cluster manager events (cluster_added/modified/removed, membership_change), which no source keeps.
 * Subscribe it before the first cluster is added; clusters that exist when it subscribes count as added
 * (Envoy counts static clusters in cluster_added).
 */
export class ClusterEventCounters {
  added = 0;
  modified = 0;
  removed = 0;
  private readonly membershipChanges = new Map<string, number>();
  private readonly configUpdated = new Map<string, Date>();
  private readonly subscription: Disposable;

  constructor(source: {
    activeClusters(): Iterable<LiveCluster>;
    warming(): Iterable<ClusterConfig>;
    onEvent(listener: (event: ClusterEvent) => void): Disposable;
  }) {
    for (const c of source.activeClusters()) {
      this.added++;
      this.membershipChanges.set(c.name, 1);
    }
    for (const _warming of source.warming()) this.added++;
    this.subscription = source.onEvent((e) => this.onEvent(e));
  }

  /** When a cluster's current definition was applied (added or updated), if seen. */
  lastConfigUpdate(name: string): Date | undefined {
    return this.configUpdated.get(name);
  }

  membershipChange(name: string): number {
    return this.membershipChanges.get(name) ?? 0;
  }

  dispose(): void {
    this.subscription.dispose();
  }

  private onEvent(e: ClusterEvent): void {
    switch (e.type) {
      case 'added':
        this.added++;
        this.membershipChanges.set(e.cluster.name, (this.membershipChanges.get(e.cluster.name) ?? 0) + 1);
        this.configUpdated.set(e.cluster.name, new Date());
        break;
      case 'updated':
        this.modified++;
        this.membershipChanges.set(e.cluster.name, (this.membershipChanges.get(e.cluster.name) ?? 0) + 1);
        this.configUpdated.set(e.cluster.name, new Date());
        break;
      case 'membership':
        this.membershipChanges.set(e.cluster.name, (this.membershipChanges.get(e.cluster.name) ?? 0) + 1);
        break;
      case 'removed':
        this.removed++;
        this.membershipChanges.delete(e.name);
        this.configUpdated.delete(e.name);
        break;
    }
  }
}

/** A stat before tag extraction: its full name and value. */
type RawStat =
  | { readonly kind: 'counter' | 'gauge'; readonly name: string; readonly value: number | bigint }
  | { readonly kind: 'histogram'; readonly name: string; readonly count: number; readonly sum: number; readonly samples: readonly number[]; readonly id: string };

function scalar(kind: 'counter' | 'gauge', name: string, value: number | bigint): RawStat {
  return { kind, name, value };
}

function scoped(kind: 'counter' | 'gauge', prefix: string, tagValue: string, stat: string, value: number | bigint): RawStat {
  return { kind, name: `${prefix}.${tagValue}.${stat}`, value };
}

const CUSTOM_PREFIX = `${WASM_CUSTOM_NAMESPACE}.`;

/** Envoy's tags for the sidecar when the bootstrap has no stats_config. */
export const DEFAULT_TAG_PRODUCER = new TagProducer();

/** Tags a raw stat the way Envoy's stats store does (tag extraction on the full name). */
function withTags(raw: RawStat, producer: TagProducer): Stat {
  const { tagExtractedName, tags } = producer.produce(raw.name);
  const tagObject: Record<string, string> = {};
  // Envoy keeps every tag; a name that two extractors produce keeps the first (the dedup in TagProducer).
  for (const t of tags) if (!Object.hasOwn(tagObject, t.name)) tagObject[t.name] = t.value;
  // A custom namespace is recognised on the tag-extracted name, as Envoy's Prometheus formatter does.
  const customNamespace = tagExtractedName.startsWith(CUSTOM_PREFIX);
  const base = { name: raw.name, tagExtractedName: customNamespace ? tagExtractedName.slice(CUSTOM_PREFIX.length) : tagExtractedName, tags: tagObject, customNamespace };
  return raw.kind === 'histogram' ? { ...raw, ...base } : { ...raw, ...base };
}

/**
 * Every stat the stats_matcher keeps, sorted by name; tags from `tags` (the bootstrap's stats_config, default
 * Envoy's default tags).
 */
export function collectStats(inputs: StatsInputs, events: ClusterEventCounters, tags: TagProducer = DEFAULT_TAG_PRODUCER, matcher: StatsMatcher = StatsMatcher.ACCEPT_ALL): Stat[] {
  const out: RawStat[] = [];
  out.push(scalar('gauge', 'server.state', STATE_VALUE[inputs.state] ?? 2));
  out.push(scalar('gauge', 'server.live', inputs.state === 'LIVE' ? 1 : 0));
  out.push(scalar('gauge', 'server.uptime', Math.floor(inputs.uptimeSeconds)));

  out.push(scalar('gauge', 'cluster_manager.active_clusters', inputs.active.length));
  out.push(scalar('gauge', 'cluster_manager.warming_clusters', inputs.warming.length));
  out.push(scalar('counter', 'cluster_manager.cluster_added', events.added));
  out.push(scalar('counter', 'cluster_manager.cluster_modified', events.modified));
  out.push(scalar('counter', 'cluster_manager.cluster_removed', events.removed));

  const xds = inputs.xds;
  if (xds) {
    for (const [k, v] of Object.entries(xds.counters.cds)) out.push(scalar('counter', `cluster_manager.cds.${k}`, v));
    // LDS counts under Envoy's listener_manager.lds.* (RDS and ECDS are per HCM / per filter in Envoy: not emitted).
    for (const [k, v] of Object.entries(xds.counters.dynamic?.['lds'] ?? {})) out.push(scalar('counter', `listener_manager.lds.${k}`, v));
    out.push(scalar('gauge', 'control_plane.connected_state', xds.counters.control_plane.connected_state));
  }

  const redisByCluster = new Map((inputs.redis?.clusters ?? []).map((c) => [c.cluster, c]));
  for (const cluster of inputs.active) {
    const c = clusterStatName(cluster.config);
    const hosts = cluster.hosts;
    out.push(scoped('gauge', 'cluster', c, 'membership_total', hosts.length));
    out.push(scoped('gauge', 'cluster', c, 'membership_healthy', hosts.filter((h) => h.health === 'HEALTHY' || h.health === 'UNKNOWN').length));
    out.push(scoped('gauge', 'cluster', c, 'membership_degraded', hosts.filter((h) => h.health === 'DEGRADED').length));
    out.push(scoped('gauge', 'cluster', c, 'membership_excluded', 0));
    out.push(scoped('gauge', 'cluster', c, 'max_host_weight', hosts.reduce((m, h) => Math.max(m, h.weight), 0)));
    out.push(scoped('counter', 'cluster', c, 'membership_change', events.membershipChange(cluster.name)));
    const eds = cluster.config.type === 'EDS' ? xds?.counters.eds[cluster.config.edsServiceName] : undefined;
    for (const k of ['update_attempt', 'update_success', 'update_rejected', 'update_failure', 'update_empty', 'init_fetch_timeout'] as const) {
      out.push(scoped('counter', 'cluster', c, k, eds?.[k] ?? 0));
    }
    const r = redisByCluster.get(cluster.name);
    const t = inputs.traffic?.[cluster.name];
    out.push(scoped('gauge', 'cluster', c, 'upstream_cx_active', r?.cx_active ?? 0));
    out.push(scoped('gauge', 'cluster', c, 'upstream_rq_active', (r?.hosts.reduce((n, h) => n + h.rq_active, 0) ?? 0) + (t?.active ?? 0)));
    // One cluster's requests, whoever made them: Redis calls from plugins and HTTP requests the router sent.
    out.push(scoped('counter', 'cluster', c, 'upstream_rq_total', (r?.hosts.reduce((n, h) => n + h.rq_total, 0) ?? 0) + (t?.counters['upstream_rq_total'] ?? 0)));
    for (const [k, v] of Object.entries(t?.counters ?? {})) if (k !== 'upstream_rq_total') out.push(scoped('counter', 'cluster', c, k, v));
  }

  for (const r of inputs.redis?.clusters ?? []) {
    const c = r.cluster.replace(/:/g, '_');
    out.push(scoped('counter', 'redis', c, 'calls', r.calls));
    out.push(scoped('counter', 'redis', c, 'errors', r.errors));
    out.push(scoped('counter', 'redis', c, 'timeouts', r.timeouts));
    out.push(scoped('counter', 'redis', c, 'error_replies', r.error_replies));
    out.push(scoped('gauge', 'redis', c, 'cx_active', r.cx_active));
    out.push(scoped('gauge', 'redis', c, 'pools', r.pools));
  }

  out.push(scalar('gauge', 'wasm.envoy.wasm.runtime.v8.active', inputs.pluginsActive));

  if (inputs.workers) {
    out.push(scalar('gauge', 'server.concurrency', inputs.workers.concurrency));
    out.push(scalar('gauge', 'server.workers_live', inputs.workers.live));
    out.push(scalar('gauge', 'server.workers_restarting', inputs.workers.restarting));
    out.push(scalar('counter', 'server.worker_restarts', inputs.workers.restarts));
  }

  // A name may already be out (cluster.<c>.upstream_cx_connect_fail from routed HTTP and from tcp_proxy): one sum.
  const counterAt = new Map<string, number>();
  out.forEach((stat, i) => { if (stat.kind === 'counter') counterAt.set(stat.name, i); });
  for (const [name, value] of Object.entries(inputs.counters ?? {})) {
    const i = counterAt.get(name);
    const existing = i === undefined ? undefined : out[i];
    if (i !== undefined && existing && existing.kind === 'counter') out[i] = scalar('counter', name, Number(existing.value) + value);
    else out.push(scalar('counter', name, value));
  }

  for (const m of inputs.pluginMetrics) {
    const name = `${CUSTOM_PREFIX}${m.name}`;
    if (m.type === 2) {
      out.push({ kind: 'histogram', name, count: m.count, sum: Number(m.sum), samples: m.samples.map(Number), id: `${m.type}:${m.id}` });
    } else {
      out.push({ kind: m.type === 0 ? 'counter' : 'gauge', name, value: m.value });
    }
  }
  return out.filter((r) => matcher.accepts(r.name)).map((r) => withTags(r, tags)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** Envoy's quantiles for /stats histograms. */
export const SUPPORTED_QUANTILES = [0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100] as const;

/** Quantiles (percent) of the recorded samples, linearly interpolated; undefined when there are none. */
export function quantiles(samples: readonly number[]): number[] | undefined {
  if (samples.length === 0) return undefined;
  const sorted = [...samples].sort((a, b) => a - b);
  return SUPPORTED_QUANTILES.map((q) => {
    const pos = (q / 100) * (sorted.length - 1);
    const lo = Math.floor(pos);
    const hi = Math.ceil(pos);
    return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
  });
}
