import type { LevelWithSilent } from 'pino';
import type { HostServices } from './abi/host-services';
import { adsClientOptions } from './config/bootstrap';
import { createLogger, type Logger } from './common/logger';
import { ConfigError, SidecarError } from './common/errors';
import type { ListenerManager } from './listener/listener-manager';
import type { ResourceSubscriber } from './xds/resource-sink';
import type { UndiciHttpCalloutService } from './http/http-callout';
import type { HttpListener } from './http/listener';
import { loadSidecarConfig, type ListenerConfig, type SidecarConfig } from './http/listener-config';
import type { UpstreamPools } from './http/upstream-pools';
import type { RedisPoolManager } from './redis/pool-manager';
import { VmRegistry, type Plugin } from './runtime/plugin';
import { MetricsRegistry } from './services/metrics';
import { SharedDataStore } from './services/shared-data';
import { SharedQueueRegistry } from './services/shared-queue';
import { ClusterManager } from './upstream/cluster-manager';
import { DataPlane, loadFilterPlugin } from './workers/data-plane';
import { parseWasmServices } from './workers/wasm-services';
import { compileForWorkers, dataPlaneConfig } from './workers/plane-config';
import { WorkerPool, type WorkerMetrics } from './workers/worker-pool';
import { AdsClient } from './xds/ads-client';
import { AdminServer } from './admin/admin-server';
import type { AdminJsonObject, AdminSources, ServerState } from './admin/sources';
import { LogLevelControl, proxyLogLevel } from './observability/log-level';
import { WorkerMetricsView } from './workers/metrics-view';

export { loadFilterPlugin } from './workers/data-plane';
export type { WorkerMetrics } from './workers/worker-pool';

/**
 * The composition root: builds every object from a bootstrap, wires subscriptions, and owns the shutdown order
 * (STYLE.md §3.10): stop intake (listeners drain in-flight streams), then plugin VMs, then xDS, then pools.
 *
 * Plugin order: http_filters run in listener order, as Envoy runs them. Higress sorts WasmPlugin CRDs by phase
 * (AUTHN, AUTHZ, STATS, unspecified) and priority before it emits the listener; a bootstrap written by hand
 * states the order directly.
 *
 * Concurrency 1 (the default) runs one DataPlane in this thread, with no forwarding. Concurrency N > 1 runs
 * Envoy's threading model on worker_threads: this thread owns the bootstrap, xDS, the authoritative
 * ClusterManager, the public listeners and the one store of shared data and queues; it parses the bootstrap
 * and compiles the plugins once. Each of N workers owns a DataPlane (its own ClusterManager, Redis and upstream
 * pools, plugin VMs) built from that parsed configuration and those compiled modules (workerData), gets cluster
 * updates as messages, shared state through a synchronous SharedArrayBuffer mailbox, and accepts client
 * connections on the public listeners' sockets itself.
 */

export type SidecarState = 'starting' | 'running' | 'draining' | 'stopped';

export interface SidecarOptions {
  readonly configFile: string;
  readonly logLevel?: LevelWithSilent;
  readonly logger?: Logger;
  /** How long SIGTERM waits for in-flight streams. */
  readonly drainTimeoutMs?: number;
  /** Worker threads (Envoy's --concurrency); default 1 (no workers: everything in this thread). */
  readonly concurrency?: number;
  /** Shown by /server_info as command_line_options. */
  readonly commandLineOptions?: AdminJsonObject;
}

/** A public listener: the HttpListener itself (concurrency 1) or the forwarding front of the workers' listeners. */
export interface SidecarListener {
  readonly config: ListenerConfig;
  /** The bound port (useful with port_value 0). */
  readonly port: number;
  readonly closed: boolean;
}


/**
 * With workers, LDS, RDS and ECDS are refused at start until listener updates reach each worker (the managers
 * live in each worker's DataPlane; see the worker message seam in src/workers/): never accepted and ignored.
 */
