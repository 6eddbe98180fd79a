import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { request } from 'undici';
import type { Sidecar } from '../../src/main';
import { startSidecar, TempDir, Upstream } from '../http/helpers';

// Both Go SDKs' plugins, built by `make plugins` with GOOS=wasip1 -buildmode=c-shared, on real traffic: the
// Higress SDK (wasm-go wrapper over higress-group/proxy-wasm-go-sdk) and the upstream proxy-wasm-go-sdk.
const tmp = new TempDir();
let up: Upstream;
let sidecar: Sidecar;
let url: string;

before(async () => {
  up = await Upstream.start();
  ({ sidecar, url } = await startSidecar(tmp, {
    filters: [
      { plugin: 'go/add-header', name: 'go-add-header', rootId: '', configuration: JSON.stringify({ value: 'v1' }) },
      { plugin: 'go/up-headers', name: 'up-headers', rootId: '' },
      { plugin: 'go/up-body', name: 'up-body', rootId: '', configuration: 'apple=pear' },
    ],
    clusters: [{ name: 'backend', port: up.port }],
  }));
});

after(async () => {
  await sidecar?.stop();
  await up?.close();
  tmp.cleanup();
});

it('runs a Higress SDK plugin and two upstream SDK plugins in one chain', async () => {
  const res = await request(`${url}/fruit`, { method: 'POST', body: 'an apple a day' });
  assert.equal(res.statusCode, 200);
  assert.equal(await res.body.text(), 'upstream saw POST /fruit an pear a day');
  assert.equal(res.headers['x-go-response'], 'v1');
  assert.equal(res.headers['x-up-path'], '/fruit');
  assert.equal(res.headers['x-up-protocol'], 'HTTP/1.1');
  const seen = up.requests.at(-1)!;
  assert.equal(seen.headers['x-go-request'], 'v1');
  assert.equal(seen.headers['x-up-sdk'], 'proxy-wasm-go-sdk');
});

it('answers the upstream SDK plugin local reply without reaching the upstream', async () => {
  const before = up.requests.length;
  const res = await request(`${url}/deny`);
  assert.equal(res.statusCode, 403);
  assert.equal(res.headers['x-denied-by'], 'up-headers');
  assert.equal(await res.body.text(), 'denied by up-headers\n');
  assert.equal(up.requests.length, before);
});
