import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { REFUSED_PORT } from '../support/ports';
import { until } from '../support/until';
import { TestProxy, TestUpstream, readAll, readBytes, type NetworkFilterSpec, type UpstreamConnection } from './helpers';

const probe = (configuration = '', extra: Partial<NetworkFilterSpec> = {}): NetworkFilterSpec => ({ plugin: 'tcp-probe', name: 'probe', rootId: 'tcp_probe', configuration, ...extra });

test('no Wasm filter: bytes both ways, half-close both ways, Envoy tcp.* / cluster / listener counters', async () => {
  const up = await TestUpstream.start({ echo: true });
  const proxy = await TestProxy.start({ upstreamPort: up.port });
  try {
    const c = await proxy.connect();
    const all = readAll(c);
    c.write('hello');
    assert.equal((await readBytes(c, 5)).toString(), 'hello');
    c.end(' world'); // the client half-closes: the upstream sees the end, echoes and ends in turn
    assert.equal((await all).toString(), 'hello world');
    await until(() => up.connections[0]!.ended, 5000, 'upstream saw end of stream');
    await until(() => proxy.counter('listener.127.0.0.1_' + proxy.port + '.downstream_cx_destroy') === 1, 5000, 'connection closed');
    assert.equal(proxy.counter('tcp.tcp_test.downstream_cx_total'), 1);
    assert.equal(proxy.counter('tcp.tcp_test.downstream_cx_rx_bytes_total'), 11);
    assert.equal(proxy.counter('tcp.tcp_test.downstream_cx_tx_bytes_total'), 11);
    assert.equal(proxy.counter('cluster.backend.upstream_cx_total'), 1);
    assert.equal(proxy.counter('cluster.backend.upstream_cx_tx_bytes_total'), 11);
    assert.equal(proxy.counter('cluster.backend.upstream_cx_rx_bytes_total'), 11);
    assert.equal(proxy.counter(`listener.127.0.0.1_${proxy.port}.downstream_cx_total`), 1);
    assert.equal(proxy.counter('tcp.tcp_test.upstream_flush_total'), 0);
  } finally {
    await proxy.close();
    await up.close();
  }
});

test('half-close from the upstream: the client sees the end and can still send, the upstream still receives', async () => {
  const up = await TestUpstream.start({ onConnection: (conn) => conn.socket.end('bye') });
  const proxy = await TestProxy.start({ upstreamPort: up.port, filters: [probe()] });
  try {
    const c = await proxy.connect();
    const ended = once(c, 'end');
    assert.equal((await readBytes(c, 3)).toString(), 'bye');
    await ended;
    c.write('still here');
    await until(() => up.connections[0]!.received.toString() === 'still here', 5000, 'data after the upstream half-closed');
    assert.ok(proxy.lines('cb upstream_close 0').length === 1, 'the end of stream from the upstream was reported');
    assert.equal(proxy.lines('cb downstream_close').length, 0, 'the connection stays open half-closed');
    c.end();
    await until(() => proxy.lines('cb downstream_close 2').length === 1, 5000, 'closed once both directions ended');
  } finally {
    await proxy.close();
    await up.close();
  }
});

test("L4 callbacks in Envoy's order; the upstream's end is proxy_on_upstream_connection_close(UNKNOWN); connection properties", async () => {
  const up = await TestUpstream.start({ echo: true });
  const proxy = await TestProxy.start({ upstreamPort: up.port, filters: [probe()] });
  try {
    const c = await proxy.connect();
    const clientPort = c.localPort;
    const all = readAll(c);
    c.write('ping');
    assert.equal((await readBytes(c, 4)).toString(), 'ping');
    c.end();
    await all;
    await until(() => proxy.lines('cb delete').length === 1, 5000, 'context deleted');
    assert.deepEqual(proxy.lines('cb '), [
      'cb new_connection',
      'cb downstream_data 4 0',
      'cb upstream_data 4 0',
      'cb downstream_data 0 1',
      'cb upstream_data 0 1',
      'cb upstream_close 0',
      'cb downstream_close 2', // both directions ended: a remote close
      'cb done',
      'cb log',
      'cb delete',
    ]);
    const props = proxy.lines('props ')[0]!;
    assert.match(props, new RegExp(`source=127\\.0\\.0\\.1:${clientPort} `));
    assert.match(props, new RegExp(`destination=127\\.0\\.0\\.1:${proxy.port} `));
    assert.match(props, new RegExp(`upstream=127\\.0\\.0\\.1:${up.port} `));
    assert.match(props, / cluster=backend /);
    assert.match(props, / connection_id=\d+ /);
    assert.match(props, / plugin=probe /);
    assert.match(props, / request_path=- /, 'no request on a TCP connection');
    assert.match(props, / tls=-$/, 'no TLS version in plaintext');
    assert.equal(proxy.plugins[0]!.vm.contexts.size, 1, 'only the root context is left');
  } finally {
    await proxy.close();
    await up.close();
  }
});

