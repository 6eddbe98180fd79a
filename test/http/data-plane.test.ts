import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import type { Sidecar } from '../../src/main';
import { until } from '../support/until';
import { sharedCounter, startSidecar, TempDir, Upstream } from './helpers';
import { REFUSED_PORT } from '../support/ports';

const tmp = new TempDir();
const sidecars: Sidecar[] = [];
const upstreams: Upstream[] = [];

after(async () => {
  await Promise.all(sidecars.map((s) => s.stop()));
  await Promise.all(upstreams.map((u) => u.close()));
  tmp.cleanup();
});

async function upstream(handler?: Parameters<typeof Upstream.start>[0]): Promise<Upstream> {
  const u = await Upstream.start(handler);
  upstreams.push(u);
  return u;
}

async function sidecar(spec: Parameters<typeof startSidecar>[1]): Promise<{ sidecar: Sidecar; url: string }> {
  const s = await startSidecar(tmp, spec);
  sidecars.push(s.sidecar);
  return s;
}

describe('filter chain', () => {
  let up: Upstream;
  before(async () => {
    up = await upstream();
  });

  it('adds headers in both directions (add-header plugin)', async () => {
    const { url } = await sidecar({
      filters: [{ plugin: 'add-header', name: 'add', rootId: 'add_header', configuration: 'sidecar-test' }],
      clusters: [{ name: 'backend', port: up.port }],
    });
    const res = await request(`${url}/hello?x=1`);
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['x-added-by'], 'sidecar-test');
    assert.ok(res.headers['x-envoy-upstream-service-time'] !== undefined);
    assert.equal(await res.body.text(), 'upstream saw GET /hello?x=1 ');
    const seen = up.requests.at(-1)!;
    assert.equal(seen.headers['x-added-by'], 'sidecar-test');
    assert.ok(seen.headers['x-request-id'], 'x-request-id generated');
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
  });

  it('rewrites request and response bodies when the plugin buffers', async () => {
    const { url } = await sidecar({
      filters: [{ plugin: 'http-test', name: 'rewrite', rootId: 'http_test', configuration: 'mode=body-rewrite' }],
      clusters: [{ name: 'backend', port: up.port }],
    });
    const res = await request(`${url}/echo`, { method: 'POST', body: 'hello world', headers: { 'content-type': 'text/plain' } });
    assert.equal(res.statusCode, 200);
    assert.equal(await res.body.text(), '[upstream saw POST /echo HELLO WORLD]');
    assert.equal(up.requests.at(-1)!.body, 'HELLO WORLD');
  });

  it('sends a local reply with content-type text/plain added', async () => {
    const { url } = await sidecar({
      filters: [{ plugin: 'http-test', name: 'gate', rootId: 'http_test', configuration: 'name=gate' }],
      clusters: [{ name: 'backend', port: up.port }],
    });
    const before = up.requests.length;
    const res = await request(`${url}/private`, { headers: { 'x-deny': 'gate' } });
    assert.equal(res.statusCode, 403);
    assert.equal(res.headers['content-type'], 'text/plain');
    assert.equal(await res.body.text(), 'denied by gate\n');
    // The filter that replied also encodes its own reply (Envoy runs encode callbacks of filters that decoded).
    assert.equal(res.headers['x-encoded-by'], 'gate');
    assert.equal(up.requests.length, before, 'upstream never called');
  });

  it('runs several plugins in listener order; a local reply from filter k is encoded by filters k..0', async () => {
    const { url } = await sidecar({
      filters: [
        { plugin: 'http-test', name: 'a', rootId: 'http_test', configuration: 'name=a' },
        { plugin: 'http-test', name: 'b', rootId: 'http_test', configuration: 'name=b' },
        { plugin: 'http-test', name: 'c', rootId: 'http_test', configuration: 'name=c' },
      ],
      clusters: [{ name: 'backend', port: up.port }],
    });
    let res = await request(`${url}/order`);
    await res.body.text();
    assert.equal(up.requests.at(-1)!.headers['x-seen-by'], 'a,b,c', 'each filter sees what the previous passed on');
    assert.deepEqual(res.headers['x-encoded-by'], ['c', 'b', 'a'], 'encoder filters run in reverse order');

    res = await request(`${url}/order`, { headers: { 'x-deny': 'b' } });
    assert.equal(res.statusCode, 403);
    assert.equal(await res.body.text(), 'denied by b\n');
    assert.deepEqual(res.headers['x-encoded-by'], ['b', 'a'], 'c never decoded, so it does not encode');
  });

  it('returns 404 without a route and 503 with Envoy\'s body when the upstream refuses connections', async () => {
    const { url } = await sidecar({ filters: [], clusters: [{ name: 'dead', port: REFUSED_PORT }] });
    const res = await request(`${url}/x`);
    assert.equal(res.statusCode, 503);
    assert.equal(await res.body.text(), 'upstream connect error or disconnect/reset before headers. reset reason: connection failure');
    assert.equal(res.headers['content-type'], 'text/plain');
  });

  it('returns 504 "upstream request timeout" after the route timeout', async () => {
    const slow = await upstream(() => undefined); // never answers
    const { url } = await sidecar({ filters: [], clusters: [{ name: 'slow', port: slow.port }], routeTimeout: '0.2s' });
    const res = await request(`${url}/slow`);
    assert.equal(res.statusCode, 504);
    assert.equal(await res.body.text(), 'upstream request timeout');
  });
});

