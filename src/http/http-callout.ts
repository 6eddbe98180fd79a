import type { Dispatcher } from 'undici';
import type { HeaderPairs } from '../common/headers';
import type { Logger } from '../common/logger';
import { silentLogger } from '../common/logger';
import type { HttpCalloutOutcome, HttpCalloutRequest, HttpCalloutResponse, HttpCalloutService } from '../services/http-callout';
import { flatten, HOP_BY_HOP, pairsFromObject } from './http-headers';
import type { UpstreamPools } from './upstream-pools';

const SKIP = new Set([...HOP_BY_HOP, 'expect', 'host']);
const EMPTY: HttpCalloutResponse = { headers: [], body: Buffer.alloc(0), trailers: [] };

/**
 * proxy_http_call over the same keep-alive pools as the router (Envoy's AsyncClient). The cluster name is
 * exact (no `?` stripping, unlike Redis); an unknown cluster is BAD_ARGUMENT. The reply carries `:status`,
 * the body and trailers. A timeout, a reset or an unreachable host is delivered as a response with zero
 * headers (Envoy onFailure), always asynchronously and exactly once; cancel() suppresses it.
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
    let settled = false;
    const deliver = (response: HttpCalloutResponse) => {
      if (settled) return;
      settled = true;
      this.inflight.delete(cancel);
      if (timer) clearTimeout(timer);
      release?.();
      setImmediate(() => onResponse(response));
    };
    let controller: Dispatcher.DispatchController | undefined;
    let timer: NodeJS.Timeout | undefined;
    let release: (() => void) | undefined;
    const cancel = () => {
      if (settled) return;
      settled = true;
      this.inflight.delete(cancel);
      if (timer) clearTimeout(timer);
      release?.();
      controller?.abort(new Error('callout cancelled'));
    };
    this.inflight.add(cancel);
    if (!host) {
      this.logger.info({ cluster: cluster.name }, 'http callout: no healthy upstream');
      deliver(EMPTY);
      return { status: 'ok', cancel };
    }
    release = this.pools.track(cluster.name, host);
    const lowered: HeaderPairs = request.headers.map(([k, v]) => [k.toLowerCase(), v]);
    const headers = flatten(lowered, SKIP);
    headers.push('host', authority);
    if (request.body.length > 0 && !lowered.some(([k]) => k === 'content-length')) headers.push('content-length', String(request.body.length));
    let status = 0;
    let responseHeaders: HeaderPairs = [];
    const chunks: Buffer[] = [];
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart: (c) => {
        controller = c;
        if (settled) c.abort(new Error('callout cancelled'));
      },
      onResponseStart: (_c, statusCode, h) => {
        if (statusCode < 200) return;
        status = statusCode;
        responseHeaders = pairsFromObject(h);
      },
      onResponseData: (_c, chunk) => {
        chunks.push(chunk);
      },
      onResponseEnd: (_c, trailers) => {
        deliver({ headers: [[':status', String(status)], ...responseHeaders], body: Buffer.concat(chunks), trailers: pairsFromObject(trailers) });
      },
      onResponseError: (_c, err) => {
        if (settled) return;
        this.logger.info({ cluster: cluster.name, host: host.key, err: err.message }, 'http callout failed');
        deliver(EMPTY);
      },
    };
    if (request.timeoutMs > 0) {
      timer = setTimeout(() => {
        timer = undefined;
        this.logger.info({ cluster: cluster.name, timeoutMs: request.timeoutMs }, 'http callout timed out');
        const c = controller;
        deliver(EMPTY);
        c?.abort(new Error('callout timeout'));
      }, request.timeoutMs);
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
