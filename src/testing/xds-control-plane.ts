import * as grpc from '@grpc/grpc-js';
import { fromProtoJson, type ProtoObject } from '../xds/proto-json';
import {
  ADS_DELTA_METHOD,
  ADS_SOTW_METHOD,
  CDS_TYPE_URL,
  ECDS_TYPE_URL,
  EDS_TYPE_URL,
  LDS_TYPE_URL,
  RDS_TYPE_URL,
  RESOURCE_TYPE_URL,
  loadEnvoyProtos,
  type AnyMessage,
  type EnvoyProtos,
} from '../xds/protos';

/**
 * A scriptable ADS control plane for tests and benches, on @grpc/grpc-js with the real Envoy protos. It serves
 * SotW (StreamAggregatedResources) and Delta (DeltaAggregatedResources):
 *
 * - set(typeUrl, resources) replaces any type's resources (proto3 JSON: clusters, CLAs, listeners, route
 *   configurations, extension configs; setClusters()/setEndpoints()/setListeners()/setRoutes()/
 *   setExtensionConfigs() for short) and bumps its version; upsert()/remove() change single resources; push()
 *   sends the new state to every stream (SotW: the full set, named types filtered by the requested names;
 *   Delta: the diff). Both stay cheap at 10 000 resources when a few were replaced in place: a SotW stream's
 *   last response is patched, a Delta stream's diff looks only at what was replaced (a per-type change log);
 * - outcome(nonce) / lastOutcome(typeUrl): how the client answered a response (ACK, or NACK with its detail);
 * - setClusters()/setEndpoints() with `ttlMs` wrap each resource in a Resource with that TTL; heartbeat() sends
 *   TTL heartbeats (Resources without `resource`);
 * - sendRaw()/sendRawDelta() send a hand-built response (invalid ones included);
 * - killStreams() fails the open streams; stop()/restart() take the server down and bring it back on the same port;
 * - `requests` records every request the client sent, decoded, in order.
 *
 * Server behaviour follows go-control-plane: a request that ACKs/NACKs the latest nonce gets no reply; a first
 * request whose version equals the current one gets no reply; newly requested names are always sent.
 */

export interface RecordedRequest {
  readonly kind: 'sotw' | 'delta';
  readonly stream: number;
  readonly typeUrl: string;
  readonly versionInfo: string;
  readonly responseNonce: string;
  readonly errorDetail: { readonly code: number; readonly message: string } | undefined;
  readonly resourceNames: readonly string[];
  readonly subscribe: readonly string[];
  readonly unsubscribe: readonly string[];
  readonly initialResourceVersions: Readonly<Record<string, string>>;
  readonly nodeId: string | undefined;
  readonly clientFeatures: readonly string[];
}

/** How setClusters()/setEndpoints() send resources: wrapped in `envoy.service.discovery.v3.Resource`, with a TTL. */
export interface ResourceOptions {
  readonly wrap?: boolean;
  /** Resource.ttl in ms; implies wrap in SotW (Delta always wraps). */
  readonly ttlMs?: number;
}

interface StoredResource {
  readonly name: string;
  readonly version: string;
  /** What SotW sends: the resource, or its Resource wrapper. */
  readonly any: AnyMessage;
  /** The resource itself (what Delta puts in Resource.resource). */
  readonly inner: AnyMessage;
  readonly ttlMs: number | undefined;
  /** The encoded `repeated Any resources = 2` entry of a DiscoveryResponse, cached for fast SotW pushes. */
  readonly sotwField: Buffer;
}

/** How the client answered one response. */
export type Outcome =
  | { readonly ack: true; readonly version: string }
  | { readonly ack: false; readonly version: string; readonly detail: string; readonly code: number };

const PUSH_ORDER: readonly string[] = [CDS_TYPE_URL, EDS_TYPE_URL, LDS_TYPE_URL, RDS_TYPE_URL, ECDS_TYPE_URL];

/** A resource's name: `name` for every type but ClusterLoadAssignment (`cluster_name`). */
function resourceName(typeUrl: string, json: Record<string, unknown>): string {
  return String((typeUrl === EDS_TYPE_URL ? json['cluster_name'] : json['name']) ?? '');
}

