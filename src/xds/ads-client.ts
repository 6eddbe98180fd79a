import * as grpc from '@grpc/grpc-js';
import { JitteredBackoff } from '../common/backoff';
import { Emitter, type Disposable } from '../common/disposable';
import { silentLogger, type Logger } from '../common/logger';
import type { ClusterConfig, HostSpec } from '../upstream/types';
import { DeadlineSet } from './deadlines';
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
import { ConfigError } from '../common/errors';
import type { ResourceSink, ResourceSubscriber, WatchOptions } from './resource-sink';
import { CLUSTER_TYPE } from './resources/cluster';
import { ENDPOINT_TYPE, type EndpointAssignment } from './resources/endpoint';
import { EXTENSION_CONFIG_TYPE } from './resources/extension-config';
import { LISTENER_TYPE } from './resources/listener';
import { ROUTE_TYPE } from './resources/route';
import type { DecodeContext } from './resources/types';
import { SinkSubscription, type SinkSubscriptionHost } from './sink-subscription';
import { emptyCounters, type SubscriptionCounters, type XdsCounters, type XdsStatus } from './status';
import { TypeState, type MutableResourceStatus, type ResponseItem } from './type-state';
import { ECDS_TYPE_URL, LDS_TYPE_URL, RDS_TYPE_URL } from './type-urls';
import { ProtoValidator } from './validate';
import { decodeDiscoveryResponse, locateAny, peekStringField, rangeEquals, type RawDiscoveryResponse } from './wire';

const EMPTY = Buffer.alloc(0);

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
  /**
   * The does-not-exist timer of a newly subscribed EDS name (xds.md §4; gRPC's RESOURCE_TIMEOUT_MS, Envoy's EDS
   * initial_fetch_timeout): default 15 000 ms; 0 waits forever.
   */
  readonly resourceTimeoutMs?: number;
  /**
   * The stream's reconnect schedule (Envoy's: full jitter, 500 ms doubling to 30 s, reset by any message). Each
   * attempt dials on a fresh channel, so grpc-js's own connection backoff (1 s x 1.6 up to 120 s) never adds to it.
   */
  readonly backoff?: { readonly baseMs?: number; readonly maxMs?: number; readonly random?: () => number };
  /**
   * dynamic_resources.lds_config (ADS): subscribe to listeners once the clusters are initialized, and count the
   * LDS initial fetch in `initialized`. Needs `sinks.listeners`.
   */
  readonly lds?: { readonly initialFetchTimeoutMs?: number };
  /** The managers of the types delivered as proto3 JSON (resource-sink.ts). RDS and ECDS are named: see watch(). */
  readonly sinks?: { readonly listeners?: ResourceSink; readonly routes?: ResourceSink; readonly extensionConfigs?: ResourceSink };
  readonly logger?: Logger;
  readonly protos?: EnvoyProtos;
  readonly channelOptions?: grpc.ChannelOptions;
}

export type XdsEvent =
  | { readonly type: 'connected' }
  | { readonly type: 'disconnected'; readonly reason: string; readonly retryInMs: number }
  | { readonly type: 'initialized'; readonly reason: 'fetched' | 'timeout' }
  /** `handlingMs`: from the response's arrival (decoded as far as the client needs) to its ACK (Envoy's update_duration). */
  | { readonly type: 'ack'; readonly typeUrl: string; readonly version: string; readonly nonce: string; readonly handlingMs: number }
  /** A named resource's initial fetch ended without it (does-not-exist timer / initial_fetch_timeout). */
  | { readonly type: 'does-not-exist'; readonly typeUrl: string; readonly names: readonly string[] }
  | { readonly type: 'nack'; readonly typeUrl: string; readonly version: string; readonly nonce: string; readonly detail: string; readonly handlingMs: number };

type Call = grpc.ClientDuplexStream<ProtoObject, unknown>;

/** A Cluster of a response, decoded and validated, before anything is applied. */
type PreparedCluster =
  | { readonly kind: 'apply'; readonly config: ClusterConfig; readonly bytes: Buffer; readonly ttlMs: number | undefined; readonly version: string }
  /** A heartbeat or an identical resend: only its TTL (and version) is refreshed. */
  | { readonly kind: 'refresh'; readonly name: string; readonly ttlMs: number | undefined; readonly version: string | undefined; readonly keep: boolean }
  | { readonly kind: 'error'; readonly stage: 'decode' | 'build'; readonly label: string; readonly detail: string; readonly version: string };

/** Per-stream state; a new one is built on every (re)connect and seeded from the client. */
class AdsStream {
  readonly nonces = new Map<string, string>();
  sentFirst = false;
  done = false;
  constructor(readonly call: Call) {}
}

type Item = ResponseItem;

/** `envoy.service.discovery.v3.Resource` as protobufjs decodes it. */
interface ResourceWrapper {
  name?: string;
  version?: string;
  resource?: AnyMessage | null;
  ttl?: { seconds?: unknown; nanos?: unknown } | null;
}

/** What this client advertises in `Node.client_features` (xds.md §7; the older spellings too). */
export const CLIENT_FEATURES: readonly string[] = [
  'xds.config.resource-in-sotw',
  'xds.config.supports-resource-ttl',
  'envoy.config.resource-in-sotw',
  'envoy.config.supports-resource-ttl',
];

/** The node with this client's features appended to whatever `client_features` it already had. */
export function withClientFeatures(node: ProtoObject): ProtoObject {
  const have = Array.isArray(node['client_features']) ? (node['client_features'] as unknown[]).map(String) : [];
  return { ...node, client_features: [...have, ...CLIENT_FEATURES.filter((f) => !have.includes(f))] };
}

