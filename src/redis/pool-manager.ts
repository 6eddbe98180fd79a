/**
 * The Redis service plugins use (RedisService), over pooled, pipelined connections.
 *
 * Pools are keyed by (cluster, username, password, db, op timeout). A pool holds one connection per endpoint,
 * made on first use and shared by every owner (plugin root context) that init-ed the same cluster with the same
 * settings; different credentials get their own pool. Each call picks its endpoint through the cluster's load
 * balancer (higress-abi.md §1.8). This is finer than Envoy 1.27, where the last proxy_redis_init wins for every
 * plugin on a cluster: here two plugins with different passwords each keep their own.
 *
 * A call on a cluster the owner never init-ed goes to the cluster's anonymous default pool: no AUTH, no SELECT,
 * op timeout DEFAULT_OP_TIMEOUT_MS (the wasm-go plugins' usual default), so a stalled server cannot hang it.
 *
 * Control plane (STYLE §3.8): the manager subscribes to the ClusterManager. 'membership' retires connections to
 * hosts that are gone (or no longer usable); 'updated' and 'removed' retire all of that cluster's connections.
 * Retiring means close(): in-flight calls complete, and whatever has not completed within the drain timeout fails
 * (status 1). Nothing hangs and nothing vanishes. Pools that have nothing to do with the event are not touched.
 *
 * Buffer parameters (`buffer_flush_timeout`, `max_buffer_size_before_flush`) are parsed and passed to a pool's
 * connections. They are not part of the pool key, so the first owner of a pool sets them.
 */
import { createHash } from 'node:crypto';
import type { Disposable } from '../common/disposable';
import { ClientClosedError, RedisConnectionError, RedisTimeoutError } from '../common/errors';
import type { Logger } from '../common/logger';
import { silentLogger } from '../common/logger';
import type { ClusterEvent, ClusterManager, LiveCluster } from '../upstream/cluster-manager';
import { isUsable, stripClusterParams, type Host } from '../upstream/types';
import type {
  RedisCallOutcome,
  RedisInitOutcome,
  RedisInitRequest,
  RedisOwner,
  RedisReply,
  RedisService,
} from '../services/redis';
import {
  DEFAULT_BUFFER_FLUSH_TIMEOUT_MS,
  DEFAULT_MAX_BUFFER_SIZE_BEFORE_FLUSH,
  PendingRequest,
  RedisConnection,
} from './connection';

/** Op timeout of the anonymous default pool (calls without proxy_redis_init). */
export const DEFAULT_OP_TIMEOUT_MS = 1000;
/** How long a retired connection may take to finish its in-flight calls before they fail. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 5000;

/** The settings a pool is built from (parsed from proxy_redis_init). */
export interface RedisPoolConfig {
  readonly username: string;
  /** Never logged, never in stats. */
  readonly password: string;
  /** Raw `db` parameter, or undefined for none. */
  readonly db: string | undefined;
  readonly opTimeoutMs: number;
  readonly bufferFlushTimeoutMs: number;
  readonly maxBufferSizeBeforeFlush: number;
}

export interface RedisPoolManagerOptions {
  readonly logger?: Logger;
  /** See DEFAULT_DRAIN_TIMEOUT_MS. */
  readonly drainTimeoutMs?: number;
}

export interface RedisHostStats {
  readonly host: string;
  readonly cx_active: number;
  readonly rq_total: number;
  readonly rq_active: number;
}

export interface RedisClusterStats {
  readonly cluster: string;
  readonly calls: number;
  /** Calls that failed (status 1): network, timeout, closed. Redis error replies are not failures. */
  readonly errors: number;
  readonly timeouts: number;
  /** Replies that were Redis errors (`-ERR`, `-NOAUTH`, ...), delivered with status 0. */
  readonly error_replies: number;
  readonly cx_active: number;
  readonly pools: number;
  readonly hosts: readonly RedisHostStats[];
}

export interface RedisPoolStats {
  readonly cluster: string;
  /** Whether the pool sends AUTH; the credentials themselves are never exposed. */
  readonly auth: 'none' | 'password' | 'user';
  readonly db: string | null;
  readonly op_timeout_ms: number;
  readonly owners: number;
  readonly is_default: boolean;
  readonly connections: number;
}

