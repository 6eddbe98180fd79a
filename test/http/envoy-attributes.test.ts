import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { HostEmulator } from '../../src/testing/host-emulator';
import { pluginPath } from '../support/plugins';
import { TempDir, Upstream } from './helpers';
import { hex, int64Hex, startShaped } from './host-bootstrap';
import { REFUSED_PORT } from '../support/ports';

// Envoy's attributes as a Higress SDK plugin reads them (proxywasm.GetProperty) through the data plane, with the
// bytes Envoy serializes: strings raw, integers 8-byte LE, metadata as protobuf. response.code_details drives
// wrapper.IsResponseFromUpstream(): `via_upstream` for an upstream response, Envoy's details for local replies.

const PROPS = [
  ['response', 'code_details'], // 0
  ['xds', 'route_name'], // 1
  ['xds', 'cluster_name'], // 2
  ['xds', 'route_metadata', 'filter_metadata', 'test.ns'], // 3
  ['route_name'], // 4 (Higress top-level)
  ['connection', 'id'], // 5
  ['response', 'code'], // 6
  ['response', 'flags'], // 7
  ['upstream', 'address'], // 8
  ['xds', 'filter_chain_name'], // 9
  ['node', 'id'], // 10
  ['xds', 'listener_metadata', 'filter_metadata', 'lst'], // 11
  ['upstream', 'port'], // 12
  ['connection', 'mtls'], // 13
  ['connection', 'tls_version'], // 14
  ['xds', 'virtual_host_name'], // 15
  ['upstream', 'transport_failure_reason'], // 16
  ['response', 'grpc_status'], // 17
  ['request', 'duration'], // 18
  ['xds', 'route_metadata', 'filter_metadata', 'test.ns', 'k'], // 19
  ['xds', 'route_metadata'], // 20
  ['xds', 'listener_metadata', 'filter_metadata', 'lst', 'n'], // 21
  ['xds', 'listener_metadata', 'filter_metadata', 'lst', 'list'], // 22
  ['node', 'metadata', 'role'], // 23
  ['xds', 'listener_metadata', 'filter_metadata', 'lst', 'nested'], // 24
] as const;

const CONFIG = JSON.stringify({ properties: PROPS, deny_header: 'x-deny' });
/**
 * cel-cpp unwraps a google.protobuf.Struct into a map, so Envoy serializes {k: "v"} as pairs: count 1, lengths
 * 1 and 1, then "k\0v\0".
 */
const STRUCT_K_V = '0100000001000000010000006b007600';
/**
 * envoy.config.core.v3.Metadata {filter_metadata: {"test.ns": Struct{k: "v"}}} in protobuf wire format:
 * map entry (field 1) = key (field 1) "test.ns" + value (field 2) Struct{fields (1): entry{key "k", Value{string_value (3) "v"}}}.
 */
const ROUTE_METADATA = `0a15` + `0a07${Buffer.from('test.ns').toString('hex')}` + `120a` + `0a080a016b12031a0176`;
const NOT_FOUND = '!error status returned by host: not found';

const tmp = new TempDir();
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
  tmp.cleanup();
});

let url = '';
let upstream: Upstream;
let deadPort = 0;

