import type { WorkerPoolStatus } from '../workers/worker-pool';
/**
 * What the admin endpoint reads. The composition root (main.ts) builds one AdminSources from the objects it owns
 * and passes it to AdminServer; the admin only reads snapshots through these views (STYLE.md §2: admin/ is a
 * read-only view of xds/, upstream/, redis/, runtime/), except for the log level, which /logging changes.
 * Each view is structural, so tests pass the real objects (ClusterManager, AdsClient, RedisPoolManager,
 * MetricsRegistry) and main.ts passes the same.
 */
import type { Disposable } from '../common/disposable';
import type { RedisStats } from '../redis/pool-manager';
import type { TrafficSnapshot } from '../upstream/traffic-stats';
import type { PluginMetric } from '../services/metrics';
import type { ClusterEvent, LiveCluster } from '../upstream/cluster-manager';
import type { ClusterConfig } from '../upstream/types';
import type { XdsStatus } from '../xds/status';
import type { TagProducer } from '../observability/tag-extractor';
import type { HistogramBuckets, StatsMatcher } from '../observability/stats-matcher';

/** Envoy `envoy.admin.v3.ServerInfo.State`. /ready answers 200 only in LIVE. */
export type ServerState = 'LIVE' | 'DRAINING' | 'PRE_INITIALIZING' | 'INITIALIZING';

export const SERVER_STATES: readonly ServerState[] = ['LIVE', 'DRAINING', 'PRE_INITIALIZING', 'INITIALIZING'];

/** Envoy's log levels; /logging?level= also accepts `warn` as an alias of `warning`. */
export { ENVOY_LOG_LEVELS, type EnvoyLogLevel } from '../observability/log-level';
import type { EnvoyLogLevel } from '../observability/log-level';

/** JSON as the admin renders it. */
export type AdminJson = null | boolean | number | string | readonly AdminJson[] | { readonly [key: string]: AdminJson };
export type AdminJsonObject = { readonly [key: string]: AdminJson };

/** The cluster manager as the admin sees it (ClusterManager satisfies this). */
export interface ClusterSource {
  activeClusters(): Iterable<LiveCluster>;
  warming(): Iterable<ClusterConfig>;
  onEvent(listener: (event: ClusterEvent) => void): Disposable;
}

/** The xDS client as the admin sees it (AdsClient satisfies this). */
export interface XdsSource {
  status(): XdsStatus;
}

/** One version of a dynamic listener, route configuration or extension config, as proto3 JSON. */
export interface DynamicResourceView {
  readonly version: string;
  readonly resource: Readonly<Record<string, unknown>>;
  readonly lastUpdated: Date;
}

/** A dynamic (LDS) listener in each of Envoy's states, and its last rejected update. */
export interface DynamicListenerView {
  readonly name: string;
  readonly active?: DynamicResourceView;
  readonly warming?: DynamicResourceView;
  readonly draining?: DynamicResourceView;
  readonly error?: { readonly details: string; readonly version: string; readonly at: Date; readonly resource: Readonly<Record<string, unknown>> };
}

/** The listener, RDS and ECDS managers as the admin sees them (main.ts builds this from the data plane's). */
export interface ListenerSource {
  /** Listeners serving now (static and LDS): /listeners. */
  activeListeners(): readonly { readonly name: string; readonly address: string; readonly port: number }[];
  dynamicListeners(): readonly DynamicListenerView[];
  routeConfigs(): readonly (DynamicResourceView & { readonly name: string })[];
  extensionConfigs(): readonly (DynamicResourceView & { readonly name: string })[];
}

/** Redis pool statistics (RedisPoolManager satisfies this). Never carries credentials. */
export interface RedisStatsSource {
  stats(): RedisStats;
}

/** Plugin-defined metrics (MetricsRegistry satisfies this). */
export interface PluginMetricsSource {
  all(): readonly PluginMetric[];
}

/** One loaded plugin, for /plugins and the wasm stats. */
export interface PluginInfo {
  readonly name: string;
  readonly rootId: string;
  readonly vmId: string;
  /** The ABI version the module exports, e.g. `0_2_1` or `0_2_100`. */
  readonly abi: string;
  /** True when the VM failed and the plugin cannot serve (its failure policy applies). */
  readonly failed: boolean;
  /**
   * The VM instance the plugin runs on (an opaque identity): plugins of one vm key share one, so the
   * `wasm.envoy.wasm.runtime.v8.active` gauge counts distinct VMs. Absent: the plugin counts as its own VM.
   */
  readonly vm?: object;
}

export interface AdminSources {
  /** Server state: PRE_INITIALIZING until main starts the init sequence, INITIALIZING until xDS is ready, LIVE, DRAINING on shutdown. */
  state(): ServerState;
  /** The bootstrap as canonical proto3 JSON (`Bootstrap.json`). Secrets in it are redacted on output. */
  readonly bootstrap: AdminJsonObject;
  readonly clusterManager: ClusterSource;
  /** Absent when the bootstrap has no ADS. */
  readonly ads?: XdsSource | undefined;
  /** Absent when Redis pools are not in use. */
  readonly redis?: RedisStatsSource | undefined;
  /** Listeners, route configurations and extension configs; absent: the bootstrap's static listeners only. */
  readonly listeners?: ListenerSource | undefined;
  readonly metrics: PluginMetricsSource;
  /** Tag extraction from the bootstrap's stats_config; absent: Envoy's default tags. */
  readonly tagProducer?: TagProducer | undefined;
  /** Which stats exist (stats_config.stats_matcher); absent: every one. */
  readonly statsMatcher?: StatsMatcher | undefined;
  /** Prometheus histogram buckets (stats_config.histogram_bucket_settings); absent: Envoy's defaults. */
  readonly histogramBuckets?: HistogramBuckets | undefined;
  plugins(): readonly PluginInfo[];
  /** Worker threads (--concurrency > 1): how many serve and how many are being restarted; absent: no workers. */
  workers?(): WorkerPoolStatus;
  /** The data plane's own counters by full Envoy name (listener protocol stats); absent: none. */
  counters?(): Readonly<Record<string, number>>;
  /** Routed HTTP requests per cluster and host (every worker's, summed); absent: none. */
  traffic?(): TrafficSnapshot;
  /** `envoy.admin.v3.CommandLineOptions` fields (snake_case), as the CLI parsed them. */
  readonly commandLineOptions: AdminJsonObject;
  readonly startTime: Date;
  /** Defaults to `<package version>/Clean/RELEASE/node-<version>` in Envoy's version-string shape. */
  readonly version?: string | undefined;
  getLogLevel(): EnvoyLogLevel;
  setLogLevel(level: EnvoyLogLevel): void;
  /** Named loggers to list under `active loggers:` (default: one line, `sidecar: <level>`). */
  loggers?(): ReadonlyMap<string, EnvoyLogLevel>;
}
