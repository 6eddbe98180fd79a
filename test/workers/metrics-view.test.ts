import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sumByName } from '../../src/workers/metrics-view';

test('plugin metrics from several workers are summed by type and name for the admin', () => {
  const counter = (id: number, value: bigint) => ({ id, type: 0, name: 'requests', value, count: 0, sum: 0n, samples: [] });
  const total = sumByName([
    { worker: 0, metrics: [counter(1, 3n), { id: 2, type: 2, name: 'latency', value: 0n, count: 2, sum: 30n, samples: [10n, 20n] }] },
    { worker: 1, metrics: [counter(7, 4n), { id: 9, type: 2, name: 'latency', value: 0n, count: 1, sum: 5n, samples: [5n] }, { id: 3, type: 1, name: 'requests', value: 2n, count: 0, sum: 0n, samples: [] }] },
  ]);
  const byKey = new Map(total.map((m) => [`${m.type}:${m.name}`, m]));
  assert.equal(byKey.get('0:requests')?.value, 7n);
  assert.equal(byKey.get('1:requests')?.value, 2n, 'a gauge of the same name is another metric');
  const h = byKey.get('2:latency')!;
  assert.equal(h.count, 3);
  assert.equal(h.sum, 35n);
  assert.deepEqual(h.samples, [10n, 20n, 5n]);
});
