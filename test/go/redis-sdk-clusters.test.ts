import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TempDir } from '../http/helpers';
import { RedisServer } from '../support/redis-server';
import { initReports, runOps, type ClientConfig, type GoRedisSidecar, startGoRedisSidecar } from '../redis/go-sdk-fixture';

// wasm-go v1.1.1's RedisClusterClient built from every cluster type the SDK has (pkg/wrapper/cluster_wrapper.go),
// each initialised in parseConfig with username/password/timeout/database, against a bootstrap that declares
// clusters of exactly the names the SDK derives, each pointing at its own real redis-server.

interface Case {
  readonly client: ClientConfig;
  /** The upstream cluster name the SDK derives from the cluster type (and the bootstrap declares). */
  readonly clusterName: string;
  readonly dns?: boolean;
  readonly requirepass?: string;
  readonly aclUser?: { name: string; password: string };
}

const TARGET_PASS = 'p w&db=9?x=%41#';

const CASES: readonly Case[] = [
  {
    client: { name: 'fqdn', cluster: { type: 'fqdn', fqdn: 'redis.default.svc.cluster.local', port: 6379 }, password: 'fqdn-pass', timeout: 10_000, database: 1 },
    clusterName: 'outbound|6379||redis.default.svc.cluster.local',
    requirepass: 'fqdn-pass',
  },
  {
    client: { name: 'k8s', cluster: { type: 'k8s', service: 'redis-k8s', namespace: 'cache', port: 6379, version: 'v1' }, username: 'k8s-user', password: 'k8s-pass', timeout: 10_000, database: 2 },
    clusterName: 'outbound|6379|v1|redis-k8s.cache.svc.cluster.local',
    requirepass: 'default-pass',
    aclUser: { name: 'k8s-user', password: 'k8s-pass' },
  },
  {
    client: { name: 'static', cluster: { type: 'static', service: 'redis-static', port: 6380 }, timeout: 10_000, database: 3 },
    clusterName: 'outbound|6380||redis-static.static',
  },
  {
    client: { name: 'dns', cluster: { type: 'dns', service: 'redis-dns', domain: 'localhost', port: 6379 }, timeout: 10_000, database: 4 },
    clusterName: 'outbound|6379||redis-dns.dns',
    dns: true,
  },
  {
    client: { name: 'nacos', cluster: { type: 'nacos', service: 'redis-nacos', group: 'CACHE_GROUP', namespace_id: 'ns-1', port: 6379, ext_registry: true }, timeout: 10_000, database: 5 },
    clusterName: 'outbound|6379||redis-nacos.CACHE-GROUP.ns-1.nacos-ext',
  },
  {
    client: { name: 'consul', cluster: { type: 'consul', service: 'redis-consul', datacenter: 'dc1', port: 6379 }, timeout: 10_000, database: 6 },
    clusterName: 'outbound|6379||redis-consul.dc1.consul',
  },
  {
    // Credentials are used raw (no URL decoding), so a password may hold what a query string would split on.
    client: { name: 'target', cluster: { type: 'target', cluster: 'redis-target' }, password: TARGET_PASS, timeout: 10_000, database: 7 },
    clusterName: 'redis-target',
    requirepass: TARGET_PASS,
  },
  {
    // RouteCluster's name is the request's route cluster, so it can only be initialised in a request.
    client: { name: 'route', cluster: { type: 'route' }, timeout: 10_000, database: 8, init: 'request' },
    clusterName: 'outbound|6379||redis-route.default.svc.cluster.local',
  },
];

const tmp = new TempDir();
const servers = new Map<string, RedisServer>();
let env: GoRedisSidecar;

before(async () => {
  await Promise.all(
    CASES.map(async (c) => {
      servers.set(
        c.client.name,
        await RedisServer.start({
          ...(c.requirepass ? { requirepass: c.requirepass } : {}),
          ...(c.aclUser ? { users: [c.aclUser] } : {}),
        }),
      );
    }),
  );
  env = await startGoRedisSidecar(tmp, {
    clients: [
      ...CASES.map((c) => c.client),
      // The same RouteCluster initialised while the configuration is parsed: there is no route yet.
      { name: 'route-at-config', cluster: { type: 'route' }, timeout: 10_000 },
    ],
    clusters: CASES.map((c) => ({ name: c.clusterName, port: servers.get(c.client.name)!.port, ...(c.dns ? { dns: true } : {}) })),
    redisRoute: { prefix: '/route/', cluster: CASES.find((c) => c.client.name === 'route')!.clusterName },
  });
});