export interface RedisStats {
  readonly clusters: readonly RedisClusterStats[];
  readonly pools: readonly RedisPoolStats[];
}

/** Parses `k=v&k=v` after the first `?`, without URL decoding (Envoy's parseQueryString). */
export function parseUpstreamParams(upstream: string): Map<string, string> {
  const out = new Map<string, string>();
  const q = upstream.indexOf('?');
  if (q === -1) return out;
  for (const part of upstream.slice(q + 1).split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    const key = eq === -1 ? part : part.slice(0, eq);
    if (!out.has(key)) out.set(key, eq === -1 ? '' : part.slice(eq + 1));
  }
  return out;
}

/** std::stoul into uint32, falling back to `fallback` on anything invalid or out of range. */
export function parseUint32Param(value: string | undefined, fallback: number): number {
  if (value === undefined || !/^\s*\+?\d+/.test(value)) return fallback;
  const n = Number.parseInt(value.trim(), 10);
  return Number.isSafeInteger(n) && n >= 0 && n <= 0xffffffff ? n : fallback;
}

export function poolConfigFromInit(request: RedisInitRequest): RedisPoolConfig {
  const params = parseUpstreamParams(request.upstream);
  const db = params.get('db');
  return {
    username: request.username,
    password: request.password,
    db: db === undefined || db === '' ? undefined : db,
    opTimeoutMs: Math.max(0, Math.floor(request.timeoutMs)),
    bufferFlushTimeoutMs: parseUint32Param(params.get('buffer_flush_timeout'), DEFAULT_BUFFER_FLUSH_TIMEOUT_MS),
    maxBufferSizeBeforeFlush: parseUint32Param(
      params.get('max_buffer_size_before_flush'),
      DEFAULT_MAX_BUFFER_SIZE_BEFORE_FLUSH,
    ),
  };
}

const DEFAULT_POOL_CONFIG: RedisPoolConfig = {
  username: '',
  password: '',
  db: undefined,
  opTimeoutMs: DEFAULT_OP_TIMEOUT_MS,
  bufferFlushTimeoutMs: DEFAULT_BUFFER_FLUSH_TIMEOUT_MS,
  maxBufferSizeBeforeFlush: DEFAULT_MAX_BUFFER_SIZE_BEFORE_FLUSH,
};

/** Pool identity. Credentials enter only through a hash, so the key is safe to hold anywhere. */
function poolKey(cluster: string, c: RedisPoolConfig, isDefault: boolean): string {
  const cred = createHash('sha256').update(c.username).update('\0').update(c.password).digest('base64');
  return JSON.stringify([cluster, isDefault, cred, c.db ?? null, c.opTimeoutMs]);
}

class HostCounters {
  rqTotal = 0;
  rqActive = 0;
}

class ClusterCounters {
  calls = 0;
  errors = 0;
  timeouts = 0;
  errorReplies = 0;
  readonly hosts = new Map<string, HostCounters>();
  host(key: string): HostCounters {
    let h = this.hosts.get(key);
    if (!h) this.hosts.set(key, (h = new HostCounters()));
    return h;
  }
}

/** One pool: a config and one connection per endpoint of one cluster. */
class Pool {
  readonly connections = new Map<string, RedisConnection>();
  readonly owners = new Set<RedisOwner>();
  constructor(
    readonly key: string,
    readonly cluster: string,
    readonly config: RedisPoolConfig,
    readonly isDefault: boolean,
  ) {}

  /** In-flight calls on a host's connection (LEAST_REQUEST); one function per pool, not one per call. */
  readonly inFlight = (host: Host): number => this.connections.get(host.key)?.inFlight ?? 0;
}

/** What the manager keeps per owner: the pool its init selected per cluster, and whether it was released. */
class OwnerState {
  readonly pools = new Map<string, Pool>();
  /** Set by release(): the owner's pending calls never call back. */
  released = false;
}

/**
 * A call accepted by call(), and its outcome: settles exactly once, or never if cancelled or its owner released.
 * It is the connection-level request too (complete() gets the reply), so a call costs one object.
 */
