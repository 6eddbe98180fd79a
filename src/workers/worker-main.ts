// First, before the other imports run: the require phase is measured from here.
import { epochNow, threadCpuAtStart, threadCpuMs, threadStartedAt } from './start-clock';
import type { Server } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { SidecarError } from '../common/errors';
import { createLogger } from '../common/logger';
import { LogLevelControl } from '../observability/log-level';
import { defaultModuleCache } from '../wasm/module-cache';
import { DataPlane } from './data-plane';
import { reviveBuffers } from './plain-data';
import { listenOnHandle, receiveListenHandles } from './shared-socket';
import { MailboxClient } from './mailbox';
import type { ClusterUpdate, MainToWorker, WorkerInit, WorkerStartReport, WorkerToMain } from './protocol';

const requiredAt = epochNow();
const cpuRequiredAt = threadCpuMs();

/**
 * The entry point of one `--concurrency N` worker thread: builds its own DataPlane (ClusterManager, Redis and
 * upstream pools, plugin VMs, HTTP listeners on loopback) from the configuration the main thread parsed and
 * posts (workerData: plain data, plus the plugin modules it compiled, adopted rather than compiled again), takes
 * shared data and queues from the main thread's mailbox, follows the main thread's cluster updates, and serves
 * the connections the kernel hands it on the public listeners' sockets (shared-socket.ts).
 */

if (!parentPort) throw new Error('worker-main runs in a worker thread');
const port = parentPort;
const init = workerData as WorkerInit;
const post = (m: WorkerToMain): void => port.postMessage(m);
const rootLogger = createLogger(init.logLevel);
// Before any child exists, so a log-level message reaches every component's logger (as in the main thread).
const levels = new LogLevelControl(rootLogger);
const logger = rootLogger.child({ worker: init.index });

function applyClusterUpdates(plane: DataPlane, updates: readonly ClusterUpdate[]): void {
  const cm = plane.clusterManager;
  for (const u of updates) {
    switch (u.op) {
      case 'addOrUpdate':
        cm.addOrUpdateCluster(u.config);
        // The main thread sends EDS clusters only once warmed, with their hosts: apply both at once.
        if (u.config.type === 'EDS') cm.setAssignment(u.config.edsServiceName, u.hosts);
        break;
      case 'assignment':
        cm.setAssignment(u.serviceName, u.hosts);
        break;
      case 'remove':
        cm.removeCluster(u.name);
        break;
    }
  }
}

/** This thread's CPU time by start phase, from the readings at each phase's end; undefined where the OS gives none. */
function cpuPhases(at: ReadonlyArray<number | undefined>): WorkerStartReport['cpu'] {
  if (at.some((x) => x === undefined)) return undefined;
  const [start, required, configured, plugins, listening] = at as number[];
  return { requireMs: required! - start!, configMs: configured! - required!, pluginsMs: plugins! - configured!, listenMs: listening! - plugins! };
}

async function main(): Promise<void> {
  const mailbox = new MailboxClient(init.mailbox, { logger }, (token) => post({ t: 'queue-unregister', token }));
  let plane: DataPlane | undefined;
  const accepting: Server[] = [];
  let draining: Promise<void> | undefined;
  const early: ClusterUpdate[][] = [];

  const drain = (): Promise<void> => {
    draining ??= (async () => {
      // Stop accepting first (close() stops at once; its callback would wait for every accepted connection to
      // end, which is the drain's job): connections already accepted belong to their HTTP listener.
      for (const server of accepting) server.close();
      await plane?.stop();
      post({ t: 'drained' });
      port.off('message', onMessage);
      port.unref();
    })();
    return draining;
  };

  const onMessage = (m: MainToWorker): void => {
    switch (m.t) {
      case 'clusters':
        if (plane) applyClusterUpdates(plane, m.updates);
        else early.push([...m.updates]);
        break;
      case 'queue-ready':
        mailbox.queueReady(m.token, m.queueId);
        break;
      case 'metrics':
        post({
          t: 'metrics',
          reqId: m.reqId,
          metrics: (plane?.services.metrics.all() ?? []).map((x) => ({ id: x.id, type: x.type, name: x.name, value: x.value, count: x.count, sum: x.sum, samples: [...x.samples] })),
          counters: plane?.counters() ?? {},
          traffic: plane?.upstreamPools.traffic.snapshot() ?? {},
          redis: plane?.redis.stats(),
        });
        break;
      case 'log-level':
        levels.set(m.level);
        break;
      case 'drain':
        void drain().catch((err: unknown) => logger.error({ err: (err as Error).message }, 'worker drain failed'));
        break;
      case 'crash':
        if (m.how === 'exit') process.exit(70);
        setImmediate(() => { throw new Error('worker crash requested (test hook)'); });
        break;
    }
  };
  port.on('message', onMessage);

  try {
    // Buffers arrive as plain Uint8Arrays (plain-data.ts).
    const config = reviveBuffers(init.plane);
    defaultModuleCache.adopt(init.modules);
    plane = new DataPlane({
      config, logger, sharedData: mailbox, sharedQueues: mailbox, drainTimeoutMs: init.drainTimeoutMs,
      bindListener: (l) => ({ ...l, address: '127.0.0.1', port: 0 }),
    });
    for (const u of early.splice(0)) applyClusterUpdates(plane, u);
    const configuredAt = epochNow();
    const cpuConfiguredAt = threadCpuMs();
    await plane.start();
    const pluginsAt = epochNow();
    const cpuPluginsAt = threadCpuMs();
    // Plugins are loaded: only now take connections, so none waits on a worker that cannot serve yet.
    const handles = await receiveListenHandles(init.handlePath, plane.listeners.length);
    for (const [i, l] of plane.listeners.entries()) accepting.push(await listenOnHandle(handles[i]!, (socket) => l.acceptConnection(socket)));
    post({
      t: 'ready',
      report: {
        threadStartedAt, requiredAt, configuredAt, pluginsAt, listeningAt: epochNow(), modules: { ...defaultModuleCache.loads },
        cpu: cpuPhases([threadCpuAtStart, cpuRequiredAt, cpuConfiguredAt, cpuPluginsAt, threadCpuMs()]),
      },
    });
  } catch (err) {
    post({ t: 'start-failed', message: (err as Error).message, code: err instanceof SidecarError ? err.code : 'PWS_ERR' });
    await drain();
  }
}

void main();