before(async () => {
  upstream = await Upstream.start((req, res) => {
    if (req.url === '/hang') return; // never answers: the route timeout fires
    res.end('ok');
  });
  cleanups.push(() => upstream.close());
  deadPort = REFUSED_PORT;
  const started = await startShaped(tmp, {
    filters: [{ plugin: 'go/host-attrs', name: 'attrs', rootId: '', configuration: CONFIG }],
    clusters: [{ name: 'backend', port: upstream.port }, { name: 'dead', port: deadPort, connectTimeout: '1s' }],
  }, ({ doc, listener, routeConfig }) => {
    doc['node'] = { id: 'test-node', cluster: 'test', metadata: { role: 'edge' } };
    listener['metadata'] = { filter_metadata: { lst: { k: 'v', n: 2, list: ['a', true], nested: { x: 'y' } } } };
    (listener['filter_chains'] as Array<Record<string, unknown>>)[0]!['name'] = 'chain-a';
    routeConfig['virtual_hosts'] = [{
      name: 'vh',
      domains: ['*'],
      routes: [
        { name: 'hang', match: { path: '/hang' }, route: { cluster: 'backend', timeout: '0.3s' } },
        { name: 'dead', match: { prefix: '/dead' }, route: { cluster: 'dead' } },
        { name: 'direct', match: { prefix: '/direct' }, direct_response: { status: 200, body: { inline_string: 'direct' } } },
        { name: 'default', match: { prefix: '/api' }, route: { cluster: 'backend' }, metadata: { filter_metadata: { 'test.ns': { k: 'v' } } } },
      ],
    }];
  });
  cleanups.push(() => started.sidecar.stop());
  url = started.url;
});

async function get(path: string, headers: Record<string, string> = {}) {
  const res = await request(`${url}${path}`, { headers });
  const body = await res.body.text();
  const h = (name: string) => String(res.headers[name] ?? '');
  return { status: res.statusCode, body, h };
}

test('an upstream response: via_upstream, the route and its metadata, upstream address, 8-byte integers', async () => {
  const r = await get('/api/x');
  assert.equal(r.status, 200);
  assert.equal(r.body, 'ok');
  assert.equal(r.h('x-from-upstream'), 'true', 'wrapper.IsResponseFromUpstream()');
  // Request headers phase: no response yet; the route was selected before the filters ran.
  assert.equal(r.h('x-req-0'), NOT_FOUND);
  assert.equal(r.h('x-req-1'), hex('default'));
  assert.equal(r.h('x-req-2'), hex('backend'));
  assert.equal(r.h('x-req-3'), STRUCT_K_V, 'a filter_metadata namespace is its Struct in protobuf bytes');
  assert.equal(r.h('x-req-4'), hex('default'));
  assert.equal(r.h('x-req-5').length, 16, 'connection.id is an 8-byte integer');
  assert.equal(r.h('x-req-6'), NOT_FOUND, 'response.code before the response');
  assert.equal(r.h('x-req-8'), NOT_FOUND, 'no upstream host yet');
  assert.equal(r.h('x-req-9'), hex('chain-a'));
  assert.equal(r.h('x-req-10'), hex('test-node'));
  // {k: "v", n: 2, list: [...], nested: {...}}: pairs whose values are serialized in turn.
  assert.ok(r.h('x-req-11').startsWith('04000000'), 'four keys');
  assert.equal(r.h('x-req-19'), hex('v'), 'a Struct field is its value');
  assert.equal(r.h('x-req-20'), ROUTE_METADATA, 'the Metadata message in protobuf bytes');
  assert.equal(r.h('x-req-21'), '0000000000000040', 'a number is an 8-byte double (2.0)');
  // A list: pairs (serialized element, ''): "a" and the one byte of true.
  assert.equal(r.h('x-req-22'), '02000000' + '0100000000000000' + '0100000000000000' + '610000' + '010000');
  assert.equal(r.h('x-req-23'), hex('edge'), 'node.metadata is a Struct too');
  assert.equal(r.h('x-req-24'), '010000000100000001000000780079' + '00', 'a nested Struct: pairs');
  assert.equal(r.h('x-req-13'), '00', 'connection.mtls is a one-byte false');
  assert.equal(r.h('x-req-14'), NOT_FOUND, 'no TLS: no tls_version');
  assert.equal(r.h('x-req-15'), hex('vh'));
  // Response headers phase.
  assert.equal(r.h('x-resp-0'), hex('via_upstream'));
  assert.equal(r.h('x-resp-6'), int64Hex(200));
  assert.equal(r.h('x-resp-7'), int64Hex(0));
  assert.equal(r.h('x-resp-8'), hex(`127.0.0.1:${upstream.port}`));
  assert.equal(r.h('x-resp-12'), int64Hex(upstream.port));
  assert.equal(r.h('x-resp-16'), NOT_FOUND);
  assert.equal(r.h('x-resp-17'), int64Hex(2), 'no grpc-status: inferred from HTTP 200 (Unknown)');
  assert.equal(r.h('x-resp-18'), NOT_FOUND, 'request.duration only once the stream completed');
});