after(async () => {
  await env?.close();
  await Promise.all([...servers.values()].map((s) => s.stop()));
  tmp.cleanup();
});

const prefixOf = (name: string): string => (name === 'route' ? '/route' : '');

describe('cluster types of wasm-go v1.1.1', () => {
  it('derives the Envoy/Higress cluster names and initialises each client while parsing the configuration', async () => {
    const reports = await initReports(env.url);
    for (const c of CASES.filter((x) => x.client.init !== 'request')) {
      const r = reports.find((x) => x.name === c.client.name);
      assert.deepEqual(r, { name: c.client.name, cluster: c.clusterName, phase: 'config', err: '', ready: true, done: true });
      assert.equal(
        env.logs.pluginMatching(`redis-client init name=${c.client.name} cluster=${c.clusterName} phase=config ready=true err=`).length,
        1,
      );
    }
    // What the host received from proxy_redis_init: the pool it built for each cluster carries the init's
    // database, timeout and kind of credentials (never the credentials themselves).
    const pools = env.logs.records.filter((r) => r['msg'] === 'redis pool created');
    for (const c of CASES.filter((x) => x.client.init !== 'request')) {
      const pool = pools.find((p) => p['cluster'] === c.clusterName);
      assert.ok(pool, `no pool for ${c.clusterName}`);
      assert.equal(pool['db'], String(c.client.database));
      assert.equal(pool['opTimeoutMs'], c.client.timeout);
      assert.equal(pool['auth'], c.client.username ? 'user' : c.client.password ? 'password' : 'none');
      assert.ok(!JSON.stringify(pool).includes(c.client.password ?? '\0'), 'no password in the log');
    }
    // RouteCluster outside a request: cluster_name is not available, the SDK logs it and proxy_redis_init gets an
    // empty cluster name, which the host refuses (BadArgument); wasm-go's Init swallows that and stays not ready.
    const early = reports.find((x) => x.name === 'route-at-config');
    assert.deepEqual(early, { name: 'route-at-config', cluster: '', phase: 'config', err: '', ready: false, done: true });
    assert.ok(env.logs.pluginMatching('get route cluster failed').length >= 1);
    assert.ok(env.logs.pluginMatching('failed to init redis: error status returned by host: bad argument, will retry later').length >= 1);
    assert.equal(reports.find((x) => x.name === 'route')!.done, false);
  });

  for (const c of CASES) {
    it(`${c.client.name}: ${c.clusterName} reaches its own redis-server with the init's credentials and database`, async () => {
      const key = `who:${c.client.name}`;
      const { client, results } = await runOps(
        env.url,
        c.client.name,
        [
          { op: 'Set', args: [key, c.client.name] },
          { op: 'Command', args: [['CLIENT', 'INFO']] },
        ],
        prefixOf(c.client.name),
      );
      assert.equal(client.cluster, c.clusterName);
      assert.equal(client.ready, true);
      assert.equal(client.err, '');
      assert.equal(client.phase, c.client.init === 'request' ? 'request' : 'config');
      assert.deepEqual(results[0], { op: 'Set', reply: { type: 'SimpleString', str: 'OK' } });
      // The plugin's own connection, as Redis sees it: SELECTed into the init's database, AUTHed as its user.
      const info = results[1]!.reply!.str ?? '';
      assert.match(info, new RegExp(`\\bdb=${c.client.database}\\b`));
      assert.match(info, new RegExp(`\\buser=${c.aclUser?.name ?? 'default'}\\b`));

      // Redis holds the value in that database of that server, and nowhere else.
      const own = servers.get(c.client.name)!;
      const inDb = own.client({ db: c.client.database ?? 0 });
      assert.equal(await inDb.get(key), c.client.name);
      assert.equal(await own.client({ db: 0 }).exists(key), 0);
      for (const [name, other] of servers) {
        if (name === c.client.name) continue;
        assert.equal(await other.client({ db: c.client.database ?? 0 }).exists(key), 0, `${key} leaked to ${name}`);
      }
    });
  }

  it('logs the request-time init of the RouteCluster with the route cluster name', () => {
    const route = CASES.find((c) => c.client.name === 'route')!;
    assert.equal(env.logs.pluginMatching(`redis-client init name=route cluster=${route.clusterName} phase=request ready=true err=`).length, 1);
    assert.equal(env.backend.requests.length, 0, 'every request was answered by the plugin');
  });
});
