import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { AdsClient } from '../../src/xds/ads-client';
import { EDS_TYPE_URL } from '../../src/xds/protos';
import { ClusterManager } from '../../src/upstream/cluster-manager';
import { RedisPoolManager } from '../../src/redis/pool-manager';
import { HostEmulator, type EmulatedStream } from '../../src/testing/host-emulator';
import { XdsTestServer } from '../support/xds-server';
import { cla, edsCluster } from '../support/xds-fixtures';
import { RedisServer } from '../support/redis-server';
import { until } from '../support/until';
import { pluginPath } from '../support/plugins';

// The whole control-plane chain with real parts: a gRPC ADS server speaking the Envoy protos -> AdsClient ->
// ClusterManager -> RedisPoolManager -> plugins' Redis calls -> real redis-server processes.

const SVC = 'outbound|6379||redis.default.svc.cluster.local';
const NODE = { id: 'sidecar~10.0.0.1~app-1.default~default.svc.cluster.local', cluster: 'app' };

let a: RedisServer;
let b: RedisServer;
let xds: XdsTestServer;
let clusters: ClusterManager;
let pools: RedisPoolManager;
let ads: AdsClient;
const hosts: HostEmulator[] = [];

before(async () => {
  [a, b] = await Promise.all([RedisServer.start(), RedisServer.start()]);
  xds = await XdsTestServer.start();
  xds.setClusters([edsCluster(SVC), edsCluster('bench-cluster')]);
  xds.setEndpoints([cla(SVC, [['127.0.0.1', a.port]]), cla('bench-cluster', [['127.0.0.1', a.port]])]);
  xds.push();
  clusters = new ClusterManager();
  pools = new RedisPoolManager(clusters);
  ads = new AdsClient({ target: xds.target, node: NODE, sink: clusters, backoff: { baseMs: 20, maxMs: 200 } });
  ads.start();
  await ads.initialized;
});

after(async () => {
  for (const h of hosts) h.close();
  await ads.close();
  await pools.destroy();
  clusters.close();
  await xds.close();
  await Promise.all([a.stop(), b.stop()]);
});

/** ioredis clients for inspecting server state, named so they can be told apart from the plugin pools' connections. */
const inspectors = new Map<RedisServer, ReturnType<RedisServer['client']>>();
function inspect(server: RedisServer): ReturnType<RedisServer['client']> {
  let c = inspectors.get(server);
  if (!c) inspectors.set(server, (c = server.client({ connectionName: 'inspector' })));
  return c;
}

async function echoPlugin(): Promise<HostEmulator> {
  const h = await HostEmulator.load(pluginPath('redis-echo'), { rootId: 'redis_echo', configuration: `cluster=${SVC}?db=0\ntimeout=2000`, redis: pools });
  hosts.push(h);
  return h;
}

function call(host: HostEmulator, cmd: string): Promise<EmulatedStream> {
  const s = host.stream();
  s.sendRequestHeaders([[':path', '/'], ['x-redis-cmd', cmd]], true);
  return until(() => s.localResponse !== undefined, 10_000, cmd).then(() => {
    s.complete();
    return s;
  });
}

function status(s: EmulatedStream): string | undefined {
  return s.localResponse?.headers.find(([k]) => k === 'x-redis-status')?.[1];
}

async function setEndpoints(server: RedisServer): Promise<void> {
  const version = xds.setEndpoints([cla(SVC, [['127.0.0.1', server.port]]), cla('bench-cluster', [['127.0.0.1', server.port]])]);
  xds.push(EDS_TYPE_URL);
  await xds.waitFor(() => xds.requestsFor(EDS_TYPE_URL).some((r) => r.versionInfo === version), 10_000, `EDS ACK of ${version}`);
}

test('CDS + EDS, then a plugin Redis call lands on the redis-server the endpoints name', async () => {
  const host = await echoPlugin();
  await host.settle();
  assert.deepEqual(host.logMessages('info'), ['redis_init status=0']);
  const s = await call(host, 'set where a');
  assert.equal(s.localResponse!.body.toString(), '+OK\r\n');
  assert.equal(await inspect(a).get('where'), 'a');
  assert.equal(await inspect(b).get('where'), null);
});

test('endpoints flip from A to B while a plugin issues calls: later calls reach B, none is lost', async () => {
  const host = await echoPlugin();
  let issued = 0;
  const replies: EmulatedStream[] = [];
  let flipped = false;
  let afterFlip = 0;
  const worker = async (): Promise<void> => {
    while (!flipped || afterFlip < 200) {
      issued++;
      if (flipped) afterFlip++;
      replies.push(await call(host, 'incr flip-counter'));
    }
  };
  const workers = Array.from({ length: 16 }, () => worker());
  await until(() => replies.length >= 200, 10_000, 'load before the flip');
  await setEndpoints(b);
  flipped = true;
  await Promise.all(workers);
  assert.equal(replies.length, issued, 'every call answered');
  assert.deepEqual(replies.filter((r) => status(r) !== '0').length, 0, 'no call failed');
  const onA = Number(await inspect(a).get('flip-counter'));
  const onB = Number(await inspect(b).get('flip-counter'));
  assert.equal(onA + onB, issued, 'each call executed exactly once');
  assert.ok(onB >= 200, `calls after the flip reached B (${onB})`);
  const last = await call(host, 'incr flip-counter');
  assert.equal(Number(await inspect(b).get('flip-counter')), onB + 1, 'the next call goes to B');
  assert.equal(status(last), '0');
});

test('1,000 endpoint flips under 64 in-flight plugin Redis calls: every call answered, sockets bounded', async () => {
  const host = await HostEmulator.load(pluginPath('redis-min'), { name: 'flipper', redis: pools });
  hosts.push(host);
  await inspect(a).set('bench:key', 'x');
  await inspect(b).set('bench:key', 'x');
  let answered = 0;
  let failed = 0;
  let issued = 0;
  let stop = false;
  const loop = async (): Promise<void> => {
    while (!stop) {
      issued++;
      const s = host.stream();
      s.sendRequestHeaders([[':path', '/']], true);
      await until(() => s.localResponse !== undefined, 10_000, 'reply during flips', 1);
      if (s.localResponse!.body.length === 0) failed++;
      answered++;
      s.complete();
    }
  };
  const loops = Array.from({ length: 64 }, () => loop());
  let maxClients = 0;
  for (let flip = 0; flip < 1000; flip++) {
    const target = flip % 2 === 0 ? b : a;
    xds.setEndpoints([cla(SVC, [['127.0.0.1', target.port]]), cla('bench-cluster', [['127.0.0.1', target.port]])]);
    xds.push(EDS_TYPE_URL);
    if (flip % 100 === 99) {
      const counts = await Promise.all([a, b].map(async (r) => String(await inspect(r).call('CLIENT', 'LIST')).trim().split('\n').filter((l) => !l.includes('name=inspector')).length));
      maxClients = Math.max(maxClients, ...counts);
    }
    await new Promise((r) => setImmediate(r));
  }
  await xds.waitFor(() => xds.requestsFor(EDS_TYPE_URL).some((r) => r.versionInfo === xds.version(EDS_TYPE_URL)), 20_000, 'last EDS ACK');
  stop = true;
  await Promise.all(loops);
  assert.equal(answered, issued, 'every call answered');
  assert.ok(issued > 1000, `load ran (${issued} calls)`);
  // Pool connections per server stay small (a few pools, plus ones draining their last calls), never one per flip.
  assert.ok(maxClients <= 6, `open connections bounded (max ${maxClients} per server)`);
  assert.equal(failed, 0, 'drained endpoints finish their in-flight calls');
});
