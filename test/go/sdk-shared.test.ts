import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { TempDir, Upstream } from '../http/helpers';
import { until } from '../support/until';
import { k8sClusterName, startGoSidecar, type GoSidecar } from './helpers';

// Ticks and shared data through the Higress SDK (plugins/go/higress/sdk-shared). Envoy's behaviour
// (proxy-wasm-cpp-host src/shared_data.cc): get of a missing key is NOT_FOUND with cas 0; set of an existing
// key with a non-zero cas other than the entry's is CAS_MISMATCH; set with cas 0, or of a key that does not
// exist, always succeeds; every write gives the entry a new cas. The store is per vm_id, shared by every VM
// (worker thread) of that id.

const tmp = new TempDir();
let backend: Upstream;
let tokens: Upstream;
const TOKEN_CLUSTER = k8sClusterName('token', 'default', 80);

before(async () => {
  backend = await Upstream.start();
  let issued = 0;
  tokens = await Upstream.start((_req, res) => res.end(`token-${++issued}`));
});

after(async () => {
  await backend?.close();
  await tokens?.close();
  tmp.cleanup();
});

const CONFIG = JSON.stringify({ tick_prefix: 'ticks', fast_ms: 100, slow_ms: 1000 });

interface Answer {
  readonly status: number;
  readonly header: (name: string) => string | undefined;
}

async function call(url: string, path: string): Promise<Answer> {
  const res = await request(`${url}${path}`);
  await res.body.dump();
  return {
    status: res.statusCode,
    header: (name) => {
      const v = res.headers[name];
      return Array.isArray(v) ? v.join(',') : v;
    },
  };
}

describe('one VM', () => {
  let sc: GoSidecar;
  before(async () => {
    const configuration = JSON.stringify({ ...JSON.parse(CONFIG), refresh_fqdn: 'token.default.svc.cluster.local', refresh_port: 80 });
    sc = await startGoSidecar(tmp, {
      filters: [{ plugin: 'go/sdk-shared', name: 'shared', rootId: '', vmId: 'shared-vm', configuration }],
      clusters: [{ name: 'backend', port: backend.port }, { name: TOKEN_CLUSTER, port: tokens.port }],
    });
  });
  after(async () => {
    await sc?.sidecar.stop();
  });

  const counter = async (key: string): Promise<number> => {
    const a = await call(sc.url, `/shared/get?key=${key}`);
    return a.status === 200 ? Number(a.header('x-shared-value')) : 0;
  };

  it('tick functions registered with RegisterTickFunc run on the root context, each on its own period', async () => {
    await until(async () => (await counter('ticks.fast')) >= 3, 20_000, 'fast tick ran 3 times');
    await until(async () => (await counter('ticks.slow')) >= 1, 20_000, 'slow tick ran');
    // Both run on the same 100 ms host tick; the 1000 ms one only when its period passed since its last run,
    // which is never more often than the 100 ms one (read slow first: the fast count only grows).
    const slow = await counter('ticks.slow');
    const fast = await counter('ticks.fast');
    assert.ok(slow <= fast, `slow ${slow} <= fast ${fast}`);
  });

  it('a tick calls out from the root context through a cluster client; its answer lands in shared data', async () => {
    let value: string | undefined;
    await until(async () => {
      const a = await call(sc.url, '/shared/get?key=token');
      value = a.header('x-shared-value');
      return a.status === 200;
    }, 20_000, 'token stored');
    assert.match(value ?? '', /^token-\d+$/);
    const seen = tokens.requests[0]!;
    assert.equal(seen.method, 'GET');
    assert.equal(seen.url, '/token');
    assert.equal(seen.headers['host'], 'token.default.svc.cluster.local');
    // Later ticks refresh it.
    await until(async () => (await call(sc.url, '/shared/get?key=token')).header('x-shared-value') !== value, 20_000, 'token refreshed');
  });

  it('get of a missing key is NOT_FOUND with cas 0', async () => {
    const a = await call(sc.url, '/shared/get?key=missing');
    assert.equal(a.status, 404);
    assert.equal(a.header('x-shared-error'), 'error status returned by host: not found');
    assert.equal(a.header('x-shared-cas'), '0');
  });

  it('CAS across requests: a cas read in one request guards the write of the next; a stale one is refused', async () => {
    assert.equal((await call(sc.url, '/shared/set?key=k&value=a&cas=0')).header('x-shared-result'), 'ok');
    const first = await call(sc.url, '/shared/get?key=k');
    assert.equal(first.header('x-shared-value'), 'a');
    const cas1 = first.header('x-shared-cas')!;
    assert.notEqual(cas1, '0');

    const write = await call(sc.url, `/shared/set?key=k&value=b&cas=${cas1}`);
    assert.equal(write.status, 200);
    const stale = await call(sc.url, `/shared/set?key=k&value=c&cas=${cas1}`);
    assert.equal(stale.status, 409);
    assert.equal(stale.header('x-shared-result'), 'error status returned by host: cas mismatch');

    const second = await call(sc.url, '/shared/get?key=k');
    assert.equal(second.header('x-shared-value'), 'b');
    assert.notEqual(second.header('x-shared-cas'), cas1);
    // cas 0 writes whatever the entry's cas is.
    assert.equal((await call(sc.url, '/shared/set?key=k&value=d&cas=0')).status, 200);
    assert.equal((await call(sc.url, '/shared/get?key=k')).header('x-shared-value'), 'd');
  });

  it('a write of a key that does not exist succeeds whatever cas it carries', async () => {
    const a = await call(sc.url, '/shared/set?key=fresh&value=x&cas=12345');
    assert.equal(a.status, 200);
    assert.equal(a.header('x-shared-result'), 'ok');
    assert.equal((await call(sc.url, '/shared/get?key=fresh')).header('x-shared-value'), 'x');
  });

  it('concurrent increments on one VM all land', async () => {
    const n = 20;
    const answers = await Promise.all(Array.from({ length: n }, () => call(sc.url, '/shared/incr?key=hits')));
    assert.deepEqual(answers.map((a) => Number(a.header('x-shared-value'))).sort((x, y) => x - y), Array.from({ length: n }, (_, i) => i + 1));
  });
});

describe('two worker threads, one store per vm_id', () => {
  let sc: GoSidecar;
  before(async () => {
    sc = await startGoSidecar(tmp, {
      filters: [{ plugin: 'go/sdk-shared', name: 'shared', rootId: '', vmId: 'shared-vm', configuration: CONFIG }],
      clusters: [{ name: 'backend', port: backend.port }],
    }, { concurrency: 2 });
  });
  after(async () => {
    await sc?.sidecar.stop();
  });

  it('increments from both workers\' VMs with get/set-with-cas retries lose nothing', async () => {
    // Created first: two VMs that both read NOT_FOUND would both write with cas 0, which always succeeds.
    assert.equal((await call(sc.url, '/shared/set?key=hits&value=0&cas=0')).status, 200);
    const n = 60;
    const answers = await Promise.all(Array.from({ length: n }, () => call(sc.url, '/shared/incr?key=hits')));
    for (const a of answers) assert.equal(a.status, 200);
    // Each increment saw a distinct value: no two VMs wrote over each other.
    assert.deepEqual(answers.map((a) => Number(a.header('x-shared-value'))).sort((x, y) => x - y), Array.from({ length: n }, (_, i) => i + 1));
    assert.equal((await call(sc.url, '/shared/get?key=hits')).header('x-shared-value'), String(n));
  });
});
