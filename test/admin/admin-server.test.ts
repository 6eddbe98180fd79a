import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { AdminServer } from '../../src/admin/admin-server';
import type { ServerState } from '../../src/admin/sources';
import { bootstrapFromJson, type Bootstrap } from '../../src/config/bootstrap';
import { LogLevelControl } from '../../src/observability/log-level';
import { MetricsRegistry } from '../../src/services/metrics';
import { ClusterManager } from '../../src/upstream/cluster-manager';
import type { HostSpec } from '../../src/upstream/types';
import { clusterConfig, hostSpec } from '../redis/helpers';
import { getJson, http, statLines } from './helpers';

// The admin endpoint over real HTTP, reading a real ClusterManager (a bootstrap STATIC cluster, an EDS cluster fed
// with setAssignment, a warming one) and a bootstrap parsed by the real loader.

const EDS = 'outbound|6379||redis:eds'; // ':' becomes '_' in stat names
const EDS_SVC = 'redis-eds-svc';
const WARMING = 'outbound|80||warming';
const CLUSTER_TYPE = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';

let bootstrap: Bootstrap;
let clusters: ClusterManager;
let admin: AdminServer;
let port: number;
let state: ServerState = 'PRE_INITIALIZING';
const logLines: string[] = [];
const rootLogger = pino(
  { level: 'info' },
  new Writable({
    write(chunk: Buffer, _enc, cb) {
      logLines.push(chunk.toString());
      cb();
    },
  }),
);
const levels = new LogLevelControl(rootLogger);
const componentLogger = rootLogger.child({ component: 'redis' }); // created after attach: follows /logging

function edsHosts(...ports: [number, HostSpec['health']][]): HostSpec[] {
  return ports.map(([p, health]) => ({ ...hostSpec('10.0.0.1', p), health, hostname: `redis-${p}`, locality: { region: 'r1', zone: 'z1', subZone: '' } }));
}

before(() => {
  bootstrap = bootstrapFromJson({
    node: { id: 'sidecar~10.0.0.1~app.default~default.svc.cluster.local', cluster: 'app', metadata: { ISTIO_VERSION: '1.20' } },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 15000 } } },
    static_resources: {
      clusters: [
        {
          name: 'static-a',
          type: 'STATIC',
          connect_timeout: '1s',
          circuit_breakers: { thresholds: [{ max_connections: 10 }, { priority: 'HIGH', max_retries: 5 }] },
          load_assignment: { cluster_name: 'static-a', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 7001 } } } }] }] },
        },
      ],
      listeners: [
        {
          name: 'main',
          address: { socket_address: { address: '127.0.0.1', port_value: 10000 } },
          filter_chains: [
            {
              filters: [
                {
                  name: 'envoy.filters.network.http_connection_manager',
                  typed_config: {
                    '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                    stat_prefix: 'ingress',
                    route_config: { name: 'r', virtual_hosts: [{ name: 'v', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'static-a' } }] }] },
                    http_filters: [
                      {
                        name: 'plugin',
                        typed_config: {
                          '@type': 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm',
                          config: {
                            name: 'p',
                            root_id: 'r',
                            vm_config: { runtime: 'envoy.wasm.runtime.v8', code: { local: { filename: '/p.wasm' } } },
                            configuration: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: '{"redis":{"service_name":"r","password":"hunter2"}}' },
                          },
                        },
                      },
                      { name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } },
                    ],
                  },
                },
              ],
            },
          ],
        },
      ],
      secrets: [{ name: 's', generic_secret: { secret: { inline_string: 'topsecret' } } }],
    },
  });
});

before(async () => {
  clusters = new ClusterManager();
  admin = new AdminServer(
    { address: bootstrap.admin?.address, port: 0 },
    {
      state: () => state,
      bootstrap: bootstrap.json,
      clusterManager: clusters,
      metrics: new MetricsRegistry(),
      plugins: () => [{ name: 'p', rootId: 'r', vmId: '', abi: '0_2_1', failed: false }],
      commandLineOptions: { config_path: '/etc/sidecar/bootstrap.yaml', concurrency: 1, log_level: 'info', config_yaml: 'redis_password: hunter2' },
      startTime: new Date(Date.now() - 5000),
      version: 'test/0.1.0/Clean/RELEASE/node',
      getLogLevel: () => levels.get(),
      setLogLevel: (l) => levels.set(l),
    },
  );
  ({ port } = await admin.start());
  for (const c of bootstrap.staticClusters) clusters.addOrUpdateCluster(c);
  const edsSource = { '@type': CLUSTER_TYPE, name: EDS, type: 'EDS', connect_timeout: '1s', eds_cluster_config: { eds_config: { ads: {} }, service_name: EDS_SVC } };
  clusters.addOrUpdateCluster(clusterConfig(EDS, [], { type: 'EDS', edsServiceName: EDS_SVC, versionInfo: 'v1', source: edsSource }));
  clusters.setAssignment(EDS_SVC, edsHosts([6379, 'HEALTHY'], [6380, 'UNHEALTHY']));
  clusters.addOrUpdateCluster(clusterConfig(WARMING, [], { type: 'EDS', edsServiceName: 'never', versionInfo: 'v1', source: { name: WARMING, type: 'EDS' } }));
});

