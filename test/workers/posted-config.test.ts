import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { silentLogger } from '../../src/common/logger';
import { ConfigError } from '../../src/common/errors';
import { loadSidecarConfig } from '../../src/http/listener-config';
import { Sidecar } from '../../src/main';
import { SharedDataStore } from '../../src/services/shared-data';
import { SharedQueueRegistry } from '../../src/services/shared-queue';
import { ClusterManager } from '../../src/upstream/cluster-manager';
import { compileForWorkers, dataPlaneConfig } from '../../src/workers/plane-config';
import { assertPlainData, reviveBuffers } from '../../src/workers/plain-data';
import { WorkerError } from '../../src/workers/protocol';
import { WorkerPool } from '../../src/workers/worker-pool';
import { startShaped } from '../http/host-bootstrap';
import { bootstrapJson, TempDir, Upstream } from '../http/helpers';
import { pluginPath } from '../support/plugins';
import { until } from '../support/until';

// Workers start from the configuration the main thread parsed and posted (workerData), with the plugin modules
// it compiled (issue 13 item 3): real worker threads, a real plugin, a real HTTP client.

const tmp = new TempDir();
after(() => tmp.cleanup());

describe('a WorkerPool started from posted configuration', () => {
  const census = mkdtempSync(join(tmpdir(), 'pws-census-'));
  const code = join(tmp.path, 'worker-probe.wasm');
  let up: Upstream;
  let cm: ClusterManager;
  let pool: WorkerPool;

  before(async () => {
    up = await Upstream.start();
    // The plugin from a copy of its own, which the test then spoils.
    copyFileSync(pluginPath('worker-probe'), code);
    const doc = JSON.stringify(bootstrapJson({
      filters: [{ plugin: 'worker-probe', name: 'probe', rootId: 'worker_probe', vmId: 'probe' }],
      clusters: [{ name: 'backend', port: up.port }],
    })).replaceAll(JSON.stringify(pluginPath('worker-probe')), JSON.stringify(code));
    const file = tmp.write('posted.json', doc);
    const config = loadSidecarConfig(file);
    cm = new ClusterManager({ logger: silentLogger() });
    for (const c of config.bootstrap.staticClusters) cm.addOrUpdateCluster(c);
    const plane = dataPlaneConfig(config, true);
    process.env['PWS_TEST_MODULE_CENSUS_DIR'] = census;
    pool = new WorkerPool({
      concurrency: 2, plane, modules: await compileForWorkers(plane, silentLogger()), logLevel: 'silent', logger: silentLogger(), drainTimeoutMs: 1000,
      clusterManager: cm, sharedData: new SharedDataStore(), sharedQueues: new SharedQueueRegistry(),
      workerScript: join(__dirname, 'fixtures', 'module-census-worker.js'),
    });
    await pool.start();
  });

  after(async () => {
    await pool?.stop();
    cm?.close();
    await up?.close();
    delete process.env['PWS_TEST_MODULE_CENSUS_DIR'];
    rmSync(census, { recursive: true, force: true });
  });

  it('serves with the module the main thread compiled: every worker adopted it and compiled none', async () => {
    const res = await request(`http://127.0.0.1:${pool.listeners[0]!.port}/x`);
    await res.body.dump();
    assert.equal(res.statusCode, 200);
    assert.ok(res.headers['x-vm-number'], 'the probe plugin ran');
    const reports = pool.startReports();
    assert.equal(reports.length, 2);
    for (const r of reports) assert.deepEqual(r?.modules, { instrumented: 0, disk: 0, plain: 0, shared: 1 });
  });

  it('restarts a worker with the code the main thread read, whatever the file holds by then', async () => {
    writeFileSync(code, 'not wasm any more');
    await pool.crashWorker(0, 'exit');
    await until(() => pool.status().live === 2, 30_000, 'worker 0 back');
    assert.deepEqual(pool.startReports()[0]?.modules, { instrumented: 0, disk: 0, plain: 0, shared: 1 });
    // A connection of its own each time (reset), so the kernel hands some to the restarted worker.
    await until(async () => {
      const res = await request(`http://127.0.0.1:${pool.listeners[0]!.port}/x`, { reset: true });
      await res.body.dump();
      assert.equal(res.statusCode, 200);
      return res.headers['x-vm-number'] === '3';
    }, 10_000, 'the restarted worker serving with its plugin (VM 3)');
  });

  const loaded = (index: number): string[] => (JSON.parse(readFileSync(join(census, `w${index}.json`), 'utf8')) as string[]).map((f) => f.replaceAll('\\', '/'));

  it('requires none of the main thread\'s configuration loading (plane-config, Wasm service parsing)', () => {
    for (const i of [0, 1]) {
      const files = loaded(i);
      assert.ok(files.some((f) => f.endsWith('/src/workers/data-plane.js')), 'the census is of a worker');
      for (const mainOnly of ['/src/workers/plane-config.js', '/src/workers/wasm-services.js']) {
        assert.ok(!files.some((f) => f.endsWith(mainOnly)), `worker ${i} required ${mainOnly}`);
      }
    }
  });

  it('requires neither yaml, nor grpc-js, nor undici\'s index (fetch, WebSocket, mocks)', () => {
    for (const i of [0, 1]) {
      const heavy = loaded(i).filter((f) => /\/node_modules\/(yaml|@grpc\/grpc-js)\/|\/node_modules\/undici\/index\.js$/.test(f));
      assert.deepEqual(heavy.slice(0, 3), [], `worker ${i} required ${heavy.length} of them`);
    }
  });

  // A worker parses no configuration: the bootstrap reader and the Envoy protos are the main thread's (they are
  // required where a document is parsed, src/http/listener-config.ts and src/wasm/remote-code.ts), and the
  // foreign functions' protobufjs is required at the first call that decodes an argument (src/abi/foreign-args.ts).
  it('requires neither protobufjs, nor the Envoy protos, nor the bootstrap reader', () => {
    for (const i of [0, 1]) {
      const parsing = loaded(i).filter((f) => /\/node_modules\/(protobufjs|@protobufjs\/[^/]+|long)\/|\/src\/(config\/bootstrap|xds\/(protos|proto-json|proto-bundle|validate))\.js$/.test(f));
      assert.deepEqual(parsing.slice(0, 5), [], `worker ${i} required ${parsing.length} of them`);
    }
  });
});

