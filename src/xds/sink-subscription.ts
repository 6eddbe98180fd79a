import type { Disposable } from '../common/disposable';
import { DeadlineSet, setTtl } from './deadlines';
import type { JsonObject } from './proto-json';
import type { DeliveredResource, ResourceSink, WatchOptions } from './resource-sink';
import type { ResourceType } from './resources/types';
import { emptyCounters } from './status';
import type { SubscriptionHost, TypeSubscription } from './subscription';
import { TypeState, type ResponseItem } from './type-state';
import { rangeEquals, type RawDiscoveryResponse } from './wire';

/**
 * The subscription to one resource type that is delivered to a ResourceSink (LDS, RDS, ECDS): what is requested
 * (wildcard, or the watched names with their reference counts), how a response is applied, and the initial-fetch
 * bookkeeping. The ADS client owns the stream and the ACK/NACK; this owns the type's state across streams.
 *
 * Applying a response follows Envoy: every changed resource is decoded and validated first, and one failing
 * there (or a duplicate name) rejects the response with nothing applied and nothing removed; the rest reach the
 * sink in one update(), and a resource failing to build (here or in the sink) is rejected alone.
 */

export class SinkSubscription implements TypeSubscription {
  readonly state: TypeState;
  readonly counters = emptyCounters();
  /** Named types: watched names and their reference counts, in the order first watched. */
  private readonly refs = new Map<string, number>();
  /** Names whose last watch was disposed: removed at the next flush unless watched again meanwhile. */
  private readonly released = new Set<string>();
  /** What the last request of the current stream carried (Delta diffs against it). */
  sent: ReadonlySet<string> = new Set();
  /** Wildcard types: requested (LDS starts once the clusters are initialized). */
  started = false;
  /** Names watched before initialization whose first response has not come yet. */
  readonly initPending = new Set<string>();
  /** Wildcard types: the first response (or the initial fetch timeout) has not come yet. */
  private awaitingFirst = true;
  timedOut = false;
  private initTimer: NodeJS.Timeout | undefined;
  private readonly notFoundTimers: DeadlineSet;
  /** Per-resource TTLs from Resource wrappers (xds.md §7): an expired resource is removed. */
  private readonly ttl: DeadlineSet;
  private flushScheduled = false;

  constructor(
    readonly type: ResourceType<JsonObject>,
    readonly sink: ResourceSink,
    private readonly host: SubscriptionHost,
    /** Wildcard types: the config source's initial_fetch_timeout (lds_config); 0 waits for ever. */
    private readonly initialFetchTimeoutMs = 0,
  ) {
    this.state = new TypeState(type.typeUrl);
    this.notFoundTimers = new DeadlineSet((names) => this.onNotFound(names));
    this.ttl = new DeadlineSet((names) => this.host.serialize(this, () => this.expire(names)));
  }

  get typeUrl(): string {
    return this.type.typeUrl;
  }

  get wildcard(): boolean {
    return this.type.wildcard;
  }

  get after(): readonly string[] {
    return this.type.after;
  }

  /** Wildcard: its first response came (or timed out). Named: every name watched while initializing came. */
  get fetched(): boolean {
    return this.type.wildcard ? this.started && !this.awaitingFirst : this.initPending.size === 0;
  }

  /** The init order reached a wildcard type (LDS after the clusters): subscribe, and start its fetch timer. */
  start(): void {
    if (!this.type.wildcard || this.started) return;
    this.started = true;
    if (this.initialFetchTimeoutMs > 0) {
      this.initTimer = setTimeout(() => {
        this.initTimer = undefined;
        if (!this.awaitingFirst) return;
        this.counters.init_fetch_timeout++;
        this.awaitingFirst = false;
        this.timedOut = true;
        this.host.logger.warn({ typeUrl: this.typeUrl, timeoutMs: this.initialFetchTimeoutMs }, 'initial fetch timed out; continuing');
        this.host.initialFetchDone(this);
      }, this.initialFetchTimeoutMs);
      this.initTimer.unref();
    }
    this.host.namesChanged(this);
  }

