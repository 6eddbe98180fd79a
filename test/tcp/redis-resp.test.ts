import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { RedisServer } from '../support/redis-server';
import { until } from '../support/until';
import { TestProxy, readAll, readBytes } from './helpers';

// A RESP-reading network filter (plugins/as/tcp-resp) between ioredis and a real redis-server.
let server: RedisServer;

before(async () => {
  server = await RedisServer.start();
});

after(async () => {
  await server.stop();
});

function client(port: number): Redis {
  const c = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  c.on('error', () => {});
  return c;
}

test('commands pass and are counted; FLUSHALL is rewritten and its reply replaced by an error (both directions rewritten)', async () => {
  const proxy = await TestProxy.start({ upstreamPort: server.port, filters: [{ plugin: 'tcp-resp', name: 'resp', rootId: 'tcp_resp', configuration: 'block=FLUSHALL\nmode=error' }] });
  const c = client(proxy.port);
  try {
    await c.connect();
    await c.set('tcp:key', 'v1');
    assert.equal(await c.get('tcp:key'), 'v1');
    // Pipelined: the blocked command sits between two others in one write; each reply stays with its command.
    const results = await c.pipeline().incr('tcp:n').flushall().get('tcp:key').exec();
    assert.deepEqual(results![0], [null, 1]);
    assert.match(String(results![1]![0]), /ERR FLUSHALL is blocked by the proxy/);
    assert.deepEqual(results![2], [null, 'v1'], 'the data survived: FLUSHALL never reached redis-server');
    await assert.rejects(c.flushall(), /FLUSHALL is blocked by the proxy/);
    assert.equal(await server.client().get('tcp:key'), 'v1');
    // ioredis sends INFO on connect (ready check): count what it sent, not a fixed number.
    assert.ok((proxy.metric('tcp_resp.commands') ?? 0n) >= 7n);
    assert.equal(proxy.metric('tcp_resp.blocked'), 2n);
  } finally {
    c.disconnect();
    await proxy.close();
  }
});

test('a command split across writes is held until complete, then passes whole', async () => {
  const proxy = await TestProxy.start({ upstreamPort: server.port, filters: [{ plugin: 'tcp-resp', name: 'resp', rootId: 'tcp_resp' }] });
  try {
    const s = await proxy.connect();
    const cmd = '*3\r\n$3\r\nSET\r\n$9\r\ntcp:split\r\n$5\r\nwhole\r\n';
    s.write(cmd.slice(0, 17));
    await until(() => (proxy.metric('tcp_resp.commands') ?? 0n) === 0n && proxy.listener.stats.get('tcp.tcp_test.downstream_cx_rx_bytes_total') === 17, 5000, 'first part read');
    assert.equal(await server.client().exists('tcp:split'), 0, 'nothing reached redis-server yet');
    s.write(cmd.slice(17));
    assert.equal((await readBytes(s, 5)).toString(), '+OK\r\n');
    assert.equal(await server.client().get('tcp:split'), 'whole');
    assert.equal(proxy.metric('tcp_resp.commands'), 1n, 'counted once, when complete');
    s.destroy();
  } finally {
    await proxy.close();
  }
});

test('mode=close: FLUSHALL closes the connection and never reaches redis-server', async () => {
  await server.client().set('tcp:keep', 'yes');
  const proxy = await TestProxy.start({ upstreamPort: server.port, filters: [{ plugin: 'tcp-resp', name: 'resp', rootId: 'tcp_resp', configuration: 'mode=close' }] });
  try {
    const s = await proxy.connect();
    const got = readAll(s);
    s.write('*1\r\n$4\r\nPING\r\n');
    assert.equal((await readBytes(s, 7)).toString(), '+PONG\r\n');
    s.write('*1\r\n$8\r\nflushall\r\n');
    assert.equal((await got).toString(), '+PONG\r\n', 'closed without a reply to FLUSHALL');
    assert.equal(await server.client().get('tcp:keep'), 'yes');
    await until(() => proxy.logs.some((l) => l.message.startsWith('tcp-resp: connection closed commands=2 blocked=1 peer=1')), 5000, 'close logged');
  } finally {
    await proxy.close();
  }
});