class PendingCall extends PendingRequest {
  readonly status = 'ok' as const;
  private settled = false;
  constructor(
    private readonly manager: RedisPoolManager,
    private readonly state: OwnerState,
    private readonly owner: RedisOwner,
    private readonly cluster: string,
    private readonly counters: ClusterCounters,
    private readonly hostCounters: HostCounters,
    private readonly onReply: (reply: RedisReply) => void,
  ) {
    super(null, true);
  }

  /**
   * Cancel only marks (STYLE §3.9): the request keeps its FIFO slot and its reply is read and dropped. The
   * connection-level request is left uncancelled so rq_active is still updated when the reply lands.
   */
  override cancel(): void {
    this.settled = true;
  }

  override complete(reply: RedisReply): void {
    this.hostCounters.rqActive--;
    if (reply.ok) {
      if (reply.bytes[0] === 0x2d) this.counters.errorReplies++;
    } else {
      this.counters.errors++;
      if (reply.error instanceof RedisTimeoutError) this.counters.timeouts++;
    }
    if (this.settled || this.state.released) return;
    this.settled = true;
    try {
      this.onReply(reply);
    } catch (err) {
      this.manager.onReplyThrew(this.cluster, this.owner, err);
    }
  }
}

export class RedisPoolManager implements RedisService {
  private readonly logger: Logger;
  private readonly drainTimeoutMs: number;
  private readonly pools = new Map<string, Pool>();
  /** owner → the pools its inits selected (cluster name → pool), and its released flag. */
  private readonly owners = new Map<RedisOwner, OwnerState>();
  /** cluster → its anonymous default pool (calls without init); kept for the manager's life. */
  private readonly defaultPools = new Map<string, Pool>();
  private readonly counters = new Map<string, ClusterCounters>();
  /** Connections taken out of service, finishing their in-flight calls. */
  private readonly retiring = new Map<RedisConnection, { cluster: string; host: string; done: Promise<void> }>();
  private readonly unsupportedLogged = new Set<string>();
  private readonly subscription: Disposable;
  private closing: Promise<void> | null = null;

  constructor(
    private readonly clusters: ClusterManager,
    logger?: Logger,
    options: RedisPoolManagerOptions = {},
  ) {
    this.logger = (options.logger ?? logger ?? silentLogger()).child({ component: 'redis' });
    this.drainTimeoutMs = options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
    this.subscription = clusters.onEvent((event) => this.onClusterEvent(event));
  }

  get closed(): boolean {
    return this.closing !== null;
  }

  init(owner: RedisOwner, request: RedisInitRequest): RedisInitOutcome {
    const name = stripClusterParams(request.upstream);
    const cluster = this.clusters.get(name);
    if (!cluster || this.closing) return { status: 'unknown_cluster' };
    const reason = this.unsupported(cluster);
    if (reason) return { status: 'unsupported_cluster', reason };
    const config = poolConfigFromInit(request);
    const key = poolKey(name, config, false);
    const byCluster = this.ownerState(owner).pools;
    const current = byCluster.get(name);
    if (current?.key === key) return { status: 'ok' };
    let pool = this.pools.get(key);
    if (!pool) {
      pool = new Pool(key, name, config, false);
      this.pools.set(key, pool);
      this.logger.info(
        { cluster: name, owner: owner.label, db: config.db ?? null, opTimeoutMs: config.opTimeoutMs, auth: authKind(config) },
        'redis pool created',
      );
    }
    pool.owners.add(owner);
    byCluster.set(name, pool);
    if (current) this.leavePool(owner, current);
    return { status: 'ok' };
  }

  call(owner: RedisOwner, upstream: string, query: Uint8Array, onReply: (reply: RedisReply) => void): RedisCallOutcome {
    const name = stripClusterParams(upstream);
    const cluster = this.clusters.get(name);
    if (!cluster || this.closing) return { status: 'unknown_cluster' };
    const reason = this.unsupported(cluster);
    if (reason) return { status: 'unsupported_cluster', reason };
    const state = this.ownerState(owner);
    const pool = state.pools.get(name) ?? this.defaultPool(name);
    const host = cluster.chooseHost(pool.inFlight);
    if (!host) return { status: 'no_host' };
    const conn = this.connectionFor(pool, cluster, host);
    const counters = this.clusterCounters(name);
    const hostCounters = counters.host(host.key);
    counters.calls++;
    hostCounters.rqTotal++;
    hostCounters.rqActive++;
    // The connection never calls back inside send(), so onReply is always asynchronous.
    return conn.sendRequest(query, new PendingCall(this, state, owner, name, counters, hostCounters, onReply));
  }