test('Pause holds the data: the next callback gets everything not yet passed on, and nothing reaches the upstream meanwhile', async () => {
  const up = await TestUpstream.start({ echo: true });
  const proxy = await TestProxy.start({ upstreamPort: up.port, filters: [probe('wait_for=END')] });
  try {
    const c = await proxy.connect();
    c.write('abc');
    await until(() => proxy.lines('cb downstream_data').length === 1, 5000, 'first data seen');
    c.write('def');
    await until(() => proxy.lines('cb downstream_data').length === 2, 5000, 'second data seen');
    assert.equal(up.connections[0]!.received.length, 0, 'held data is not forwarded');
    c.write('END');
    assert.equal((await readBytes(c, 9)).toString(), 'abcdefEND');
    assert.deepEqual(proxy.lines('cb downstream_data'), ['cb downstream_data 3 0', 'cb downstream_data 6 0', 'cb downstream_data 9 0']);
    c.destroy();
  } finally {
    await proxy.close();
    await up.close();
  }
});

test('proxy_continue_stream from the root context (tick, set_effective_context) releases held data and a held new connection', async () => {
  const up = await TestUpstream.start({ echo: true });
  const proxy = await TestProxy.start({ upstreamPort: up.port, filters: [probe('hold=HOLD\nhold_new_connection=1')] });
  try {
    const c = await proxy.connect();
    await until(() => proxy.lines('tick continue').length === 1, 5000, 'new connection continued');
    await until(() => up.connections.length === 1, 5000, 'upstream connected after the continue');
    assert.deepEqual(proxy.lines('cb ').slice(0, 1), ['cb new_connection']);
    c.write('HOLD me');
    assert.equal((await readBytes(c, 7)).toString(), 'HOLD me');
    assert.equal(proxy.lines('tick continue').length, 2, 'the data went on only after the tick continued it');
    c.destroy();
  } finally {
    await proxy.close();
    await up.close();
  }
});

test('a plugin closing the connection (close_stream Downstream and Upstream): LOCAL close, upstream closed', async () => {
  const up = await TestUpstream.start({ echo: true });
  const proxy = await TestProxy.start({ upstreamPort: up.port, filters: [probe('close_on=BYE\nclose_upstream_on=STOP')] });
  try {
    const c1 = await proxy.connect();
    const got1 = readAll(c1);
    c1.write('hi');
    await readBytes(c1, 2);
    c1.write('BYE');
    assert.equal((await got1).toString(), 'hi', 'closed; the held BYE never echoed');
    await until(() => up.connections[0]!.closed, 5000, 'upstream closed');
    assert.equal(up.connections[0]!.received.toString(), 'hi', 'BYE was not forwarded');

    const c2 = await proxy.connect();
    const got2 = readAll(c2);
    c2.write('STOP');
    assert.equal((await got2).toString(), '', 'the upstream data carrying STOP closed the connection instead of reaching the client');
    await until(() => proxy.lines('cb delete').length === 2, 5000, 'both contexts done');
    assert.deepEqual(proxy.lines('cb downstream_close'), ['cb downstream_close 1', 'cb downstream_close 1']);
  } finally {
    await proxy.close();
    await up.close();
  }
});

