import type { TlsConnectionInfo } from '../tls/tls-context';
import { httpToGrpcStatus } from '../runtime/stream-attributes';
import { randomUUID } from 'node:crypto';
import type { LiveCluster } from '../upstream/cluster-manager';
import { StreamType } from '../abi/enums';
import type { PropertyValue } from '../abi/properties';
import { streamAttribute, wasmLocalReplyDetails, type StreamAttributeConfig, type StreamAttributeSource } from '../runtime/stream-attributes';
import type { LocalResponse, StreamHost } from '../abi/stream-state';
import type { HeaderPairs } from '../common/headers';
import type { Logger } from '../common/logger';
import type { Plugin } from '../runtime/plugin';
import type { DataAction, HeadersAction, HttpStream, TrailersAction } from '../runtime/http-stream';
import { getHeader } from './http-headers';
import type { RouteSelection, RouteTable } from './route-table';

/**
 * One HTTP stream through the filter chain, as Envoy's FilterManager runs it: decoder filters in listener order
 * then the router (the decode sink); encoder filters in reverse order then the downstream connection (the encode
 * sink). Each Wasm filter's return value is applied with Envoy's iteration rules (proxy-wasm-abi.md §8,
 * higress-abi.md §4.1):
 *  - headers Continue: passed on; StopIteration: headers held, body callbacks still delivered, and a body Continue
 *    releases headers and data together; StopAll: nothing reaches this filter until proxy_continue_stream, the
 *    host buffers and, on continue, delivers the buffered body to this filter first.
 *  - body Continue: passed on (with whatever the plugin wrote into the buffer); StopIterationAndBuffer/Watermark:
 *    accumulated, the next callback sees everything buffered; NoBuffer: the chunk stays with the filter.
 *  - a local reply from filter k stops decoding and is encoded through filters k..0 (the ones that decoded);
 *    while encoding and before headers went downstream it is sent directly; after that the stream is reset.
 * Actions a plugin requests during a guest call (continue, local reply, close) are queued and run once the
 * current filter call has been accounted for, never re-entering the chain from inside a callback.
 */

export type Direction = 'decode' | 'encode';

const NO_FILTERS: readonly number[] = [];

/**
 * Filter orders are the same for every stream of a chain: 0..n-1 for decoding, k..0 for encoding a response that
 * starts at filter k. Made once per length and shared (frozen) instead of two arrays per stream.
 */
const ascending: Array<readonly number[]> = [];
const descending: Array<readonly number[]> = [];

function ascendingOrder(n: number): readonly number[] {
  return (ascending[n] ??= Object.freeze(Array.from({ length: n }, (_, i) => i)));
}

function descendingOrder(n: number): readonly number[] {
  return (descending[n] ??= Object.freeze(Array.from({ length: n }, (_, i) => n - 1 - i)));
}

/** Where a direction's output goes: the router (decode) or the downstream connection (encode). */
export interface StreamSink {
  headers(headers: HeaderPairs, endOfStream: boolean): void;
  data(chunk: Buffer, endOfStream: boolean): void;
  trailers(trailers: HeaderPairs): void;
}

export interface DownstreamSink extends StreamSink {
  /** Response headers have gone to the client (a local reply can no longer replace them). */
  readonly headersSent: boolean;
  /** Abort the client connection (Envoy stream reset). */
  reset(reason: string): void;
}

export interface RouterSink extends StreamSink {
  /** The local reply or reset made the upstream request unnecessary: cancel it. */
  abort(reason: string): void;
}

/** What the access log and properties know about the stream (Envoy StreamInfo, reduced). */
export interface StreamInfo {
  readonly startTime: Date;
  readonly startNs: bigint;
  readonly sourceAddress: string;
  readonly sourcePort: number;
  readonly destinationAddress: string;
  readonly destinationPort: number;
  readonly listenerName: string;
  /** Downstream connection id (process-wide counter, as Envoy numbers connections). */
  readonly connectionId: number;
  /** The downstream protocol as Envoy names it (`HTTP/1.1`, `HTTP/1.0`, `HTTP/2`). */
  readonly protocol: string;
  /** The downstream TLS connection; absent in plaintext. */
  readonly tls?: TlsConnectionInfo;
  requestId: string;
  hasRoute: boolean;
  routeName: string;
  clusterName: string;
  virtualHostName: string;
  upstreamHost: string;
  upstreamTransportFailureReason: string;
  responseCode: number;
  /** `via_upstream` for an upstream response, else the local reply's details (Envoy ResponseCodeDetails). */
  responseCodeDetails: string;
  /** Envoy response flags (UF, UT, NR, ...). */
  responseFlags: string[];
  requestBytes: number;
  responseBytes: number;
  /** Set when the stream completed (request.duration). */
  durationNs: bigint | undefined;
}

