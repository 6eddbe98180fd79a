import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import type { RedisClusterStats } from '../../src/redis/pool-manager';
import { TempDir } from '../http/helpers';
import { RedisServer } from '../support/redis-server';
import { until } from '../support/until';
import { startBlackhole, type Blackhole } from '../redis/helpers';
import { initReports, runOps, type ClientConfig, type GoRedisSidecar, type InitReport, startGoRedisSidecar } from '../redis/go-sdk-fixture';
import { REFUSED_PORT } from '../support/ports';

// Faults as wasm-go v1.1.1 sees them through the sidecar. What the SDK does with what the host reports
// (pkg/wrapper/redis_wrapper.go, proxywasm/hostcall.go):
// - proxy_redis_init's status: Init logs "failed to init redis: <err>, will retry later", returns nil and stays not
//   ready; every later call retries proxy_redis_init and returns its error instead of dispatching.
// - proxy_redis_call's status: the method returns StatusToError(status) and no callback follows.
// - callback status 1 (network error, op timeout): the callback gets resp.ErrorValue("cannot connect to redis cluster").
// - callback status 0 with a Redis error reply: the callback gets that error value; on "NOAUTH Authentication
//   required" the client re-inits and retries the command once, and the retry's reply is what the callback gets.

const fqdn = (name: string) => ({ type: 'fqdn', fqdn: `${name}.default.svc.cluster.local`, port: 6379 });
const clusterOf = (name: string) => `outbound|6379||${name}.default.svc.cluster.local`;
const CANNOT_CONNECT = { type: 'Error', err: 'cannot connect to redis cluster' };

const CLIENTS: readonly ClientConfig[] = [
  { name: 'dead', cluster: fqdn('redis-dead'), timeout: 10_000 },
  { name: 'stalled', cluster: fqdn('redis-stalled'), timeout: 1500 },
  { name: 'wrong-password', cluster: fqdn('redis-auth'), password: 'not-the-password', timeout: 10_000 },
  { name: 'acl', cluster: fqdn('redis-acl'), username: 'app', password: 'app-pass', timeout: 10_000 },
  { name: 'acl-wrong-password', cluster: fqdn('redis-acl-bad'), username: 'app', password: 'nope', timeout: 10_000 },
  { name: 'db5', cluster: fqdn('redis-db5'), timeout: 10_000, database: 5 },
  { name: 'db-out-of-range', cluster: fqdn('redis-db99'), timeout: 10_000, database: 99 },
  { name: 'unknown', cluster: fqdn('redis-nowhere'), timeout: 10_000 },
  { name: 'no-host', cluster: fqdn('redis-empty'), timeout: 10_000 },
  { name: 'restarted', cluster: fqdn('redis-restarted'), timeout: 10_000 },
  { name: 'abandoned', cluster: fqdn('redis-abandoned'), timeout: 60_000 },
  { name: 'resp3', cluster: fqdn('redis-resp3'), timeout: 10_000 },
  // Its op timeout would never fire within the test: only the cluster's connect_timeout can end the call.
  { name: 'blackholed', cluster: fqdn('redis-blackholed'), timeout: 600_000 },
];

const tmp = new TempDir();
let stalled: RedisServer;
let auth: RedisServer;
let acl: RedisServer;
let plain: RedisServer;
let restarted: RedisServer;
let abandoned: RedisServer;
let hole: Blackhole | null;
let env: GoRedisSidecar;
let reports: InitReport[];

before(async () => {
  [stalled, auth, acl, plain, restarted, abandoned] = await Promise.all([
    RedisServer.start(),
    RedisServer.start({ requirepass: 'the-password' }),
    RedisServer.start({ requirepass: 'default-pass', users: [{ name: 'app', password: 'app-pass', rules: ['~app:*', '+@all'] }] }),
    RedisServer.start(),
    RedisServer.start(),
    RedisServer.start(),
  ]);
  const closedPort = REFUSED_PORT; // nothing listens there
  hole = await startBlackhole();
  env = await startGoRedisSidecar(tmp, {
    clients: CLIENTS,
    clusters: [
      { name: clusterOf('redis-dead'), port: closedPort },
      { name: clusterOf('redis-stalled'), port: stalled.port },
      { name: clusterOf('redis-auth'), port: auth.port },
      { name: clusterOf('redis-acl'), port: acl.port },
      { name: clusterOf('redis-acl-bad'), port: acl.port },
      { name: clusterOf('redis-db5'), port: plain.port },
      { name: clusterOf('redis-db99'), port: plain.port },
      { name: clusterOf('redis-empty'), port: plain.port, noEndpoints: true },
      { name: clusterOf('redis-restarted'), port: restarted.port },
      { name: clusterOf('redis-abandoned'), port: abandoned.port },
      { name: clusterOf('redis-resp3'), port: plain.port },
      { name: clusterOf('redis-blackholed'), port: hole?.port ?? closedPort, connectTimeout: '0.5s' },
      // redis-nowhere is deliberately not declared.
    ],
  });
  reports = await initReports(env.url);
});

