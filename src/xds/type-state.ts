import type { JsonObject } from './proto-json';
import type { ResourceStatusKind, SubscriptionCounters, TypeStatus, UpdateFailure } from './status';

/**
 * What the client keeps per resource type across streams (STYLE 3.6: stream state lives in AdsStream): the last
 * accepted version, and per resource its status and accepted bytes. /config_dump and CSDS read snapshots.
 */

export interface MutableResourceStatus {
  readonly name: string;
  status: ResourceStatusKind;
  version: string;
  lastUpdated: Date | undefined;
  error: UpdateFailure | undefined;
  /** Raw bytes of the accepted resource (a copy, never a view of a response): an identical resend is skipped. */
  raw: Buffer | undefined;
  /** The SotW EDS response that last carried this name (duplicate detection without a Set of 10 000 names). */
  epoch: number;
  /**
   * SotW EDS: the index of this CLA in the last SotW EDS response if that response carried exactly `raw` there,
   * else -1 or a stale index (checked against that response's order before use).
   */
  sotwIndex: number;
  /** EDS: this name's subscription counters (the same object as in AdsClient.edsCounters). */
  counters: SubscriptionCounters | undefined;
  /** LDS/RDS/ECDS: the accepted resource as delivered to its sink (proto3 JSON). */
  resource: JsonObject | undefined;
}

export class TypeState {
  versionInfo = '';
  lastUpdated: Date | undefined;
  lastError: UpdateFailure | undefined;
  readonly resources = new Map<string, MutableResourceStatus>();
  constructor(readonly typeUrl: string) {}

  resource(name: string): MutableResourceStatus {
    let r = this.resources.get(name);
    if (!r) {
      r = { name, status: 'REQUESTED', version: '', lastUpdated: undefined, error: undefined, raw: undefined, epoch: 0, sotwIndex: -1, counters: undefined, resource: undefined };
      this.resources.set(name, r);
    }
    return r;
  }

  /** Marks `name` rejected at `version` with `details`; its accepted value (if any) stays. */
  reject(name: string, details: string, version: string, at = new Date()): void {
    const r = this.resource(name);
    r.status = 'NACKED';
    r.error = { details, versionInfo: version, lastUpdateAttempt: at };
  }

  snapshot(counters?: SubscriptionCounters): TypeStatus {
    return {
      typeUrl: this.typeUrl,
      versionInfo: this.versionInfo,
      lastUpdated: this.lastUpdated,
      lastError: this.lastError,
      resources: [...this.resources].map(([name, r]) => ({
        name,
        status: r.status,
        version: r.version,
        lastUpdated: r.lastUpdated,
        error: r.error,
        ...(r.resource !== undefined ? { resource: r.resource } : {}),
      })),
      ...(counters ? { counters: { ...counters } } : {}),
    };
  }
}

/**
 * One resource of a response after unwrapping: where its bytes are (`buf[start, end)`, a view into the response)
 * and what its `Resource` wrapper said, if any.
 */
export interface ResponseItem {
  /** The resource's own name (field 1 of every type's message); the wrapper's for a heartbeat. */
  readonly name: string;
  readonly buf: Buffer;
  readonly start: number;
  readonly end: number;
  readonly wrapperName: string;
  /** The wrapper's `ttl` in ms; undefined when there is none (which clears a running TTL). */
  readonly ttlMs: number | undefined;
  /** A wrapper without `resource` at the current version: refreshes the TTL, changes nothing else. */
  readonly heartbeat: boolean;
  /** The resource version (SotW: the response's version_info, as Envoy's DecodedResourceImpl sets it). */
  readonly version: string;
}