/** A pre-serialized response: the serializer passes the bytes through. */
class Prebuilt {
  constructor(readonly bytes: Buffer) {}
}

type Call = grpc.ServerDuplexStream<ProtoObject, ProtoObject | Prebuilt>;

interface SotwTypeState {
  names: Set<string>;
  wildcard: boolean;
  lastNonce: string;
  /** This stream's entries of the type at the version last rendered, to patch the next response (dropped when `names` change). */
  body: SotwBody | undefined;
}

/**
 * What changed in a type's resources at one version: the names whose resource was replaced in place, or
 * `undefined` when resources were added, removed or reordered (a SotW body is then rebuilt).
 */
interface Change {
  readonly version: number;
  readonly replaced: readonly string[] | undefined;
}

/** How many versions of changes a type keeps for patching SotW bodies; a stream further behind is rebuilt. */
const CHANGE_LOG_LENGTH = 32;
/** More replaced resources than this in one push: rebuilding the body is no dearer than patching it. */
const MAX_PATCHED_RESOURCES = 16;

/**
 * The `resources` entries of a stream's last SotW response of one type, concatenated, with each one's offset.
 * A push that replaced a few resources in place copies the unchanged spans around them into the next response
 * instead of filtering every resource by the subscribed names and concatenating them one by one (10 000 CLAs:
 * ~2 MB). Every response is a fresh buffer: grpc-js may serialize a queued write later, so no buffer handed to it
 * is ever written again.
 */
class SotwBody {
  private constructor(
    /** The type's version the entries are at. */
    public version: number,
    private readonly chosen: StoredResource[],
    private readonly index: ReadonlyMap<string, number>,
    /** chosen[k]'s field is fields[offsets[k], offsets[k + 1]). */
    private readonly offsets: number[],
    private fields: Buffer,
  ) {}

  static build(version: number, chosen: StoredResource[]): SotwBody {
    const offsets = [0];
    for (const r of chosen) offsets.push(offsets[offsets.length - 1]! + r.sotwField.length);
    return new SotwBody(version, chosen, new Map(chosen.map((r, k) => [r.name, k])), offsets, Buffer.concat(chosen.map((r) => r.sotwField)));
  }

  /** Whether `name` is one of the entries. */
  has(name: string): boolean {
    return this.index.has(name);
  }

  /**
   * The DiscoveryResponse: `head` (version_info), the entries with `replacements` (resources already in the body)
   * put in place, then `tail` (type_url, nonce). The entries are moved to `version`.
   */
  render(version: number, head: Buffer, tail: Buffer, replacements: readonly StoredResource[]): Buffer {
    const at = replacements.map((r) => this.index.get(r.name)!).sort((a, b) => a - b);
    for (const r of replacements) this.chosen[this.index.get(r.name)!] = r;
    const grow = at.reduce((n, k) => n + this.chosen[k]!.sotwField.length - (this.offsets[k + 1]! - this.offsets[k]!), 0);
    const length = this.fields.length + grow;
    const out = Buffer.allocUnsafe(head.length + length + tail.length);
    head.copy(out, 0);
    let to = head.length;
    let from = 0;
    for (const k of at) {
      to += this.fields.copy(out, to, from, this.offsets[k]);
      to += this.chosen[k]!.sotwField.copy(out, to);
      from = this.offsets[k + 1]!;
    }
    to += this.fields.copy(out, to, from);
    tail.copy(out, to);
    for (let k = at[0] ?? this.chosen.length; k < this.chosen.length; k++) this.offsets[k + 1] = this.offsets[k]! + this.chosen[k]!.sotwField.length;
    this.fields = out.subarray(head.length, head.length + length);
    this.version = version;
    return out;
  }
}

interface DeltaTypeState {
  names: Set<string>;
  wildcard: boolean;
  /** What the client has: name -> version. */
  readonly known: Map<string, string>;
  /**
   * The type's version that `known` was last fully diffed against, so that a push need only look at the resources
   * replaced since; undefined after a subscription change that was not answered with a diff.
   */
  synced: number | undefined;
}

interface ServerStream {
  readonly id: number;
  readonly kind: 'sotw' | 'delta';
  readonly call: Call;
  readonly sotw: Map<string, SotwTypeState>;
  readonly delta: Map<string, DeltaTypeState>;
  ended: boolean;
}