/** Envoy StreamInfo::ResponseCodeDetails values the data plane sets. */
export const ResponseCodeDetails = {
  viaUpstream: 'via_upstream',
  requestPayloadTooLarge: 'request_payload_too_large',
  responsePayloadTooLarge: 'response_payload_too_large',
  wasmCloseStream: 'wasm_close_stream',
  wasmFailStream: 'wasm_fail_stream',
} as const;


class DirState {
  /** Headers held by StopIteration/StopAll (not yet passed on). */
  heldHeaders: HeaderPairs | undefined;
  stopAll = false;
  /** Body held at this filter (buffered or stopped). */
  buffer: Buffer | undefined;
  trailers: HeaderPairs | undefined;
  /** End of stream has reached this filter. */
  endSeen = false;
  /** A body callback with end_of_stream stopped: the end waits here for continue_stream. */
  endHeld = false;
  get stopped(): boolean {
    return this.stopAll || this.heldHeaders !== undefined || this.buffer !== undefined || this.trailers !== undefined || this.endHeld;
  }
}

/** One Wasm filter's slot in this stream; it is the StreamHost its HttpStream talks to. */
export class FilterSlot implements StreamHost {
  readonly decode = new DirState();
  readonly encode = new DirState();
  /** FAIL_OPEN after a failure, or no filter: data passes untouched. */
  bypass: boolean;
  /** Higress `clear_route_cache=off`: this filter's header changes no longer clear the route cache. */
  routeCacheClearDisabled = false;

  constructor(
    readonly index: number,
    readonly plugin: Plugin,
    private readonly owner: ActiveStream,
    public stream: HttpStream | undefined,
  ) {
    this.bypass = stream === undefined;
  }

  state(dir: Direction): DirState {
    return dir === 'decode' ? this.decode : this.encode;
  }

  // StreamHost: each of these arrives after the guest call that asked for it returned.
  continueStream(type: StreamType): void {
    if (type === StreamType.HttpRequest) this.owner.enqueue(() => this.owner.continueFilter(this, 'decode'));
    else if (type === StreamType.HttpResponse) this.owner.enqueue(() => this.owner.continueFilter(this, 'encode'));
  }
  closeStream(_type: StreamType): void {
    this.owner.info.responseCodeDetails ||= ResponseCodeDetails.wasmCloseStream;
    this.owner.enqueue(() => this.owner.reset(`wasm close_stream from ${this.plugin.config.name}`));
  }
  sendLocalResponse(response: LocalResponse): void {
    this.owner.enqueue(() => {
      this.owner.sendLocalReply(this.index, response.statusCode, response.body, response.headers, wasmLocalReplyDetails(this.plugin.config.name, response.details), response.grpcStatus);
    });
  }
  requestHeadersModified(): void {
    this.clearRouteCache();
  }
  clearRouteCache(): void {
    if (!this.routeCacheClearDisabled) this.owner.clearRouteCache();
  }
  injectEncodedData(data: Buffer, endOfStream: boolean, onHeader: boolean): boolean {
    if (!this.owner.canInjectEncoded(this)) return false;
    const inject = () => this.owner.enqueue(() => this.owner.injectEncoded(this, data, endOfStream));
    // The _on_header form is posted to the dispatcher: headers are still being encoded when it is called.
    if (onHeader) setImmediate(inject);
    else inject();
    return true;
  }
  property(path: readonly string[]): PropertyValue | undefined {
    return this.owner.property(path);
  }
  propertyWritten(path: string, value: Buffer): void {
    this.owner.propertyWritten(this, path, value);
  }
  upstreamHosts(): ReadonlyArray<readonly [string, string]> {
    return this.owner.upstreamHosts();
  }
  setUpstreamOverrideHost(address: string): void {
    this.owner.overrideHost = address;
  }
}

const HIGRESS_HEALTH: Readonly<Record<string, string>> = {
  HEALTHY: 'Healthy', UNKNOWN: 'Healthy', DEGRADED: 'Degraded', UNHEALTHY: 'Unhealthy', DRAINING: 'Unhealthy', TIMEOUT: 'Unhealthy',
};