test("a plugin's local reply: Higress's via_wasm::<plugin>::<details>, and it is not from upstream", async () => {
  const r = await get('/api/x', { 'x-deny': '1' });
  assert.equal(r.status, 403);
  assert.equal(r.body, 'denied');
  assert.equal(r.h('x-from-upstream'), 'false');
  assert.equal(r.h('x-resp-0'), hex('via_wasm::attrs::denied_by_test'));
  assert.equal(r.h('x-resp-6'), int64Hex(403));
});

test("the router's local replies carry Envoy's details and response flags", async () => {
  const nr = await get('/nowhere');
  assert.equal(nr.status, 404);
  assert.equal(nr.h('x-from-upstream'), 'false');
  assert.equal(nr.h('x-resp-0'), hex('route_not_found'));
  assert.equal(nr.h('x-resp-7'), int64Hex(0x100), 'NR');
  assert.equal(nr.h('x-req-1'), NOT_FOUND, 'no route: xds.route_name not found');

  const direct = await get('/direct');
  assert.equal(direct.status, 200);
  assert.equal(direct.body, 'direct');
  assert.equal(direct.h('x-resp-0'), hex('direct_response'));
  assert.equal(direct.h('x-from-upstream'), 'false');
  assert.equal(direct.h('x-resp-2'), NOT_FOUND, 'a direct response route has no cluster');

  const uf = await get('/dead');
  assert.equal(uf.status, 503);
  assert.equal(uf.body, 'upstream connect error or disconnect/reset before headers. reset reason: connection failure');
  assert.equal(uf.h('x-resp-0'), hex('upstream_reset_before_response_started{connection_failure}'));
  assert.equal(uf.h('x-resp-7'), int64Hex(0x20), 'UF');
  assert.equal(uf.h('x-resp-16'), hex('ECONNREFUSED'));
  assert.equal(uf.h('x-resp-8'), hex(`127.0.0.1:${deadPort}`));
  assert.equal(uf.h('x-resp-17'), int64Hex(14), '503 is UNAVAILABLE');

  const ut = await get('/hang');
  assert.equal(ut.status, 504);
  assert.equal(ut.body, 'upstream request timeout');
  assert.equal(ut.h('x-resp-0'), hex('response_timeout'));
  assert.equal(ut.h('x-resp-7'), int64Hex(0x4), 'UT');
});

test('the test kit reports code details the way the data plane does', async () => {
  const host = await HostEmulator.load(pluginPath('go/host-attrs'), { name: 'attrs', configuration: CONFIG });
  try {
    const up = host.stream();
    up.sendRequestHeaders([[':method', 'GET'], [':path', '/'], [':authority', 'h']], true);
    up.sendResponseHeaders([[':status', '200']], true);
    assert.equal(up.header('x-from-upstream', up.responseHeaders), 'true');
    assert.equal(up.header('x-resp-0', up.responseHeaders), hex('via_upstream'));
    up.complete();

    const local = host.stream();
    local.sendRequestHeaders([[':method', 'GET'], [':path', '/'], [':authority', 'h'], ['x-deny', '1']], true);
    assert.equal(local.localResponse?.statusCode, 403);
    assert.equal(local.localResponse?.details, 'denied by test', 'the kit keeps what the plugin passed');
    local.sendResponseHeaders([[':status', '403']], true);
    assert.equal(local.header('x-from-upstream', local.responseHeaders), 'false');
    assert.equal(local.header('x-resp-0', local.responseHeaders), hex('via_wasm::attrs::denied_by_test'));
    local.complete();
  } finally {
    host.close();
  }
});
