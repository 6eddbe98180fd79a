import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ClientClosedError, ConfigError } from '../../src/common/errors';
import { parseBootstrap } from '../../src/config/bootstrap';
import { UndiciHttpCalloutService } from '../../src/http/http-callout';
import { UpstreamPools } from '../../src/http/upstream-pools';
import { ClusterManager } from '../../src/upstream/cluster-manager';
import {
  fetchRemoteWasmCode,
  parseRemoteWasmCode,
  RemoteCodeCache,
  RemoteCodeError,
  RemoteCodeHashMismatchError,
  sha256Hex,
  type RemoteWasmCode,
} from '../../src/wasm/remote-code';
import { TempDir } from '../http/helpers';
import { makePki, upstreamTls, type TestPki } from '../protocols/helpers';
import { pluginPath } from '../support/plugins';
import { staticCluster } from '../support/xds-fixtures';
import { until } from '../support/until';

// Real parts throughout: node:http(s) servers on loopback serve a real plugin module, reached through a real
// ClusterManager, UpstreamPools and the sidecar's HTTP callout client, as Envoy's fetcher uses the cluster's
// async client.

const WASM = readFileSync(pluginPath('add-header'));
const SHA = sha256Hex(WASM);

interface Seen {
  readonly host: string | undefined;
  readonly path: string | undefined;
  readonly method: string | undefined;
}