describe('configuration crossing into a worker', () => {
  it('is refused at start, in the main thread, with its path, when --concurrency 2 cannot take it', async () => {
    const doc = bootstrapJson({ filters: [{ plugin: 'worker-probe', name: 'probe', rootId: 'worker_probe' }], clusters: [{ name: 'backend', port: 1 }] });
    const listener = ((doc['static_resources'] as Record<string, unknown>)['listeners'] as Record<string, unknown>[])[0]!;
    listener['per_connection_buffer_limit_bytes'] = 'lots';
    const file = tmp.write('invalid.json', doc);
    await assert.rejects(Sidecar.start({ configFile: file, logger: silentLogger(), concurrency: 2 }),
      (e: unknown) => e instanceof ConfigError && e.path.startsWith('static_resources.listeners[0].per_connection_buffer_limit_bytes'));
  });

  it('is checked for what a structured clone would lose: a class instance or a function is named by its path', () => {
    class Matcher {
      match(): boolean {
        return true;
      }
    }
    assert.throws(() => assertPlainData({ listeners: [{ name: 'l', matcher: new Matcher() }] }, 'workerData.plane'),
      (e: unknown) => e instanceof WorkerError && /workerData\.plane\.listeners\[0\]\.matcher: a Matcher/.test(e.message));
    assert.throws(() => assertPlainData({ m: new Map([['k', { f: () => 1 }]]) }, 'p'), (e: unknown) => e instanceof WorkerError && /p\.m\["k"\]\.f: a function/.test(e.message));
    assert.doesNotThrow(() => assertPlainData({ b: Buffer.from('x'), r: /a/i, m: new Map([['k', [1n, 'v', null]]]), s: new Set([1]) }, 'p'));
  });

  it('comes out with its Buffers Buffers again (a structured clone makes them plain Uint8Arrays)', () => {
    const cloned = structuredClone({ configuration: Buffer.from('{"a":1}'), secrets: new Map([['s', { pem: Buffer.from('PEM') }]]), list: [Buffer.from('x')] });
    assert.equal(Buffer.isBuffer(cloned.configuration), false);
    const revived = reviveBuffers(cloned);
    assert.ok(Buffer.isBuffer(revived.configuration));
    assert.equal(revived.configuration.toString(), '{"a":1}');
    assert.ok(Buffer.isBuffer(revived.secrets.get('s')!.pem));
    assert.ok(Buffer.isBuffer(revived.list[0]));
  });
});

