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
  readonly resource: JsonObject;
}

/**
 * A consumer of one dynamic resource type: LDS -> the listener manager, RDS -> route configurations,
 * ECDS -> extension configurations (CDS/EDS keep their ClusterSink). `update` gets the resources a response
 * added or changed and the names it removed (SotW: absent from a full-state response of a wildcard type;
 * Delta: removed_resources). It returns the per-resource build errors (name -> reason): the response is then
 * NACKed with them, and the valid resources stay applied as Envoy's rule for that type says (LDS: per listener).
 * A thrown error NACKs the response as a whole.
 */
export interface ResourceSink {
  update(resources: readonly DeliveredResource[], removed: readonly string[]): ReadonlyMap<string, string> | Promise<ReadonlyMap<string, string>>;
}

/** Named subscriptions the managers ask for: an HCM's `rds.route_config_name`, an ECDS filter's config name. */
export interface ResourceSubscriber {
  /** Starts watching `name` of `typeUrl` (reference-counted); its resource arrives through that type's sink. */
  watch(typeUrl: string, name: string): Disposable;
}