function refuseDynamicListenersWithWorkers(config: SidecarConfig, lds: boolean): void {
  if (lds) throw new ConfigError('LDS is not supported with --concurrency > 1 yet (listener updates do not reach the workers); run with --concurrency 1', 'dynamic_resources.lds_config');
  config.listeners.forEach((l) => [...l.filterChains, ...(l.defaultFilterChain ? [l.defaultFilterChain] : [])].forEach((c) => {
    if (c.network.kind !== 'http') return;
    const hcm = c.network.hcm;
    if (hcm.routes.kind === 'rds') throw new ConfigError('RDS is not supported with --concurrency > 1 yet; give route_config inline or run with --concurrency 1', `${c.path}.filters[0].typed_config.rds`);
    for (const f of hcm.httpFilters) {
      if (f.type === 'ecds') throw new ConfigError('ECDS is not supported with --concurrency > 1 yet; run with --concurrency 1', `${f.path}.config_discovery`);
    }
  }));
}

/** A running sidecar. Admin (another module) reads its parts through the getters. */
export class Sidecar {
  private currentState: SidecarState = 'starting';
  private stopping: Promise<void> | null = null;
  private ads: AdsClient | undefined;
  private adminServer: AdminServer | undefined;
  private metricsView: WorkerMetricsView | undefined;
  /** Envoy's server state for /ready: INITIALIZING until the initial xDS fetch is done and listeners serve. */
  private serverState: ServerState = 'PRE_INITIALIZING';
  /** Singleton Wasm services (bootstrap_extensions with `singleton: true`): Envoy runs them on the main thread. */
  private readonly singletons: Plugin[] = [];
  /** The main thread's VMs, apart from any data plane's (Envoy's singleton VMs are not the workers' VMs). */
  private readonly mainVms = new VmRegistry();

  private constructor(
    readonly config: SidecarConfig,
    readonly logger: Logger,
    /** The authoritative clusters (bootstrap + xDS). With workers, each worker's own follows this one. */
    readonly clusterManager: ClusterManager,
    /** Shared data and queues are the one store (in every mode); metrics are this thread's (see workerMetrics()). */
    readonly services: HostServices,
    private readonly plane: DataPlane | undefined,
    private readonly pool: WorkerPool | undefined,
  ) {}

  get state(): SidecarState {
    return this.currentState;
  }

  /** Worker threads serving traffic; 1 means the single-process data plane (no workers). */
  get concurrency(): number {
    return this.pool?.size ?? 1;
  }

  /** Plugins of this thread's data plane; empty with workers (each worker loads its own). */
  get plugins(): readonly Plugin[] {
    return this.plane?.plugins ?? [];
  }

  /** Singleton Wasm services, running in this thread. Non-singleton ones run in each data plane. */
  get wasmServices(): readonly Plugin[] {
    return [...this.singletons, ...(this.plane?.wasmServices ?? [])];
  }

  /** This thread's HTTP listeners; empty with workers (each worker serves on its own). */
  get listeners(): readonly HttpListener[] {
    return this.plane?.listeners ?? [];
  }

  /** What clients connect to, in every mode: the HttpListeners, or with workers the forwarding listeners. */
  get publicListeners(): readonly SidecarListener[] {
    return this.plane?.listeners ?? this.pool?.listeners ?? [];
  }

  /** This thread's pools; undefined with workers (each worker owns its pools, as Envoy's thread-local clusters do). */
  get redis(): RedisPoolManager | undefined {
    return this.plane?.redis;
  }

  get upstreamPools(): UpstreamPools | undefined {
    return this.plane?.upstreamPools;
  }

  get httpCallout(): UndiciHttpCalloutService | undefined {
    return this.plane?.httpCallout;
  }

  /** Static and LDS listeners of this thread's data plane; undefined with workers. */
  get listenerManager(): ListenerManager | undefined {
    return this.plane?.listenerManager;
  }

  get adsClient(): AdsClient | undefined {
    return this.ads;
  }

  /** The admin endpoint, when the bootstrap has `admin`. */
  get admin(): AdminServer | undefined {
    return this.adminServer;
  }

  /**
   * Plugin-defined metrics per worker, as plain data (with workers: one message round trip each; a worker that
   * does not answer within `timeoutMs` is left out). Concurrency 1 reports this thread as worker 0. Totals are
   * the caller's sum by (type, name).
   */
  async workerMetrics(timeoutMs = 2000): Promise<WorkerMetrics[]> {
    if (this.pool) return this.pool.collectMetrics(timeoutMs);
    const metrics = this.services.metrics.all().map((x) => ({ id: x.id, type: x.type, name: x.name, value: x.value, count: x.count, sum: x.sum, samples: [...x.samples] }));
    return [{ worker: 0, metrics, counters: this.plane?.counters() ?? {} }];
  }

