import type * as grpc from '@grpc/grpc-js';
import { JitteredBackoff } from '../common/backoff';
import { Emitter, type Disposable } from '../common/disposable';
import { ConfigError } from '../common/errors';
import { silentLogger, type Logger } from '../common/logger';
import type { ClusterSink } from './cluster-sink';
import { ClusterSubscription } from './cluster-subscription';
import { EndpointSubscription } from './endpoint-subscription';
import type { ProtoObject } from './proto-json';
import { ADS_DELTA_METHOD, ADS_SOTW_METHOD, loadEnvoyProtos, type AnyMessage, type EnvoyProtos } from './protos';
import type { ResourceSink, ResourceSubscriber, WatchOptions } from './resource-sink';
import { EXTENSION_CONFIG_TYPE } from './resources/extension-config';
import { LISTENER_TYPE } from './resources/listener';
import { ROUTE_TYPE } from './resources/route';
import type { DecodeContext } from './resources/types';
import { SinkSubscription } from './sink-subscription';
import type { XdsCounters, XdsStatus } from './status';
import { SerialQueue, type SubscriptionHost, type TypeSubscription } from './subscription';
import { TypeState, type ResponseItem } from './type-state';
import { CDS_TYPE_URL, EDS_TYPE_URL, RESOURCE_TYPE_URL } from './type-urls';
import { ProtoValidator } from './validate';
import { decodeDiscoveryResponse, locateAny, peekStringField, rangeEquals, type RawDiscoveryResponse } from './wire';

const EMPTY = Buffer.alloc(0);

/**
 * ADS client (SotW and Delta) on @grpc/grpc-js, following Envoy's grpc_mux_impl / delta_subscription_state and
 * the rules in reference/xds.md. It is generic over resource types: each type is a TypeSubscription
 * (subscription.ts) that says what to request and applies responses; the client owns the stream, the nonces,
 * the unwrapping of resources, ACK/NACK, the reconnect schedule and Envoy's init order (CDS and the EDS of
 * warming clusters, then LDS, and every RDS/ECDS name watched meanwhile). CDS and EDS feed the ClusterSink;
 * LDS, RDS and ECDS feed ResourceSinks as proto3 JSON.
 *
 * State split (STYLE 3.6): the subscriptions keep what outlives a stream (accepted versions, per-resource status,
 * counters); `AdsStream` keeps what dies with it (nonces, the first-message flag, the call).
 *
 * Partial acceptance follows Envoy: a response with a resource that fails decoding or PGV validation changes
 * nothing and is NACKed; a resource that fails to build is rejected alone (cds_api_helper.cc, lds_api.cc) and
 * NACKs the response without advancing the version.
 */

/** INTERNAL, as Envoy puts in error_detail. */

/** HTTP/2 connection and stream window for the ADS channel (Envoy: initial_stream_window_size 256 MiB). */
const ADS_FLOW_CONTROL_WINDOW = 256 * 1024 * 1024;
export const NACK_STATUS_CODE = 13;
/** Envoy truncates error_detail messages; keep NACKs readable but bounded. */
const MAX_ERROR_DETAIL = 4096;