export interface ActiveStreamOptions {
  readonly plugins: readonly Plugin[];
  readonly info: StreamInfo;
  readonly logger: Logger;
  /** `message`: the serialized envoy.config.core.v3.Node; `metadata`: its metadata Struct as JSON. */
  readonly node: StreamAttributeSource['node'];
  /** Cluster lookup for proxy_get_upstream_hosts. */
  readonly clusters?: { get(name: string): LiveCluster | undefined };
  /** The route table the stream's route is selected from (and re-selected after the route cache is cleared). */
  readonly routes?: RouteTable;
  /** Listener facts for xds.* attributes. */
  readonly listener?: Pick<StreamAttributeConfig, 'listenerMetadata' | 'filterChainName' | 'listenerDirection'>;
  /** The stream's buffer limit (Listener.per_connection_buffer_limit_bytes); 0 = none. */
  readonly bufferLimit?: number;
  /**
   * The request headers as the codec converted them, adopted as the stream's own map (mutated in place by the
   * filters) so the conversion from the codec's form happens once per stream; default an empty map to fill.
   */
  readonly requestHeaders?: HeaderPairs;
}

export class ActiveStream {
  readonly info: StreamInfo;
  readonly slots: FilterSlot[];
  readonly requestHeaders: HeaderPairs;
  responseHeaders: HeaderPairs = [];
  private readonly logger: Logger;
  /** Decoder filters in call order (listener order); fixed for the stream's life. */
  private readonly decodeOrder: readonly number[];
  private readonly queue: Array<() => void> = [];
  private pumping = false;
  private inCall = 0;
  /** Decoding stopped (local reply or reset): downstream request data is dropped. */
  private decodeAborted = false;
  /** Encoder filters (indices in call order) for the response being encoded. */
  private encodeOrder: readonly number[] | undefined;
  private encodeAborted = false;
  private localReplySent = false;
  private done = false;
  /** The cached route (Envoy's cached route): undefined until selected or after clearRouteCache(). */
  private routeSel: RouteSelection | undefined;
  private routeCached = false;
  /** Envoy's stream buffer limit, shared by both directions (set_decoder/encoder_buffer_limit both set it). */
  bufferLimit: number;
  responseTrailers: HeaderPairs | undefined;
  private bufferLimitHit = false;
  router!: RouterSink;
  downstream!: DownstreamSink;

  constructor(private readonly options: ActiveStreamOptions) {
    this.info = options.info;
    this.requestHeaders = options.requestHeaders ?? [];
    this.logger = options.logger;
    const plugins = options.plugins;
    this.slots = [];
    for (let i = 0; i < plugins.length; i++) {
      const slot = new FilterSlot(i, plugins[i]!, this, undefined);
      const stream = plugins[i]!.createStream(slot);
      slot.stream = stream;
      slot.bypass = stream === undefined;
      this.slots.push(slot);
    }
    this.decodeOrder = ascendingOrder(this.slots.length);
    this.bufferLimit = options.bufferLimit ?? 0;
  }

  // ---------- route cache ----------

  /** The stream's route: the cached one, or selected now from the current request headers (Envoy route()). */
  route(): RouteSelection | undefined {
    if (!this.routeCached && this.options.routes) {
      this.routeCached = true;
      const sel = this.options.routes.select(this.requestHeaders);
      this.routeSel = sel;
      this.info.hasRoute = sel !== undefined;
      this.info.routeName = sel?.route.name ?? '';
      this.info.virtualHostName = sel?.virtualHost.name ?? '';
      this.info.clusterName = sel && sel.route.action.kind === 'cluster' ? sel.route.action.cluster : '';
    }
    return this.routeSel;
  }

  /** Envoy clearRouteCache(): the next route() selects again from the (changed) headers. */
  clearRouteCache(): void {
    this.routeCached = false;
  }

  get finished(): boolean {
    return this.done;
  }

  /** Runs `action` now, or after the current filter call when one is in progress. */
  enqueue(action: () => void): void {
    if (this.done) return;
    this.queue.push(action);
    this.pump();
  }

  private pump(): void {
    if (this.pumping || this.inCall > 0) return;
    this.pumping = true;
    try {
      while (this.queue.length > 0 && !this.done) this.queue.shift()!();
    } finally {
      this.pumping = false;
    }
  }

