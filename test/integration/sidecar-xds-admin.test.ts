import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'undici';
import { Sidecar } from '../../src/main';
import { silentLogger } from '../../src/common/logger';
import { claJson, edsClusterJson } from '../../src/example/control-plane';
import { freePort } from '../../src/common/free-port';
import { XdsTestServer } from '../support/xds-server';
import { RedisServer } from '../support/redis-server';
import { until } from '../support/until';
import { bootstrapJson, TempDir, Upstream } from '../http/helpers';

// The whole sidecar from one bootstrap: admin up first (/ready 503 while the initial xDS fetch is pending),
// then CDS/EDS, then the plugin (its proxy_redis_init finds the xDS cluster, with its password), then LIVE.

const REDIS = 'outbound|6379||redis.default.svc.cluster.local';
const tmp = new TempDir();
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
  tmp.cleanup();
});

test('admin answers 503 until the initial xDS fetch, then the plugin uses the xDS cluster and /ready is 200', async () => {
  const redis = await RedisServer.start({ requirepass: 's3cret-pw' });
  cleanups.push(() => redis.stop());
  const up = await Upstream.start();
  cleanups.push(() => up.close());
  const [xdsPort, adminPort] = [await freePort(), await freePort()];
  const doc = bootstrapJson({
    filters: [{ plugin: 'redis-gate', name: 'replay', rootId: 'redis_gate', configuration: `cluster=${REDIS}\npassword=s3cret-pw\nttl=60` }],
    clusters: [{ name: 'backend', port: up.port }, { name: 'xds-grpc', port: xdsPort }],
  });
  Object.assign(doc, {
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: adminPort } } },
    dynamic_resources: {
      ads_config: { api_type: 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'xds-grpc' } }] },
      cds_config: { ads: {}, resource_api_version: 'V3', initial_fetch_timeout: '0s' },
    },
  });
  const file = tmp.write('bootstrap.json', doc);
  const starting = Sidecar.start({ configFile: file, logger: silentLogger() });
  starting.catch(() => {});
  const admin = `http://127.0.0.1:${adminPort}`;
  await until(async () => (await request(`${admin}/ready`).catch(() => undefined))?.statusCode === 503, 10_000, 'admin up and not ready');
  const notReady = await request(`${admin}/ready`);
  assert.equal(notReady.statusCode, 503);
  assert.match(await notReady.body.text(), /INITIALIZING/);

  const xds = await XdsTestServer.start({ port: xdsPort });
  cleanups.push(() => xds.close());
  xds.setClusters([edsClusterJson(REDIS)]);
  xds.setEndpoints([claJson(REDIS, [['127.0.0.1', redis.port]])]);
  xds.push();
  const sidecar = await starting;
  cleanups.push(() => sidecar.stop());
  const ready = await request(`${admin}/ready`);
  assert.equal(ready.statusCode, 200);
  assert.equal((await ready.body.text()).trim(), 'LIVE');

  // The plugin initialised against the xDS cluster with its password: AUTH works, replays are refused.
  const url = `http://127.0.0.1:${sidecar.publicListeners[0]!.port}/`;
  const first = await request(url, { headers: { 'x-nonce': 'n1' } });
  await first.body.text();
  assert.equal(first.statusCode, 200);
  const replay = await request(url, { headers: { 'x-nonce': 'n1' } });
  await replay.body.text();
  assert.equal(replay.statusCode, 429);
  assert.equal(await redis.client().get('replay-protection:n1'), '1');

  const clusters = await (await request(`${admin}/clusters`)).body.text();
  assert.match(clusters, new RegExp(`^${REDIS.replace(/\|/g, '\\|')}::127\\.0\\.0\\.1:${redis.port}::health_flags::healthy$`, 'm'));
  assert.match(clusters, new RegExp(`^${REDIS.replace(/\|/g, '\\|')}::added_via_api::true$`, 'm'));
  const dump = await (await request(`${admin}/config_dump`)).body.text();
  assert.ok(!dump.includes('s3cret-pw'), 'the Redis password never appears in /config_dump');
  assert.ok(dump.includes('type.googleapis.com/envoy.admin.v3.ClustersConfigDump'));
  const clustersDump = (JSON.parse(dump) as { configs: Array<Record<string, unknown>> }).configs.find((c) => c['@type'] === 'type.googleapis.com/envoy.admin.v3.ClustersConfigDump')!;
  const dynamic = clustersDump['dynamic_active_clusters'] as Array<{ cluster: { name: string }; client_status?: string; version_info?: string }>;
  const redisEntry = dynamic.find((d) => d.cluster.name === REDIS);
  assert.equal(redisEntry?.client_status, 'ACKED');
  assert.equal(redisEntry?.version_info, '1');
  const stats = await (await request(`${admin}/stats`)).body.text();
  assert.match(stats, new RegExp(`^cluster\\.${REDIS.replace(/\|/g, '\\|')}\\.update_success: 1$`, 'm'));
  assert.match(stats, new RegExp(`^cluster\\.${REDIS.replace(/\|/g, '\\|')}\\.init_fetch_timeout: 0$`, 'm'));
  const prom = await (await request(`${admin}/stats/prometheus`)).body.text();
  assert.match(prom, /^envoy_cluster_manager_active_clusters(\{[^}]*\})? 3$/m);
  assert.match(prom, /^envoy_control_plane_connected_state(\{[^}]*\})? 1$/m);
  assert.ok(!prom.includes('s3cret-pw'));
});
