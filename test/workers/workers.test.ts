import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../src/common/logger';
import { Sidecar } from '../../src/main';
import { bootstrapJson, TempDir, Upstream, type BootstrapSpec } from '../http/helpers';
import { RedisServer } from '../support/redis-server';
import { until } from '../support/until';

// --concurrency 2 through the Sidecar API with real plugins, real HTTP clients and a real redis-server.
// Every request uses a new connection (agent: false) so the kernel spreads them over the workers' accepts.

interface Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
  /** The client's own port, as the sidecar should report it in source.address. */
  readonly localPort: number;
}

function get(url: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let localPort = 0;
    const req = httpRequest(url, { agent: false, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body, localPort }));
      res.on('error', reject);
    });
    req.on('socket', (s) => s.on('connect', () => { localPort = s.localPort ?? 0; }));
    req.on('error', reject);
    req.end();
  });
}

const tmp = new TempDir();
let redis: RedisServer;
let up: Upstream;
let sidecar: Sidecar;
let url: string;

const spec = (redisPort: number, upPort: number): BootstrapSpec => ({
  filters: [
    { plugin: 'worker-probe', name: 'probe', rootId: 'worker_probe', vmId: 'probe' },
    { plugin: 'redis-gate', name: 'gate', rootId: 'redis_gate', configuration: 'cluster=redis\npassword=s3cret\nttl=60\ntimeout=1000' },
  ],
  clusters: [{ name: 'backend', port: upPort }, { name: 'redis', port: redisPort }],
});

before(async () => {
  redis = await RedisServer.start({ requirepass: 's3cret' });
  up = await Upstream.start();
  const file = tmp.write('workers.json', bootstrapJson(spec(redis.port, up.port)));
  sidecar = await Sidecar.start({ configFile: file, logger: silentLogger(), drainTimeoutMs: 2000, concurrency: 2 });
  url = `http://127.0.0.1:${sidecar.publicListeners[0]!.port}`;
});

after(async () => {
  await sidecar?.stop();
  await up?.close();
  await redis?.stop();
  tmp.cleanup();
});

let nonce = 0;
const fresh = (): Record<string, string> => ({ 'x-nonce': `n-${process.pid}-${Date.now()}-${nonce++}` });
const sharedValue = (key: string): string => sidecar.services.sharedData.get('probe', key)?.value.toString() ?? '';

describe('--concurrency 2', () => {
  it('runs two workers, each with its own plugin VMs and no data plane in the main thread', () => {
    assert.equal(sidecar.concurrency, 2);
    assert.equal(sidecar.listeners.length, 0);
    assert.equal(sidecar.plugins.length, 0);
    // Each worker's probe VM took a distinct number from shared data at configure time.
    assert.equal(sharedValue('vm_seq'), '2');
  });

  it('serves requests from both workers and counts them in shared data across workers', async () => {
    const before = Number(sharedValue('requests') || '0');
    const n = 20;
    const replies: Reply[] = [];
    for (let i = 0; i < n; i++) replies.push(await get(`${url}/count`, fresh()));
    for (const r of replies) assert.equal(r.status, 200, r.body);
    const byVm = new Map<string, number>();
    for (const r of replies) {
      const vm = String(r.headers['x-vm-number']);
      byVm.set(vm, Math.max(byVm.get(vm) ?? 0, Number(r.headers['x-vm-requests'])));
    }
    assert.deepEqual([...byVm.keys()].sort(), ['1', '2'], 'both workers served');
    // The CAS-incremented counter reached every request, whichever worker served it.
    assert.equal(Number(sharedValue('requests')) - before, n);
    const read = await get(`${url}/read`, { ...fresh(), 'x-read': 'requests' });
    assert.equal(Number(read.headers['x-read-value']), before + n + 1);
  });

  it('shows plugins the real client address as source.address', async () => {
    const r = await get(`${url}/who`, fresh());
    assert.equal(r.status, 200);
    assert.ok(r.localPort > 0);
    assert.equal(r.headers['x-source-address'], `127.0.0.1:${r.localPort}`);
  });

  it('delivers items enqueued in one worker to the queue registered in the other', async () => {
    const item = `item-${Date.now()}`;
    let crossed = false;
    // Enqueue into VM 1's queue until a request served by VM 2 did it.
    await until(async () => {
      const r = await get(`${url}/enqueue`, { ...fresh(), 'x-enqueue': `1:${item}` });
      assert.equal(r.headers['x-enqueue-status'], '0');
      crossed = r.headers['x-vm-number'] === '2';
      return crossed;
    }, 10_000, 'a request served by worker 2 enqueued');
    await until(() => sharedValue('received-1').includes(`${item},`), 5000, 'VM 1 dequeued the item on queue ready');
  });

  it('runs Redis-gated requests from both workers, replay detection included', async () => {
    const passedBy = new Set<string>();
    const firstUse = new Map<string, string>(); // vm number -> a nonce it passed
    await until(async () => {
      const h = fresh();
      const r = await get(`${url}/pay`, h);
      assert.equal(r.status, 200, r.body);
      assert.equal(r.headers['x-replay-check'], 'passed');
      const vm = String(r.headers['x-vm-number']);
      passedBy.add(vm);
      firstUse.set(vm, h['x-nonce']!);
      return passedBy.size === 2;
    }, 10_000, 'both workers passed a Redis-gated request');
    // A nonce first used through worker 1 is a replay when worker 2 sees it (one Redis behind both).
    const used = firstUse.get('1')!;
    await until(async () => {
      const r = await get(`${url}/pay`, { 'x-nonce': used });
      assert.equal(r.status, 429);
      return r.headers['x-vm-number'] === '2';
    }, 10_000, 'worker 2 rejected a replay of worker 1');
  });

  it('collects per-worker plugin metric snapshots', async () => {
    const all = await sidecar.workerMetrics();
    assert.deepEqual(all.map((w) => w.worker), [0, 1]);
    for (const w of all) assert.ok(Array.isArray(w.metrics));
  });
});