after(async () => {
  await admin.close();
  await admin.close(); // idempotent
  clusters.close();
});

test('/ready is 503 with the state name until LIVE, then 200 LIVE', async () => {
  state = 'PRE_INITIALIZING';
  assert.deepEqual(await http(port, '/ready').then((r) => [r.status, r.body]), [503, 'PRE_INITIALIZING\n']);
  state = 'INITIALIZING';
  assert.deepEqual(await http(port, '/ready').then((r) => [r.status, r.body]), [503, 'INITIALIZING\n']);
  state = 'LIVE';
  assert.deepEqual(await http(port, '/ready').then((r) => [r.status, r.body]), [200, 'LIVE\n']);
  state = 'DRAINING';
  assert.equal((await http(port, '/ready')).status, 503);
  state = 'LIVE';
});

test('/server_info has ServerInfo fields, Duration uptimes, the node and redacted options', async () => {
  const info = await getJson(port, '/server_info');
  assert.deepEqual(Object.keys(info), ['version', 'state', 'uptime_current_epoch', 'uptime_all_epochs', 'hot_restart_version', 'command_line_options', 'node']);
  assert.equal(info['state'], 'LIVE');
  assert.match(String(info['uptime_current_epoch']), /^\d+s$/);
  assert.ok(Number.parseInt(String(info['uptime_all_epochs']), 10) >= 5);
  assert.equal((info['node'] as { id: string }).id, 'sidecar~10.0.0.1~app.default~default.svc.cluster.local');
  const opts = info['command_line_options'] as Record<string, unknown>;
  assert.equal(opts['config_path'], '/etc/sidecar/bootstrap.yaml');
  assert.ok(!JSON.stringify(info).includes('hunter2'));
});

test('/clusters text: per-cluster and per-host lines in Envoy shape, active clusters only', async () => {
  const r = await http(port, '/clusters');
  assert.equal(r.status, 200);
  assert.match(r.contentType, /^text\/plain/);
  const lines = r.body.trimEnd().split('\n');
  const a = lines.filter((l) => l.startsWith('static-a::'));
  assert.deepEqual(a, [
    'static-a::observability_name::static-a',
    'static-a::default_priority::max_connections::10',
    'static-a::default_priority::max_pending_requests::1024',
    'static-a::default_priority::max_requests::1024',
    'static-a::default_priority::max_retries::3',
    'static-a::high_priority::max_connections::1024',
    'static-a::high_priority::max_pending_requests::1024',
    'static-a::high_priority::max_requests::1024',
    'static-a::high_priority::max_retries::5',
    'static-a::added_via_api::false',
    'static-a::127.0.0.1:7001::cx_active::0',
    'static-a::127.0.0.1:7001::cx_connect_fail::0',
    'static-a::127.0.0.1:7001::cx_total::0',
    'static-a::127.0.0.1:7001::rq_active::0',
    'static-a::127.0.0.1:7001::rq_error::0',
    'static-a::127.0.0.1:7001::rq_success::0',
    'static-a::127.0.0.1:7001::rq_timeout::0',
    'static-a::127.0.0.1:7001::rq_total::0',
    'static-a::127.0.0.1:7001::hostname::',
    'static-a::127.0.0.1:7001::health_flags::healthy',
    'static-a::127.0.0.1:7001::weight::1',
    'static-a::127.0.0.1:7001::region::',
    'static-a::127.0.0.1:7001::zone::',
    'static-a::127.0.0.1:7001::sub_zone::',
    'static-a::127.0.0.1:7001::canary::false',
    'static-a::127.0.0.1:7001::priority::0',
    'static-a::127.0.0.1:7001::success_rate::-1',
    'static-a::127.0.0.1:7001::local_origin_success_rate::-1',
  ]);
  assert.ok(lines.includes(`${EDS}::added_via_api::true`));
  assert.ok(lines.includes(`${EDS}::eds_service_name::${EDS_SVC}`));
  assert.ok(lines.includes(`${EDS}::10.0.0.1:6379::health_flags::healthy`));
  assert.ok(lines.includes(`${EDS}::10.0.0.1:6380::health_flags::/failed_eds_health`));
  assert.ok(lines.includes(`${EDS}::10.0.0.1:6379::hostname::redis-6379`));
  assert.ok(lines.includes(`${EDS}::10.0.0.1:6379::region::r1`));
  assert.ok(!lines.some((l) => l.startsWith(`${WARMING}::`)), 'warming clusters are not listed');
  assert.ok(!lines.some((l) => l.startsWith('static-a::') && l.includes('eds_service_name')));
});