test('set_buffer_bytes rewrites both directions; reads pass the filters in order, writes in reverse', async () => {
  const up = await TestUpstream.start({ echo: true });
  const proxy = await TestProxy.start({
    upstreamPort: up.port,
    filters: [
      probe('replace=cat:dog\nprefix_upstream=A:', { name: 'first' }),
      probe('replace=dog:wolf\nprefix_upstream=B:', { name: 'second' }),
    ],
  });
  try {
    const c = await proxy.connect();
    c.write('a cat');
    const echoed = await readBytes(c, 'A:B:a wolf'.length);
    assert.equal(up.connections[0]!.received.toString(), 'a wolf', 'first turned cat into dog, then second dog into wolf');
    assert.equal(echoed.toString(), 'A:B:a wolf', 'second prefixed first (writes run in reverse), then first');
    c.destroy();
  } finally {
    await proxy.close();
    await up.close();
  }
});

test('upstream refused: connect_fail, the client is closed, the plugin sees a LOCAL close', async () => {
  const proxy = await TestProxy.start({ upstreamPort: REFUSED_PORT, filters: [probe()] });
  try {
    const c = await proxy.connect();
    c.write('lost');
    assert.equal((await readAll(c)).length, 0);
    await until(() => proxy.lines('cb delete').length === 1, 5000, 'context finished');
    assert.equal(proxy.counter('cluster.backend.upstream_cx_connect_fail'), 1);
    assert.equal(proxy.counter('cluster.backend.upstream_cx_total'), 1);
    assert.deepEqual(proxy.lines('cb '), ['cb new_connection', 'cb downstream_close 1', 'cb done', 'cb log', 'cb delete'], 'no data callback: nothing is read before the upstream connects');
    assert.match(proxy.lines('props ')[0]!, / upstream=- /, 'no upstream address without an upstream');
  } finally {
    await proxy.close();
  }
});

test('an unknown cluster: downstream_cx_no_route and the connection is closed', async () => {
  const proxy = await TestProxy.start({ upstreamPort: REFUSED_PORT, clusterName: 'other' });
  try {
    const c = await proxy.connect();
    await readAll(c);
    assert.equal(proxy.counter('tcp.tcp_test.downstream_cx_no_route'), 1);
  } finally {
    await proxy.close();
  }
});

test('idle_timeout closes a connection nothing crosses, counted in tcp.<prefix>.idle_timeout', async () => {
  const up = await TestUpstream.start({ echo: true });
  const proxy = await TestProxy.start({ upstreamPort: up.port, tcpProxy: { idle_timeout: '0.1s' }, filters: [probe()] });
  try {
    const c = await proxy.connect();
    const closed = readAll(c);
    c.write('x');
    await readBytes(c, 1);
    await closed;
    assert.equal(proxy.counter('tcp.tcp_test.idle_timeout'), 1);
    await until(() => up.connections[0]!.closed, 5000, 'upstream closed too');
    await until(() => proxy.lines('cb delete').length === 1, 5000, 'context finished');
    assert.deepEqual(proxy.lines('cb downstream_close'), ['cb downstream_close 1']);
  } finally {
    await proxy.close();
    await up.close();
  }
});

test('a VM that fails under FAIL_CLOSED closes its connection, and later connections at once', async () => {
  const up = await TestUpstream.start({ echo: true });
  const proxy = await TestProxy.start({ upstreamPort: up.port, filters: [probe('trap_on=TRAP', { failurePolicy: 'FAIL_CLOSED' })] });
  try {
    const c1 = await proxy.connect();
    const c1Other = await proxy.connect(); // opened before the failure
    c1Other.write('a');
    await readBytes(c1Other, 1);
    const got = readAll(c1);
    c1.write('TRAP');
    assert.equal((await got).length, 0);
    assert.ok(proxy.plugins[0]!.failed);
    assert.ok(proxy.hostLogs.some((r) => r['msg'] === 'plugin VM failed' && r['callback'] === 'proxy_on_downstream_data'));
    const otherGot = readAll(c1Other);
    c1Other.write('b');
    assert.equal((await otherGot).length, 0, 'the other connection is closed at its next callback');
    const c2 = await proxy.connect();
    assert.equal((await readAll(c2)).length, 0, 'a new connection is closed');
    assert.equal(up.connections.length, 2, 'no upstream for the connection after the failure');
  } finally {
    await proxy.close();
    await up.close();
  }
});

