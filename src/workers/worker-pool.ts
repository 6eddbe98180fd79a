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
import type { SharedModule } from '../wasm/module-cache';
import type { DataPlaneConfig } from './data-plane';
import type { SharedDataStore } from '../services/shared-data';
import type { SharedQueueRegistry } from '../services/shared-queue';
import type { ClusterEvent, ClusterManager } from '../upstream/cluster-manager';
import type { Host, HostSpec } from '../upstream/types';
import { HandleOffer, SharedListenSocket } from './shared-socket';
import { epochNow } from './start-clock';
import { createMailboxBuffer, MailboxServer } from './mailbox';
import { WorkerError, type ClusterUpdate, type MainToWorker, type MetricSnapshot, type WorkerInit, type WorkerStartReport, type WorkerToMain } from './protocol';

export interface WorkerPoolOptions {
  readonly concurrency: number;
  /** Every worker's configuration (plain data, see plane-config.ts); its listeners are the public ones bound here. */
  readonly plane: DataPlaneConfig;
  /** Plugin modules compiled in this thread, for every worker to adopt (plane-config.ts compileForWorkers). */
  readonly modules: readonly SharedModule[];
  readonly logLevel: LevelWithSilent;
  readonly logger: Logger;
  readonly drainTimeoutMs: number;
  /** The main thread's ClusterManager (fed by the bootstrap and xDS); its events are replayed in every worker. */
  readonly clusterManager: ClusterManager;
  readonly sharedData: SharedDataStore;
  readonly sharedQueues: SharedQueueRegistry;
  /** Worker entry script; default the compiled worker-main.js next to this file. */
  readonly workerScript?: string;
  /** Restart backoff of a worker that died: base * 2^(consecutive failures), capped. Default 250 ms, 30 s. */
  readonly restartBackoff?: { readonly baseMs: number; readonly maxMs: number };
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

/** One start of a worker thread in a slot; a restart makes a new one. */
class WorkerRun {
  readonly exited: Promise<number>;
  /** Serving: plugins loaded and accepting on every listener. */
  ready = false;
  /** The worker's own account of its start (with `ready`). */
  report: WorkerStartReport | undefined;
  drained = false;
  gone = false;
  readonly startedAt = Date.now();
  constructor(readonly index: number, readonly worker: Worker, readonly mailbox: MailboxServer, readonly offer: HandleOffer) {
    this.exited = new Promise((resolve) => worker.once('exit', (code) => {
      this.gone = true;
      resolve(code);
    }));
  }
  post(m: MainToWorker): void {
    if (!this.gone) this.worker.postMessage(m);
  }
}

/** A worker slot: its current run, and the restarts it has needed. */
interface Slot {
  readonly index: number;
  run: WorkerRun | undefined;
  /** Consecutive failed runs (reset by a run that lives past the backoff cap): the next restart waits base * 2^n. */
  failures: number;
  restartTimer: NodeJS.Timeout | undefined;
  /** Died and not serving again yet. */
  down: boolean;
}

/** What /ready and the stats report about the workers (issue 14 item 4). */
export interface WorkerPoolStatus {
  /** --concurrency. */
  readonly concurrency: number;
  /** Workers serving now. */
  readonly live: number;
  /** Workers that died and are waiting for, or in, their restart. */
  readonly restarting: number;
  /** Restarts since the start (counter). */
  readonly restarts: number;
}

function spec(h: Host): HostSpec {
  return { address: h.address, port: h.port, health: h.health, weight: h.weight, priority: h.priority, hostname: h.hostname, locality: h.locality };
}

/** A worker's start by phase, in ms each (thread start is from the spawn to its first line running). */
function startPhases(spawnedAt: number, r: WorkerStartReport): Record<string, number | Readonly<Record<string, number>>> {
  const round = (x: number): number => Math.round(x * 10) / 10;
  return {
    threadMs: round(r.threadStartedAt - spawnedAt),
    requireMs: round(r.requiredAt - r.threadStartedAt),
    configMs: round(r.configuredAt - r.requiredAt),
    pluginsMs: round(r.pluginsAt - r.configuredAt),
    listenMs: round(r.listeningAt - r.pluginsAt),
    modules: r.modules,
    ...(r.cpu ? { cpuMs: Object.fromEntries(Object.entries(r.cpu).map(([k, v]) => [k, round(v)])) } : {}),
  };
}

/** The wait before restarting a worker that has died `failures` times in a row: base * 2^failures, at most max. */
export function restartDelayMs(failures: number, baseMs: number, maxMs: number): number {
  return Math.min(baseMs * 2 ** Math.min(failures, 30), maxMs);
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
 * `--concurrency N` in the main thread: N worker threads, each with its own DataPlane, accepting on the public
 * listeners' sockets that this thread binds (shared-socket.ts); the cluster-update fan-out; the shared-state
 * mailboxes; and the supervision that restarts a worker that dies (exponential backoff with a cap), while the
 * others keep serving: a dead worker does not accept, so the kernel gives its share of connections to the rest.
 */
export class WorkerPool {
  private readonly slots: Slot[] = [];
  private readonly sockets: SharedListenSocket[] = [];
  private readonly socketDir: string;
  private subscription: Disposable | undefined;
  private pendingUpdates: ClusterUpdate[] = [];
  private flushTimer: NodeJS.Immediate | undefined;
  private metricsWaiters = new Map<number, { pending: Set<number>; results: WorkerMetrics[]; resolve: (r: WorkerMetrics[]) => void; timer: NodeJS.Timeout }>();
  private nextReqId = 1;
  private nextRunId = 0;
  private restartCount = 0;
  private stopping: Promise<void> | null = null;
  private readonly logger: Logger;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;

  constructor(private readonly options: WorkerPoolOptions) {
    this.logger = options.logger.child({ component: 'workers' });
    this.socketDir = mkdtempSync(join(tmpdir(), 'pws-workers-'));
    this.backoffBaseMs = options.restartBackoff?.baseMs ?? 250;
    this.backoffMaxMs = options.restartBackoff?.maxMs ?? 30_000;
  }

  /** The public listeners (their sockets; the workers accept on them). */
  get listeners(): readonly SharedListenSocket[] {
    return this.sockets;
  }

  get size(): number {
    return this.options.concurrency;
  }

  /** Each serving worker's account of its start, by worker index (undefined: not serving). */
  startReports(): (WorkerStartReport | undefined)[] {
    return this.slots.map((s) => (s.run?.ready ? s.run.report : undefined));
  }

  status(): WorkerPoolStatus {
    const restarting = this.stopping ? 0 : this.slots.filter((s) => s.down).length;
    return { concurrency: this.options.concurrency, live: this.liveRuns().length, restarting, restarts: this.restartCount };
  }

  /**
   * Binds the public listeners, starts the workers and waits until each serves. A worker that fails to start
   * here fails the start (the configuration is the same in every worker). On failure, call stop().
   */
  async start(): Promise<void> {
    const o = this.options;
    for (const l of o.plane.listeners) this.sockets.push(new SharedListenSocket(l));
    this.subscription = o.clusterManager.onEvent((e) => {
      const u = clusterUpdateOf(e);
      if (u) this.queueUpdate(u);
    });
    for (let i = 0; i < o.concurrency; i++) this.slots.push({ index: i, run: undefined, failures: 0, restartTimer: undefined, down: false });
    await Promise.all(this.slots.map((slot) => this.startRun(slot, true)));
  }

  /**
   * Test hook (and an operator's last resort): kills worker `index` the way a bug would (an uncaught exception,
   * process.exit in the worker) or terminates it; the pool restarts it. Resolves once it is gone.
   */
  async crashWorker(index: number, how: 'throw' | 'exit' | 'terminate'): Promise<void> {
    const run = this.slots[index]?.run;
    if (!run || run.gone) return;
    if (how === 'terminate') await run.worker.terminate();
    else run.post({ t: 'crash', how });
    await run.exited;
  }

  /** Starts a run in `slot`; resolves when it serves, rejects if it dies before. */
  private startRun(slot: Slot, initial: boolean): Promise<void> {
    const o = this.options;
    const runId = this.nextRunId++;
    const sab = createMailboxBuffer();
    const offer = new HandleOffer(join(this.socketDir, `h${runId}.sock`), this.sockets);
    const init: WorkerInit = {
      index: slot.index, plane: o.plane, modules: o.modules, logLevel: o.logLevel, drainTimeoutMs: o.drainTimeoutMs, mailbox: sab, handlePath: offer.path,
    };
    const script = o.workerScript ?? join(__dirname, 'worker-main.js');
    return offer.listen().then(() => new Promise<void>((resolve, reject) => {
      const t0 = epochNow();
      const worker = new Worker(script, { workerData: init });
      const mailbox = new MailboxServer(sab, o.sharedData, o.sharedQueues, (token, queueId) => run.post({ t: 'queue-ready', token, queueId }), this.logger);
      const run = new WorkerRun(slot.index, worker, mailbox, offer);
      slot.run = run;
      // Clusters the control plane delivered before this run existed; it applies them before loading plugins,
      // so proxy_redis_init at configure time finds them. Updates queued after this reach it in order.
      const snapshot = [...o.clusterManager.activeClusters()].filter((c) => c.config.addedViaApi).map((cluster) => clusterUpdateOf({ type: 'added', cluster })!);
      if (snapshot.length > 0) run.post({ t: 'clusters', updates: snapshot });
      let failure: Error | undefined;
      worker.on('message', (m: WorkerToMain) => {
        switch (m.t) {
          case 'ready':
            run.ready = true;
            run.report = m.report;
            slot.down = false;
            offer.close();
            this.logger.info({ worker: slot.index, startMs: Math.round(epochNow() - t0), ...startPhases(t0, m.report) }, 'worker ready');
            resolve();
            break;
          case 'start-failed':
            failure = new WorkerError(`worker ${slot.index} failed to start: ${m.code}: ${m.message}`);
            break;
          default:
            this.onMessage(run, m);
        }
      });
      worker.on('error', (err) => {
        failure ??= new WorkerError(`worker ${slot.index} failed: ${err.message}`, { cause: err });
        this.logger.error({ worker: slot.index, err: err.message }, 'worker failed');
      });
      void run.exited.then((code) => {
        offer.close();
        mailbox.close();
        this.forgetInWaiters(slot.index);
        if (run.drained || this.stopping) return;
        const err = failure ?? new WorkerError(`worker ${slot.index} exited with code ${code}`);
        this.logger.error({ worker: slot.index, code, err: err.message }, 'worker exited unexpectedly');
        // At start a worker that cannot start fails the start (every worker has the same configuration);
        // later, a dead worker is restarted, and so is a restart that failed.
        if (!(initial && !run.ready)) this.scheduleRestart(slot, run);
        if (!run.ready) reject(err);
      });
    }));
  }

  /** Waits base * 2^failures (capped), then starts the slot again; a run that lived past the cap resets the count. */
  private scheduleRestart(slot: Slot, dead: WorkerRun): void {
    slot.down = true;
    if (Date.now() - dead.startedAt >= this.backoffMaxMs) slot.failures = 0;
    const delay = restartDelayMs(slot.failures, this.backoffBaseMs, this.backoffMaxMs);
    slot.failures++;
    this.logger.warn({ worker: slot.index, delayMs: delay, failures: slot.failures }, 'restarting worker');
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (this.stopping) return;
      this.restartCount++;
      this.startRun(slot, false).catch(() => undefined); // a failed restart schedules the next itself
    }, delay);
  }