test('/clusters?format=json: envoy.admin.v3.Clusters', async () => {
  const body = await getJson<{ cluster_statuses: Record<string, unknown>[] }>(port, '/clusters?format=json');
  const names = body.cluster_statuses.map((c) => c['name']);
  assert.deepEqual(names, [EDS, 'static-a']);
  const eds = body.cluster_statuses[0]!;
  assert.equal(eds['added_via_api'], true);
  assert.equal(eds['eds_service_name'], EDS_SVC);
  assert.equal(eds['observability_name'], EDS);
  const hosts = eds['host_statuses'] as Record<string, unknown>[];
  assert.deepEqual(hosts[0]!['address'], { socket_address: { address: '10.0.0.1', port_value: 6379 } });
  assert.deepEqual(hosts[1]!['health_status'], { eds_health_status: 'UNHEALTHY' });
  assert.deepEqual(hosts[0]!['locality'], { region: 'r1', zone: 'z1' });
  assert.equal(hosts[0]!['hostname'], 'redis-6379');
  const stats = hosts[0]!['stats'] as { name: string; type?: string }[];
  assert.deepEqual(stats.map((s) => s.name), ['cx_connect_fail', 'cx_total', 'rq_error', 'rq_success', 'rq_timeout', 'rq_total', 'cx_active', 'rq_active']);
  assert.equal(stats.find((s) => s.name === 'cx_active')?.type, 'GAUGE');
  const staticA = body.cluster_statuses[1]!;
  assert.equal(staticA['added_via_api'], undefined, 'false is a default and omitted');
  const cb = staticA['circuit_breakers'] as { thresholds: Record<string, unknown>[] };
  assert.equal(cb.thresholds[0]!['max_connections'], 10);
  assert.equal(cb.thresholds[1]!['priority'], 'HIGH');
});

test('/config_dump: Envoy order, static/dynamic/warming clusters with @type, secrets redacted', async () => {
  const dump = await getJson<{ configs: Record<string, unknown>[] }>(port, '/config_dump');
  assert.deepEqual(
    dump.configs.map((c) => c['@type']),
    [
      'type.googleapis.com/envoy.admin.v3.BootstrapConfigDump',
      'type.googleapis.com/envoy.admin.v3.ClustersConfigDump',
      'type.googleapis.com/envoy.admin.v3.ListenersConfigDump',
      // The static listener's inline route_config, as Envoy lists it (static_route_configs).
      'type.googleapis.com/envoy.admin.v3.RoutesConfigDump',
    ],
  );
  const boot = dump.configs[0]!;
  assert.equal((boot['bootstrap'] as { node: { id: string } }).node.id, bootstrap.node.id);
  assert.match(String(boot['last_updated']), /^\d{4}-\d\d-\d\dT/);
  const cds = dump.configs[1] as {
    static_clusters: { cluster: Record<string, unknown>; last_updated: string }[];
    dynamic_active_clusters: { version_info: string; cluster: Record<string, unknown>; last_updated: string }[];
    dynamic_warming_clusters: { cluster: Record<string, unknown> }[];
  };
  assert.equal(cds.static_clusters.length, 1);
  assert.equal(cds.static_clusters[0]!.cluster['@type'], CLUSTER_TYPE);
  assert.equal(cds.static_clusters[0]!.cluster['name'], 'static-a');
  assert.equal(cds.static_clusters[0]!.cluster['connect_timeout'], '1s');
  assert.deepEqual(cds.dynamic_active_clusters.map((c) => [c.version_info, c.cluster['name'], c.cluster['@type']]), [['v1', EDS, CLUSTER_TYPE]]);
  assert.match(cds.dynamic_active_clusters[0]!.last_updated, /Z$/);
  assert.deepEqual(cds.dynamic_warming_clusters.map((c) => c.cluster['name']), [WARMING]);
  const text = JSON.stringify(dump);
  assert.ok(!text.includes('hunter2'), 'plugin configuration password');
  assert.ok(!text.includes('topsecret'), 'inline SDS secret');
  assert.ok(text.includes('[redacted]'));
  const listeners = dump.configs[2] as { static_listeners: { listener: Record<string, unknown> }[] };
  assert.equal(listeners.static_listeners[0]!.listener['@type'], 'type.googleapis.com/envoy.config.listener.v3.Listener');
  assert.equal(listeners.static_listeners[0]!.listener['name'], 'main');
});

