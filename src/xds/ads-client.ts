import * as grpc from '@grpc/grpc-js';
import { JitteredBackoff } from '../common/backoff';
import { Emitter, type Disposable } from '../common/disposable';
import { silentLogger, type Logger } from '../common/logger';
import type { ClusterConfig, HostSpec } from '../upstream/types';
import type { ProtoObject } from './proto-json';
import {
  ADS_DELTA_METHOD,
  ADS_SOTW_METHOD,
  CDS_TYPE_URL,
  EDS_TYPE_URL,
  RESOURCE_TYPE_URL,
  loadEnvoyProtos,
  type AnyMessage,
  type EnvoyProtos,
} from './protos';
import { decodeCluster } from './resources/cluster';
import { decodeClusterLoadAssignment } from './resources/endpoint';
import {
  emptyCounters,
  type ResourceStatus,
  type SubscriptionCounters,
  type TypeStatus,
  type UpdateFailure,
  type XdsCounters,
  type XdsStatus,
} from './status';
import { ProtoValidator } from './validate';

/**
 * ADS client (SotW and Delta) on @grpc/grpc-js, following Envoy's grpc_mux_impl / delta_subscription_state and
 * the rules in reference/xds.md. CDS is a wildcard subscription; EDS follows the names the cluster sink needs.
 *
 * State split (STYLE 3.6): `AdsClient` keeps what outlives a stream (accepted versions, per-resource versions and
 * status, counters); `AdsStream` keeps what dies with it (nonces, the first-message flag, the call).
 *
 * Partial acceptance follows Envoy's CDS (cds_api_helper.cc): every valid cluster is applied, and the response is
 * NACKed without advancing the version if any resource was invalid. EDS does the same per CLA.
 */

/** INTERNAL, as Envoy puts in error_detail. */

/** HTTP/2 connection and stream window for the ADS channel (Envoy: initial_stream_window_size 256 MiB). */
const ADS_FLOW_CONTROL_WINDOW = 256 * 1024 * 1024;
export const NACK_STATUS_CODE = 13;
/** Envoy truncates error_detail messages; keep NACKs readable but bounded. */
const MAX_ERROR_DETAIL = 4096;

/** What the client drives: the ClusterManager satisfies this structurally. */
export interface ClusterSink {
  addOrUpdateCluster(config: ClusterConfig): string;
  setAssignment(serviceName: string, hosts: readonly HostSpec[] | undefined): void;
  removeCluster(name: string): boolean;
  edsServiceNames(): string[];
  activeClusters(): Iterable<{ readonly config: ClusterConfig }>;
  warming(): Iterable<ClusterConfig>;
}

export type AdsApiType = 'GRPC' | 'DELTA_GRPC';

export interface AdsClientOptions {
  /** gRPC target: `host:port`, `unix:path`, or any grpc-js target URI. */
  readonly target: string;
  /** The `envoy.config.core.v3.Node` to send (decoded message or plain object with snake_case fields). */
  readonly node: ProtoObject;
  readonly sink: ClusterSink;
  readonly apiType?: AdsApiType;
  /** Default true (Istio and Higress set it). */
  readonly setNodeOnFirstMessageOnly?: boolean;
  /** cds_config.initial_fetch_timeout; default 15 000 ms; 0 waits forever. */
  readonly initialFetchTimeoutMs?: number;
  readonly backoff?: { readonly baseMs?: number; readonly maxMs?: number; readonly random?: () => number };
  readonly logger?: Logger;
  readonly protos?: EnvoyProtos;
  readonly channelOptions?: grpc.ChannelOptions;
}

export type XdsEvent =
  | { readonly type: 'connected' }
  | { readonly type: 'disconnected'; readonly reason: string; readonly retryInMs: number }
  | { readonly type: 'initialized'; readonly reason: 'fetched' | 'timeout' }
  | { readonly type: 'ack'; readonly typeUrl: string; readonly version: string; readonly nonce: string }
  | { readonly type: 'nack'; readonly typeUrl: string; readonly version: string; readonly nonce: string; readonly detail: string };

