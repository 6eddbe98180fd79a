import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { TempDir, Upstream } from '../http/helpers';
import { until } from '../support/until';
import { k8sClusterName, startGoSidecar, type GoSidecar } from './helpers';
import { REFUSED_PORT } from '../support/ports';

// HTTP callouts through the Higress SDK's cluster clients (wasm-go pkg/wrapper cluster_wrapper.go,
// http_wrapper.go): each Cluster kind names an Envoy cluster (`outbound|port||host`) and a default :authority;
// HttpCall adds :method/:path/:authority and dispatches with proxy_http_call, default timeout 500 ms. What Envoy
// does with it (Context::httpCall and the AsyncClient; checked against Envoy 1.40 with an upstream-SDK probe):
//  - unknown cluster: BadArgument at dispatch; a cluster with no healthy host: InternalFailure at dispatch (the
//    AsyncClient's router answers synchronously inside send(), which returns no request), no callback either way;
//  - the callout carries x-envoy-internal: true, x-envoy-expected-rq-timeout-ms when there is a timeout, and the
//    body's own content-length;
//  - the router's local replies reach the plugin as responses (AsyncStreamImpl::sendLocalReply): connect failure
//    503 `upstream connect error ...`, timeout before headers 504 `upstream request timeout`;
//  - only a reset after response headers is onFailure: zero headers, which the SDK reports as 502.

const AUTH = k8sClusterName('auth', 'default', 80);
const AUTH_STATIC = 'outbound|8080||auth.static';
const AUTH_DNS = 'outbound|80||auth.dns';
const DEAD = k8sClusterName('dead', 'default', 80);
const EMPTY = k8sClusterName('empty', 'default', 80);

const tmp = new TempDir();
let backend: Upstream;
let auth: Upstream;
let sc: GoSidecar;
const held: Array<() => void> = [];

function authHandler(req: IncomingMessage, res: ServerResponse, body: string): void {
  const original = String(req.headers['x-original-path'] ?? '');
  if (req.url === '/slow') return; // never answers: the callout's timeout fires
  if (original.includes('/reset')) {
    // Headers and part of the body, then the connection goes away: a reset after response headers.
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('partial', () => res.socket?.destroy());
    return;
  }
  if (original.includes('/deny')) {
    res.writeHead(403, { 'content-type': 'text/plain' }).end('no entry');
    return;
  }
  const reply = () => {
    res.writeHead(200, { 'content-type': 'text/plain', 'x-auth-reply': 'ok' });
    res.end(`auth saw ${req.method} ${req.url} ${body}`.trim());
  };
  if (original.includes('/hold')) held.push(reply);
  else reply();
}

before(async () => {
  backend = await Upstream.start();
  auth = await Upstream.start(authHandler);
  const configuration = JSON.stringify({
    service: 'auth', namespace: 'default', port: 80, static_port: 8080, dns_domain: 'auth.example.com', timeout_ms: 5000, short_timeout_ms: 300,
  });
  sc = await startGoSidecar(tmp, {
    filters: [{ plugin: 'go/sdk-callout', name: 'callout', rootId: '', configuration }],
    clusters: [
      { name: 'backend', port: backend.port },
      { name: AUTH, port: auth.port },
      { name: AUTH_STATIC, port: auth.port },
      { name: AUTH_DNS, port: auth.port },
      { name: DEAD, port: REFUSED_PORT },
    ],
    emptyClusters: [EMPTY],
  });
});

after(async () => {
  for (const release of held.splice(0)) release();
  await sc?.sidecar.stop();
  await backend?.close();
  await auth?.close();
  tmp.cleanup();
});

async function send(path: string, init: { method?: 'GET' | 'POST'; body?: string } = {}) {
  const res = await request(`${sc.url}${path}`, { method: init.method ?? 'GET', ...(init.body !== undefined ? { body: init.body } : {}) });
  return { status: res.statusCode, headers: res.headers, body: await res.body.text() };
}

/** The request the backend saw for `path` (the resumed original request). */
function backendSaw(path: string) {
  return backend.requests.find((r) => r.url === path);
}

function authSaw(originalPath: string) {
  return auth.requests.find((r) => r.headers['x-original-path'] === originalPath);
}

