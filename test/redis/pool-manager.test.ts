import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { RedisPoolManager, parseUint32Param, parseUpstreamParams } from '../../src/redis/pool-manager';
import type { RedisCallOutcome, RedisOwner, RedisReply } from '../../src/services/redis';
import { ClusterManager } from '../../src/upstream/cluster-manager';
import { RedisServer } from '../support/redis-server';
import { until } from '../support/until';
import { clusterConfig, errorCode, hostSpec, resp, text } from './helpers';

let a: RedisServer;
let b: RedisServer;
let secured: RedisServer;
const managers: RedisPoolManager[] = [];
const logLines: string[] = [];

before(async () => {
  [a, b, secured] = await Promise.all([
    RedisServer.start(),
    RedisServer.start(),
    RedisServer.start({ requirepass: 'top-s3cret', users: [{ name: 'alice', password: 'alice-pw-9' }] }),
  ]);
});

after(async () => {
  await Promise.all(managers.map((m) => m.destroy()));
  await Promise.all([a?.stop(), b?.stop(), secured?.stop()]);
});

function setup(): { cm: ClusterManager; pm: RedisPoolManager } {
  const cm = new ClusterManager();
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logLines.push(chunk.toString());
      cb();
    },
  });
  const pm = new RedisPoolManager(cm, pino({ level: 'debug' }, sink), { drainTimeoutMs: 2000 });
  managers.push(pm);
  return { cm, pm };
}

const owner = (label: string): RedisOwner => ({ label });

/** Calls and resolves with the reply; asserts the call was accepted and the reply came asynchronously. */
function call(pm: RedisPoolManager, who: RedisOwner, upstream: string, query: Buffer): Promise<RedisReply> {
  return new Promise((resolve, reject) => {
    let returned = false;
    const outcome = pm.call(who, upstream, query, (reply) => {
      if (!returned) reject(new Error('onReply ran inside call()'));
      resolve(reply);
    });
    returned = true;
    if (outcome.status !== 'ok') reject(new Error(`call outcome ${outcome.status}`));
  });
}

async function clientCount(server: RedisServer): Promise<number> {
  const c = server.client({ connectionName: 'inspector' });
  try {
    const list = (await c.call('CLIENT', 'LIST')) as string;
    return list.trim().split('\n').filter((l) => !l.includes(' name=inspector ')).length;
  } finally {
    c.disconnect();
  }
}

test('init params are parsed raw; invalid numbers fall back', () => {
  const p = parseUpstreamParams('outbound|6379||r.static?db=2&buffer_flush_timeout=x&max_buffer_size_before_flush=0&k=a%20b');
  assert.equal(p.get('db'), '2');
  assert.equal(p.get('k'), 'a%20b');
  assert.equal(parseUint32Param(p.get('buffer_flush_timeout'), 3), 3);
  assert.equal(parseUint32Param(p.get('max_buffer_size_before_flush'), 1024), 0);
  assert.equal(parseUint32Param('99999999999', 7), 7);
});

test('unknown, unsupported and hostless clusters', async () => {
  const { cm, pm } = setup();
  const o = owner('p1');
  assert.deepEqual(pm.init(o, { upstream: 'nope?db=1', username: '', password: 'x', timeoutMs: 100 }), { status: 'unknown_cluster' });
  assert.equal(pm.call(o, 'nope', resp('ping'), () => assert.fail('no callback')).status, 'unknown_cluster');
  cm.addOrUpdateCluster(clusterConfig('odst', [], { type: 'ORIGINAL_DST' }));
  const init = pm.init(o, { upstream: 'odst?db=1', username: '', password: 'hidden-pw', timeoutMs: 100 });
  assert.equal(init.status, 'unsupported_cluster');
  const outcome: RedisCallOutcome = pm.call(o, 'odst', resp('ping'), () => assert.fail('no callback'));
  assert.equal(outcome.status, 'unsupported_cluster');
  assert.ok(outcome.status === 'unsupported_cluster' && /ORIGINAL_DST/.test(outcome.reason));
  assert.ok(logLines.some((l) => l.includes('odst') && l.includes('ORIGINAL_DST')));
  cm.addOrUpdateCluster(clusterConfig('empty', []));
  assert.equal(pm.call(o, 'empty', resp('ping'), () => assert.fail('no callback')).status, 'no_host');
  cm.addOrUpdateCluster(clusterConfig('sick', [], { type: 'EDS' }));
  cm.setAssignment('sick', [{ ...hostSpec('127.0.0.1', a.port), health: 'UNHEALTHY' }]);
  assert.equal(pm.call(o, 'sick', resp('ping'), () => assert.fail('no callback')).status, 'no_host');
});

test('calls without init use the anonymous default pool; replies are verbatim and asynchronous', async () => {
  const { cm, pm } = setup();
  cm.addOrUpdateCluster(clusterConfig('outbound|6379||a.static', [['127.0.0.1', a.port]]));
  const o = owner('anon');
  assert.equal(text(await call(pm, o, 'outbound|6379||a.static', resp('set', 'anon', 'v'))), '+OK\r\n');
  assert.equal(text(await call(pm, o, 'outbound|6379||a.static?db=9', resp('get', 'anon'))), '$1\r\nv\r\n');
  const s = pm.stats();
  assert.equal(s.pools.length, 1);
  assert.equal(s.pools[0]!.is_default, true);
});

