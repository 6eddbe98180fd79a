import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { LevelWithSilent } from 'pino';
import type { EnvoyLogLevel } from '../observability/log-level';
import type { RedisStats } from '../redis/pool-manager';
import type { TrafficSnapshot } from '../upstream/traffic-stats';
import type { Disposable } from '../common/disposable';
import type { Logger } from '../common/logger';
import type { SidecarConfig } from '../http/listener-config';
import type { SharedDataStore } from '../services/shared-data';
import type { SharedQueueRegistry } from '../services/shared-queue';
import type { ClusterEvent, ClusterManager } from '../upstream/cluster-manager';
import type { Host, HostSpec } from '../upstream/types';
import { ForwardingListener, type ForwardTarget } from './forwarding';
import { createMailboxBuffer, MailboxServer } from './mailbox';
import { WorkerError, type ClusterUpdate, type MainToWorker, type MetricSnapshot, type WorkerInit, type WorkerToMain } from './protocol';

export interface WorkerPoolOptions {
  readonly concurrency: number;
  readonly configFile: string;
  readonly config: SidecarConfig;
  readonly logLevel: LevelWithSilent;
  readonly logger: Logger;
  readonly drainTimeoutMs: number;
  /** The main thread's ClusterManager (fed by the bootstrap and xDS); its events are replayed in every worker. */
  readonly clusterManager: ClusterManager;
  readonly sharedData: SharedDataStore;
  readonly sharedQueues: SharedQueueRegistry;
  /** Worker entry script; default the compiled worker-main.js next to this file. */
  readonly workerScript?: string;
}

/** One worker's plugin metrics, as plain data. */
export interface WorkerMetrics {
  readonly worker: number;
  readonly metrics: readonly MetricSnapshot[];
  /** The worker's own counters by full Envoy name (e.g. `http.<stat_prefix>.downstream_rq_http1_total`). */
  readonly counters?: Readonly<Record<string, number>>;
  readonly traffic?: TrafficSnapshot;
  readonly redis?: RedisStats | undefined;
}

class WorkerHandle implements ForwardTarget {
  active = 0;
  sockets: readonly string[] = [];
  readonly exited: Promise<number>;
  drained = false;
  gone = false;
  constructor(readonly index: number, readonly worker: Worker, readonly mailbox: MailboxServer) {
    this.exited = new Promise((resolve) => worker.once('exit', (code) => {
      this.gone = true;
      resolve(code);
    }));
  }
  post(m: MainToWorker): void {
    this.worker.postMessage(m);
  }
}

function spec(h: Host): HostSpec {
  return { address: h.address, port: h.port, health: h.health, weight: h.weight, priority: h.priority, hostname: h.hostname, locality: h.locality };
}

/** A cluster event as the ClusterSink calls that reproduce it in a worker; undefined if workers derive it themselves. */
export function clusterUpdateOf(e: ClusterEvent): ClusterUpdate | undefined {
  switch (e.type) {
    case 'added':
    case 'updated':
      return { op: 'addOrUpdate', config: e.cluster.config, hosts: e.cluster.hosts.map(spec) };
    case 'membership':
      // EDS membership is an assignment; DNS clusters re-resolve in each worker on their own refresh timer.
      return e.cluster.config.type === 'EDS' ? { op: 'assignment', serviceName: e.cluster.config.edsServiceName, hosts: e.cluster.hosts.map(spec) } : undefined;
    case 'removed':
      return { op: 'remove', name: e.name };
  }
}

/**
 * `--concurrency N` in the main thread: N worker threads, each with its own DataPlane; the public listeners,
 * which forward connections to workers; the cluster-update fan-out; and the shared-state mailboxes.
 */
export class WorkerPool {
  private readonly workers: WorkerHandle[] = [];
  private readonly forwarding: ForwardingListener[] = [];
  private readonly socketDir: string;
  private subscription: Disposable | undefined;
  private pendingUpdates: ClusterUpdate[] = [];
  private flushTimer: NodeJS.Immediate | undefined;
  private metricsWaiters = new Map<number, { pending: Set<number>; results: WorkerMetrics[]; resolve: (r: WorkerMetrics[]) => void; timer: NodeJS.Timeout }>();
  private nextReqId = 1;
  private stopping: Promise<void> | null = null;
  private readonly logger: Logger;

  constructor(private readonly options: WorkerPoolOptions) {
    this.logger = options.logger.child({ component: 'workers' });
    this.socketDir = mkdtempSync(join(tmpdir(), 'pws-workers-'));
  }

  get listeners(): readonly ForwardingListener[] {
    return this.forwarding;
  }

  get size(): number {
    return this.workers.length;
  }

  /** Connections currently forwarded to each worker, by worker index. */
  activeConnections(): number[] {
    return this.workers.map((w) => w.active);
  }

