import assert from 'node:assert/strict';
import { after, before, it } from 'node:test';
import { request } from 'undici';
import type { Sidecar } from '../../src/main';
import { RedisServer } from '../support/redis-server';
import { startSidecar, TempDir, Upstream } from './helpers';

// The bundled replay-protection-like plugin on real traffic with a real redis-server: the first request with a
// nonce passes (SET NX answered +OK while the request waits), a replay gets the plugin's local 429.
const tmp = new TempDir();
let redis: RedisServer;
let up: Upstream;
let sidecar: Sidecar;
let url: string;

before(async () => {
  redis = await RedisServer.start({ requirepass: 's3cret' });
  up = await Upstream.start();
  ({ sidecar, url } = await startSidecar(tmp, {
    filters: [{
      plugin: 'redis-gate', name: 'replay-protection', rootId: 'redis_gate',
      configuration: 'cluster=redis\npassword=s3cret\nttl=60\ntimeout=1000',
    }],
    clusters: [{ name: 'backend', port: up.port }, { name: 'redis', port: redis.port }],
  }));
});

after(async () => {
  await sidecar?.stop();
  await up?.close();
  await redis?.stop();
  tmp.cleanup();
});

it('lets the first request with a nonce through and rejects its replay with 429', async () => {
  const nonce = `n-${Date.now()}`;
  let res = await request(`${url}/pay`, { method: 'POST', body: 'amount=1', headers: { 'x-nonce': nonce } });
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['x-replay-check'], 'passed');
  assert.equal(await res.body.text(), 'upstream saw POST /pay amount=1');
  assert.equal(up.requests.length, 1);

  res = await request(`${url}/pay`, { method: 'POST', body: 'amount=1', headers: { 'x-nonce': nonce } });
  assert.equal(res.statusCode, 429);
  // The reply's own header, then the one the plugin's on_response_headers adds: the filter that sent the local
  // reply encodes it too, as in Envoy.
  assert.deepEqual(res.headers['x-replay-check'], ['rejected', 'passed']);
  assert.equal(res.headers['content-type'], 'text/plain');
  assert.equal(await res.body.text(), 'replay detected\n');
  assert.equal(up.requests.length, 1, 'the replay never reached the upstream');
});

it('answers 400 without a nonce', async () => {
  const res = await request(`${url}/pay`);
  assert.equal(res.statusCode, 400);
  assert.equal(await res.body.text(), 'missing x-nonce header\n');
});
