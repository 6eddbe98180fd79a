import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { freePort } from '../../src/common/free-port';
import { silentLogger } from '../../src/common/logger';
import { Sidecar } from '../../src/main';
import { TempDir, Upstream } from '../http/helpers';
import { REPO_ROOT } from '../support/plugins';
import { RedisServer } from '../support/redis-server';
import { GoControlPlane, type Json, type Snapshot } from './go-control-plane';
import { adsBootstrap, CDS, ECDS, EDS, higressListener, higressRoutes, higressWasmConfig, istioCla, istioEdsCluster, LDS, RDS } from './mesh';

// A sidecar whose bootstrap has nothing but ADS, as an Istio sidecar's: its listener, routes and Wasm plugin all
// come from go-control-plane in Higress's layout (LDS listener with RDS and an ECDS Wasm filter), its clusters
// and endpoints in istiod's. The plugin (redis-echo) reaches a real redis-server through the discovered cluster.

const REDIS = 'outbound|6379||redis.ns.svc.cluster.local';
const APP = 'outbound|8080||app.ns.svc.cluster.local';
const APP2 = 'outbound|8080||app-v2.ns.svc.cluster.local';
const ROUTES = 'higress-rds-80';
const PLUGIN = 'ns.redis-echo';
const tmp = new TempDir();
after(() => tmp.cleanup());


/** `module` with a custom section (id 0) that makes its bytes, and so its sha256, unique. */
function withNonce(module: Buffer): Buffer {
  const name = Buffer.from('pws-test-nonce');
  const payload = Buffer.concat([Buffer.from([name.length]), name, randomBytes(16)]);
  return Buffer.concat([module, Buffer.from([0, payload.length]), payload]);
}