interface MutableResourceStatus {
  status: ResourceStatus['status'];
  version: string;
  lastUpdated: Date | undefined;
  error: UpdateFailure | undefined;
  /** Raw bytes of the accepted resource: an identical resend skips decoding. */
  raw: Uint8Array | undefined;
}

class TypeState {
  versionInfo = '';
  lastUpdated: Date | undefined;
  lastError: UpdateFailure | undefined;
  readonly resources = new Map<string, MutableResourceStatus>();
  constructor(readonly typeUrl: string) {}

  resource(name: string): MutableResourceStatus {
    let r = this.resources.get(name);
    if (!r) {
      r = { status: 'REQUESTED', version: '', lastUpdated: undefined, error: undefined, raw: undefined };
      this.resources.set(name, r);
    }
    return r;
  }

  snapshot(): TypeStatus {
    return {
      typeUrl: this.typeUrl,
      versionInfo: this.versionInfo,
      lastUpdated: this.lastUpdated,
      lastError: this.lastError,
      resources: [...this.resources].map(([name, r]) => ({ name, status: r.status, version: r.version, lastUpdated: r.lastUpdated, error: r.error })),
    };
  }
}

type Call = grpc.ClientDuplexStream<ProtoObject, ProtoObject>;

/** Per-stream state; a new one is built on every (re)connect and seeded from the client. */
class AdsStream {
  readonly nonces = new Map<string, string>();
  sentFirst = false;
  done = false;
  constructor(readonly call: Call) {}
}

function equalBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  return a !== undefined && a.length === b.length && Buffer.compare(a, b) === 0;
}

/** Reads a top-level length-delimited field (e.g. a resource's name) without decoding the message. */
export function peekStringField(bytes: Uint8Array, fieldNumber: number): string | undefined {
  let pos = 0;
  const varint = (): number => {
    let result = 0;
    let shift = 0;
    for (;;) {
      if (pos >= bytes.length) throw new RangeError('truncated');
      const b = bytes[pos++]!;
      result += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) return result;
      shift += 7;
    }
  };
  try {
    while (pos < bytes.length) {
      const tag = varint();
      const wire = tag & 7;
      const field = Math.floor(tag / 8);
      if (wire === 2) {
        const len = varint();
        if (field === fieldNumber) return Buffer.from(bytes.buffer, bytes.byteOffset + pos, len).toString('utf8');
        pos += len;
      } else if (wire === 0) varint();
      else if (wire === 1) pos += 8;
      else if (wire === 5) pos += 4;
      else return undefined;
    }
  } catch {
    return undefined;
  }
  return undefined;
}

export class AdsClient {
  private readonly protos: EnvoyProtos;
  private readonly validator: ProtoValidator;
  private readonly logger: Logger;
  private readonly sink: ClusterSink;
  private readonly events: Emitter<XdsEvent>;
  private readonly backoff: JitteredBackoff;
  private readonly apiType: AdsApiType;
  private readonly nodeOnce: boolean;
  private readonly initialFetchTimeoutMs: number;
  private readonly types = new Map<string, TypeState>([
    [CDS_TYPE_URL, new TypeState(CDS_TYPE_URL)],
    [EDS_TYPE_URL, new TypeState(EDS_TYPE_URL)],
  ]);
  /** EDS names currently subscribed (what the last EDS request carried). */
  private edsNames = new Set<string>();
  private readonly cdsCounters = emptyCounters();
  private readonly edsCounters = new Map<string, SubscriptionCounters>();
  private readonly cp = { streams_opened: 0, responses_received: 0, acks_sent: 0, nacks_sent: 0 };
  private client: grpc.Client | undefined;
  private stream: AdsStream | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private initTimer: NodeJS.Timeout | undefined;
  private started = false;
  private closedFlag = false;
  private isConnected = false;
  private isInitialized = false;
  private cdsReceived = false;
  /** EDS names still awaited for initialization (after the first CDS response). */
  private initEdsPending: Set<string> | undefined;
  private resolveInitialized!: () => void;
  /** Resolves once the first CDS response and the CLAs of its EDS clusters arrived, or initial_fetch_timeout fired. */
  readonly initialized: Promise<void>;

