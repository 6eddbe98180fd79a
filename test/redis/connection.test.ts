import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { RedisConnection, type RedisConnectionOptions } from '../../src/redis/connection';
import type { RedisReply } from '../../src/services/redis';
import { freePort, RedisServer } from '../support/redis-server';
import { until } from '../support/until';
import { errorCode, RATE_LIMIT_SCRIPT, resp, startBlackhole, text } from './helpers';

let plain: RedisServer;
let secured: RedisServer;
const conns: RedisConnection[] = [];

before(async () => {
  [plain, secured] = await Promise.all([
    RedisServer.start(),
    RedisServer.start({ requirepass: 's3cret', users: [{ name: 'alice', password: 'alice-pw' }] }),
  ]);
});

after(async () => {
  await Promise.all(conns.map((c) => c.destroy()));
  await Promise.all([plain?.stop(), secured?.stop()]);
});

function open(server: { host: string; port: number }, opts: Partial<RedisConnectionOptions> = {}): RedisConnection {
  const c = new RedisConnection({
    host: server.host,
    port: server.port,
    username: '',
    password: '',
    db: undefined,
    connectTimeoutMs: 1000,
    opTimeoutMs: 2000,
    ...opts,
  });
  conns.push(c);
  return c;
}

function send(conn: RedisConnection, query: Buffer): Promise<RedisReply> {
  return new Promise((resolve) => conn.send(query, resolve));
}

test('replies come back as their verbatim bytes', async () => {
  const c = open(plain);
  assert.equal(text(await send(c, resp('set', 'k1', 'hello'))), '+OK\r\n');
  assert.equal(text(await send(c, resp('get', 'k1'))), '$5\r\nhello\r\n');
  assert.equal(text(await send(c, resp('get', 'missing'))), '$-1\r\n');
  assert.equal(text(await send(c, resp('blpop', 'nolist', '0.01'))), '*-1\r\n');
  assert.equal(text(await send(c, resp('eval', "return {1,{2,'x'},'y',{}}", 0))), '*4\r\n:1\r\n*2\r\n:2\r\n$1\r\nx\r\n$1\r\ny\r\n*0\r\n');
  assert.equal(text(await send(c, resp('incr', 'k1'))), '-ERR value is not an integer or out of range\r\n');
  assert.equal(text(await send(c, resp('ping'))), '+PONG\r\n');
});

test('a 1 MiB bulk round-trips byte for byte', async () => {
  const c = open(plain);
  const value = Buffer.alloc(1024 * 1024);
  for (let i = 0; i < value.length; i++) value[i] = (i * 31) & 0xff;
  assert.equal(text(await send(c, resp('set', 'big', value))), '+OK\r\n');
  const reply = await send(c, resp('get', 'big'));
  assert.ok(reply.ok);
  assert.ok(reply.bytes.equals(Buffer.concat([Buffer.from(`$${value.length}\r\n`), value, Buffer.from('\r\n')])));
});

test('the commands Higress plugins send, lower-cased, including the rate-limit EVAL', async () => {
  const c = open(plain);
  assert.equal(text(await send(c, resp('set', 'rk', 'v', 'ex', 60))), '+OK\r\n');
  assert.equal(text(await send(c, resp('set', 'rk', 'v', 'nx', 'ex', 60))), '$-1\r\n');
  assert.equal(text(await send(c, resp('set', 'nk', 'v', 'nx', 'ex', 60))), '+OK\r\n');
  assert.equal(text(await send(c, resp('incrby', 'ctr', 5))), ':5\r\n');
  assert.equal(text(await send(c, resp('decrby', 'ctr', 2))), ':3\r\n');
  assert.equal(text(await send(c, resp('expire', 'ctr', 30))), ':1\r\n');
  const key = `rl:${Date.now()}`;
  assert.equal(text(await send(c, resp('eval', RATE_LIMIT_SCRIPT, 1, key, 10, 60))), '*3\r\n$2\r\n10\r\n:9\r\n$2\r\n60\r\n');
  assert.match(text(await send(c, resp('eval', RATE_LIMIT_SCRIPT, 1, key, 10, 60))), /^\*3\r\n\$2\r\n10\r\n:8\r\n:(60|59)\r\n$/);
});