  release(owner: RedisOwner): void {
    const state = this.owners.get(owner);
    if (!state) return;
    this.owners.delete(owner);
    state.released = true;
    for (const pool of state.pools.values()) this.leavePool(owner, pool);
  }

  /** @internal A plugin's onReply threw (PendingCall). */
  onReplyThrew(cluster: string, owner: RedisOwner, err: unknown): void {
    this.logger.error({ cluster, owner: owner.label, err: String(err) }, 'redis onReply threw');
  }

  /** Stops taking calls and drains every connection. Idempotent. */
  close(): Promise<void> {
    return (this.closing ??= this.shutdown(false));
  }

  /** Fails every in-flight call (status 1) and closes every connection now. Idempotent. */
  destroy(): Promise<void> {
    const done = this.shutdown(true);
    this.closing ??= done;
    return done;
  }

  /** Plain objects for the admin endpoint. Never contains credentials. */
  stats(): RedisStats {
    const cxByHost = new Map<string, Map<string, number>>();
    const poolsByCluster = new Map<string, number>();
    const count = (cluster: string, host: string, conn: RedisConnection): void => {
      if (!conn.connected) return;
      let m = cxByHost.get(cluster);
      if (!m) cxByHost.set(cluster, (m = new Map()));
      m.set(host, (m.get(host) ?? 0) + 1);
    };
    const pools: RedisPoolStats[] = [];
    for (const pool of this.pools.values()) {
      poolsByCluster.set(pool.cluster, (poolsByCluster.get(pool.cluster) ?? 0) + 1);
      let connections = 0;
      for (const [host, conn] of pool.connections) {
        count(pool.cluster, host, conn);
        if (conn.connected) connections++;
      }
      pools.push({
        cluster: pool.cluster,
        auth: authKind(pool.config),
        db: pool.config.db ?? null,
        op_timeout_ms: pool.config.opTimeoutMs,
        owners: pool.owners.size,
        is_default: pool.isDefault,
        connections,
      });
    }
    for (const [conn, r] of this.retiring) count(r.cluster, r.host, conn);
    const names = new Set<string>([...this.counters.keys(), ...poolsByCluster.keys()]);
    const clusters: RedisClusterStats[] = [];
    for (const name of [...names].sort()) {
      const c = this.counters.get(name) ?? new ClusterCounters();
      const cx = cxByHost.get(name) ?? new Map<string, number>();
      const hostKeys = new Set<string>([...c.hosts.keys(), ...cx.keys()]);
      const hosts: RedisHostStats[] = [...hostKeys].sort().map((host) => ({
        host,
        cx_active: cx.get(host) ?? 0,
        rq_total: c.hosts.get(host)?.rqTotal ?? 0,
        rq_active: c.hosts.get(host)?.rqActive ?? 0,
      }));
      clusters.push({
        cluster: name,
        calls: c.calls,
        errors: c.errors,
        timeouts: c.timeouts,
        error_replies: c.errorReplies,
        cx_active: hosts.reduce((n, h) => n + h.cx_active, 0),
        pools: poolsByCluster.get(name) ?? 0,
        hosts,
      });
    }
    return { clusters, pools };
  }

  private unsupported(cluster: LiveCluster): string {
    const reason = cluster.unsupportedReason;
    if (reason && !this.unsupportedLogged.has(`${cluster.name}\0${reason}`)) {
      this.unsupportedLogged.add(`${cluster.name}\0${reason}`);
      this.logger.warn({ cluster: cluster.name, reason }, 'cluster cannot carry plugin Redis calls');
    }
    return reason;
  }

  private defaultPool(cluster: string): Pool {
    let pool = this.defaultPools.get(cluster);
    if (!pool) {
      const key = poolKey(cluster, DEFAULT_POOL_CONFIG, true);
      pool = new Pool(key, cluster, DEFAULT_POOL_CONFIG, true);
      this.pools.set(key, pool);
      this.defaultPools.set(cluster, pool);
    }
    return pool;
  }