test('a VM that fails under FAIL_OPEN: that connection and later ones pass through without the filter', async () => {
  const up = await TestUpstream.start({ echo: true });
  const proxy = await TestProxy.start({ upstreamPort: up.port, filters: [probe('trap_on=TRAP\nprefix_upstream=P:', { failurePolicy: 'FAIL_OPEN' })] });
  try {
    const c1 = await proxy.connect();
    c1.write('x');
    assert.equal((await readBytes(c1, 3)).toString(), 'P:x', 'the plugin acts before the failure');
    c1.write('TRAP');
    assert.equal((await readBytes(c1, 4)).toString(), 'TRAP', 'forwarded unfiltered after the trap');
    assert.ok(proxy.plugins[0]!.failed);
    const c2 = await proxy.connect();
    c2.write('later');
    assert.equal((await readBytes(c2, 5)).toString(), 'later');
    c1.destroy();
    c2.destroy();
  } finally {
    await proxy.close();
    await up.close();
  }
});

test('FAIL_RELOAD: the connection after a failure gets a new VM', async () => {
  const up = await TestUpstream.start({ echo: true });
  const proxy = await TestProxy.start({ upstreamPort: up.port, filters: [probe('trap_on=TRAP\nprefix_upstream=P:', { failurePolicy: 'FAIL_RELOAD' })] });
  try {
    const c1 = await proxy.connect();
    const got = readAll(c1);
    c1.write('TRAP');
    assert.equal((await got).length, 0, 'the failing connection is closed');
    const c2 = await proxy.connect();
    c2.write('y');
    assert.equal((await readBytes(c2, 3)).toString(), 'P:y');
    assert.equal(proxy.plugins[0]!.vmGeneration, 2);
    c2.destroy();
  } finally {
    await proxy.close();
    await up.close();
  }
});

test('the downstream closing while the upstream still has data queued for it: the data is flushed (upstream_flush_total)', async () => {
  // The upstream reads nothing and ends its side at once; the client sends more than the kernel buffers hold,
  // then ends: the downstream connection is then closed (both directions ended) with data still queued upstream.
  const up = await TestUpstream.start({ onConnection: (conn) => {
    conn.socket.pause();
    conn.socket.end();
  } });
  const proxy = await TestProxy.start({ upstreamPort: up.port, bufferLimitBytes: 256 * 1024 * 1024 });
  try {
    const c = await proxy.connect();
    c.on('error', () => {});
    const chunk = Buffer.alloc(1024 * 1024, 'x');
    for (let i = 0; i < 32; i++) if (!c.write(chunk)) await once(c, 'drain');
    c.end();
    await until(() => proxy.counter('tcp.tcp_test.upstream_flush_total') === 1, 10_000, 'flush counted');
    assert.equal(proxy.counter('tcp.tcp_test.downstream_cx_rx_bytes_total'), 32 * 1024 * 1024);
  } finally {
    await proxy.close();
    await up.close();
  }
});

test('flow control: a slow upstream stops the downstream being read past the buffer limit, and reading resumes as it drains', async () => {
  let upstream: UpstreamConnection | undefined;
  const up = await TestUpstream.start({ onConnection: (conn) => {
    upstream = conn;
    conn.socket.pause();
  } });
  const proxy = await TestProxy.start({ upstreamPort: up.port, bufferLimitBytes: 64 * 1024 });
  try {
    const c = await proxy.connect();
    c.on('error', () => {});
    const total = 32 * 1024 * 1024;
    const chunk = Buffer.alloc(1024 * 1024, 'y');
    const writing = (async () => {
      for (let i = 0; i < total / chunk.length; i++) if (!c.write(chunk)) await once(c, 'drain');
    })();
    await until(() => proxy.counter('tcp.tcp_test.downstream_flow_control_paused_reading_total') >= 1, 20_000, 'reading paused');
    assert.ok(proxy.counter('tcp.tcp_test.downstream_cx_rx_bytes_total') < total, 'the downstream is not read to the end meanwhile');
    upstream!.socket.resume();
    await writing;
    await until(() => upstream!.bytes === total, 20_000, 'everything arrives once the upstream reads');
    assert.ok(proxy.counter('tcp.tcp_test.downstream_flow_control_resumed_reading_total') >= 1);
    c.destroy();
  } finally {
    await proxy.close();
    await up.close();
  }
});
