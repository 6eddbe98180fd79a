import { DeadlineSet, setTtl } from './deadlines';
import type { ClusterSink } from './cluster-sink';
import { ENDPOINT_TYPE, type EndpointAssignment } from './resources/endpoint';
import { HashIndex } from './hash-index';
import { emptyCounters, type SubscriptionCounters } from './status';
import type { SubscriptionHost, TypeSubscription } from './subscription';
import { TypeState, type MutableResourceStatus, type ResponseItem } from './type-state';
import { CDS_TYPE_URL, EDS_TYPE_URL } from './type-urls';
import { bytesHash, canonicalAnyValueStart, leadingNameHash, locateAny, peekStringField, rangeEquals, viewOf, viewRangesEqual, type RawDiscoveryResponse } from './wire';

type Item = ResponseItem;
const EDS_TYPE_BYTES = Buffer.from(EDS_TYPE_URL, 'utf8');
/** sameAsPrevious(): a differing run this short is left to the per-CLA checks. */
const SMALLEST_BISECTED_RUN = 4;
/**
 * sameAsPrevious(): range comparisons allowed per response, at least (else one per 64 CLAs: ~0.1 ms at 10 000, all
 * wasted on a reordered response; an in-order one with more changes than that leaves the rest to movedUnchanged()).
 */
const MIN_BISECT_COMPARISONS = 32;

/** The last SotW EDS response: its buffer (and a DataView of it), Any positions, and which Anys were accepted as sent. */
interface SotwEdsResponse {
  readonly buf: Buffer;
  readonly view: DataView;
  readonly anyStart: readonly number[];
  readonly anyEnd: readonly number[];
  /** Per index, 1 when the entry in edsOrder at that index holds exactly that Any's value as `raw`. */
  readonly exact: Uint8Array;
}

/**
 * EDS (xds.md §3-5): the names are the EDS clusters' service names, requested after each CDS batch with the
 * complete set (Envoy pauses EDS while CDS applies); a CLA that fails validation rejects its whole response
 * (Envoy decodes first), duplicates and unexpected names are rejected per name; an empty SotW response keeps the
 * hosts; the does-not-exist timer (or a cluster's eds_config.initial_fetch_timeout) ends a warming cluster's
 * wait; TTLs per CLA. A SotW EDS response at 10 000 clusters carries every CLA to change one: unchanged ones are
 * found without decoding (by position, range bisection against the previous response, or name + bytes).
 * go-control-plane sends them in a new order every response (Go map order), so the name + bytes path must be as
 * cheap as the positional one: a hash of the name's bytes finds the entry and its Any in the previous response,
 * compared in JS, with no string, Map lookup by string or native call per CLA.
 */
export class EndpointSubscription implements TypeSubscription {
  readonly typeUrl = EDS_TYPE_URL;
  readonly wildcard = false;
  readonly after: readonly string[] = [CDS_TYPE_URL];
  readonly state = new TypeState(EDS_TYPE_URL);
  /** EDS names currently subscribed (what the last EDS request carried), as a set and as the list sent. */
  private edsNames = new Set<string>();
  private edsNamesList: readonly string[] = [];
  /** Delta: the names subscribed on the current stream. */
  private sent = new Set<string>();
  /** Scratch for locateAny(). */
  private readonly anyLoc = [0, 0, 0, 0];
  /**
   * The EDS resources of the last SotW EDS response, by position. A control plane that keeps its order sends the
   * same bytes at the same index for every unchanged CLA: such an entry is recognised without reading its name.
   */
  private edsOrder: (MutableResourceStatus | undefined)[] = [];
  /**
   * The last SotW EDS response (its buffer and Any positions) and, per index, whether `edsOrder[i].raw` is exactly
   * that response's i-th CLA: runs of unchanged CLAs are then found by comparing long byte ranges of the two
   * responses at once (bisecting where they differ) instead of 10 000 comparisons of one CLA each.
   */
  private edsPrev: SotwEdsResponse | undefined;
  /**
   * Accepted CLAs by bytesHash() of their name's bytes (leadingNameHash() of their value), to find a reordered,
   * unchanged CLA without making a string of its name. A collision only sends one of the two names down the slower
   * path (a hit is checked byte for byte); entries of names no longer subscribed are deleted with them.
   */
  private readonly edsByNameHash = new HashIndex<MutableResourceStatus>();
  private edsEpoch = 0;
  /** Does-not-exist timers of EDS names subscribed and not yet received (xds.md §4). */
  private readonly edsNotFound: DeadlineSet;
  /** Per-resource TTLs (xds.md §7). */
  private readonly edsTtl: DeadlineSet;
  readonly edsCounters = new Map<string, SubscriptionCounters>();
  /** EDS names still awaited for initialization (after the first CDS response). */
  private initEdsPending: Set<string> | undefined;
  private initDone = false;

