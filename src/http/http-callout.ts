import { timerMs } from '../common/limits';
import type { Dispatcher } from 'undici';
import type { HeaderPairs } from '../common/headers';
import type { Logger } from '../common/logger';
import { silentLogger } from '../common/logger';
import type { HttpCalloutOutcome, HttpCalloutRequest, HttpCalloutResponse, HttpCalloutService } from '../services/http-callout';
import { flatten, HOP_BY_HOP, pairsFromObject } from './http-headers';
import { NO_HEALTHY_UPSTREAM_BODY, resetReason, UPSTREAM_RESET_BODY_PREFIX, UPSTREAM_TIMEOUT_BODY } from './router';
import type { UpstreamPools } from './upstream-pools';

const SKIP = new Set([...HOP_BY_HOP, 'expect', 'host']);
/** A reset after response headers (Envoy AsyncClient onFailure): zero headers, no body. */
const RESET: HttpCalloutResponse = { headers: [], body: Buffer.alloc(0), trailers: [] };

/**
 * A local reply of the router inside Envoy's AsyncClient (Utility::sendLocalReply): AsyncStreamImpl encodes it
 * as the response, so the plugin's callback gets it like any other (:status, content-length, content-type).
 */
function localReply(status: number, text: string): HttpCalloutResponse {
  const body = Buffer.from(text);
  return { headers: [[':status', String(status)], ['content-length', String(body.length)], ['content-type', 'text/plain']], body, trailers: [] };
}

/**
 * proxy_http_call as Envoy's Context::httpCall and AsyncClient do it (checked against Envoy 1.40), over the same
 * keep-alive pools as the router. The cluster name is exact (no `?` stripping, unlike Redis); an unknown cluster
 * is BAD_ARGUMENT at dispatch. A cluster with no healthy host is INTERNAL_FAILURE at dispatch, with no callback:
 * the AsyncClient's router answers it synchronously inside send(), which then returns no request. The request
 * carries the body's own content-length and what the AsyncClient's router adds: x-envoy-internal and, with a
 * timeout, x-envoy-expected-rq-timeout-ms. The router's asynchronous local replies come back as responses, as
 * AsyncStreamImpl::sendLocalReply encodes them: connect failure or reset before headers 503 `upstream connect
 * error ...`, timeout before headers 504 `upstream request timeout`. Only a reset (or the timeout) after response
 * headers is a failure (onFailure), delivered with zero headers. Every outcome is asynchronous and delivered
 * exactly once; cancel() suppresses it.
 */
export class UndiciHttpCalloutService implements HttpCalloutService {
  private readonly logger: Logger;
  private readonly inflight = new Set<() => void>();
  private closed = false;

  constructor(
    private readonly pools: UpstreamPools,
    logger: Logger = silentLogger(),
  ) {
    this.logger = logger.child({ component: 'http_callout' });
  }

  get pending(): number {
    return this.inflight.size;
  }

