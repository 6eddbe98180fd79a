import { ConfigError } from '../common/errors';
import { silentLogger, type Logger } from '../common/logger';
import { bootstrapFromJson } from '../config/bootstrap';
import { RedisPoolManager } from '../redis/pool-manager';
import type { RedisCallOutcome, RedisInitOutcome, RedisInitRequest, RedisOwner, RedisReply, RedisService } from '../services/redis';
import { ClusterManager } from '../upstream/cluster-manager';

/**
 * Redis for plugin tests from a map of cluster name to `redis://host:port` (the name is what the plugin passes to
 * proxy_redis_init, e.g. `outbound|6379||redis.default.svc.cluster.local`). Behind it are the sidecar's own
 * cluster manager and pipelined pools, so a plugin under test talks to a real Redis exactly as in the sidecar.
 * Credentials and the database come from the plugin's own init call, as in Envoy; a URL carrying them is refused
 * rather than silently ignored. A cluster the map does not name fails the call, and `unknownClusters` says which.
 */
export class RedisClusters implements RedisService {
  private readonly clusterManager = new ClusterManager();
  private readonly pools: RedisPoolManager;
  /** Cluster names plugins asked for that the map does not have, in order (for an assertion or an error). */
  readonly unknownClusters: string[] = [];

  constructor(urls: Readonly<Record<string, string>>, logger: Logger = silentLogger()) {
    const clusters = Object.entries(urls).map(([name, url]) => {
      const path = `redis[${JSON.stringify(name)}]`;
      let u: URL;
      try {
        u = new URL(url);
      } catch {
        throw new ConfigError(`not a URL: '${url}' (expected redis://host:port)`, path);
      }
      if (u.protocol === 'rediss:') throw new ConfigError('TLS to Redis (rediss://) is not supported', path);
      if (u.protocol !== 'redis:') throw new ConfigError(`expected redis://host:port, got '${u.protocol}//'`, path);
      if (u.username || u.password || (u.pathname !== '' && u.pathname !== '/')) {
        throw new ConfigError('credentials and database come from the plugin\'s proxy_redis_init (as in Envoy); give only redis://host:port', path);
      }
      return {
        name,
        type: 'STATIC',
        connect_timeout: '1s',
        load_assignment: {
          cluster_name: name,
          endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: u.hostname.replace(/^\[|\]$/g, ''), port_value: Number(u.port || 6379) } } } }] }],
        },
      };
    });
    // The same loader as a bootstrap file: names, ports and addresses are validated the same way.
    const bootstrap = bootstrapFromJson({ static_resources: { clusters } });
    for (const c of bootstrap.staticClusters) this.clusterManager.addOrUpdateCluster(c);
    this.pools = new RedisPoolManager(this.clusterManager, logger);
  }

  init(owner: RedisOwner, request: RedisInitRequest): RedisInitOutcome {
    const outcome = this.pools.init(owner, request);
    if (outcome.status === 'unknown_cluster') this.unknownClusters.push(request.upstream);
    return outcome;
  }

  call(owner: RedisOwner, upstream: string, query: Uint8Array, onReply: (reply: RedisReply) => void): RedisCallOutcome {
    const outcome = this.pools.call(owner, upstream, query, onReply);
    if (outcome.status === 'unknown_cluster') this.unknownClusters.push(upstream);
    return outcome;
  }

  release(owner: RedisOwner): void {
    this.pools.release(owner);
  }

  async close(): Promise<void> {
    await this.pools.close();
    this.clusterManager.close();
  }
}
