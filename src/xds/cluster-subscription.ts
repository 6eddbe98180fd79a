import { setTtl, DeadlineSet } from './deadlines';
import type { ClusterSink } from './cluster-sink';
import type { EndpointSubscription } from './endpoint-subscription';
import { CLUSTER_TYPE } from './resources/cluster';
import { emptyCounters } from './status';
import type { SubscriptionHost, TypeSubscription } from './subscription';
import { TypeState, type ResponseItem } from './type-state';
import { CDS_TYPE_URL } from './type-urls';
import { rangeEquals, type RawDiscoveryResponse } from './wire';
import type { ClusterConfig } from '../upstream/types';

type Item = ResponseItem;

/** A Cluster of a response, decoded and validated, before anything is applied. */
type PreparedCluster =
  | { readonly kind: 'apply'; readonly config: ClusterConfig; readonly bytes: Buffer; readonly ttlMs: number | undefined; readonly version: string }
  /** A heartbeat or an identical resend: only its TTL (and version) is refreshed. */
  | { readonly kind: 'refresh'; readonly name: string; readonly ttlMs: number | undefined; readonly version: string | undefined; readonly keep: boolean }
  | { readonly kind: 'error'; readonly stage: 'decode' | 'build'; readonly label: string; readonly detail: string; readonly version: string };

/**
 * CDS (xds.md §2-5): a wildcard subscription. A response is decoded and validated whole before any of it is
 * applied: a decode error (malformed bytes, a PGV rule) rejects it with nothing applied and nothing removed
 * (grpc_mux_impl.cc); otherwise every valid cluster is applied, one that fails to build is rejected alone and
 * NACKs the response (cds_api_helper.cc), and SotW removes the dynamic clusters it leaves out (never static
 * ones). After each batch the EDS subscription sends one request with the complete new name set.
 */
export class ClusterSubscription implements TypeSubscription {
  readonly typeUrl = CDS_TYPE_URL;
  readonly wildcard = true;
  readonly after: readonly string[] = [];
  readonly active = true;
  readonly state = new TypeState(CDS_TYPE_URL);
  readonly counters = emptyCounters();
  /** Per-resource TTLs (xds.md §7). */
  private readonly cdsTtl: DeadlineSet;
  /** The first CDS response came. */
  received = false;
  timedOut = false;
  private initTimer: NodeJS.Timeout | undefined;
  private sent = false;

  constructor(
    private readonly sink: ClusterSink,
    private readonly host: SubscriptionHost,
    private readonly endpoints: EndpointSubscription,
    /** cds_config.initial_fetch_timeout; 0 waits for ever. It bounds the whole cluster phase (CDS and its EDS). */
    private readonly initialFetchTimeoutMs: number,
  ) {
    this.cdsTtl = new DeadlineSet((names) => this.onCdsTtlExpired(names));
  }

  get fetched(): boolean {
    return this.received || this.timedOut;
  }

  /** Arms the initial fetch timeout (the client's start()). */
  start(): void {
    if (this.initialFetchTimeoutMs <= 0 || this.initTimer) return;
    this.initTimer = setTimeout(() => {
      this.initTimer = undefined;
      if (this.received && this.endpoints.fetched) return;
      this.counters.init_fetch_timeout++;
      this.timedOut = true;
      this.host.logger.warn({ timeoutMs: this.initialFetchTimeoutMs }, 'CDS initial fetch timed out; continuing');
      this.host.initialFetchDone(this);
    }, this.initialFetchTimeoutMs);
    this.initTimer.unref();
  }

  names(): readonly string[] {
    return [];
  }

  deltaDiff(): { subscribe: string[]; unsubscribe: string[] } {
    if (this.sent) return { subscribe: [], unsubscribe: [] };
    this.sent = true;
    return { subscribe: ['*'], unsubscribe: [] };
  }

  markSent(): void {
    this.sent = true;
  }

  resetStream(): void {
    this.sent = false;
  }

