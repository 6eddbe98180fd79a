import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { request } from 'undici';
import { silentLogger } from '../../src/common/logger';
import { Sidecar } from '../../src/main';
import { bootstrapJson, TempDir, Upstream } from '../http/helpers';
import { RedisServer } from '../support/redis-server';
import { until } from '../support/until';

// Routed requests and Redis calls are counted per cluster and per host, and shown by /stats and /clusters as
// Envoy shows them, with one process and with --concurrency 2 (each worker counts its own; the admin sums them).
const tmp = new TempDir();
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
  tmp.cleanup();
});

async function start(concurrency: number): Promise<{ url: string; admin: string; up: Upstream; redis: RedisServer }> {
  const up = await Upstream.start();
  const redis = await RedisServer.start({ requirepass: 's3cret' });
  const file = tmp.write(`bootstrap-${concurrency}.json`, {
    ...bootstrapJson({
      filters: [{ plugin: 'redis-gate', name: 'replay-protection', rootId: 'redis_gate', configuration: 'cluster=redis\npassword=s3cret\nttl=60\ntimeout=1000' }],
      clusters: [{ name: 'backend', port: up.port }, { name: 'redis', port: redis.port }],
    }),
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
  });
  const sidecar = await Sidecar.start({ configFile: file, logger: silentLogger(), drainTimeoutMs: 1000, concurrency });
  cleanups.push(async () => {
    await sidecar.stop();
    await up.close();
    await redis.stop();
  });
  return { url: `http://127.0.0.1:${sidecar.publicListeners[0]!.port}`, admin: `http://127.0.0.1:${sidecar.admin!.boundAddress()!.port}`, up, redis };
}

async function stat(admin: string, name: string): Promise<number | undefined> {
  const res = await request(`${admin}/stats?format=json`);
  const doc = (await res.body.json()) as { stats: Array<{ name: string; value: number }> };
  return doc.stats.find((s) => s.name === name)?.value;
}

async function hostStat(admin: string, cluster: string, name: string): Promise<number> {
  const res = await request(`${admin}/clusters?format=json`);
  const doc = (await res.body.json()) as { cluster_statuses: Array<{ name: string; host_statuses: Array<{ stats: Array<{ name: string; value?: string }> }> }> };
  const c = doc.cluster_statuses.find((x) => x.name === cluster);
  return Number(c?.host_statuses[0]?.stats.find((s) => s.name === name)?.value ?? 0);
}

for (const concurrency of [1, 2]) {
  describe(`--concurrency ${concurrency}`, () => {
    it('counts routed requests and Redis calls per cluster and host', async () => {
      const { url, admin } = await start(concurrency);
      // Three nonces pass (200 from the upstream), one replay is the plugin's 429 (no upstream request).
      for (const nonce of ['a', 'b', 'c', 'c']) {
        const res = await request(`${url}/pay`, { headers: { 'x-nonce': `${nonce}-${concurrency}` } });
        await res.body.text();
      }
      // With workers the admin's view is refreshed in the background: wait for it rather than for a time.
      await until(async () => (await stat(admin, 'cluster.backend.upstream_rq_total')) === 3, 15_000, 'backend upstream_rq_total 3');
      assert.equal(await stat(admin, 'cluster.backend.upstream_rq_2xx'), 3);
      assert.equal(await stat(admin, 'cluster.backend.upstream_rq_200'), 3);
      assert.equal(await stat(admin, 'cluster.backend.upstream_rq_completed'), 3);
      assert.equal(await hostStat(admin, 'backend', 'rq_total'), 3);
      assert.equal(await hostStat(admin, 'backend', 'rq_success'), 3);
      // Every request made one Redis SET NX through the plugin, whichever worker served it.
      await until(async () => (await stat(admin, 'redis.redis.calls')) === 4, 15_000, 'redis calls 4');
      assert.equal(await stat(admin, 'cluster.redis.upstream_rq_total'), 4);
      assert.equal(await hostStat(admin, 'redis', 'rq_total'), 4);
    });
  });
}
