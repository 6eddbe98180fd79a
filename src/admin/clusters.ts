/**
 * GET /clusters, text and `?format=json` (envoy.admin.v3.Clusters), as Envoy's ClustersHandler writes them. Only
 * active (warmed) clusters are listed. Per-host connection and request counts come from the Redis pools where a
 * cluster carries plugin Redis calls; everything Envoy would count for HTTP traffic that we do not is 0.
 */
import type { RedisHostStats, RedisStats } from '../redis/pool-manager';
import type { HostTraffic, TrafficSnapshot } from '../upstream/traffic-stats';
import type { LiveCluster } from '../upstream/cluster-manager';
import type { Host } from '../upstream/types';
import type { AdminJson, AdminJsonObject } from './sources';

/** Envoy's default circuit breaker thresholds (no `circuit_breakers` in the cluster). */
const DEFAULT_THRESHOLDS = { max_connections: 1024, max_pending_requests: 1024, max_requests: 1024, max_retries: 3 } as const;

type ThresholdName = keyof typeof DEFAULT_THRESHOLDS;
const THRESHOLD_NAMES = Object.keys(DEFAULT_THRESHOLDS) as ThresholdName[];

interface Thresholds {
  readonly default: Readonly<Record<ThresholdName, number>>;
  readonly high: Readonly<Record<ThresholdName, number>>;
}

/** The cluster's circuit breaker thresholds (from its proto3 JSON), Envoy defaults where unset. */
export function circuitBreakers(cluster: LiveCluster): Thresholds {
  const out: { default: Record<ThresholdName, number>; high: Record<ThresholdName, number> } = {
    default: { ...DEFAULT_THRESHOLDS },
    high: { ...DEFAULT_THRESHOLDS },
  };
  const cb = cluster.config.source['circuit_breakers'];
  const list = cb && typeof cb === 'object' ? (cb as Record<string, unknown>)['thresholds'] : undefined;
  for (const t of Array.isArray(list) ? (list as unknown[]) : []) {
    if (!t || typeof t !== 'object') continue;
    const rec = t as Record<string, unknown>;
    const target = rec['priority'] === 'HIGH' ? out.high : out.default;
    for (const k of THRESHOLD_NAMES) {
      const v = rec[k];
      if (v !== undefined && v !== null) target[k] = Number(typeof v === 'object' ? (v as Record<string, unknown>)['value'] : v);
    }
  }
  return out;
}

/** Envoy's host health flags string (HostUtility::healthFlagsToString) for an EDS health status. */
export function healthFlags(host: Host): string {
  switch (host.health) {
    case 'HEALTHY':
    case 'UNKNOWN':
      return 'healthy';
    case 'UNHEALTHY':
    case 'TIMEOUT':
      return '/failed_eds_health';
    case 'DRAINING':
      return '/failed_eds_health/eds_status_draining';
    case 'DEGRADED':
      return '/degraded_eds_health';
  }
}

interface HostCounts {
  readonly cx_active: number;
  readonly cx_connect_fail: number;
  readonly cx_total: number;
  readonly rq_active: number;
  readonly rq_error: number;
  readonly rq_success: number;
  readonly rq_timeout: number;
  readonly rq_total: number;
}

const COUNTERS = ['cx_connect_fail', 'cx_total', 'rq_error', 'rq_success', 'rq_timeout', 'rq_total'] as const;
const GAUGES = ['cx_active', 'rq_active'] as const;

/** A host's counters: its Redis pool's and its routed HTTP requests', added as Envoy's one host would count both. */
function hostCounts(r: RedisHostStats | undefined, t: HostTraffic | undefined): HostCounts {
  return {
    cx_active: r?.cx_active ?? 0,
    cx_connect_fail: t?.cx_connect_fail ?? 0,
    cx_total: 0,
    rq_active: (r?.rq_active ?? 0) + (t?.rq_active ?? 0),
    rq_error: t?.rq_error ?? 0,
    rq_success: t?.rq_success ?? 0,
    rq_timeout: t?.rq_timeout ?? 0,
    rq_total: (r?.rq_total ?? 0) + (t?.rq_total ?? 0),
  };
}

function redisHosts(redis: RedisStats | undefined): Map<string, Map<string, RedisHostStats>> {
  const out = new Map<string, Map<string, RedisHostStats>>();
  for (const c of redis?.clusters ?? []) out.set(c.cluster, new Map(c.hosts.map((h) => [h.host, h])));
  return out;
}

function observabilityName(cluster: LiveCluster): string {
  const alt = cluster.config.source['alt_stat_name'];
  return typeof alt === 'string' && alt !== '' ? alt : cluster.name;
}

