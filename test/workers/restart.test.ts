import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../src/common/logger';
import { loadSidecarConfig } from '../../src/http/listener-config';
import { SharedDataStore } from '../../src/services/shared-data';
import { SharedQueueRegistry } from '../../src/services/shared-queue';
import { ClusterManager } from '../../src/upstream/cluster-manager';
import { restartDelayMs, WorkerPool } from '../../src/workers/worker-pool';
import { compileForWorkers, dataPlaneConfig } from '../../src/workers/plane-config';
import { bootstrapJson, TempDir, Upstream } from '../http/helpers';
import { until } from '../support/until';
import { AdminServer } from '../../src/admin/admin-server';
import { MetricsRegistry } from '../../src/services/metrics';
import { http, statLines } from '../admin/helpers';

// Workers restart (issue 14 item 4): a WorkerPool of 2 real worker threads with a real plugin (worker-probe
// numbers each VM it starts from shared data, so a restarted worker's plugin shows a new number), real HTTP
// clients on fresh connections. A worker is killed three ways; the pool reports it, the other worker answers
// every request meanwhile, and the killed one comes back with its plugins re-created.

function get(url: string): Promise<{ status: number; vm: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, vm: String(res.headers['x-vm-number']) }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('a WorkerPool whose workers die', () => {
  const tmp = new TempDir();
  const sharedData = new SharedDataStore();
  let up: Upstream;
  let cm: ClusterManager;
  let pool: WorkerPool;
  let url: string;

  before(async () => {
    up = await Upstream.start();
    const file = tmp.write('restart.json', bootstrapJson({
      filters: [{ plugin: 'worker-probe', name: 'probe', rootId: 'worker_probe', vmId: 'probe' }],
      clusters: [{ name: 'backend', port: up.port }],
    }));
    const config = loadSidecarConfig(file);
    cm = new ClusterManager({ logger: silentLogger() });
    for (const c of config.bootstrap.staticClusters) cm.addOrUpdateCluster(c);
    const plane = dataPlaneConfig(config, true);
    pool = new WorkerPool({
      concurrency: 2, plane, modules: await compileForWorkers(plane, silentLogger()), logLevel: 'silent', logger: silentLogger(), drainTimeoutMs: 1000,
      clusterManager: cm, sharedData, sharedQueues: new SharedQueueRegistry(),
      // Long enough that the dead worker is still down when the requests below are sent.
      restartBackoff: { baseMs: 1500, maxMs: 10_000 },
    });
    await pool.start();
    // A restarted worker starts from the configuration the pool was given, not from the file as it is now.
    tmp.write('restart.json', 'static_resources: [not a bootstrap');
    url = `http://127.0.0.1:${pool.listeners[0]!.port}/x`;
  });

  after(async () => {
    await pool?.stop();
    cm?.close();
    await up?.close();
    tmp.cleanup();
  });

  const vmSeq = (): number => Number(sharedData.get('probe', 'vm_seq')?.value.toString() ?? '0');

  for (const how of ['throw', 'exit', 'terminate'] as const) {
    it(`restarts a worker ended by ${how}, with its plugins re-created, while the other serves`, async () => {
      const restartsBefore = pool.status().restarts;
      assert.deepEqual(pool.status(), { concurrency: 2, live: 2, restarting: 0, restarts: restartsBefore });
      const vmsBefore = vmSeq();
      await pool.crashWorker(0, how);
      assert.deepEqual(pool.status(), { concurrency: 2, live: 1, restarting: 1, restarts: restartsBefore });

      // Meanwhile every connection is accepted by the worker that lives.
      const during = new Set<string>();
      for (let i = 0; i < 10; i++) {
        const r = await get(url);
        assert.equal(r.status, 200);
        during.add(r.vm);
      }
      assert.equal(during.size, 1, `one VM answered while worker 0 was down: ${[...during].join(',')}`);
      assert.equal(pool.status().restarting, 1, 'still restarting after the requests (backoff 1.5 s)');

      await until(() => pool.status().live === 2, 30_000, 'worker 0 back');
      assert.deepEqual(pool.status(), { concurrency: 2, live: 2, restarting: 0, restarts: restartsBefore + 1 });
      // The new worker configured a VM of its own (the probe's configure takes the next number).
      assert.equal(vmSeq(), vmsBefore + 1);
      const fresh = String(vmsBefore + 1);
      await until(async () => (await get(url)).vm === fresh, 10_000, 'the restarted worker serving');
    });
  }

  it('the admin says so: /ready names the restarting worker (still 200 while one serves), the server.* stats count it', async () => {
    const admin = new AdminServer({ port: 0 }, {
      state: () => 'LIVE', bootstrap: {}, clusterManager: cm, metrics: new MetricsRegistry(), plugins: () => [],
      workers: () => pool.status(), commandLineOptions: {}, startTime: new Date(), getLogLevel: () => 'info', setLogLevel: () => {},
    });
    const { port } = await admin.start();
    try {
      const restartsBefore = pool.status().restarts;
      assert.deepEqual(await http(port, '/ready').then((r) => [r.status, r.body]), [200, 'LIVE\n']);
      await pool.crashWorker(1, 'terminate');
      assert.deepEqual(await http(port, '/ready').then((r) => [r.status, r.body]), [200, 'LIVE\nworkers restarting: 1 of 2\n']);
      const during = statLines((await http(port, '/stats')).body);
      assert.equal(during.get('server.workers_restarting'), '1');
      assert.equal(during.get('server.workers_live'), '1');
      assert.equal(during.get('server.concurrency'), '2');
      await until(() => pool.status().live === 2, 30_000, 'worker 1 back');
      const afterwards = statLines((await http(port, '/stats')).body);
      assert.equal(afterwards.get('server.workers_restarting'), '0');
      assert.equal(afterwards.get('server.worker_restarts'), String(restartsBefore + 1));
      assert.deepEqual(await http(port, '/ready').then((r) => [r.status, r.body]), [200, 'LIVE\n']);
    } finally {
      await admin.close();
    }
  });

  it('metrics are collected from the workers that live', async () => {
    const all = await pool.collectMetrics();
    assert.deepEqual(all.map((w) => w.worker), [0, 1]);
  });
});

it('restart backoff doubles from its base up to its cap', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map((n) => restartDelayMs(n, 250, 30_000)), [250, 500, 1000, 2000, 4000, 8000, 16_000, 30_000]);
  assert.equal(restartDelayMs(1000, 250, 30_000), 30_000);
});