test('AUTH <pass> and AUTH <user> <pass> on connect; their replies are swallowed', async () => {
  const byPass = open(secured, { password: 's3cret' });
  assert.equal(text(await send(byPass, resp('ping'))), '+PONG\r\n');
  const byUser = open(secured, { username: 'alice', password: 'alice-pw' });
  assert.equal(text(await send(byUser, resp('acl', 'whoami'))), '$5\r\nalice\r\n');
});

test('a wrong password surfaces as error replies with status ok', async () => {
  const wrong = open(secured, { password: 'nope' });
  assert.match(text(await send(wrong, resp('get', 'x'))), /^-NOAUTH /);
  const wrongUser = open(secured, { username: 'alice', password: 'nope' });
  assert.match(text(await send(wrongUser, resp('get', 'x'))), /^-NOAUTH /);
  const none = open(secured);
  assert.match(text(await send(none, resp('get', 'x'))), /^-NOAUTH /);
});

test('SELECT <db> on connect', async () => {
  const c = open(plain, { db: '5' });
  assert.equal(text(await send(c, resp('set', 'in-db5', 'yes'))), '+OK\r\n');
  const check = plain.client({ db: 5 });
  assert.equal(await check.get('in-db5'), 'yes');
  assert.equal(await plain.client().get('in-db5'), null);
});

test('64 requests issued in one tick go out in one write and answer in order', async () => {
  const c = open(plain);
  await send(c, resp('ping'));
  const before = c.writes;
  const replies = await Promise.all(Array.from({ length: 64 }, (_, i) => send(c, resp('echo', `m${i}`))));
  assert.equal(c.writes - before, 1);
  replies.forEach((r, i) => assert.equal(text(r), `$${`m${i}`.length}\r\nm${i}\r\n`));
});

test('query bytes are copied at send time, so the caller may reuse its buffer at once', async () => {
  const c = open(plain);
  const q = resp('echo', 'aaaa');
  const reply = send(c, q);
  q.fill(0x7a); // overwrite before the batch is flushed
  assert.equal(text(await reply), '$4\r\naaaa\r\n');
});

test('max_buffer_size_before_flush=0 writes each request at once', async () => {
  const c = open(plain, { maxBufferSizeBeforeFlush: 0 });
  await send(c, resp('ping'));
  const before = c.writes;
  await Promise.all(Array.from({ length: 8 }, () => send(c, resp('ping'))));
  assert.equal(c.writes - before, 8);
});

test('callbacks are never synchronous; cancel only marks and keeps the FIFO aligned', async () => {
  const c = open(plain);
  let inside = true;
  let early = false;
  const closed = new RedisConnection({ host: '127.0.0.1', port: 1, username: '', password: '', db: undefined, connectTimeoutMs: 100, opTimeoutMs: 0 });
  await closed.destroy();
  closed.send(resp('ping'), () => (early = inside));
  c.send(resp('ping'), () => (early = early || inside));
  inside = false;
  let cancelledFired = false;
  const req = c.send(resp('echo', 'first'), () => (cancelledFired = true));
  req.cancel();
  assert.equal(text(await send(c, resp('echo', 'second'))), '$6\r\nsecond\r\n');
  assert.equal(cancelledFired, false);
  assert.equal(early, false);
});

test('close() drains in-flight requests; destroy() fails pending; both idempotent', async () => {
  const c = open(plain);
  const replies = Array.from({ length: 5 }, (_, i) => send(c, resp('echo', `d${i}`)));
  const closing = c.close();
  assert.equal(c.closed, true);
  assert.equal(errorCode(await send(c, resp('ping'))), 'PWS_ERR_CLOSED');
  for (const [i, r] of (await Promise.all(replies)).entries()) assert.equal(text(r), `$2\r\nd${i}\r\n`);
  await closing;
  await c.close();
  assert.equal(c.destroyed, true);

  const d = open(plain);
  await send(d, resp('ping'));
  await plain.pause(1);
  const stuck = send(d, resp('ping'));
  await d.destroy();
  await d.destroy();
  assert.equal(errorCode(await stuck), 'PWS_ERR_CLOSED');
  await until(async () => (await plain.client().ping()) === 'PONG', 5000, 'server awake');
});