describe('callouts', () => {
  it('pauses the request, calls another cluster, and resumes with the reply', async () => {
    const up = await upstream();
    const auth = await upstream((req, res) => {
      if (req.url === '/slow') return; // never answers
      res.end(`token-for-${req.headers.host}`);
    });
    const { url } = await sidecar({
      filters: [{ plugin: 'http-test', name: 'callout', rootId: 'http_test', configuration: 'mode=callout\ncluster=auth\npath=/auth' }],
      clusters: [{ name: 'backend', port: up.port }, { name: 'auth', port: auth.port }],
    });
    const res = await request(`${url}/api`);
    assert.equal(res.statusCode, 200);
    await res.body.text();
    const seen = up.requests.at(-1)!;
    assert.equal(seen.headers['x-callout-status'], '200');
    assert.equal(seen.headers['x-callout-body'], 'token-for-callout.local');
    assert.equal(auth.requests.at(-1)!.url, '/auth');
  });

  it("delivers the AsyncClient router's 504 on timeout and BAD_ARGUMENT for an unknown cluster (exact name)", async () => {
    const up = await upstream();
    const auth = await upstream(() => undefined);
    const timeout = await sidecar({
      filters: [{ plugin: 'http-test', name: 'callout-timeout', rootId: 'http_test', configuration: 'mode=callout\ncluster=auth\npath=/slow\ntimeout=100' }],
      clusters: [{ name: 'backend', port: up.port }, { name: 'auth', port: auth.port }],
    });
    let res = await request(`${timeout.url}/api`);
    // Envoy's AsyncClient runs a router: a timeout before response headers is its local 504 reply, delivered to
    // the plugin as a response (zero headers only for a reset after headers).
    assert.equal(res.statusCode, 200);
    await res.body.text();
    const seen = up.requests.at(-1)!;
    assert.equal(seen.headers['x-callout-status'], '504');
    assert.equal(seen.headers['x-callout-body'], 'upstream request timeout');

    const unknown = await sidecar({
      filters: [{ plugin: 'http-test', name: 'callout-unknown', rootId: 'http_test', configuration: 'mode=callout\ncluster=auth?x=1\npath=/auth' }],
      clusters: [{ name: 'backend', port: up.port }, { name: 'auth', port: auth.port }],
    });
    res = await request(`${unknown.url}/api`);
    assert.equal(res.statusCode, 500);
    assert.equal(await res.body.text(), 'callout dispatch failed: 2\n');
  });
});