describe('--concurrency 2 cluster updates', () => {
  // The main thread's ClusterManager is what xDS feeds; its events reach every worker's own ClusterManager.
  const tmp2 = new TempDir();
  let sc: Sidecar;
  let upstream: Upstream;
  let callee: Upstream;
  let base: string;

  before(async () => {
    upstream = await Upstream.start();
    callee = await Upstream.start((_req, res) => res.end('callee'));
    const file = tmp2.write('eds.json', bootstrapJson({
      filters: [
        { plugin: 'worker-probe', name: 'probe', rootId: 'worker_probe', vmId: 'probe' },
        { plugin: 'http-test', name: 'callout', rootId: 'http_test', configuration: 'mode=callout\ncluster=late\npath=/cb\ntimeout=1000' },
      ],
      clusters: [{ name: 'backend', port: upstream.port }],
    }));
    sc = await Sidecar.start({ configFile: file, logger: silentLogger(), drainTimeoutMs: 2000, concurrency: 2 });
    base = `http://127.0.0.1:${sc.publicListeners[0]!.port}`;
  });

  after(async () => {
    await sc?.stop();
    await upstream?.close();
    await callee?.close();
    tmp2.cleanup();
  });

  const served = async (ok: boolean): Promise<void> => {
    const vms = new Set<string>();
    await until(async () => {
      const r = await get(`${base}/x`);
      if ((r.status === 200) !== ok) return false;
      vms.add(String(r.headers['x-vm-number']));
      return vms.size === 2;
    }, 10_000, `both workers ${ok ? 'reach' : 'no longer reach'} cluster late`);
  };

  it('an EDS cluster warmed in the main thread becomes usable in every worker, and its removal too', async () => {
    let r = await get(`${base}/x`);
    assert.notEqual(r.status, 200, 'cluster late does not exist yet');
    sc.clusterManager.addOrUpdateCluster({
      name: 'late', type: 'EDS', typeDetail: '', lbPolicy: 'ROUND_ROBIN', connectTimeoutMs: 1000, edsServiceName: 'late-svc',
      loadAssignment: [], dnsRefreshRateMs: 5000, addedViaApi: true, versionInfo: '1', source: {}, hash: 'late-1',
    });
    sc.clusterManager.setAssignment('late-svc', [{
      address: '127.0.0.1', port: callee.port, health: 'HEALTHY', weight: 1, priority: 0, hostname: '', locality: { region: '', zone: '', subZone: '' },
    }]);
    await served(true);
    assert.ok(callee.requests.some((q) => q.url === '/cb'));
    r = await get(`${base}/x`);
    assert.equal(upstream.requests.at(-1)?.headers['x-callout-body'], 'callee');
    sc.clusterManager.removeCluster('late');
    await served(false);
  });
});
