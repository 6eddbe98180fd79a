import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { request } from 'undici';
import { HostEmulator } from '../../src/testing/host-emulator';
import { pluginPath } from '../support/plugins';
import { startSidecar, TempDir, Upstream } from './helpers';

// Higress's injectEncodedDataToFilterChain: data a plugin injects goes to the encoder filters after it (towards
// the client), after its held response headers are released; the filter itself stays stopped, so the upstream's
// own body no longer passes it. The `_on_header` foreign-function form runs on the next event-loop turn.

const tmp = new TempDir();
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
  tmp.cleanup();
});

test('inject_encoded_data_to_filter_chain_on_header gives a bodiless response a body (Higress MCP reply path)', async () => {
  // Higress uses it where the upstream answers without a body: the headers arrive with end of stream, the
  // plugin holds them and the injection sends them on with its body.
  const up = await Upstream.start((_req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.setHeader('x-upstream', 'yes');
    res.setHeader('content-length', '0');
    res.end();
  });
  cleanups.push(() => up.close());
  const reply = JSON.stringify({ jsonrpc: '2.0', id: 1, result: { ok: true } });
  const { sidecar, url } = await startSidecar(tmp, {
    filters: [{ plugin: 'go/host-inject', name: 'inject', rootId: '', configuration: JSON.stringify({ body: reply }) }],
    clusters: [{ name: 'backend', port: up.port }],
  });
  cleanups.push(() => sidecar.stop());
  for (let i = 0; i < 3; i++) {
    const res = await request(`${url}/mcp`);
    assert.equal(res.statusCode, 200, "the upstream's status");
    assert.equal(res.headers['x-upstream'], 'yes', "the upstream's headers, as the plugin left them");
    assert.equal(res.headers['content-type'], 'application/json');
    assert.equal(await res.body.text(), reply);
  }
});

test('proxy_inject_encoded_data_to_filter_chain from body callbacks is the only way the body passes', async () => {
  const up = await Upstream.start((_req, res) => {
    res.write('chunk-1;');
    setImmediate(() => res.end('chunk-2'));
  });
  cleanups.push(() => up.close());
  const { sidecar, url } = await startSidecar(tmp, {
    filters: [{ plugin: 'host-inject-body', name: 'inject-body', rootId: '' }],
    clusters: [{ name: 'backend', port: up.port }],
  });
  cleanups.push(() => sidecar.stop());
  const res = await request(`${url}/stream`);
  assert.equal(res.statusCode, 200);
  assert.equal(await res.body.text(), 'chunk-1;chunk-2[end]');
});

test('injected data passes the filters after the injecting one, not the ones before it', async () => {
  const up = await Upstream.start((_req, res) => res.end('body'));
  cleanups.push(() => up.close());
  // Encoding runs in reverse order: inject-body (second) encodes first and injects; add-header (first)
  // still sees the response headers released by the injection.
  const { sidecar, url } = await startSidecar(tmp, {
    filters: [
      { plugin: 'go/add-header', name: 'add', rootId: '', configuration: JSON.stringify({ response_header: 'x-after', value: 'seen' }) },
      { plugin: 'host-inject-body', name: 'inject-body', rootId: '' },
    ],
    clusters: [{ name: 'backend', port: up.port }],
  });
  cleanups.push(() => sidecar.stop());
  const res = await request(`${url}/x`);
  assert.equal(res.headers['x-after'], 'seen');
  assert.equal(await res.body.text(), 'body[end]');
});

test('the test kit records injections with their end of stream and form', async () => {
  const host = await HostEmulator.load(pluginPath('go/host-inject'), { name: 'inject', configuration: JSON.stringify({ body: 'hi' }) });
  try {
    const s = host.stream();
    s.sendRequestHeaders([[':method', 'GET'], [':path', '/'], [':authority', 'h']], true);
    assert.equal(s.sendResponseHeaders([[':status', '200'], ['content-length', '0']], true), 'stop_iteration', 'PAUSE is StopIteration under 0_2_100');
    assert.deepEqual(s.injected, [{ data: Buffer.from('hi'), endOfStream: true, onHeader: true }]);
    assert.equal(s.header('content-length', s.responseHeaders), undefined);
    s.complete();
  } finally {
    host.close();
  }
});