describe('streaming', () => {
  it('passes an SSE response through a plugin event by event', async () => {
    let releaseSecond!: () => void;
    const second = new Promise<void>((r) => { releaseSecond = r; });
    const up = await upstream((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      res.write('data: one\n\n');
      void second.then(() => {
        res.write('data: two\n\n');
        res.end();
      });
    });
    const { sidecar: sc, url } = await sidecar({
      filters: [{ plugin: 'http-test', name: 'sse', rootId: 'http_test', configuration: 'mode=sse', vmId: 'sse-vm' }],
      clusters: [{ name: 'backend', port: up.port }],
    });
    const res = await request(`${url}/events`);
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'text/event-stream');
    const received: string[] = [];
    for await (const chunk of res.body) {
      received.push(String(chunk));
      // The upstream only sends the second event once the client has the first: buffering would hang here.
      if (received.join('') === 'data: one\n\n') releaseSecond();
    }
    assert.equal(received.join(''), 'data: one\n\ndata: two\n\n');
    assert.equal(received[0], 'data: one\n\n');
    await until(() => sharedCounter(sc, 'sse-vm', 'sse_chunks') === 2, 5000, 'plugin saw two chunks');
  });

  it('runs on_log when the client disconnects mid-stream', async () => {
    const up = await upstream(() => undefined); // holds the request
    const { sidecar: sc, url } = await sidecar({
      filters: [{ plugin: 'http-test', name: 'logger', rootId: 'http_test', configuration: 'mode=pass', vmId: 'log-vm' }],
      clusters: [{ name: 'backend', port: up.port }],
    });
    const ac = new AbortController();
    const pending = request(`${url}/hang`, { signal: ac.signal }).catch((err: Error) => err);
    await until(() => up.requests.length === 1, 5000, 'upstream got the request');
    assert.equal(sharedCounter(sc, 'log-vm', 'on_log'), 0);
    ac.abort();
    assert.ok((await pending) instanceof Error);
    await until(() => sharedCounter(sc, 'log-vm', 'on_log') === 1, 5000, 'on_log ran');
    assert.equal(sc.listeners[0]!.activeStreams, 0);
  });
});

describe('failure policies after a trap', () => {
  const trapFilter = (policy: 'FAIL_OPEN' | 'FAIL_CLOSED' | 'FAIL_RELOAD' | undefined, failOpen?: boolean) => ({
    plugin: 'trap', name: `trap-${policy ?? 'fail_open'}`, rootId: '', ...(policy ? { failurePolicy: policy } : {}), ...(failOpen !== undefined ? { failOpen } : {}),
  });

  it('FAIL_OPEN bypasses the failed filter', async () => {
    const up = await upstream();
    const { url } = await sidecar({ filters: [trapFilter('FAIL_OPEN')], clusters: [{ name: 'backend', port: up.port }] });
    let res = await request(`${url}/a`, { headers: { 'x-trap': '1' } });
    assert.equal(res.statusCode, 200);
    await res.body.text();
    res = await request(`${url}/b`);
    assert.equal(res.statusCode, 200, 'later streams bypass the dead VM');
    await res.body.text();
  });

  it('fail_open: true (deprecated) behaves as FAIL_OPEN', async () => {
    const up = await upstream();
    const { url } = await sidecar({ filters: [trapFilter(undefined, true)], clusters: [{ name: 'backend', port: up.port }] });
    const res = await request(`${url}/a`, { headers: { 'x-trap': '1' } });
    assert.equal(res.statusCode, 200);
    await res.body.text();
  });

  it('FAIL_CLOSED answers 503 now and for later streams', async () => {
    const up = await upstream();
    const { url } = await sidecar({ filters: [trapFilter('FAIL_CLOSED')], clusters: [{ name: 'backend', port: up.port }] });
    let res = await request(`${url}/a`, { headers: { 'x-trap': '1' } });
    assert.equal(res.statusCode, 503);
    await res.body.text();
    res = await request(`${url}/b`);
    assert.equal(res.statusCode, 503);
    await res.body.text();
    assert.equal(up.requests.length, 0);
  });

  it('FAIL_RELOAD answers 503 for the failed stream and serves the next one with a new VM', async () => {
    const up = await upstream();
    const { sidecar: sc, url } = await sidecar({ filters: [trapFilter('FAIL_RELOAD')], clusters: [{ name: 'backend', port: up.port }] });
    let res = await request(`${url}/a`, { headers: { 'x-trap': '1' } });
    assert.equal(res.statusCode, 503);
    await res.body.text();
    res = await request(`${url}/b`);
    assert.equal(res.statusCode, 200);
    await res.body.text();
    assert.equal(sc.plugins[0]!.vmGeneration, 2);
  });
});
