import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HashIndex } from '../../src/xds/hash-index';

describe('HashIndex (the EDS name-hash table)', () => {
  it('keeps, replaces and deletes values, with keys that share slots and across growth', () => {
    const index = new HashIndex<string>();
    // Multiples of 1024 land on the same slot of every table up to 1024 slots: long probe runs.
    const keys = [...Array.from({ length: 300 }, (_, i) => i * 1024), 0x7fffffff, 1, 2, 3];
    for (const k of keys) index.set(k, `v${k}`);
    assert.equal(index.size, keys.length);
    for (const k of keys) assert.equal(index.get(k), `v${k}`);
    assert.equal(index.get(5), undefined);
    index.set(2048, 'replaced');
    assert.equal(index.get(2048), 'replaced');
    assert.equal(index.size, keys.length);
    for (const k of keys.filter((_, i) => i % 2 === 0)) index.delete(k);
    for (const [i, k] of keys.entries()) assert.equal(index.get(k), i % 2 === 0 ? undefined : `v${k}`);
    // Deleted slots are reused and purged: the table does not fill up with them.
    for (let round = 0; round < 50; round++) {
      index.set(10_000_000 + round, 'x');
      index.delete(10_000_000 + round);
    }
    assert.equal(index.size, keys.length - Math.ceil(keys.length / 2));
    assert.throws(() => index.set(-1, 'no'), RangeError);
  });
});
