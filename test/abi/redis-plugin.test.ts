import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { HostEmulator, type EmulatedStream } from '../../src/testing/host-emulator';
import { ClusterManager } from '../../src/upstream/cluster-manager';
import { RedisPoolManager } from '../../src/redis/pool-manager';
import { RedisServer } from '../support/redis-server';
import { until } from '../support/until';
import { pluginPath } from '../support/plugins';
import { clusterConfig } from '../redis/helpers';

// End to end through real parts: AssemblyScript plugins importing the Higress Redis ABI (and the note's
// variant) -> host functions -> RedisPoolManager -> a static cluster -> a real redis-server.

let redis: RedisServer;
let clusters: ClusterManager;
let pools: RedisPoolManager;
const CLUSTER = 'outbound|6379||redis.static';

before(async () => {
  redis = await RedisServer.start();
  clusters = new ClusterManager();
  clusters.addOrUpdateCluster(clusterConfig(CLUSTER, [['127.0.0.1', redis.port]]));
  pools = new RedisPoolManager(clusters);
});

after(async () => {
  await pools.destroy();
  clusters.close();
  await redis.stop();
});

async function loadEcho(extra = '', name = 'redis-echo'): Promise<HostEmulator> {
  return HostEmulator.load(pluginPath(name), {
    name,
    rootId: name.replace('-', '_'),
    configuration: `cluster=${CLUSTER}${extra}\ntimeout=1000`,
    redis: pools,
  });
}

async function run(host: HostEmulator, cmd: string, headers: Array<[string, string]> = []): Promise<EmulatedStream> {
  const s = host.stream();
  const action = s.sendRequestHeaders([[':path', '/'], ['x-redis-cmd', cmd], ...headers], true);
  assert.equal(s.localResponse === undefined || s.localResponse.statusCode !== 200, true, 'no reply inside proxy_redis_call');
  if (s.localResponse === undefined) assert.equal(action, 'stop_all');
  await until(() => s.localResponse !== undefined, 5000, `reply to ${cmd}`);
  return s;
}

function header(s: EmulatedStream, name: string): string | undefined {
  return s.localResponse?.headers.find(([k]) => k === name)?.[1];
}

test('Higress ABI: replies arrive verbatim through buffer 9 with Higress tokens, to the root context', async () => {
  const host = await loadEcho('?db=2&buffer_flush_timeout=3&max_buffer_size_before_flush=1024');
  await host.settle();
  assert.deepEqual(host.logMessages('info'), ['redis_init status=0']);
  const set = await run(host, 'SET greeting hello ex 60');
  assert.equal(set.localResponse!.body.toString(), '+OK\r\n');
  assert.equal(header(set, 'x-redis-status'), '0');
  assert.equal(header(set, 'x-redis-token'), '7');
  assert.equal(header(set, 'x-redis-root'), String(host.plugin.root.id));
  const get = await run(host, 'get greeting');
  assert.equal(get.localResponse!.body.toString(), '$5\r\nhello\r\n');
  assert.equal(header(get, 'x-redis-token'), '11');
  const nil = await run(host, 'get nothing-here');
  assert.equal(nil.localResponse!.body.toString(), '$-1\r\n');
  const err = await run(host, 'incrby greeting 1');
  assert.match(err.localResponse!.body.toString(), /^-ERR value is not an integer/);
  assert.equal(header(err, 'x-redis-status'), '0', 'an error reply is status 0');
  // db=2 from the init string: the key is in db 2, not db 0.
  assert.equal(await redis.client({ db: 2 }).get('greeting'), 'hello');
  assert.equal(await redis.client({ db: 0 }).get('greeting'), null);
  host.close();
});

