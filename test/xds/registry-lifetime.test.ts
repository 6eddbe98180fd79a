import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { after, before, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { silentLogger } from '../../src/common/logger';
import { Sidecar } from '../../src/main';
import { loadEnvoyProtos, type EnvoyProtos } from '../../src/xds/protos';
import { getJson } from '../admin/helpers';
import { bootstrapJson, TempDir, Upstream } from '../http/helpers';

// The Envoy proto registry is 4-5 MiB of an idle sidecar's heap. A static sidecar needs it only while it reads
// its bootstrap, so once started it must hold nothing of it (no decoded message, no closure over it): the
// registry is then collected, and what /config_dump shows of the static clusters was computed while it lived.

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const tmp = new TempDir();
let upstream: Upstream;
let sidecar: Sidecar;
let adminPort: number;

// The registry the sidecar starts with: this test holds it while the sidecar starts (so start-up uses this one),
// then only its Root, weakly. Held by the Root, not by the registry object: a decoded message reaches the Root
// through its type, and keeps it alive while the load cache, which only sees the registry object, loads another.
let startupRoot: WeakRef<object>;

before(async () => {
  upstream = await Upstream.start();
  const doc = {
    ...bootstrapJson({ filters: [{ plugin: 'noop-min', name: 'noop', rootId: '' }], clusters: [{ name: 'backend', port: upstream.port }] }),
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
  };
  let held: EnvoyProtos | undefined = loadEnvoyProtos();
  startupRoot = new WeakRef(held.root);
  sidecar = await Sidecar.start({ configFile: tmp.write('static.json', doc), logger: silentLogger(), drainTimeoutMs: 1000 });
  assert.equal(loadEnvoyProtos(), held);
  held = undefined;
  adminPort = sidecar.admin!.boundAddress()!.port;
});

after(async () => {
  await sidecar.stop();
  await upstream.close();
  tmp.cleanup();
});

test('a started static sidecar keeps nothing of the Envoy proto registry', async () => {
  await nextTurn(); // a WeakRef target is kept until the end of the job that made or read it
  gc();
  assert.equal(startupRoot.deref(), undefined, 'something in the running sidecar still holds the proto registry');
});

test('/config_dump still shows a static cluster whole after the registry is gone', async () => {
  await nextTurn();
  gc();
  const dump = await getJson<{ configs: Array<Record<string, unknown>> }>(adminPort, '/config_dump?resource=static_clusters');
  const backend = dump.configs.map((c) => c['cluster'] as Record<string, unknown>).find((c) => c['name'] === 'backend');
  assert.ok(backend, JSON.stringify(dump));
  assert.equal(backend['@type'], 'type.googleapis.com/envoy.config.cluster.v3.Cluster');
  assert.equal(backend['type'], 'STATIC');
  assert.equal(backend['connect_timeout'], '1s');
  const address = (((backend['load_assignment'] as Record<string, unknown[]>)['endpoints']![0] as Record<string, unknown[]>)['lb_endpoints']![0] as Record<string, Record<string, Record<string, Record<string, unknown>>>>)['endpoint']!['address']!['socket_address']!;
  assert.deepEqual(address, { address: '127.0.0.1', port_value: upstream.port });
});