export type { ClusterSink } from './cluster-sink';

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
  private readonly events: Emitter<XdsEvent>;
  private readonly backoff: JitteredBackoff;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly apiType: AdsApiType;
  private readonly nodeOnce: boolean;
  private readonly node: ProtoObject;
  private readonly resourceTimeoutMs: number;
  private readonly cds: ClusterSubscription;
  private readonly eds: EndpointSubscription;
  /** Every subscribed type, in Envoy's request order (CDS, EDS, LDS, RDS, ECDS). */
  private readonly subs = new Map<string, TypeSubscription>();
  private readonly sinkSubs = new Map<string, SinkSubscription>();
  private readonly queues = new Map<TypeSubscription, SerialQueue>();
  /** Types the init order has started. */
  private readonly startedSubs = new Set<TypeSubscription>();
  /** Responses of types nobody subscribes to: only their version is tracked. */
  private readonly others = new Map<string, TypeState>();
  /** Encoded `resource_names` entries of a name list: a SotW EDS ACK at 10 000 names re-sends the same list. */
  private readonly namesField = new WeakMap<readonly string[], Buffer>();
  /** Type URLs as bytes, to check each resource's Any.type_url without decoding it. */
  private readonly typeUrlBytes = new Map<string, Buffer>();
  /** Scratch for locateAny(). */
  private readonly anyLoc = [0, 0, 0, 0];
  private readonly cp = { streams_opened: 0, responses_received: 0, acks_sent: 0, nacks_sent: 0 };
  private client: grpc.Client | undefined;
  /** Reconnect attempts since the last message (a new channel each: see `backoff`). */
  private attempts = 0;
  private stream: AdsStream | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private started = false;
  private closedFlag = false;
  private isConnected = false;
  private isInitialized = false;
  private resolveInitialized!: () => void;
  /**
   * Resolves once Envoy's init order is through: the first CDS response and the CLAs of its EDS clusters (or
   * cds initial_fetch_timeout), then with lds the first LDS response (or lds initial_fetch_timeout), and every
   * RDS/ECDS name watched meanwhile (or its timer).
   */
  readonly initialized: Promise<void>;

  constructor(private readonly options: AdsClientOptions) {
    this.protos = options.protos ?? loadEnvoyProtos();
    this.validator = new ProtoValidator(this.protos);
    this.ctx = { protos: this.protos, validator: this.validator };
    this.logger = (options.logger ?? silentLogger()).child({ component: 'xds' });
    this.events = new Emitter((err) => this.logger.error({ err }, 'xds event listener failed'));
    this.backoffBaseMs = options.backoff?.baseMs ?? 500;
    this.backoffMaxMs = options.backoff?.maxMs ?? 30_000;
    this.backoff = new JitteredBackoff(this.backoffBaseMs, this.backoffMaxMs, options.backoff?.random);
    this.apiType = options.apiType ?? 'GRPC';
    this.nodeOnce = options.setNodeOnFirstMessageOnly ?? true;
    this.node = withClientFeatures(options.node);
    this.resourceTimeoutMs = options.resourceTimeoutMs ?? 15_000;
    this.initialized = new Promise<void>((resolve) => (this.resolveInitialized = resolve));
    const host: SubscriptionHost = {
      ctx: this.ctx,
      logger: this.logger,
      resourceTimeoutMs: this.resourceTimeoutMs,
      namesChanged: (sub) => this.sendSubscription(sub),
      initialFetchDone: () => this.checkInitialized(),
      notFound: (sub, names) => this.events.emit({ type: 'does-not-exist', typeUrl: sub.typeUrl, names }),
      sotwItems: (msg, typeUrl, errors) => this.sotwItems(msg, typeUrl, errors),
      serialize: (sub, task) => this.queue(sub).run(task),
    };
    this.eds = new EndpointSubscription(options.sink, host, () => this.cds);
    this.cds = new ClusterSubscription(options.sink, host, this.eds, options.initialFetchTimeoutMs ?? 15_000);
    this.subs.set(CDS_TYPE_URL, this.cds);
    this.subs.set(EDS_TYPE_URL, this.eds);
    const sinks = options.sinks ?? {};
    if (options.lds && !sinks.listeners) {
      throw new ConfigError('LDS (lds_config) needs a listener manager: AdsClientOptions.sinks.listeners', 'dynamic_resources.lds_config');
    }
    for (const [type, sink, timeoutMs] of [
      [LISTENER_TYPE, options.lds ? sinks.listeners : undefined, options.lds?.initialFetchTimeoutMs ?? 15_000],
      [ROUTE_TYPE, sinks.routes, 0],
      [EXTENSION_CONFIG_TYPE, sinks.extensionConfigs, 0],
    ] as const) {
      if (!sink) continue;
      const sub = new SinkSubscription(type, sink, host, timeoutMs);
      this.subs.set(type.typeUrl, sub);
      this.sinkSubs.set(type.typeUrl, sub);
    }
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

  /** Connection attempts made since the last message arrived (0 while connected). */
  get reconnectAttempts(): number {
    return this.attempts;
  }

  /** Opens the channel and the ADS stream; starts the initial fetch timers. Idempotent. */
  start(): void {
    if (this.started || this.closedFlag) return;
    this.started = true;
    this.checkInitialized(); // starts CDS (and its initial_fetch_timeout)
    this.openStream();
  }

  /** Stops the stream and the channel; the last config stays in the sinks. Idempotent. */
  close(): Promise<void> {
    if (this.closedFlag) return Promise.resolve();
    this.closedFlag = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    for (const sub of this.subs.values()) sub.close();
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
    return (this.subs.get(typeUrl)?.state ?? this.others.get(typeUrl))?.versionInfo ?? '';
  }

  status(): XdsStatus {
    return {
      connected: this.isConnected,
      initialized: this.isInitialized,
      apiType: this.apiType,
      types: [...[...this.subs.values()].map((s) => s.state.snapshot(this.sinkSubs.get(s.typeUrl)?.counters)), ...[...this.others.values()].map((t) => t.snapshot())],
      counters: this.counters(),
    };
  }

  counters(): XdsCounters {
    const eds: Record<string, XdsCounters['cds']> = {};
    for (const [k, v] of this.eds.edsCounters) eds[k] = { ...v };
    const dynamic: Record<string, XdsCounters['cds']> = {};
    for (const sub of this.sinkSubs.values()) dynamic[sub.type.id] = { ...sub.counters };
    return {
      cds: { ...this.cds.counters },
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
    // One request per subscribed type, in subscription order, with the last accepted versions (xds.md §9).
    for (const sub of this.subs.values()) {
      sub.resetStream();
      if (sub.active) this.sendSubscription(sub, true);
    }
  }

  /**
   * Sends a type's subscription: SotW the full name list at the last accepted version, Delta the changes since
   * the last request (on a new stream: everything, with the versions held).
   */
  private sendSubscription(sub: TypeSubscription, fresh = false): void {
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

  private onStreamClosed(stream: AdsStream, reason: string): void {
    if (stream.done) return;
    stream.done = true;
    if (this.stream === stream) this.stream = undefined;
    if (this.closedFlag) return;
    for (const sub of this.subs.values()) sub.streamFailed();
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

  private queue(sub: TypeSubscription): SerialQueue {
    let q = this.queues.get(sub);
    if (!q) {
      q = new SerialQueue((err) => this.logger.error({ err, typeUrl: sub.typeUrl }, 'xds response handling failed'));
      this.queues.set(sub, q);
    }
    return q;
  }

  // -------------------------------------------------------------------------------------------------------------
  // initialization (Envoy's init manager order)

  /**
   * Starts each type whose `after` types are fetched (CDS at once; LDS once the clusters and the CLAs of warming
   * clusters are in), and resolves `initialized` once every type is fetched.
   */
  private checkInitialized(): void {
    if (this.isInitialized || !this.started) return;
    let all = true;
    for (const sub of this.subs.values()) {
      if (!this.startedSubs.has(sub)) {
        if (!sub.after.every((t) => this.subs.get(t)?.fetched ?? true)) {
          all = false;
          continue;
        }
        this.startedSubs.add(sub);
        sub.start();
      }
      if (!sub.fetched) all = false;
    }
    if (!all || this.isInitialized) return;
    this.isInitialized = true;
    this.resolveInitialized();
    this.events.emit({ type: 'initialized', reason: [...this.subs.values()].some((s) => s.timedOut) ? 'timeout' : 'fetched' });
  }

  /**
   * A channel for one connection attempt. Its own subchannel (not grpc-js's process-wide pool, where a subchannel
   * in backoff would be reused) connects at once, so the attempt happens on this client's schedule; grpc-js's
   * reconnect backoff is set to the same base and cap for the connection the channel keeps.
   */
  private newChannel(): grpc.Client {
    const grpcJs = require('@grpc/grpc-js') as typeof grpc; // loaded at the first ADS connection: a static sidecar never needs it
    return new grpcJs.Client(this.options.target, grpcJs.credentials.createInsecure(), {
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
    const heartbeat = (): boolean => version === this.versionInfo(typeUrl);
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

  private errorDetail(errors: string[]): { detail: string; status: ProtoObject } {
    let detail = errors.join('; ');
    if (detail.length > MAX_ERROR_DETAIL) detail = `${detail.slice(0, MAX_ERROR_DETAIL)}...`;
    return { detail, status: { code: NACK_STATUS_CODE, message: detail } };
  }

  private recordOutcome(state: TypeState, version: string, nonce: string, errors: string[], startedAt: number): ProtoObject | undefined {
    const typeUrl = state.typeUrl;
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
  // responses (SotW and Delta): unwrapping here, applying in the type's subscription

  /**
   * One SotW response: applied by its type's subscription after the previous one of the type (a sink may be
   * asynchronous; CDS and EDS run at once), then ACKed or NACKed with the names subscribed by then.
   */
  private onSotwResponse(stream: AdsStream, msg: RawDiscoveryResponse): void {
    const typeUrl = msg.type_url;
    const sub = this.subs.get(typeUrl);
    if (!sub || (sub.wildcard && !sub.active)) {
      // A type nobody watches: re-request without bumping the version (grpc_mux_impl.cc).
      this.logger.debug({ typeUrl }, 'response for an unwatched type');
      stream.nonces.set(typeUrl, msg.nonce);
      let t = this.others.get(typeUrl);
      if (!t) this.others.set(typeUrl, (t = new TypeState(typeUrl)));
      if (msg.anyStart.length === 0) t.versionInfo = msg.version_info;
      this.sendSotw(stream, { type_url: typeUrl, version_info: t.versionInfo, resource_names: [] });
      return;
    }
    this.queue(sub).run(() => {
      const startedAt = performance.now();
      const errors: string[] = [];
      const answer = (): void => {
        stream.nonces.set(typeUrl, msg.nonce);
        const nack = this.recordOutcome(sub.state, msg.version_info, msg.nonce, errors, startedAt);
        sub.markSent();
        this.sendSotw(stream, { type_url: typeUrl, version_info: sub.state.versionInfo, resource_names: sub.names(), ...(nack ? { error_detail: nack } : {}) });
        sub.afterResponse?.();
        this.checkInitialized();
      };
      const applying = sub.onSotw(msg, errors);
      if (applying instanceof Promise) return applying.then(answer);
      answer();
      return undefined;
    });
  }

  /** One Delta response; see onSotwResponse(). Duplicates and Any type mismatches reject it before it is applied. */
  private onDeltaResponse(stream: AdsStream, msg: ProtoObject): void {
    const typeUrl = String(msg['type_url'] ?? '');
    const nonce = String(msg['nonce'] ?? '');
    const sub = this.subs.get(typeUrl);
    if (!sub || (sub.wildcard && !sub.active)) {
      this.sendDelta(stream, { type_url: typeUrl, response_nonce: nonce });
      return;
    }
    this.queue(sub).run(() => {
      const startedAt = performance.now();
      const version = String(msg['system_version_info'] ?? '');
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
          // A Resource without `resource` at the version the client has is a heartbeat (delta_subscription_state.cc).
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
          } // else: no resource and not a heartbeat: nothing to apply
        }
      }
      const answer = (): void => {
        const nack = this.recordOutcome(sub.state, version, nonce, errors, startedAt);
        this.sendDelta(stream, { type_url: typeUrl, response_nonce: nonce, ...(nack ? { error_detail: nack } : {}) });
        sub.afterResponse?.();
        this.checkInitialized();
      };
      const applying = sub.onDelta(items, removed, errors);
      if (applying instanceof Promise) return applying.then(answer);
      answer();
      return undefined;
    });
  }

}