  /** Every worker's plugin metrics (a message round trip each); workers that do not answer in `timeoutMs` are left out. */
  collectMetrics(timeoutMs = 2000): Promise<WorkerMetrics[]> {
    const live = this.liveRuns();
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
   * Stops accepting (this thread's listening descriptors close; each worker closes its own as it starts to
   * drain), tells every worker to drain (in-flight streams finish, plugins and pools close), waits for each to
   * exit (terminating any that outlive the drain timeout by a second), then closes the mailboxes and removes the
   * socket directory. Idempotent.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.subscription?.dispose();
      if (this.flushTimer) clearImmediate(this.flushTimer);
      for (const slot of this.slots) if (slot.restartTimer) clearTimeout(slot.restartTimer);
      for (const s of this.sockets) s.close();
      const runs = this.slots.map((s) => s.run).filter((r): r is WorkerRun => r !== undefined && !r.gone);
      for (const r of runs) r.post({ t: 'drain' });
      const grace = this.options.drainTimeoutMs + 1000;
      await Promise.all(runs.map(async (r) => {
        let timer: NodeJS.Timeout | undefined;
        const outcome = await Promise.race([
          r.exited.then(() => 'exited' as const),
          new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), grace); }),
        ]);
        clearTimeout(timer);
        if (outcome === 'timeout') {
          this.logger.warn({ worker: r.index }, 'worker did not exit after draining; terminating');
          r.drained = true;
          await r.worker.terminate();
        }
      }));
      for (const r of runs) {
        r.mailbox.close();
        r.offer.close();
      }
      for (const m of this.metricsWaiters.values()) {
        clearTimeout(m.timer);
        m.resolve(m.results);
      }
      this.metricsWaiters.clear();
      rmSync(this.socketDir, { recursive: true, force: true });
    })();
    return this.stopping;
  }

  private liveRuns(): WorkerRun[] {
    return this.slots.map((s) => s.run).filter((r): r is WorkerRun => r !== undefined && r.ready && !r.drained && !r.gone);
  }

  /** A worker that died answers no metrics request: stop waiting for it. */
  private forgetInWaiters(index: number): void {
    for (const [reqId, waiter] of this.metricsWaiters) {
      if (!waiter.pending.delete(index) || waiter.pending.size > 0) continue;
      clearTimeout(waiter.timer);
      this.metricsWaiters.delete(reqId);
      waiter.resolve(waiter.results.sort((a, b) => a.worker - b.worker));
    }
  }

  private onMessage(w: WorkerRun, m: WorkerToMain): void {
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
    for (const s of this.slots) s.run?.post({ t: 'log-level', level });
  }

  /** Cluster updates go out in order, batched per event-loop turn (a CDS push of many clusters is one message). */
  private queueUpdate(u: ClusterUpdate): void {
    this.pendingUpdates.push(u);
    this.flushTimer ??= setImmediate(() => {
      this.flushTimer = undefined;
      const updates = this.pendingUpdates;
      this.pendingUpdates = [];
      for (const s of this.slots) s.run?.post({ t: 'clusters', updates });
    });
  }
}