  private connectionFor(pool: Pool, cluster: LiveCluster, host: Host): RedisConnection {
    let conn = pool.connections.get(host.key);
    if (!conn) {
      const c = pool.config;
      conn = new RedisConnection({
        host: host.address,
        port: host.port,
        username: c.username,
        password: c.password,
        db: c.db,
        connectTimeoutMs: cluster.config.connectTimeoutMs,
        opTimeoutMs: c.opTimeoutMs,
        bufferFlushTimeoutMs: c.bufferFlushTimeoutMs,
        maxBufferSizeBeforeFlush: c.maxBufferSizeBeforeFlush,
        label: cluster.name,
        logger: this.logger,
      });
      pool.connections.set(host.key, conn);
    }
    return conn;
  }

  private ownerState(owner: RedisOwner): OwnerState {
    let state = this.owners.get(owner);
    if (!state) this.owners.set(owner, (state = new OwnerState()));
    return state;
  }

  private leavePool(owner: RedisOwner, pool: Pool): void {
    pool.owners.delete(owner);
    if (pool.owners.size > 0 || pool.isDefault) return;
    this.pools.delete(pool.key);
    this.logger.info({ cluster: pool.cluster }, 'redis pool closed: no owner left');
    this.retireAll(pool);
  }

  private retireAll(pool: Pool): void {
    for (const [host, conn] of pool.connections) this.retire(pool.cluster, host, conn);
    pool.connections.clear();
  }

  /** Takes a connection out of service: it finishes its in-flight calls, or fails them after the drain timeout. */
  private retire(cluster: string, host: string, conn: RedisConnection): void {
    if (this.retiring.has(conn) || conn.destroyed) return;
    const timer = setTimeout(() => {
      void conn.destroy(new RedisConnectionError(`redis ${host}: connection retired (cluster ${cluster} changed)`));
    }, this.drainTimeoutMs);
    timer.unref();
    const done = conn.close().then(() => {
      clearTimeout(timer);
      this.retiring.delete(conn);
    });
    this.retiring.set(conn, { cluster, host, done });
  }

  private onClusterEvent(event: ClusterEvent): void {
    switch (event.type) {
      case 'added':
        return;
      case 'membership': {
        const cluster = event.cluster;
        const gone = new Set<string>();
        for (const h of event.removed) {
          const now = cluster.hostsByKey.get(h.key);
          if (!now || !isUsable(now)) gone.add(h.key);
        }
        if (gone.size === 0) return;
        this.logger.info({ cluster: cluster.name, removed: [...gone] }, 'redis hosts removed; draining their connections');
        for (const pool of this.pools.values()) {
          if (pool.cluster !== cluster.name) continue;
          for (const key of gone) {
            const conn = pool.connections.get(key);
            if (!conn) continue;
            pool.connections.delete(key);
            this.retire(pool.cluster, key, conn);
          }
        }
        return;
      }
      case 'updated':
      case 'removed': {
        const name = event.type === 'updated' ? event.cluster.name : event.name;
        this.logger.info({ cluster: name, event: event.type }, 'cluster changed; draining its redis connections');
        for (const pool of this.pools.values()) if (pool.cluster === name) this.retireAll(pool);
        if (event.type === 'removed') this.unsupportedLogged.forEach((k) => k.startsWith(`${name}\0`) && this.unsupportedLogged.delete(k));
        return;
      }
    }
  }

  private clusterCounters(name: string): ClusterCounters {
    let c = this.counters.get(name);
    if (!c) this.counters.set(name, (c = new ClusterCounters()));
    return c;
  }

  private async shutdown(force: boolean): Promise<void> {
    this.subscription.dispose();
    for (const pool of this.pools.values()) this.retireAll(pool);
    if (force) {
      const err = new ClientClosedError('redis pool manager destroyed');
      await Promise.all([...this.retiring.keys()].map((c) => c.destroy(err)));
    }
    await Promise.all([...this.retiring.values()].map((r) => r.done));
  }
}

function authKind(c: RedisPoolConfig): 'none' | 'password' | 'user' {
  return c.username !== '' ? 'user' : c.password !== '' ? 'password' : 'none';
}