  constructor(private readonly options: AdsClientOptions) {
    this.protos = options.protos ?? loadEnvoyProtos();
    this.validator = new ProtoValidator(this.protos);
    this.logger = (options.logger ?? silentLogger()).child({ component: 'xds' });
    this.sink = options.sink;
    this.events = new Emitter((err) => this.logger.error({ err }, 'xds event listener failed'));
    this.backoff = new JitteredBackoff(options.backoff?.baseMs ?? 500, options.backoff?.maxMs ?? 30_000, options.backoff?.random);
    this.apiType = options.apiType ?? 'GRPC';
    this.nodeOnce = options.setNodeOnFirstMessageOnly ?? true;
    this.initialFetchTimeoutMs = options.initialFetchTimeoutMs ?? 15_000;
    this.initialized = new Promise<void>((resolve) => (this.resolveInitialized = resolve));
  }

  onEvent(listener: (event: XdsEvent) => void): Disposable {
    return this.events.on(listener);
  }

  get connected(): boolean {
    return this.isConnected;
  }

  get isReady(): boolean {
    return this.isInitialized;
  }

  get closed(): boolean {
    return this.closedFlag;
  }

  /** Opens the channel and the ADS stream; starts the initial_fetch_timeout timer. Idempotent. */
  start(): void {
    if (this.started || this.closedFlag) return;
    this.started = true;
    this.client = new grpc.Client(this.options.target, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': -1,
      // A SotW EDS push at 10k clusters is ~2 MB; with HTTP/2's 64 KiB default window it crawls in window
      // updates. Envoy's gRPC clients open 256 MiB stream windows (Http2ProtocolOptions defaults).
      'grpc-node.flow_control_window': ADS_FLOW_CONTROL_WINDOW,
      ...this.options.channelOptions,
    });
    if (this.initialFetchTimeoutMs > 0) {
      this.initTimer = setTimeout(() => {
        this.initTimer = undefined;
        if (this.isInitialized) return;
        this.cdsCounters.init_fetch_timeout++;
        this.logger.warn({ timeoutMs: this.initialFetchTimeoutMs }, 'initial fetch timed out; continuing');
        this.markInitialized('timeout');
      }, this.initialFetchTimeoutMs);
      this.initTimer.unref();
    }
    this.openStream();
  }

  /** Stops the stream and the channel; the last config stays in the sink. Idempotent. */
  close(): Promise<void> {
    if (this.closedFlag) return Promise.resolve();
    this.closedFlag = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.initTimer) clearTimeout(this.initTimer);
    this.retryTimer = this.initTimer = undefined;
    const s = this.stream;
    this.stream = undefined;
    if (s && !s.done) {
      s.done = true;
      s.call.cancel();
    }
    this.client?.close();
    this.client = undefined;
    this.isConnected = false;
    return Promise.resolve();
  }

  destroy(): Promise<void> {
    return this.close();
  }

  /** The last accepted version_info per type URL. */
  versionInfo(typeUrl: string): string {
    return this.types.get(typeUrl)?.versionInfo ?? '';
  }

  status(): XdsStatus {
    return {
      connected: this.isConnected,
      initialized: this.isInitialized,
      apiType: this.apiType,
      types: [...this.types.values()].map((t) => t.snapshot()),
      counters: this.counters(),
    };
  }

  counters(): XdsCounters {
    const eds: Record<string, SubscriptionCounters> = {};
    for (const [k, v] of this.edsCounters) eds[k] = { ...v };
    return {
      cds: { ...this.cdsCounters },
      eds,
      control_plane: { connected_state: this.isConnected ? 1 : 0, ...this.cp },
    };
  }

  // -------------------------------------------------------------------------------------------------------------
  // stream lifecycle

  private openStream(): void {
    if (this.closedFlag || !this.client) return;
    const delta = this.apiType === 'DELTA_GRPC';
    const reqType = delta ? this.protos.DeltaDiscoveryRequest : this.protos.DiscoveryRequest;
    const resType = delta ? this.protos.DeltaDiscoveryResponse : this.protos.DiscoveryResponse;
    const call = this.client.makeBidiStreamRequest<ProtoObject, ProtoObject>(
      delta ? ADS_DELTA_METHOD : ADS_SOTW_METHOD,
      (req) => Buffer.from(reqType.encode(req).finish()),
      (buf) => resType.decode(buf) as unknown as ProtoObject,
    );
    const stream = new AdsStream(call);
    this.stream = stream;
    this.cp.streams_opened++;
    call.on('data', (msg: ProtoObject) => {
      if (stream.done || this.stream !== stream) return;
      this.backoff.reset(); // any message resets the backoff (grpc_stream.h)
      if (!this.isConnected) {
        this.isConnected = true;
        this.events.emit({ type: 'connected' });
      }
      this.cp.responses_received++;
      try {
        if (delta) this.onDeltaResponse(stream, msg);
        else this.onSotwResponse(stream, msg);
      } catch (err) {
        this.logger.error({ err }, 'xds response handling failed');
      }
    });
    call.on('metadata', () => {
      if (stream.done || this.stream !== stream || this.isConnected) return;
      this.isConnected = true;
      this.events.emit({ type: 'connected' });
    });
    const onEnd = (reason: string): void => this.onStreamClosed(stream, reason);
    call.on('error', (err: grpc.ServiceError) => onEnd(`${err.code ?? ''} ${err.details ?? err.message}`.trim()));
    call.on('status', (st: grpc.StatusObject) => onEnd(`${st.code} ${st.details}`));
    call.on('end', () => onEnd('stream ended'));
    // One request per type, in subscription order, with the last accepted versions (xds.md §9).
    if (delta) {
      this.sendDelta(stream, { type_url: CDS_TYPE_URL, resource_names_subscribe: ['*'], initial_resource_versions: this.initialVersions(CDS_TYPE_URL) });
      if (this.edsNames.size > 0) {
        this.sendDelta(stream, { type_url: EDS_TYPE_URL, resource_names_subscribe: [...this.edsNames], initial_resource_versions: this.initialVersions(EDS_TYPE_URL) });
      }
    } else {
      this.sendSotw(stream, { type_url: CDS_TYPE_URL, version_info: this.versionInfo(CDS_TYPE_URL), resource_names: [] });
      if (this.edsNames.size > 0) {
        this.sendSotw(stream, { type_url: EDS_TYPE_URL, version_info: this.versionInfo(EDS_TYPE_URL), resource_names: [...this.edsNames] });
      }
    }
  }

  private onStreamClosed(stream: AdsStream, reason: string): void {
    if (stream.done) return;
    stream.done = true;
    if (this.stream === stream) this.stream = undefined;
    if (this.closedFlag) return;
    this.cdsCounters.update_failure++;
    for (const name of this.edsNames) this.edsCounter(name).update_failure++;
    this.isConnected = false;
    const retryInMs = this.backoff.nextMs();
    this.logger.warn({ reason, retryInMs }, 'ADS stream closed; keeping the last config and reconnecting');
    this.events.emit({ type: 'disconnected', reason, retryInMs });
    try {
      stream.call.cancel();
    } catch {
      // already finished
    }
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.openStream();
    }, retryInMs);
    this.retryTimer.unref();
  }

  private nodeFor(stream: AdsStream): ProtoObject | undefined {
    if (stream.sentFirst && this.nodeOnce) return undefined;
    stream.sentFirst = true;
    return this.options.node;
  }

  private sendSotw(stream: AdsStream, req: { type_url: string; version_info: string; resource_names: string[]; error_detail?: ProtoObject }): void {
    if (stream.done) return;
    const node = this.nodeFor(stream);
    const nonce = stream.nonces.get(req.type_url) ?? '';
    stream.call.write({ ...req, ...(node ? { node } : {}), response_nonce: nonce });
  }

  private sendDelta(stream: AdsStream, req: ProtoObject): void {
    if (stream.done) return;
    const node = this.nodeFor(stream);
    stream.call.write({ ...req, ...(node ? { node } : {}) });
  }

  private initialVersions(typeUrl: string): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [name, r] of this.types.get(typeUrl)?.resources ?? []) if (r.version !== '' && r.raw) out[name] = r.version;
    return out;
  }

  private type(typeUrl: string): TypeState {
    let t = this.types.get(typeUrl);
    if (!t) {
      t = new TypeState(typeUrl);
      this.types.set(typeUrl, t);
    }
    return t;
  }

  private edsCounter(name: string): SubscriptionCounters {
    let c = this.edsCounters.get(name);
    if (!c) {
      c = emptyCounters();
      this.edsCounters.set(name, c);
    }
    return c;
  }

  private markInitialized(reason: 'fetched' | 'timeout'): void {
    if (this.isInitialized) return;
    this.isInitialized = true;
    if (this.initTimer) clearTimeout(this.initTimer);
    this.initTimer = undefined;
    this.resolveInitialized();
    this.events.emit({ type: 'initialized', reason });
  }

  private checkInitialized(): void {
    if (this.isInitialized || !this.cdsReceived) return;
    if (this.initEdsPending === undefined) this.initEdsPending = new Set(this.sink.edsServiceNames());
    if (this.initEdsPending.size === 0) this.markInitialized('fetched');
  }

  // -------------------------------------------------------------------------------------------------------------
  // resource unwrapping and application (shared by SotW and Delta)

  /** Unwraps a `Resource` Any; checks the type URL. Returns the inner bytes or an error. */
  private unwrap(any: AnyMessage, typeUrl: string, index: number): { ok: true; bytes: Uint8Array; wrapperName: string } | { ok: false; error: string } {
    let inner = any;
    let wrapperName = '';
    if (any.type_url === RESOURCE_TYPE_URL && typeUrl !== RESOURCE_TYPE_URL) {
      const r = this.protos.Resource.decode(any.value) as unknown as { name?: string; resource?: AnyMessage | null };
      if (!r.resource) return { ok: false, error: `resource ${index}: Resource wrapper '${r.name ?? ''}' has no resource` };
      inner = r.resource;
      wrapperName = r.name ?? '';
    }
    if (inner.type_url !== typeUrl) {
      return { ok: false, error: `resource ${index}: type URL ${inner.type_url} does not match the response type ${typeUrl}` };
    }
    return { ok: true, bytes: inner.value, wrapperName };
  }

  /**
   * Unwraps every resource of a response. A type mismatch rejects the whole response before anything is applied
   * (grpc_mux_impl.cc), so the result is undefined and `errors` says why.
   */
  private unwrapAll(resources: readonly AnyMessage[], typeUrl: string, errors: string[]): { bytes: Uint8Array; wrapperName: string }[] | undefined {
    const out: { bytes: Uint8Array; wrapperName: string }[] = [];
    let failed = false;
    resources.forEach((any, i) => {
      const u = this.unwrap(any, typeUrl, i);
      if (u.ok) out.push(u);
      else {
        failed = true;
        errors.push(u.error);
      }
    });
    return failed ? undefined : out;
  }

  /** EDS: names carried by more than one CLA are rejected as a whole (eds.cc "Unexpected EDS resource length"). */
  private applyAssignments(items: readonly { bytes: Uint8Array; wrapperName: string; version: string }[], errors: string[]): void {
    const names = items.map((u) => peekStringField(u.bytes, 1) ?? '');
    const counts = new Map<string, number>();
    for (const n of names) counts.set(n, (counts.get(n) ?? 0) + 1);
    const reported = new Set<string>();
    items.forEach((u, i) => {
      const name = names[i]!;
      if ((counts.get(name) ?? 0) > 1) {
        if (!reported.has(name)) errors.push(`Unexpected EDS resource length: more than one ClusterLoadAssignment for '${name}'`);
        reported.add(name);
        if (this.edsNames.has(name)) this.edsCounter(name).update_rejected++;
        return;
      }
      const err = this.applyAssignment(u.bytes, u.version, i, u.wrapperName);
      if (err) errors.push(err);
    });
  }

  /**
   * Applies one Cluster. Returns an error string or undefined. `seen` collects names for duplicate detection and
   * SotW removal.
   */
  private applyCluster(bytes: Uint8Array, version: string, resourceVersion: string, seen: Set<string>, index: number, wrapperName: string): string | undefined {
    const state = this.type(CDS_TYPE_URL);
    const name = peekStringField(bytes, 1) ?? wrapperName;
    if (seen.has(name)) return `duplicate cluster name '${name}' in one response`;
    seen.add(name);
    const prior = state.resources.get(name);
    if (prior && prior.status === 'ACKED' && equalBytes(prior.raw, bytes)) {
      prior.version = resourceVersion || prior.version;
      return undefined; // identical resend: nothing to rebuild
    }
    const decoded = decodeCluster(this.protos, this.validator, bytes, version);
    const label = decoded.name || name || `#${index}`;
    if (!decoded.ok) {
      const detail = `cluster '${label}': ${decoded.errors.join('; ')}`;
      const r = state.resource(label);
      r.status = 'NACKED';
      r.error = { details: detail, versionInfo: resourceVersion, lastUpdateAttempt: new Date() };
      return detail;
    }
    this.sink.addOrUpdateCluster(decoded.value);
    const r = state.resource(decoded.name);
    Object.assign(r, { status: 'ACKED', version: resourceVersion, lastUpdated: new Date(), error: undefined, raw: bytes });
    return undefined;
  }

  private applyAssignment(bytes: Uint8Array, resourceVersion: string, index: number, wrapperName: string): string | undefined {
    const state = this.type(EDS_TYPE_URL);
    const name = peekStringField(bytes, 1) ?? '';
    if (wrapperName && wrapperName !== name) return `Unexpected EDS cluster '${name}' (expecting ${wrapperName})`;
    if (!this.edsNames.has(name)) return undefined; // not requested: ignored (xds.md §2.9)
    const counters = this.edsCounter(name);
    counters.update_attempt++;
    this.initEdsPending?.delete(name);
    const prior = state.resources.get(name);
    if (prior && prior.status === 'ACKED' && equalBytes(prior.raw, bytes)) {
      counters.update_success++;
      prior.version = resourceVersion || prior.version;
      return undefined;
    }
    const decoded = decodeClusterLoadAssignment(this.protos, this.validator, bytes);
    if (!decoded.ok) {
      counters.update_rejected++;
      const detail = `ClusterLoadAssignment '${decoded.name || name || `#${index}`}': ${decoded.errors.join('; ')}`;
      const r = state.resource(name);
      r.status = 'NACKED';
      r.error = { details: detail, versionInfo: resourceVersion, lastUpdateAttempt: new Date() };
      return detail;
    }
    this.sink.setAssignment(decoded.value.serviceName, decoded.value.hosts);
    counters.update_success++;
    const r = state.resource(name);
    Object.assign(r, { status: 'ACKED', version: resourceVersion, lastUpdated: new Date(), error: undefined, raw: bytes });
    return undefined;
  }

  private dynamicClusterNames(): string[] {
    const names = new Set<string>();
    for (const c of this.sink.activeClusters()) if (c.config.addedViaApi) names.add(c.config.name);
    for (const c of this.sink.warming()) if (c.addedViaApi) names.add(c.name);
    return [...names];
  }

  private removeCluster(name: string): void {
    this.sink.removeCluster(name);
    this.type(CDS_TYPE_URL).resources.delete(name);
  }

  /** After a CDS batch: one EDS request with the complete new name set, if it changed (cds_api_helper.cc). */
  private resumeEds(stream: AdsStream): void {
    const wanted = new Set(this.sink.edsServiceNames());
    const added = [...wanted].filter((n) => !this.edsNames.has(n));
    const removed = [...this.edsNames].filter((n) => !wanted.has(n));
    if (added.length === 0 && removed.length === 0) return;
    this.edsNames = wanted;
    const eds = this.type(EDS_TYPE_URL);
    for (const n of removed) {
      eds.resources.delete(n);
      this.edsCounters.delete(n);
    }
    for (const n of added) eds.resource(n);
    if (this.apiType === 'DELTA_GRPC') {
      this.sendDelta(stream, { type_url: EDS_TYPE_URL, resource_names_subscribe: added, resource_names_unsubscribe: removed });
    } else {
      this.sendSotw(stream, { type_url: EDS_TYPE_URL, version_info: eds.versionInfo, resource_names: [...wanted] });
    }
  }

  private errorDetail(errors: string[]): { detail: string; status: ProtoObject } {
    let detail = errors.join('; ');
    if (detail.length > MAX_ERROR_DETAIL) detail = `${detail.slice(0, MAX_ERROR_DETAIL)}...`;
    return { detail, status: { code: NACK_STATUS_CODE, message: detail } };
  }

  private recordOutcome(typeUrl: string, version: string, nonce: string, errors: string[]): ProtoObject | undefined {
    const state = this.type(typeUrl);
    if (errors.length === 0) {
      state.versionInfo = version;
      state.lastUpdated = new Date();
      state.lastError = undefined;
      this.cp.acks_sent++;
      this.events.emit({ type: 'ack', typeUrl, version, nonce });
      return undefined;
    }
    const { detail, status } = this.errorDetail(errors);
    state.lastError = { details: detail, versionInfo: version, lastUpdateAttempt: new Date() };
    this.cp.nacks_sent++;
    this.logger.warn({ typeUrl, version, nonce, detail }, 'rejecting xDS response');
    this.events.emit({ type: 'nack', typeUrl, version, nonce, detail });
    return status;
  }

  // -------------------------------------------------------------------------------------------------------------
  // SotW

  private onSotwResponse(stream: AdsStream, msg: ProtoObject): void {
    const typeUrl = String(msg['type_url'] ?? '');
    const version = String(msg['version_info'] ?? '');
    const nonce = String(msg['nonce'] ?? '');
    const resources = (msg['resources'] as AnyMessage[] | undefined) ?? [];
    stream.nonces.set(typeUrl, nonce);
    const errors: string[] = [];
    if (typeUrl === CDS_TYPE_URL) {
      this.cdsCounters.update_attempt++;
      const seen = new Set<string>();
      const unwrapped = this.unwrapAll(resources, typeUrl, errors);
      // EDS requests are paused while the batch is applied; resumeEds() sends one request afterwards.
      if (unwrapped) {
        unwrapped.forEach((u, i) => {
          const err = this.applyCluster(u.bytes, version, version, seen, i, u.wrapperName);
          if (err) errors.push(err);
        });
        // SotW: dynamic clusters missing from the response are removed; static ones never (cds_api_impl.cc).
        for (const name of this.dynamicClusterNames()) if (!seen.has(name)) this.removeCluster(name);
      }
      if (resources.length === 0) this.cdsCounters.update_empty++;
      if (errors.length === 0) this.cdsCounters.update_success++;
      else this.cdsCounters.update_rejected++;
      const nack = this.recordOutcome(typeUrl, version, nonce, errors);
      this.sendSotw(stream, { type_url: typeUrl, version_info: this.versionInfo(typeUrl), resource_names: [], ...(nack ? { error_detail: nack } : {}) });
      this.cdsReceived = true;
      this.resumeEds(stream);
      this.checkInitialized();
      return;
    }
    if (typeUrl === EDS_TYPE_URL) {
      if (resources.length === 0) {
        // Envoy counts update_empty and keeps the hosts (eds.cc).
        for (const n of this.edsNames) this.edsCounter(n).update_empty++;
      }
      const unwrapped = this.unwrapAll(resources, typeUrl, errors);
      if (unwrapped) this.applyAssignments(unwrapped.map((u) => ({ ...u, version })), errors);
      const nack = this.recordOutcome(typeUrl, version, nonce, errors);
      this.sendSotw(stream, { type_url: typeUrl, version_info: this.versionInfo(typeUrl), resource_names: [...this.edsNames], ...(nack ? { error_detail: nack } : {}) });
      this.checkInitialized();
      return;
    }
    // A type nobody watches: re-request without bumping the version (grpc_mux_impl.cc).
    this.logger.debug({ typeUrl }, 'response for an unwatched type');
    const t = this.type(typeUrl);
    if (resources.length === 0) t.versionInfo = version;
    this.sendSotw(stream, { type_url: typeUrl, version_info: t.versionInfo, resource_names: [] });
  }

  // -------------------------------------------------------------------------------------------------------------
  // Delta

  private onDeltaResponse(stream: AdsStream, msg: ProtoObject): void {
    const typeUrl = String(msg['type_url'] ?? '');
    const version = String(msg['system_version_info'] ?? '');
    const nonce = String(msg['nonce'] ?? '');
    const resources = (msg['resources'] as ProtoObject[] | undefined) ?? [];
    const removed = (msg['removed_resources'] as string[] | undefined) ?? [];
    const errors: string[] = [];
    const names = resources.map((r) => String(r['name'] ?? ''));
    const dup = names.find((n, i) => names.indexOf(n) !== i) ?? removed.find((n) => names.includes(n));
    if (typeUrl !== CDS_TYPE_URL && typeUrl !== EDS_TYPE_URL) {
      this.sendDelta(stream, { type_url: typeUrl, response_nonce: nonce });
      return;
    }
    const isCds = typeUrl === CDS_TYPE_URL;
    if (isCds) this.cdsCounters.update_attempt++;
    if (dup !== undefined) {
      errors.push(`duplicate resource name '${dup}' in one response`);
    } else {
      const seen = new Set<string>();
      const items: { bytes: Uint8Array; wrapperName: string; version: string }[] = [];
      resources.forEach((res, i) => {
        const any = res['resource'] as AnyMessage | null | undefined;
        if (!any) return; // heartbeat (TTL refresh): nothing to apply
        const u = this.unwrap(any, typeUrl, i);
        if (!u.ok) errors.push(u.error);
        else items.push({ bytes: u.bytes, wrapperName: names[i]!, version: String(res['version'] ?? '') });
      });
      if (errors.length > 0) {
        // a type mismatch rejects the whole response
      } else if (isCds) {
        items.forEach((u, i) => {
          const err = this.applyCluster(u.bytes, u.version, u.version, seen, i, u.wrapperName);
          if (err) errors.push(err);
        });
      } else {
        this.applyAssignments(items, errors);
      }
      for (const name of errors.length > 0 && items.length < resources.filter((r) => r['resource']).length ? [] : removed) {
        if (isCds) {
          const cfg = [...this.sink.activeClusters()].find((c) => c.config.name === name)?.config ?? [...this.sink.warming()].find((c) => c.name === name);
          if (cfg === undefined || cfg.addedViaApi) this.removeCluster(name);
        } else if (this.edsNames.has(name)) {
          this.sink.setAssignment(name, undefined);
          const r = this.type(EDS_TYPE_URL).resources.get(name);
          if (r) Object.assign(r, { status: 'REQUESTED', version: '', raw: undefined });
        }
      }
    }
    if (isCds) {
      if (errors.length === 0) this.cdsCounters.update_success++;
      else this.cdsCounters.update_rejected++;
    }
    const nack = this.recordOutcome(typeUrl, version, nonce, errors);
    this.sendDelta(stream, { type_url: typeUrl, response_nonce: nonce, ...(nack ? { error_detail: nack } : {}) });
    if (isCds) {
      this.cdsReceived = true;
      this.resumeEds(stream);
    }
    this.checkInitialized();
  }
}