  static async start(options: SidecarOptions): Promise<Sidecar> {
    const level: LevelWithSilent = options.logLevel ?? (options.logger?.level as LevelWithSilent | undefined) ?? 'info';
    const logger = options.logger ?? createLogger(level);
    // Before any child logger exists, so /logging?level= reaches every component's logger.
    const levels = new LogLevelControl(logger);
    const config = loadSidecarConfig(options.configFile);
    const drainTimeoutMs = options.drainTimeoutMs ?? 10_000;
    const concurrency = options.concurrency ?? 1;
    const sharedData = new SharedDataStore();
    const sharedQueues = new SharedQueueRegistry();
    const lds = config.lds;
    let sidecar: Sidecar;
    // The ADS client is created after the data plane it feeds; its RDS/ECDS watches are made through this.
    let subscriber: ResourceSubscriber | undefined;
    if (concurrency <= 1) {
      const plane = new DataPlane({ config: dataPlaneConfig(config), logger, sharedData, sharedQueues, drainTimeoutMs, subscriber: () => subscriber });
      sidecar = new Sidecar(config, logger, plane.clusterManager, plane.services, plane, undefined);
    } else {
      refuseDynamicListenersWithWorkers(config, lds !== undefined);
      const clusterManager = new ClusterManager({ logger });
      for (const c of config.bootstrap.staticClusters) clusterManager.addOrUpdateCluster(c);
      const services: HostServices = {
        sharedData,
        sharedQueues,
        metrics: new MetricsRegistry(),
        logLevel: () => proxyLogLevel(logger.level),
      };
      // Parsed and compiled once, here: workers start from this plain data and adopt these modules.
      const plane = dataPlaneConfig(config, true);
      const modules = await compileForWorkers(plane, logger);
      const pool = new WorkerPool({
        concurrency, plane, modules, logLevel: level, logger, drainTimeoutMs, clusterManager, sharedData, sharedQueues,
      });
      sidecar = new Sidecar(config, logger, clusterManager, services, undefined, pool);
    }
    try {
      // Envoy's order: admin first (so /ready answers 503 while initializing), then the initial xDS fetch (CDS,
      // then EDS for the clusters it names; bounded by initial_fetch_timeout), then plugins and listeners, so a
      // plugin's proxy_redis_init at configure time finds the clusters the control plane serves.
      if (config.bootstrap.admin) await sidecar.startAdmin(config.bootstrap.admin, levels, options.commandLineOptions ?? { config_path: options.configFile, concurrency });
      sidecar.serverState = 'INITIALIZING';
      if (config.bootstrap.ads) {
        const plane = sidecar.plane;
        sidecar.ads = new AdsClient({
          ...adsClientOptions(config.bootstrap, sidecar.clusterManager),
          logger,
          ...(lds ? { lds } : {}),
          ...(plane ? { sinks: { listeners: plane.listenerManager, routes: plane.routes, extensionConfigs: plane.extensions } } : {}),
        });
        subscriber = sidecar.ads;
        sidecar.ads.start();
        await Promise.race([sidecar.ads.initialized, sidecar.whenStopping()]);
      }
      if (sidecar.stopping) throw new SidecarError('stopped while waiting for the initial xDS configuration');
      await sidecar.startSingletons();
      await sidecar.plane?.start();
      // Envoy goes LIVE once the listeners the initial fetch delivered have warmed.
      await sidecar.plane?.listenerManager.settled();
      await sidecar.pool?.start();
    } catch (err) {
      await sidecar.stop();
      throw err;
    }
    sidecar.currentState = 'running';
    sidecar.serverState = 'LIVE';
    return sidecar;
  }