  // One filter callback each, counted as in progress so that actions it requests wait for it (pump). Methods,
  // not a closure passed to a helper: these run for every filter on every stream.
  private callHeaders(stream: HttpStream, dir: Direction, headers: HeaderPairs, eos: boolean): HeadersAction {
    this.inCall++;
    try {
      return dir === 'decode' ? stream.requestHeaders(headers, eos) : stream.responseHeaders(headers, eos);
    } finally {
      this.inCall--;
    }
  }

  private callData(stream: HttpStream, dir: Direction, body: Buffer, eos: boolean): DataAction {
    this.inCall++;
    try {
      return dir === 'decode' ? stream.requestBody(body, eos) : stream.responseBody(body, eos);
    } finally {
      this.inCall--;
    }
  }

  private callTrailers(stream: HttpStream, dir: Direction, trailers: HeaderPairs): TrailersAction {
    this.inCall++;
    try {
      return dir === 'decode' ? stream.requestTrailers(trailers) : stream.responseTrailers(trailers);
    } finally {
      this.inCall--;
    }
  }

  // ---------- entry points (downstream request, upstream response) ----------

  decodeHeaders(endOfStream: boolean): void {
    // Envoy fails a stream whose filter could not be created (VM failed) unless the filter fails open.
    for (const slot of this.slots) {
      if (slot.stream === undefined && slot.plugin.failurePolicy !== 'FAIL_OPEN') {
        this.logger.warn({ plugin: slot.plugin.config.name, policy: slot.plugin.failurePolicy }, 'wasm filter unavailable (VM failed); failing the stream');
        this.enqueue(() => this.sendLocalReply(slot.index, 503, Buffer.alloc(0), [], ResponseCodeDetails.wasmFailStream));
        return;
      }
    }
    this.doHeaders('decode', 0, this.requestHeaders, endOfStream);
    this.pump();
  }

  decodeData(chunk: Buffer, endOfStream: boolean): void {
    this.info.requestBytes += chunk.length;
    if (this.decodeAborted || this.done) return;
    this.doData('decode', 0, chunk, endOfStream);
    this.pump();
  }

  decodeTrailers(trailers: HeaderPairs): void {
    if (this.decodeAborted || this.done) return;
    this.doTrailers('decode', 0, trailers);
    this.pump();
  }

  /** Response headers from the router (upstream, or the router's own local reply). */
  encodeHeaders(headers: HeaderPairs, endOfStream: boolean, from: number = this.slots.length): void {
    if (this.done || this.encodeAborted) return;
    this.encodeOrder = descendingOrder(Math.min(from, this.slots.length - 1) + 1);
    this.responseHeaders = headers;
    this.info.responseCode = Number(getHeader(headers, ':status') ?? 0);
    this.doHeaders('encode', 0, headers, endOfStream);
    this.pump();
  }

  encodeData(chunk: Buffer, endOfStream: boolean): void {
    if (this.done || this.encodeAborted) return;
    this.doData('encode', 0, chunk, endOfStream);
    this.pump();
  }

  encodeTrailers(trailers: HeaderPairs): void {
    if (this.done || this.encodeAborted) return;
    this.responseTrailers = trailers;
    this.doTrailers('encode', 0, trailers);
    this.pump();
  }

  // ---------- iteration ----------

  private order(dir: Direction): readonly number[] {
    return dir === 'decode' ? this.decodeOrder : (this.encodeOrder ?? NO_FILTERS);
  }

  private aborted(dir: Direction): boolean {
    return this.done || (dir === 'decode' ? this.decodeAborted : this.encodeAborted);
  }

  private sink(dir: Direction): StreamSink {
    return dir === 'decode' ? this.router : this.downstream;
  }

  private doHeaders(dir: Direction, pos: number, headers: HeaderPairs, eos: boolean): void {
    const order = this.order(dir);
    for (let p = pos; p < order.length; p++) {
      if (this.aborted(dir)) return;
      const slot = this.slots[order[p]!]!;
      const st = slot.state(dir);
      if (eos) st.endSeen = true;
      if (slot.bypass || !slot.stream) continue;
      const stream = slot.stream;
      const action = this.callHeaders(stream, dir, headers, eos);
      if (action === 'failed') {
        if (!this.onFailure(slot, dir)) return;
        continue;
      }
      if (action === 'continue') {
        this.clearHeaderAccess(slot, dir);
        continue;
      }
      st.heldHeaders = headers;
      if (action === 'stop_all') st.stopAll = true;
      return;
    }
    if (!this.aborted(dir)) this.sink(dir).headers(headers, eos);
  }

