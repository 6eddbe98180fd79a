import { PassThrough } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { HeaderPairs } from '../common/headers';
import type { Logger } from '../common/logger';
import { ResponseCodeDetails, type ActiveStream, type RouterSink } from './active-stream';
import { flatten, getHeader, HOP_BY_HOP, pairsFromObject } from './http-headers';
import { rewritePath } from './route-table';
import { AlpnUpstream } from './alpn-upstream';
import { Http2Upstream, type H2DispatchHandler } from './h2-upstream';
import type { UpstreamPools } from './upstream-pools';
import type { UpstreamRequestRecord } from '../upstream/traffic-stats';

/** Envoy's local-reply bodies for upstream failures (router_filter / filter_manager). */
export const UPSTREAM_RESET_BODY_PREFIX = 'upstream connect error or disconnect/reset before headers. reset reason: ';
export const UPSTREAM_TIMEOUT_BODY = 'upstream request timeout';
export const NO_HEALTHY_UPSTREAM_BODY = 'no healthy upstream';

/** Headers undici refuses or that belong to this hop only. */
const UPSTREAM_SKIP = new Set([...HOP_BY_HOP, 'expect', 'host']);

export interface RouterContext {
  readonly pools: UpstreamPools;
  readonly logger: Logger;
  /** Downstream backpressure: true while the client socket's buffer is full. */
  readonly downstreamBlocked: () => boolean;
  readonly onDownstreamDrain: (cb: () => void) => void;
}

export type ResetReason = 'connection failure' | 'connection timeout' | 'connection termination' | 'remote reset' | 'overflow';

/** The reset reason of Envoy's "upstream connect error ... reset reason: <reason>" body (router and callouts). */
export function resetReason(err: Error & { code?: string }): ResetReason {
  switch (err.code) {
    case 'UND_ERR_CONNECT_TIMEOUT': return 'connection timeout';
    case 'ECONNREFUSED': case 'EHOSTUNREACH': case 'ENETUNREACH': case 'ENOTFOUND': case 'EADDRNOTAVAIL': case 'EAI_AGAIN':
      return 'connection failure';
    case 'ECONNRESET': return 'remote reset';
    default:
      // A failed TLS handshake (certificate verification, protocol alert) is a connect failure in Envoy, with
      // the TLS error as the transport failure reason.
      if (err.code !== undefined && /CERT|SSL|TLS|UNABLE_TO_|ERR_TLS/.test(err.code)) return 'connection failure';
      return 'connection termination';
  }
}

class RouteTimeout extends Error {
  override name = 'RouteTimeout';
}

/**
 * The terminal decoder filter (envoy.filters.http.router): picks the route and the cluster's host, sends the
 * request over that host's keep-alive pool, and feeds the response into the encoder chain. Failures become
 * Envoy's local replies: no route 404 (NR), unknown cluster 503 (NC), no healthy host 503 (UH), connect failure
 * or reset before headers 503 (UF/UC), route timeout 504 (UT). `x-envoy-upstream-service-time` is added to the
 * response headers before the encoder filters see them.
 */
export class RouterFilter implements RouterSink, H2DispatchHandler {
  private controller: Dispatcher.DispatchController | undefined;
  private aborted: string | undefined;
  private body: PassThrough | undefined;
  private chunks: Buffer[] | undefined;
  private requestEnded = false;
  private dispatched = false;
  private sentAt = 0n;
  private timer: NodeJS.Timeout | undefined;
  private timeoutMs = 0;
  private responseStarted = false;
  private responseEnded = false;
  private headOrEmpty = false;
  /** Ends this request's in-flight count on its host (LEAST_REQUEST); set at dispatch. */
  private untrack: (() => void) | undefined;
  /** This request's upstream_rq_* accounting. */
  private record: UpstreamRequestRecord | undefined;
  private method = 'GET';
  /** Request trailers for an HTTP/2 upstream, read when the request body has ended. */
  private requestTrailers: HeaderPairs | undefined;

  constructor(
    private readonly stream: ActiveStream,
    private readonly ctx: RouterContext,
  ) {}

  private get routerIndex(): number {
    return this.stream.slots.length;
  }

  private localReply(status: number, body: string, details: string, flag: string): void {
    this.stream.info.responseFlags.push(flag);
    this.stream.enqueue(() => this.stream.sendLocalReply(this.routerIndex, status, Buffer.from(body), [], details));
  }

