import type { UpstreamProtocol } from '../http/protocol-options';
import type { UpstreamTls } from '../tls/tls-context';
/**
 * The upstream model every consumer sees: clusters as Envoy defines them, reduced to what the sidecar acts on.
 * Producers (bootstrap, xDS) build ClusterConfig values; the ClusterManager turns them into live clusters and
 * emits events; Redis pools and the HTTP router subscribe. Nothing here knows about pools or xDS.
 */

/** Envoy `Cluster.DiscoveryType`; `UNSUPPORTED` covers `cluster_type` extensions (redis, aggregate, ...). */
export type DiscoveryType = 'STATIC' | 'STRICT_DNS' | 'LOGICAL_DNS' | 'EDS' | 'ORIGINAL_DST' | 'UNSUPPORTED';

/** Envoy `Cluster.LbPolicy` names. ROUND_ROBIN, LEAST_REQUEST and RANDOM are implemented; others fall back to ROUND_ROBIN. */
export type LbPolicy =
  | 'ROUND_ROBIN'
  | 'LEAST_REQUEST'
  | 'RING_HASH'
  | 'RANDOM'
  | 'MAGLEV'
  | 'CLUSTER_PROVIDED'
  | 'LOAD_BALANCING_POLICY_CONFIG';

/** Envoy `core.v3.HealthStatus`. Only HEALTHY and UNKNOWN hosts take traffic. */
export type HealthStatus = 'UNKNOWN' | 'HEALTHY' | 'UNHEALTHY' | 'DRAINING' | 'TIMEOUT' | 'DEGRADED';

export interface Locality {
  readonly region: string;
  readonly zone: string;
  readonly subZone: string;
}

/** An endpoint as configured (STATIC load_assignment, EDS LbEndpoint, or a DNS name still to resolve). */
export interface HostSpec {
  readonly address: string;
  readonly port: number;
  readonly health: HealthStatus;
  readonly weight: number;
  readonly priority: number;
  readonly hostname: string;
  readonly locality: Locality;
}

/** A resolved upstream host. `key` is `address:port`, the identity pools are keyed by. */
export interface Host extends HostSpec {
  readonly key: string;
}

export interface ClusterConfig {
  readonly name: string;
  readonly type: DiscoveryType;
  /** Why an UNSUPPORTED/ORIGINAL_DST cluster can't carry plugin traffic, e.g. `cluster_type envoy.clusters.redis`. */
  readonly typeDetail: string;
  readonly lbPolicy: LbPolicy;
  readonly connectTimeoutMs: number;
  /** EDS: the ClusterLoadAssignment name to watch (`eds_cluster_config.service_name`, else the cluster name). */
  readonly edsServiceName: string;
  /**
   * EDS: `eds_cluster_config.eds_config.initial_fetch_timeout` in ms, when set. Above 0 it ends the cluster's
   * warming with no hosts, as in Envoy; 0 or undefined leaves the xDS client's does-not-exist timer in charge.
   */
  readonly edsInitialFetchTimeoutMs?: number;
  /** STATIC: the endpoints; STRICT_DNS/LOGICAL_DNS: the names to resolve. Empty for EDS. */
  readonly loadAssignment: readonly HostSpec[];
  readonly dnsRefreshRateMs: number;
  /** false for bootstrap `static_resources` clusters (CDS never modifies or removes those). */
  readonly addedViaApi: boolean;
  readonly versionInfo: string;
  /** The cluster as proto3 JSON, for /config_dump. Secrets are never in a Cluster resource. */
  readonly source: Readonly<Record<string, unknown>>;
  /** Identity of the config: an update with the same hash is a no-op and never rebuilds a pool. */
  readonly hash: string;
  /** HttpProtocolOptions (or the legacy http2_protocol_options); absent: HTTP/1.1. */
  readonly upstreamProtocol?: UpstreamProtocol;
  /** transport_socket UpstreamTlsContext; absent: plaintext. */
  readonly tls?: UpstreamTls;
}

/** Envoy's default connect_timeout. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 5000;
/** Envoy's default dns_refresh_rate. */
export const DEFAULT_DNS_REFRESH_RATE_MS = 5000;

export function hostKey(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

export function isUsable(host: HostSpec): boolean {
  return host.health === 'HEALTHY' || host.health === 'UNKNOWN';
}

/**
 * Upstream names as plugins pass them: Higress strips everything from the first `?` (init parameters)
 * before the cluster lookup (`cluster.substr(0, cluster.find('?'))`).
 */
export function stripClusterParams(upstream: string): string {
  const q = upstream.indexOf('?');
  return q === -1 ? upstream : upstream.slice(0, q);
}