  constructor(
    private readonly sink: ClusterSink,
    private readonly host: SubscriptionHost,
    /** The clusters' initial fetch (the CDS subscription): EDS initialization starts from its first response. */
    private readonly clusters: () => { readonly received: boolean; readonly timedOut: boolean },
  ) {
    this.edsNotFound = new DeadlineSet((names) => this.onEdsNotFound(names));
    this.edsTtl = new DeadlineSet((names) => this.onEdsTtlExpired(names));
  }

  get active(): boolean {
    return this.edsNames.size > 0;
  }

  get timedOut(): boolean {
    return false;
  }

  /**
   * The CLAs of the EDS clusters the first CDS response brought arrived (or their timers fired). Names already
   * given up on (does-not-exist timer) no longer block initialization. The CDS initial_fetch_timeout ends the
   * whole cluster phase, as before.
   */
  get fetched(): boolean {
    const cds = this.clusters();
    if (this.initDone || cds.timedOut) return true;
    if (!cds.received) return false;
    if (this.initEdsPending === undefined) {
      this.initEdsPending = new Set(this.sink.edsServiceNames().filter((n) => this.state.resources.get(n)?.status !== 'DOES_NOT_EXIST'));
    }
    if (this.initEdsPending.size > 0) return false;
    this.initDone = true;
    this.initEdsPending = undefined;
    return true;
  }

  start(): void {
    // Requested by the CDS subscription (resume()), not by the init order.
  }

  names(): readonly string[] {
    return this.edsNamesList;
  }

  deltaDiff(): { subscribe: string[]; unsubscribe: string[] } {
    const subscribe = this.edsNamesList.filter((n) => !this.sent.has(n));
    const unsubscribe = [...this.sent].filter((n) => !this.edsNames.has(n));
    this.sent = new Set(this.edsNames);
    return { subscribe, unsubscribe };
  }

  markSent(): void {
    // SotW sends the whole list every time.
  }

  resetStream(): void {
    this.sent = new Set();
  }