  headers(headers: HeaderPairs, endOfStream: boolean): void {
    // The stream's cached route: selected before the filters ran, again if a filter cleared the route cache.
    const sel = this.stream.route();
    if (!sel) {
      this.localReply(404, '', 'route_not_found', 'NR');
      return;
    }
    const { route } = sel;
    if (route.action.kind === 'direct_response') {
      this.stream.enqueue(() => this.stream.sendLocalReply(this.routerIndex, (route.action as { status: number }).status, Buffer.from((route.action as { body: string }).body), [], 'direct_response'));
      return;
    }
    const action = route.action;
    const cluster = this.ctx.pools.cluster(action.cluster);
    if (!cluster) {
      this.localReply(503, '', 'cluster_not_found', 'NC');
      return;
    }
    // proxy_set_upstream_override_host wins when the cluster has that host (Higress ai-load-balancer).
    const override = this.stream.overrideHost;
    const host = (override !== undefined ? cluster.hostsByKey.get(override) : undefined) ?? this.ctx.pools.chooseHost(cluster);
    if (!host) {
      this.localReply(503, NO_HEALTHY_UPSTREAM_BODY, 'no_healthy_upstream', 'UH');
      return;
    }
    this.stream.info.upstreamHost = host.key;
    this.method = getHeader(headers, ':method') ?? 'GET';
    const path = rewritePath(route, getHeader(headers, ':path') ?? '/', action.prefixRewrite);
    const authority = action.hostRewriteLiteral ?? getHeader(headers, ':authority') ?? host.key;
    this.timeoutMs = action.timeoutMs;
    const out = flatten(headers, UPSTREAM_SKIP);
    out.push('host', authority);
    // Envoy's router keeps what it rewrote: the path before prefix_rewrite, the authority before host_rewrite_literal.
    if (action.prefixRewrite !== undefined && getHeader(headers, 'x-envoy-original-path') === undefined) out.push('x-envoy-original-path', getHeader(headers, ':path') ?? '/');
    const originalHost = getHeader(headers, ':authority');
    if (action.hostRewriteLiteral !== undefined && originalHost !== undefined && getHeader(headers, 'x-envoy-original-host') === undefined) out.push('x-envoy-original-host', originalHost);
    // `te: trailers` is the one TE value that travels (gRPC over HTTP/2 requires it).
    if (getHeader(headers, 'te') === 'trailers') out.push('te', 'trailers');
    if (this.timeoutMs > 0) out.push('x-envoy-expected-rq-timeout-ms', String(this.timeoutMs));
    const pool = this.ctx.pools.pool(cluster, host, this.stream.info.protocol);
    // Fields, not a closure: a closure stored on the filter keeps this method's whole context alive with the
    // stream, and under load V8 then pretenured every request's objects (2.5-3 MB promoted per scavenge, 5-50 ms
    // pauses, the sidecar's p99); test/http/router-gc.test.ts holds the promotion down.
    this.untrack = this.ctx.pools.track(cluster.name, host);
    this.record = this.ctx.pools.traffic.request(cluster.name, host.key);
    const dispatch = (body: Buffer | PassThrough | null, contentLength: number | undefined) => {
      if (this.aborted) return;
      if (contentLength !== undefined) {
        for (let i = out.length - 2; i >= 0; i -= 2) if (out[i] === 'content-length') out.splice(i, 2);
        if (contentLength > 0 || ['POST', 'PUT', 'PATCH'].includes(this.method)) out.push('content-length', String(contentLength));
      }
      this.dispatched = true;
      this.sentAt = process.hrtime.bigint();
      if (this.requestEnded) this.startTimer();
      // A request with a body may end in trailers; one without ends with its HEADERS frame.
      if (pool instanceof Http2Upstream || pool instanceof AlpnUpstream) pool.dispatch({ path, method: this.method, headers: out, body, ...(body !== null ? { trailers: () => this.requestTrailers } : {}) }, this);
      else pool.dispatch({ path, method: this.method as Dispatcher.HttpMethod, headers: out, body, headersTimeout: 0, bodyTimeout: 0 }, this);
    };
    if (endOfStream) {
      this.requestEnded = true;
      dispatch(null, undefined);
      return;
    }
    // Data that follows in the same turn (a filter released headers with a fully buffered body) is sent with
    // an exact content-length; otherwise the body streams as it arrives.
    this.chunks = [];
    setImmediate(() => {
      if (this.aborted) return;
      const chunks = this.chunks ?? [];
      this.chunks = undefined;
      if (this.requestEnded) {
        const body = Buffer.concat(chunks);
        dispatch(body, body.length);
        return;
      }
      this.body = new PassThrough();
      for (const c of chunks) this.body.write(c);
      dispatch(this.body, undefined);
    });
  }

  data(chunk: Buffer, endOfStream: boolean): void {
    if (this.aborted) return;
    if (this.chunks) {
      if (chunk.length > 0) this.chunks.push(chunk);
    } else if (this.body && chunk.length > 0) {
      this.body.write(chunk);
    }
    if (endOfStream) this.endRequest();
  }