/** An HTTP(S) server whose answer per request the test chooses; records what it saw. */
class CodeServer {
  readonly seen: Seen[] = [];
  /** Answers request n (0-based). */
  answer: (n: number, req: IncomingMessage, res: ServerResponse) => void = (_n, _req, res) => res.end(WASM);
  private constructor(readonly server: Server) {
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const n = this.seen.length;
      this.seen.push({ host: req.headers.host, path: req.url, method: req.method });
      this.answer(n, req, res);
    });
  }

  static async start(pki?: TestPki): Promise<CodeServer> {
    const server = pki ? createHttpsServer({ cert: pki.serverCert, key: pki.serverKey }) : createHttpServer();
    const s = new CodeServer(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return s;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const tmp = new TempDir();
let pki: TestPki;
const clusters = new ClusterManager();
const pools = new UpstreamPools(clusters);
const http = new UndiciHttpCalloutService(pools);
const servers: CodeServer[] = [];
const caches: RemoteCodeCache[] = [];
let dirs = 0;

function addCluster(doc: Record<string, unknown>): void {
  const b = parseBootstrap(JSON.stringify({ static_resources: { clusters: [doc] } }), 'json');
  clusters.addOrUpdateCluster(b.staticClusters[0]!);
}

async function server(name: string, options: { tls?: boolean } = {}): Promise<CodeServer> {
  const s = await CodeServer.start(options.tls ? pki : undefined);
  servers.push(s);
  const c = staticCluster(name, s.port);
  if (options.tls) c['transport_socket'] = upstreamTls({ validation_context: { trusted_ca: { inline_string: pki.caCert } } }, { sni: 'server.test' });
  addCluster(c);
  return s;
}

function cache(dir = join(tmp.path, `cache-${dirs++}`)): RemoteCodeCache {
  const c = new RemoteCodeCache({ dir });
  caches.push(c);
  return c;
}

function code(cluster: string, extra: Record<string, unknown> = {}, sha256 = SHA): RemoteWasmCode {
  return parseRemoteWasmCode({
    http_uri: { uri: 'http://plugins.example.com:8080/wasm/add-header.wasm?v=1', cluster, timeout: '10s' },
    sha256,
    // No waiting between attempts: the backoff's jitter source below is 0.
    retry_policy: { num_retries: 3, retry_back_off: { base_interval: '0.01s' } },
    ...extra,
  }, 'vm_config.code.remote');
}

const deps = (c: RemoteCodeCache) => ({ http, cache: c, random: () => 0 });

before(() => {
  pki = makePki(tmp);
});

after(async () => {
  for (const c of caches) c.close();
  http.close();
  await pools.destroy();
  clusters.close();
  await Promise.all(servers.map((s) => s.close()));
  tmp.cleanup();
});

describe('parseRemoteWasmCode', () => {
  const uri = { uri: 'https://plugins.example.com/a.wasm', cluster: 'outbound|443||plugins.example.com', timeout: '2.5s' };

  test('reads http_uri, sha256 and retry_policy, with Envoy defaults for what is absent', () => {
    const c = parseRemoteWasmCode({ http_uri: uri, sha256: SHA }, 'p');
    assert.deepEqual(c, {
      cluster: 'outbound|443||plugins.example.com', uri: uri.uri, authority: 'plugins.example.com', path: '/a.wasm', timeoutMs: 2500, sha256: SHA,
      retry: { numRetries: 1, baseIntervalMs: 1000, maxIntervalMs: 10_000 },
    });
    const r = parseRemoteWasmCode({ http_uri: uri, sha256: SHA, retry_policy: { num_retries: 0, retry_back_off: { base_interval: '0.2s' } } }, 'p');
    assert.deepEqual(r.retry, { numRetries: 0, baseIntervalMs: 200, maxIntervalMs: 2000 }, 'max_interval defaults to 10 x base_interval');
  });

  const refused: Array<[string, unknown, string]> = [
    ['a missing sha256 (Envoy requires it for remote code)', { http_uri: uri }, 'p.sha256'],
    ['a sha256 that is not a hex SHA-256', { http_uri: uri, sha256: 'abc' }, 'p.sha256'],
    ['a missing cluster', { http_uri: { uri: uri.uri, timeout: '1s' }, sha256: SHA }, 'p.http_uri.cluster'],
    ['a missing timeout', { http_uri: { uri: uri.uri, cluster: 'c' }, sha256: SHA }, 'p.http_uri.timeout'],
    ['a URI without a host', { http_uri: { ...uri, uri: 'http:///a.wasm' }, sha256: SHA }, 'p.http_uri.uri'],
    ['an unknown field', { http_uri: uri, sha256: SHA, checksum: 'x' }, 'p.checksum'],
    ['an unknown http_uri field', { http_uri: { ...uri, method: 'GET' }, sha256: SHA }, 'p.http_uri.method'],
    ['retry_on, which the remote data provider does not use', { http_uri: uri, sha256: SHA, retry_policy: { retry_on: '5xx' } }, 'p.retry_policy.retry_on'],
    ['max_interval below base_interval', { http_uri: uri, sha256: SHA, retry_policy: { retry_back_off: { base_interval: '2s', max_interval: '1s' } } }, 'p.retry_policy.retry_back_off.max_interval'],
    ['retry_back_off without base_interval', { http_uri: uri, sha256: SHA, retry_policy: { retry_back_off: { max_interval: '1s' } } }, 'p.retry_policy.retry_back_off.base_interval'],
    ['not an object', 'http://x/a.wasm', 'p'],
  ];
  for (const [what, doc, path] of refused) {
    test(`refuses ${what}, naming ${path}`, () => {
      assert.throws(() => parseRemoteWasmCode(doc, 'p'), (err: unknown) => err instanceof ConfigError && err.path === path);
    });
  }
});

describe('fetchRemoteWasmCode', () => {
  test('fetches through the cluster with the URI host as authority, verifies sha256 and caches on disk', async () => {
    const s = await server('code-ok');
    const c = cache();
    const bytes = await fetchRemoteWasmCode(code('code-ok'), deps(c));
    assert.equal(sha256Hex(bytes), SHA);
    await WebAssembly.compile(bytes); // the module is usable as fetched
    assert.deepEqual(s.seen, [{ host: 'plugins.example.com:8080', path: '/wasm/add-header.wasm?v=1', method: 'GET' }]);
    assert.deepEqual(readFileSync(c.fileFor(SHA)), WASM, 'cached on disk under its sha256');
    assert.deepEqual(c.stats, { fetches: 1, memoryHits: 0, diskHits: 0, corruptFiles: 0 });
  });

  test('a second plugin with the same sha256 does not fetch again, also while the first fetch is in flight', async () => {
    const s = await server('code-shared');
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => { release = resolve; });
    s.answer = (_n, _req, res) => void gate.then(() => res.end(WASM));
    const c = cache();
    const first = fetchRemoteWasmCode(code('code-shared'), deps(c));
    const second = fetchRemoteWasmCode(code('code-shared'), deps(c));
    await until(() => s.seen.length === 1, 5000, 'the request reached the server');
    release();
    const [a, b] = await Promise.all([first, second]);
    assert.equal(a, b, 'both plugins get the same bytes');
    const third = await fetchRemoteWasmCode(code('code-shared'), deps(c));
    assert.equal(third, a);
    assert.equal(s.seen.length, 1, 'one request for three plugins');
    assert.deepEqual(c.stats, { fetches: 1, memoryHits: 2, diskHits: 0, corruptFiles: 0 });
  });

  test('a body whose sha256 differs is refused with both hashes, after Envoy\'s retries', async () => {
    const s = await server('code-wrong');
    const other = readFileSync(pluginPath('noop'));
    s.answer = (_n, _req, res) => res.end(other);
    const c = cache();
    const err = await fetchRemoteWasmCode(code('code-wrong', { retry_policy: { num_retries: 1, retry_back_off: { base_interval: '0.01s' } } }), deps(c)).then(
      () => assert.fail('a module with the wrong sha256 was accepted'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof RemoteCodeHashMismatchError, String(err));
    assert.equal(err.code, 'PWS_ERR_REMOTE_CODE_SHA256');
    assert.equal(err.expected, SHA);
    assert.equal(err.actual, sha256Hex(other));
    assert.match(err.message, new RegExp(`expected ${SHA}, got ${sha256Hex(other)}`));
    assert.equal(err.attempts, 2, 'InvalidData is retried like any failure (RemoteAsyncDataProvider::onFailure)');
    assert.equal(s.seen.length, 2);
    assert.equal(existsSync(c.fileFor(SHA)), false, 'nothing cached');
    assert.equal(existsSync(c.fileFor(sha256Hex(other))), false);
  });

  test('retries failed attempts (503, empty body, reset) until one succeeds', async () => {
    const s = await server('code-flaky');
    s.answer = (n, _req, res) => {
      if (n === 0) { res.statusCode = 503; res.end('busy'); return; }
      if (n === 1) { res.end(); return; }
      if (n === 2) { res.socket?.destroy(); return; }
      res.end(WASM);
    };
    const c = cache();
    const bytes = await fetchRemoteWasmCode(code('code-flaky'), deps(c));
    assert.equal(sha256Hex(bytes), SHA);
    assert.equal(s.seen.length, 4, 'three failures, then success (num_retries 3)');
  });

  test('gives up after 1 + num_retries attempts with the last failure', async () => {
    const s = await server('code-down');
    s.answer = (_n, _req, res) => { res.statusCode = 404; res.end('no such plugin'); };
    const err = await fetchRemoteWasmCode(code('code-down', { retry_policy: { num_retries: 2, retry_back_off: { base_interval: '0.01s' } } }), deps(cache())).then(
      () => assert.fail('resolved'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof RemoteCodeError && !(err instanceof RemoteCodeHashMismatchError), String(err));
    assert.equal(err.attempts, 3);
    assert.match(err.message, /response status 404 \(no such plugin\)/);
    assert.equal(s.seen.length, 3);
  });

  test('http_uri.timeout ends an attempt that gets no answer', async () => {
    const s = await server('code-silent');
    s.answer = () => undefined; // never answers
    const c = code('code-silent', { http_uri: { uri: 'http://plugins.example.com/a.wasm', cluster: 'code-silent', timeout: '0.2s' }, retry_policy: { num_retries: 1, retry_back_off: { base_interval: '0.01s' } } });
    const err = await fetchRemoteWasmCode(c, deps(cache())).then(() => assert.fail('resolved'), (e: unknown) => e);
    assert.ok(err instanceof RemoteCodeError, String(err));
    assert.match(err.message, /504 \(upstream request timeout\)/);
    assert.equal(s.seen.length, 2, 'the timeout is per attempt and the attempt is retried');
  });

  test('an unknown cluster fails every attempt', async () => {
    const err = await fetchRemoteWasmCode(code('no-such-cluster', { retry_policy: { num_retries: 0 } }), deps(cache())).then(() => assert.fail('resolved'), (e: unknown) => e);
    assert.ok(err instanceof RemoteCodeError);
    assert.match(err.message, /cluster no-such-cluster is unknown/);
  });

  test('the disk cache serves the module after the server is gone', async () => {
    const s = await server('code-gone');
    const dir = join(tmp.path, 'cache-shared');
    await fetchRemoteWasmCode(code('code-gone'), deps(cache(dir)));
    await s.close();
    servers.splice(servers.indexOf(s), 1);
    const restarted = cache(dir); // a new process: nothing in memory
    const bytes = await fetchRemoteWasmCode(code('code-gone', { retry_policy: { num_retries: 0 } }), deps(restarted));
    assert.deepEqual(bytes, WASM);
    assert.deepEqual(restarted.stats, { fetches: 0, memoryHits: 0, diskHits: 1, corruptFiles: 0 });
  });

  test('a corrupt cached file is re-verified, refused and fetched again', async () => {
    const s = await server('code-corrupt');
    const c = cache();
    await fetchRemoteWasmCode(code('code-corrupt'), deps(cache(c.dir)));
    const damaged = Buffer.from(WASM);
    damaged.writeUInt8(damaged.at(-1)! ^ 0xff, damaged.length - 1);
    writeFileSync(c.fileFor(SHA), damaged);
    const bytes = await fetchRemoteWasmCode(code('code-corrupt'), deps(c));
    assert.deepEqual(bytes, WASM);
    assert.equal(s.seen.length, 2, 'fetched again');
    assert.deepEqual(readFileSync(c.fileFor(SHA)), WASM, 'the cache file is repaired');
    assert.deepEqual(c.stats, { fetches: 1, memoryHits: 0, diskHits: 0, corruptFiles: 1 });
  });

  test('a TLS cluster is fetched over TLS with its trusted CA and SNI', async () => {
    const s = await server('code-tls', { tls: true });
    const bytes = await fetchRemoteWasmCode(code('code-tls'), deps(cache()));
    assert.equal(sha256Hex(bytes), SHA);
    assert.equal(s.seen.length, 1);
  });

  test('close() cancels a fetch waiting for its retry', async () => {
    const s = await server('code-closed');
    s.answer = (_n, _req, res) => { res.statusCode = 503; res.end(); };
    const c = cache();
    const slow = code('code-closed', { retry_policy: { num_retries: 5, retry_back_off: { base_interval: '60s' } } });
    const pending = fetchRemoteWasmCode(slow, { http, cache: c, random: () => 0.99 });
    await until(() => s.seen.length === 1, 5000, 'the first attempt');
    c.close();
    await assert.rejects(pending, (err: unknown) => err instanceof ClientClosedError);
    assert.equal(s.seen.length, 1);
    await assert.rejects(fetchRemoteWasmCode(slow, deps(c)), ClientClosedError);
  });
});
