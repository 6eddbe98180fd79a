import type { HeaderPairs } from '../common/headers';

/**
 * A completed callout. As Envoy's AsyncClient: what its router answers locally (no healthy upstream, connect
 * failure, timeout before headers) is a response like any other; `headers` is empty only when the call failed
 * after response headers (a reset), which Envoy reports through onFailure.
 */
export interface HttpCalloutResponse {
  readonly headers: HeaderPairs;
  readonly body: Buffer;
  readonly trailers: HeaderPairs;
}

export interface HttpCalloutRequest {
  readonly cluster: string;
  readonly headers: HeaderPairs;
  readonly body: Buffer;
  readonly trailers: HeaderPairs;
  readonly timeoutMs: number;
}

export type HttpCalloutOutcome =
  | { readonly status: 'ok'; readonly cancel: () => void }
  | { readonly status: 'unknown_cluster' }
  | { readonly status: 'bad_argument'; readonly reason: string }
  | { readonly status: 'internal_failure'; readonly reason: string };

/** proxy_http_call's backend (http/ implements it over undici). onResponse is always asynchronous, exactly once. */
export interface HttpCalloutService {
  call(request: HttpCalloutRequest, onResponse: (response: HttpCalloutResponse) => void): HttpCalloutOutcome;
}
