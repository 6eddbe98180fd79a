import assert from 'node:assert/strict';
import { it } from 'node:test';
import { deserializePairs, serializePairs } from '../../src/abi/pairs';

// The pairs wire format (cpp-host pairs_util.cc): u32 count, count x (u32 key_len, u32 value_len), then each key
// and value followed by a NUL. Lengths are UTF-8 byte lengths, not string lengths.
it('writes the pairs layout byte for byte, with UTF-8 lengths, empty strings and raw bytes', () => {
  const out = serializePairs([['ä', ''], ['k', Uint8Array.of(0xff, 0x00)]]);
  const expected = Buffer.concat([
    Buffer.from([2, 0, 0, 0]),
    Buffer.from([2, 0, 0, 0, 0, 0, 0, 0]),
    Buffer.from([1, 0, 0, 0, 2, 0, 0, 0]),
    Buffer.from([0xc3, 0xa4, 0]), Buffer.from([0]),
    Buffer.from('k\0'), Buffer.from([0xff, 0x00, 0]),
  ]);
  assert.deepEqual(out, expected);
});

it('round-trips header maps', () => {
  const pairs: Array<[string, string]> = [[':path', '/ü?x=1'], ['x-empty', ''], ['set-cookie', 'a=b; Path=/'], ['set-cookie', 'c=d']];
  assert.deepEqual(deserializePairs(serializePairs(pairs)), pairs);
  assert.deepEqual(deserializePairs(serializePairs([])), []);
});
