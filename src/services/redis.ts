/**
 * What a plugin may ask of Redis, in plain types: no pointers, no context ids. abi/ translates the Higress
 * host functions (proxy_redis_init / proxy_redis_call and the note's variant) into these calls and maps the
 * outcomes to WasmResult codes; redis/ implements it over pooled, pipelined connections.
 */

/** Outcome of a reply: the exact bytes of one RESP2 reply, or a failure (network, timeout, closed). */
export type RedisReply =
  | { readonly ok: true; readonly bytes: Buffer }
  | { readonly ok: false; readonly error: Error };

/** One plugin (root context) using Redis. Pools live as long as some owner uses them. */
export interface RedisOwner {
  /** Stable description for logs, e.g. `plugin-name/root-id`. */
  readonly label: string;
}

export interface RedisInitRequest {
  /** As passed by the plugin, e.g. `outbound|6379||redis.default.svc.cluster.local?db=1&buffer_flush_timeout=3`. */
  readonly upstream: string;
  readonly username: string;
  /** Never logged, never dumped. */
  readonly password: string;
  /** Per-operation timeout (Higress semantics), ms; 0 means none. */
  readonly timeoutMs: number;
}

export type RedisInitOutcome =
  | { readonly status: 'ok' }
  | { readonly status: 'unknown_cluster' }
  | { readonly status: 'unsupported_cluster'; readonly reason: string };

export type RedisCallOutcome =
  /** cancel() is a method: call it on the outcome (`outcome.cancel()`), don't detach it. */
  | { readonly status: 'ok'; cancel(): void }
  | { readonly status: 'unknown_cluster' }
  | { readonly status: 'unsupported_cluster'; readonly reason: string }
  | { readonly status: 'no_host' };

export interface RedisService {
  /** Installs (or keeps, if unchanged) the owner's config for that cluster. */
  init(owner: RedisOwner, request: RedisInitRequest): RedisInitOutcome;
  /**
   * Queues `query` (RESP bytes, sent verbatim; copied before call() returns, so the caller may reuse its
   * memory at once) on the cluster's pool. `onReply` is called exactly once,
   * always asynchronously, unless the call is cancelled or the owner released first.
   * The cluster string may carry `?` parameters; they are ignored here.
   */
  call(owner: RedisOwner, upstream: string, query: Uint8Array, onReply: (reply: RedisReply) => void): RedisCallOutcome;
  /** The owner is gone (plugin unloaded): cancel its pending calls without callbacks, release its pools. */
  release(owner: RedisOwner): void;
}
