import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { TempDir, Upstream } from '../http/helpers';
import { startGoSidecar, type GoSidecar } from './helpers';
import { REFUSED_PORT } from '../support/ports';

// wrapper.IsResponseFromUpstream() (wasm-go pkg/wrapper/response_wrapper.go) reads response.code_details and
// expects "via_upstream". Envoy sets that detail in the router when upstream response headers arrive
// (StreamInfo::ResponseCodeDetails::ViaUpstream), whatever the status; a local reply carries its own detail:
// direct_response, route_not_found, upstream_reset_before_response_started{...}, upstream_response_timeout, or
// what a filter passed to sendLocalReply. So a plugin that rewrites upstream responses leaves local replies as
// they are, status and body included.

const tmp = new TempDir();
let backend: Upstream;
let sc: GoSidecar;

before(async () => {
  backend = await Upstream.start((req, res) => {
    if (req.url === '/slow') return; // never answers: the route timeout fires
    if (req.url === '/upstream-503') {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('the service itself says 503');
      return;
    }
    res.setHeader('content-type', 'text/plain');
    res.end(`upstream saw ${req.method} ${req.url}`);
  });
  const deadPort = REFUSED_PORT;
  sc = await startGoSidecar(tmp, {
    filters: [
      { plugin: 'go/sdk-upstream-only', name: 'upstream-only', rootId: '', configuration: '{}' },
      // Its /deny answers with a local reply that is encoded back through the filter above.
      { plugin: 'go/up-headers', name: 'up-headers', rootId: '' },
    ],
    clusters: [{ name: 'backend', port: backend.port }, { name: 'dead', port: deadPort, connectTimeout: '1s' }],
    virtualHosts: [{
      name: 'all',
      domains: ['*'],
      routes: [
        { name: 'ok', prefix: '/ok', cluster: 'backend' },
        { name: 'upstream-503', prefix: '/upstream-503', cluster: 'backend' },
        { name: 'deny', prefix: '/deny', cluster: 'backend' },
        { name: 'slow', prefix: '/slow', cluster: 'backend', timeout: '0.3s' },
        { name: 'dead', prefix: '/dead', cluster: 'dead' },
        { name: 'direct', prefix: '/direct', directResponse: { status: 200, body: 'direct body' } },
      ],
    }],
  });
});

after(async () => {
  await sc?.sidecar.stop();
  await backend?.close();
  tmp.cleanup();
});

async function send(path: string) {
  const res = await request(`${sc.url}${path}`);
  return { status: res.statusCode, marked: res.headers['x-sdk-upstream'], body: await res.body.text() };
}

describe('responses from the upstream are rewritten', () => {
  it('200 from the upstream', async () => {
    const r = await send('/ok');
    assert.deepEqual(r, { status: 200, marked: 'modified', body: '[sdk] upstream saw GET /ok' });
  });

  it('503 from the upstream itself is still via_upstream', async () => {
    const r = await send('/upstream-503');
    assert.deepEqual(r, { status: 503, marked: 'modified', body: '[sdk] the service itself says 503' });
  });
});

describe('local replies pass through untouched', () => {
  it('direct_response', async () => {
    assert.deepEqual(await send('/direct'), { status: 200, marked: undefined, body: 'direct body' });
  });

  it('no route (404 route_not_found)', async () => {
    assert.deepEqual(await send('/none'), { status: 404, marked: undefined, body: '' });
  });

  it('another filter\'s sendLocalReply', async () => {
    assert.deepEqual(await send('/deny'), { status: 403, marked: undefined, body: 'denied by up-headers\n' });
  });

  it('upstream connect failure (503 UF)', async () => {
    const r = await send('/dead');
    assert.equal(r.status, 503);
    assert.equal(r.marked, undefined);
    assert.match(r.body, /^upstream connect error or disconnect\/reset before headers\. reset reason: (remote )?connection failure/);
  });

  it('route timeout (504 UT)', async () => {
    assert.deepEqual(await send('/slow'), { status: 504, marked: undefined, body: 'upstream request timeout' });
  });
});