test('Higress ABI: an unknown cluster is BAD_ARGUMENT at call time and produces no callback', async () => {
  const host = await loadEcho();
  const s = host.stream();
  s.sendRequestHeaders([[':path', '/'], ['x-redis-cmd', 'ping'], ['x-redis-cluster', 'outbound|6379||nope']], true);
  await until(() => s.localResponse !== undefined);
  assert.equal(s.localResponse!.statusCode, 500);
  assert.equal(header(s, 'x-redis-call-status'), '2');
  host.close();
});

test('Higress ABI: proxy_redis_init on an unknown cluster returns BAD_ARGUMENT', async () => {
  const host = await HostEmulator.load(pluginPath('redis-echo'), {
    rootId: 'redis_echo', configuration: 'cluster=outbound|6379||missing.svc', redis: pools,
  });
  await host.settle();
  assert.deepEqual(host.logMessages('info'), ['redis_init status=2']);
  host.close();
});

test('a call made from proxy_on_log outlives its stream; unloading the plugin cancels pending calls', async () => {
  const host = await loadEcho();
  const s = host.stream();
  s.sendRequestHeaders([[':path', '/'], ['x-redis-on-log', 'ping']], true);
  s.complete();
  await until(() => host.logMessages('info').some((m) => m.startsWith('late reply')));
  const late = host.logMessages('info').find((m) => m.startsWith('late reply'))!;
  assert.match(late, new RegExp(`^late reply root=${host.plugin.root.id} token=7 status=0 size=7 read=7$`));

  // A call pending when the plugin unloads never calls back.
  await redis.pause(1);
  const s2 = host.stream();
  s2.sendRequestHeaders([[':path', '/'], ['x-redis-cmd', 'ping']], true);
  host.close();
  await new Promise((r) => setTimeout(r, 1300));
  assert.equal(s2.localResponse, undefined);
});

test('a dead server gives status 1 with size 0, never a hang', async () => {
  const dead = await RedisServer.start();
  const name = 'outbound|6379||dead.static';
  clusters.addOrUpdateCluster(clusterConfig(name, [['127.0.0.1', dead.port]], { connectTimeoutMs: 500 }));
  await dead.kill('SIGKILL');
  const host = await HostEmulator.load(pluginPath('redis-echo'), {
    rootId: 'redis_echo', configuration: `cluster=${name}\ntimeout=300`, redis: pools,
  });
  const s = await run(host, 'ping');
  assert.equal(header(s, 'x-redis-status'), '1');
  assert.equal(header(s, 'x-redis-size'), '0');
  assert.equal(s.localResponse!.body.length, 0);
  host.close();
  clusters.removeCluster(name);
});

test("the requirements note's variant: table callback and proxy_get_redis_call_response", async () => {
  const host = await loadEcho('', 'redis-variant');
  await host.settle();
  assert.deepEqual(host.logMessages('info'), ['redis_init status=0']);
  const s = await run(host, 'set variant-key vv');
  assert.equal(s.localResponse!.body.toString(), '+OK\r\n');
  assert.equal(header(s, 'x-redis-token'), '7');
  const g = await run(host, 'get variant-key');
  assert.equal(g.localResponse!.body.toString(), '$2\r\nvv\r\n');
  const bogus = host.stream();
  bogus.sendRequestHeaders([[':path', '/'], ['x-redis-cmd', 'ping'], ['x-redis-callback', 'bogus']], true);
  await until(() => bogus.localResponse !== undefined);
  assert.equal(header(bogus, 'x-redis-dispatch'), '-1');
  host.close();
});

test('a local reply sent from the Redis callback does not stop the reply on its way back through the plugin', async () => {
  const host = await loadEcho();
  const s = await run(host, 'ping');
  assert.equal(s.localResponse!.statusCode, 200);
  // The data plane encodes the local reply through the plugin's response callbacks: they must continue.
  assert.equal(s.sendResponseHeaders([[':status', '200'], ['content-type', 'text/plain']], false), 'continue');
  assert.equal(s.sendResponseBody(s.localResponse!.body, true), 'continue');
  s.complete();
  host.close();
});
