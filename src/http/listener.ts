import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { constants as h2constants, createServer as createH2Server, type Http2Server, type Http2Session, type IncomingHttpHeaders as H2Headers, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { HeaderPairs } from '../common/headers';
import type { Logger } from '../common/logger';
import type { Plugin } from '../runtime/plugin';
import { ActiveStream, newRequestId, type DownstreamSink } from './active-stream';
import { appendRequestPairs, flatten, getHeader, HOP_BY_HOP, keepTeTrailers, pairsFromRaw } from './http-headers';
import { chainWasmFilters, type FilterChainConfig, type HcmConfig, type ListenerConfig } from './listener-config';
import { TcpChain } from '../listener/tcp-chain';
import { ConfigError } from '../common/errors';
import { ListenerSocket } from '../listener/listener-socket';
import { selectFilterChain, type ConnectionMatchFacts } from '../listener/filter-chain-match';
import { inspectClientHello } from '../listener/tls-inspector';
import { RouteTable, stripPort } from './route-table';
import { RouterFilter, type RouterContext } from './router';
import type { UpstreamPools } from './upstream-pools';
import { nextConnectionId } from '../common/connection-id';
import { ioCycleLimit } from '../common/limits';
import type { ServedNode, StructObject } from '../runtime/stream-attributes';
import { tlsConnectionInfo, type TlsConnectionInfo } from '../tls/tls-context';
import { ProtocolStats } from './protocol-stats';

/** The route table a chain's streams select from: inline, or the RDS resource's latest (swapped atomically). */
export interface RouteSource {
  /** The table new streams use; undefined: none arrived (Envoy then serves an empty table: 404 NR). */
  current(): RouteTable | undefined;
}

/** One http filter's plugin for one stream: held until the stream completes, so a swapped-out plugin can close after. */
export interface FilterLease {
  /** undefined: the filter has no configuration (ECDS without a resource or default): the stream fails with 500. */
  readonly plugin: Plugin | undefined;
  release(): void;
}

/** One http filter of a chain: a fixed plugin (inline Wasm), or an ECDS filter whose plugin is leased per stream. */
export interface HttpFilterSource {
  /** Set for a filter whose plugin never changes: its streams take no lease. */
  readonly plugin?: Plugin;
  acquire(): FilterLease;
}

/** A fixed route table (inline route_config). */
export function staticRoutes(table: RouteTable): RouteSource {
  return { current: () => table };
}

/** A fixed plugin (inline Wasm filter). */
export function staticFilter(plugin: Plugin): HttpFilterSource {
  const lease: FilterLease = { plugin, release: () => undefined };
  return { plugin, acquire: () => lease };
}

/** The listener node attributes every stream reads (see ActiveStream's `node`). */
export type StreamNode = ConstructorParameters<typeof ActiveStream>[0]['node'];

export interface ConnectionManagerOptions {
  readonly listener: ListenerConfig;
  readonly chain: FilterChainConfig;
  readonly routes: RouteSource;
  /** One per http filter before the router, in chain order. */
  readonly filters: readonly HttpFilterSource[];
  readonly pools: UpstreamPools;
  readonly logger: Logger;
  readonly node: StreamNode;
  /** The address `listener.<address>_<port>.` stats are named by. */
  readonly statAddress: string;
}

/**
 * What a listener's chains are built from (see src/listener/): an HTTP chain's route source and http filters;
 * a tcp_proxy chain's Wasm network filters (inline only, so each has its `plugin`).
 */
export interface ChainSources {
  readonly routes?: RouteSource;
  readonly filters: readonly HttpFilterSource[];
}

/** One filter chain of a listener, whatever runs on it: an HttpConnectionManager, or a tcp_proxy chain (src/tcp/). */
export interface ListenerChain {
  readonly config: FilterChainConfig;
  readonly match: FilterChainConfig['match'];
  readonly activeStreams: number;
  readonly connections: number;
  /** How long an LDS update lets the chain drain before its connections are closed. */
  readonly drainTimeoutMs: number;
  serve(socket: Socket, inspected?: boolean): void;
  bound(port: number): void;
  counters(): Record<string, number>;
  drain(drainTimeoutMs: number): Promise<void>;
  close(drainTimeoutMs?: number): Promise<void>;
  destroy(): Promise<void>;
}

export interface HttpListenerOptions {
  readonly config: ListenerConfig;
  /**
   * The route and filter sources of each chain (filter_chains in order, then the default chain). Absent: inline
   * routes, and `plugins` for the inline Wasm filters.
   */
  readonly sources?: (chain: FilterChainConfig, index: number) => ChainSources;
  /** Without `sources`: one loaded plugin per inline wasm filter, in listener order (every chain's, in order). */
  readonly plugins?: readonly Plugin[];
  readonly pools: UpstreamPools;
  readonly logger: Logger;
  /** The bootstrap node; `message` (the serialized envoy.config.core.v3.Node, encoded once by the main thread) is served as the `node` attribute. */
  readonly node?: ServedNode;
  /**
   * The address the `listener.<address>_<port>.` stats are named by, when this listener serves connections
   * accepted on another address (a worker's listener is bound to loopback port 0 and handed the public
   * listener's connections); the port is the one each connection arrived on. Default: the configured address.
   */
  readonly statAddress?: string;
  /**
   * The bound socket to accept on, shared with the listener's other versions (an LDS update keeps the port
   * bound); absent: start() binds one of its own and close() closes it.
   */
  readonly socket?: ListenerSocket;
}

const EMPTY_ROUTES = new RouteTable({ name: '', virtualHosts: [], ignorePortInHostMatching: false });

/** What a downstream connection knows about itself, read once when it is accepted (after the TLS handshake). */
interface ConnectionFacts {
  readonly id: number;
  /** undefined on a plaintext connection. */
  readonly tls: TlsConnectionInfo | undefined;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
}

/**
 * Kept on the socket the HTTP codec reads: node:http2 hands streams a Proxy of that socket, which forwards
 * property reads to it (a WeakMap keyed by the socket would miss through the Proxy).
 */
const kFacts = Symbol('connection facts');
type WithFacts = { [kFacts]?: ConnectionFacts };

/**
 * The addresses come from the TCP socket: a TLS socket wraps it (`_parent`).
 */
function connectionFacts(socket: Socket, tls?: TlsConnectionInfo): ConnectionFacts {
  const s = socket as Socket & WithFacts;
  if (s[kFacts]) return s[kFacts];
  const tcp = (socket as Socket & { _parent?: Socket | null })._parent ?? socket;
  s[kFacts] = {
    id: nextConnectionId(),
    tls,
    remoteAddress: tcp.remoteAddress ?? '',
    remotePort: tcp.remotePort ?? 0,
    localAddress: tcp.localAddress ?? '',
    localPort: tcp.localPort ?? 0,
  };
  return s[kFacts];
}

/** The HTTP/2 client connection preface (RFC 9113 §3.4), which AUTO detection looks for in cleartext. */
const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Resolves when one of `waiters` (the one pushed here) is called, or after `timeoutMs` (a drain deadline). */
function untilCalledOr(waiters: Array<() => void>, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    new Promise<void>((resolve) => waiters.push(resolve)),
    new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs); }),
  ]).finally(() => clearTimeout(timer));
}

