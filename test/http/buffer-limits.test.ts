import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { request } from 'undici';
import type { FilterSpec } from './helpers';
import { TempDir, Upstream } from './helpers';
import { hex, startShaped } from './host-bootstrap';

// Envoy's stream buffer limit for filters that buffer (StopIterationAndBuffer): past it a request is answered
// 413 `Payload Too Large` (request_payload_too_large), a response 500 `Internal Server Error`
// (response_payload_too_large). The limit is the listener's per_connection_buffer_limit_bytes (1 MiB by default)
// and a Higress plugin moves it with SetRequestBodyBufferLimit / SetResponseBodyBufferLimit.

const tmp = new TempDir();
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
  tmp.cleanup();
});

// host-attrs first reads response.code_details of whatever reply comes back through it.
const ATTRS: FilterSpec = { plugin: 'go/host-attrs', name: 'attrs', rootId: '', configuration: JSON.stringify({ properties: [['response', 'code_details']] }) };

async function start(buffer: Record<string, number>, listenerLimit?: number, upstreamBody = 'upstream-body') {
  const up = await Upstream.start((_req, res, body) => {
    res.setHeader('x-upstream-saw', String(body.length));
    res.end(upstreamBody);
  });
  cleanups.push(() => up.close());
  const { sidecar, url } = await startShaped(tmp, {
    filters: [ATTRS, { plugin: 'go/host-buffer', name: 'buffer', rootId: '', configuration: JSON.stringify(buffer) }],
    clusters: [{ name: 'backend', port: up.port }],
  }, ({ listener }) => {
    if (listenerLimit !== undefined) listener['per_connection_buffer_limit_bytes'] = listenerLimit;
  });
  cleanups.push(() => sidecar.stop());
  return { url, up };
}

async function post(url: string, body: string) {
  const res = await request(`${url}/upload`, { method: 'POST', body });
  return { status: res.statusCode, body: await res.body.text(), headers: res.headers };
}

test('a request body over the limit a plugin set is answered 413 Payload Too Large', async () => {
  const { url, up } = await start({ request_limit: 16 });
  const small = await post(url, 'x'.repeat(16));
  assert.equal(small.status, 200);
  assert.equal(small.body, 'upstream-body');
  assert.equal(up.requests.at(-1)!.headers['x-buffered-request'], '16', 'the whole body was buffered, then sent');
  assert.equal(small.headers['x-resp-0'], hex('via_upstream'));

  const before = up.requests.length;
  const big = await post(url, 'x'.repeat(100));
  assert.equal(big.status, 413);
  assert.equal(big.body, 'Payload Too Large');
  assert.equal(big.headers['x-resp-0'], hex('request_payload_too_large'));
  assert.equal(up.requests.length, before, 'nothing reached the upstream');
});

test("the listener's per_connection_buffer_limit_bytes is the default limit", async () => {
  const { url } = await start({}, 32);
  assert.equal((await post(url, 'y'.repeat(32))).status, 200);
  const big = await post(url, 'y'.repeat(33));
  assert.equal(big.status, 413);
  assert.equal(big.body, 'Payload Too Large');
});

test('a plugin can raise the limit above the listener default', async () => {
  const { url } = await start({ request_limit: 4096 }, 32);
  const r = await post(url, 'z'.repeat(1000));
  assert.equal(r.status, 200);
  assert.equal(r.headers['x-upstream-saw'], '1000');
});

test('a response body over the limit is answered 500 Internal Server Error (response_payload_too_large)', async () => {
  const { url } = await start({ response_limit: 8 }, undefined, 'r'.repeat(100));
  const r = await post(url, 'hi');
  assert.equal(r.status, 500);
  assert.equal(r.body, 'Internal Server Error');
  // Sent directly, as Envoy does once a response is being encoded: the encoder filters do not see it again.
  assert.equal(r.headers['x-resp-0'], undefined);

  const { url: roomy } = await start({ response_limit: 1000 }, undefined, 'r'.repeat(100));
  const ok = await post(roomy, 'hi');
  assert.equal(ok.status, 200);
  assert.equal(ok.body, 'r'.repeat(100));
  assert.equal(ok.headers['x-buffered-response'], '100');
});