test('op timeout: a stalled server fails every in-flight request and the connection is closed', async () => {
  const c = open(plain, { opTimeoutMs: 200 });
  await send(c, resp('ping'));
  // Stopped, not slept: it cannot answer until SIGCONT, however loaded the machine is.
  process.kill(plain.pid!, 'SIGSTOP');
  try {
    const replies = await Promise.all(Array.from({ length: 10 }, () => send(c, resp('get', 'k1'))));
    for (const r of replies) assert.equal(errorCode(r), 'PWS_ERR_REDIS_TIMEOUT');
  } finally {
    process.kill(plain.pid!, 'SIGCONT');
  }
  assert.equal(c.connected, false);
  assert.equal(c.opTimeouts, 1);
  // the next request reconnects once the server is back
  await until(async () => (await send(c, resp('ping'))).ok, 5000, 'reconnect after timeout');
});

test('a killed server fails in-flight requests, each later one fails on its own connect, and it recovers after restart', async () => {
  const server = await RedisServer.start();
  try {
    const c = open(server, { opTimeoutMs: 0 });
    await send(c, resp('ping'));
    process.kill(server.pid!, 'SIGSTOP'); // holds the requests in flight; SIGKILL still ends it
    const inflight = Array.from({ length: 20 }, () => send(c, resp('get', 'x')));
    await until(() => c.inFlight === 20, 10_000, 'requests in flight');
    await server.kill('SIGKILL');
    for (const r of await Promise.all(inflight)) assert.equal(errorCode(r), 'PWS_ERR_REDIS_CONNECTION');
    const failedBefore = c.cxConnectFail;
    for (let i = 0; i < 3; i++) assert.equal(errorCode(await send(c, resp('ping'))), 'PWS_ERR_REDIS_CONNECTION');
    assert.equal(c.cxConnectFail - failedBefore, 3, 'a refused connect per request (no backoff, as Envoy)');
    await server.restart();
    await until(async () => {
      const r = await send(c, resp('ping'));
      return r.ok && r.bytes.toString() === '+PONG\r\n';
    }, 5000, 'recovered after restart');
  } finally {
    await server.stop();
  }
});

test('nothing listening: calls fail promptly and never hang', async () => {
  const port = await freePort();
  const c = open({ host: '127.0.0.1', port });
  const replies = await Promise.all(Array.from({ length: 3 }, () => send(c, resp('ping'))));
  for (const r of replies) assert.equal(errorCode(r), 'PWS_ERR_REDIS_CONNECTION');
});

test('after failed connects, the first request once Redis listens connects and succeeds (no backoff, as Envoy)', async () => {
  const port = await freePort();
  const c = open({ host: '127.0.0.1', port });
  for (let i = 0; i < 5; i++) assert.equal(errorCode(await send(c, resp('ping'))), 'PWS_ERR_REDIS_CONNECTION');
  assert.equal(c.cxConnectFail, 5);
  const server = await RedisServer.start({ port });
  try {
    assert.equal(text(await send(c, resp('ping'))), '+PONG\r\n');
  } finally {
    await c.destroy();
    await server.stop();
  }
});

test('connect timeout: a listener that never completes the handshake fails queued requests', async (t) => {
  const hole = await startBlackhole();
  if (!hole) return t.skip('python3 not available');
  try {
    const c = open({ host: '127.0.0.1', port: hole.port }, { connectTimeoutMs: 200 });
    const replies = await Promise.all([send(c, resp('ping')), send(c, resp('ping'))]);
    for (const r of replies) {
      assert.equal(errorCode(r), 'PWS_ERR_REDIS_CONNECTION');
      assert.match(r.ok ? '' : r.error.message, /connect timeout after 200 ms/);
    }
    assert.equal(c.cxConnectFail, 1, 'both requests waited on one connect');
    // No backoff (Envoy): the next request makes a new connect attempt of its own.
    assert.equal(errorCode(await send(c, resp('ping'))), 'PWS_ERR_REDIS_CONNECTION');
    assert.equal(c.cxConnectFail, 2);
    await c.destroy();
  } finally {
    hole.close();
  }
});

test('a non-RESP first byte is a protocol error that fails the request', async () => {
  const server: Server = createServer((s) => {
    s.on('data', () => s.write('hello\r\n'));
    s.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  try {
    const c = open({ host: '127.0.0.1', port });
    assert.equal(errorCode(await send(c, resp('ping'))), 'PWS_ERR_REDIS_PROTOCOL');
    await c.destroy();
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
