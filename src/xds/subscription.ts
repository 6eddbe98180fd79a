import type { Logger } from '../common/logger';
import type { DecodeContext } from './resources/types';
import type { TypeState, ResponseItem } from './type-state';
import type { RawDiscoveryResponse } from './wire';

/**
 * What the ADS client (ads-client.ts) drives per resource type: the client owns the stream, nonces, unwrapping,
 * ACK/NACK and the init order; a subscription owns what is requested and how a response is applied. One
 * module per kind: cluster-subscription.ts (CDS), endpoint-subscription.ts (EDS), sink-subscription.ts (LDS,
 * RDS, ECDS: delivered to a ResourceSink).
 */
export interface TypeSubscription {
  readonly typeUrl: string;
  /** Wildcard (CDS, LDS): a response is handled only while subscribed. Named: unrequested names are ignored. */
  readonly wildcard: boolean;
  /** Versions, per-resource status (kept across streams). */
  readonly state: TypeState;
  /** Types whose initial fetch must be done before this one is first requested (Envoy's init order). */
  readonly after: readonly string[];
  /** Whether a request for the type belongs on the stream now. */
  readonly active: boolean;
  /** The initial fetch is over (first response, or its timeout): initialization may pass this type. */
  readonly fetched: boolean;
  /** The initial fetch ended by a timeout. */
  readonly timedOut: boolean;
  /** The init order reached this type (its `after` types are fetched): start requesting it. */
  start(): void;
  /** SotW `resource_names` ([] for a wildcard type). The same array while it does not change. */
  names(): readonly string[];
  /** Delta: subscribe/unsubscribe since the last request; records the new set as sent. */
  deltaDiff(): { subscribe: string[]; unsubscribe: string[] };
  /** SotW: the names just requested are on the stream. */
  markSent(): void;
  /** A new stream: nothing of the type is subscribed on it yet. */
  resetStream(): void;
  /** Delta `initial_resource_versions` for a new stream. */
  initialVersions(): Record<string, string>;
  /** Applies a SotW response (errors: NACK details). May be asynchronous; responses of a type never overlap. */
  onSotw(msg: RawDiscoveryResponse, errors: string[]): void | Promise<void>;
  /** Applies a Delta response; `items` undefined: rejected by the client already (type mismatch, duplicates). */
  onDelta(items: readonly ResponseItem[] | undefined, removed: readonly string[], errors: string[]): void | Promise<void>;
  /** After the ACK/NACK of a response went out (CDS: the one EDS request with the new name set). */
  afterResponse?(): void;
  /** The stream failed (Envoy's update_failure). */
  streamFailed(): void;
  close(): void;
}

/** What a subscription may ask of the client. */
export interface SubscriptionHost {
  readonly ctx: DecodeContext;
  readonly logger: Logger;
  /** The does-not-exist timer of a newly requested name (xds.md §4): default 15 s; 0: none. */
  readonly resourceTimeoutMs: number;
  /** The names to request changed: send the type's request now (no-op without a stream). */
  namesChanged(sub: TypeSubscription): void;
  /** Initialization may have progressed. */
  initialFetchDone(sub: TypeSubscription): void;
  /** Names whose does-not-exist timer fired. */
  notFound(sub: TypeSubscription, names: readonly string[]): void;
  /** Runs `task` in the type's order (after the response being applied, if any). */
  serialize(sub: TypeSubscription, task: () => void | Promise<void>): void;
  /** The resources of a SotW response as items (undefined when an Any's type rejects the whole response). */
  sotwItems(msg: RawDiscoveryResponse, typeUrl: string, errors: string[]): ResponseItem[] | undefined;
}

/**
 * Runs tasks one after another; a task starts synchronously when nothing runs (CDS and EDS are applied in the
 * 'data' callback itself, as before), and one that returns a promise holds the next until it settles.
 */
export class SerialQueue {
  private busy = false;
  private readonly waiting: (() => void | Promise<void>)[] = [];
  constructor(private readonly onError: (err: unknown) => void) {}

  run(task: () => void | Promise<void>): void {
    if (this.busy) {
      this.waiting.push(task);
      return;
    }
    this.execute(task);
  }

  private execute(task: () => void | Promise<void>): void {
    this.busy = true;
    let result: void | Promise<void>;
    try {
      result = task();
    } catch (err) {
      this.onError(err);
      result = undefined;
    }
    if (result instanceof Promise) {
      result.catch(this.onError).finally(() => {
        this.busy = false;
        this.next();
      });
      return;
    }
    this.busy = false;
    this.next();
  }

  private next(): void {
    const task = this.waiting.shift();
    if (task) this.execute(task);
  }
}