test('/config_dump?resource= returns the list entries with their own @type', async () => {
  const dyn = await getJson<{ configs: Record<string, unknown>[] }>(port, '/config_dump?resource=dynamic_active_clusters');
  assert.equal(dyn.configs.length, 1);
  assert.equal(dyn.configs[0]!['@type'], 'type.googleapis.com/envoy.admin.v3.ClustersConfigDump.DynamicCluster');
  assert.equal((dyn.configs[0]!['cluster'] as { name: string }).name, EDS);
  const st = await getJson<{ configs: Record<string, unknown>[] }>(port, '/config_dump?resource=static_clusters');
  assert.equal(st.configs[0]!['@type'], 'type.googleapis.com/envoy.admin.v3.ClustersConfigDump.StaticCluster');
  const filtered = await getJson<{ configs: unknown[] }>(port, `/config_dump?resource=dynamic_active_clusters&name_regex=${encodeURIComponent('^nomatch')}`);
  assert.deepEqual(filtered.configs, []);
  assert.equal((await http(port, '/config_dump?resource=no_such_field')).status, 404);
  assert.equal((await http(port, '/config_dump?resource=version_info')).status, 400);
  assert.equal((await http(port, '/config_dump?resource=dynamic_endpoint_configs')).status, 404, 'endpoints need include_eds');
});