  initialVersions(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, r] of this.state.resources) if (r.version !== '' && r.raw) out[name] = r.version;
    return out;
  }

  streamFailed(): void {
    this.counters.update_failure++;
  }

  close(): void {
    if (this.initTimer) clearTimeout(this.initTimer);
    this.initTimer = undefined;
    this.cdsTtl.clear();
  }

  onSotw(msg: RawDiscoveryResponse, errors: string[]): void {
    this.counters.update_attempt++;
    const items = this.host.sotwItems(msg, CDS_TYPE_URL, errors);
    // EDS requests are paused while the batch is applied; afterResponse() sends one request afterwards.
    const seen = items ? this.applyClusters(items, errors) : undefined;
    // SotW: dynamic clusters missing from the response are removed; static ones never (cds_api_impl.cc).
    // A response rejected while decoding removes nothing.
    if (seen) for (const name of this.dynamicClusterNames()) if (!seen.has(name)) this.removeCluster(name);
    if (msg.anyStart.length === 0) this.counters.update_empty++;
    this.finish(errors);
  }

  onDelta(items: readonly Item[] | undefined, removed: readonly string[], errors: string[]): void {
    this.counters.update_attempt++;
    if (items !== undefined && this.applyClusters(items, errors) !== undefined) {
      for (const name of removed) {
        const cfg = [...this.sink.activeClusters()].find((c) => c.config.name === name)?.config ?? [...this.sink.warming()].find((c) => c.name === name);
        if (cfg === undefined || cfg.addedViaApi) this.removeCluster(name);
      }
    }
    this.finish(errors);
  }

  private finish(errors: readonly string[]): void {
    if (errors.length === 0) this.counters.update_success++;
    else this.counters.update_rejected++;
    this.received = true;
  }

  /** The batch is applied and answered: the one EDS request with the complete new name set. */
  afterResponse(): void {
    this.endpoints.resume();
  }

  /**
   * Decodes and validates one Cluster of a response without applying it (Envoy decodes the whole response before
   * any of it is applied). `seen` collects names for duplicate detection and SotW removal.
   */
  private prepareCluster(u: Item, seen: Set<string>, index: number): PreparedCluster {
    const state = this.state;
    const name = u.name || u.wrapperName;
    if (seen.has(name)) return { kind: 'error', stage: 'build', label: name, detail: `duplicate cluster name '${name}' in one response`, version: u.version };
    seen.add(name);
    const prior = state.resources.get(name);
    if (u.heartbeat) return { kind: 'refresh', name, ttlMs: u.ttlMs, version: undefined, keep: prior?.raw !== undefined };
    if (prior && prior.status === 'ACKED' && prior.raw && rangeEquals(u.buf, u.start, u.end, prior.raw)) {
      return { kind: 'refresh', name, ttlMs: u.ttlMs, version: u.version, keep: true }; // identical resend: nothing to rebuild
    }
    const bytes = Buffer.from(u.buf.subarray(u.start, u.end)); // a copy: the response buffer is not kept alive
    const decoded = CLUSTER_TYPE.decode(this.host.ctx, bytes, u.version);
    const label = decoded.name || name || `#${index}`;
    if (!decoded.ok) return { kind: 'error', stage: decoded.stage, label, detail: `cluster '${label}': ${decoded.errors.join('; ')}`, version: u.version };
    return { kind: 'apply', config: decoded.value, bytes, ttlMs: u.ttlMs, version: u.version };
  }

  /**
   * One CDS response, as Envoy handles it: every resource is decoded and validated first, and a decode error
   * (malformed bytes, a protoc-gen-validate rule) rejects the whole response with nothing applied and nothing
   * removed (grpc_mux_impl.cc onDiscoveryResponse). Otherwise each cluster is applied, one that fails to build
   * is rejected alone, and the response is NACKed if any was (cds_api_helper.cc). Returns the SotW `seen` names
   * to remove the others by, or undefined when nothing may be removed.
   */
  private applyClusters(items: readonly Item[], errors: string[]): Set<string> | undefined {
    const seen = new Set<string>();
    const prepared = items.map((u, i) => this.prepareCluster(u, seen, i));
    const state = this.state;
    const markNacked = (p: Extract<PreparedCluster, { kind: 'error' }>): void => {
      const r = state.resource(p.label);
      r.status = 'NACKED';
      r.error = { details: p.detail, versionInfo: p.version, lastUpdateAttempt: new Date() };
    };
    const decodeErrors = prepared.filter((p): p is Extract<PreparedCluster, { kind: 'error' }> => p.kind === 'error' && p.stage === 'decode');
    if (decodeErrors.length > 0) {
      for (const p of decodeErrors) {
        markNacked(p);
        errors.push(p.detail);
      }
      return undefined;
    }
    for (const p of prepared) {
      if (p.kind === 'error') {
        markNacked(p);
        errors.push(p.detail);
      } else if (p.kind === 'refresh') {
        const prior = state.resources.get(p.name);
        if (prior && p.version) prior.version = p.version;
        if (p.keep) setTtl(this.cdsTtl, p.name, p.ttlMs);
      } else {
        this.sink.addOrUpdateCluster(p.config);
        const r = state.resource(p.config.name);
        Object.assign(r, { status: 'ACKED', version: p.version, lastUpdated: new Date(), error: undefined, raw: p.bytes });
        setTtl(this.cdsTtl, p.config.name, p.ttlMs);
      }
    }
    return seen;
  }

  private dynamicClusterNames(): string[] {
    const names = new Set<string>();
    for (const c of this.sink.activeClusters()) if (c.config.addedViaApi) names.add(c.config.name);
    for (const c of this.sink.warming()) if (c.addedViaApi) names.add(c.name);
    return [...names];
  }

  private removeCluster(name: string): void {
    this.sink.removeCluster(name);
    this.state.resources.delete(name);
    if (this.cdsTtl.size > 0) this.cdsTtl.delete(name);
  }

  /** TTL of clusters expired: removed as a SotW CDS removal would (xds.md §7). */
  private onCdsTtlExpired(names: string[]): void {
    const cds = this.state;
    const expired = names.filter((n) => cds.resources.get(n)?.raw !== undefined);
    if (expired.length === 0) return;
    this.host.logger.warn({ names: expired.slice(0, 10), count: expired.length }, 'cluster TTL expired; removing');
    for (const name of expired) this.removeCluster(name);
    this.endpoints.resume();
  }
}