  private doData(dir: Direction, pos: number, chunk: Buffer, eos: boolean): void {
    const order = this.order(dir);
    let data = chunk;
    for (let p = pos; p < order.length; p++) {
      if (this.aborted(dir)) return;
      const slot = this.slots[order[p]!]!;
      const st = slot.state(dir);
      if (eos) st.endSeen = true;
      if (slot.bypass || !slot.stream) continue;
      if (st.stopAll) {
        st.buffer = st.buffer ? Buffer.concat([st.buffer, data]) : data;
        if (slot.stream.stopAllBuffers) this.checkBufferLimit(slot, dir, st.buffer.length);
        return;
      }
      const body = st.buffer ? Buffer.concat([st.buffer, data]) : data;
      st.buffer = undefined;
      const stream = slot.stream;
      const action = this.callData(stream, dir, body, eos);
      const out = (dir === 'decode' ? stream.state.requestBody : stream.state.responseBody) ?? body;
      if (action === 'failed') {
        if (!this.onFailure(slot, dir)) return;
        data = body;
        continue;
      }
      if (action === 'continue') {
        if (dir === 'decode') stream.state.requestBody = undefined;
        else stream.state.responseBody = undefined;
        if (st.heldHeaders) {
          // A body Continue after headers StopIteration releases the headers together with the data.
          const held = st.heldHeaders;
          st.heldHeaders = undefined;
          this.clearHeaderAccess(slot, dir);
          this.doHeaders(dir, p + 1, held, false);
        }
        data = out;
        continue;
      }
      if (action === 'stop_buffer' || action === 'stop_watermark') st.buffer = out;
      if (eos) st.endHeld = true;
      if (action === 'stop_buffer') this.checkBufferLimit(slot, dir, out.length);
      // stop_no_buffer: the filter keeps (drops) the chunk; only continue_stream moves the stream on.
      return;
    }
    if (!this.aborted(dir)) this.sink(dir).data(data, eos);
  }

  private doTrailers(dir: Direction, pos: number, trailers: HeaderPairs): void {
    const order = this.order(dir);
    for (let p = pos; p < order.length; p++) {
      if (this.aborted(dir)) return;
      const slot = this.slots[order[p]!]!;
      const st = slot.state(dir);
      st.endSeen = true;
      if (slot.bypass || !slot.stream) continue;
      if (st.stopAll) {
        st.trailers = trailers;
        return;
      }
      const stream = slot.stream;
      const action = this.callTrailers(stream, dir, trailers);
      if (action === 'failed') {
        if (!this.onFailure(slot, dir)) return;
        continue;
      }
      if (action === 'stop') {
        st.trailers = trailers;
        return;
      }
      // Continue releases whatever this filter still held, then the trailers.
      if (st.heldHeaders) {
        const held = st.heldHeaders;
        st.heldHeaders = undefined;
        this.doHeaders(dir, p + 1, held, false);
      }
      if (st.buffer) {
        const buf = st.buffer;
        st.buffer = undefined;
        this.doData(dir, p + 1, buf, false);
      }
    }
    if (!this.aborted(dir)) this.sink(dir).trailers(trailers);
  }

  /** proxy_continue_stream (Envoy continueDecoding/continueEncoding). */
  continueFilter(slot: FilterSlot, dir: Direction): void {
    if (this.aborted(dir)) return;
    const st = slot.state(dir);
    if (!st.stopped) return;
    const order = this.order(dir);
    const pos = order.indexOf(slot.index);
    if (pos === -1) return;
    const wasStopAll = st.stopAll;
    st.stopAll = false;
    const trailers = st.trailers;
    st.trailers = undefined;
    const endHeld = st.endHeld;
    st.endHeld = false;
    let endSent = false;
    if (st.heldHeaders) {
      const held = st.heldHeaders;
      st.heldHeaders = undefined;
      this.clearHeaderAccess(slot, dir);
      endSent = st.endSeen && st.buffer === undefined && trailers === undefined;
      this.doHeaders(dir, pos + 1, held, endSent);
    }
    if (!endSent && (st.buffer !== undefined || endHeld)) {
      const buf = st.buffer ?? Buffer.alloc(0);
      st.buffer = undefined;
      const eos = st.endSeen && trailers === undefined;
      // After StopAll the filter itself receives what was buffered while it was stopped (Envoy
      // iterate_from_current_filter); otherwise the data moves on from the next filter.
      if (buf.length > 0 || eos) this.doData(dir, wasStopAll ? pos : pos + 1, buf, eos);
    }
    if (trailers) this.doTrailers(dir, wasStopAll ? pos : pos + 1, trailers);
  }