test('/config_dump?include_eds adds an EndpointsConfigDump rebuilt from current hosts', async () => {
  const dump = await getJson<{ configs: Record<string, unknown>[] }>(port, '/config_dump?include_eds');
  assert.deepEqual(
    dump.configs.map((c) => String(c['@type']).split('.').pop()),
    ['BootstrapConfigDump', 'ClustersConfigDump', 'EndpointsConfigDump', 'ListenersConfigDump', 'RoutesConfigDump'],
  );
  const eps = dump.configs[2] as {
    static_endpoint_configs: { endpoint_config: Record<string, unknown> }[];
    dynamic_endpoint_configs: { endpoint_config: { '@type': string; cluster_name: string; endpoints: { locality: unknown; lb_endpoints: Record<string, unknown>[] }[] } }[];
  };
  assert.equal(eps.static_endpoint_configs[0]!.endpoint_config['cluster_name'], 'static-a');
  const cla = eps.dynamic_endpoint_configs[0]!.endpoint_config;
  assert.equal(cla['@type'], 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment');
  assert.equal(cla.cluster_name, EDS_SVC);
  assert.deepEqual(cla.endpoints[0]!.locality, { region: 'r1', zone: 'z1' });
  assert.deepEqual(
    cla.endpoints[0]!.lb_endpoints.map((e) => e['health_status']),
    ['HEALTHY', 'UNHEALTHY'],
  );
  const only = await getJson<{ configs: Record<string, unknown>[] }>(port, '/config_dump?include_eds&resource=dynamic_endpoint_configs');
  assert.equal(only.configs[0]!['@type'], 'type.googleapis.com/envoy.admin.v3.EndpointsConfigDump.DynamicEndpointConfig');
});

test('/stats: sorted name: value lines, Envoy names, filter, cluster manager event counters', async () => {
  const before = statLines((await http(port, '/stats')).body);
  const names = [...before.keys()];
  assert.deepEqual(names, [...names].sort());
  assert.equal(before.get('cluster_manager.active_clusters'), '2');
  assert.equal(before.get('cluster_manager.warming_clusters'), '1');
  assert.equal(before.get('cluster.outbound|6379||redis_eds.membership_total'), '2');
  assert.equal(before.get('cluster.outbound|6379||redis_eds.membership_healthy'), '1');
  assert.equal(before.get('cluster.static-a.membership_total'), '1');
  assert.equal(before.get('server.live'), '1');
  const added = Number(before.get('cluster_manager.cluster_added'));

  clusters.addOrUpdateCluster(clusterConfig('temp', [['127.0.0.1', 7002]]));
  clusters.addOrUpdateCluster(clusterConfig('temp', [['127.0.0.1', 7003]]));
  clusters.removeCluster('temp');
  clusters.setAssignment(EDS_SVC, edsHosts([6379, 'HEALTHY'], [6380, 'HEALTHY'], [6381, 'DEGRADED']));
  const after = statLines((await http(port, '/stats?filter=^cluster')).body);
  assert.equal(Number(after.get('cluster_manager.cluster_added')), added + 1);
  assert.equal(after.get('cluster_manager.cluster_modified'), '1');
  assert.equal(after.get('cluster_manager.cluster_removed'), '1');
  assert.equal(after.get('cluster.outbound|6379||redis_eds.membership_total'), '3');
  assert.equal(after.get('cluster.outbound|6379||redis_eds.membership_healthy'), '2');
  assert.equal(after.get('cluster.outbound|6379||redis_eds.membership_degraded'), '1');
  assert.ok(![...after.keys()].some((k) => k.startsWith('server.')), 'filter applied');
  assert.equal((await http(port, '/stats?filter=(')).status, 400);

  const json = await getJson<{ stats: { name: string; value: number }[] }>(port, '/stats?format=json&filter=active_clusters');
  assert.deepEqual(json.stats, [{ name: 'cluster_manager.active_clusters', value: 2 }]);
});

test('/logging: GET refused (mutates state), POST lists and changes the level of every logger', async () => {
  const get = await http(port, '/logging?level=debug');
  assert.equal(get.status, 405);
  assert.equal(get.body, 'Method GET not allowed, POST required.');
  assert.equal(levels.get(), 'info');

  const list = await http(port, '/logging', 'POST');
  assert.equal(list.status, 200);
  assert.match(list.body, /^active loggers:\n {2}sidecar: info\n/);

  componentLogger.debug('before');
  const set = await http(port, '/logging?level=debug', 'POST');
  assert.equal(set.status, 200);
  assert.match(set.body, /sidecar: debug/);
  assert.equal(rootLogger.level, 'debug');
  assert.equal(componentLogger.level, 'debug', 'children follow');
  componentLogger.debug('after');
  assert.ok(logLines.some((l) => l.includes('"after"')) && !logLines.some((l) => l.includes('"before"')));

  assert.equal((await http(port, '/logging?level=warn', 'POST')).status, 200);
  assert.equal(componentLogger.level, 'warn');
  const bad = await http(port, '/logging?level=loud', 'POST');
  assert.equal(bad.status, 404);
  assert.match(bad.body, /levels: trace debug info warning error critical off/);
  assert.equal(levels.get(), 'warning');
  await http(port, '/logging?level=info', 'POST');
});

test('/help is generated from the route table; unknown paths 404 with the help; loopback only', async () => {
  const help = await http(port, '/help');
  assert.equal(help.status, 200);
  for (const r of admin.routes) assert.ok(help.body.includes(`  ${r.path}: ${r.help}\n`), r.path);
  assert.match(help.body, /^admin commands are:\n/);
  const missing = await http(port, '/nope');
  assert.equal(missing.status, 404);
  assert.match(missing.body, /^invalid path\. admin commands are:/);
  const plugins = await getJson<{ plugins: unknown[] }>(port, '/plugins');
  assert.deepEqual(plugins.plugins, [{ name: 'p', root_id: 'r', vm_id: '', abi: '0_2_1', failed: false }]);

  const defaulted = new AdminServer({ port: 0 }, {
    state: () => 'LIVE',
    bootstrap: {},
    clusterManager: clusters,
    metrics: new MetricsRegistry(),
    plugins: () => [],
    commandLineOptions: {},
    startTime: new Date(),
    getLogLevel: () => 'info',
    setLogLevel: () => {},
  });
  try {
    const { port: p2 } = await defaulted.start();
    const r = await http(p2, '/server_info');
    assert.equal(r.status, 200);
    assert.match((JSON.parse(r.body) as { version: string }).version, /^proxy-wasm-sidecar\/0\.1\.0\//);
    assert.equal(defaulted.boundAddress()?.address, '127.0.0.1', 'loopback by default');
  } finally {
    await defaulted.close();
  }
});
