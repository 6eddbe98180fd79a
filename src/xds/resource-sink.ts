import type { Disposable } from '../common/disposable';
import type { JsonObject } from './proto-json';

/**
 * The seam between the xDS client and the managers it feeds (data flows one way: xDS -> managers). The client
 * decodes and validates a whole response first (a resource that fails decode or `validate.rules` NACKs the
 * response and changes nothing); what passes reaches the type's sink.
 */

/** One resource of a response that decoded and validated, as proto3 JSON (snake_case, Any resolved). */
export interface DeliveredResource {
  readonly name: string;
  /** The response's version_info (SotW) or the resource's version (Delta). */
  readonly version: string;
  /**
   * The resource as proto3 JSON with every Any of a known type resolved (`{"@type", ...fields}`); an Any of a type
   * the registry does not know stays `{"@type", "value": base64}` for the manager to refuse with its path.
   */
  readonly resource: JsonObject;
}

/**
 * A consumer of one dynamic resource type: LDS -> the listener manager, RDS -> route configurations,
 * ECDS -> extension configurations (CDS/EDS keep their ClusterSink). `update` gets the resources a response
 * added or changed and the names it removed (SotW: absent from a full-state response of a wildcard type;
 * Delta: removed_resources; any type: a name whose last watch was disposed). An unchanged resource resent is
 * not delivered again. It returns the per-resource build errors (name -> reason): the response is then NACKed
 * with them, and the valid resources stay applied (Envoy's rule for LDS, RDS and ECDS: per resource).
 * A thrown error (or a rejected promise) NACKs the response as a whole. Calls for one type never overlap:
 * the next response of the type waits for the promise.
 */
export interface ResourceSink {
  update(resources: readonly DeliveredResource[], removed: readonly string[]): ReadonlyMap<string, string> | Promise<ReadonlyMap<string, string>>;
  /**
   * Named types: the initial fetch of these names ended without a resource (the watch's initial_fetch_timeout,
   * or the client's does-not-exist timer): Envoy finishes warming with what it has (ECDS: the default_config).
   * They stay subscribed; a resource that comes later is delivered through update().
   */
  missing?(names: readonly string[]): void;
}

export interface WatchOptions {
  /**
   * The watching config source's initial_fetch_timeout in ms (HCM `rds.config_source`, ECDS
   * `config_discovery.config_source`). 0 or absent: the client's does-not-exist timer (15 s by default) still
   * ends the wait, so a resource that never comes cannot hold initialization for ever.
   */
  readonly initialFetchTimeoutMs?: number;
}

/** Named subscriptions the managers ask for: an HCM's `rds.route_config_name`, an ECDS filter's config name. */
export interface ResourceSubscriber {
  /**
   * Starts watching `name` of `typeUrl` (RDS_TYPE_URL or ECDS_TYPE_URL; reference-counted); its resource arrives
   * through that type's sink. Disposing the last watch of a name unsubscribes it and tells the sink it is removed.
   * Watches made in one tick are sent as one request.
   */
  watch(typeUrl: string, name: string, options?: WatchOptions): Disposable;
}
