import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { request } from 'undici';
import type { Sidecar } from '../../src/main';
import { startSidecar, TempDir, Upstream } from './helpers';

// Higress 0_2_100: headers status 1 is StopIteration. Envoy still delivers the body to the filter; the body's
// Continue releases the held headers (with the plugin's late change) and the data together.

const tmp = new TempDir();
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups) await c();
  tmp.cleanup();
});

test('0_2_100 StopIteration holds headers while body callbacks run; the body Continue releases both', async () => {
  const up = await Upstream.start();
  cleanups.push(() => up.close());
  const { sidecar, url }: { sidecar: Sidecar; url: string } = await startSidecar(tmp, {
    filters: [{ plugin: 'stop-iteration-0-2-100', name: 'holder', rootId: '' }],
    clusters: [{ name: 'backend', port: up.port }],
  });
  cleanups.push(() => sidecar.stop());
  assert.equal(sidecar.plugins[0]!.abi, '0.2.100');
  const res = await request(`${url}/upload`, { method: 'POST', body: 'payload-bytes', headers: { 'content-type': 'text/plain' } });
  assert.equal(res.statusCode, 200);
  await res.body.text();
  const seen = up.requests.at(-1)!;
  assert.equal(seen.headers['x-body-seen'], 'yes', 'the header added from the body callback went upstream');
  assert.equal(seen.body, 'payload-bytes');
  // A request without a body continues from the headers callback directly.
  const get = await request(`${url}/plain`);
  assert.equal(get.statusCode, 200);
  await get.body.text();
  assert.equal(up.requests.at(-1)!.headers['x-body-seen'], undefined);
});
