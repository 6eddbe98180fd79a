import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { request } from 'undici';
import type { Sidecar } from '../../src/main';
import { startSidecar, TempDir, Upstream } from './helpers';

// Higress proxy_get_upstream_hosts / proxy_set_upstream_override_host (ai-load-balancer): a plugin sees the
// hosts of its request's cluster and can pin the request to one of them.

const tmp = new TempDir();
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups) await c();
  tmp.cleanup();
});

test('a plugin lists the cluster hosts and overrides the load balancer', async () => {
  const [a, b] = [await Upstream.start(), await Upstream.start()];
  cleanups.push(() => a.close(), () => b.close());
  const { sidecar, url }: { sidecar: Sidecar; url: string } = await startSidecar(tmp, {
    filters: [{ plugin: 'http-test', name: 'lb', rootId: 'http_test', configuration: 'mode=lb' }],
    clusters: [{ name: 'backend', port: a.port, extraPorts: [b.port] }],
  });
  cleanups.push(() => sidecar.stop());
  const res = await request(`${url}/x`);
  await res.body.text();
  const seen = [...a.requests, ...b.requests].at(-1)!;
  assert.equal(seen.headers['x-upstream-hosts'], `127.0.0.1:${a.port}=Healthy,127.0.0.1:${b.port}=Healthy`);

  const [beforeA, beforeB] = [a.requests.length, b.requests.length];
  for (let i = 0; i < 4; i++) {
    const r = await request(`${url}/pinned`, { headers: { 'x-override-host': `127.0.0.1:${b.port}` } });
    assert.equal(r.statusCode, 200);
    await r.body.text();
  }
  assert.equal(a.requests.length, beforeA, 'round robin bypassed');
  assert.equal(b.requests.length, beforeB + 4, 'every pinned request reached B');
});