for (const mode of ['SotW', 'Delta'] as const) {
  describe(`LDS, RDS and ECDS from go-control-plane over ${mode} ADS`, () => {
    let cp: GoControlPlane;
    let redis: RedisServer;
    let app: Upstream;
    let app2: Upstream;
    let sidecar: Sidecar;
    let port: number;
    let version = 0;

    const echo = (): Json => higressWasmConfig(PLUGIN, 'redis-echo', 'redis_echo', `cluster=${REDIS}\ntimeout=2000`);
    const base = (): Json[] => [
      { '@type': CDS, ...istioEdsCluster(REDIS) }, istioCla(REDIS, [redis.port]),
      { '@type': CDS, ...istioEdsCluster(APP) }, istioCla(APP, [app.port]),
      { '@type': CDS, ...istioEdsCluster(APP2) }, istioCla(APP2, [app2.port]),
    ];
    let current: { listener: Json; routes: Json; plugin: Json };

    async function push(change: Partial<typeof current>, extra: Json[] = []): Promise<string> {
      const next = { ...current, ...change };
      const v = String(++version);
      const snap: Snapshot = { version: v, resources: [...base(), next.listener, next.routes, next.plugin, ...extra] };
      await cp.set(snap);
      return v;
    }

    async function accept(change: Partial<typeof current>, typeUrl: string): Promise<void> {
      const v = await push(change);
      await cp.ack(typeUrl, v);
      current = { ...current, ...change };
    }

    async function get(headers: Record<string, string> = {}): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
      const res = await request(`http://127.0.0.1:${port}/path`, { headers });
      return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
    }

    before(async () => {
      [redis, app, app2, cp] = await Promise.all([
        RedisServer.start(),
        Upstream.start((_req, res) => res.end('app v1')),
        Upstream.start((_req, res) => res.end('app v2')),
        GoControlPlane.start(),
      ]);
      port = await freePort();
      current = { listener: higressListener(port, ROUTES, [PLUGIN]), routes: higressRoutes(ROUTES, port, APP), plugin: echo() };
      await push({});
      sidecar = await Sidecar.start({ configFile: tmp.write(`ads-only-${mode}.json`, adsBootstrap(cp.port, { delta: mode === 'Delta', lds: true })), logger: silentLogger(), drainTimeoutMs: 2000 });
    });

    after(async () => {
      await sidecar?.stop();
      await cp?.close();
      await Promise.all([redis?.stop(), app?.close(), app2?.close()]);
    });

    test('the listener, its routes and its Wasm plugin arrive over ADS and serve', async () => {
      for (const t of [CDS, LDS, RDS, ECDS]) await cp.ack(t, '1');
      const routed = await get();
      assert.equal(routed.status, 200);
      assert.equal(routed.body, 'app v1', 'RDS routes to the discovered app cluster');
      const set = await get({ 'x-redis-cmd': 'set via lds' });
      assert.equal(set.body, '+OK\r\n', 'the ECDS plugin reached Redis through the CDS/EDS cluster');
      assert.equal(await redis.client().get('via'), 'lds');
    });

    test('a route update moves traffic to the new cluster', async () => {
      await accept({ routes: higressRoutes(ROUTES, port, APP2) }, RDS);
      assert.equal((await get()).body, 'app v2');
    });

    test('an ECDS update swaps the plugin (a Higress Go SDK plugin takes over)', async () => {
      await accept({ plugin: higressWasmConfig(PLUGIN, 'go/add-header', '', JSON.stringify({ value: 'from-ecds' })) }, ECDS);
      const res = await get();
      assert.equal(res.body, 'app v2');
      assert.equal(res.headers['x-go-response'] ?? res.headers['x-go-request'], 'from-ecds');
      await accept({ plugin: echo() }, ECDS);
      assert.equal((await get({ 'x-redis-cmd': 'get via' })).body, '$3\r\nlds\r\n');
    });

    test('a listener with an unknown network filter is NACKed with the reason; the last good one keeps serving', async () => {
      const bad = higressListener(port, ROUTES, [PLUGIN]);
      bad['filter_chains'][0]['filters'].unshift({ name: 'istio.metadata_exchange', typed_config: { '@type': 'type.googleapis.com/google.protobuf.Struct', value: {} } });
      const v = await push({ listener: bad });
      const nack = await cp.nack(LDS, v);
      assert.match(String(nack['error']), /0\.0\.0\.0_/);
      assert.equal((await get({ 'x-redis-cmd': 'get via' })).body, '$3\r\nlds\r\n');
      await accept({}, LDS);
    });

    test('an ECDS config whose plugin cannot load is NACKed; the last good plugin keeps serving', async () => {
      const broken = higressWasmConfig(PLUGIN, 'redis-echo', 'redis_echo', '');
      broken['typed_config']['config']['vm_config']['code']['local']['filename'] = join(tmp.path, 'no-such-plugin.wasm');
      const v = await push({ plugin: broken });
      const nack = await cp.nack(ECDS, v);
      assert.match(String(nack['error']), /no-such-plugin\.wasm|ENOENT/);
      assert.equal((await get({ 'x-redis-cmd': 'get via' })).body, '$3\r\nlds\r\n');
      await accept({}, ECDS);
    });

    test('plugin code by URL: fetched through a discovered cluster and swapped in; a wrong sha256 is refused and the old one keeps serving', async () => {
      // A module no earlier run can have cached on disk: the plugin plus a custom section holding a nonce.
      const code = withNonce(readFileSync(join(REPO_ROOT, 'build', 'plugins', 'add-header.wasm')));
      const files = await Upstream.start((_req, res) => res.end(code));
      try {
        const FILES = 'outbound|80||plugins.ns.svc.cluster.local';
        const cluster = [{ '@type': CDS, ...istioEdsCluster(FILES) }, istioCla(FILES, [files.port])];
        const remote = (sha256: string, path: string): Json => {
          const c = higressWasmConfig(PLUGIN, 'add-header', '', `remote-${mode}`);
          c['typed_config']['config']['vm_config']['code'] = {
            remote: {
              http_uri: { uri: `http://plugins.ns.svc.cluster.local${path}`, cluster: FILES, timeout: '5s' },
              sha256,
              retry_policy: { num_retries: 0 },
            },
          };
          return c;
        };
        // The cluster first: go-control-plane orders nothing across types over Delta, and with num_retries 0 an
        // ECDS config arriving before its code's cluster would fail its only fetch (in Envoy too).
        const withCluster = await push({}, cluster);
        await cp.ack(CDS, withCluster);
        await cp.ack(EDS, withCluster);
        const good = await push({ plugin: remote(createHash('sha256').update(code).digest('hex'), '/add-header.wasm') }, cluster);
        await cp.ack(ECDS, good);
        assert.equal(files.requests.length, 1, 'fetched once, through the discovered cluster');
        assert.equal(files.requests[0]!.url, '/add-header.wasm');
        assert.equal(files.requests[0]!.headers['host'], 'plugins.ns.svc.cluster.local', "the URI's host is the authority");
        assert.equal((await get()).headers['x-added-by'], `remote-${mode}`, 'the remote plugin serves');

        const bad = await push({ plugin: remote('0'.repeat(64), '/other.wasm') }, cluster);
        const nack = await cp.nack(ECDS, bad);
        assert.match(String(nack['error']), /sha256/);
        assert.match(String(nack['error']), new RegExp(`expected ${'0'.repeat(64)}, got ${createHash('sha256').update(code).digest('hex')}`));
        assert.equal((await get()).headers['x-added-by'], `remote-${mode}`, 'the last good plugin keeps serving');
      } finally {
        await files.close();
      }
    });
  });
}
