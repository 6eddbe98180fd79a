import { buildConnector, Pool } from './undici-pool';
import { upstreamTlsConnectOptions } from '../tls/tls-context';
import { DEFAULT_UPSTREAM_PROTOCOL } from './protocol-options';
import { AlpnUpstream } from './alpn-upstream';
import { Http2Upstream } from './h2-upstream';

/** What a request is dispatched to: an undici Pool (HTTP/1.1), one host's HTTP/2 session, or ALPN's choice of them. */
export type UpstreamDispatcher = Pool | Http2Upstream | AlpnUpstream;
import type { Disposable } from '../common/disposable';
import type { Logger } from '../common/logger';
import { silentLogger } from '../common/logger';
import type { ClusterManager, LiveCluster } from '../upstream/cluster-manager';
import type { Host } from '../upstream/types';
import { UpstreamTrafficStats } from '../upstream/traffic-stats';

/** The HTTP version of one upstream pool: 'alpn' lets TLS choose between h2 and http/1.1 (auto_config). */
export type UpstreamCodec = 'http1' | 'http2' | 'alpn';

/** Which codec a request to this cluster uses (Envoy's HttpProtocolOptions upstream_protocol_options). */
export function upstreamCodec(cluster: LiveCluster, downstreamProtocol: string | undefined): UpstreamCodec {
  const policy = (cluster.config.upstreamProtocol ?? DEFAULT_UPSTREAM_PROTOCOL).policy;
  switch (policy) {
    case 'http2': return 'http2';
    case 'downstream': return downstreamProtocol === 'HTTP/2' ? 'http2' : 'http1';
    // auto_config: ALPN over TLS; without TLS Envoy speaks HTTP/1.1.
    case 'auto': return cluster.config.tls ? 'alpn' : 'http1';
    default: return 'http1';
  }
}

/**
 * Keep-alive connection pools, one undici Pool per (cluster, host, codec), owned here and not by the cluster
 * (Envoy's ThreadLocalClusterManager keeps host→pool maps outside the cluster entry). Pools of hosts that
 * leave a cluster, and of removed or redefined clusters, are closed (they finish their in-flight requests).
 * In-flight counts feed LEAST_REQUEST.
 */
export class UpstreamPools {
  private readonly pools = new Map<string, UpstreamDispatcher>();
  private readonly active = new Map<string, number>();
  /** Envoy's upstream_rq_* and host rq_* counters for the requests routed through these pools. */
  readonly traffic = new UpstreamTrafficStats();
  private readonly subscription: Disposable;
  private readonly logger: Logger;
  private closing: Promise<void> | null = null;

  constructor(
    private readonly clusters: ClusterManager,
    logger: Logger = silentLogger(),
  ) {
    this.logger = logger.child({ component: 'upstream_http' });
    this.subscription = clusters.onEvent((event) => {
      if (event.type === 'membership') for (const h of event.removed) this.drop(event.cluster.name, h.key);
      else if (event.type === 'removed' || event.type === 'updated') this.dropCluster(event.type === 'removed' ? event.name : event.cluster.name);
    });
  }

  get closed(): boolean {
    return this.closing !== null;
  }

  cluster(name: string): LiveCluster | undefined {
    return this.clusters.get(name);
  }

  /** The host the cluster's LB picks (LEAST_REQUEST sees this side's in-flight counts). */
  chooseHost(cluster: LiveCluster): Host | undefined {
    return cluster.chooseHost((h) => this.active.get(`${cluster.name}\0${h.key}`) ?? 0);
  }

  /** The pool for this host; `downstreamProtocol` (request.protocol) matters with use_downstream_protocol_config. */
  pool(cluster: LiveCluster, host: Host, downstreamProtocol?: string): UpstreamDispatcher {
    const codec = upstreamCodec(cluster, downstreamProtocol);
    // Keys of one host start with `<cluster>\0<host>\0` so that drop() finds every codec's pool.
    const key = `${cluster.name}\0${host.key}\0${codec}`;
    let pool = this.pools.get(key);
    if (!pool) {
      pool = this.createPool(cluster, host, codec);
      this.pools.set(key, pool);
      this.logger.debug({ cluster: cluster.name, host: host.key, codec, tls: cluster.config.tls !== undefined }, 'upstream pool created');
    }
    return pool;
  }

  private createPool(cluster: LiveCluster, host: Host, codec: UpstreamCodec): UpstreamDispatcher {
    const tls = cluster.config.tls;
    const timeout = cluster.config.connectTimeoutMs;
    const http2 = (cluster.config.upstreamProtocol ?? DEFAULT_UPSTREAM_PROTOCOL).http2;
    // HTTP/2 runs on node:http2, which carries request and response trailers (undici's HTTP/2 loses both).
    if (codec === 'http2') return new Http2Upstream({ host: host.key, connectTimeoutMs: timeout, tls, settings: http2 });
    const http1 = () => new Pool(`${tls ? 'https' : 'http'}://${host.key}`, {
      connect: buildConnector({ timeout, ...(tls ? upstreamTlsConnectOptions(tls) : {}) } as buildConnector.BuildOptions),
      // The router owns the request timeout (route timeout), so undici's own timers are off.
      headersTimeout: 0,
      bodyTimeout: 0,
      keepAliveTimeout: 60_000,
      pipelining: 1,
    });
    // auto_config over TLS: ALPN picks one of the two for this host.
    if (codec === 'alpn' && tls) return new AlpnUpstream({ host: host.key, connectTimeoutMs: timeout, tls, settings: http2, http1 });
    return http1();
  }

  /** Tracks one in-flight request on a host; call the returned function exactly once when it ends. */
  track(cluster: string, host: Host): () => void {
    const key = `${cluster}\0${host.key}`;
    this.active.set(key, (this.active.get(key) ?? 0) + 1);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const n = (this.active.get(key) ?? 1) - 1;
      if (n <= 0) this.active.delete(key);
      else this.active.set(key, n);
    };
  }

  private drop(cluster: string, hostKey: string): void {
    const prefix = `${cluster}\0${hostKey}\0`;
    for (const [key, pool] of [...this.pools]) {
      if (!key.startsWith(prefix)) continue;
      this.pools.delete(key);
      pool.close().catch(() => undefined);
    }
  }

  private dropCluster(cluster: string): void {
    for (const [key, pool] of [...this.pools]) {
      if (!key.startsWith(`${cluster}\0`)) continue;
      this.pools.delete(key);
      pool.close().catch(() => undefined);
    }
  }

  /** Drains every pool (in-flight requests finish), then releases them. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.subscription.dispose();
      const pools = [...this.pools.values()];
      this.pools.clear();
      await Promise.all(pools.map((p) => p.close().catch(() => undefined)));
    })();
    return this.closing;
  }

  /** Fails in-flight requests and closes every socket now. */
  async destroy(): Promise<void> {
    this.subscription.dispose();
    const pools = [...this.pools.values()];
    this.pools.clear();
    this.closing ??= Promise.resolve();
    await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)));
  }
}
