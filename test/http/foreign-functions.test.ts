import assert from 'node:assert/strict';
import { deflateSync, inflateSync } from 'node:zlib';
import { after, before, test } from 'node:test';
import { request } from 'undici';
import { startSidecar, TempDir, Upstream } from './helpers';

// proxy_call_foreign_function as Envoy and Higress register them (foreign.cc), through host-foreign.wat: the
// reply status is 200 + the call's status (200 OK, 201 NOT_FOUND, 202 BAD_ARGUMENT, 203 SERIALIZATION_FAILURE)
// and the body is exactly the bytes the host returned.

const tmp = new TempDir();
const cleanups: Array<() => Promise<void>> = [];
after(async () => {
  for (const c of cleanups.reverse()) await c();
  tmp.cleanup();
});

let url = '';
before(async () => {
  const up = await Upstream.start();
  cleanups.push(() => up.close());
  const started = await startSidecar(tmp, {
    filters: [{ plugin: 'host-foreign', name: 'foreign', rootId: '' }],
    clusters: [{ name: 'backend', port: up.port }],
  });
  cleanups.push(() => started.sidecar.stop());
  url = started.url;
});

async function call(name: string, args?: Buffer): Promise<{ status: number; body: Buffer }> {
  const res = await request(`${url}/ff`, { method: args ? 'POST' : 'GET', headers: { 'x-ff': name }, ...(args ? { body: args } : {}) });
  return { status: res.statusCode, body: Buffer.from(await res.body.arrayBuffer()) };
}

/** A protobuf string field (wire type 2), for the argument messages. */
function pbString(field: number, value: string): Buffer {
  const bytes = Buffer.from(value);
  return Buffer.concat([Buffer.from([(field << 3) | 2, bytes.length]), bytes]);
}

test('compress and uncompress are zlib (compress()/uncompress()) round trips', async () => {
  const input = Buffer.from('hello hello hello hello, compress me');
  const c = await call('compress', input);
  assert.equal(c.status, 200);
  assert.equal(c.body[0], 0x78, 'zlib stream header');
  assert.deepEqual(inflateSync(c.body), input);

  const u = await call('uncompress', deflateSync(Buffer.from('abc')));
  assert.equal(u.status, 200);
  assert.equal(u.body.toString(), 'abc');

  const bad = await call('uncompress', Buffer.from('not zlib at all'));
  assert.equal(bad.status, 203, 'SERIALIZATION_FAILURE');
});

test('declare_property declares once per root (a second declaration is BAD_ARGUMENT), bad arguments too', async () => {
  const args = Buffer.concat([pbString(1, 'my.prop'), Buffer.from([0x10, 0x01])]); // name, readonly: true
  assert.equal((await call('declare_property', args)).status, 200);
  assert.equal((await call('declare_property', args)).status, 202);
  assert.equal((await call('declare_property', Buffer.from([0xff, 0xff]))).status, 202, 'unparsable arguments');
});

test("Higress's set_global_max_requests_per_io_cycle takes a little-endian uint64, and requests still flow", async () => {
  const limit = Buffer.alloc(8);
  limit.writeBigUInt64LE(1n);
  assert.equal((await call('set_global_max_requests_per_io_cycle', limit)).status, 200);
  assert.equal((await call('set_global_max_requests_per_io_cycle', Buffer.from([1, 2, 3]))).status, 202);
  // With one request per connection per turn, concurrent requests are spread over turns, none lost.
  const results = await Promise.all(Array.from({ length: 8 }, () => call('get_log_level')));
  for (const r of results) {
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 4, 'get_log_level: a u32');
  }
});

test('clear_route_cache is OK; set_envoy_filter_state knows no factory (NOT_FOUND); unknown names are NOT_FOUND', async () => {
  assert.equal((await call('clear_route_cache')).status, 200);
  const state = Buffer.concat([pbString(1, 'envoy.string'), pbString(2, 'v')]);
  assert.equal((await call('set_envoy_filter_state', state)).status, 201);
  assert.equal((await call('set_envoy_filter_state', Buffer.from([0xff]))).status, 202);
  assert.equal((await call('expr_create', Buffer.from('1 + 1'))).status, 201, 'no CEL in this host');
  assert.equal((await call('no_such_function')).status, 201);
});

test('the inject foreign functions refuse arguments that are not their message', async () => {
  assert.equal((await call('inject_encoded_data_to_filter_chain', Buffer.from([0xff, 0xff]))).status, 202);
  // A well-formed message before any response: Envoy answers OK (the data has nowhere to go).
  const args = Buffer.concat([pbString(1, 'x'), Buffer.from([0x10, 0x01])]);
  assert.equal((await call('inject_encoded_data_to_filter_chain_on_header', args)).status, 200);
});
