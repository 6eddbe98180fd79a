import { proxyLogLevel } from '../observability/log-level';
import type { HostServices } from '../abi/host-services';
import type { Logger } from '../common/logger';
import { UndiciHttpCalloutService } from '../http/http-callout';
import { GrpcJsCalloutService } from '../http/grpc-callout';
import type { HttpListener } from '../http/listener';
import type { HttpListenerOptions } from '../http/listener';
import type { ListenerConfig, WasmFilterConfig } from '../http/listener-config';
import { UpstreamPools } from '../http/upstream-pools';
import { RedisPoolManager } from '../redis/pool-manager';
import { Plugin, VmRegistry } from '../runtime/plugin';
import { MetricsRegistry } from '../services/metrics';
import type { SharedDataService } from '../services/shared-data';
import type { SharedQueueService } from '../services/shared-queue';
import { ClusterManager } from '../upstream/cluster-manager';
import { sumCounters } from './metrics-view';
import type { ResourceSubscriber } from '../xds/resource-sink';
import { ListenerManager } from '../listener/listener-manager';
import { RouteConfigManager } from '../listener/route-config-manager';
import { ExtensionConfigManager } from '../listener/extension-config-manager';
import type { StaticSecrets } from '../tls/tls-context';
import type { ClusterConfig } from '../upstream/types';
import { ConfigError } from '../common/errors';
import { fetchRemoteWasmCode, RemoteCodeCache, type RemoteCodeDeps } from '../wasm/remote-code';

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
export async function loadFilterPlugin(filter: WasmFilterConfig, services: HostServices, logger: Logger, vms?: VmRegistry, remote?: RemoteCodeDeps): Promise<Plugin> {
  let code: string | Buffer;
  if (filter.code.kind === 'remote') {
    if (!remote) throw new ConfigError('remote code is fetched through a cluster, which this plugin has no access to here', `${filter.path}.typed_config.config.vm_config.code.remote`);
    code = await fetchRemoteWasmCode(filter.code.remote, remote);
  } else code = filter.code.kind === 'file' ? filter.code.filename : filter.code.bytes;
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

/**
 * What a DataPlane is built from: the bootstrap reduced to what the data plane acts on, already parsed and
 * validated (plane-config.ts derives it from a SidecarConfig in the main thread). Plain, structured-clonable
 * data, so a worker gets it in workerData and never reads YAML or loads the Envoy protos itself.
 */
export interface DataPlaneConfig {
  readonly staticClusters: readonly ClusterConfig[];
  readonly listeners: readonly ListenerConfig[];
  /** The bootstrap node as listeners serve it (`message`: the serialized envoy.config.core.v3.Node). */
  readonly node: NonNullable<HttpListenerOptions['node']>;
  /** static_resources.secrets by name, for LDS listeners' TLS contexts. */
  readonly secrets: StaticSecrets;
  /** Non-singleton Wasm services (bootstrap_extensions), parsed: one each per data plane. */
  readonly wasmServices: readonly WasmFilterConfig[];
}

export interface DataPlaneOptions {
  readonly config: DataPlaneConfig;
  readonly logger: Logger;
  readonly sharedData: SharedDataService;
  readonly sharedQueues: SharedQueueService;
  readonly drainTimeoutMs: number;
  /** Where each listener binds; default its bootstrap address. Workers bind loopback, ephemeral. */
  readonly bindListener?: (config: ListenerConfig) => ListenerConfig;
  /** Named RDS/ECDS subscriptions (the ADS client, once it exists); absent: RDS and ECDS are refused. */
  readonly subscriber?: () => ResourceSubscriber | undefined;
}

export class DataPlane {
  readonly clusterManager: ClusterManager;
  readonly upstreamPools: UpstreamPools;
  readonly redis: RedisPoolManager;
  readonly httpCallout: UndiciHttpCalloutService;
  readonly grpcCallout: GrpcJsCalloutService;
  readonly services: HostServices;
  /** Every plugin loaded for an http filter (inline or ECDS); closed ones drop out of `plugins`. */
  private readonly loaded = new Set<Plugin>();
  /** Non-singleton Wasm services (bootstrap_extensions), one each per data plane. */
  readonly wasmServices: Plugin[] = [];
  /** Plugin code by URL (`code.remote`), by sha256 in memory and on disk. */
  readonly remoteCode: RemoteCodeCache;
  private readonly remote: RemoteCodeDeps;
  /** Static and LDS listeners; the LDS sink. */
  readonly listenerManager: ListenerManager;
  /** The RDS sink. */
  readonly routes: RouteConfigManager;
  /** The ECDS sink. */
  readonly extensions: ExtensionConfigManager;
  /** This worker's VMs: plugins (and services) of one vm key share one (Envoy's thread-local Wasm map). */
  readonly vms = new VmRegistry();
  private stopping: Promise<void> | null = null;

  constructor(private readonly options: DataPlaneOptions) {
    const { config, logger } = options;
    this.clusterManager = new ClusterManager({ logger });
    for (const c of config.staticClusters) this.clusterManager.addOrUpdateCluster(c);
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
    const subscriber = options.subscriber ?? (() => undefined);
    this.remoteCode = new RemoteCodeCache({ logger });
    const remote: RemoteCodeDeps = (this.remote = { http: this.httpCallout, cache: this.remoteCode, logger });
    const loadPlugin = async (f: WasmFilterConfig): Promise<Plugin> => {
      const p = await loadFilterPlugin(f, this.services, logger, this.vms, remote);
      this.loaded.add(p);
      return p;
    };
    this.routes = new RouteConfigManager(subscriber, logger);
    this.extensions = new ExtensionConfigManager(subscriber, loadPlugin, logger);
    this.listenerManager = new ListenerManager({
      pools: this.upstreamPools, logger, node: config.node, routes: this.routes, extensions: this.extensions, loadPlugin,
      parseOptions: { secrets: config.secrets }, drainTimeoutMs: options.drainTimeoutMs,
      ...(options.bindListener ? { bindListener: options.bindListener } : {}),
    });
  }

  /** Plugins of the http filters serving now (inline and ECDS, old ones still finishing streams included). */
  get plugins(): Plugin[] {
    const out: Plugin[] = [];
    for (const p of this.loaded) {
      if (p.isClosed) this.loaded.delete(p);
      else out.push(p);
    }
    return out;
  }

  /** Active listeners: the bootstrap's, then LDS's. */
  get listeners(): HttpListener[] {
    return this.listenerManager.listeners;
  }

  /**
   * Starts the non-singleton Wasm services (Envoy starts bootstrap extensions before listeners), then loads every
   * listener's plugins (in listener order) and starts the listeners. On failure, call stop().
   */
  async start(): Promise<void> {
    const { config, logger } = this.options;
    for (const s of config.wasmServices) this.wasmServices.push(await loadFilterPlugin(s, this.services, logger, this.vms, this.remote));
    await this.listenerManager.startStatic(config.listeners);
  }

  /** The data plane's own counters by full Envoy name: every listener's protocol stats, summed by name. */
  counters(): Record<string, number> {
    return sumCounters([this.listenerManager.counters()]);
  }

  /**
   * Listeners drain in-flight streams, then plugins close, then callouts, Redis and upstream pools. `beforePools`
   * runs between the plugins and the pools (the single-process sidecar closes xDS there). Idempotent.
   */
  stop(beforePools?: () => Promise<void>): Promise<void> {
    this.stopping ??= (async () => {
      const logger = this.options.logger;
      await this.listenerManager.close();
      this.extensions.close();
      for (const p of [...this.plugins, ...this.wasmServices]) {
        try {
          p.close();
        } catch (err) {
          logger.error({ plugin: p.config.name, err: (err as Error).message }, 'plugin close failed');
        }
      }
      await beforePools?.();
      this.remoteCode.close();
      this.httpCallout.close();
      this.grpcCallout.close();
      await this.redis.close();
      await this.upstreamPools.close();
      this.clusterManager.close();
    })();
    return this.stopping;
  }
}