const RESPONSE_SKIP = new Set([...HOP_BY_HOP]);

/** Responses whose headers were written (without end of stream) in the current turn. */
const headerFlushes: NodeDownstream[] = [];

function flushHeadersAlone(): void {
  const list = headerFlushes.splice(0);
  for (const d of list) d.flushHeadersIfIdle();
}

/** The client side of one stream: writes what leaves the encoder chain to the node:http response. */
class NodeDownstream implements DownstreamSink {
  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly stream: ActiveStream,
    private readonly request: { readonly requestComplete: boolean },
    private readonly drain: { readonly draining: boolean },
  ) {}

  get headersSent(): boolean {
    return this.res.headersSent;
  }

  headers(headers: HeaderPairs, endOfStream: boolean): void {
    if (this.res.headersSent || this.res.destroyed) return;
    const status = Number(getHeader(headers, ':status') ?? 200);
    const flat = flatten(headers, RESPONSE_SKIP);
    // A response that goes out before the request body was read ends the connection (Envoy's HTTP/1 codec).
    // A draining chain closes the connection after the response (Envoy's drain: `connection: close` on HTTP/1).
    if (!this.request.requestComplete || this.drain.draining) flat.push('connection', 'close');
    try {
      this.res.writeHead(status, flat);
    } catch {
      // A status or header node:http cannot write (a plugin's local reply with status 8, say): reset the stream,
      // as a codec error would, instead of letting the exception end the process.
      this.res.destroy();
      return;
    }
    if (endOfStream) {
      this.res.end();
      return;
    }
    // Headers go out with the first body chunk when it follows in the same turn (one write, as node:http does
    // for a plain proxy); otherwise they are flushed on their own, so a slow stream (SSE) still starts at once.
    // One setImmediate serves every response whose headers went out in this turn.
    headerFlushes.push(this);
    if (headerFlushes.length === 1) setImmediate(flushHeadersAlone);
  }

  /** The body did not follow the headers in the same turn: send the headers now. */
  flushHeadersIfIdle(): void {
    if (!this.res.destroyed && !this.res.writableEnded && this.res.writableLength === 0 && !this.bodyStarted) this.res.flushHeaders();
  }

  private bodyStarted = false;

  data(chunk: Buffer, endOfStream: boolean): void {
    if (this.res.destroyed || this.res.writableEnded) return;
    if (!this.res.headersSent) this.res.writeHead(200);
    this.bodyStarted = true;
    this.stream.info.responseBytes += chunk.length;
    if (endOfStream) this.res.end(chunk.length > 0 ? chunk : undefined);
    else if (chunk.length > 0) this.res.write(chunk);
  }

  trailers(trailers: HeaderPairs): void {
    if (this.res.destroyed || this.res.writableEnded) return;
    const t: Record<string, string> = {};
    for (const [k, v] of trailers) t[k] = k in t ? `${t[k]},${v}` : v;
    this.res.addTrailers(t);
    this.res.end();
  }

  reset(_reason: string): void {
    this.res.destroy();
    this.req.socket.destroy();
  }
}

/** HTTP/2 response headers: pseudo and connection-specific names dropped, repeated names as one list. */
function h2Headers(headers: HeaderPairs, status: number): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = { ':status': status };
  for (const [k, v] of headers) {
    if (k.startsWith(':') || RESPONSE_SKIP.has(k)) continue;
    const prev = out[k];
    if (prev === undefined) out[k] = v;
    else out[k] = Array.isArray(prev) ? [...prev, v] : [String(prev), v];
  }
  return out;
}

/**
 * The client side of one HTTP/2 stream (node:http2 core API): headers with END_STREAM when the response has no
 * body (a gRPC trailers-only reply is one HEADERS frame), DATA, then trailers as a final HEADERS frame.
 */
class H2Downstream implements DownstreamSink {
  private pendingTrailers: OutgoingHttpHeaders | undefined;
  /** The last frame (END_STREAM) was queued. */
  ended = false;

  constructor(
    private readonly h2: ServerHttp2Stream,
    private readonly stream: ActiveStream,
  ) {
    // With waitForTrailers the stream stays open after the last DATA frame until trailers (or none) are sent.
    h2.on('wantTrailers', () => {
      const t = this.pendingTrailers ?? {};
      this.pendingTrailers = undefined;
      if (!h2.destroyed) h2.sendTrailers(t);
    });
  }