  /**
   * Envoy's buffered-data high watermark for a filter that buffers (StopIterationAndBuffer, StopAllIterationAndBuffer):
   * past the stream's limit a request is answered 413, a response 500 (or reset once its headers went out).
   * Streaming filters (the watermark statuses) are never failed for size.
   */
  private checkBufferLimit(slot: FilterSlot, dir: Direction, buffered: number): void {
    if (this.bufferLimit <= 0 || buffered <= this.bufferLimit || this.bufferLimitHit) return;
    this.bufferLimitHit = true; // one reply: more data may still arrive before it has been sent
    this.logger.debug({ plugin: slot.plugin.config.name, dir, buffered, limit: this.bufferLimit }, 'buffered body over the stream buffer limit');
    if (dir === 'decode') {
      this.enqueue(() => this.sendLocalReply(slot.index, 413, Buffer.from('Payload Too Large'), [], ResponseCodeDetails.requestPayloadTooLarge));
    } else {
      this.enqueue(() => this.sendLocalReply(this.slots.length, 500, Buffer.from('Internal Server Error'), [], ResponseCodeDetails.responsePayloadTooLarge));
    }
  }

  // ---------- Higress injectEncodedDataToFilterChain ----------

  /** A response has reached this filter (its encoder callbacks hold headers to release). */
  canInjectEncoded(slot: FilterSlot): boolean {
    return !this.done && !this.encodeAborted && this.encodeOrder !== undefined && this.encodeOrder.includes(slot.index);
  }

  /**
   * Envoy ActiveStreamEncoderFilter::injectEncodedDataToFilterChain: the filter's held response headers continue
   * (without end of stream), then `data` is encoded from the next filter on. The filter keeps its iteration state:
   * after StopAll, upstream data that reaches it later stays there; after StopIteration, its body callbacks decide.
   * With end of stream the response is complete downstream and nothing more is encoded.
   */
  injectEncoded(slot: FilterSlot, data: Buffer, endOfStream: boolean): void {
    if (!this.canInjectEncoded(slot)) return;
    const st = slot.encode;
    const pos = this.order('encode').indexOf(slot.index);
    if (st.heldHeaders) {
      const held = st.heldHeaders;
      st.heldHeaders = undefined;
      this.clearHeaderAccess(slot, 'encode');
      this.doHeaders('encode', pos + 1, held, false);
    }
    this.doData('encode', pos + 1, data, endOfStream);
    if (endOfStream) this.encodeAborted = true; // the response is complete downstream
  }

  private clearHeaderAccess(slot: FilterSlot, dir: Direction): void {
    // Envoy drops the filter's header map reference once it continued (later header calls fail).
    if (!slot.stream) return;
    if (dir === 'decode') slot.stream.state.requestHeaders = undefined;
    else slot.stream.state.responseHeaders = undefined;
  }

  /** A filter trapped: FAIL_OPEN bypasses it; anything else fails the stream with 503 (Envoy failStream). */
  private onFailure(slot: FilterSlot, dir: Direction): boolean {
    slot.bypass = true;
    const policy = slot.plugin.failurePolicy;
    this.logger.error({ plugin: slot.plugin.config.name, policy, dir, err: slot.plugin.failed?.message }, 'wasm filter failed during the stream');
    if (policy === 'FAIL_OPEN') return true;
    this.enqueue(() => this.sendLocalReply(dir === 'decode' ? slot.index : this.slots.length, 503, Buffer.alloc(0), [], ResponseCodeDetails.wasmFailStream));
    return false;
  }

  // ---------- local replies and resets ----------

