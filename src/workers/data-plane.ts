import { proxyLogLevel } from '../observability/log-level';
import type { HostServices } from '../abi/host-services';
import type { Logger } from '../common/logger';
import { UndiciHttpCalloutService } from '../http/http-callout';
import { GrpcJsCalloutService } from '../http/grpc-callout';
import { HttpListener } from '../http/listener';
import type { ListenerConfig, SidecarConfig, WasmFilterConfig } from '../http/listener-config';
import { UpstreamPools } from '../http/upstream-pools';
import { RedisPoolManager } from '../redis/pool-manager';
import { Plugin, VmRegistry } from '../runtime/plugin';
import { MetricsRegistry } from '../services/metrics';
import type { SharedDataService } from '../services/shared-data';
import type { SharedQueueService } from '../services/shared-queue';
import { ClusterManager } from '../upstream/cluster-manager';
import { parseWasmServices } from './wasm-services';
import { sumCounters } from './metrics-view';

/**
 * One worker's data plane: its ClusterManager (fed static clusters from the bootstrap, dynamic ones by its owner),
 * Redis and HTTP upstream pools, plugin VMs and HTTP listeners. The single-process sidecar runs one in the main
 * thread; `--concurrency N` runs one per worker thread. Shared data and queues come from outside, because they
 * are per vm_id across every worker (Envoy's are too).
 */


/**
 * Loads the Wasm plugin of one http filter (or Wasm service) with its PluginConfig, on a VM of `vms` when one
 * of the same vm key is there (default: a VM of its own).
 */
export async function loadFilterPlugin(filter: WasmFilterConfig, services: HostServices, logger: Logger, vms?: VmRegistry): Promise<Plugin> {
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
  }, { services, logger, ...(vms ? { vms } : {}) });
}

export interface DataPlaneOptions {
  readonly config: SidecarConfig;
  readonly logger: Logger;
  readonly sharedData: SharedDataService;
  readonly sharedQueues: SharedQueueService;
  readonly drainTimeoutMs: number;
  /** Where each listener binds; default its bootstrap address. Workers bind loopback, ephemeral. */
  readonly bindListener?: (config: ListenerConfig) => ListenerConfig;
}

export class DataPlane {
  readonly clusterManager: ClusterManager;
  readonly upstreamPools: UpstreamPools;
  readonly redis: RedisPoolManager;
  readonly httpCallout: UndiciHttpCalloutService;
  readonly grpcCallout: GrpcJsCalloutService;
  readonly services: HostServices;
  readonly plugins: Plugin[] = [];
  /** Non-singleton Wasm services (bootstrap_extensions), one each per data plane. */
  readonly wasmServices: Plugin[] = [];
  readonly listeners: HttpListener[] = [];
  /** This worker's VMs: plugins (and services) of one vm key share one (Envoy's thread-local Wasm map). */
  readonly vms = new VmRegistry();
  private stopping: Promise<void> | null = null;

  constructor(private readonly options: DataPlaneOptions) {
    const { config, logger } = options;
    this.clusterManager = new ClusterManager({ logger });
    for (const c of config.bootstrap.staticClusters) this.clusterManager.addOrUpdateCluster(c);
    this.upstreamPools = new UpstreamPools(this.clusterManager, logger);
    this.redis = new RedisPoolManager(this.clusterManager, logger);
    this.httpCallout = new UndiciHttpCalloutService(this.upstreamPools, logger);
    this.grpcCallout = new GrpcJsCalloutService(this.clusterManager, logger);
    this.services = {
      sharedData: options.sharedData,
      sharedQueues: options.sharedQueues,
      metrics: new MetricsRegistry(),
      redis: this.redis,
      httpCallout: this.httpCallout,
      grpcCallout: this.grpcCallout,
      logLevel: () => proxyLogLevel(logger.level),
    };
  }

  /**
   * Starts the non-singleton Wasm services (Envoy starts bootstrap extensions before listeners), then loads every
   * listener's plugins (in listener order) and starts the listeners. On failure, call stop().
   */
  async start(): Promise<void> {
    const { config, logger } = this.options;
    for (const s of parseWasmServices(config.bootstrap.wasmServices)) {
      if (!s.singleton) this.wasmServices.push(await loadFilterPlugin(s.plugin, this.services, logger, this.vms));
    }
    for (const l of config.listeners) {
      const own: Plugin[] = [];
      for (const f of l.wasmFilters) {
        const p = await loadFilterPlugin(f, this.services, logger, this.vms);
        own.push(p);
        this.plugins.push(p);
      }
      const bound = this.options.bindListener?.(l) ?? l;
      // A worker's listener is bound to loopback; its listener.<address> stats carry the public address.
      const listener = new HttpListener({ config: bound, plugins: own, pools: this.upstreamPools, logger, node: config.bootstrap.node, statAddress: l.address });
      await listener.start();
      this.listeners.push(listener);
    }
  }

  /** The data plane's own counters by full Envoy name: every listener's protocol stats, summed by name. */
  counters(): Record<string, number> {
    return sumCounters(this.listeners.map((l) => l.counters()));
  }

  /**
   * Listeners drain in-flight streams, then plugins close, then callouts, Redis and upstream pools. `beforePools`
   * runs between the plugins and the pools (the single-process sidecar closes xDS there). Idempotent.
   */
  stop(beforePools?: () => Promise<void>): Promise<void> {
    this.stopping ??= (async () => {
      const logger = this.options.logger;
      await Promise.all(this.listeners.map((l) => l.close(this.options.drainTimeoutMs)));
      for (const p of [...this.plugins, ...this.wasmServices]) {
        try {
          p.close();
        } catch (err) {
          logger.error({ plugin: p.config.name, err: (err as Error).message }, 'plugin close failed');
        }
      }
      await beforePools?.();
      this.httpCallout.close();
      this.grpcCallout.close();
      await this.redis.close();
      await this.upstreamPools.close();
      this.clusterManager.close();
    })();
    return this.stopping;
  }
}