  trailers(trailers: HeaderPairs): void {
    // HTTP/2 upstreams send them after the body; HTTP/1.1 upstream requests carry none here (undici cannot
    // send them, and Envoy's HTTP/1 codec drops them unless enable_trailers is set).
    this.requestTrailers = trailers;
    this.endRequest();
  }

  private endRequest(): void {
    if (this.requestEnded) return;
    this.requestEnded = true;
    this.body?.end();
    if (this.dispatched) this.startTimer();
  }

  private startTimer(): void {
    if (this.timeoutMs <= 0 || this.timer || this.responseEnded) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.stream.info.responseFlags.push('UT');
      this.ctx.logger.info({ cluster: this.stream.info.clusterName, host: this.stream.info.upstreamHost, timeoutMs: this.timeoutMs }, 'upstream request timeout');
      const started = this.responseStarted;
      if (!started) this.record?.fail('timeout');
      this.cancel(new RouteTimeout('route timeout'));
      // Envoy StreamInfo::ResponseCodeDetails::ResponseTimeout.
      if (!started) this.stream.enqueue(() => this.stream.sendLocalReply(this.routerIndex, 504, Buffer.from(UPSTREAM_TIMEOUT_BODY), [], 'response_timeout'));
      else this.stream.reset('upstream request timeout');
    }, this.timeoutMs);
  }

  private cancel(reason: Error): void {
    if (this.aborted) return;
    this.aborted = reason.message;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.body?.destroy();
    this.controller?.abort(reason);
    this.release();
  }

  /** The request is over for the host's accounting; idempotent, as both calls are. */
  private release(): void {
    this.untrack?.();
    this.record?.done();
  }

  abort(reason: string): void {
    if (this.responseEnded) return;
    this.cancel(new Error(reason));
  }

  // ---------- undici DispatchHandler ----------

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.aborted) controller.abort(new Error(this.aborted));
  }

  /** `endOfStream`: the HTTP/2 upstream's headers carried END_STREAM (a trailers-only response). */
  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: Record<string, string | string[] | undefined>, _statusMessage?: string, endOfStream = false): void {
    if (this.aborted || statusCode < 200) return;
    this.responseStarted = true;
    this.record?.response(statusCode);
    const serviceMs = Number((process.hrtime.bigint() - this.sentAt) / 1_000_000n);
    const pairs = pairsFromObject(headers, [[':status', String(statusCode)]]);
    pairs.push(['x-envoy-upstream-service-time', String(serviceMs)]);
    this.stream.info.responseCodeDetails = ResponseCodeDetails.viaUpstream;
    this.headOrEmpty = endOfStream || this.method === 'HEAD' || statusCode === 204 || statusCode === 304 || headers['content-length'] === '0';
    this.stream.encodeHeaders(pairs, this.headOrEmpty);
    if (this.ctx.downstreamBlocked()) this.pause(controller);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.aborted || this.headOrEmpty) return;
    this.stream.encodeData(chunk, false);
    if (this.ctx.downstreamBlocked()) this.pause(controller);
  }

  private pause(controller: Dispatcher.DispatchController): void {
    if (controller.paused) return;
    controller.pause();
    this.ctx.onDownstreamDrain(() => controller.resume());
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: Record<string, string | string[] | undefined>): void {
    this.responseEnded = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.release();
    if (this.aborted || this.headOrEmpty) return;
    const t = pairsFromObject(trailers);
    if (t.length > 0) this.stream.encodeTrailers(t);
    else this.stream.encodeData(Buffer.alloc(0), true);
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    this.responseEnded = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const reason = resetReason(error as Error & { code?: string });
    // Recorded before the release ends the request's accounting: a failed connect is not an upstream request.
    if (!this.aborted && !this.responseStarted) this.record?.fail(reason === 'connection failure' || reason === 'connection timeout' ? 'connect_fail' : 'reset');
    this.release();
    if (this.aborted) return;
    this.aborted = error.message;
    this.body?.destroy();
    const log = { cluster: this.stream.info.clusterName, host: this.stream.info.upstreamHost, reason, err: error.message, code: (error as { code?: string }).code };
    if (!this.responseStarted) {
      const flag = reason === 'connection failure' || reason === 'connection timeout' ? 'UF' : 'UC';
      // upstream.transport_failure_reason: the connect error as the socket reported it.
      if (flag === 'UF') this.stream.info.upstreamTransportFailureReason = (error as { code?: string }).code ?? error.message;
      this.ctx.logger.info(log, 'upstream reset before response headers');
      this.localReply(503, UPSTREAM_RESET_BODY_PREFIX + reason, `upstream_reset_before_response_started{${reason.replace(/ /g, '_')}}`, flag);
    } else {
      this.ctx.logger.info(log, 'upstream reset after response headers');
      this.stream.info.responseFlags.push('UR');
      this.stream.reset(`upstream reset: ${reason}`);
    }
  }
}