function durationMs(d: { seconds?: unknown; nanos?: unknown }): number {
  return Number(String(d.seconds ?? 0)) * 1000 + Math.round(Number(d.nanos ?? 0) / 1e6);
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

export { peekStringField };

export class AdsClient implements ResourceSubscriber {
  private readonly protos: EnvoyProtos;
  private readonly validator: ProtoValidator;
  private readonly ctx: DecodeContext;
  private readonly logger: Logger;
  private readonly sink: ClusterSink;
  private readonly events: Emitter<XdsEvent>;
  private readonly backoff: JitteredBackoff;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly apiType: AdsApiType;
  private readonly nodeOnce: boolean;
  private readonly node: ProtoObject;
  private readonly initialFetchTimeoutMs: number;
  private readonly resourceTimeoutMs: number;
  private readonly types = new Map<string, TypeState>([
    [CDS_TYPE_URL, new TypeState(CDS_TYPE_URL)],
    [EDS_TYPE_URL, new TypeState(EDS_TYPE_URL)],
  ]);
  /** LDS, RDS, ECDS (those with a sink), in Envoy's request order. */
  private readonly sinkSubs = new Map<string, SinkSubscription>();
  private readonly lds: SinkSubscription | undefined;
  private readonly ldsInitialFetchTimeoutMs: number;
  private ldsInitTimer: NodeJS.Timeout | undefined;
  /** Clusters (and the EDS of warming clusters) are initialized: LDS may start (Envoy's init order). */
  private clustersReady = false;
  private initTimedOut = false;
  /** EDS names currently subscribed (what the last EDS request carried), as a set and as the list sent. */
  private edsNames = new Set<string>();
  private edsNamesList: readonly string[] = [];
  /** Encoded `resource_names` entries of a name list: a SotW EDS ACK at 10 000 names re-sends the same list. */
  private readonly namesField = new WeakMap<readonly string[], Buffer>();
  /** Type URLs as bytes, to check each resource's Any.type_url without decoding it. */
  private readonly typeUrlBytes = new Map<string, Buffer>();
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
  private edsPrev: { readonly buf: Buffer; readonly anyStart: readonly number[]; readonly anyEnd: readonly number[]; readonly exact: Uint8Array } | undefined;
  private edsEpoch = 0;
  /** Does-not-exist timers of EDS names subscribed and not yet received (xds.md §4). */
  private readonly edsNotFound: DeadlineSet;
  /** Per-resource TTLs (xds.md §7). */
  private readonly cdsTtl: DeadlineSet;
  private readonly edsTtl: DeadlineSet;
  private readonly cdsCounters = emptyCounters();
  private readonly edsCounters = new Map<string, SubscriptionCounters>();
  private readonly cp = { streams_opened: 0, responses_received: 0, acks_sent: 0, nacks_sent: 0 };
  private client: grpc.Client | undefined;
  /** Reconnect attempts since the last message (a new channel each: see `backoff`). */
  private attempts = 0;
  /** When the response being handled arrived. */
  private responseAt = 0;
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
    this.backoffBaseMs = options.backoff?.baseMs ?? 500;
    this.backoffMaxMs = options.backoff?.maxMs ?? 30_000;
    this.backoff = new JitteredBackoff(this.backoffBaseMs, this.backoffMaxMs, options.backoff?.random);
    this.apiType = options.apiType ?? 'GRPC';
    this.nodeOnce = options.setNodeOnFirstMessageOnly ?? true;
    this.node = withClientFeatures(options.node);
    this.initialFetchTimeoutMs = options.initialFetchTimeoutMs ?? 15_000;
    this.resourceTimeoutMs = options.resourceTimeoutMs ?? 15_000;
    this.edsNotFound = new DeadlineSet((names) => this.onEdsNotFound(names));
    this.cdsTtl = new DeadlineSet((names) => this.onCdsTtlExpired(names));
    this.edsTtl = new DeadlineSet((names) => this.onEdsTtlExpired(names));
    this.initialized = new Promise<void>((resolve) => (this.resolveInitialized = resolve));
    const ctx: DecodeContext = (this.ctx = { protos: this.protos, validator: this.validator });
    const host: SinkSubscriptionHost = {
      ctx,
      logger: this.logger,
      resourceTimeoutMs: this.resourceTimeoutMs,
      namesChanged: (sub) => this.sendSubscription(sub),
      initialFetchDone: () => this.checkInitialized(),
      notFound: (sub, names) => this.events.emit({ type: 'does-not-exist', typeUrl: sub.typeUrl, names }),
    };
    const sinks = options.sinks ?? {};
    if (options.lds && !sinks.listeners) {
      throw new ConfigError('LDS (lds_config) needs a listener manager: AdsClientOptions.sinks.listeners', 'dynamic_resources.lds_config');
    }
    for (const [type, sink] of [
      [LISTENER_TYPE, options.lds ? sinks.listeners : undefined],
      [ROUTE_TYPE, sinks.routes],
      [EXTENSION_CONFIG_TYPE, sinks.extensionConfigs],
    ] as const) {
      if (!sink) continue;
      const sub = new SinkSubscription(type, sink, host);
      this.sinkSubs.set(type.typeUrl, sub);
      this.types.set(type.typeUrl, sub.state);
    }
    this.lds = this.sinkSubs.get(LDS_TYPE_URL);
    if (this.lds) this.lds.awaitingFirst = true;
    this.ldsInitialFetchTimeoutMs = options.lds?.initialFetchTimeoutMs ?? 15_000;
  }

  /**
   * Watches a named resource (RDS_TYPE_URL: a route configuration; ECDS_TYPE_URL: an extension config): it is
   * requested, and delivered to that type's sink when it arrives. Reference-counted; dispose() the handle.
   */
  watch(typeUrl: string, name: string, options?: WatchOptions): Disposable {
    const sub = this.sinkSubs.get(typeUrl);
    if (!sub || sub.type.wildcard) {
      throw new ConfigError(`${typeUrl} cannot be watched by name here (named types with a sink: ${[...this.sinkSubs.values()].filter((s) => !s.type.wildcard).map((s) => s.typeUrl).join(', ') || 'none'})`, 'watch');
    }
    if (this.closedFlag) return { dispose: () => {} };
    return sub.watch(name, options, !this.isInitialized);
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
    if (this.initialFetchTimeoutMs > 0) {
      this.initTimer = setTimeout(() => {
        this.initTimer = undefined;
        if (this.clustersReady) return;
        this.cdsCounters.init_fetch_timeout++;
        this.initTimedOut = true;
        this.logger.warn({ timeoutMs: this.initialFetchTimeoutMs }, 'CDS initial fetch timed out; continuing');
        this.markClustersReady();
      }, this.initialFetchTimeoutMs);
      this.initTimer.unref();
    }
    this.openStream();
  }

  /**
   * A channel for one connection attempt. Its own subchannel (not grpc-js's process-wide pool, where a subchannel
   * in backoff would be reused) connects at once, so the attempt happens on this client's schedule; grpc-js's
   * reconnect backoff is set to the same base and cap for the connection the channel keeps.
   */
  private newChannel(): grpc.Client {
    return new grpc.Client(this.options.target, grpc.credentials.createInsecure(), {
      'grpc.max_receive_message_length': -1,
      // A SotW EDS push at 10k clusters is ~2 MB; with HTTP/2's 64 KiB default window it crawls in window
      // updates. Envoy's gRPC clients open 256 MiB stream windows (Http2ProtocolOptions defaults).
      'grpc-node.flow_control_window': ADS_FLOW_CONTROL_WINDOW,
      'grpc.use_local_subchannel_pool': 1,
      'grpc.initial_reconnect_backoff_ms': this.backoffBaseMs,
      'grpc.max_reconnect_backoff_ms': this.backoffMaxMs,
      ...this.options.channelOptions,
    });
  }

  /** Connection attempts made since the last message arrived (0 while connected). */
  get reconnectAttempts(): number {
    return this.attempts;
  }

  /** Stops the stream and the channel; the last config stays in the sink. Idempotent. */
  close(): Promise<void> {
    if (this.closedFlag) return Promise.resolve();
    this.closedFlag = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.initTimer) clearTimeout(this.initTimer);
    if (this.ldsInitTimer) clearTimeout(this.ldsInitTimer);
    this.retryTimer = this.initTimer = this.ldsInitTimer = undefined;
    for (const sub of this.sinkSubs.values()) sub.close();
    this.edsNotFound.clear();
    this.cdsTtl.clear();
    this.edsTtl.clear();
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
      types: [...this.types.values()].map((t) => t.snapshot(this.sinkSubs.get(t.typeUrl)?.counters)),
      counters: this.counters(),
    };
  }

  counters(): XdsCounters {
    const eds: Record<string, SubscriptionCounters> = {};
    for (const [k, v] of this.edsCounters) eds[k] = { ...v };
    const dynamic: Record<string, SubscriptionCounters> = {};
    for (const sub of this.sinkSubs.values()) dynamic[sub.type.id] = { ...sub.counters };
    return {
      cds: { ...this.cdsCounters },
      eds,
      dynamic,
      control_plane: { connected_state: this.isConnected ? 1 : 0, ...this.cp },
    };
  }

  // -------------------------------------------------------------------------------------------------------------
  // stream lifecycle

  private openStream(): void {
    if (this.closedFlag) return;
    this.client?.close();
    this.client = this.newChannel();
    this.attempts++;
    const delta = this.apiType === 'DELTA_GRPC';
    const p = this.protos;
    const call = delta
      ? this.client.makeBidiStreamRequest<ProtoObject, unknown>(
          ADS_DELTA_METHOD,
          (req) => Buffer.from(p.DeltaDiscoveryRequest.encode(req).finish()),
          (buf) => p.DeltaDiscoveryResponse.decode(buf),
        )
      : this.client.makeBidiStreamRequest<ProtoObject, unknown>(ADS_SOTW_METHOD, (req) => this.encodeSotwRequest(req), decodeDiscoveryResponse);
    const stream = new AdsStream(call);
    this.stream = stream;
    this.cp.streams_opened++;
    call.on('data', (msg: unknown) => {
      if (stream.done || this.stream !== stream) return;
      this.backoff.reset(); // any message resets the backoff (grpc_stream.h)
      this.attempts = 0;
      if (!this.isConnected) {
        this.isConnected = true;
        this.events.emit({ type: 'connected' });
      }
      this.cp.responses_received++;
      this.responseAt = performance.now();
      try {
        if (delta) this.onDeltaResponse(stream, msg as ProtoObject);
        else this.onSotwResponse(stream, msg as RawDiscoveryResponse);
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
        this.sendSotw(stream, { type_url: EDS_TYPE_URL, version_info: this.versionInfo(EDS_TYPE_URL), resource_names: this.edsNamesList });
      }
    }
    for (const sub of this.sinkSubs.values()) {
      sub.resetStream();
      if (sub.active) this.sendSubscription(sub, true);
    }
  }

  /**
   * Sends a sink type's subscription: SotW the full name list at the last accepted version, Delta the changes
   * since the last request (on a new stream: everything, with the versions held).
   */
  private sendSubscription(sub: SinkSubscription, fresh = false): void {
    const stream = this.stream;
    if (!stream || stream.done || this.closedFlag) return;
    if (this.apiType === 'DELTA_GRPC') {
      const { subscribe, unsubscribe } = sub.deltaDiff();
      if (!fresh && subscribe.length === 0 && unsubscribe.length === 0) return;
      this.sendDelta(stream, { type_url: sub.typeUrl, resource_names_subscribe: subscribe, resource_names_unsubscribe: unsubscribe, ...(fresh ? { initial_resource_versions: sub.initialVersions() } : {}) });
    } else {
      sub.markSent();
      this.sendSotw(stream, { type_url: sub.typeUrl, version_info: sub.state.versionInfo, resource_names: sub.names() });
    }
  }

  /**
   * Encodes a SotW DiscoveryRequest. The `resource_names` of a list already sent are reused as bytes: every EDS
   * ACK repeats the whole subscription, which at 10 000 names costs more to encode than the rest of the request.
   */
  private encodeSotwRequest(req: ProtoObject): Buffer {
    const type = this.protos.DiscoveryRequest;
    const names = req['resource_names'] as readonly string[] | undefined;
    if (!names || names.length < 16) return Buffer.from(type.encode(req).finish());
    let field = this.namesField.get(names);
    if (!field) {
      field = Buffer.from(type.encode({ resource_names: names }).finish());
      this.namesField.set(names, field);
    }
    return Buffer.concat([type.encode({ ...req, resource_names: [] }).finish(), field]);
  }

  private onStreamClosed(stream: AdsStream, reason: string): void {
    if (stream.done) return;
    stream.done = true;
    if (this.stream === stream) this.stream = undefined;
    if (this.closedFlag) return;
    this.cdsCounters.update_failure++;
    for (const name of this.edsNames) this.edsCounter(name).update_failure++;
    for (const sub of this.sinkSubs.values()) if (sub.active) sub.counters.update_failure++;
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
    return this.node;
  }

  private sendSotw(stream: AdsStream, req: { type_url: string; version_info: string; resource_names: readonly string[]; error_detail?: ProtoObject }): void {
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
    const r = this.types.get(EDS_TYPE_URL)?.resources.get(name);
    if (r?.counters) return r.counters;
    let c = this.edsCounters.get(name);
    if (!c) {
      c = emptyCounters();
      this.edsCounters.set(name, c);
    }
    if (r) r.counters = c;
    return c;
  }

  private markInitialized(): void {
    if (this.isInitialized) return;
    this.isInitialized = true;
    this.initEdsPending = undefined;
    if (this.initTimer) clearTimeout(this.initTimer);
    if (this.ldsInitTimer) clearTimeout(this.ldsInitTimer);
    this.initTimer = this.ldsInitTimer = undefined;
    for (const sub of this.sinkSubs.values()) sub.initPending.clear();
    this.resolveInitialized();
    this.events.emit({ type: 'initialized', reason: this.initTimedOut ? 'timeout' : 'fetched' });
  }

  /**
   * Envoy's init order: the first CDS response (or cds initial_fetch_timeout) and the CLAs of its EDS clusters
   * (or their timers); then LDS is requested and its first response (or lds initial_fetch_timeout) awaited; and
   * every RDS/ECDS name watched meanwhile (a warming listener's) must arrive or time out.
   */
  private checkInitialized(): void {
    if (this.isInitialized) return;
    if (!this.clustersReady) {
      if (!this.cdsReceived) return;
      if (this.initEdsPending === undefined) {
        // Names already given up on (does-not-exist timer) no longer block initialization.
        const eds = this.type(EDS_TYPE_URL);
        this.initEdsPending = new Set(this.sink.edsServiceNames().filter((n) => eds.resources.get(n)?.status !== 'DOES_NOT_EXIST'));
      }
      if (this.initEdsPending.size > 0) return;
      this.markClustersReady();
      return;
    }
    if (this.lds?.awaitingFirst) return;
    for (const sub of this.sinkSubs.values()) if (sub.initPending.size > 0) return;
    this.markInitialized();
  }

  /** Clusters initialized: LDS starts (with its own initial_fetch_timeout), then initialization continues. */
  private markClustersReady(): void {
    if (this.clustersReady) return;
    this.clustersReady = true;
    this.initEdsPending = undefined;
    if (this.initTimer) clearTimeout(this.initTimer);
    this.initTimer = undefined;
    const lds = this.lds;
    if (lds && !lds.started) {
      lds.started = true;
      if (this.ldsInitialFetchTimeoutMs > 0) {
        this.ldsInitTimer = setTimeout(() => {
          this.ldsInitTimer = undefined;
          if (!lds.awaitingFirst) return;
          lds.counters.init_fetch_timeout++;
          lds.awaitingFirst = false;
          this.initTimedOut = true;
          this.logger.warn({ timeoutMs: this.ldsInitialFetchTimeoutMs }, 'LDS initial fetch timed out; continuing');
          this.checkInitialized();
        }, this.ldsInitialFetchTimeoutMs);
        this.ldsInitTimer.unref();
      }
      this.sendSubscription(lds, true);
    }
    this.checkInitialized();
  }

  // -------------------------------------------------------------------------------------------------------------
  // timers: does-not-exist and TTL

  /**
   * The does-not-exist timer of EDS names fired (xds.md §4). Like Envoy's EDS initial_fetch_timeout, a warming
   * cluster finishes warming with no hosts and stops blocking initialization; the name stays subscribed, and a
   * CLA that arrives later is applied. A cluster already serving hosts for the name is left alone.
   */
  private onEdsNotFound(names: string[]): void {
    const eds = this.type(EDS_TYPE_URL);
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
    this.logger.warn({ count: missing.length, names: missing.slice(0, 10) }, 'EDS resources not received in time (initial_fetch_timeout); marked DOES_NOT_EXIST');
    this.checkInitialized();
  }

  /** TTL of clusters expired: removed as a SotW CDS removal would (xds.md §7). */
  private onCdsTtlExpired(names: string[]): void {
    const cds = this.type(CDS_TYPE_URL);
    const expired = names.filter((n) => cds.resources.get(n)?.raw !== undefined);
    if (expired.length === 0) return;
    this.logger.warn({ names: expired.slice(0, 10), count: expired.length }, 'cluster TTL expired; removing');
    for (const name of expired) this.removeCluster(name);
    this.resumeEds(this.stream);
  }

  /** TTL of CLAs expired: their clusters keep their config and lose their hosts (eds.cc, removal of the CLA). */
  private onEdsTtlExpired(names: string[]): void {
    const eds = this.type(EDS_TYPE_URL);
    const expired: string[] = [];
    for (const name of names) {
      const r = eds.resources.get(name);
      if (!this.edsNames.has(name) || !r?.raw) continue;
      Object.assign(r, { status: 'DOES_NOT_EXIST', version: '', raw: undefined });
      this.sink.setAssignment(name, []);
      expired.push(name);
    }
    if (expired.length > 0) this.logger.warn({ names: expired.slice(0, 10), count: expired.length }, 'ClusterLoadAssignment TTL expired; hosts removed');
  }

  /** A (re)sent resource or heartbeat with a TTL (re)starts its timer; without one, stops it. */
  private static setTtl(ttl: DeadlineSet, name: string, ttlMs: number | undefined): void {
    if (ttlMs !== undefined && ttlMs > 0) ttl.set(name, ttlMs);
    else if (ttl.size > 0) ttl.delete(name);
  }

  // -------------------------------------------------------------------------------------------------------------
  // resource unwrapping and application (shared by SotW and Delta)

  private typeBytes(typeUrl: string): Buffer {
    let b = this.typeUrlBytes.get(typeUrl);
    if (!b) {
      b = Buffer.from(typeUrl, 'utf8');
      this.typeUrlBytes.set(typeUrl, b);
    }
    return b;
  }

  /**
   * An `envoy.service.discovery.v3.Resource` wrapper as an Item, or an error. `isHeartbeat` says whether a
   * wrapper without `resource` is a heartbeat (its version matches the current one) rather than an error.
   */
  private fromWrapper(r: ResourceWrapper, typeUrl: string, index: number, version: string, isHeartbeat: (name: string) => boolean): Item | string {
    const name = r.name ?? '';
    const ttlMs = r.ttl ? durationMs(r.ttl) : undefined;
    if (!r.resource) {
      if (isHeartbeat(name)) return { name, buf: EMPTY, start: 0, end: 0, wrapperName: name, ttlMs, heartbeat: true, version };
      return `resource ${index}: Resource wrapper '${name}' has no resource`;
    }
    if (r.resource.type_url !== typeUrl) return `resource ${index}: type URL ${r.resource.type_url} does not match the response type ${typeUrl}`;
    const buf = asBuffer(r.resource.value);
    return { name: peekStringField(buf, 1) ?? name, buf, start: 0, end: buf.length, wrapperName: name, ttlMs, heartbeat: false, version };
  }

  /**
   * The resources of a SotW response as Items, reading each Any in place: plain resources of the response type
   * are not decoded here at all, wrappers are. A type mismatch rejects the whole response before anything is
   * applied (grpc_mux_impl.cc), so the result is undefined and `errors` says why.
   */
  private sotwItems(msg: RawDiscoveryResponse, typeUrl: string, errors: string[]): Item[] | undefined {
    const { buf, anyStart, anyEnd } = msg;
    const version = msg.version_info;
    const expected = this.typeBytes(typeUrl);
    const wrapper = this.typeBytes(RESOURCE_TYPE_URL);
    const loc = this.anyLoc;
    // A wrapper without `resource` is a heartbeat only at the version already accepted (isHeartbeatResource()).
    const heartbeat = (): boolean => version === this.type(typeUrl).versionInfo;
    const items: Item[] = new Array<Item>(anyStart.length);
    let failed = false;
    for (let i = 0; i < anyStart.length; i++) {
      try {
        locateAny(buf, anyStart[i]!, anyEnd[i]!, loc);
      } catch (err) {
        errors.push(`resource ${i}: malformed Any: ${(err as Error).message}`);
        failed = true;
        continue;
      }
      const [ts, te, vs, ve] = loc as [number, number, number, number];
      if (rangeEquals(buf, ts, te, expected)) {
        items[i] = { name: peekStringField(buf, 1, vs, ve) ?? '', buf, start: vs, end: ve, wrapperName: '', ttlMs: undefined, heartbeat: false, version };
        continue;
      }
      let item: Item | string;
      if (rangeEquals(buf, ts, te, wrapper) && typeUrl !== RESOURCE_TYPE_URL) {
        try {
          item = this.fromWrapper(this.protos.Resource.decode(buf.subarray(vs, ve)) as ResourceWrapper, typeUrl, i, version, heartbeat);
        } catch (err) {
          item = `resource ${i}: cannot decode Resource wrapper: ${(err as Error).message}`;
        }
      } else {
        item = `resource ${i}: type URL ${buf.toString('utf8', ts, te)} does not match the response type ${typeUrl}`;
      }
      if (typeof item === 'string') {
        errors.push(item);
        failed = true;
      } else items[i] = item;
    }
    return failed ? undefined : items;
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
    const eds = this.type(EDS_TYPE_URL);
    const expected = this.typeBytes(EDS_TYPE_URL);
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
    for (let i = 0; i < anyStart.length; i++) {
      if (same !== undefined && same[i] === 1) {
        const p = prevOrder[i]!;
        if (p.raw !== undefined && p.status === 'ACKED') {
          if (p.epoch === epoch) (dups ??= new Set()).add(p.name);
          p.epoch = epoch;
          unchanged.push(p);
          order[i] = p;
          exact[i] = 1;
          continue;
        }
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
        wrapped = this.sotwItems(msg, EDS_TYPE_URL, errors);
        break;
      }
      const p = prevOrder[i];
      if (p !== undefined && p.raw !== undefined && p.status === 'ACKED' && rangeEquals(buf, vs, ve, p.raw)) {
        mark(p.name, p);
        unchanged.push(p);
        order[i] = p;
        exact[i] = 1;
        continue;
      }
      const name = peekStringField(buf, 1, vs, ve) ?? '';
      const entry = eds.resources.get(name);
      mark(name, entry);
      if (entry !== undefined && entry.raw !== undefined && entry.status === 'ACKED' && rangeEquals(buf, vs, ve, entry.raw)) {
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
      if (entry?.raw !== undefined && rangeEquals(buf, item.start, item.end, entry.raw)) exact[index] = 1;
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
    this.edsPrev = { buf, anyStart, anyEnd, exact };
  }

  /**
   * Per index of `msg`, 1 where its Any is byte-identical to the previous SotW EDS response's Any at the same
   * index and that one is the accepted CLA (`exact`). Runs of indices whose Any lengths and gaps match are
   * compared as one range; a range that differs is halved until the differing CLAs are found, so a push that
   * changes k of n CLAs costs about 2k log n range comparisons. undefined when there is nothing to compare with.
   */
  private sameAsPrevious(msg: RawDiscoveryResponse, prevOrder: readonly (MutableResourceStatus | undefined)[]): Uint8Array | undefined {
    const prev = this.edsPrev;
    if (!prev || prevOrder.length !== prev.anyStart.length || prevOrder.length === 0) return undefined;
    const { buf, anyStart, anyEnd } = msg;
    const n = Math.min(anyStart.length, prev.anyStart.length);
    const same = new Uint8Array(anyStart.length);
    const pS = prev.anyStart;
    const pE = prev.anyEnd;
    const bisect = (a: number, b: number): void => {
      // [a, b) is a run: compare buf[anyStart[a], anyEnd[b-1]) with the previous buffer's same run.
      if (buf.compare(prev.buf, pS[a]!, pE[b - 1]!, anyStart[a]!, anyEnd[b - 1]!) === 0) {
        same.fill(1, a, b);
        return;
      }
      if (b - a === 1) return;
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
   * Decodes and validates one Cluster of a response without applying it (Envoy decodes the whole response before
   * any of it is applied). `seen` collects names for duplicate detection and SotW removal.
   */
  private prepareCluster(u: Item, seen: Set<string>, index: number): PreparedCluster {
    const state = this.type(CDS_TYPE_URL);
    const name = u.name || u.wrapperName;
    if (seen.has(name)) return { kind: 'error', stage: 'build', label: name, detail: `duplicate cluster name '${name}' in one response`, version: u.version };
    seen.add(name);
    const prior = state.resources.get(name);
    if (u.heartbeat) return { kind: 'refresh', name, ttlMs: u.ttlMs, version: undefined, keep: prior?.raw !== undefined };
    if (prior && prior.status === 'ACKED' && prior.raw && rangeEquals(u.buf, u.start, u.end, prior.raw)) {
      return { kind: 'refresh', name, ttlMs: u.ttlMs, version: u.version, keep: true }; // identical resend: nothing to rebuild
    }
    const bytes = Buffer.from(u.buf.subarray(u.start, u.end)); // a copy: the response buffer is not kept alive
    const decoded = CLUSTER_TYPE.decode(this.ctx, bytes, u.version);
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
    const state = this.type(CDS_TYPE_URL);
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
        if (p.keep) AdsClient.setTtl(this.cdsTtl, p.name, p.ttlMs);
      } else {
        this.sink.addOrUpdateCluster(p.config);
        const r = state.resource(p.config.name);
        Object.assign(r, { status: 'ACKED', version: p.version, lastUpdated: new Date(), error: undefined, raw: p.bytes });
        AdsClient.setTtl(this.cdsTtl, p.config.name, p.ttlMs);
      }
    }
    return seen;
  }

  /**
   * Decodes and validates every changed, requested CLA of a response before any is applied: Envoy decodes the
   * whole response first, so one CLA failing validation rejects all of it (each of them counts update_rejected).
   * Returns the decoded assignments to apply, or undefined when the response is rejected.
   */
  private predecodeAssignments(items: ReadonlyArray<{ readonly item: Item; readonly index: number }>, errors: string[]): Map<Item, { bytes: Buffer; value: EndpointAssignment }> | undefined {
    const state = this.type(EDS_TYPE_URL);
    const out = new Map<Item, { bytes: Buffer; value: EndpointAssignment }>();
    const failed: string[] = [];
    for (const { item: u, index } of items) {
      if (u.heartbeat || (u.wrapperName && u.wrapperName !== u.name) || !this.edsNames.has(u.name)) continue;
      const prior = state.resources.get(u.name);
      if (prior && prior.status === 'ACKED' && prior.raw && rangeEquals(u.buf, u.start, u.end, prior.raw)) continue;
      const bytes = Buffer.from(u.buf.subarray(u.start, u.end)); // a copy: the response buffer is not kept alive
      const decoded = ENDPOINT_TYPE.decode(this.ctx, bytes, '');
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
    const state = this.type(EDS_TYPE_URL);
    const name = u.name;
    if (u.wrapperName && u.wrapperName !== name && !u.heartbeat) return `Unexpected EDS cluster '${name}' (expecting ${u.wrapperName})`;
    if (!this.edsNames.has(name)) return undefined; // not requested: ignored (xds.md §2.9)
    const prior = state.resources.get(name);
    if (u.heartbeat) {
      if (prior?.raw) AdsClient.setTtl(this.edsTtl, name, u.ttlMs);
      return undefined;
    }
    if (this.edsNotFound.size > 0) this.edsNotFound.delete(name);
    const counters = this.edsCounter(name);
    counters.update_attempt++;
    this.initEdsPending?.delete(name);
    if (prior && prior.status === 'ACKED' && prior.raw && rangeEquals(u.buf, u.start, u.end, prior.raw)) {
      counters.update_success++;
      prior.version = u.version || prior.version;
      AdsClient.setTtl(this.edsTtl, name, u.ttlMs);
      return undefined;
    }
    const bytes = pre?.bytes ?? Buffer.from(u.buf.subarray(u.start, u.end)); // a copy: the response buffer is not kept alive
    const decoded = pre ? { ok: true as const, name, value: pre.value } : ENDPOINT_TYPE.decode(this.ctx, bytes, '');
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
    AdsClient.setTtl(this.edsTtl, name, u.ttlMs);
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
    if (this.cdsTtl.size > 0) this.cdsTtl.delete(name);
  }

  /**
   * After a CDS batch: one EDS request with the complete new name set, if it changed (cds_api_helper.cc). New
   * names start their does-not-exist timers. Without a stream the new set is sent when the next one opens.
   */
  private resumeEds(stream: AdsStream | undefined): void {
    const wanted = new Set(this.sink.edsServiceNames());
    const added = [...wanted].filter((n) => !this.edsNames.has(n));
    const removed = [...this.edsNames].filter((n) => !wanted.has(n));
    if (added.length === 0 && removed.length === 0) return;
    this.edsNames = wanted;
    this.edsNamesList = [...wanted];
    const eds = this.type(EDS_TYPE_URL);
    if (removed.length > 0) this.edsOrder = [];
    for (const n of removed) {
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
      const timeoutMs = timeouts.get(n) ?? this.resourceTimeoutMs;
      if (timeoutMs > 0) this.edsNotFound.setIfAbsent(n, timeoutMs);
    }
    if (!stream || stream.done) return;
    if (this.apiType === 'DELTA_GRPC') {
      this.sendDelta(stream, { type_url: EDS_TYPE_URL, resource_names_subscribe: added, resource_names_unsubscribe: removed });
    } else {
      this.sendSotw(stream, { type_url: EDS_TYPE_URL, version_info: eds.versionInfo, resource_names: this.edsNamesList });
    }
  }

  private errorDetail(errors: string[]): { detail: string; status: ProtoObject } {
    let detail = errors.join('; ');
    if (detail.length > MAX_ERROR_DETAIL) detail = `${detail.slice(0, MAX_ERROR_DETAIL)}...`;
    return { detail, status: { code: NACK_STATUS_CODE, message: detail } };
  }

  private recordOutcome(typeUrl: string, version: string, nonce: string, errors: string[], startedAt = this.responseAt): ProtoObject | undefined {
    const state = this.type(typeUrl);
    const handlingMs = performance.now() - startedAt;
    if (errors.length === 0) {
      state.versionInfo = version;
      state.lastUpdated = new Date();
      state.lastError = undefined;
      this.cp.acks_sent++;
      this.events.emit({ type: 'ack', typeUrl, version, nonce, handlingMs });
      return undefined;
    }
    const { detail, status } = this.errorDetail(errors);
    state.lastError = { details: detail, versionInfo: version, lastUpdateAttempt: new Date() };
    this.cp.nacks_sent++;
    this.logger.warn({ typeUrl, version, nonce, detail }, 'rejecting xDS response');
    this.events.emit({ type: 'nack', typeUrl, version, nonce, detail, handlingMs });
    return status;
  }

  // -------------------------------------------------------------------------------------------------------------
  // SotW

  private onSotwResponse(stream: AdsStream, msg: RawDiscoveryResponse): void {
    const typeUrl = msg.type_url;
    const version = msg.version_info;
    const nonce = msg.nonce;
    const count = msg.anyStart.length;
    const sub = this.sinkSubs.get(typeUrl);
    if (sub?.active) {
      this.onSinkSotwResponse(stream, sub, msg);
      return;
    }
    stream.nonces.set(typeUrl, nonce);
    const errors: string[] = [];
    if (typeUrl === CDS_TYPE_URL) {
      this.cdsCounters.update_attempt++;
      const items = this.sotwItems(msg, typeUrl, errors);
      // EDS requests are paused while the batch is applied; resumeEds() sends one request afterwards.
      const seen = items ? this.applyClusters(items, errors) : undefined;
      // SotW: dynamic clusters missing from the response are removed; static ones never (cds_api_impl.cc).
      // A response rejected while decoding removes nothing.
      if (seen) for (const name of this.dynamicClusterNames()) if (!seen.has(name)) this.removeCluster(name);
      if (count === 0) this.cdsCounters.update_empty++;
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
      if (count === 0) {
        // Envoy counts update_empty and keeps the hosts (eds.cc).
        for (const n of this.edsNames) this.edsCounter(n).update_empty++;
      }
      this.applySotwAssignments(msg, errors);
      const nack = this.recordOutcome(typeUrl, version, nonce, errors);
      this.sendSotw(stream, { type_url: typeUrl, version_info: this.versionInfo(typeUrl), resource_names: this.edsNamesList, ...(nack ? { error_detail: nack } : {}) });
      this.checkInitialized();
      return;
    }
    // A type nobody watches: re-request without bumping the version (grpc_mux_impl.cc).
    this.logger.debug({ typeUrl }, 'response for an unwatched type');
    const t = this.type(typeUrl);
    if (count === 0) t.versionInfo = version;
    this.sendSotw(stream, { type_url: typeUrl, version_info: t.versionInfo, resource_names: [] });
  }

  /**
   * A SotW response of a sink type, applied after the previous one of its type (the sink may be asynchronous);
   * the ACK or NACK follows once the sink is done, carrying the names watched by then.
   */
  private onSinkSotwResponse(stream: AdsStream, sub: SinkSubscription, msg: RawDiscoveryResponse): void {
    void sub.enqueue(async () => {
      const startedAt = performance.now(); // queued behind an earlier response of the type: from when it starts
      const errors: string[] = [];
      const items = this.sotwItems(msg, sub.typeUrl, errors);
      await sub.apply(items, sub.type.wildcard ? 'absent' : [], errors);
      stream.nonces.set(sub.typeUrl, msg.nonce);
      const nack = this.recordOutcome(sub.typeUrl, msg.version_info, msg.nonce, errors, startedAt);
      sub.markSent();
      this.sendSotw(stream, { type_url: sub.typeUrl, version_info: this.versionInfo(sub.typeUrl), resource_names: sub.names(), ...(nack ? { error_detail: nack } : {}) });
      this.checkInitialized();
    });
  }

  /** A Delta response of a sink type; see onSinkSotwResponse(). */
  private onSinkDeltaResponse(stream: AdsStream, sub: SinkSubscription, msg: ProtoObject): void {
    void sub.enqueue(async () => {
      const startedAt = performance.now();
      const typeUrl = sub.typeUrl;
      const version = String(msg['system_version_info'] ?? '');
      const nonce = String(msg['nonce'] ?? '');
      const resources = (msg['resources'] as ResourceWrapper[] | undefined) ?? [];
      const removed = (msg['removed_resources'] as string[] | undefined) ?? [];
      const errors: string[] = [];
      const names = resources.map((r) => String(r.name ?? ''));
      const dup = names.find((n, i) => names.indexOf(n) !== i) ?? removed.find((n) => names.includes(n));
      let items: Item[] | undefined;
      if (dup !== undefined) {
        errors.push(`duplicate resource name '${dup}' in one response`);
      } else {
        items = [];
        for (const [i, res] of resources.entries()) {
          const known = (name: string): boolean => {
            const r = sub.state.resources.get(name);
            return r?.raw !== undefined && r.version === String(res.version ?? '');
          };
          const u = this.fromWrapper(res, typeUrl, i, String(res.version ?? ''), known);
          if (typeof u !== 'string') items.push(u);
          else if (res.resource) {
            errors.push(u);
            items = undefined; // a type mismatch rejects the whole response
            break;
          }
        }
      }
      await sub.apply(items, removed, errors);
      const nack = this.recordOutcome(typeUrl, version, nonce, errors, startedAt);
      this.sendDelta(stream, { type_url: typeUrl, response_nonce: nonce, ...(nack ? { error_detail: nack } : {}) });
      this.checkInitialized();
    });
  }

  // -------------------------------------------------------------------------------------------------------------
  // Delta

  private onDeltaResponse(stream: AdsStream, msg: ProtoObject): void {
    const typeUrl = String(msg['type_url'] ?? '');
    const version = String(msg['system_version_info'] ?? '');
    const nonce = String(msg['nonce'] ?? '');
    const resources = (msg['resources'] as ResourceWrapper[] | undefined) ?? [];
    const removed = (msg['removed_resources'] as string[] | undefined) ?? [];
    const errors: string[] = [];
    const names = resources.map((r) => String(r.name ?? ''));
    const dup = names.find((n, i) => names.indexOf(n) !== i) ?? removed.find((n) => names.includes(n));
    const sub = this.sinkSubs.get(typeUrl);
    if (sub?.active) {
      this.onSinkDeltaResponse(stream, sub, msg);
      return;
    }
    if (typeUrl !== CDS_TYPE_URL && typeUrl !== EDS_TYPE_URL) {
      this.sendDelta(stream, { type_url: typeUrl, response_nonce: nonce });
      return;
    }
    const isCds = typeUrl === CDS_TYPE_URL;
    const state = this.type(typeUrl);
    if (isCds) this.cdsCounters.update_attempt++;
    if (dup !== undefined) {
      errors.push(`duplicate resource name '${dup}' in one response`);
    } else {
      const items: Item[] = [];
      let unwrapFailed = false;
      resources.forEach((res, i) => {
        // A Resource without `resource` at the version the client has is a heartbeat (delta_subscription_state.cc).
        const known = (name: string): boolean => {
          const r = state.resources.get(name);
          return r?.raw !== undefined && r.version === String(res.version ?? '');
        };
        const u = this.fromWrapper(res, typeUrl, i, String(res.version ?? ''), known);
        if (typeof u !== 'string') items.push(u);
        else if (res.resource) {
          errors.push(u);
          unwrapFailed = true;
        } // else: no resource and not a heartbeat: nothing to apply
      });
      let rejected = unwrapFailed; // a type mismatch rejects the whole response
      if (!rejected && isCds) rejected = this.applyClusters(items, errors) === undefined;
      else if (!rejected) rejected = !this.applyAssignments(items, errors);
      for (const name of rejected ? [] : removed) {
        if (isCds) {
          const cfg = [...this.sink.activeClusters()].find((c) => c.config.name === name)?.config ?? [...this.sink.warming()].find((c) => c.name === name);
          if (cfg === undefined || cfg.addedViaApi) this.removeCluster(name);
        } else if (this.edsNames.has(name)) {
          this.sink.setAssignment(name, undefined);
          if (this.edsTtl.size > 0) this.edsTtl.delete(name);
          const r = state.resources.get(name);
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