export function clustersText(clusters: readonly LiveCluster[], redis: RedisStats | undefined, traffic: TrafficSnapshot = {}): string {
  const byCluster = redisHosts(redis);
  const lines: string[] = [];
  for (const cluster of clusters) {
    const c = cluster.name;
    lines.push(`${c}::observability_name::${observabilityName(cluster)}`);
    const cb = circuitBreakers(cluster);
    for (const [prio, t] of [['default_priority', cb.default], ['high_priority', cb.high]] as const) {
      for (const k of THRESHOLD_NAMES) lines.push(`${c}::${prio}::${k}::${t[k]}`);
    }
    lines.push(`${c}::added_via_api::${cluster.config.addedViaApi}`);
    if (cluster.config.type === 'EDS') lines.push(`${c}::eds_service_name::${cluster.config.edsServiceName}`);
    const hostStats = byCluster.get(c);
    for (const host of cluster.hosts) {
      const h = `${c}::${host.key}`;
      const counts = hostCounts(hostStats?.get(host.key), traffic[c]?.hosts[host.key]);
      // Envoy collects the host's counters and gauges into a map sorted by name.
      for (const k of (Object.keys(counts) as (keyof HostCounts)[]).sort()) lines.push(`${h}::${k}::${counts[k]}`);
      lines.push(`${h}::hostname::${host.hostname}`);
      lines.push(`${h}::health_flags::${healthFlags(host)}`);
      lines.push(`${h}::weight::${host.weight}`);
      lines.push(`${h}::region::${host.locality.region}`);
      lines.push(`${h}::zone::${host.locality.zone}`);
      lines.push(`${h}::sub_zone::${host.locality.subZone}`);
      lines.push(`${h}::canary::false`);
      lines.push(`${h}::priority::${host.priority}`);
      lines.push(`${h}::success_rate::-1`);
      lines.push(`${h}::local_origin_success_rate::-1`);
    }
  }
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

/** proto3 JSON of envoy.admin.v3.Clusters (default values omitted, uint64 as strings). */
export function clustersJson(clusters: readonly LiveCluster[], redis: RedisStats | undefined, traffic: TrafficSnapshot = {}): AdminJsonObject {
  const byCluster = redisHosts(redis);
  const statuses: AdminJson[] = clusters.map((cluster) => {
    const cb = circuitBreakers(cluster);
    const hostStats = byCluster.get(cluster.name);
    const status: Record<string, AdminJson> = { name: cluster.name };
    if (cluster.config.addedViaApi) status['added_via_api'] = true;
    status['host_statuses'] = cluster.hosts.map((host) => hostJson(host, hostCounts(hostStats?.get(host.key), traffic[cluster.name]?.hosts[host.key])));
    status['circuit_breakers'] = {
      thresholds: [thresholdsJson(cb.default, undefined), thresholdsJson(cb.high, 'HIGH')],
    };
    status['observability_name'] = observabilityName(cluster);
    if (cluster.config.type === 'EDS') status['eds_service_name'] = cluster.config.edsServiceName;
    return status;
  });
  return statuses.length > 0 ? { cluster_statuses: statuses } : {};
}

function thresholdsJson(t: Readonly<Record<ThresholdName, number>>, priority: 'HIGH' | undefined): AdminJsonObject {
  return { ...(priority ? { priority } : {}), ...t };
}

function hostJson(host: Host, counts: HostCounts): AdminJsonObject {
  const stats: AdminJson[] = [];
  for (const k of COUNTERS) stats.push(counts[k] === 0 ? { name: k } : { value: String(counts[k]), name: k });
  for (const k of GAUGES) stats.push(counts[k] === 0 ? { type: 'GAUGE', name: k } : { type: 'GAUGE', value: String(counts[k]), name: k });
  const out: Record<string, AdminJson> = {
    address: { socket_address: { address: host.address, port_value: host.port } },
    stats,
    health_status: healthStatusJson(host),
    weight: host.weight,
  };
  if (host.hostname !== '') out['hostname'] = host.hostname;
  if (host.priority !== 0) out['priority'] = host.priority;
  const locality: Record<string, AdminJson> = {};
  if (host.locality.region) locality['region'] = host.locality.region;
  if (host.locality.zone) locality['zone'] = host.locality.zone;
  if (host.locality.subZone) locality['sub_zone'] = host.locality.subZone;
  out['locality'] = locality;
  return out;
}

/** envoy.admin.v3.HostHealthStatus: a host with no EDS health flag reports HEALTHY (Envoy's edsHealthStatus()). */
function healthStatusJson(host: Host): AdminJsonObject {
  const eds = host.health === 'UNKNOWN' ? 'HEALTHY' : host.health;
  return { eds_health_status: eds };
}