  onSotw(msg: RawDiscoveryResponse, errors: string[]): Promise<void> {
    return this.apply(this.host.sotwItems(msg, this.typeUrl, errors), this.type.wildcard ? 'absent' : [], errors);
  }

  onDelta(items: readonly ResponseItem[] | undefined, removed: readonly string[], errors: string[]): Promise<void> {
    return this.apply(items, removed, errors);
  }

  streamFailed(): void {
    if (this.active) this.counters.update_failure++;
  }

  /** Whether a request for this type belongs on the stream. */
  get active(): boolean {
    return this.type.wildcard ? this.started : this.refs.size > 0 || this.sent.size > 0;
  }

  /** SotW `resource_names` ([] for a wildcard type). */
  names(): string[] {
    return this.type.wildcard ? [] : [...this.refs.keys()];
  }

  /** Delta: what to subscribe and unsubscribe since the last request; records the new set as sent. */
  deltaDiff(): { subscribe: string[]; unsubscribe: string[] } {
    const wanted = this.type.wildcard ? new Set(['*']) : new Set(this.refs.keys());
    const subscribe = [...wanted].filter((n) => !this.sent.has(n));
    const unsubscribe = [...this.sent].filter((n) => !wanted.has(n));
    this.sent = wanted;
    return { subscribe, unsubscribe };
  }

  /** SotW: records the names just requested. */
  markSent(): void {
    this.sent = new Set(this.type.wildcard ? ['*'] : this.refs.keys());
  }

  /** A new stream: nothing is subscribed on it yet. */
  resetStream(): void {
    this.sent = new Set();
  }

