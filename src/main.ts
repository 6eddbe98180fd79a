import type { LevelWithSilent } from 'pino';
import { LogLevel } from './abi/enums';
import type { HostServices } from './abi/host-services';
import { adsClientOptions } from './config/bootstrap';
import { createLogger, type Logger } from './common/logger';
import { UndiciHttpCalloutService } from './http/http-callout';
import { HttpListener } from './http/listener';
import { loadSidecarConfig, type SidecarConfig, type WasmFilterConfig } from './http/listener-config';
import { UpstreamPools } from './http/upstream-pools';
import { RedisPoolManager } from './redis/pool-manager';
import { Plugin } from './runtime/plugin';
import { MetricsRegistry } from './services/metrics';
import { SharedDataStore } from './services/shared-data';
import { SharedQueueRegistry } from './services/shared-queue';
import { ClusterManager } from './upstream/cluster-manager';
import { AdsClient } from './xds/ads-client';

/**
 * The composition root: builds every object from a bootstrap, wires subscriptions, and owns the shutdown order
 * (STYLE.md §3.10): stop intake (listeners drain in-flight streams), then plugin VMs, then xDS, then pools.
 *
 * Plugin order: http_filters run in listener order, as Envoy runs them. Higress sorts WasmPlugin CRDs by phase
 * (AUTHN, AUTHZ, STATS, unspecified) and priority before it emits the listener; a bootstrap written by hand
 * states the order directly.
 */

export type SidecarState = 'starting' | 'running' | 'draining' | 'stopped';

export interface SidecarOptions {
  readonly configFile: string;
  readonly logLevel?: LevelWithSilent;
  readonly logger?: Logger;
  /** How long SIGTERM waits for in-flight streams. */
  readonly drainTimeoutMs?: number;
}

const PROXY_LOG_LEVEL: Readonly<Record<string, LogLevel>> = {
  trace: LogLevel.Trace, debug: LogLevel.Debug, info: LogLevel.Info, warn: LogLevel.Warn, error: LogLevel.Error, fatal: LogLevel.Critical, silent: LogLevel.Critical,
};

/** Loads the Wasm plugin of one http filter with its PluginConfig. */
export async function loadFilterPlugin(filter: WasmFilterConfig, services: HostServices, logger: Logger): Promise<Plugin> {
  const code = filter.code.kind === 'file' ? filter.code.filename : filter.code.bytes;
  return Plugin.load(code, {
    name: filter.name || filter.filterName,
    rootId: filter.rootId,
    vmId: filter.vmId,
    configuration: filter.configuration,
    vmConfiguration: filter.vmConfiguration,
    environment: filter.environment,
    failurePolicy: filter.failurePolicy,
    allowOnHeadersStopIteration: filter.allowOnHeadersStopIteration,
    ...(filter.reloadBackoffMs !== undefined ? { reloadBackoffMs: filter.reloadBackoffMs } : {}),
  }, { services, logger });
}

/** A running sidecar. Admin (another module) reads its parts through the getters. */
export class Sidecar {
  private currentState: SidecarState = 'starting';
  private stopping: Promise<void> | null = null;
  private ads: AdsClient | undefined;

  private constructor(
    readonly config: SidecarConfig,
    readonly logger: Logger,
    readonly clusterManager: ClusterManager,
    readonly redis: RedisPoolManager,
    readonly upstreamPools: UpstreamPools,
    readonly httpCallout: UndiciHttpCalloutService,
    readonly services: HostServices,
    private readonly pluginList: Plugin[],
    private readonly listenerList: HttpListener[],
    private readonly drainTimeoutMs: number,
  ) {}

  get state(): SidecarState {
    return this.currentState;
  }

  get plugins(): readonly Plugin[] {
    return this.pluginList;
  }

  get listeners(): readonly HttpListener[] {
    return this.listenerList;
  }

  get adsClient(): AdsClient | undefined {
    return this.ads;
  }

  static async start(options: SidecarOptions): Promise<Sidecar> {
    const level = options.logLevel ?? 'info';
    const logger = options.logger ?? createLogger(level);
    const config = loadSidecarConfig(options.configFile);
    const clusterManager = new ClusterManager({ logger });
    for (const c of config.bootstrap.staticClusters) clusterManager.addOrUpdateCluster(c);
    const upstreamPools = new UpstreamPools(clusterManager, logger);
    const redis = new RedisPoolManager(clusterManager, logger);
    const httpCallout = new UndiciHttpCalloutService(upstreamPools, logger);
    const services: HostServices = {
      sharedData: new SharedDataStore(),
      sharedQueues: new SharedQueueRegistry(),
      metrics: new MetricsRegistry(),
      redis,
      httpCallout,
      logLevel: () => PROXY_LOG_LEVEL[logger.level] ?? LogLevel.Info,
    };
    const plugins: Plugin[] = [];
    const listeners: HttpListener[] = [];
    const sidecar = new Sidecar(config, logger, clusterManager, redis, upstreamPools, httpCallout, services, plugins, listeners, options.drainTimeoutMs ?? 10_000);
    try {
      for (const l of config.listeners) {
        const own: Plugin[] = [];
        for (const f of l.wasmFilters) {
          const p = await loadFilterPlugin(f, services, logger);
          own.push(p);
          plugins.push(p);
        }
        const listener = new HttpListener({ config: l, plugins: own, pools: upstreamPools, logger, node: config.bootstrap.node });
        await listener.start();
        listeners.push(listener);
      }
      // xDS: clusters (CDS/EDS) over ADS when the bootstrap has dynamic_resources.ads_config.
      if (config.bootstrap.ads) {
        sidecar.ads = new AdsClient({ ...adsClientOptions(config.bootstrap, clusterManager), logger });
        sidecar.ads.start();
      }
      // Admin server: to be wired here by the admin module (it reads the Sidecar getters).
    } catch (err) {
      await sidecar.stop();
      throw err;
    }
    sidecar.currentState = 'running';
    return sidecar;
  }

  /** Graceful stop: listeners drain, then plugins, xDS, callouts, Redis and upstream pools close. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.currentState = 'draining';
      await Promise.all(this.listenerList.map((l) => l.close(this.drainTimeoutMs)));
      for (const p of this.pluginList) {
        try {
          p.close();
        } catch (err) {
          this.logger.error({ plugin: p.config.name, err: (err as Error).message }, 'plugin close failed');
        }
      }
      await this.ads?.close();
      this.httpCallout.close();
      await this.redis.close();
      await this.upstreamPools.close();
      this.clusterManager.close();
      this.currentState = 'stopped';
      this.logger.info('sidecar stopped');
    })();
    return this.stopping;
  }
}
