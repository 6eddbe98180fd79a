import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { ConfigError } from '../../src/common/errors';
import { HostEmulator, RedisClusters } from '../../src/testing';
import { pluginPath } from '../support/plugins';
import { RedisServer } from '../support/redis-server';
import { until } from '../support/until';

// The test kit's Redis from a map of cluster name to redis:// URL: a real plugin's proxy_redis_init and
// proxy_redis_call reach a real redis-server through the sidecar's pools; an unknown cluster is named.
const CLUSTER = 'outbound|6379||redis.default.svc.cluster.local';
let redis: RedisServer;
let clusters: RedisClusters;

before(async () => {
  redis = await RedisServer.start();
  clusters = new RedisClusters({ [CLUSTER]: `redis://127.0.0.1:${redis.port}` });
});
after(async () => {
  await clusters?.close();
  await redis?.stop();
});

it('carries a plugin\'s Redis calls to the server the map names', async () => {
  const host = await HostEmulator.load(pluginPath('redis-echo'), {
    name: 'redis-echo', rootId: 'redis_echo', configuration: `cluster=${CLUSTER}\ntimeout=1000`, redis: clusters,
  });
  try {
    await host.settle();
    assert.deepEqual(host.logMessages('info'), ['redis_init status=0']);
    const s = host.stream();
    s.sendRequestHeaders([[':path', '/'], ['x-redis-cmd', 'SET kit-key kit-value']], true);
    await until(() => s.localResponse !== undefined, 10_000, 'the SET reply');
    assert.equal(s.localResponse!.body.toString(), '+OK\r\n');
    const client = redis.client();
    try {
      assert.equal(await client.get('kit-key'), 'kit-value');
    } finally {
      client.disconnect();
    }
  } finally {
    host.close();
  }
});

it('takes the map directly as redisClusters, and names a missing cluster or a missing map in hostLogs', async () => {
  const direct = await HostEmulator.load(pluginPath('redis-echo'), {
    name: 'redis-echo', rootId: 'redis_echo', configuration: `cluster=${CLUSTER}\ntimeout=1000`,
    redisClusters: { [CLUSTER]: `redis://127.0.0.1:${redis.port}` },
  });
  try {
    await direct.settle();
    assert.deepEqual(direct.logMessages('info'), ['redis_init status=0']);
    const s = direct.stream();
    s.sendRequestHeaders([[':path', '/'], ['x-redis-cmd', 'INCR kit-counter']], true);
    await until(() => s.localResponse !== undefined, 10_000, 'the INCR reply');
    assert.equal(s.localResponse!.body.toString(), ':1\r\n');
  } finally {
    direct.close();
  }

  const other = await HostEmulator.load(pluginPath('redis-echo'), {
    name: 'redis-echo', rootId: 'redis_echo', configuration: 'cluster=outbound|6379||elsewhere\ntimeout=1000',
    redisClusters: { [CLUSTER]: `redis://127.0.0.1:${redis.port}` },
  });
  other.close();
  assert.ok(other.hostLogs.some((l) => String(l['msg']).includes(`Redis cluster 'outbound|6379||elsewhere' is not in redisClusters ('${CLUSTER}')`)), JSON.stringify(other.hostLogs));

  const none = await HostEmulator.load(pluginPath('redis-echo'), { name: 'redis-echo', rootId: 'redis_echo', configuration: `cluster=${CLUSTER}\ntimeout=1000` });
  none.close();
  assert.ok(none.hostLogs.some((l) => String(l['msg']).includes('this HostEmulator has no Redis: pass redisClusters')), JSON.stringify(none.hostLogs));
});

it('names the clusters a plugin asked for that the map lacks', async () => {
  const host = await HostEmulator.load(pluginPath('redis-echo'), {
    name: 'redis-echo', rootId: 'redis_echo', configuration: 'cluster=outbound|6379||not-in-the-map\ntimeout=1000', redis: clusters,
  });
  try {
    await host.settle();
    assert.deepEqual(clusters.unknownClusters, ['outbound|6379||not-in-the-map']);
  } finally {
    host.close();
  }
});

it('refuses URLs it would have to ignore parts of', () => {
  assert.throws(() => new RedisClusters({ a: 'redis://user:pw@127.0.0.1:6379' }), (e: unknown) => e instanceof ConfigError && /redis\["a"\]: credentials and database come from the plugin/.test(e.message));
  assert.throws(() => new RedisClusters({ a: 'rediss://127.0.0.1:6379' }), /TLS to Redis \(rediss:\/\/\) is not supported/);
  assert.throws(() => new RedisClusters({ a: 'http://127.0.0.1:80' }), /expected redis:\/\/host:port/);
});