  /**
   * Envoy sendLocalReply. `from` is the filter index (slots.length for the router). Before any response has
   * started, the reply is encoded through filters from..0; while encoding (headers not yet downstream) it is
   * sent directly; after that the stream is reset.
   */
  sendLocalReply(from: number, status: number, body: Buffer, extra: HeaderPairs, details: string, grpcStatus = -1): void {
    if (this.done) return;
    this.info.responseCodeDetails = details;
    let headers: HeaderPairs = [[':status', String(status)]];
    for (const [k, v] of extra) if (!k.startsWith(':')) headers.push([k.toLowerCase(), v]);
    if (isGrpcRequest(this.requestHeaders)) {
      headers = grpcLocalReplyHeaders(headers, status, body, grpcStatus, getHeader(this.requestHeaders, ':method') === 'HEAD');
      body = Buffer.alloc(0);
    } else {
      if (body.length > 0 && !headers.some(([k]) => k === 'content-type')) headers.push(['content-type', 'text/plain']);
      // A 1xx, 204 or 304 carries no content-length (RFC 9110 8.6); Envoy sends none for them.
      const bodiless = status < 200 || status === 204 || status === 304;
      if (!bodiless && !headers.some(([k]) => k === 'content-length')) headers.push(['content-length', String(body.length)]);
    }
    this.decodeAborted = true;
    this.router?.abort(`local reply: ${details}`);
    if (this.encodeOrder === undefined && !this.localReplySent) {
      this.localReplySent = true;
      this.encodeHeaders(headers, body.length === 0, Math.min(from, this.slots.length));
      if (body.length > 0) this.encodeData(body, true);
      return;
    }
    if (!this.downstream.headersSent) {
      this.encodeAborted = true;
      this.info.responseCode = status;
      this.downstream.headers(headers, body.length === 0);
      if (body.length > 0) this.downstream.data(body, true);
      return;
    }
    this.reset(`local reply after response started: ${details}`);
  }

  reset(reason: string): void {
    if (this.done) return;
    this.decodeAborted = true;
    this.encodeAborted = true;
    this.router?.abort(reason);
    this.downstream.reset(reason);
  }

  /** The stream is over (response complete, or the client went away): on_log, on_done, on_delete per filter. */
  complete(): void {
    if (this.done) return;
    this.decodeAborted = true;
    this.encodeAborted = true;
    this.queue.length = 0;
    this.router?.abort('stream complete');
    this.done = true;
    this.info.durationNs = process.hrtime.bigint() - this.monoStart;
    for (const slot of this.slots) {
      if (!slot.stream) continue;
      try {
        slot.stream.finishWith(this.requestHeaders, this.responseHeaders);
      } catch (err) {
        this.logger.error({ plugin: slot.plugin.config.name, err: (err as Error).message }, 'wasm stream finish failed');
      }
    }
  }

  // ---------- properties ----------

  /** The attribute source, made on the first property read: a stream whose plugins read none never builds it. */
  private attributes: ActiveStreamAttributes | undefined;

  property(path: readonly string[]): PropertyValue | undefined {
    const sel = this.route(); // a property read after a header change sees the route selected again
    const attributes = (this.attributes ??= new ActiveStreamAttributes(this, this.options.node, this.options.listener));
    attributes.selection = sel;
    return streamAttribute(path, attributes);
  }

  private readonly monoStart = process.hrtime.bigint();

  /** proxy_set_upstream_override_host: the router sends the request there if the cluster has that host. */
  overrideHost: string | undefined;

  /**
   * proxy_get_upstream_hosts for this request's cluster. Higress's Envoy side is not public; the value is a
   * JSON object with the fields ai-load-balancer reads (`health_status` "Healthy"/..., `metrics`) and the
   * host's address, weight and priority.
   */
  upstreamHosts(): ReadonlyArray<readonly [string, string]> {
    const cluster = this.options.clusters?.get(this.info.clusterName);
    if (!cluster) return [];
    return cluster.hosts.map((h) => [h.key, JSON.stringify({
      address: h.key, health_status: HIGRESS_HEALTH[h.health] ?? 'Unhealthy', weight: h.weight, priority: h.priority, metrics: '',
    })] as const);
  }