  /**
   * Envoy starts bootstrap extensions once the server is initialized (after the initial xDS fetch), singletons on
   * the main thread with its services (with workers: shared data, queues and metrics, no Redis or callouts).
   */
  private async startSingletons(): Promise<void> {
    for (const s of parseWasmServices(this.config.bootstrap.wasmServices)) {
      if (s.singleton) this.singletons.push(await loadFilterPlugin(s.plugin, this.services, this.logger, this.mainVms));
    }
  }

  private closeSingletons(): void {
    for (const p of this.singletons.splice(0)) {
      try {
        p.close();
      } catch (err) {
        this.logger.error({ plugin: p.config.name, err: (err as Error).message }, 'wasm service close failed');
      }
    }
  }

  private stopRequested: (() => void) | undefined;
  private readonly stopSignal = new Promise<void>((resolve) => (this.stopRequested = resolve));

  private whenStopping(): Promise<void> {
    return this.stopSignal;
  }

  private async startAdmin(address: { address: string; port: number }, levels: LogLevelControl, commandLineOptions: AdminJsonObject): Promise<void> {
    const self = this;
    const sources: AdminSources = {
      state: () => self.serverState,
      bootstrap: self.config.bootstrap.json as AdminJsonObject,
      clusterManager: self.clusterManager,
      // Getters: the ADS client and this thread's Redis pools come to exist after the admin starts.
      get ads() {
        return self.ads;
      },
      // With workers, every worker has pools of its own: the admin reads their sum (the view below).
      get redis() {
        const view = self.metricsView;
        return self.redis ?? (view ? { stats: () => view.redis() ?? { clusters: [], pools: [] } } : undefined);
      },
      // With workers, only the public (static) listeners: LDS/RDS/ECDS are refused there.
      listeners: {
        activeListeners: () => self.publicListeners.map((l) => ({ name: l.config.name, address: l.config.address, port: l.port })),
        dynamicListeners: () => self.plane?.listenerManager.dump() ?? [],
        routeConfigs: () => self.plane?.routes.dump() ?? [],
        extensionConfigs: () => self.plane?.extensions.dump() ?? [],
      },
      traffic: () => self.metricsView?.traffic() ?? self.plane?.upstreamPools.traffic.snapshot() ?? {},
      // With workers, plugin metrics live in each worker: the admin reads their sum, refreshed every second.
      metrics: self.pool ? (self.metricsView = new WorkerMetricsView(() => self.workerMetrics(), self.logger)) : self.services.metrics,
      tagProducer: self.config.bootstrap.tagProducer,
      statsMatcher: self.config.bootstrap.statsMatcher,
      histogramBuckets: self.config.bootstrap.histogramBuckets,
      // With workers, their listeners' counters arrive with the plugin metrics (the view above).
      counters: () => self.metricsView?.counters() ?? self.plane?.counters() ?? {},
      ...(self.pool ? { workers: () => self.pool!.status() } : {}),
      plugins: () => [...self.plugins, ...self.wasmServices].map((p) => ({ name: p.config.name, rootId: p.config.rootId, vmId: p.config.vmId, abi: p.abi, failed: p.failed !== undefined, vm: p.vm })),
      commandLineOptions,
      startTime: new Date(),
      getLogLevel: () => levels.get(),
      setLogLevel: (l) => {
        levels.set(l);
        // Workers have loggers of their own: tell them too, or their plugins keep the old level.
        self.pool?.setLogLevel(l);
      },
    };
    this.adminServer = new AdminServer({ address: address.address, port: address.port, logger: this.logger }, sources);
    await this.adminServer.start();
  }

  /**
   * Graceful stop, idempotent. Concurrency 1: listeners drain, then plugins, xDS, callouts, Redis and upstream
   * pools close. With workers: the public listeners stop accepting, every worker drains its data plane the same
   * way and exits, then xDS and the main ClusterManager close.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.stopRequested?.();
      this.currentState = 'draining';
      this.serverState = 'DRAINING';
      if (this.plane) {
        await this.plane.stop(async () => {
          this.closeSingletons();
          await this.ads?.close();
        });
      } else {
        await this.pool?.stop();
        this.closeSingletons();
        await this.ads?.close();
        this.clusterManager.close();
      }
      this.metricsView?.close();
      await this.adminServer?.close();
      this.currentState = 'stopped';
      this.logger.info('sidecar stopped');
    })();
    return this.stopping;
  }
}