  /** Starts the workers, waits until each serves, then opens the public listeners. On failure, call stop(). */
  async start(): Promise<void> {
    const o = this.options;
    this.subscription = o.clusterManager.onEvent((e) => {
      const u = clusterUpdateOf(e);
      if (u) this.queueUpdate(u);
    });
    // Clusters the control plane delivered before the workers existed (the initial xDS fetch comes first);
    // workers apply them before loading plugins, so proxy_redis_init at configure time finds them.
    for (const cluster of o.clusterManager.activeClusters()) {
      if (cluster.config.addedViaApi) this.queueUpdate(clusterUpdateOf({ type: 'added', cluster })!);
    }
    const script = o.workerScript ?? join(__dirname, 'worker-main.js');
    const ready: Array<Promise<void>> = [];
    for (let i = 0; i < o.concurrency; i++) {
      const sab = createMailboxBuffer();
      const init: WorkerInit = { index: i, configFile: o.configFile, logLevel: o.logLevel, drainTimeoutMs: o.drainTimeoutMs, mailbox: sab, socketDir: this.socketDir };
      const worker = new Worker(script, { workerData: init });
      const mailbox = new MailboxServer(sab, o.sharedData, o.sharedQueues, (token, queueId) => handle.post({ t: 'queue-ready', token, queueId }), this.logger);
      const handle = new WorkerHandle(i, worker, mailbox);
      this.workers.push(handle);
      ready.push(new Promise<void>((resolve, reject) => {
        worker.on('message', (m: WorkerToMain) => {
          switch (m.t) {
            case 'ready':
              handle.sockets = m.sockets;
              resolve();
              break;
            case 'start-failed':
              reject(new WorkerError(`worker ${i} failed to start: ${m.code}: ${m.message}`));
              break;
            default:
              this.onMessage(handle, m);
          }
        });
        worker.once('error', (err) => {
          this.logger.error({ worker: i, err: err.message }, 'worker failed');
          reject(new WorkerError(`worker ${i} failed: ${err.message}`, { cause: err }));
        });
        void handle.exited.then((code) => {
          if (!handle.drained) {
            this.logger.error({ worker: i, code }, 'worker exited unexpectedly');
            reject(new WorkerError(`worker ${i} exited with code ${code}`));
          }
        });
      }));
    }
    await Promise.all(ready);
    for (const [i, l] of o.config.listeners.entries()) {
      const f = new ForwardingListener(l, i, () => this.liveWorkers(), this.logger);
      await f.start();
      this.forwarding.push(f);
    }
  }

  /** Every worker's plugin metrics (a message round trip each); workers that do not answer in `timeoutMs` are left out. */
  collectMetrics(timeoutMs = 2000): Promise<WorkerMetrics[]> {
    const live = this.liveWorkers();
    if (live.length === 0) return Promise.resolve([]);
    const reqId = this.nextReqId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        const w = this.metricsWaiters.get(reqId);
        this.metricsWaiters.delete(reqId);
        resolve(w?.results.sort((a, b) => a.worker - b.worker) ?? []);
      }, timeoutMs);
      this.metricsWaiters.set(reqId, { pending: new Set(live.map((w) => w.index)), results: [], resolve, timer });
      for (const w of live) w.post({ t: 'metrics', reqId });
    });
  }

  /**
   * Stops accepting on the public listeners, tells every worker to drain (in-flight streams finish, plugins and
   * pools close), waits for each to exit (terminating any that outlive the drain timeout by 5 s), then closes the
   * mailboxes and removes the socket directory. Idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.subscription?.dispose();
      if (this.flushTimer) clearImmediate(this.flushTimer);
      await Promise.all(this.forwarding.map((f) => f.close()));
      for (const w of this.workers) w.post({ t: 'drain' });
      const grace = this.options.drainTimeoutMs + 5000;
      await Promise.all(this.workers.map(async (w) => {
        let timer: NodeJS.Timeout | undefined;
        const outcome = await Promise.race([
          w.exited.then(() => 'exited' as const),
          new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), grace); }),
        ]);
        clearTimeout(timer);
        if (outcome === 'timeout') {
          this.logger.warn({ worker: w.index }, 'worker did not exit after draining; terminating');
          w.drained = true;
          await w.worker.terminate();
        }
      }));
      for (const f of this.forwarding) f.destroyConnections();
      for (const w of this.workers) w.mailbox.close();
      for (const m of this.metricsWaiters.values()) {
        clearTimeout(m.timer);
        m.resolve(m.results);
      }
      this.metricsWaiters.clear();
      rmSync(this.socketDir, { recursive: true, force: true });
    })();
    return this.stopping;
  }

  private liveWorkers(): WorkerHandle[] {
    return this.workers.filter((w) => !w.drained && !w.gone && w.sockets.length > 0);
  }

  private onMessage(w: WorkerHandle, m: WorkerToMain): void {
    switch (m.t) {
      case 'queue-unregister':
        w.mailbox.unregister(m.token);
        break;
      case 'metrics': {
        const waiter = this.metricsWaiters.get(m.reqId);
        if (!waiter) return;
        waiter.results.push({ worker: w.index, metrics: m.metrics, counters: m.counters, traffic: m.traffic, redis: m.redis });
        waiter.pending.delete(w.index);
        if (waiter.pending.size === 0) {
          clearTimeout(waiter.timer);
          this.metricsWaiters.delete(m.reqId);
          waiter.resolve(waiter.results.sort((a, b) => a.worker - b.worker));
        }
        break;
      }
      case 'drained':
        w.drained = true;
        break;
      default:
        break;
    }
  }

  /** Every worker's loggers (and so its plugins' proxy_get_log_level) follow `level` from now on. */
  setLogLevel(level: EnvoyLogLevel): void {
    for (const w of this.workers) w.post({ t: 'log-level', level });
  }

  /** Cluster updates go out in order, batched per event-loop turn (a CDS push of many clusters is one message). */
  private queueUpdate(u: ClusterUpdate): void {
    this.pendingUpdates.push(u);
    this.flushTimer ??= setImmediate(() => {
      this.flushTimer = undefined;
      const updates = this.pendingUpdates;
      this.pendingUpdates = [];
      for (const w of this.workers) w.post({ t: 'clusters', updates });
    });
  }
}
