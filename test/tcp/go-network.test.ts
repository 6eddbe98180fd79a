import { test } from 'node:test';
import assert from 'node:assert/strict';
import { until } from '../support/until';
import { TestProxy, TestUpstream, readAll, readBytes } from './helpers';

test('the upstream proxy-wasm-go-sdk network filter (plugins/go/upstream/tcp-network): data both ways, upstream.address, counter', async () => {
  const up = await TestUpstream.start({ echo: true });
  const proxy = await TestProxy.start({ upstreamPort: up.port, filters: [{ plugin: 'go/tcp-network', name: 'go-network', rootId: '' }] });
  try {
    for (let i = 0; i < 2; i++) {
      const c = await proxy.connect();
      const all = readAll(c);
      c.write(`hello ${i}`);
      assert.equal((await readBytes(c, 7)).toString(), `hello ${i}`);
      c.end();
      await all;
    }
    await until(() => proxy.metric('proxy_wasm_go.connection_counter') === 2n, 5000, 'two connections complete');
    const messages = proxy.logs.map((l) => l.message);
    const has = (m: string): boolean => messages.includes(m);
    assert.deepEqual({
      newConnection: has('tcp-network: new connection'),
      downstream: has('tcp-network: downstream data: hello 0'),
      upstream: has('tcp-network: upstream data: hello 1'),
      address: has(`tcp-network: upstream address: 127.0.0.1:${up.port}`),
      noMetadata: messages.some((m) => m.startsWith('tcp-network: no cluster location metadata')), // cluster metadata is not carried: not found
      remoteClose: messages.filter((m) => m === 'tcp-network: downstream close (peer 2)').length,
      complete: messages.filter((m) => m === 'tcp-network: connection complete').length,
    }, { newConnection: true, downstream: true, upstream: true, address: true, noMetadata: true, remoteClose: 2, complete: 2 }, messages.join('\n'));
  } finally {
    await proxy.close();
    await up.close();
  }
});
