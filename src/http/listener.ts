import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { HeaderPairs } from '../common/headers';
import type { Logger } from '../common/logger';
import type { Plugin } from '../runtime/plugin';
import { ActiveStream, newRequestId, type DownstreamSink } from './active-stream';
import { flatten, getHeader, HOP_BY_HOP, pairsFromRaw } from './http-headers';
import type { ListenerConfig } from './listener-config';
import { RouteTable, stripPort } from './route-table';
import { RouterFilter } from './router';
import type { UpstreamPools } from './upstream-pools';
import { loadEnvoyProtos } from '../xds/protos';
import { ioCycleLimit } from '../common/limits';
import type { StructObject } from '../runtime/stream-attributes';

export interface HttpListenerOptions {
  readonly config: ListenerConfig;
  /** One loaded plugin per wasm filter, in listener order. */
  readonly plugins: readonly Plugin[];
  readonly pools: UpstreamPools;
  readonly logger: Logger;
  /** The bootstrap node; `message` (the decoded envoy.config.core.v3.Node) is served as the `node` attribute. */
  readonly node?: { readonly id: string; readonly cluster: string; readonly message?: Record<string, unknown>; readonly metadata?: StructObject };
}

/** Envoy numbers downstream connections process-wide (connection.id). */
let nextConnectionId = 0;
const connectionIds = new WeakMap<Socket, number>();

function connectionId(socket: Socket): number {
  let id = connectionIds.get(socket);
  if (id === undefined) {
    id = nextConnectionId++;
    connectionIds.set(socket, id);
  }
  return id;
}

