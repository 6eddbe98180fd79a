import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { AdminServer } from '../../src/admin/admin-server';
import { RedisPoolManager } from '../../src/redis/pool-manager';
import type { RedisReply } from '../../src/services/redis';
import { MetricsRegistry } from '../../src/services/metrics';
import { SharedDataStore } from '../../src/services/shared-data';
import { SharedQueueRegistry } from '../../src/services/shared-queue';
import { HostEmulator } from '../../src/testing/host-emulator';
import { ClusterManager } from '../../src/upstream/cluster-manager';
import { AdsClient } from '../../src/xds/ads-client';
import { pluginPath } from '../support/plugins';
import { RedisServer } from '../support/redis-server';
import { until } from '../support/until';
import { cla, edsCluster } from '../support/xds-fixtures';
import { XdsTestServer } from '../support/xds-server';
import { resp, text } from '../redis/helpers';
import { getJson, http, parseProm, promValue, statLines } from './helpers';

// Stats end to end with real parts: a gRPC ADS server -> AdsClient -> ClusterManager -> RedisPoolManager ->
// a password-protected redis-server, and the abi-probe plugin defining metrics in the shared registry. The
// Prometheus output is read back with parse-prometheus-text-format.

const SVC = 'outbound|6379||redis.default.svc.cluster.local';
const COLON = 'redis:colon';
const PASSWORD = 'S3cr3t-redis-pw';
const NODE = { id: 'sidecar~10.0.0.1~app-1.default~default.svc.cluster.local', cluster: 'app' };

let redis: RedisServer;
let xds: XdsTestServer;
let clusters: ClusterManager;
let pools: RedisPoolManager;
let ads: AdsClient;
let admin: AdminServer;
let port: number;
let probe: HostEmulator;
const metrics = new MetricsRegistry();
const owner = { label: 'admin-test/redis' };

function call(upstream: string, ...cmd: string[]): Promise<RedisReply> {
  return new Promise((resolve, reject) => {
    const [name, ...args] = cmd;
    const out = pools.call(owner, upstream, resp(name!, ...args), resolve);
    if (out.status !== 'ok') reject(new Error(out.status));
  });
}

before(async () => {
  redis = await RedisServer.start({ requirepass: PASSWORD });
  xds = await XdsTestServer.start();
  xds.setClusters([edsCluster(SVC), edsCluster(COLON)]);
  xds.setEndpoints([cla(SVC, [['127.0.0.1', redis.port]]), cla(COLON, [['127.0.0.1', redis.port]])]);
  xds.push();
  clusters = new ClusterManager();
  pools = new RedisPoolManager(clusters);
  ads = new AdsClient({ target: xds.target, node: NODE, sink: clusters, backoff: { baseMs: 20, maxMs: 200 } });
  admin = new AdminServer(
    { port: 0 },
    {
      state: () => (ads.isReady ? 'LIVE' : 'INITIALIZING'),
      bootstrap: { node: NODE },
      clusterManager: clusters,
      ads,
      redis: pools,
      metrics,
      plugins: () => [{ name: probe.plugin.config.name, rootId: probe.plugin.config.rootId, vmId: probe.plugin.config.vmId, abi: probe.plugin.abi, failed: probe.plugin.failed !== undefined }],
      commandLineOptions: {},
      startTime: new Date(),
      getLogLevel: () => 'info',
      setLogLevel: () => {},
    },
  );
  ({ port } = await admin.start());
  probe = await HostEmulator.load(pluginPath('abi-probe'), {
    name: 'probe-plugin',
    rootId: 'abi_probe',
    vmId: 'probe-vm',
    configuration: 'probe-config',
    shared: { sharedData: new SharedDataStore(), sharedQueues: new SharedQueueRegistry(), metrics },
  });
  ads.start();
  await ads.initialized;
});

after(async () => {
  probe?.close();
  await admin.close();
  await ads.close();
  await pools.destroy();
  clusters.close();
  await xds.close();
  await redis.stop();
});

async function runMetricsProbe(): Promise<void> {
  const s = probe.stream({ properties: { route_name: 'r1' } });
  s.sendRequestHeaders([[':method', 'GET'], [':path', '/probe'], [':authority', 'host'], ['x-probe', 'metrics']], true);
  s.sendResponseHeaders([[':status', '200']], true);
  s.complete();
  await probe.settle();
}