  /**
   * Property writes with data-plane meaning in Higress's Envoy (context.cc setProperty); the runtime stores every
   * write as filter state. `clear_route_cache`: "off" stops this filter's header changes from clearing the route
   * cache (any other value re-enables it); `set_decoder_buffer_limit` / `set_encoder_buffer_limit`: a decimal
   * uint32 that becomes the stream's buffer limit (Envoy keeps one limit for both directions; a value that does
   * not parse is ignored, as Envoy's stringViewToUint32 fails).
   */
  propertyWritten(slot: FilterSlot, path: string, value: Buffer): void {
    const key = path.includes('\0') ? path.split('\0').join('.') : path;
    switch (key) {
      case 'clear_route_cache':
        slot.routeCacheClearDisabled = value.toString() === 'off';
        break;
      case 'set_decoder_buffer_limit':
      case 'set_encoder_buffer_limit': {
        const text = value.toString();
        const n = /^\s*\d+\s*$/.test(text) ? Number(text) : NaN;
        if (Number.isSafeInteger(n) && n <= 0xffffffff) this.bufferLimit = n;
        else this.logger.debug({ plugin: slot.plugin.config.name, key, value: text }, 'buffer limit is not a uint32; ignored');
        break;
      }
      case 'wasm_need_rebuild':
        this.logger.debug({ plugin: slot.plugin.config.name }, 'plugin asked for a VM rebuild (ignored)');
        break;
    }
  }
}


/**
 * What the attributes read of one stream, as live views of it (headers and info change as the stream goes on), so
 * one object serves every property read of the stream; the configuration part is rebuilt only when the route
 * selection changed.
 */
class ActiveStreamAttributes implements StreamAttributeSource {
  selection: RouteSelection | undefined;
  // The route and virtual host the cached configuration was made for (a re-selection makes a new RouteSelection
  // object even when it selects the same route).
  private configRoute: RouteSelection['route'] | undefined;
  private configHost: RouteSelection['virtualHost'] | undefined;
  private configCache: StreamAttributeConfig | undefined;

  constructor(
    private readonly stream: ActiveStream,
    readonly node: StreamAttributeSource['node'],
    private readonly listener: ActiveStreamOptions['listener'],
  ) {}

  get requestHeaders(): HeaderPairs {
    return this.stream.requestHeaders;
  }
  get responseHeaders(): HeaderPairs {
    return this.stream.responseHeaders;
  }
  get responseTrailers(): HeaderPairs | undefined {
    return this.stream.responseTrailers;
  }
  get info(): StreamInfo {
    return this.stream.info;
  }
  get config(): StreamAttributeConfig {
    const sel = this.selection;
    if (this.configCache === undefined || this.configRoute !== sel?.route || this.configHost !== sel?.virtualHost) {
      this.configRoute = sel?.route;
      this.configHost = sel?.virtualHost;
      this.configCache = { ...this.listener, ...(sel ? { routeMetadata: sel.route.metadata, virtualHostMetadata: sel.virtualHost.metadata } : {}) };
    }
    return this.configCache;
  }
}

export function newRequestId(): string {
  return randomUUID();
}

/** Envoy Grpc::Common::isGrpcRequestHeaders: content-type application/grpc, application/grpc+<x> or ;params. */
export function isGrpcRequest(headers: HeaderPairs): boolean {
  const ct = getHeader(headers, 'content-type');
  if (ct === undefined || !ct.startsWith('application/grpc')) return false;
  return ct.length === 16 || ct[16] === '+' || ct[16] === ';';
}

/** Envoy's PercentEncoding::encode for grpc-message: bytes outside ' '..'~', and '%', as %XX. */
function percentEncode(text: Buffer): string {
  let out = '';
  for (const b of text) out += b < 0x20 || b > 0x7e || b === 0x25 ? `%${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b);
  return out;
}

/**
 * A local reply to a gRPC request is a trailers-only response (Envoy Utility::sendLocalReply): :status 200,
 * content-type application/grpc, grpc-status (the plugin's, else mapped from the HTTP code, unless a header
 * already set it), grpc-message from the body (its final newline dropped), no body, no content-length.
 */
function grpcLocalReplyHeaders(headers: HeaderPairs, status: number, body: Buffer, grpcStatus: number, head: boolean): HeaderPairs {
  const out: HeaderPairs = [[':status', '200']];
  for (const [k, v] of headers) if (!k.startsWith(':') && k !== 'content-type' && k !== 'content-length') out.push([k, v]);
  out.push(['content-type', 'application/grpc']);
  if (!out.some(([k]) => k === 'grpc-status')) {
    // proxy_send_local_response: a grpc_status outside 0..16 (the SDKs pass -1) means none.
    out.push(['grpc-status', String(grpcStatus >= 0 && grpcStatus <= 16 ? grpcStatus : httpToGrpcStatus(status))]);
  }
  let message = body;
  if (message.length > 0 && message[message.length - 1] === 0x0a) message = message.subarray(0, message.length - 1);
  if (message.length > 0 && !head) out.push(['grpc-message', percentEncode(message)]);
  return out;
}