function encodeNode(node: HttpListenerOptions['node']): Buffer | undefined {
  if (!node?.message) return undefined;
  const type = loadEnvoyProtos().lookup('envoy.config.core.v3.Node');
  return type ? Buffer.from(type.encode(node.message).finish()) : undefined;
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
    private readonly requestComplete: () => boolean,
  ) {}

  get headersSent(): boolean {
    return this.res.headersSent;
  }

  headers(headers: HeaderPairs, endOfStream: boolean): void {
    if (this.res.headersSent || this.res.destroyed) return;
    const status = Number(getHeader(headers, ':status') ?? 200);
    const flat = flatten(headers, RESPONSE_SKIP);
    // A response that goes out before the request body was read ends the connection (Envoy's HTTP/1 codec).
    if (!this.requestComplete()) flat.push('connection', 'close');
    this.res.writeHead(status, flat);
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

/**
 * One HTTP/1.1 listener (an HttpConnectionManager): accepts connections, builds an ActiveStream per request
 * with the listener's Wasm filters and the router, and keeps track of in-flight streams so close() can drain.
 */
export class HttpListener {
  private readonly server: Server;
  private readonly routes: RouteTable;
  private readonly logger: Logger;
  /**
   * In-flight streams. A count, not a Set: an add/delete per request on a long-lived Set made every scavenge
   * promote the streams in flight (GC was ~11% of the proxy's CPU).
   */
  private inFlight = 0;
  private readonly sockets = new Set<Socket>();
  private drainWaiters: Array<() => void> = [];
  private closing: Promise<void> | null = null;
  private boundPort = 0;
  /** Cluster lookup for proxy_get_upstream_hosts, shared by every stream. */
  private readonly clusterLookup = { get: (name: string) => this.options.pools.cluster(name) };
  private readonly node: ConstructorParameters<typeof ActiveStream>[0]['node'];
  private readonly listenerAttributes: NonNullable<ConstructorParameters<typeof ActiveStream>[0]['listener']>;
  /** Requests started per connection in the current event-loop turn (Higress max_requests_per_io_cycle). */
  private readonly cycleCounts = new Map<Socket, number>();

  constructor(private readonly options: HttpListenerOptions) {
    this.routes = new RouteTable(options.config.routeConfig);
    const message = encodeNode(options.node);
    this.node = {
      id: options.node?.id ?? '',
      cluster: options.node?.cluster ?? '',
      ...(message ? { message } : {}),
      ...(options.node?.metadata ? { metadata: options.node.metadata } : {}),
    };
    this.listenerAttributes = {
      listenerMetadata: options.config.metadata,
      filterChainName: options.config.filterChainName,
      listenerDirection: options.config.trafficDirection,
    };
    this.logger = options.logger.child({ component: 'http', listener: options.config.name });
    this.server = createServer({ keepAlive: true, requestTimeout: 0, headersTimeout: 60_000 }, (req, res) => this.onRequest(req, res));
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    this.server.on('clientError', (err, socket) => {
      this.logger.debug({ err: err.message }, 'client error');
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      else socket.destroy();
    });
  }

  get config(): ListenerConfig {
    return this.options.config;
  }

  get plugins(): readonly Plugin[] {
    return this.options.plugins;
  }

  /** The bound port (useful with port_value 0). */
  get port(): number {
    return this.boundPort;
  }

  get activeStreams(): number {
    return this.inFlight;
  }

  get closed(): boolean {
    return this.closing !== null;
  }

  /** Serves a connection accepted elsewhere (a worker thread's forwarded socket), as if this server had accepted it. */
  acceptConnection(socket: Socket): void {
    this.server.emit('connection', socket);
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.config.port, this.options.config.address, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.boundPort = (this.server.address() as AddressInfo).port;
    this.logger.info({ address: this.options.config.address, port: this.boundPort, filters: this.options.plugins.map((p) => p.config.name) }, 'listener started');
  }

  /**
   * Higress set_global_max_requests_per_io_cycle (Envoy http.max_requests_per_io_cycle): past the cap, a
   * connection's further requests in this event-loop turn start on a later turn.
   */
  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const max = ioCycleLimit.maxRequestsPerIoCycle;
    if (max > 0) {
      const socket = req.socket;
      const n = this.cycleCounts.get(socket) ?? 0;
      if (n >= max) {
        setImmediate(() => this.onRequest(req, res));
        return;
      }
      if (this.cycleCounts.size === 0) setImmediate(() => this.cycleCounts.clear());
      this.cycleCounts.set(socket, n + 1);
    }
    this.startStream(req, res);
  }

  private startStream(req: IncomingMessage, res: ServerResponse): void {
    const cfg = this.options.config;
    const plugins = this.options.plugins;
    const now = Date.now();
    const stream = new ActiveStream({
      plugins,
      logger: this.logger,
      node: this.node,
      clusters: this.clusterLookup,
      routes: this.routes,
      listener: this.listenerAttributes,
      bufferLimit: cfg.bufferLimitBytes,
      info: {
        startTime: new Date(now),
        startNs: BigInt(now) * 1_000_000n,
        sourceAddress: req.socket.remoteAddress ?? '',
        sourcePort: req.socket.remotePort ?? 0,
        destinationAddress: req.socket.localAddress ?? '',
        destinationPort: req.socket.localPort ?? 0,
        listenerName: cfg.name,
        connectionId: connectionId(req.socket),
        protocol: `HTTP/${req.httpVersion}`,
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
    const raw = pairsFromRaw(req.rawHeaders);
    headers.push([':authority', this.authority(getHeader(raw, 'host') ?? '', req.socket.localPort)], [':path', req.url ?? '/'], [':method', req.method ?? 'GET'], [':scheme', 'http']);
    for (const pair of raw) if (pair[0] !== 'host') headers.push(pair);
    let requestId = getHeader(headers, 'x-request-id');
    if (requestId === undefined && cfg.generateRequestId) {
      requestId = newRequestId();
      headers.push(['x-request-id', requestId]);
    }
    stream.info.requestId = requestId ?? '';
    if (getHeader(headers, 'x-forwarded-proto') === undefined) headers.push(['x-forwarded-proto', 'http']);
    // Envoy selects the route before the filters run (refreshCachedRoute), so plugins read route_name /
    // cluster_name (Higress _rules_ matching); a filter's header change clears it and the router selects again.
    stream.route();
    // The 'drain' listener is added only once the router waits for one (a paused upstream response).
    let drainWaiters: Array<() => void> | undefined;
    stream.router = new RouterFilter(stream, {
      pools: this.options.pools,
      logger: this.logger,
      downstreamBlocked: () => res.writableNeedDrain,
      onDownstreamDrain: (cb) => {
        if (drainWaiters === undefined) {
          const waiters: Array<() => void> = (drainWaiters = []);
          res.on('drain', () => {
            for (const w of waiters.splice(0)) w();
          });
        }
        drainWaiters.push(cb);
      },
    });
    const te = req.headers['transfer-encoding'];
    const cl = req.headers['content-length'];
    const hasBody = te !== undefined || (cl !== undefined && cl !== '0');
    let ended = !hasBody;
    stream.downstream = new NodeDownstream(req, res, stream, () => ended || req.complete);
    const finish = () => {
      if (finished) return;
      finished = true;
      this.inFlight--;
      if (!res.writableFinished) {
        stream.info.responseFlags.push('DC');
        this.logger.debug({ requestId: stream.info.requestId }, 'downstream disconnected before the response completed');
      }
      stream.complete();
      if (this.logger.isLevelEnabled('debug')) this.logger.debug({
        requestId: stream.info.requestId, method: req.method, path: req.url, code: stream.info.responseCode,
        flags: stream.info.responseFlags.join(',') || '-', details: stream.info.responseCodeDetails || '-',
        cluster: stream.info.clusterName || '-', upstream: stream.info.upstreamHost || '-',
        durationMs: Date.now() - now, rxBytes: stream.info.requestBytes, txBytes: stream.info.responseBytes,
      }, 'access');
      if (this.inFlight === 0) for (const cb of this.drainWaiters.splice(0)) cb();
    };
    res.on('finish', finish);
    res.on('close', finish);

    stream.decodeHeaders(!hasBody);
    req.on('error', () => undefined);
    // A request without a body has nothing to read (node:http dumps it when the response finishes).
    if (!hasBody) return;
    req.on('data', (chunk: Buffer) => {
      stream.decodeData(chunk, false);
    });
    req.on('end', () => {
      if (ended) return;
      ended = true;
      const trailers = pairsFromRaw(req.rawTrailers);
      if (trailers.length > 0) stream.decodeTrailers(trailers);
      else stream.decodeData(Buffer.alloc(0), true);
    });
  }

  /** HCM strip_any_host_port / strip_matching_host_port (the latter: only the port the listener listens on). */
  private authority(host: string, localPort: number | undefined): string {
    const mode = this.options.config.stripHostPort;
    if (mode === 'none') return host;
    const stripped = stripPort(host);
    if (stripped === host || mode === 'any') return stripped;
    return host.slice(stripped.length + 1) === String(localPort) ? stripped : host;
  }

  /** Stops accepting, lets in-flight streams finish (up to `drainTimeoutMs`), then closes every connection. */
  close(drainTimeoutMs = 10_000): Promise<void> {
    this.closing ??= (async () => {
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.server.closeIdleConnections();
      if (this.inFlight > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          new Promise<void>((resolve) => this.drainWaiters.push(resolve)),
          new Promise<void>((resolve) => { timer = setTimeout(resolve, drainTimeoutMs); }),
        ]);
        if (timer) clearTimeout(timer);
      }
      this.server.closeAllConnections();
      for (const s of this.sockets) s.destroy();
      await closed;
      this.logger.info('listener closed');
    })();
    return this.closing;
  }

  /** Closes now: in-flight streams are reset. */
  async destroy(): Promise<void> {
    this.server.closeAllConnections();
    for (const s of this.sockets) s.destroy();
    await this.close(0);
  }
}