test('db, requirepass and ACL user come from init; a wrong password surfaces as an error reply', async () => {
  const { cm, pm } = setup();
  cm.addOrUpdateCluster(clusterConfig('sec', [['127.0.0.1', secured.port]]));
  const byPass = owner('by-pass');
  const up = 'sec?db=3&buffer_flush_timeout=3&max_buffer_size_before_flush=1024';
  assert.deepEqual(pm.init(byPass, { upstream: up, username: '', password: 'top-s3cret', timeoutMs: 1000 }), { status: 'ok' });
  assert.equal(text(await call(pm, byPass, 'sec', resp('set', 'db3key', 'x'))), '+OK\r\n');
  assert.equal(await secured.client({ db: 3 }).get('db3key'), 'x');
  assert.equal(await secured.client().get('db3key'), null);

  const byUser = owner('by-user');
  pm.init(byUser, { upstream: 'sec', username: 'alice', password: 'alice-pw-9', timeoutMs: 1000 });
  assert.equal(text(await call(pm, byUser, 'sec', resp('acl', 'whoami'))), '$5\r\nalice\r\n');

  const wrong = owner('wrong');
  pm.init(wrong, { upstream: 'sec', username: '', password: 'bad-pw-123', timeoutMs: 1000 });
  assert.match(text(await call(pm, wrong, 'sec', resp('get', 'k'))), /^-NOAUTH /);

  const dump = JSON.stringify(pm.stats()) + logLines.join('');
  for (const secret of ['top-s3cret', 'alice-pw-9', 'bad-pw-123', 'hidden-pw']) assert.ok(!dump.includes(secret), `${secret} leaked`);
  const sec = pm.stats().clusters.find((c) => c.cluster === 'sec')!;
  assert.equal(sec.calls, 3);
  assert.equal(sec.error_replies, 1);
  assert.equal(sec.pools, 3);
});

test('owners with the same config share one connection; different passwords get their own', async () => {
  const { cm, pm } = setup();
  cm.addOrUpdateCluster(clusterConfig('shared', [['127.0.0.1', secured.port]]));
  const before = await clientCount(secured);
  const p1 = owner('p1');
  const p2 = owner('p2');
  const req = { upstream: 'shared?db=1', username: '', password: 'top-s3cret', timeoutMs: 500 };
  pm.init(p1, req);
  pm.init(p2, { ...req, upstream: 'shared?db=1&buffer_flush_timeout=5' });
  await Promise.all([call(pm, p1, 'shared', resp('ping')), call(pm, p2, 'shared', resp('ping'))]);
  assert.equal((await clientCount(secured)) - before, 1);
  // re-init with the same config keeps the connection
  pm.init(p1, req);
  await call(pm, p1, 'shared', resp('ping'));
  assert.equal((await clientCount(secured)) - before, 1);
  const p3 = owner('p3');
  pm.init(p3, { upstream: 'shared?db=1', username: 'alice', password: 'alice-pw-9', timeoutMs: 500 });
  await call(pm, p3, 'shared', resp('ping'));
  assert.equal((await clientCount(secured)) - before, 2);
  assert.equal(pm.stats().clusters.find((c) => c.cluster === 'shared')!.cx_active, 2);
  // p3 switches to p1's config: its old pool has no owner left and closes
  pm.init(p3, req);
  await call(pm, p3, 'shared', resp('ping'));
  await until(async () => (await clientCount(secured)) - before === 1, 3000, 'unused pool closed');
  assert.equal(pm.stats().pools.filter((p) => p.cluster === 'shared').length, 1);
});

test('membership A → B with 64 calls in flight: none lost, later calls land on B', async () => {
  const { cm, pm } = setup();
  cm.addOrUpdateCluster(clusterConfig('eds', [], { type: 'EDS' }));
  cm.setAssignment('eds', [hostSpec('127.0.0.1', a.port)]);
  const o = owner('mover');
  pm.init(o, { upstream: 'eds', username: '', password: '', timeoutMs: 2000 });
  await call(pm, o, 'eds', resp('ping'));
  const first = Array.from({ length: 64 }, (_, i) => call(pm, o, 'eds', resp('set', `first-${i}`, i)));
  cm.setAssignment('eds', [hostSpec('127.0.0.1', b.port)]);
  const second = Array.from({ length: 64 }, (_, i) => call(pm, o, 'eds', resp('set', `second-${i}`, i)));
  for (const r of await Promise.all([...first, ...second])) assert.equal(text(r), '+OK\r\n');
  const ca = a.client();
  const cb = b.client();
  assert.equal((await ca.keys('first-*')).length, 64);
  assert.equal((await cb.keys('second-*')).length, 64);
  assert.equal((await ca.keys('second-*')).length, 0);
  assert.equal((await cb.keys('first-*')).length, 0);
  await until(() => pm.stats().clusters.find((c) => c.cluster === 'eds')!.hosts.find((h) => h.host.endsWith(`:${a.port}`))?.cx_active === 0, 3000, 'A drained');
});

