import assert from 'node:assert/strict';
import { it } from 'node:test';
import type { HeaderPairs } from '../../src/common/headers';
import { appendRequestPairs, keepTeTrailers, pairsFromObject, pairsFromRaw } from '../../src/http/http-headers';

// What the HTTP/1 codec hands the filters: names lower-cased, in arrival order, hop-by-hop dropped, `host` as
// :authority instead of a header, and only `te: trailers` of TE kept (Envoy's codec).
it('an HTTP/1 request map is the pseudo-headers, then the non-hop-by-hop headers in order, host taken out', () => {
  const raw = ['Host', 'a.example', 'X-One', '1', 'Connection', 'keep-alive', 'TE', 'gzip', 'Te', 'trailers, deflate', 'host', 'b.example', 'x-one', '2'];
  const out: HeaderPairs = [[':path', '/']];
  const host = appendRequestPairs(raw, out);
  assert.equal(host, 'a.example', 'the first host');
  assert.deepEqual(out, [[':path', '/'], ['x-one', '1'], ['x-one', '2'], ['te', 'trailers']]);
  // The same result as the two-step form the HTTP/2 codec still uses.
  const twoStep: HeaderPairs = [[':path', '/'], ...pairsFromRaw(raw).filter(([k]) => k !== 'host')];
  keepTeTrailers(raw, twoStep);
  assert.deepEqual(out, twoStep);
});

it('an HTTP/1 request without host or te gets none', () => {
  const out: HeaderPairs = [];
  assert.equal(appendRequestPairs(['Accept', '*/*', 'TE', 'gzip'], out), undefined);
  assert.deepEqual(out, [['accept', '*/*']]);
});

it("undici's header object becomes pairs, repeated names kept apart, appended after what the map holds", () => {
  const headers = { 'content-type': 'text/plain', 'set-cookie': ['a=1', 'b=2'], connection: 'close', 'X-Up': 'v', absent: undefined };
  const out: HeaderPairs = [[':status', '200']];
  assert.equal(pairsFromObject(headers, out), out);
  assert.deepEqual(out, [[':status', '200'], ['content-type', 'text/plain'], ['set-cookie', 'a=1'], ['set-cookie', 'b=2'], ['x-up', 'v']]);
  assert.deepEqual(pairsFromObject({ a: 'b' }), [['a', 'b']]);
});
