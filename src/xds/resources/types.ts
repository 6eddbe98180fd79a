import type { EnvoyProtos } from '../protos';
import type { ProtoValidator } from '../validate';

/** A decoded xDS resource: its name and either the domain value or every error found (with field paths). */
export type Decoded<T> =
  | { readonly name: string; readonly ok: true; readonly value: T }
  | {
      readonly name: string;
      readonly ok: false;
      readonly errors: readonly string[];
      /**
       * Where Envoy finds the error, which decides what else of the response is applied: 'decode' errors
       * (malformed bytes, protoc-gen-validate rules) are found while the whole response is decoded and reject all
       * of it; 'build' errors are found creating the resource and follow the type's partial-apply rule.
       */
      readonly stage: 'decode' | 'build';
    };

export interface DecodeContext {
  readonly protos: EnvoyProtos;
  readonly validator: ProtoValidator;
}

/**
 * One xDS resource type (xds.md §3-5): the subscription engine (ads-client.ts) is generic over these. Every
 * type's resource name is field 1 of its message, which the engine reads from the wire without decoding.
 */
export interface ResourceType<T> {
  readonly typeUrl: string;
  /** Short name for logs and stats: cds, eds, lds, rds, ecds. */
  readonly id: string;
  /** The message's full name (`envoy.config.cluster.v3.Cluster`). */
  readonly messageName: string;
  /**
   * Wildcard types (CDS, LDS) subscribe to everything and a SotW response is the full state: a resource it leaves
   * out is removed. Named types (EDS, RDS, ECDS) request names; absence from a SotW response removes nothing.
   */
  readonly wildcard: boolean;
  /**
   * Types whose initial fetch finishes before this type is first requested (Envoy's init order: clusters and
   * their endpoints before listeners). Named types follow their watchers instead.
   */
  readonly after: readonly string[];
  /** Decodes and validates (PGV `validate.rules` plus Envoy's checks for the type) one resource's bytes. */
  decode(ctx: DecodeContext, bytes: Uint8Array, version: string): Decoded<T>;
}