test('cluster update rebuilds its pools (old connection drains); removal fails nothing silently', async () => {
  const { cm, pm } = setup();
  cm.addOrUpdateCluster(clusterConfig('upd', [['127.0.0.1', a.port]]));
  cm.addOrUpdateCluster(clusterConfig('other', [['127.0.0.1', b.port]]));
  const o = owner('u');
  pm.init(o, { upstream: 'upd', username: '', password: '', timeoutMs: 2000 });
  pm.init(o, { upstream: 'other', username: '', password: '', timeoutMs: 2000 });
  const id1 = text(await call(pm, o, 'upd', resp('client', 'id')));
  const otherId = text(await call(pm, o, 'other', resp('client', 'id')));
  const inflight = Array.from({ length: 16 }, () => call(pm, o, 'upd', resp('ping')));
  cm.addOrUpdateCluster(clusterConfig('upd', [['127.0.0.1', a.port]], { connectTimeoutMs: 2500 }));
  for (const r of await Promise.all(inflight)) assert.equal(text(r), '+PONG\r\n');
  const id2 = text(await call(pm, o, 'upd', resp('client', 'id')));
  assert.notEqual(id1, id2, 'new connection after update');
  assert.equal(text(await call(pm, o, 'other', resp('client', 'id'))), otherId, 'other cluster untouched');

  await a.pause(1);
  const stuck = Array.from({ length: 8 }, () => call(pm, o, 'upd', resp('ping')));
  cm.removeCluster('upd');
  assert.equal(pm.call(o, 'upd', resp('ping'), () => assert.fail('no callback')).status, 'unknown_cluster');
  for (const r of await Promise.all(stuck)) assert.ok(r.ok ? text(r) === '+PONG\r\n' : errorCode(r).startsWith('PWS_ERR_'));
});

test('op timeout from init: a stalled server fails every in-flight call', async () => {
  const { cm, pm } = setup();
  cm.addOrUpdateCluster(clusterConfig('slow', [['127.0.0.1', b.port]]));
  const o = owner('t');
  pm.init(o, { upstream: 'slow', username: '', password: '', timeoutMs: 200 });
  await call(pm, o, 'slow', resp('ping'));
  process.kill(b.pid!, 'SIGSTOP'); // cannot answer before SIGCONT, however loaded the machine is
  try {
    const replies = await Promise.all(Array.from({ length: 10 }, () => call(pm, o, 'slow', resp('get', 'x'))));
    for (const r of replies) assert.equal(errorCode(r), 'PWS_ERR_REDIS_TIMEOUT');
  } finally {
    process.kill(b.pid!, 'SIGCONT');
  }
  const st = pm.stats().clusters.find((c) => c.cluster === 'slow')!;
  assert.equal(st.timeouts, 10);
  assert.equal(st.errors, 10);
  assert.equal(st.cx_active, 0);
  await until(async () => (await call(pm, o, 'slow', resp('ping'))).ok, 5000, 'recovered');
});

test('release(owner) cancels pending calls without callbacks and closes its pools; cancel() likewise', async () => {
  const { cm, pm } = setup();
  cm.addOrUpdateCluster(clusterConfig('rel', [['127.0.0.1', a.port]]));
  const o = owner('gone');
  const stay = owner('stay');
  pm.init(o, { upstream: 'rel?db=2', username: '', password: '', timeoutMs: 2000 });
  pm.init(stay, { upstream: 'rel', username: '', password: '', timeoutMs: 2000 });
  await call(pm, o, 'rel', resp('ping'));
  let fired = 0;
  for (let i = 0; i < 10; i++) assert.equal(pm.call(o, 'rel', resp('ping'), () => fired++).status, 'ok');
  const single = pm.call(stay, 'rel', resp('ping'), () => fired++);
  assert.equal(single.status, 'ok');
  if (single.status === 'ok') single.cancel();
  pm.release(o);
  assert.equal(text(await call(pm, stay, 'rel', resp('ping'))), '+PONG\r\n');
  await until(() => pm.stats().clusters.find((c) => c.cluster === 'rel')!.hosts.every((h) => h.rq_active === 0), 3000, 'replies read');
  assert.equal(fired, 0);
  await until(() => pm.stats().pools.filter((p) => p.cluster === 'rel').length === 1, 3000, 'released pool gone');
});

test('close() drains in-flight calls and is idempotent; later calls are refused', async () => {
  const { cm, pm } = setup();
  cm.addOrUpdateCluster(clusterConfig('bye', [['127.0.0.1', a.port]]));
  const o = owner('c');
  const replies = Array.from({ length: 8 }, () => call(pm, o, 'bye', resp('ping')));
  const closing = pm.close();
  assert.equal(pm.call(o, 'bye', resp('ping'), () => assert.fail('no callback')).status, 'unknown_cluster');
  for (const r of await Promise.all(replies)) assert.equal(text(r), '+PONG\r\n');
  await closing;
  await pm.close();
  assert.equal(pm.stats().clusters.find((c) => c.cluster === 'bye')!.cx_active, 0);
});
