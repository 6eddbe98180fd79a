import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { silentLogger } from '../../src/common/logger';
import { parseBootstrap } from '../../src/config/bootstrap';
import { Sidecar } from '../../src/main';
import { GoControlPlane } from '../gocp/go-control-plane';
import { CDS, istioCla, istioEdsCluster } from '../gocp/mesh';
import { asArray, asObject, CLI, EXAMPLE_POD, loadManifests, only, renderBootstrap, type Json } from './support';

// The bootstrap of deploy/kubernetes as each pod gets it: the render-bootstrap initContainer's own command run
// on the ConfigMap's template with the downward API values of a pod, then checked for what an Istio
// sidecar's bootstrap has (nothing but ADS; node id and metadata as pilot-agent writes them), loaded by the
// sidecar's loader and `cli.js validate`, and finally run against a control plane that sees that identity.

const dir = mkdtempSync(join(tmpdir(), 'pws-deploy-bootstrap-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const deployment = (): Json => only(loadManifests(), 'Deployment');

function rendered(): Json {
  const r = renderBootstrap(deployment());
  assert.equal(r.status, 0, `render-bootstrap failed: ${r.stderr}`);
  return asObject(parseYaml(r.text), 'rendered bootstrap');
}

test('each pod gets the node id and metadata an Istio sidecar sends', () => {
  const node = asObject(rendered()['node'], 'node');
  const p = EXAMPLE_POD;
  assert.equal(node['id'], `sidecar~${p.ip}~${p.name}.${p.namespace}~${p.namespace}.svc.cluster.local`);
  assert.equal(node['cluster'], `echo.${p.namespace}`);
  assert.deepEqual(node['metadata'], {
    NAME: p.name,
    NAMESPACE: p.namespace,
    INSTANCE_IPS: p.ip,
    SERVICE_ACCOUNT: p.serviceAccount,
    WORKLOAD_NAME: 'echo',
    CLUSTER_ID: 'Kubernetes',
    MESH_ID: 'cluster.local',
    ISTIO_VERSION: '1.24.0',
    INTERCEPTION_MODE: 'NONE',
    LABELS: p.labels,
  });
});

test('another pod gets its own identity, with label values that need quoting kept exactly', () => {
  const pod = { name: 'echo-5c9f-abcde', namespace: 'team-b', ip: 'fd00::17', serviceAccount: 'echo', labels: { 'app.kubernetes.io/name': 'echo', note: 'say "hi"\\now' } };
  const r = renderBootstrap(deployment(), pod);
  assert.equal(r.status, 0, r.stderr);
  const node = asObject(asObject(parseYaml(r.text), 'bootstrap')['node'], 'node');
  assert.equal(node['id'], 'sidecar~fd00::17~echo-5c9f-abcde.team-b~team-b.svc.cluster.local');
  assert.equal(node['metadata']['NAMESPACE'], 'team-b');
  assert.deepEqual(node['metadata']['LABELS'], pod.labels);
});

test('a downward API value that is missing stops the pod instead of giving it some other identity', () => {
  const r = renderBootstrap(deployment(), EXAMPLE_POD, { POD_NAMESPACE: undefined, INSTANCE_IP: '' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /not set: .*INSTANCE_IP/);
  assert.match(r.stderr, /POD_NAMESPACE/);
  assert.equal(r.text, '', 'no bootstrap written');
});

test('the bootstrap has nothing but ADS: no static listener, the control plane the only static cluster', () => {
  const b = rendered();
  const statics = asObject(b['static_resources'], 'static_resources');
  assert.equal(statics['listeners'], undefined, 'listeners come over LDS');
  const clusters = asArray(statics['clusters'], 'clusters');
  assert.deepEqual(clusters.map((c) => c['name']), ['xds-grpc']);
  assert.match(JSON.stringify(clusters[0]!['load_assignment']), /"address":"istiod\.istio-system\.svc","port_value":15010/);
  assert.deepEqual(clusters[0]!['typed_extension_protocol_options']['envoy.extensions.upstreams.http.v3.HttpProtocolOptions']['explicit_http_config'], { http2_protocol_options: {} });
  const dyn = asObject(b['dynamic_resources'], 'dynamic_resources');
  assert.deepEqual(dyn['ads_config'], { api_type: 'DELTA_GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'xds-grpc' } }], set_node_on_first_message_only: true });
  const ads = { ads: {}, resource_api_version: 'V3', initial_fetch_timeout: '0s' };
  assert.deepEqual(dyn['cds_config'], ads);
  assert.deepEqual(dyn['lds_config'], ads);
  assert.deepEqual(Object.keys(dyn).sort(), ['ads_config', 'cds_config', 'lds_config']);
  // Admin on 0.0.0.0 (the kubelet probes it) at the port the Deployment probes.
  assert.deepEqual(b['admin']['address']['socket_address'], { address: '0.0.0.0', port_value: 15000 });

  const loaded = parseBootstrap(stringifyYaml(b), 'yaml');
  assert.equal(loaded.staticListeners.length, 0);
  assert.deepEqual(loaded.staticClusters.map((c) => c.name), ['xds-grpc']);
  assert.equal(loaded.node.id, b['node']['id']);
});

const cliMissing = !existsSync(CLI);
test('`cli.js validate` accepts the rendered bootstrap and rejects a broken one', { skip: cliMissing ? `${CLI} is not built` : false }, () => {
  const good = join(dir, 'bootstrap.yaml');
  writeFileSync(good, renderBootstrap(deployment()).text);
  const ok = spawnSync(process.execPath, [CLI, 'validate', '-c', good], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(ok.status, 0, `validate exited ${String(ok.status ?? ok.signal)}\nstdout: ${ok.stdout}\nstderr: ${ok.stderr}`);
  // Without the cluster ads_config names, the same file must fail, or the check above proves nothing.
  const broken = rendered();
  broken['static_resources']['clusters'] = [];
  const bad = join(dir, 'broken.yaml');
  writeFileSync(bad, stringifyYaml(broken));
  const no = spawnSync(process.execPath, [CLI, 'validate', '-c', bad], { encoding: 'utf8', timeout: 60_000 });
  assert.notEqual(no.status, 0, `validate accepted a bootstrap whose ADS cluster is missing\nstdout: ${no.stdout}`);
});

test('the rendered bootstrap runs: the control plane sees the pod identity over Delta ADS and the sidecar takes its clusters', async () => {
  const cp = await GoControlPlane.start();
  let sidecar: Sidecar | undefined;
  try {
    const redis = 'outbound|6379||redis.default.svc.cluster.local';
    await cp.set({ version: '1', resources: [{ '@type': CDS, ...istioEdsCluster(redis) }, istioCla(redis, [6379], 'default')] });
    const b = rendered();
    // The pod's istiod and admin address, moved to this machine's loopback.
    b['static_resources']['clusters'][0]['load_assignment']['endpoints'][0]['lb_endpoints'][0]['endpoint']['address']['socket_address'] = { address: '127.0.0.1', port_value: cp.port };
    b['admin']['address']['socket_address'] = { address: '127.0.0.1', port_value: 0 };
    const file = join(dir, 'running.yaml');
    writeFileSync(file, stringifyYaml(b));
    sidecar = await Sidecar.start({ configFile: file, logger: silentLogger(), drainTimeoutMs: 1000 });
    const first = await cp.waitFor((e) => e.event === 'request' && e['delta'] === true, 'the first Delta request');
    assert.equal(first['node']['id'], `sidecar~${EXAMPLE_POD.ip}~${EXAMPLE_POD.name}.${EXAMPLE_POD.namespace}~${EXAMPLE_POD.namespace}.svc.cluster.local`);
    assert.equal(first['node']['cluster'], `echo.${EXAMPLE_POD.namespace}`);
    assert.deepEqual(first['node']['metadata'], b['node']['metadata']);
    await cp.ack(CDS, '1');
    assert.ok(sidecar.clusterManager.has(redis), 'the Redis cluster arrived over CDS');
    // Once its clusters have warmed, as Envoy orders it.
    await cp.waitFor((e) => e.event === 'request' && e['typeUrl'] === 'type.googleapis.com/envoy.config.listener.v3.Listener', 'the LDS subscription');
  } finally {
    await sidecar?.stop();
    await cp.close();
  }
});