describe('cluster clients: the callout reaches the cluster each kind names, the request resumes with its result', () => {
  const cases = [
    { kind: 'fqdn', cluster: AUTH, host: 'auth.default.svc.cluster.local' },
    { kind: 'k8s', cluster: AUTH, host: 'auth.default.svc.cluster.local' },
    { kind: 'static', cluster: AUTH_STATIC, host: 'auth' },
    { kind: 'dns', cluster: AUTH_DNS, host: 'auth.example.com' },
  ];
  for (const c of cases) {
    it(`${c.kind}: ${c.cluster}`, async () => {
      const path = `/${c.kind}/resource`;
      const res = await send(path);
      assert.equal(res.status, 200, res.body);
      const seen = authSaw(path);
      assert.ok(seen, 'the callout reached the auth upstream');
      assert.equal(seen.method, 'GET');
      assert.equal(seen.url, `/check?kind=${c.kind}`);
      assert.equal(seen.headers['host'], c.host);
      assert.equal(seen.headers['x-callout-from'], c.kind);
      // What Envoy's AsyncClient router adds to every callout.
      assert.equal(seen.headers['x-envoy-internal'], 'true');
      assert.equal(seen.headers['x-envoy-expected-rq-timeout-ms'], '5000');
      assert.equal(seen.headers['x-forwarded-for'], undefined);
      const resumed = backendSaw(path);
      assert.ok(resumed, 'the original request went on to the route cluster');
      assert.equal(resumed.headers['x-callout-status'], '200');
      assert.equal(resumed.headers['x-callout-body'], `auth saw GET /check?kind=${c.kind}`);
      assert.equal(resumed.headers['x-callout-cluster'], c.cluster);
      assert.equal(resumed.headers['x-callout-reply-header'], 'ok');
    });
  }

  it('route: RouteCluster calls the current route\'s cluster (cluster_name) with its own :authority', async () => {
    const res = await send('/route/resource');
    assert.equal(res.status, 200, res.body);
    const callout = backend.requests.find((r) => r.url === '/check?kind=route');
    assert.ok(callout);
    assert.equal(callout.headers['host'], 'route-callout.internal');
    const resumed = backendSaw('/route/resource');
    assert.equal(resumed?.headers['x-callout-cluster'], 'backend');
    assert.equal(resumed?.headers['x-callout-body'], 'upstream saw GET /check?kind=route');
  });

  it('Post sends the body with its own content-length (not the plugin\'s); the client\'s own body follows the resumed request', async () => {
    const res = await send('/post/item', { method: 'POST', body: 'client body' });
    assert.equal(res.status, 200, res.body);
    const seen = authSaw('/post/item');
    assert.equal(seen?.method, 'POST');
    assert.equal(seen?.body, 'posted for /post/item');
    assert.equal(seen?.headers['content-length'], String('posted for /post/item'.length));
    const resumed = backendSaw('/post/item');
    assert.equal(resumed?.body, 'client body');
    assert.equal(resumed?.headers['x-callout-body'], 'auth saw POST /check?kind=post posted for /post/item');
  });
});

describe('the request is paused while the callout is pending', () => {
  it('reaches the backend only after the callout answered', async () => {
    const pending = send('/fqdn/hold');
    await until(() => authSaw('/fqdn/hold') !== undefined, 10_000, 'callout received');
    // The callout is held by the auth upstream: the request must not have gone on.
    assert.equal(backendSaw('/fqdn/hold'), undefined);
    held.shift()!();
    const res = await pending;
    assert.equal(res.status, 200);
    assert.equal(backendSaw('/fqdn/hold')?.headers['x-callout-status'], '200');
  });
});

describe('callouts that do not succeed', () => {
  it('a non-2xx callout answer becomes the plugin\'s local reply; the backend is not reached', async () => {
    const res = await send('/fqdn/deny');
    assert.equal(res.status, 403);
    assert.equal(res.body, 'callout answered 403: no entry');
    assert.equal(res.headers['x-callout-cluster'], AUTH);
    assert.equal(backendSaw('/fqdn/deny'), undefined);
  });

  it('an unknown cluster is refused at dispatch (BadArgument), with no callback', async () => {
    const before = auth.requests.length + backend.requests.length;
    const res = await send('/svc/missing/x');
    assert.equal(res.status, 500);
    assert.equal(res.body, 'callout refused: error status returned by host: bad argument');
    assert.equal(res.headers['x-callout-cluster'], 'outbound|80||missing.default.svc.cluster.local');
    assert.equal(auth.requests.length + backend.requests.length, before);
  });

  it('a cluster without endpoints is refused at dispatch (InternalFailure), with no callback', async () => {
    const res = await send('/svc/empty/x');
    assert.equal(res.status, 500);
    assert.equal(res.body, 'callout refused: error status returned by host: internal failure');
    assert.equal(res.headers['x-callout-cluster'], EMPTY);
  });

  it('a connect failure answers 503 upstream connect error, as a response', async () => {
    const res = await send('/svc/dead/x');
    assert.equal(res.status, 503);
    // Envoy 1.27 (Higress) says `connection failure`, newer ones `remote connection failure`.
    assert.match(res.body, /^callout answered 503: upstream connect error or disconnect\/reset before headers\. reset reason: (remote )?connection failure/);
  });

  it('a callout that times out before response headers answers 504 upstream request timeout, as a response', async () => {
    const res = await send('/slow/x');
    assert.equal(res.status, 504);
    assert.equal(res.body, 'callout answered 504: upstream request timeout');
    assert.ok(authSaw('/slow/x'), 'the callout was sent');
    assert.equal(backendSaw('/slow/x'), undefined);
  });

  it('a reset after response headers is a failure: zero headers, which the SDK reports as 502 with no body', async () => {
    const res = await send('/fqdn/reset');
    assert.equal(res.status, 502);
    assert.equal(res.body, 'callout answered 502: ');
    assert.equal(backendSaw('/fqdn/reset'), undefined);
  });
});