test('/ready follows the ADS client to LIVE', async () => {
  const r = await http(port, '/ready');
  assert.deepEqual([r.status, r.body], [200, 'LIVE\n']);
});

test('Redis traffic with a password: counters in /stats, cx_active in /clusters, the password nowhere', async () => {
  assert.equal(pools.init(owner, { upstream: SVC, username: '', password: PASSWORD, timeoutMs: 2000 }).status, 'ok');
  assert.equal(text(await call(SVC, 'SET', 'k', 'v')), '+OK\r\n');
  assert.equal(text(await call(SVC, 'GET', 'k')), '$1\r\nv\r\n');
  assert.match(text(await call(SVC, 'NOSUCHCOMMAND')), /^-ERR/);

  const stats = statLines((await http(port, '/stats')).body);
  assert.equal(stats.get(`redis.${SVC}.calls`), '3');
  assert.equal(stats.get(`redis.${SVC}.error_replies`), '1');
  assert.equal(stats.get(`redis.${SVC}.errors`), '0');
  assert.equal(stats.get(`redis.${SVC}.cx_active`), '1');
  assert.equal(stats.get(`cluster.${SVC}.upstream_cx_active`), '1');
  assert.equal(stats.get(`cluster.${SVC}.upstream_rq_total`), '3');

  const lines = (await http(port, '/clusters')).body.split('\n');
  assert.ok(lines.includes(`${SVC}::127.0.0.1:${redis.port}::cx_active::1`), lines.join('\n'));
  assert.ok(lines.includes(`${SVC}::127.0.0.1:${redis.port}::rq_total::3`));
  assert.ok(lines.includes(`${SVC}::eds_service_name::${SVC}`));

  for (const path of ['/stats', '/stats?format=json', '/stats/prometheus', '/clusters', '/clusters?format=json', '/config_dump?include_eds', '/server_info', '/plugins']) {
    const r = await http(port, path);
    assert.equal(r.status, 200, path);
    assert.ok(!r.body.includes(PASSWORD), `${path} leaks the Redis password`);
  }
  assert.ok(!JSON.stringify(pools.stats()).includes(PASSWORD), 'pool stats carry no credentials');
});