  initialVersions(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, r] of this.state.resources) if (r.version !== '' && r.raw) out[name] = r.version;
    return out;
  }

  streamFailed(): void {
    for (const name of this.edsNames) this.edsCounter(name).update_failure++;
  }

  close(): void {
    this.edsNotFound.clear();
    this.edsTtl.clear();
  }

  onSotw(msg: RawDiscoveryResponse, errors: string[]): void {
    if (msg.anyStart.length === 0) {
      // Envoy counts update_empty and keeps the hosts (eds.cc).
      for (const n of this.edsNames) this.edsCounter(n).update_empty++;
    }
    this.applySotwAssignments(msg, errors);
  }

  onDelta(items: readonly Item[] | undefined, removed: readonly string[], errors: string[]): void {
    if (items === undefined || !this.applyAssignments(items, errors)) return;
    for (const name of removed) {
      if (!this.edsNames.has(name)) continue;
      this.sink.setAssignment(name, undefined);
      if (this.edsTtl.size > 0) this.edsTtl.delete(name);
      const r = this.state.resources.get(name);
      if (r) Object.assign(r, { status: 'REQUESTED', version: '', raw: undefined });
    }
  }

  /**
   * After a CDS batch: one EDS request with the complete new name set, if it changed (cds_api_helper.cc). New
   * names start their does-not-exist timers. Without a stream the new set is sent when the next one opens.
   */
  resume(): void {
    const wanted = new Set(this.sink.edsServiceNames());
    const added = [...wanted].filter((n) => !this.edsNames.has(n));
    const removed = [...this.edsNames].filter((n) => !wanted.has(n));
    if (added.length === 0 && removed.length === 0) return;
    this.edsNames = wanted;
    this.edsNamesList = [...wanted];
    const eds = this.state;
    if (removed.length > 0) this.edsOrder = [];
    for (const n of removed) {
      const bytes = Buffer.from(n, 'utf8');
      const h = bytesHash(viewOf(bytes), 0, bytes.length);
      if (this.edsByNameHash.get(h)?.name === n) this.edsByNameHash.delete(h);
      eds.resources.delete(n);
      this.edsCounters.delete(n);
      this.edsNotFound.delete(n);
      this.edsTtl.delete(n);
      this.initEdsPending?.delete(n);
    }
    // A cluster's own eds_config.initial_fetch_timeout, as Envoy's EDS subscriptions have. 0 (what Istio and Higress
    // send) or none keeps the client's does-not-exist timer (xds.md §4), so a CLA that never comes cannot hold
    // initialization for ever.
    const timeouts = new Map<string, number>();
    if (added.length > 0) {
      const configs = [...this.sink.warming(), ...[...this.sink.activeClusters()].map((c) => c.config)];
      for (const c of configs) if (c.type === 'EDS' && (c.edsInitialFetchTimeoutMs ?? 0) > 0) timeouts.set(c.edsServiceName, c.edsInitialFetchTimeoutMs!);
    }
    for (const n of added) {
      eds.resource(n);
      const timeoutMs = timeouts.get(n) ?? this.host.resourceTimeoutMs;
      if (timeoutMs > 0) this.edsNotFound.setIfAbsent(n, timeoutMs);
    }
    this.host.namesChanged(this);
  }

  edsCounter(name: string): SubscriptionCounters {
    const r = this.state.resources.get(name);
    if (r?.counters) return r.counters;
    let c = this.edsCounters.get(name);
    if (!c) {
      c = emptyCounters();
      this.edsCounters.set(name, c);
    }
    if (r) r.counters = c;
    return c;
  }

  /**
   * The does-not-exist timer of EDS names fired (xds.md §4). Like Envoy's EDS initial_fetch_timeout, a warming
   * cluster finishes warming with no hosts and stops blocking initialization; the name stays subscribed, and a
   * CLA that arrives later is applied. A cluster already serving hosts for the name is left alone.
   */
  private onEdsNotFound(names: string[]): void {
    const eds = this.state;
    let served: Set<string> | undefined;
    const missing: string[] = [];
    for (const name of names) {
      const r = eds.resources.get(name);
      if (!this.edsNames.has(name) || !r || r.status !== 'REQUESTED') continue;
      r.status = 'DOES_NOT_EXIST';
      this.edsCounter(name).init_fetch_timeout++;
      this.initEdsPending?.delete(name);
      missing.push(name);
      served ??= new Set([...this.sink.activeClusters()].flatMap((c) => (c.config.type === 'EDS' ? [c.config.edsServiceName] : [])));
      if (!served.has(name)) this.sink.setAssignment(name, []);
    }
    if (missing.length === 0) return;
    this.host.logger.warn({ count: missing.length, names: missing.slice(0, 10) }, 'EDS resources not received in time (initial_fetch_timeout); marked DOES_NOT_EXIST');
    this.host.initialFetchDone(this);
  }

  /** TTL of CLAs expired: their clusters keep their config and lose their hosts (eds.cc, removal of the CLA). */
  private onEdsTtlExpired(names: string[]): void {
    const eds = this.state;
    const expired: string[] = [];
    for (const name of names) {
      const r = eds.resources.get(name);
      if (!this.edsNames.has(name) || !r?.raw) continue;
      Object.assign(r, { status: 'DOES_NOT_EXIST', version: '', raw: undefined });
      this.sink.setAssignment(name, []);
      expired.push(name);
    }
    if (expired.length > 0) this.host.logger.warn({ names: expired.slice(0, 10), count: expired.length }, 'ClusterLoadAssignment TTL expired; hosts removed');
  }

  /**
   * SotW EDS: all subscribed CLAs, nearly all unchanged. An unchanged CLA is found by position (same bytes as the
   * entry at that index last time) or else by name, and costs a byte comparison and two counter increments; only
   * the others go through applyAssignment(). Duplicate names are found with per-entry epochs. Same outcome as
   * sotwItems() + applyAssignments(), which Delta and wrapped resources use.
   */
  private applySotwAssignments(msg: RawDiscoveryResponse, errors: string[]): void {
    const { buf, anyStart, anyEnd } = msg;
    const version = msg.version_info;
    const eds = this.state;
    const expected = EDS_TYPE_BYTES;
    const loc = this.anyLoc;
    const epoch = ++this.edsEpoch;
    const prevOrder = this.edsOrder;
    const order: (MutableResourceStatus | undefined)[] = new Array<MutableResourceStatus | undefined>(anyStart.length);
    const unchanged: MutableResourceStatus[] = [];
    const others: { item: Item; index: number }[] = [];
    /** Names of the response without a subscription entry (not requested), for duplicate detection. */
    let strays: Set<string> | undefined;
    let dups: Set<string> | undefined;
    const mark = (name: string, entry: MutableResourceStatus | undefined): void => {
      if (entry) {
        if (entry.epoch === epoch) (dups ??= new Set()).add(name);
        entry.epoch = epoch;
      } else {
        strays ??= new Set();
        if (strays.has(name)) (dups ??= new Set()).add(name);
        strays.add(name);
      }
    };
    let wrapped: Item[] | undefined;
    const errorsBefore = errors.length;
    const same = this.sameAsPrevious(msg, prevOrder);
    const exact = new Uint8Array(anyStart.length);
    const view = viewOf(buf);
    const moved = this.movedUnchanged(msg, view, same, prevOrder);
    for (let i = 0; i < anyStart.length; i++) {
      const p = same !== undefined && same[i] === 1 ? prevOrder[i] : moved?.[i];
      if (p !== undefined && p.raw !== undefined && p.status === 'ACKED') {
        if (p.epoch === epoch) (dups ??= new Set()).add(p.name);
        p.epoch = epoch;
        p.sotwIndex = i;
        unchanged.push(p);
        order[i] = p;
        exact[i] = 1;
        continue;
      }
      try {
        locateAny(buf, anyStart[i]!, anyEnd[i]!, loc);
      } catch (err) {
        errors.push(`resource ${i}: malformed Any: ${(err as Error).message}`);
        continue;
      }
      const [ts, te, vs, ve] = loc as [number, number, number, number];
      if (!rangeEquals(buf, ts, te, expected)) {
        // A Resource wrapper or a type mismatch: the general path sorts it out (and rejects a mismatch).
        errors.length = errorsBefore;
        wrapped = this.host.sotwItems(msg, EDS_TYPE_URL, errors);
        break;
      }
      const name = peekStringField(buf, 1, vs, ve) ?? '';
      const entry = eds.resources.get(name);
      mark(name, entry);
      if (entry !== undefined && entry.raw !== undefined && entry.status === 'ACKED' && rangeEquals(buf, vs, ve, entry.raw)) {
        this.indexName(entry);
        entry.sotwIndex = i;
        unchanged.push(entry);
        order[i] = entry;
        exact[i] = 1;
        continue;
      }
      others.push({ item: { name, buf, start: vs, end: ve, wrapperName: '', ttlMs: undefined, heartbeat: false, version }, index: i });
    }
    if (errors.length > errorsBefore) return; // a malformed Any or a type mismatch rejects the whole response
    if (wrapped !== undefined) {
      this.edsOrder = [];
      this.applyAssignments(wrapped, errors);
      return;
    }
    const pre = this.predecodeAssignments(others, errors);
    if (!pre) return; // a CLA failing validation rejects the whole response: nothing applied
    for (const name of dups ?? []) {
      errors.push(`Unexpected EDS resource length: more than one ClusterLoadAssignment for '${name}'`);
      if (this.edsNames.has(name)) this.edsCounter(name).update_rejected++;
    }
    // The changed CLAs first: the bookkeeping of the thousands unchanged must not delay the update itself.
    for (const { item, index } of others) {
      if (dups?.has(item.name)) continue;
      const err = this.applyAssignment(item, index, pre.get(item));
      if (err) errors.push(err);
      const entry = eds.resources.get(item.name);
      order[index] = entry;
      if (entry?.raw !== undefined && rangeEquals(buf, item.start, item.end, entry.raw)) {
        exact[index] = 1;
        entry.sotwIndex = index;
        this.indexName(entry);
      }
    }
    const ttl = this.edsTtl.size > 0 ? this.edsTtl : undefined;
    for (let k = 0; k < unchanged.length; k++) {
      const r = unchanged[k]!;
      if (dups !== undefined && dups.has(r.name)) continue;
      const counters = r.counters ?? this.edsCounter(r.name);
      counters.update_attempt++;
      counters.update_success++;
      r.version = version;
      if (ttl !== undefined) ttl.delete(r.name); // resent without a TTL
    }
    this.edsOrder = order;
    this.edsPrev = { buf, view, anyStart, anyEnd, exact };
  }

  /**
   * Per index of `msg` not found by sameAsPrevious(), the accepted entry whose Any it is, byte for byte, at another
   * index of the previous response (a reordered response): the entry by the hash of its name's bytes, then its
   * index there (`sotwIndex`, checked against that response's order), then a comparison of the two Anys in JS.
   * undefined where not found (the caller reads the name and compares as before), or when there is no previous
   * response. Done in passes over all indices, one indirection each, not one chain per CLA: between two responses
   * the caches go cold, and a chain of dependent misses per CLA (index slot, entry, position, bytes) cost ~0.5 us
   * each; loads that do not wait on each other overlap.
   */
  private movedUnchanged(msg: RawDiscoveryResponse, view: DataView, same: Uint8Array | undefined, prevOrder: readonly (MutableResourceStatus | undefined)[]): (MutableResourceStatus | undefined)[] | undefined {
    const prev = this.edsPrev;
    if (prev === undefined || prevOrder.length === 0 || prev.anyStart.length !== prevOrder.length) return undefined;
    const { buf, anyStart, anyEnd } = msg;
    const n = anyStart.length;
    // Pass 1, along the response: the indices to look at and their names' hashes.
    const candidates = new Int32Array(n);
    const hashes = new Int32Array(n);
    let count = 0;
    for (let i = 0; i < n; i++) {
      if (same !== undefined && same[i] === 1) continue;
      const vs = canonicalAnyValueStart(buf, anyStart[i]!, anyEnd[i]!);
      const h = vs < 0 ? -1 : leadingNameHash(view, vs, anyEnd[i]!);
      if (h < 0) continue;
      candidates[count] = i;
      hashes[count++] = h;
    }
    if (count === 0) return undefined;
    // Pass 2: the entries. Pass 3: where each was in the previous response. Pass 4: the bytes.
    const index = this.edsByNameHash;
    const entries = new Array<MutableResourceStatus | undefined>(count);
    for (let k = 0; k < count; k++) entries[k] = index.get(hashes[k]!);
    const pS = prev.anyStart;
    const pE = prev.anyEnd;
    const at = hashes; // reused: the previous response's offset of each candidate's Any, -1 when none
    for (let k = 0; k < count; k++) {
      const e = entries[k];
      const i = candidates[k]!;
      const j = e === undefined ? -1 : e.sotwIndex;
      at[k] = j >= 0 && j < prevOrder.length && prevOrder[j] === e && prev.exact[j] === 1 && pE[j]! - pS[j]! === anyEnd[i]! - anyStart[i]! ? pS[j]! : -1;
    }
    const found = new Array<MutableResourceStatus | undefined>(n).fill(undefined);
    for (let k = 0; k < count; k++) {
      const i = candidates[k]!;
      if (at[k]! >= 0 && viewRangesEqual(view, anyStart[i]!, prev.view, at[k]!, anyEnd[i]! - anyStart[i]!)) found[i] = entries[k];
    }
    return found;
  }

  /** Files an accepted entry under the hash of its name's bytes (movedUnchanged()). */
  private indexName(entry: MutableResourceStatus): void {
    const raw = entry.raw;
    if (raw === undefined) return;
    const h = leadingNameHash(viewOf(raw), 0, raw.length);
    if (h >= 0 && this.edsByNameHash.get(h) !== entry) this.edsByNameHash.set(h, entry);
  }

  /**
   * Per index of `msg`, 1 where its Any is byte-identical to the previous SotW EDS response's Any at the same
   * index and that one is the accepted CLA (`exact`). Runs of indices whose Any lengths and gaps match are
   * compared as one range; a range that differs is halved until the differing CLAs are found, so a push that
   * changes k of n CLAs costs about 2k log n range comparisons. Runs of a few CLAs are not split further, and
   * the comparisons stop after a budget: in a reordered response nearly every run differs, and bisecting it down
   * to single CLAs would cost a native call per CLA, dearer than movedUnchanged() (which finds those). undefined
   * when there is nothing to compare with.
   */
  private sameAsPrevious(msg: RawDiscoveryResponse, prevOrder: readonly (MutableResourceStatus | undefined)[]): Uint8Array | undefined {
    const prev = this.edsPrev;
    if (!prev || prevOrder.length !== prev.anyStart.length || prevOrder.length === 0) return undefined;
    const { buf, anyStart, anyEnd } = msg;
    const n = Math.min(anyStart.length, prev.anyStart.length);
    const same = new Uint8Array(anyStart.length);
    const pS = prev.anyStart;
    const pE = prev.anyEnd;
    let budget = Math.max(MIN_BISECT_COMPARISONS, n >>> 6);
    const bisect = (a: number, b: number): void => {
      if (budget-- <= 0) return;
      // [a, b) is a run: compare buf[anyStart[a], anyEnd[b-1]) with the previous buffer's same run.
      if (buf.compare(prev.buf, pS[a]!, pE[b - 1]!, anyStart[a]!, anyEnd[b - 1]!) === 0) {
        same.fill(1, a, b);
        return;
      }
      if (b - a <= SMALLEST_BISECTED_RUN) return;
      const mid = (a + b) >>> 1;
      bisect(a, mid);
      bisect(mid, b);
    };
    const fits = (i: number): boolean => prev.exact[i] === 1 && anyEnd[i]! - anyStart[i]! === pE[i]! - pS[i]!;
    let i = 0;
    while (i < n) {
      if (!fits(i)) {
        i++;
        continue;
      }
      let j = i + 1;
      while (j < n && fits(j) && anyStart[j]! - anyEnd[j - 1]! === pS[j]! - pE[j - 1]!) j++;
      bisect(i, j);
      i = j;
    }
    return same;
  }

  /** EDS: names carried by more than one CLA are rejected as a whole (eds.cc "Unexpected EDS resource length"). */
  private applyAssignments(items: readonly Item[], errors: string[]): boolean {
    const pre = this.predecodeAssignments(items.map((item, index) => ({ item, index })), errors);
    if (!pre) return false;
    const seen = new Set<string>();
    let dups: Set<string> | undefined;
    for (const u of items) {
      if (seen.has(u.name)) (dups ??= new Set()).add(u.name);
      else seen.add(u.name);
    }
    for (const name of dups ?? []) {
      errors.push(`Unexpected EDS resource length: more than one ClusterLoadAssignment for '${name}'`);
      if (this.edsNames.has(name)) this.edsCounter(name).update_rejected++;
    }
    for (let i = 0; i < items.length; i++) {
      const u = items[i]!;
      if (dups?.has(u.name)) continue;
      const err = this.applyAssignment(u, i, pre.get(u));
      if (err) errors.push(err);
    }
    return true;
  }

  /**
   * Decodes and validates every changed, requested CLA of a response before any is applied: Envoy decodes the
   * whole response first, so one CLA failing validation rejects all of it (each of them counts update_rejected).
   * Returns the decoded assignments to apply, or undefined when the response is rejected.
   */
  private predecodeAssignments(items: ReadonlyArray<{ readonly item: Item; readonly index: number }>, errors: string[]): Map<Item, { bytes: Buffer; value: EndpointAssignment }> | undefined {
    const state = this.state;
    const out = new Map<Item, { bytes: Buffer; value: EndpointAssignment }>();
    const failed: string[] = [];
    for (const { item: u, index } of items) {
      if (u.heartbeat || (u.wrapperName && u.wrapperName !== u.name) || !this.edsNames.has(u.name)) continue;
      const prior = state.resources.get(u.name);
      if (prior && prior.status === 'ACKED' && prior.raw && rangeEquals(u.buf, u.start, u.end, prior.raw)) continue;
      const bytes = Buffer.from(u.buf.subarray(u.start, u.end)); // a copy: the response buffer is not kept alive
      const decoded = ENDPOINT_TYPE.decode(this.host.ctx, bytes, '');
      if (decoded.ok) {
        out.set(u, { bytes, value: decoded.value });
        continue;
      }
      const detail = `ClusterLoadAssignment '${decoded.name || u.name || `#${index}`}': ${decoded.errors.join('; ')}`;
      const r = state.resource(u.name);
      r.status = 'NACKED';
      r.error = { details: detail, versionInfo: u.version, lastUpdateAttempt: new Date() };
      failed.push(detail);
    }
    if (failed.length === 0) return out;
    errors.push(...failed);
    for (const name of this.edsNames) {
      const c = this.edsCounter(name);
      c.update_attempt++;
      c.update_rejected++;
    }
    return undefined;
  }

  private applyAssignment(u: Item, index: number, pre?: { bytes: Buffer; value: EndpointAssignment }): string | undefined {
    const state = this.state;
    const name = u.name;
    if (u.wrapperName && u.wrapperName !== name && !u.heartbeat) return `Unexpected EDS cluster '${name}' (expecting ${u.wrapperName})`;
    if (!this.edsNames.has(name)) return undefined; // not requested: ignored (xds.md §2.9)
    const prior = state.resources.get(name);
    if (u.heartbeat) {
      if (prior?.raw) setTtl(this.edsTtl, name, u.ttlMs);
      return undefined;
    }
    if (this.edsNotFound.size > 0) this.edsNotFound.delete(name);
    const counters = this.edsCounter(name);
    counters.update_attempt++;
    this.initEdsPending?.delete(name);
    if (prior && prior.status === 'ACKED' && prior.raw && rangeEquals(u.buf, u.start, u.end, prior.raw)) {
      counters.update_success++;
      prior.version = u.version || prior.version;
      setTtl(this.edsTtl, name, u.ttlMs);
      return undefined;
    }
    const bytes = pre?.bytes ?? Buffer.from(u.buf.subarray(u.start, u.end)); // a copy: the response buffer is not kept alive
    const decoded = pre ? { ok: true as const, name, value: pre.value } : ENDPOINT_TYPE.decode(this.host.ctx, bytes, '');
    if (!decoded.ok) {
      counters.update_rejected++;
      const detail = `ClusterLoadAssignment '${decoded.name || name || `#${index}`}': ${decoded.errors.join('; ')}`;
      const r = state.resource(name);
      r.status = 'NACKED';
      r.error = { details: detail, versionInfo: u.version, lastUpdateAttempt: new Date() };
      return detail;
    }
    this.sink.setAssignment(decoded.value.serviceName, decoded.value.hosts);
    counters.update_success++;
    const r = state.resource(name);
    Object.assign(r, { status: 'ACKED', version: u.version, lastUpdated: new Date(), error: undefined, raw: bytes });
    setTtl(this.edsTtl, name, u.ttlMs);
    return undefined;
  }
}
