import type { LevelWithSilent } from 'pino';
import type { MetricType } from '../abi/enums';
import type { EnvoyLogLevel } from '../observability/log-level';
import type { RedisStats } from '../redis/pool-manager';
import type { TrafficSnapshot } from '../upstream/traffic-stats';
import { SidecarError } from '../common/errors';
import type { ModuleSource, SharedModule } from '../wasm/module-cache';
import type { DataPlaneConfig } from './data-plane';
import type { ClusterConfig, HostSpec } from '../upstream/types';

/**
 * Messages between the main thread and its workers. Everything is plain, structured-clonable data: the main
 * thread posts immutable snapshots (cluster configs, host lists) and never shares mutable objects, except the
 * shared-state mailbox (a SharedArrayBuffer, see mailbox.ts).
 */

export class WorkerError extends SidecarError {
  override name = 'WorkerError';
  override readonly code = 'PWS_ERR_WORKER';
}

/** `workerData` of every worker. */
export interface WorkerInit {
  readonly index: number;
  /** The worker's configuration, parsed and validated by the main thread (the worker reads no bootstrap file). */
  readonly plane: DataPlaneConfig;
  /** Plugin code the main thread compiled: the worker's ModuleCache adopts it instead of compiling it again. */
  readonly modules: readonly SharedModule[];
  readonly logLevel: LevelWithSilent;
  readonly drainTimeoutMs: number;
  readonly mailbox: SharedArrayBuffer;
  /** The unix socket (in a private 0700 directory) that sends this worker its listening sockets (shared-socket.ts). */
  readonly handlePath: string;
}

/** A cluster change as the main ClusterManager saw it, re-expressed as ClusterSink calls. */
export type ClusterUpdate =
  | { readonly op: 'addOrUpdate'; readonly config: ClusterConfig; readonly hosts: readonly HostSpec[] }
  | { readonly op: 'assignment'; readonly serviceName: string; readonly hosts: readonly HostSpec[] }
  | { readonly op: 'remove'; readonly name: string };

export interface MetricSnapshot {
  readonly id: number;
  readonly type: MetricType;
  readonly name: string;
  readonly value: bigint;
  readonly count: number;
  readonly sum: bigint;
  readonly samples: readonly bigint[];
}

export type MainToWorker =
  | { readonly t: 'clusters'; readonly updates: readonly ClusterUpdate[] }
  | { readonly t: 'queue-ready'; readonly token: number; readonly queueId: number }
  | { readonly t: 'metrics'; readonly reqId: number }
  /** The admin's POST /logging?level=: every logger of the worker follows the main thread's. */
  | { readonly t: 'log-level'; readonly level: EnvoyLogLevel }
  | { readonly t: 'drain' }
  /** Test hook (WorkerPool.crashWorker): the worker dies the way a bug would kill it. */
  | { readonly t: 'crash'; readonly how: 'throw' | 'exit' };

/** Where one worker's start went (the epoch ms at which each phase ended, see start-clock.ts) and what it loaded. */
export interface WorkerStartReport {
  /** The worker's first module running: the thread is up. */
  readonly threadStartedAt: number;
  /** The worker's modules required and its entry script running. */
  readonly requiredAt: number;
  /** The data plane built from the posted configuration. */
  readonly configuredAt: number;
  /** Wasm services and listener plugins loaded and started. */
  readonly pluginsAt: number;
  /** Accepting on every public listener. */
  readonly listeningAt: number;
  /** The worker's ModuleCache by source: all 'shared' when no module was compiled twice. */
  readonly modules: Readonly<Record<ModuleSource, number>>;
  /** The worker thread's own CPU time in the phases after the thread is up, ms (start-clock.ts; absent where the OS gives none). */
  readonly cpu?: { readonly requireMs: number; readonly configMs: number; readonly pluginsMs: number; readonly listenMs: number };
}

export type WorkerToMain =
  /** Started: plugins loaded, accepting on every public listener. */
  | { readonly t: 'ready'; readonly report: WorkerStartReport }
  | { readonly t: 'start-failed'; readonly message: string; readonly code: string }
  | { readonly t: 'queue-unregister'; readonly token: number }
  /** Plugin metrics, and the data plane's own counters by full Envoy name (listener protocol stats). */
  | {
      readonly t: 'metrics';
      readonly reqId: number;
      readonly metrics: readonly MetricSnapshot[];
      readonly counters: Readonly<Record<string, number>>;
      /** The worker's routed HTTP requests and its Redis pools' counters: summed by the main thread for the admin. */
      readonly traffic: TrafficSnapshot;
      readonly redis: RedisStats | undefined;
    }
  | { readonly t: 'drained' };