  /** `initial_resource_versions` for a new Delta stream: the accepted resources. */
  initialVersions(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, r] of this.state.resources) if (r.raw !== undefined && r.version !== '') out[name] = r.version;
    return out;
  }

  watch(name: string, options: WatchOptions | undefined, initializing: boolean): Disposable {
    const n = this.refs.get(name) ?? 0;
    this.refs.set(name, n + 1);
    this.released.delete(name);
    if (n === 0) {
      const r = this.state.resource(name);
      if (r.raw === undefined && r.status !== 'DOES_NOT_EXIST') {
        const timeoutMs = options?.initialFetchTimeoutMs !== undefined && options.initialFetchTimeoutMs > 0 ? options.initialFetchTimeoutMs : this.host.resourceTimeoutMs;
        if (timeoutMs > 0) this.notFoundTimers.setIfAbsent(name, timeoutMs);
        if (initializing) this.initPending.add(name);
      }
      this.scheduleFlush();
    }
    let disposed = false;
    return {
      dispose: () => {
        if (disposed) return;
        disposed = true;
        const left = (this.refs.get(name) ?? 1) - 1;
        if (left > 0) {
          this.refs.set(name, left);
          return;
        }
        this.refs.delete(name);
        this.released.add(name);
        this.scheduleFlush();
      },
    };
  }

  /** Watches made or disposed in one tick become one request (a listener update may watch hundreds of names). */
  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    queueMicrotask(() => {
      this.flushScheduled = false;
      // Behind any response being applied: its ACK already carries the names then, and the sink sees the
      // removal after that response's update.
      this.host.serialize(this, () => this.flush());
    });
  }

  private async flush(): Promise<void> {
    const removed = [...this.released].filter((n) => !this.refs.has(n));
    this.released.clear();
    const told: string[] = [];
    for (const name of removed) {
      const r = this.state.resources.get(name);
      if (r?.raw !== undefined) told.push(name);
      this.state.resources.delete(name);
      this.notFoundTimers.delete(name);
      if (this.ttl.size > 0) this.ttl.delete(name);
      this.initPending.delete(name);
    }
    const changed = this.type.wildcard ? false : !sameNames(this.sent, this.refs);
    if (changed) this.host.namesChanged(this);
    if (removed.length > 0) this.host.initialFetchDone(this);
    if (told.length > 0) {
      try {
        await this.sink.update([], told);
      } catch (err) {
        this.host.logger.error({ err, typeUrl: this.typeUrl, names: told.slice(0, 10) }, 'sink failed to remove unwatched resources');
      }
    }
  }

  close(): void {
    if (this.initTimer) clearTimeout(this.initTimer);
    this.initTimer = undefined;
    this.notFoundTimers.clear();
    this.ttl.clear();
  }

  /**
   * Applies one response's resources. `removal` is 'absent' for a SotW response of a wildcard type (what it
   * leaves out is removed) or the names Delta removed; `items` undefined: the client rejected the response
   * before decoding it. Errors (NACK details) are appended to `errors`.
   */
  async apply(items: readonly ResponseItem[] | undefined, removal: 'absent' | readonly string[], errors: string[]): Promise<void> {
    const c = this.counters;
    c.update_attempt++;
    if (items === undefined) {
      // Rejected by the client already (an Any of another type, duplicate names across added and removed).
      c.update_rejected++;
      this.firstFetchEnded([...this.initPending]);
      return;
    }
    if (items.length === 0 && (removal === 'absent' || removal.length === 0)) c.update_empty++;
    const kind = this.type.id.toUpperCase();
    const errorsBefore = errors.length;
    const seen = new Set<string>();
    const delivered: DeliveredResource[] = [];
    const raws = new Map<string, Buffer>();
    const decodeErrors: [string, string, string][] = [];
    const buildErrors: [string, string, string][] = [];
    /** TTLs to (re)start or stop once the response is accepted: heartbeats, resends and new resources. */
    const ttls: [string, number | undefined][] = [];
    for (let i = 0; i < items.length; i++) {
      const u = items[i]!;
      const name = u.name || u.wrapperName;
      if (seen.has(name)) {
        decodeErrors.push([name, `${kind} resource '${name}' appears more than once in one response`, u.version]);
        continue;
      }
      seen.add(name);
      if (!this.type.wildcard && !this.refs.has(name)) continue; // not requested: ignored (xds.md §2.9)
      const prior = this.state.resources.get(name);
      if (u.heartbeat) {
        if (prior?.raw !== undefined) ttls.push([name, u.ttlMs]);
        continue; // the resource as accepted stays
      }
      if (prior?.raw !== undefined && prior.status === 'ACKED' && rangeEquals(u.buf, u.start, u.end, prior.raw)) {
        if (u.version) prior.version = u.version;
        ttls.push([name, u.ttlMs]);
        continue;
      }
      const bytes = Buffer.from(u.buf.subarray(u.start, u.end)); // a copy: the response buffer is not kept alive
      const d = this.type.decode(this.host.ctx, bytes, u.version);
      const label = d.name || name || `#${i}`;
      if (!d.ok) {
        (d.stage === 'decode' ? decodeErrors : buildErrors).push([label, `${kind} '${label}': ${d.errors.join('; ')}`, u.version]);
        continue;
      }
      delivered.push({ name: d.name, version: u.version, resource: d.value });
      raws.set(d.name, bytes);
      ttls.push([d.name, u.ttlMs]);
    }
    const now = new Date();
    if (decodeErrors.length > 0) {
      for (const [label, detail, version] of decodeErrors) {
        this.state.reject(label, detail, version, now);
        errors.push(detail);
      }
      c.update_rejected++;
      this.firstFetchEnded(this.initPending.size > 0 ? [...this.initPending] : []);
      return;
    }
    let removed: string[];
    if (removal === 'absent') {
      removed = [];
      for (const [name, r] of this.state.resources) {
        if (seen.has(name)) continue;
        if (r.raw !== undefined) removed.push(name);
        else this.state.resources.delete(name); // rejected and never accepted: nothing to remove
      }
    } else {
      removed = removal.filter((n) => this.state.resources.get(n)?.raw !== undefined);
    }
    let sinkErrors: ReadonlyMap<string, string> = new Map();
    if (delivered.length > 0 || removed.length > 0) {
      try {
        sinkErrors = await this.sink.update(delivered, removed);
      } catch (err) {
        const detail = `${kind} update failed: ${(err as Error).message}`;
        for (const d of delivered) this.state.reject(d.name, detail, d.version, now);
        errors.push(detail);
        c.update_rejected++;
        this.firstFetchEnded(delivered.map((d) => d.name));
        return;
      }
    }
    for (const d of delivered) {
      const err = sinkErrors.get(d.name);
      if (err !== undefined) {
        const detail = `${kind} '${d.name}': ${err}`;
        this.state.reject(d.name, detail, d.version, now);
        errors.push(detail);
        continue;
      }
      const r = this.state.resource(d.name);
      Object.assign(r, { status: 'ACKED', version: d.version, lastUpdated: now, error: undefined, raw: raws.get(d.name), resource: d.resource });
    }
    for (const [label, detail, version] of buildErrors) {
      this.state.reject(label, detail, version, now);
      errors.push(detail);
    }
    for (const [name, ttlMs] of ttls) if (this.state.resources.get(name)?.raw !== undefined) setTtl(this.ttl, name, ttlMs);
    this.forget(removed);
    if (errors.length > errorsBefore) c.update_rejected++;
    else c.update_success++;
    this.firstFetchEnded([...delivered.map((d) => d.name), ...buildErrors.map(([n]) => n)]);
  }

  /** Removed resources leave the status (wildcard) or become DOES_NOT_EXIST (named: still watched). */
  private forget(names: readonly string[]): void {
    for (const name of names) {
      if (this.ttl.size > 0) this.ttl.delete(name);
      if (this.type.wildcard) {
        this.state.resources.delete(name);
      } else {
        const r = this.state.resources.get(name);
        if (r) Object.assign(r, { status: 'DOES_NOT_EXIST', version: '', raw: undefined, resource: undefined });
      }
    }
  }

  /** TTLs expired: the resources are removed as a removal from the control plane would remove them. */
  private async expire(names: readonly string[]): Promise<void> {
    const expired = names.filter((n) => this.state.resources.get(n)?.raw !== undefined && !this.ttl.has(n));
    if (expired.length === 0) return;
    this.host.logger.warn({ typeUrl: this.typeUrl, names: expired.slice(0, 10), count: expired.length }, 'resource TTL expired; removing');
    try {
      await this.sink.update([], expired);
    } catch (err) {
      this.host.logger.error({ err, typeUrl: this.typeUrl }, 'sink failed to remove expired resources');
    }
    this.forget(expired);
  }

  /** A response for the type came: its names (and, for a wildcard type, the type itself) are fetched. */
  private firstFetchEnded(names: readonly string[]): void {
    for (const n of names) {
      this.notFoundTimers.delete(n);
      this.initPending.delete(n);
    }
    if (this.awaitingFirst && this.started) {
      this.awaitingFirst = false;
      if (this.initTimer) clearTimeout(this.initTimer);
      this.initTimer = undefined;
    }
    this.host.initialFetchDone(this);
  }

  private onNotFound(names: string[]): void {
    const missing: string[] = [];
    for (const name of names) {
      const r = this.state.resources.get(name);
      if (!this.refs.has(name) || !r || r.status !== 'REQUESTED') continue;
      r.status = 'DOES_NOT_EXIST';
      this.counters.init_fetch_timeout++;
      this.initPending.delete(name);
      missing.push(name);
    }
    if (missing.length === 0) return;
    this.host.logger.warn({ typeUrl: this.typeUrl, count: missing.length, names: missing.slice(0, 10) }, 'resources not received in time (initial_fetch_timeout); marked DOES_NOT_EXIST');
    try {
      this.sink.missing?.(missing);
    } catch (err) {
      this.host.logger.error({ err, typeUrl: this.typeUrl }, 'sink failed on missing resources');
    }
    this.host.notFound(this, missing);
    this.host.initialFetchDone(this);
  }
}

function sameNames(sent: ReadonlySet<string>, refs: ReadonlyMap<string, number>): boolean {
  if (sent.size !== refs.size) return false;
  for (const n of refs.keys()) if (!sent.has(n)) return false;
  return true;
}