test('/stats/prometheus parses and carries Envoy names, labels and types', async () => {
  await runMetricsProbe();
  const r = await http(port, '/stats/prometheus');
  assert.equal(r.status, 200);
  assert.match(r.contentType, /^text\/plain; version=0\.0\.4/);
  const fams = parseProm(r.body);

  assert.equal(fams.get('envoy_cluster_manager_cds_update_success')?.type, 'COUNTER');
  assert.ok(promValue(fams, 'envoy_cluster_manager_cds_update_success')! >= 1);
  assert.equal(promValue(fams, 'envoy_cluster_manager_cds_update_rejected'), 0);
  assert.equal(promValue(fams, 'envoy_cluster_manager_cds_update_attempt')! >= 1, true);
  assert.equal(fams.get('envoy_cluster_manager_active_clusters')?.type, 'GAUGE');
  assert.equal(promValue(fams, 'envoy_cluster_manager_active_clusters'), 2);
  assert.equal(promValue(fams, 'envoy_cluster_manager_warming_clusters'), 0);
  assert.equal(promValue(fams, 'envoy_cluster_manager_cluster_added'), 2);
  assert.equal(promValue(fams, 'envoy_control_plane_connected_state'), 1);

  assert.equal(fams.get('envoy_cluster_membership_total')?.type, 'GAUGE');
  assert.equal(promValue(fams, 'envoy_cluster_membership_total', { envoy_cluster_name: SVC }), 1);
  assert.equal(promValue(fams, 'envoy_cluster_membership_healthy', { envoy_cluster_name: SVC }), 1);
  assert.equal(promValue(fams, 'envoy_cluster_membership_total', { envoy_cluster_name: 'redis_colon' }), 1, "':' becomes '_'");
  assert.ok(promValue(fams, 'envoy_cluster_update_success', { envoy_cluster_name: SVC })! >= 1, 'EDS updates per cluster');
  assert.equal(promValue(fams, 'envoy_cluster_upstream_cx_active', { envoy_cluster_name: SVC }), 1);
  assert.equal(fams.get('envoy_redis_calls')?.type, 'COUNTER');
  assert.equal(promValue(fams, 'envoy_redis_calls', { envoy_cluster_name: SVC }), 3);

  // Plugin metrics: wasmcustom. stripped, no envoy_ prefix.
  assert.equal(fams.get('probe_counter')?.type, 'COUNTER');
  assert.equal(promValue(fams, 'probe_counter'), 7);
  assert.equal(fams.get('probe_gauge')?.type, 'GAUGE');
  assert.equal(promValue(fams, 'probe_gauge'), 40);
  const hist = fams.get('probe_histogram');
  assert.equal(hist?.type, 'HISTOGRAM');
  assert.equal(hist?.metrics[0]?.count, '1');
  assert.equal(hist?.metrics[0]?.sum, '7');
  assert.equal(hist?.metrics[0]?.buckets?.['10'], '1');
  assert.equal(hist?.metrics[0]?.buckets?.['5'], '0');
  assert.ok(![...fams.keys()].some((n) => n.includes('wasmcustom')));
  for (const name of fams.keys()) assert.match(name, /^[a-zA-Z_:][a-zA-Z0-9_:]*$/);

  const stats = statLines((await http(port, '/stats?filter=wasmcustom')).body);
  assert.equal(stats.get('wasmcustom.probe_counter'), '7');
  assert.equal(stats.get('wasmcustom.probe_gauge'), '40');
  assert.match(stats.get('wasmcustom.probe_histogram') ?? '', /^P0\(nan,7\) P25\(nan,7\)/);
  assert.equal(statLines((await http(port, '/stats?filter=wasm\\.envoy')).body).get('wasm.envoy.wasm.runtime.v8.active'), '1');

  // A second scrape feeds only the new histogram observation.
  await runMetricsProbe();
  const again = parseProm((await http(port, '/stats/prometheus?filter=probe')).body);
  assert.equal(again.get('probe_histogram')?.metrics[0]?.count, '2');
  assert.equal(again.get('probe_histogram')?.metrics[0]?.sum, '14');
  assert.equal(promValue(again, 'probe_counter'), 14);
  assert.equal(again.get('envoy_cluster_membership_total'), undefined, 'filter applies to prometheus output');
});

test('EDS membership changes and cluster removal show in stats and /config_dump', async () => {
  const other = await RedisServer.start();
  try {
    xds.setEndpoints([cla(SVC, [['127.0.0.1', redis.port], ['127.0.0.1', other.port]]), cla(COLON, [['127.0.0.1', redis.port]])]);
    xds.push();
    await until(async () => statLines((await http(port, '/stats')).body).get(`cluster.${SVC}.membership_total`) === '2', 5000, 'membership 2');
    const stats = statLines((await http(port, '/stats')).body);
    assert.ok(Number(stats.get(`cluster.${SVC}.membership_change`)) >= 2);

    xds.setClusters([edsCluster(SVC)]);
    xds.push();
    await until(async () => statLines((await http(port, '/stats')).body).get('cluster_manager.cluster_removed') === '1', 5000, 'cluster removed');
    const after = statLines((await http(port, '/stats')).body);
    assert.equal(after.get('cluster_manager.active_clusters'), '1');
    assert.equal(after.get(`cluster.redis_colon.membership_total`), undefined);

    const dump = await getJson<{ configs: Record<string, unknown>[] }>(port, '/config_dump?resource=dynamic_active_clusters');
    assert.deepEqual(dump.configs.map((c) => (c['cluster'] as { name: string }).name), [SVC]);
    // Per-resource version: the CDS version at which this cluster was last loaded; the section carries the latest.
    assert.equal(dump.configs[0]!['version_info'], '1');
    const full = await getJson<{ configs: Record<string, unknown>[] }>(port, '/config_dump');
    assert.equal(full.configs[1]!['version_info'], ads.versionInfo('type.googleapis.com/envoy.config.cluster.v3.Cluster'));
    assert.equal(full.configs[1]!['version_info'], '2');
    const eds = await getJson<{ configs: { endpoint_config: { endpoints: { lb_endpoints: unknown[] }[] } }[] }>(
      port,
      '/config_dump?include_eds&resource=dynamic_endpoint_configs',
    );
    assert.equal(eds.configs[0]!.endpoint_config.endpoints[0]!.lb_endpoints.length, 2);
  } finally {
    await other.stop();
  }
});