after(async () => {
  for (const s of [stalled, abandoned]) if (s?.pid !== undefined) process.kill(s.pid, 'SIGCONT');
  await env?.close();
  hole?.close();
  await Promise.all([stalled, auth, acl, plain, restarted, abandoned].map((s) => s?.stop()));
  tmp.cleanup();
});

function report(name: string): InitReport {
  const r = reports.find((x) => x.name === name);
  assert.ok(r, `no init report for ${name}`);
  return r;
}

function clusterStats(name: string): RedisClusterStats | undefined {
  return env.sidecar.redis?.stats().clusters.find((c) => c.cluster === clusterOf(name));
}

describe('wasm-go RedisClient faults through the sidecar', () => {
  it('dead Redis (closed port): Init succeeds, every call reaches the callback as "cannot connect to redis cluster"', async () => {
    assert.deepEqual(report('dead'), { name: 'dead', cluster: clusterOf('redis-dead'), phase: 'config', err: '', ready: true, done: true });
    for (let i = 0; i < 3; i++) {
      const { results } = await runOps(env.url, 'dead', [{ op: 'Get', args: ['k'] }, { op: 'Incr', args: ['k'] }]);
      assert.deepEqual(results, [
        { op: 'Get', reply: CANNOT_CONNECT },
        { op: 'Incr', reply: CANNOT_CONNECT },
      ]);
    }
    assert.ok(env.logs.pluginMatching('Error occurred while calling redis, it seems cannot connect to the redis cluster').length >= 6);
    assert.equal(env.logs.pluginMatching('Error occurred while calling redis').every((l) => l.level === 'critical'), true);
    const s = clusterStats('redis-dead')!;
    assert.equal(s.calls, 6);
    assert.equal(s.errors, 6);
  });

  it('stalled Redis (SIGSTOP) past the init timeout: in-flight calls fail with status 1, then it recovers', async () => {
    const first = await runOps(env.url, 'stalled', [{ op: 'Set', args: ['k', 'before'] }]);
    assert.deepEqual(first.results, [{ op: 'Set', reply: { type: 'SimpleString', str: 'OK' } }]);
    process.kill(stalled.pid!, 'SIGSTOP');
    try {
      // Several requests at once on the stalled connection: the op timeout (1500 ms, from Init) closes it and fails
      // every call on it; each HTTP request is still answered.
      const runs = await Promise.all(
        [1, 2, 3, 4].map((i) => runOps(env.url, 'stalled', [{ op: 'Set', args: ['k', `during-${i}`] }, { op: 'Get', args: ['k'] }])),
      );
      for (const r of runs) {
        assert.deepEqual(r.results[0], { op: 'Set', reply: CANNOT_CONNECT });
      }
      assert.ok((clusterStats('redis-stalled')?.timeouts ?? 0) >= 1);
    } finally {
      process.kill(stalled.pid!, 'SIGCONT');
    }
    // The writes were sent before the timeout, so Redis may have applied them after SIGCONT; a new call goes over
    // a new connection and succeeds.
    await until(async () => {
      const r = await runOps(env.url, 'stalled', [{ op: 'Set', args: ['k', 'after'] }]);
      return r.results[0]!.reply?.type === 'SimpleString';
    }, 30_000, 'the stalled redis answers again');
    assert.equal(await stalled.client().get('k'), 'after');
    assert.ok(env.logs.pluginMatching('it seems cannot connect to the redis cluster').length >= 4);
  });

  it('Redis down then back: each call while down fails, the first call once it answers again succeeds', async () => {
    const ok = { type: 'SimpleString', str: 'OK' };
    assert.deepEqual((await runOps(env.url, 'restarted', [{ op: 'Set', args: ['k', 'up'] }])).results[0]!.reply, ok);
    await restarted.kill('SIGKILL');
    // Envoy makes a new connection for every call after a failed one (the failed client is dropped, the next send
    // creates another), so however many calls failed while Redis was down, none is refused once it is back.
    for (let i = 0; i < 8; i++) {
      const { results } = await runOps(env.url, 'restarted', [{ op: 'Set', args: ['k', `down-${i}`] }]);
      assert.deepEqual(results, [{ op: 'Set', reply: CANNOT_CONNECT }]);
    }
    await restarted.restart(); // resolves once it answers PING
    const { results } = await runOps(env.url, 'restarted', [{ op: 'Set', args: ['k', 'back'] }, { op: 'Get', args: ['k'] }]);
    assert.deepEqual(results, [
      { op: 'Set', reply: ok },
      { op: 'Get', reply: { type: 'BulkString', str: 'back' } },
    ]);
  });

  it('unreachable Redis (connect never completes): the cluster connect_timeout ends the call, not the op timeout', async (t) => {
    if (!hole) return t.skip('python3 not available');
    const { results } = await runOps(env.url, 'blackholed', [{ op: 'Get', args: ['k'] }, { op: 'Get', args: ['k'] }]);
    assert.deepEqual(results, [
      { op: 'Get', reply: CANNOT_CONNECT },
      { op: 'Get', reply: CANNOT_CONNECT },
    ]);
    const failures = env.logs.records.filter((r) => r['msg'] === 'connect failed' && r['cluster'] === clusterOf('redis-blackholed'));
    assert.equal(failures.length, 2, 'one connect per call, no backoff');
    for (const f of failures) assert.match(String(f['err']), /connect timeout after 500 ms/);
  });

  it('wrong password: AUTH fails silently, the call gets NOAUTH after the SDK re-inits and retries once', async () => {
    assert.equal(report('wrong-password').ready, true);
    const before = clusterStats('redis-auth')?.calls ?? 0;
    const { results } = await runOps(env.url, 'wrong-password', [{ op: 'Set', args: ['k', 'v'] }]);
    assert.deepEqual(results, [{ op: 'Set', reply: { type: 'Error', err: 'NOAUTH Authentication required.' } }]);
    // The retry is a second proxy_redis_call on the same cluster.
    assert.equal(clusterStats('redis-auth')!.calls - before, 2);
    assert.equal(clusterStats('redis-auth')!.error_replies, 2);
    assert.ok(env.logs.pluginMatching('redis authentication required').length >= 1);
    assert.ok(env.logs.pluginMatching('redis re-authentication successful, retrying request').length >= 1);
    // Redis saw the plugin's AUTH with the wrong password, and holds nothing.
    const log = (await auth.client().call('ACL', 'LOG')) as unknown[][];
    const entry = log.map((e) => toMap(e)).find((e) => e.get('reason') === 'auth' && e.get('username') === 'default');
    assert.ok(entry, 'ACL LOG records the failed AUTH');
    assert.equal(await auth.client().exists('k'), 0);
  });

  it('ACL user: AUTH <user> <pass>; the user acts within its ACL and NOPERM comes back as an error reply', async () => {
    assert.equal(report('acl').ready, true);
    const { results } = await runOps(env.url, 'acl', [
      { op: 'Command', args: [['ACL', 'WHOAMI']] },
      { op: 'Set', args: ['app:k', 'mine'] },
      { op: 'Set', args: ['other:k', 'not mine'] },
      { op: 'Get', args: ['app:k'] },
    ]);
    assert.deepEqual(results[0], { op: 'Command', reply: { type: 'BulkString', str: 'app' } });
    assert.deepEqual(results[1], { op: 'Set', reply: { type: 'SimpleString', str: 'OK' } });
    assert.equal(results[2]!.reply!.type, 'Error');
    assert.match(results[2]!.reply!.err!, /^NOPERM /);
    assert.deepEqual(results[3], { op: 'Get', reply: { type: 'BulkString', str: 'mine' } });
    const c = acl.client();
    assert.equal(await c.get('app:k'), 'mine');
    assert.equal(await c.exists('other:k'), 0);
  });

  it('ACL user with a wrong password: the connection stays unauthenticated, the call gets NOAUTH', async () => {
    const { results } = await runOps(env.url, 'acl-wrong-password', [{ op: 'Get', args: ['app:k'] }]);
    assert.deepEqual(results, [{ op: 'Get', reply: { type: 'Error', err: 'NOAUTH Authentication required.' } }]);
    const log = (await acl.client().call('ACL', 'LOG')) as unknown[][];
    assert.ok(log.map((e) => toMap(e)).some((e) => e.get('reason') === 'auth' && e.get('username') === 'app'));
  });

  it('database index: WithDataBase(5) SELECTs 5 on the connection; out of range, SELECT fails silently and db 0 is used', async () => {
    const five = await runOps(env.url, 'db5', [{ op: 'Set', args: ['dbk', 'five'] }, { op: 'Command', args: [['CLIENT', 'INFO']] }]);
    assert.deepEqual(five.results[0], { op: 'Set', reply: { type: 'SimpleString', str: 'OK' } });
    assert.match(five.results[1]!.reply!.str!, /\bdb=5\b/);
    assert.equal(await plain.client({ db: 5 }).get('dbk'), 'five');

    // Envoy sends SELECT with the init string's raw db and swallows its reply (here -ERR DB index is out of range).
    assert.equal(report('db-out-of-range').ready, true);
    const bad = await runOps(env.url, 'db-out-of-range', [{ op: 'Set', args: ['db99k', 'zero'] }, { op: 'Command', args: [['CLIENT', 'INFO']] }]);
    assert.deepEqual(bad.results[0], { op: 'Set', reply: { type: 'SimpleString', str: 'OK' } });
    assert.match(bad.results[1]!.reply!.str!, /\bdb=0\b/);
    assert.equal(await plain.client({ db: 0 }).get('db99k'), 'zero');
    assert.equal(await plain.client({ db: 0 }).exists('dbk'), 0);
  });

  it('unknown cluster: Init stays not ready (bad argument, swallowed by the SDK), each call returns that error', async () => {
    assert.deepEqual(report('unknown'), { name: 'unknown', cluster: clusterOf('redis-nowhere'), phase: 'config', err: '', ready: false, done: true });
    assert.ok(env.logs.pluginMatching('failed to init redis: error status returned by host: bad argument, will retry later').length >= 1);
    const { results } = await runOps(env.url, 'unknown', [{ op: 'Get', args: ['k'] }, { op: 'Command', args: [['PING']] }]);
    assert.deepEqual(results, [
      { op: 'Get', dispatch_err: 'error status returned by host: bad argument' },
      { op: 'Command', dispatch_err: 'error status returned by host: bad argument' },
    ]);
    assert.ok(env.logs.pluginMatching('failed to re-authenticate redis: error status returned by host: bad argument').length >= 2);
    assert.equal(clusterStats('redis-nowhere'), undefined);
  });

  it('cluster without endpoints: Init succeeds, proxy_redis_call returns InternalFailure and no callback follows', async () => {
    assert.equal(report('no-host').ready, true);
    const { results } = await runOps(env.url, 'no-host', [{ op: 'Get', args: ['k'] }]);
    assert.deepEqual(results, [{ op: 'Get', dispatch_err: 'error status returned by host: internal failure' }]);
    assert.ok(env.logs.pluginMatching('redis call failed, request-id: ').some((l) => l.message.endsWith('error: error status returned by host: internal failure')));
  });

  it('a reply that arrives after its HTTP stream is gone is delivered once and dropped by the SDK; the VM lives on', async () => {
    assert.deepEqual((await runOps(env.url, 'abandoned', [{ op: 'Set', args: ['k', 'v0'] }])).results[0]!.reply, { type: 'SimpleString', str: 'OK' });
    const active = (): number => clusterStats('redis-abandoned')?.hosts.reduce((n, h) => n + h.rq_active, 0) ?? 0;
    process.kill(abandoned.pid!, 'SIGSTOP');
    const aborted = new AbortController();
    try {
      const req = request(`${env.url}/ops`, {
        headers: { 'x-redis-client': 'abandoned', 'x-redis-ops': JSON.stringify([{ op: 'Set', args: ['k', 'late'] }]) },
        signal: aborted.signal,
      });
      req.catch(() => {});
      await until(() => active() === 1, 30_000, 'the call is in flight');
      aborted.abort();
      await assert.rejects(req);
    } finally {
      process.kill(abandoned.pid!, 'SIGCONT');
    }
    await until(() => active() === 0, 30_000, 'the late reply arrived');
    assert.equal(await abandoned.client().get('k'), 'late');
    const { results } = await runOps(env.url, 'abandoned', [{ op: 'Get', args: ['k'] }]);
    assert.deepEqual(results, [{ op: 'Get', reply: { type: 'BulkString', str: 'late' } }]);
  });

  it('a RESP3 reply (HELLO 3) is a protocol error: that call fails with status 1, the next one works on a new connection', async () => {
    const { results } = await runOps(env.url, 'resp3', [
      { op: 'Command', args: [['CLIENT', 'ID']] },
      { op: 'Command', args: [['HELLO', '3']] },
      { op: 'Command', args: [['CLIENT', 'ID']] },
      { op: 'Command', args: [['PING']] },
    ]);
    assert.equal(results[0]!.reply!.type, 'Integer');
    assert.deepEqual(results[1], { op: 'Command', reply: CANNOT_CONNECT });
    assert.equal(results[2]!.reply!.type, 'Integer');
    assert.notEqual(results[2]!.reply!.int, results[0]!.reply!.int, 'a new connection');
    assert.deepEqual(results[3], { op: 'Command', reply: { type: 'SimpleString', str: 'PONG' } });
  });

  it('answered every request itself; the VM never failed', () => {
    assert.equal(env.backend.requests.length, 0);
    assert.equal(env.logs.records.filter((r) => /panic|vm failed|VM failed/.test(String(r['msg']))).length, 0);
  });
});

/** An ACL LOG entry (flat key/value array) as a Map. */
function toMap(entry: unknown[]): Map<string, unknown> {
  const m = new Map<string, unknown>();
  for (let i = 0; i + 1 < entry.length; i += 2) m.set(String(entry[i]), entry[i + 1]);
  return m;
}
