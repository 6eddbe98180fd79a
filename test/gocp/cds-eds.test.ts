import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { request } from 'undici';
import { silentLogger } from '../../src/common/logger';
import { Sidecar } from '../../src/main';
import { bootstrapJson, TempDir, Upstream } from '../http/helpers';
import { RedisServer } from '../support/redis-server';
import { GoControlPlane, type Json } from './go-control-plane';
import { adsBootstrap, CDS, EDS, istioCla, istioEdsCluster, istioNode } from './mesh';

// The sidecar against a control plane that shares no code with it: go-control-plane's server and snapshot
// cache, over SotW and Delta ADS, with istiod-shaped clusters and endpoints. A real Redis plugin (redis-echo)
// resolves Istio's cluster name through CDS/EDS to real redis-server processes.

const REDIS = 'outbound|6379||redis.ns.svc.cluster.local';
const BAD = 'outbound|80||broken.ns.svc.cluster.local';
const tmp = new TempDir();
after(() => tmp.cleanup());

for (const mode of ['SotW', 'Delta'] as const) {
  describe(`go-control-plane over ${mode} ADS`, () => {
    let cp: GoControlPlane;
    let a: RedisServer;
    let b: RedisServer;
    let app: Upstream;
    let sidecar: Sidecar;
    let url: string;

    before(async () => {
      [a, b, app, cp] = await Promise.all([RedisServer.start(), RedisServer.start(), Upstream.start(), GoControlPlane.start()]);
      await cp.set({ version: '1', resources: [{ '@type': CDS, ...istioEdsCluster(REDIS) }, istioCla(REDIS, [a.port])] });
      const doc = bootstrapJson({
        filters: [{ plugin: 'redis-echo', name: 'ns.redis-echo', rootId: 'redis_echo', configuration: `cluster=${REDIS}\ntimeout=2000` }],
        clusters: [{ name: 'app', port: app.port }],
      }) as Json;
      const ads = adsBootstrap(cp.port, { delta: mode === 'Delta' });
      doc['node'] = ads['node'];
      doc['static_resources']['clusters'].push(...ads['static_resources']['clusters']);
      doc['dynamic_resources'] = ads['dynamic_resources'];
      sidecar = await Sidecar.start({ configFile: tmp.write(`bootstrap-${mode}.json`, doc), logger: silentLogger(), drainTimeoutMs: 2000 });
      url = `http://127.0.0.1:${sidecar.publicListeners[0]!.port}/`;
    });

    after(async () => {
      await sidecar?.stop();
      await cp?.close();
      await Promise.all([a?.stop(), b?.stop(), app?.close()]);
    });

    async function redis(cmd: string): Promise<{ status: number; body: string }> {
      const res = await request(url, { headers: { 'x-redis-cmd': cmd } });
      return { status: res.statusCode, body: await res.body.text() };
    }

    test('the node identifies itself as an Istio sidecar, on the first request only', async () => {
      const first = await cp.waitFor((e) => e.event === 'request' && e['delta'] === (mode === 'Delta'), 'first request');
      assert.deepEqual(first['node']?.['id'], istioNode()['id']);
      assert.deepEqual(first['node']?.['metadata'], istioNode()['metadata']);
      // As received on the wire (go-control-plane's callbacks see the node copied into every request).
      const received = cp.events.filter((e) => e.event === 'received');
      assert.ok(received.length >= 2, 'more than one request on the stream');
      assert.deepEqual(received.map((e) => e['node'] as boolean), [true, ...received.slice(1).map(() => false)], 'set_node_on_first_message_only');
    });

    test("Istio's Redis cluster resolves to the discovered endpoint and a Redis plugin works through it", async () => {
      await cp.ack(CDS, '1');
      await cp.ack(EDS, '1');
      const set = await redis('set where a');
      assert.equal(set.status, 200);
      assert.equal(set.body, '+OK\r\n');
      assert.equal(await a.client().get('where'), 'a');
      assert.equal(await b.client().get('where'), null);
      assert.deepEqual(sidecar.clusterManager.get(REDIS)?.hosts.map((h) => h.port), [a.port]);
    });

    test('a new snapshot moves the pool to the new endpoint', async () => {
      // Written as a .yaml snapshot file: the server's YAML path.
      await cp.set({ version: '2', resources: [{ '@type': CDS, ...istioEdsCluster(REDIS) }, istioCla(REDIS, [b.port])] }, 'yaml');
      await cp.ack(EDS, '2');
      const set = await redis('set where b');
      assert.equal(set.body, '+OK\r\n');
      assert.equal(await b.client().get('where'), 'b');
      assert.equal(await a.client().get('where'), 'a', 'A saw nothing more');
    });

    test('an invalid cluster is NACKed, go-control-plane sees the reason, and the Redis cluster keeps serving', async () => {
      const accepted = (await cp.status())[CDS]?.acked; // Delta resends nothing unchanged, so this may be '1'
      assert.ok(accepted === '1' || accepted === '2', String(accepted));
      const broken = { '@type': CDS, ...istioEdsCluster(BAD), connect_timeout: '-1s' };
      await cp.set({ version: '3', resources: [{ '@type': CDS, ...istioEdsCluster(REDIS) }, broken, istioCla(REDIS, [b.port]), istioCla(BAD, [app.port])] });
      const nack = await cp.nack(CDS, '3');
      assert.match(String(nack['error']), /connect_timeout/);
      assert.match(String(nack['error']), new RegExp(BAD.replace(/\|/g, '\\|')));
      const status = await cp.status();
      assert.equal(status[CDS]?.acked, accepted, 'the last good CDS version stays the accepted one');
      assert.equal(status[CDS]?.nacked, '3');
      assert.equal(sidecar.clusterManager.get(BAD), undefined, 'the invalid cluster was not added');
      const get = await redis('get where');
      assert.equal(get.body, '$1\r\nb\r\n', 'the Redis cluster is still there and still on B');
      // A fixed push is accepted again.
      await cp.set({ version: '4', resources: [{ '@type': CDS, ...istioEdsCluster(REDIS) }, { '@type': CDS, ...istioEdsCluster(BAD) }, istioCla(REDIS, [b.port]), istioCla(BAD, [app.port])] });
      await cp.ack(CDS, '4');
    });
  });
}