describe('a plugin reading Envoy attributes', () => {
  // go/host-attrs returns each property it reads as x-req-<i> (hex): the same bootstrap, one sidecar with
  // workers and one without, must serve the same bytes (node is the Node message the main thread encoded).
  const PROPS = [['node'], ['node', 'id'], ['node', 'cluster'], ['node', 'metadata', 'role'], ['xds', 'listener_metadata'], ['xds', 'route_metadata'],
    ['xds', 'route_name'], ['xds', 'cluster_name'], ['xds', 'filter_chain_name'], ['plugin_name'], ['listener_direction']];
  const sidecars: Sidecar[] = [];
  let up: Upstream;

  before(async () => {
    up = await Upstream.start();
  });
  after(async () => {
    for (const s of sidecars) await s.stop();
    await up?.close();
  });

  it('reads the same in a worker as in the main thread', async () => {
    let shaped: Record<string, unknown> = {};
    const main = await startShaped(tmp, {
      filters: [{ plugin: 'go/host-attrs', name: 'attrs', rootId: '', configuration: JSON.stringify({ properties: PROPS }) }],
      clusters: [{ name: 'backend', port: up.port }],
    }, ({ doc, listener, routeConfig }) => {
      doc['node'] = { id: 'posted-node', cluster: 'posted', metadata: { role: 'edge', n: 2 } };
      listener['metadata'] = { filter_metadata: { lst: { k: 'v', list: ['a', true] } } };
      listener['traffic_direction'] = 'INBOUND';
      (routeConfig['virtual_hosts'] as Record<string, unknown>[])[0]!['routes'] = [
        { name: 'r', match: { prefix: '/' }, route: { cluster: 'backend' }, metadata: { filter_metadata: { 'test.ns': { k: 'v' } } } },
      ];
      shaped = doc;
    });
    sidecars.push(main.sidecar);
    const workers = await Sidecar.start({ configFile: tmp.write('attrs-workers.json', shaped), logger: silentLogger(), drainTimeoutMs: 1000, concurrency: 2 });
    sidecars.push(workers);
    const replies: Record<string, string>[] = [];
    for (const s of [main.sidecar, workers]) {
      const res = await request(`http://127.0.0.1:${s.publicListeners[0]!.port}/api`);
      await res.body.dump();
      assert.equal(res.statusCode, 200);
      replies.push(Object.fromEntries(PROPS.map((_, i) => [`x-req-${i}`, String(res.headers[`x-req-${i}`])])));
    }
    const [inMain, inWorker] = replies;
    assert.ok(inMain!['x-req-0']!.startsWith(`0a0b${Buffer.from('posted-node').toString('hex')}`), `node is the Node message: ${inMain!['x-req-0']}`);
    assert.equal(inMain!['x-req-3'], Buffer.from('edge').toString('hex'));
    assert.deepEqual(inWorker, inMain);
  });
});