  call(request: HttpCalloutRequest, onResponse: (response: HttpCalloutResponse) => void): HttpCalloutOutcome {
    if (this.closed) return { status: 'internal_failure', reason: 'callout service closed' };
    // Exact name: the ClusterManager's get() strips `?...`, so compare the name it found.
    const cluster = this.pools.cluster(request.cluster);
    if (!cluster || cluster.name !== request.cluster) return { status: 'unknown_cluster' };
    const get = (name: string) => request.headers.find(([k]) => k.toLowerCase() === name)?.[1];
    const method = get(':method');
    const path = get(':path');
    const authority = get(':authority');
    if (!method || !path || authority === undefined) return { status: 'bad_argument', reason: ':method, :path and :authority are required' };
    const host = this.pools.chooseHost(cluster);
    if (!host) {
      this.logger.info({ cluster: cluster.name }, 'http callout: no healthy upstream');
      return { status: 'internal_failure', reason: NO_HEALTHY_UPSTREAM_BODY };
    }
    const untrack = this.pools.track(cluster.name, host);
    // A callout is a request to that cluster like any other: Envoy's AsyncClient counts it in upstream_rq_*.
    const record = this.pools.traffic.request(cluster.name, host.key);
    const release = (): void => {
      untrack();
      record.done();
    };
    let settled = false;
    const deliver = (response: HttpCalloutResponse) => {
      if (settled) return;
      settled = true;
      this.inflight.delete(cancel);
      if (timer) clearTimeout(timer);
      release();
      setImmediate(() => onResponse(response));
    };
    let controller: Dispatcher.DispatchController | undefined;
    let timer: NodeJS.Timeout | undefined;
    const cancel = () => {
      if (settled) return;
      settled = true;
      this.inflight.delete(cancel);
      if (timer) clearTimeout(timer);
      release();
      controller?.abort(new Error('callout cancelled'));
    };
    this.inflight.add(cancel);
    const lowered: HeaderPairs = request.headers.map(([k, v]) => [k.toLowerCase(), v]);
    // Context::httpCall sets content-length to the body's length itself (and none without a body).
    const headers = flatten(lowered.filter(([k]) => k !== 'content-length'), SKIP);
    headers.push('host', authority);
    if (!lowered.some(([k]) => k === 'x-envoy-internal')) headers.push('x-envoy-internal', 'true');
    if (request.timeoutMs > 0 && !lowered.some(([k]) => k === 'x-envoy-expected-rq-timeout-ms')) {
      headers.push('x-envoy-expected-rq-timeout-ms', String(request.timeoutMs));
    }
    if (request.body.length > 0) headers.push('content-length', String(request.body.length));
    let status = 0;
    let responseHeaders: HeaderPairs = [];
    const chunks: Buffer[] = [];
    const sentAt = process.hrtime.bigint();
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart: (c) => {
        controller = c;
        if (settled) c.abort(new Error('callout cancelled'));
      },
      onResponseStart: (_c, statusCode, h) => {
        if (statusCode < 200) return;
        status = statusCode;
        record.response(statusCode);
        responseHeaders = pairsFromObject(h, [[':status', String(statusCode)]]);
        responseHeaders.push(['x-envoy-upstream-service-time', String((process.hrtime.bigint() - sentAt) / 1_000_000n)]);
      },
      onResponseData: (_c, chunk) => {
        chunks.push(chunk);
      },
      onResponseEnd: (_c, trailers) => {
        deliver({ headers: responseHeaders, body: Buffer.concat(chunks), trailers: pairsFromObject(trailers) });
      },
      onResponseError: (_c, err) => {
        if (settled) return;
        const reason = resetReason(err as Error & { code?: string });
        record.fail(reason === 'connection failure' || reason === 'connection timeout' ? 'connect_fail' : 'reset');
        this.logger.info({ cluster: cluster.name, host: host.key, err: err.message, reason, afterHeaders: status !== 0 }, 'http callout failed');
        deliver(status !== 0 ? RESET : localReply(503, UPSTREAM_RESET_BODY_PREFIX + reason));
      },
    };
    if (request.timeoutMs > 0) {
      timer = setTimeout(() => {
        timer = undefined;
        this.logger.info({ cluster: cluster.name, timeoutMs: request.timeoutMs, afterHeaders: status !== 0 }, 'http callout timed out');
        if (status === 0) record.fail('timeout');
        const c = controller;
        deliver(status !== 0 ? RESET : localReply(504, UPSTREAM_TIMEOUT_BODY));
        c?.abort(new Error('callout timeout'));
      }, timerMs(request.timeoutMs));
    }
    this.pools.pool(cluster, host).dispatch({
      path, method: method as Dispatcher.HttpMethod, headers, body: request.body.length > 0 ? request.body : null, headersTimeout: 0, bodyTimeout: 0,
    }, handler);
    return { status: 'ok', cancel };
  }

  /** Cancels everything in flight (no callbacks). */
  close(): void {
    this.closed = true;
    for (const cancel of [...this.inflight]) cancel();
  }
}
