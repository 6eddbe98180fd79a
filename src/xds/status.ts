import type { JsonObject } from './proto-json';

/**
 * Read-only views of the xDS client's state, for /config_dump, /stats and /ready (the admin layer renders them).
 * Everything here is plain data; the client hands out fresh snapshots.
 */

/**
 * Envoy admin `ClientResourceStatus` (the subset this client produces). DOES_NOT_EXIST: an EDS name whose
 * does-not-exist timer fired before any CLA came, or whose TTL expired.
 */
export type ResourceStatusKind = 'REQUESTED' | 'ACKED' | 'NACKED' | 'DOES_NOT_EXIST';

export interface UpdateFailure {
  /** The rejection message (what went into error_detail). */
  readonly details: string;
  /** The version_info of the rejected response (SotW) or the resource version (Delta). */
  readonly versionInfo: string;
  readonly lastUpdateAttempt: Date;
}

export interface ResourceStatus {
  readonly name: string;
  readonly status: ResourceStatusKind;
  /** Version at which the current (accepted) value arrived; '' if none was ever accepted. */
  readonly version: string;
  readonly lastUpdated: Date | undefined;
  /** The last rejection of this resource, kept until a later version is accepted. */
  readonly error: UpdateFailure | undefined;
  /** LDS/RDS/ECDS: the accepted resource as proto3 JSON (what its sink got), for /config_dump. */
  readonly resource?: JsonObject;
}

export interface TypeStatus {
  readonly typeUrl: string;
  /** Last accepted version_info (SotW) or system_version_info (Delta). */
  readonly versionInfo: string;
  readonly lastUpdated: Date | undefined;
  /** The last response rejected for this type, if the latest response was a NACK. */
  readonly lastError: UpdateFailure | undefined;
  readonly resources: readonly ResourceStatus[];
  /** LDS/RDS/ECDS: this type's subscription counters (listener_manager.lds.*, rds.*, extension_config_discovery.*). */
  readonly counters?: Readonly<SubscriptionCounters>;
}

/** Envoy's subscription stats (`cluster_manager.cds.*`, `cluster.<name>.update_*`). */
export interface SubscriptionCounters {
  update_attempt: number;
  update_success: number;
  update_rejected: number;
  update_failure: number;
  update_empty: number;
  /**
   * CDS/LDS: initial_fetch_timeout fired. EDS/RDS/ECDS: a name's does-not-exist timer fired (Envoy's
   * init_fetch_timeout of that subscription).
   */
  init_fetch_timeout: number;
}

export interface XdsCounters {
  readonly cds: Readonly<SubscriptionCounters>;
  /** Per EDS service name (Envoy keys these by cluster; for Istio/Higress the service name is the cluster name). */
  readonly eds: Readonly<Record<string, Readonly<SubscriptionCounters>>>;
  /** Per type id ('lds', 'rds', 'ecds'), for the types this client subscribes to through sinks. */
  readonly dynamic?: Readonly<Record<string, Readonly<SubscriptionCounters>>>;
  readonly control_plane: {
    readonly connected_state: 0 | 1;
    readonly streams_opened: number;
    readonly responses_received: number;
    readonly acks_sent: number;
    readonly nacks_sent: number;
  };
}

export interface XdsStatus {
  readonly connected: boolean;
  readonly initialized: boolean;
  readonly apiType: 'GRPC' | 'DELTA_GRPC';
  readonly types: readonly TypeStatus[];
  readonly counters: XdsCounters;
}

export function emptyCounters(): SubscriptionCounters {
  return { update_attempt: 0, update_success: 0, update_rejected: 0, update_failure: 0, update_empty: 0, init_fetch_timeout: 0 };
}