  get headersSent(): boolean {
    return this.h2.headersSent;
  }

  headers(headers: HeaderPairs, endOfStream: boolean): void {
    if (this.h2.headersSent || this.h2.destroyed) return;
    const status = Number(getHeader(headers, ':status') ?? 200);
    this.h2.respond(h2Headers(headers, status), { endStream: endOfStream, waitForTrailers: !endOfStream });
    if (endOfStream) this.ended = true;
  }

  data(chunk: Buffer, endOfStream: boolean): void {
    if (this.h2.destroyed || this.ended) return;
    if (!this.h2.headersSent) this.h2.respond({ ':status': 200 }, { waitForTrailers: true });
    this.stream.info.responseBytes += chunk.length;
    if (endOfStream) {
      this.ended = true;
      this.h2.end(chunk.length > 0 ? chunk : undefined);
    } else if (chunk.length > 0) this.h2.write(chunk);
  }

  trailers(trailers: HeaderPairs): void {
    if (this.h2.destroyed || this.ended) return;
    if (!this.h2.headersSent) this.h2.respond({ ':status': 200 }, { waitForTrailers: true });
    const t: OutgoingHttpHeaders = {};
    for (const [k, v] of trailers) {
      if (k.startsWith(':') || RESPONSE_SKIP.has(k)) continue;
      const prev = t[k];
      t[k] = prev === undefined ? v : `${String(prev)},${v}`;
    }
    this.pendingTrailers = t;
    this.ended = true;
    this.h2.end();
  }

  reset(_reason: string): void {
    // Envoy resets the one stream (RST_STREAM), not the connection its siblings share.
    if (!this.h2.destroyed) this.h2.close(h2constants.NGHTTP2_INTERNAL_ERROR);
  }
}

/**
 * One request as the codec (HTTP/1.1 or HTTP/2) delivered it, for startStream; also the router's view of the
 * client (its backpressure), so a stream needs no context object of its own for the router.
 */
interface DownstreamRequest extends RouterContext {
  readonly codec: 'http1' | 'http2';
  /** The socket (for HTTP/2 the session's socket Proxy): addresses and connection facts. */
  readonly socket: Socket;
  /** The connection, for the per-IO-cycle request cap. */
  readonly connection: object;
  /** Envoy's request.protocol. */
  readonly protocol: string;
  /**
   * Request headers with the four pseudo-headers first (hop-by-hop dropped): a map made for this request alone,
   * adopted by its ActiveStream (the filters mutate it in place).
   */
  readonly headers: HeaderPairs;
  readonly hasBody: boolean;
  readonly method: string;
  readonly path: string;
  sink(stream: ActiveStream): DownstreamSink;
  /** The response was completely written when the stream closed (else Envoy's DC flag). */
  responseComplete(): boolean;
  onDone(cb: () => void): void;
  onData(cb: (chunk: Buffer) => void): void;
  /** The request ended; `trailers` empty when there were none. */
  onEnd(cb: (trailers: HeaderPairs) => void): void;
}

/**
 * One HTTP/1.1 request (node:http): what startStream reads of it and the router's view of its response's
 * backpressure, as methods of one object per request rather than a closure per callback.
 */
class Http1Request implements DownstreamRequest {
  readonly codec = 'http1';
  readonly socket: Socket;
  readonly connection: object;
  readonly protocol: string;
  readonly method: string;
  readonly path: string;
  /** The request body has been read to its end (none: ended from the start). */
  requestEnded: boolean;
  private drainWaiters: Array<() => void> | undefined;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    readonly headers: HeaderPairs,
    readonly hasBody: boolean,
    readonly pools: UpstreamPools,
    readonly logger: Logger,
    private readonly drain: { readonly draining: boolean },
  ) {
    this.socket = req.socket;
    this.connection = req.socket;
    this.protocol = `HTTP/${req.httpVersion}`;
    this.method = req.method ?? 'GET';
    this.path = req.url ?? '/';
    this.requestEnded = !hasBody;
  }

  /** The body was read to its end, by the stream or by node:http. */
  get requestComplete(): boolean {
    return this.requestEnded || this.req.complete;
  }

  sink(stream: ActiveStream): DownstreamSink {
    return new NodeDownstream(this.req, this.res, stream, this, this.drain);
  }

  responseComplete(): boolean {
    return this.res.writableFinished;
  }

  onDone(cb: () => void): void {
    this.res.on('finish', cb);
    this.res.on('close', cb);
  }

  onData(cb: (chunk: Buffer) => void): void {
    this.req.on('error', ignoreError);
    this.req.on('data', cb);
  }

  onEnd(cb: (trailers: HeaderPairs) => void): void {
    this.req.on('end', () => {
      if (this.requestEnded) return;
      this.requestEnded = true;
      cb(pairsFromRaw(this.req.rawTrailers));
    });
  }

  downstreamBlocked(): boolean {
    return this.res.writableNeedDrain;
  }

  /** The 'drain' listener is added only once the router waits for one (a paused upstream response). */
  onDownstreamDrain(cb: () => void): void {
    if (this.drainWaiters === undefined) {
      const waiters: Array<() => void> = (this.drainWaiters = []);
      this.res.on('drain', () => {
        for (const w of waiters.splice(0)) w();
      });
    }
    this.drainWaiters.push(cb);
  }
}

function ignoreError(): void {}

/**
 * One filter chain's HttpConnectionManager: serves the connections its listener hands it (TLS first when the
 * chain has a DownstreamTlsContext), hands each to the HTTP/1.1 or HTTP/2 codec (ALPN, codec_type, or in cleartext
 * AUTO the h2 connection preface), builds an ActiveStream per request with the chain's Wasm filters (the plugins
 * current when the stream starts) and the router over the route table current when it starts, and keeps track of
 * in-flight streams and connections so it can drain.
 */