export interface XdsTestServerOptions {
  readonly port?: number;
  readonly protos?: EnvoyProtos;
}

function lenPrefix(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

function stringField(field: number, s: string): Buffer {
  if (s === '') return Buffer.alloc(0);
  const b = Buffer.from(s, 'utf8');
  return Buffer.concat([Buffer.from([(field << 3) | 2]), lenPrefix(b.length), b]);
}

/** A Buffer over the same bytes (no copy). */
function view(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** `google.protobuf.Duration` of `ms`. */
function duration(ms: number): { seconds: number; nanos: number } {
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}

/** The encoded `repeated Any resources = 2` entry of a DiscoveryResponse. */
function sotwField(protos: EnvoyProtos, any: AnyMessage): Buffer {
  const anyBytes = Buffer.from(protos.Any.encode(any).finish());
  return Buffer.concat([Buffer.from([(2 << 3) | 2]), lenPrefix(anyBytes.length), anyBytes]);
}

export class XdsTestServer {
  readonly requests: RecordedRequest[] = [];
  private readonly protos: EnvoyProtos;
  private server: grpc.Server | undefined;
  private readonly streams = new Set<ServerStream>();
  private readonly resources = new Map<string, Map<string, StoredResource>>();
  /** Per type, what the last CHANGE_LOG_LENGTH versions changed (for patching SotW bodies). */
  private readonly changes = new Map<string, Change[]>();
  private readonly versions = new Map<string, number>();
  private nonceCounter = 0;
  private streamCounter = 0;
  private boundPort = 0;
  private readonly waiters = new Set<() => void>();
  private readonly lastNonces = new Map<string, string>();

  private constructor(options: XdsTestServerOptions) {
    this.protos = options.protos ?? loadEnvoyProtos();
    this.boundPort = options.port ?? 0;
  }

  static async start(options: XdsTestServerOptions = {}): Promise<XdsTestServer> {
    const s = new XdsTestServer(options);
    await s.listen();
    return s;
  }

  get port(): number {
    return this.boundPort;
  }

  get target(): string {
    return `127.0.0.1:${this.boundPort}`;
  }

  /** Number of open client streams. */
  get streamCount(): number {
    return [...this.streams].filter((s) => !s.ended).length;
  }

  /** The nonce of the last response sent. */
  get lastNonce(): string {
    return `n${this.nonceCounter}`;
  }

  /** The current version of a type ('' before anything was set). */
  version(typeUrl: string): string {
    const v = this.versions.get(typeUrl);
    return v === undefined ? '' : String(v);
  }

  // ---------------------------------------------------------------------------------------------------------------
  // scripting

  /**
   * Replaces all resources of `typeUrl` (proto3 JSON, without "@type"; named by `name`, a CLA by `cluster_name`)
   * and bumps the type's version. Call push() to send.
   */
  set(typeUrl: string, resources: readonly Record<string, unknown>[], options: ResourceOptions = {}): string {
    const type = this.messageType(typeUrl);
    return this.setResources(typeUrl, resources.map((r) => this.toAny(type, r, resourceName(typeUrl, r), options)));
  }

  /** Replaces all clusters (proto3 JSON, without "@type") and bumps the CDS version. Call push() to send. */
  setClusters(clusters: readonly Record<string, unknown>[], options: ResourceOptions = {}): string {
    return this.set(CDS_TYPE_URL, clusters, options);
  }

  /** Replaces all ClusterLoadAssignments (proto3 JSON) and bumps the EDS version. */
  setEndpoints(clas: readonly Record<string, unknown>[], options: ResourceOptions = {}): string {
    return this.set(EDS_TYPE_URL, clas, options);
  }

  /** Replaces all listeners (LDS). */
  setListeners(listeners: readonly Record<string, unknown>[], options: ResourceOptions = {}): string {
    return this.set(LDS_TYPE_URL, listeners, options);
  }

  /** Replaces all route configurations (RDS). */
  setRoutes(routes: readonly Record<string, unknown>[], options: ResourceOptions = {}): string {
    return this.set(RDS_TYPE_URL, routes, options);
  }

  /** Replaces all extension configs (ECDS: TypedExtensionConfig `{name, typed_config}`). */
  setExtensionConfigs(configs: readonly Record<string, unknown>[], options: ResourceOptions = {}): string {
    return this.set(ECDS_TYPE_URL, configs, options);
  }

  /** Replaces or adds single resources without touching the others (Delta-friendly), and bumps the version. */
  upsert(typeUrl: string, items: readonly Record<string, unknown>[]): string {
    const type = this.messageType(typeUrl);
    const current = [...(this.resources.get(typeUrl)?.values() ?? [])].map((r) => ({ name: r.name, any: r.any, inner: r.inner, ttlMs: r.ttlMs }));
    for (const item of items) {
      const name = resourceName(typeUrl, item);
      const next = this.toAny(type, item, name, {});
      const i = current.findIndex((c) => c.name === name);
      if (i >= 0) current[i] = next;
      else current.push(next);
    }
    return this.setResources(typeUrl, current);
  }

  /** Removes named resources and bumps the version. */
  remove(typeUrl: string, names: readonly string[]): string {
    const current = [...(this.resources.get(typeUrl)?.values() ?? [])].filter((r) => !names.includes(r.name));
    return this.setResources(typeUrl, current);
  }

  /**
   * Sets a type's resources from already-encoded Anys (names given); returns the new version. `inner` and `ttlMs`
   * describe a wrapped `any` (Delta sends `inner` with the TTL in its own Resource).
   */
  setResources(typeUrl: string, items: readonly { readonly name: string; readonly any: AnyMessage; readonly inner?: AnyMessage; readonly ttlMs?: number | undefined }[]): string {
    const version = (this.versions.get(typeUrl) ?? 0) + 1;
    this.versions.set(typeUrl, version);
    const prev = this.resources.get(typeUrl) ?? new Map<string, StoredResource>();
    const next = new Map<string, StoredResource>();
    const prevNames = prev.keys();
    let inPlace = items.length === prev.size;
    const replaced: string[] = [];
    for (const { name, any, inner, ttlMs } of items) {
      if (inPlace && prevNames.next().value !== name) inPlace = false;
      const old = prev.get(name);
      if (old && (old.any === any || (old.any.type_url === any.type_url && view(old.any.value).equals(view(any.value))))) {
        next.set(name, old);
        continue;
      }
      next.set(name, { name, version: String(version), any, inner: inner ?? any, ttlMs, sotwField: sotwField(this.protos, any) });
      replaced.push(name);
    }
    this.resources.set(typeUrl, next);
    const log = this.changes.get(typeUrl) ?? [];
    log.push({ version, replaced: inPlace && next.size === prev.size ? replaced : undefined });
    if (log.length > CHANGE_LOG_LENGTH) log.shift();
    this.changes.set(typeUrl, log);
    return String(version);
  }

  /**
   * Sends the current state of `typeUrl` (default: every type, in the no-loss order CDS, EDS, LDS, RDS, ECDS) to
   * every stream that subscribed to it.
   */
  push(typeUrl?: string): void {
    const types = typeUrl ? [typeUrl] : PUSH_ORDER;
    for (const stream of this.streams) {
      if (stream.ended) continue;
      for (const t of types) {
        if (stream.kind === 'sotw') {
          const st = stream.sotw.get(t);
          if (st) this.sendSotwState(stream, t, st);
        } else {
          const st = stream.delta.get(t);
          if (st) this.sendDeltaDiff(stream, t, st);
        }
      }
    }
  }

  /**
   * Sends TTL heartbeats: to SotW streams a response at the current version in which every resource with a TTL
   * is a Resource wrapper without `resource` (the others are sent whole, as SotW needs); to Delta streams the
   * TTL'd resources the stream has, without `resource`, at the version it has.
   */
  heartbeat(typeUrl: string): void {
    const current = [...(this.resources.get(typeUrl)?.values() ?? [])];
    for (const stream of this.streams) {
      if (stream.ended) continue;
      if (stream.kind === 'sotw') {
        const st = stream.sotw.get(typeUrl);
        if (!st) continue;
        const chosen = st.wildcard ? current : current.filter((r) => st.names.has(r.name));
        const fields = chosen.map((r) =>
          r.ttlMs === undefined ? r.sotwField : sotwField(this.protos, { type_url: RESOURCE_TYPE_URL, value: this.protos.Resource.encode({ name: r.name, version: r.version, ttl: duration(r.ttlMs) }).finish() }),
        );
        this.writeSotw(stream, typeUrl, st, fields);
      } else {
        const st = stream.delta.get(typeUrl);
        if (!st) continue;
        const resources = current.filter((r) => r.ttlMs !== undefined && st.known.get(r.name) === r.version).map((r) => ({ name: r.name, version: r.version, ttl: duration(r.ttlMs!) }));
        if (resources.length > 0) stream.call.write({ type_url: typeUrl, system_version_info: this.version(typeUrl), resources, removed_resources: [], nonce: this.nextNonce(typeUrl) });
      }
    }
  }

  /** Sends a hand-built SotW DiscoveryResponse to every SotW stream; returns the nonce used. */
  sendRaw(response: { type_url: string; version_info: string; resources: readonly AnyMessage[]; nonce?: string }): string {
    const nonce = response.nonce ?? this.nextNonce(response.type_url);
    this.lastNonces.set(response.type_url, nonce);
    for (const stream of this.streams) {
      if (stream.ended || stream.kind !== 'sotw') continue;
      const st = stream.sotw.get(response.type_url);
      if (st) st.lastNonce = nonce;
      stream.call.write({ ...response, resources: [...response.resources], nonce });
    }
    return nonce;
  }

  /** Sends a hand-built DeltaDiscoveryResponse to every Delta stream; returns the nonce used. */
  sendRawDelta(response: { type_url: string; system_version_info?: string; resources: readonly ProtoObject[]; removed_resources?: readonly string[]; nonce?: string }): string {
    const nonce = response.nonce ?? this.nextNonce(response.type_url);
    this.lastNonces.set(response.type_url, nonce);
    for (const stream of this.streams) {
      if (stream.ended || stream.kind !== 'delta') continue;
      stream.call.write({ ...response, resources: [...response.resources], removed_resources: [...(response.removed_resources ?? [])], nonce });
    }
    return nonce;
  }

  /** Encodes one resource (proto3 JSON) as an Any, optionally wrapped in `envoy.service.discovery.v3.Resource`. */
  encodeAny(typeUrl: string, json: Record<string, unknown>, wrapName?: string): AnyMessage {
    const type = this.protos.lookup(typeUrl);
    if (!type) throw new Error(`unknown type ${typeUrl}`);
    return this.toAny(type, json, wrapName ?? '', { wrap: wrapName !== undefined }).any;
  }

  /** Fails every open stream with UNAVAILABLE; clients reconnect. */
  killStreams(): void {
    for (const stream of this.streams) {
      if (stream.ended) continue;
      stream.ended = true;
      stream.call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'killed by test' });
    }
    this.streams.clear();
  }

  /** Takes the server down (forcefully). Resource state and recorded requests are kept. */
  async stop(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.streams) s.ended = true;
    this.streams.clear();
    if (server) server.forceShutdown();
    await Promise.resolve();
  }

  /** Brings a stopped server back on the same port with the same resources. */
  async restart(): Promise<void> {
    await this.stop();
    await this.listen();
  }

  async close(): Promise<void> {
    await this.stop();
    for (const w of this.waiters) w();
    this.waiters.clear();
  }

  /** Resolves when `predicate` holds (checked after every request and every 5 ms); rejects after `timeoutMs`. */
  async waitFor(predicate: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, 5);
        function done(): void {
          clearTimeout(t);
          resolve();
        }
        this.waiters.add(done);
        t.unref();
      });
    }
  }

  /** Requests of one type, in order. */
  requestsFor(typeUrl: string): RecordedRequest[] {
    return this.requests.filter((r) => r.typeUrl === typeUrl);
  }

  /** Last request of a type that answered `nonce`. */
  replyTo(nonce: string): RecordedRequest | undefined {
    for (let i = this.requests.length - 1; i >= 0; i--) if (this.requests[i]!.responseNonce === nonce) return this.requests[i];
    return undefined;
  }

  /** The nonce of the last response of `typeUrl` sent to any stream ('' if none). */
  lastNonceFor(typeUrl: string): string {
    return this.lastNonces.get(typeUrl) ?? '';
  }

  /** How the client answered the response with `nonce`: undefined while it has not. */
  outcome(nonce: string): Outcome | undefined {
    const r = this.replyTo(nonce);
    if (!r) return undefined;
    return r.errorDetail ? { ack: false, version: r.versionInfo, detail: r.errorDetail.message, code: r.errorDetail.code } : { ack: true, version: r.versionInfo };
  }

  /** Waits for the client's answer to the last response of `typeUrl`. */
  async lastOutcome(typeUrl: string, timeoutMs = 10_000): Promise<Outcome> {
    const nonce = this.lastNonceFor(typeUrl);
    if (nonce === '') throw new Error(`no ${typeUrl} response was sent`);
    await this.waitFor(() => this.replyTo(nonce) !== undefined, timeoutMs, `the reply to ${typeUrl} nonce ${nonce}`);
    return this.outcome(nonce)!;
  }

  // ---------------------------------------------------------------------------------------------------------------
  // internals

  private toAny(type: import('protobufjs').Type, json: Record<string, unknown>, name: string, options: ResourceOptions): { name: string; any: AnyMessage; inner: AnyMessage; ttlMs: number | undefined } {
    const plain = fromProtoJson(this.protos, type, json);
    const any: AnyMessage = { type_url: `type.googleapis.com/${type.fullName.slice(1)}`, value: type.encode(plain).finish() };
    const ttlMs = options.ttlMs;
    if (!options.wrap && ttlMs === undefined) return { name, any, inner: any, ttlMs };
    const wrapped = this.protos.Resource.encode({ name, resource: any, ...(ttlMs !== undefined ? { ttl: duration(ttlMs) } : {}) }).finish();
    return { name, any: { type_url: RESOURCE_TYPE_URL, value: wrapped }, inner: any, ttlMs };
  }

  private nextNonce(typeUrl?: string): string {
    const nonce = `n${++this.nonceCounter}`;
    if (typeUrl) this.lastNonces.set(typeUrl, nonce);
    return nonce;
  }

  private messageType(typeUrl: string): import('protobufjs').Type {
    const type = this.protos.lookup(typeUrl);
    if (!type) throw new Error(`unknown type ${typeUrl}`);
    return type;
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
    this.waiters.clear();
  }

  private listen(): Promise<void> {
    const server = new grpc.Server({ 'grpc.max_send_message_length': -1, 'grpc.max_receive_message_length': -1 });
    const p = this.protos;
    const serializeSotw = (m: ProtoObject | Prebuilt): Buffer => (m instanceof Prebuilt ? m.bytes : Buffer.from(p.DiscoveryResponse.encode(m).finish()));
    const serializeDelta = (m: ProtoObject | Prebuilt): Buffer => (m instanceof Prebuilt ? m.bytes : Buffer.from(p.DeltaDiscoveryResponse.encode(m).finish()));
    const definition: grpc.ServiceDefinition = {
      StreamAggregatedResources: {
        path: ADS_SOTW_METHOD,
        requestStream: true,
        responseStream: true,
        requestSerialize: (m: ProtoObject) => Buffer.from(p.DiscoveryRequest.encode(m).finish()),
        requestDeserialize: (b: Buffer) => p.DiscoveryRequest.decode(b) as unknown as ProtoObject,
        responseSerialize: serializeSotw,
        responseDeserialize: (b: Buffer) => p.DiscoveryResponse.decode(b) as unknown as ProtoObject,
      },
      DeltaAggregatedResources: {
        path: ADS_DELTA_METHOD,
        requestStream: true,
        responseStream: true,
        requestSerialize: (m: ProtoObject) => Buffer.from(p.DeltaDiscoveryRequest.encode(m).finish()),
        requestDeserialize: (b: Buffer) => p.DeltaDiscoveryRequest.decode(b) as unknown as ProtoObject,
        responseSerialize: serializeDelta,
        responseDeserialize: (b: Buffer) => p.DeltaDiscoveryResponse.decode(b) as unknown as ProtoObject,
      },
    };
    server.addService(definition, {
      StreamAggregatedResources: (call: Call) => this.onStream(call, 'sotw'),
      DeltaAggregatedResources: (call: Call) => this.onStream(call, 'delta'),
    });
    return new Promise((resolve, reject) => {
      server.bindAsync(`127.0.0.1:${this.boundPort}`, grpc.ServerCredentials.createInsecure(), (err, port) => {
        if (err) return reject(err);
        this.boundPort = port;
        this.server = server;
        resolve();
      });
    });
  }

  private onStream(call: Call, kind: 'sotw' | 'delta'): void {
    const stream: ServerStream = { id: ++this.streamCounter, kind, call, sotw: new Map(), delta: new Map(), ended: false };
    this.streams.add(stream);
    const end = (): void => {
      stream.ended = true;
      this.streams.delete(stream);
    };
    call.on('data', (req: ProtoObject) => {
      if (stream.ended) return;
      if (kind === 'sotw') this.onSotwRequest(stream, req);
      else this.onDeltaRequest(stream, req);
      this.notify();
    });
    call.on('end', () => {
      end();
      call.end();
    });
    call.on('error', end);
    call.on('cancelled', end);
  }

  private record(stream: ServerStream, req: ProtoObject): RecordedRequest {
    const err = req['error_detail'] as { code?: number; message?: string } | null | undefined;
    const node = req['node'] as { id?: string } | null | undefined;
    const rec: RecordedRequest = {
      kind: stream.kind,
      stream: stream.id,
      typeUrl: String(req['type_url'] ?? ''),
      versionInfo: String(req['version_info'] ?? ''),
      responseNonce: String(req['response_nonce'] ?? ''),
      errorDetail: err ? { code: Number(err.code ?? 0), message: String(err.message ?? '') } : undefined,
      resourceNames: [...((req['resource_names'] as string[] | undefined) ?? [])],
      subscribe: [...((req['resource_names_subscribe'] as string[] | undefined) ?? [])],
      unsubscribe: [...((req['resource_names_unsubscribe'] as string[] | undefined) ?? [])],
      initialResourceVersions: { ...((req['initial_resource_versions'] as Record<string, string> | undefined) ?? {}) },
      nodeId: node ? String(node.id ?? '') : undefined,
      clientFeatures: [...(((node as { client_features?: string[] } | null | undefined)?.client_features ?? []) as string[])],
    };
    this.requests.push(rec);
    return rec;
  }

  private onSotwRequest(stream: ServerStream, req: ProtoObject): void {
    const rec = this.record(stream, req);
    let st = stream.sotw.get(rec.typeUrl);
    const first = !st;
    if (!st) {
      st = { names: new Set(), wildcard: rec.resourceNames.length === 0, lastNonce: '', body: undefined };
      stream.sotw.set(rec.typeUrl, st);
    }
    const added = rec.resourceNames.filter((n) => !st.names.has(n));
    const names = new Set(rec.resourceNames);
    if (added.length > 0 || names.size !== st.names.size) {
      st.names = names;
      st.body = undefined;
    }
    if (rec.responseNonce !== '' && rec.responseNonce !== st.lastNonce) return; // stale
    const current = this.version(rec.typeUrl);
    if (current === '') return;
    if (added.length > 0 && !st.wildcard) return this.sendSotwState(stream, rec.typeUrl, st);
    if ((first || rec.responseNonce === '') && rec.versionInfo !== current) this.sendSotwState(stream, rec.typeUrl, st);
  }

  private sendSotwState(stream: ServerStream, typeUrl: string, st: SotwTypeState): void {
    const current = this.resources.get(typeUrl) ?? new Map<string, StoredResource>();
    const version = this.versions.get(typeUrl) ?? 0;
    const replaced = st.body ? this.replacedSince(typeUrl, st.body.version) : undefined;
    let replacements: StoredResource[] = [];
    if (!st.body || !replaced || replaced.length > MAX_PATCHED_RESOURCES) {
      const all = [...current.values()];
      st.body = SotwBody.build(version, st.wildcard ? all : all.filter((r) => st.names.has(r.name)));
    } else {
      const body = st.body;
      replacements = replaced.filter((n) => body.has(n)).map((n) => current.get(n)!);
    }
    const nonce = this.nextNonce(typeUrl);
    st.lastNonce = nonce;
    const tail = Buffer.concat([stringField(4, typeUrl), stringField(5, nonce)]);
    stream.call.write(new Prebuilt(st.body.render(version, stringField(1, this.version(typeUrl)), tail, replacements)));
  }

  /**
   * The names replaced in place in `typeUrl` after version `since` (deduplicated), or undefined when resources
   * were added, removed or reordered since, or the log no longer reaches back that far.
   */
  private replacedSince(typeUrl: string, since: number): string[] | undefined {
    const version = this.versions.get(typeUrl) ?? 0;
    const log = (this.changes.get(typeUrl) ?? []).filter((c) => c.version > since);
    if (log.length !== version - since) return undefined;
    const names = new Set<string>();
    for (const c of log) {
      if (!c.replaced) return undefined;
      for (const n of c.replaced) names.add(n);
    }
    return [...names];
  }

  private writeSotw(stream: ServerStream, typeUrl: string, st: SotwTypeState, fields: readonly Buffer[]): void {
    const nonce = this.nextNonce(typeUrl);
    st.lastNonce = nonce;
    const bytes = Buffer.concat([stringField(1, this.version(typeUrl)), ...fields, stringField(4, typeUrl), stringField(5, nonce)]);
    stream.call.write(new Prebuilt(bytes));
  }

  private onDeltaRequest(stream: ServerStream, req: ProtoObject): void {
    const rec = this.record(stream, req);
    let st = stream.delta.get(rec.typeUrl);
    if (!st) {
      st = { names: new Set(), wildcard: false, known: new Map(Object.entries(rec.initialResourceVersions)), synced: undefined };
      stream.delta.set(rec.typeUrl, st);
      if (rec.subscribe.length === 0 && rec.unsubscribe.length === 0) st.wildcard = true; // legacy wildcard
    }
    for (const n of rec.subscribe) {
      if (n === '*') st.wildcard = true;
      else st.names.add(n);
    }
    for (const n of rec.unsubscribe) {
      if (n === '*') st.wildcard = false;
      st.names.delete(n);
      st.known.delete(n);
    }
    if (rec.subscribe.length > 0 || rec.unsubscribe.length > 0) st.synced = undefined;
    if (rec.responseNonce !== '') return; // ACK or NACK
    this.sendDeltaDiff(stream, rec.typeUrl, st, rec.subscribe);
  }

  /**
   * Sends what the stream lacks: resources it wants at a version it does not have (and `forceNames` whatever
   * it has), and the removal of wanted ones that are gone. A push after a full diff only looks at the resources
   * replaced in place since (nothing can have been removed then).
   */
  private sendDeltaDiff(stream: ServerStream, typeUrl: string, st: DeltaTypeState, forceNames: readonly string[] = []): void {
    const current = this.resources.get(typeUrl) ?? new Map<string, StoredResource>();
    const wanted = (name: string): boolean => st.wildcard || st.names.has(name);
    const forced = new Set(forceNames);
    const replaced = forced.size === 0 && st.synced !== undefined ? this.replacedSince(typeUrl, st.synced) : undefined;
    const resources: ProtoObject[] = [];
    for (const r of replaced ? replaced.map((n) => current.get(n)!) : current.values()) {
      if (!wanted(r.name)) continue;
      if (st.known.get(r.name) === r.version && !forced.has(r.name)) continue;
      resources.push({ name: r.name, version: r.version, resource: r.inner, ...(r.ttlMs !== undefined ? { ttl: duration(r.ttlMs) } : {}) });
      st.known.set(r.name, r.version);
    }
    const removed: string[] = [];
    if (!replaced) {
      for (const name of [...st.known.keys()]) {
        if (!current.has(name) && wanted(name)) {
          removed.push(name);
          st.known.delete(name);
        }
      }
    }
    st.synced = this.versions.get(typeUrl) ?? 0;
    if (resources.length === 0 && removed.length === 0) return;
    stream.call.write({ type_url: typeUrl, system_version_info: this.version(typeUrl), resources, removed_resources: removed, nonce: this.nextNonce(typeUrl) });
  }
}