export class HttpConnectionManager implements ListenerChain {
  /** The TLS server for a DownstreamTlsContext (it never listens: connections are handed to it). */
  private readonly tlsFront: TlsServer | undefined;
  /** The HTTP/1.1 codec; it never listens, connections are handed to it. */
  private readonly server: Server;
  /** The HTTP/2 codec, likewise. */
  private readonly h2: Http2Server;
  private readonly sessions = new Set<Http2Session>();
  private readonly logger: Logger;
  private readonly cfg: FilterChainConfig;
  private readonly hcm: HcmConfig;
  /** Plugins when every filter is inline (no lease per stream); undefined when one comes over ECDS. */
  private readonly staticPlugins: readonly Plugin[] | undefined;
  /** Draining: HTTP/1 responses carry `connection: close`, idle keep-alives are closed, HTTP/2 got GOAWAY. */
  private draining = false;
  /** Envoy's protocol and TLS counters for this listener (see protocol-stats.ts). */
  readonly protocolStats: ProtocolStats;
  /**
   * In-flight streams. A count, not a Set: an add/delete per request on a long-lived Set made every scavenge
   * promote the streams in flight (GC was ~11% of the proxy's CPU).
   */
  private inFlight = 0;
  private readonly sockets = new Set<Socket>();
  private drainWaiters: Array<() => void> = [];
  private closing: Promise<void> | null = null;
  /** Cluster lookup for proxy_get_upstream_hosts, shared by every stream. */
  private readonly clusterLookup = { get: (name: string) => this.options.pools.cluster(name) };
  private readonly node: ConstructorParameters<typeof ActiveStream>[0]['node'];
  private readonly listenerAttributes: NonNullable<ConstructorParameters<typeof ActiveStream>[0]['listener']>;
  /** Requests started per connection in the current event-loop turn (Higress max_requests_per_io_cycle). */
  private readonly cycleCounts = new Map<object, number>();

  constructor(private readonly options: ConnectionManagerOptions) {
    const listener = options.listener;
    const cfg = (this.cfg = options.chain);
    if (cfg.network.kind !== 'http') throw new ConfigError('not an HttpConnectionManager chain', cfg.path);
    const hcm = (this.hcm = cfg.network.hcm);
    this.staticPlugins = options.filters.every((f) => f.plugin !== undefined) ? options.filters.map((f) => f.plugin!) : undefined;
    this.node = options.node;
    this.listenerAttributes = {
      listenerMetadata: listener.metadata,
      filterChainName: cfg.name,
      listenerDirection: listener.trafficDirection,
    };
    this.logger = options.logger;
    this.protocolStats = new ProtocolStats(hcm.statPrefix, options.statAddress, listener.port);
    this.server = createServer({ keepAlive: true, requestTimeout: 0, headersTimeout: 60_000 }, (req, res) => this.onHttp1Request(req, res));
    // node:http tracks connections (closeIdleConnections, headersTimeout) from 'listening' on; this server is
    // handed its connections instead of listening, so it is told it listens.
    this.server.emit('listening');
    this.server.on('clientError', (err, socket) => {
      this.logger.debug({ err: err.message }, 'client error');
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      else socket.destroy();
    });
    this.h2 = createH2Server({ settings: { maxConcurrentStreams: hcm.http2.maxConcurrentStreams, initialWindowSize: hcm.http2.initialWindowSize } });
    this.h2.on('session', (session: Http2Session) => {
      this.sessions.add(session);
      session.on('close', () => this.sessions.delete(session));
      session.on('error', (err) => this.logger.debug({ err: err.message }, 'http2 session error'));
    });
    this.h2.on('stream', (stream: ServerHttp2Stream, headers: H2Headers, flags: number, rawHeaders: string[]) => this.onHttp2Stream(stream, headers, flags, rawHeaders));
    const tls = cfg.tls;
    if (tls) {
      this.tlsFront = createTlsServer({
        cert: tls.cert,
        key: tls.key,
        ...(tls.passphrase !== undefined ? { passphrase: tls.passphrase } : {}),
        ...(tls.ca ? { ca: tls.ca } : {}),
        minVersion: tls.minVersion,
        maxVersion: tls.maxVersion,
        ...(tls.alpn.length > 0 ? { ALPNProtocols: [...tls.alpn] } : {}),
        // Envoy asks for a client certificate when there is a CA to verify it against; it fails the handshake
        // without one only when require_client_certificate is set.
        requestCert: tls.ca !== undefined,
        rejectUnauthorized: tls.requireClientCertificate,
      });
      this.tlsFront.on('secureConnection', (socket: TLSSocket) => this.onSecureConnection(socket));
      this.tlsFront.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket) => {
        this.nameListenerStats(socket);
        this.protocolStats.connectionError();
        if (tls.requireClientCertificate && /PEER_DID_NOT_RETURN_A_CERTIFICATE|CERTIFICATE_REQUIRED/.test(`${err.code ?? ''} ${err.message}`)) this.protocolStats.noCertificate(true);
        this.logger.debug({ err: err.message, code: err.code }, 'TLS handshake failed');
      });
    }
  }

  get config(): FilterChainConfig {
    return this.cfg;
  }

  /** The chain's filter_chain_match (what selectFilterChain reads). */
  get match(): FilterChainConfig['match'] {
    return this.cfg.match;
  }

  get activeStreams(): number {
    return this.inFlight;
  }

  /** Open connections (HTTP/1.1 and HTTP/2, TLS included). */
  get connections(): number {
    return this.sockets.size;
  }

  get closed(): boolean {
    return this.closing !== null;
  }

  /**
   * Serves a connection the listener accepted (and matched to this chain); `inspected`: the tls_inspector read
   * from it and left it paused with its bytes put back.
   */
  serve(socket: Socket, inspected = false): void {
    this.sockets.add(socket);
    socket.on('close', () => {
      this.sockets.delete(socket);
      if (this.sockets.size === 0 && this.draining) for (const cb of this.idleWaiters.splice(0)) cb();
    });
    if (this.closing) {
      socket.destroy();
      return;
    }
    if (this.tlsFront) this.tlsFront.emit('connection', socket);
    else {
      this.onPlainConnection(socket);
      if (inspected) socket.resume();
    }
  }

  /** Names the listener.* stats by the port bound. */
  bound(port: number): void {
    this.protocolStats.bound(this.options.statAddress, port);
  }

  counters(): Record<string, number> {
    return this.protocolStats.snapshot();
  }

  /** How long an LDS update lets this chain drain: the HCM's drain_timeout. */
  get drainTimeoutMs(): number {
    return this.hcm.drainTimeoutMs;
  }

  private idleWaiters: Array<() => void> = [];

  /**
   * listener.* stats carry the port the connection arrived on: the bound port, or with workers the public
   * listener's (a forwarded socket keeps its local address).
   */
  private nameListenerStats(socket: Socket): void {
    const tcp = (socket as Socket & { _parent?: Socket | null })._parent ?? socket;
    if (tcp.localPort !== undefined) this.protocolStats.bound(this.options.statAddress, tcp.localPort);
  }

  private onSecureConnection(socket: TLSSocket): void {
    const tls = this.cfg.tls!;
    this.nameListenerStats(socket);
    const info = tlsConnectionInfo(socket);
    // A certificate that was requested but not required must still verify when one is presented (Envoy
    // fails such a handshake); node:tls only enforces it with rejectUnauthorized.
    if (info.peer && !socket.authorized) {
      this.protocolStats.failVerify();
      this.protocolStats.connectionError();
      this.logger.debug({ err: String(socket.authorizationError) }, 'client certificate did not verify');
      socket.destroy();
      return;
    }
    if (!info.peer && tls.ca !== undefined) this.protocolStats.noCertificate(false);
    this.protocolStats.handshake(info.version);
    connectionFacts(socket, info);
    // ALPN decides when it chose; without ALPN the codec does, as in cleartext (Envoy's AUTO looks at the
    // first bytes for the h2 preface either way).
    if (socket.alpnProtocol === 'h2' || socket.alpnProtocol === 'http/1.1') this.handTo(socket, socket.alpnProtocol === 'h2', true);
    else this.dispatchByCodec(socket, true);
  }

  private onPlainConnection(socket: Socket): void {
    this.dispatchByCodec(socket, false);
  }

  /** codec_type HTTP1 / HTTP2, or AUTO: the HTTP/2 connection preface picks HTTP/2, anything else HTTP/1.1. */
  private dispatchByCodec(socket: Socket, tls: boolean): void {
    const codec = this.hcm.codec;
    if (codec !== 'AUTO') {
      this.handTo(socket, codec === 'HTTP2', tls);
      return;
    }
    // The bytes read to decide are put back for the codec.
    let seen: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      const n = Math.min(seen.length, H2_PREFACE.length);
      const isPrefix = seen.subarray(0, n).equals(H2_PREFACE.subarray(0, n));
      if (isPrefix && seen.length < H2_PREFACE.length) return;
      socket.off('data', onData);
      socket.pause();
      socket.unshift(seen);
      this.handTo(socket, isPrefix, tls);
      process.nextTick(() => socket.resume());
    };
    socket.on('data', onData);
  }

  private handTo(socket: Socket, h2: boolean, tls: boolean): void {
    this.protocolStats.connection(h2 ? 'http2' : 'http1', tls);
    // node:http2 serves a TLS socket only when ALPN said h2; prior knowledge over TLS without ALPN is HTTP/2
    // all the same (Envoy), so the socket is marked the way undici's H2CClient marks its sockets.
    if (h2 && tls && (socket as TLSSocket).alpnProtocol !== 'h2') (socket as TLSSocket & { alpnProtocol: string | false | null }).alpnProtocol = 'h2';
    (h2 ? this.h2 : this.server).emit('connection', socket);
  }

  private onHttp1Request(req: IncomingMessage, res: ServerResponse): void {
    const te = req.headers['transfer-encoding'];
    const cl = req.headers['content-length'];
    const hasBody = te !== undefined || (cl !== undefined && cl !== '0');
    const encrypted = (req.socket as TLSSocket).encrypted === true;
    const scheme = encrypted ? 'https' : 'http';
    // One array, the stream's own request map from here on (ActiveStream adopts it): pseudo-headers, then the rest.
    const authority: [string, string] = [':authority', ''];
    const headers: HeaderPairs = [authority, [':path', req.url ?? '/'], [':method', req.method ?? 'GET'], [':scheme', scheme]];
    authority[1] = this.authority(appendRequestPairs(req.rawHeaders, headers) ?? '', connectionFacts(req.socket).localPort);
    this.onRequest(new Http1Request(req, res, headers, hasBody, this.options.pools, this.logger, this.drainSignal));
  }

  private onHttp2Stream(h2: ServerHttp2Stream, _parsed: H2Headers, flags: number, rawHeaders: string[]): void {
    const socket = h2.session?.socket as Socket | undefined;
    if (!socket || !h2.session) {
      h2.close(h2constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    // Pseudo-headers first, in the order the client sent them (Envoy's HTTP/2 codec); :authority from host
    // when the client sent only that.
    const raw = pairsFromRaw(rawHeaders);
    const pseudo = raw.filter(([k]) => k.startsWith(':'));
    const regular = raw.filter(([k]) => !k.startsWith(':') && k !== 'host' && k !== 'cookie');
    // HTTP/2 lets a client split cookies into several headers; Envoy's codec joins them with "; " (RFC 9113
    // §8.2.3), so plugins and HTTP/1.1 upstreams see one cookie header.
    const cookies = raw.filter(([k]) => k === 'cookie').map(([, v]) => v);
    if (cookies.length > 0) regular.push(['cookie', cookies.join('; ')]);
    keepTeTrailers(rawHeaders, regular);
    const authorityIndex = pseudo.findIndex(([k]) => k === ':authority');
    const authority = this.authority(authorityIndex >= 0 ? pseudo[authorityIndex]![1] : getHeader(raw, 'host') ?? '', connectionFacts(socket).localPort);
    if (authorityIndex >= 0) pseudo[authorityIndex] = [':authority', authority];
    else pseudo.unshift([':authority', authority]);
    const hasBody = (flags & h2constants.NGHTTP2_FLAG_END_STREAM) === 0;
    let sink: H2Downstream | undefined;
    let drainWaiters: Array<() => void> | undefined;
    let trailers: HeaderPairs = [];
    this.onRequest({
      codec: 'http2',
      socket,
      connection: h2.session,
      protocol: 'HTTP/2',
      headers: [...pseudo, ...regular],
      hasBody,
      method: getHeader(pseudo, ':method') ?? 'GET',
      path: getHeader(pseudo, ':path') ?? '/',
      sink: (stream) => (sink = new H2Downstream(h2, stream)),
      responseComplete: () => sink?.ended === true && h2.rstCode === h2constants.NGHTTP2_NO_ERROR,
      onDone: (cb) => h2.on('close', cb),
      onData: (cb) => {
        h2.on('error', () => undefined);
        h2.on('data', cb);
      },
      onEnd: (cb) => {
        h2.on('trailers', (_t: H2Headers, _f: number, rawTrailers: string[]) => {
          trailers = pairsFromRaw(rawTrailers).filter(([k]) => !k.startsWith(':'));
        });
        h2.on('end', () => cb(trailers));
      },
      pools: this.options.pools,
      logger: this.logger,
      downstreamBlocked: () => h2.writableNeedDrain,
      onDownstreamDrain: (cb) => {
        if (drainWaiters === undefined) {
          const waiters: Array<() => void> = (drainWaiters = []);
          h2.on('drain', () => {
            for (const w of waiters.splice(0)) w();
          });
        }
        drainWaiters.push(cb);
      },
    });
  }

  /**
   * Higress set_global_max_requests_per_io_cycle (Envoy http.max_requests_per_io_cycle): past the cap, a
   * connection's further requests in this event-loop turn start on a later turn.
   */
  private onRequest(req: DownstreamRequest): void {
    const max = ioCycleLimit.maxRequestsPerIoCycle;
    if (max > 0) {
      const n = this.cycleCounts.get(req.connection) ?? 0;
      if (n >= max) {
        setImmediate(() => this.onRequest(req));
        return;
      }
      if (this.cycleCounts.size === 0) setImmediate(() => this.cycleCounts.clear());
      this.cycleCounts.set(req.connection, n + 1);
    }
    this.startStream(req);
  }

  private startStream(req: DownstreamRequest): void {
    const listener = this.options.listener;
    const hcm = this.hcm;
    const now = Date.now();
    const facts = connectionFacts(req.socket);
    this.protocolStats.request(req.codec);
    // The plugins and route table current now serve this stream to its end (a swap applies to later streams).
    let plugins = this.staticPlugins;
    let leases: FilterLease[] | undefined;
    let missing: FilterLease | undefined;
    if (!plugins) {
      leases = this.options.filters.map((f) => f.acquire());
      missing = leases.find((l) => l.plugin === undefined);
      plugins = missing ? [] : leases.map((l) => l.plugin!);
    }
    const stream = new ActiveStream({
      plugins,
      logger: this.logger,
      node: this.node,
      clusters: this.clusterLookup,
      routes: this.options.routes.current() ?? EMPTY_ROUTES,
      listener: this.listenerAttributes,
      bufferLimit: listener.bufferLimitBytes,
      requestHeaders: req.headers,
      info: {
        startTime: new Date(now),
        startNs: BigInt(now) * 1_000_000n,
        sourceAddress: facts.remoteAddress,
        sourcePort: facts.remotePort,
        destinationAddress: facts.localAddress,
        destinationPort: facts.localPort,
        listenerName: listener.name,
        connectionId: facts.id,
        protocol: req.protocol,
        tls: facts.tls,
        requestId: '',
        hasRoute: false,
        routeName: '',
        clusterName: '',
        virtualHostName: '',
        upstreamHost: '',
        upstreamTransportFailureReason: '',
        responseCode: 0,
        responseCodeDetails: '',
        responseFlags: [],
        requestBytes: 0,
        responseBytes: 0,
        durationNs: undefined,
      },
    });
    this.inFlight++;
    let finished = false;
    const headers = stream.requestHeaders;
    let requestId = getHeader(headers, 'x-request-id');
    if (requestId === undefined && hcm.generateRequestId) {
      requestId = newRequestId();
      headers.push(['x-request-id', requestId]);
    }
    stream.info.requestId = requestId ?? '';
    if (getHeader(headers, 'x-forwarded-proto') === undefined) headers.push(['x-forwarded-proto', facts.tls ? 'https' : 'http']);
    // Envoy selects the route before the filters run (refreshCachedRoute), so plugins read route_name /
    // cluster_name (Higress _rules_ matching); a filter's header change clears it and the router selects again.
    stream.route();
    stream.router = new RouterFilter(stream, req);
    stream.downstream = req.sink(stream);
    const finish = () => {
      if (finished) return;
      finished = true;
      this.inFlight--;
      if (leases) for (const l of leases) l.release();
      if (!req.responseComplete()) {
        stream.info.responseFlags.push('DC');
        this.logger.debug({ requestId: stream.info.requestId }, 'downstream disconnected before the response completed');
      }
      stream.complete();
      if (this.logger.isLevelEnabled('debug')) this.logger.debug({
        requestId: stream.info.requestId, method: req.method, path: req.path, protocol: req.protocol, code: stream.info.responseCode,
        flags: stream.info.responseFlags.join(',') || '-', details: stream.info.responseCodeDetails || '-',
        cluster: stream.info.clusterName || '-', upstream: stream.info.upstreamHost || '-',
        durationMs: Date.now() - now, rxBytes: stream.info.requestBytes, txBytes: stream.info.responseBytes,
      }, 'access');
      if (this.inFlight === 0) for (const cb of this.drainWaiters.splice(0)) cb();
    };
    req.onDone(finish);

    if (missing) {
      // Envoy's MissingConfigFilter: an ECDS filter with no configuration (none arrived, no default) fails the stream.
      stream.info.responseFlags.push('NFCF');
      stream.sendLocalReply(0, 500, Buffer.alloc(0), [], 'filter_config_not_found');
      return;
    }
    stream.decodeHeaders(!req.hasBody);
    // A request without a body has nothing to read (node:http dumps it when the response finishes).
    if (!req.hasBody) return;
    req.onData((chunk: Buffer) => {
      stream.decodeData(chunk, false);
    });
    req.onEnd((trailers) => {
      if (trailers.length > 0) stream.decodeTrailers(trailers);
      else stream.decodeData(Buffer.alloc(0), true);
    });
  }

  /** HCM strip_any_host_port / strip_matching_host_port (the latter: only the port the listener listens on). */
  private authority(host: string, localPort: number | undefined): string {
    const mode = this.hcm.stripHostPort;
    if (mode === 'none') return host;
    const stripped = stripPort(host);
    if (stripped === host || mode === 'any') return stripped;
    return host.slice(stripped.length + 1) === String(localPort) ? stripped : host;
  }

  /** Readable by every HTTP/1 response of this chain: set once the chain drains. */
  private readonly drainSignal = { draining: false };

  /**
   * Starts Envoy's drain sequence: HTTP/1 responses from now on carry `connection: close` (so each connection
   * closes after its next response); HTTP/2 sessions get GOAWAY (no new streams, the ones in flight finish).
   * Idle keep-alive connections are left until the drain ends: closing one a client is about to reuse would
   * fail that client's request.
   */
  startDrain(): void {
    if (this.draining) return;
    this.draining = true;
    this.drainSignal.draining = true;
    for (const s of this.sessions) s.close();
  }

  /**
   * An LDS update or removal: drains (startDrain) until every connection has closed or `drainTimeoutMs` (HCM
   * drain_timeout) has passed, then closes what is still open. Idempotent.
   */
  drain(drainTimeoutMs: number): Promise<void> {
    this.closing ??= (async () => {
      this.startDrain();
      if (this.sockets.size > 0) await untilCalledOr(this.idleWaiters, drainTimeoutMs);
      this.closeConnections();
    })();
    return this.closing;
  }

  /**
   * Shutdown: drains, closes idle keep-alive connections, lets in-flight streams finish for up to
   * `drainTimeoutMs`, then closes every connection still open. Idempotent.
   */
  close(drainTimeoutMs = 10_000): Promise<void> {
    this.closing ??= (async () => {
      this.startDrain();
      this.server.closeIdleConnections();
      if (this.inFlight > 0) await untilCalledOr(this.drainWaiters, drainTimeoutMs);
      this.closeConnections();
    })();
    return this.closing;
  }

  private closeConnections(): void {
    this.server.closeAllConnections();
    // Stops node:http's connection-checking timer (the error is that it never listened itself).
    this.server.close(() => undefined);
    for (const s of this.sessions) s.destroy();
    for (const s of this.sockets) s.destroy();
  }

  /** Closes now: in-flight streams are reset. */
  async destroy(): Promise<void> {
    this.server.closeAllConnections();
    for (const s of this.sessions) s.destroy();
    for (const s of this.sockets) s.destroy();
    await this.close(0);
  }
}

/**
 * One version of a listener: its filter chains (an HttpConnectionManager each) on a bound socket. A connection is
 * matched to a chain when it is accepted (after the tls_inspector, if the listener has one) and stays on it.
 * An LDS update builds a new version on the same socket and drains this one (drain()); shutdown close()s it.
 */
export class HttpListener {
  readonly chains: readonly ListenerChain[];
  private readonly defaultChain: ListenerChain | undefined;
  private readonly logger: Logger;
  private socket: ListenerSocket | undefined;
  private readonly ownsSocket: boolean;
  private closing: Promise<void> | null = null;

  constructor(private readonly options: HttpListenerOptions) {
    const cfg = options.config;
    this.logger = options.logger.child({ component: 'http', listener: cfg.name });
    const message = options.node?.message;
    const node: StreamNode = {
      id: options.node?.id ?? '',
      cluster: options.node?.cluster ?? '',
      ...(message ? { message } : {}),
      ...(options.node?.metadata ? { metadata: options.node.metadata } : {}),
    };
    const plugins = [...(options.plugins ?? [])];
    const inline = (chain: FilterChainConfig): ChainSources => {
      if (chain.network.kind === 'tcp') {
        return {
          filters: chain.network.tcp.wasmFilters.map((f) => {
            const p = plugins.shift();
            if (!p) throw new ConfigError('no plugin was loaded for this filter', f.path);
            return staticFilter(p);
          }),
        };
      }
      const hcm = chain.network.hcm;
      if (hcm.routes.kind !== 'static') throw new ConfigError('RDS needs a route configuration provider', `${chain.path}.filters[0].typed_config.rds`);
      return {
        routes: staticRoutes(new RouteTable(hcm.routes.config)),
        filters: hcm.httpFilters.map((f) => {
          const p = f.type === 'wasm' ? plugins.shift() : undefined;
          if (!p) throw new ConfigError(f.type === 'wasm' ? 'no plugin was loaded for this filter' : 'ECDS needs an extension configuration provider', f.path);
          return staticFilter(p);
        }),
      };
    };
    const build = (chain: FilterChainConfig, i: number): ListenerChain => {
      const src = options.sources ? options.sources(chain, i) : inline(chain);
      const statAddress = options.statAddress ?? cfg.address;
      if (chain.network.kind === 'tcp') {
        return new TcpChain(chain, chain.network.tcp, {
          listener: cfg, plugins: src.filters.map((f) => f.plugin!), pools: options.pools, logger: this.logger, statAddress,
          ...(options.node ? { node: options.node } : {}),
        });
      }
      if (!src.routes) throw new ConfigError('an HTTP chain needs a route source', chain.path);
      return new HttpConnectionManager({
        listener: cfg, chain, routes: src.routes, filters: src.filters, pools: options.pools, node,
        logger: this.logger, statAddress,
      });
    };
    this.chains = cfg.filterChains.map(build);
    this.defaultChain = cfg.defaultFilterChain ? build(cfg.defaultFilterChain, cfg.filterChains.length) : undefined;
    this.socket = options.socket;
    this.ownsSocket = options.socket === undefined;
  }

  get config(): ListenerConfig {
    return this.options.config;
  }

  /** The inline plugins this listener was given (ECDS filters' plugins belong to their provider). */
  get plugins(): readonly Plugin[] {
    return this.options.plugins ?? [];
  }

  /** The bound port (useful with port_value 0). */
  get port(): number {
    return this.socket?.port ?? 0;
  }

  get activeStreams(): number {
    let n = 0;
    for (const c of this.allChains()) n += c.activeStreams;
    return n;
  }

  /** Open connections on every chain. */
  get connections(): number {
    let n = 0;
    for (const c of this.allChains()) n += c.connections;
    return n;
  }

  get closed(): boolean {
    return this.closing !== null;
  }

  /** The first HTTP chain's protocol counters (see counters() for every chain's). */
  get protocolStats(): ProtocolStats | undefined {
    for (const c of this.allChains()) if (c instanceof HttpConnectionManager) return c.protocolStats;
    return undefined;
  }

  /** Every chain's counters, summed by name. */
  counters(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const c of this.allChains()) for (const [k, v] of Object.entries(c.counters())) out[k] = (out[k] ?? 0) + v;
    return out;
  }

  private allChains(): ListenerChain[] {
    return this.defaultChain ? [...this.chains, this.defaultChain] : [...this.chains];
  }

  /** Serves a connection accepted elsewhere (the listener socket, or a worker's forwarded socket). */
  acceptConnection(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    if (!this.options.config.tlsInspector) {
      this.dispatch(socket, { localPort: localPort(socket), serverName: '', transportProtocol: 'raw_buffer', applicationProtocols: [] }, false);
      return;
    }
    inspectClientHello(socket, (hello) => this.dispatch(socket, {
      localPort: localPort(socket), serverName: hello.serverName, transportProtocol: hello.tls ? 'tls' : 'raw_buffer', applicationProtocols: hello.alpn,
    }, true));
  }

  private dispatch(socket: Socket, facts: ConnectionMatchFacts, inspected: boolean): void {
    const chain = selectFilterChain(this.chains, facts) ?? this.defaultChain;
    if (!chain || this.closing) {
      this.logger.debug({ port: facts.localPort, sni: facts.serverName }, 'no filter chain matched; connection closed');
      socket.destroy();
      return;
    }
    chain.serve(socket, inspected);
  }

  /**
   * Starts accepting: on the shared socket when one was given (taking it over from the version before), else on
   * a socket of its own, bound now.
   */
  async start(): Promise<void> {
    if (!this.socket) {
      this.socket = new ListenerSocket(this.options.config.address, this.options.config.port);
      await this.socket.listen();
    }
    for (const c of this.allChains()) c.bound(this.socket.port);
    this.socket.handler = (s) => this.acceptConnection(s);
    this.logger.info({
      address: this.options.config.address, port: this.socket.port, chains: this.allChains().length,
      filters: this.allChains().flatMap((c) => chainWasmFilters(c.config).map((f) => f.filterName)),
      tls: this.allChains().some((c) => c.config.tls !== undefined),
    }, 'listener started');
  }

  /**
   * Drains this version while its socket goes on serving another: every chain drains (HCM drain_timeout each),
   * then its remaining connections close.
   */
  drain(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all(this.allChains().map((c) => c.drain(c.drainTimeoutMs)));
      this.logger.info('listener drained');
    })();
    return this.closing;
  }

  /** Stops accepting (closing its own socket), lets in-flight streams finish (up to `drainTimeoutMs`), then closes every connection. */
  close(drainTimeoutMs = 10_000): Promise<void> {
    this.closing ??= (async () => {
      const socketClosed = this.ownsSocket ? this.socket?.close() : undefined;
      await Promise.all(this.allChains().map((c) => c.close(drainTimeoutMs)));
      await socketClosed;
      this.logger.info('listener closed');
    })();
    return this.closing;
  }

  /** Closes now: in-flight streams are reset. */
  async destroy(): Promise<void> {
    await Promise.all(this.allChains().map((c) => c.destroy()));
    await this.close(0);
  }
}

/** The port a connection arrived on (a forwarded socket presents the public connection's, see connectionFacts). */
function localPort(socket: Socket): number {
  const tcp = (socket as Socket & { _parent?: Socket | null })._parent ?? socket;
  return tcp.localPort ?? 0;
}
