import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { intervalVerdict, medianInterval, pairedDifference, pairedRatio, roundOrder } from '../../bench/support/paired';

describe('paired bench statistics', () => {
  it('takes the sign-test interval of the median: d(2)..d(9) of 10 at 97.9%', () => {
    const e = medianInterval([9, 1, 8, 2, 7, 3, 6, 4, 5, 10]);
    assert.equal(e.median, 5.5);
    assert.equal(e.low, 2);
    assert.equal(e.high, 9);
    assert.equal(e.confidence.toFixed(4), (1 - 2 * 11 / 1024).toFixed(4));
    assert.equal(e.rounds, 10);
  });

  it('gives the full range of 5 rounds (93.8%) and no interval for 3', () => {
    const five = medianInterval([3, 1, 2, 5, 4]);
    assert.deepEqual([five.low, five.high, five.confidence], [1, 5, 1 - 2 / 32]);
    const three = medianInterval([1, 2, 3]);
    assert.equal(three.low, undefined);
    assert.match(intervalVerdict(three, 10), /NOT JUDGED \(3 rounds give no 90% interval\)/);
  });

  it('pairs samples of the same round, so drift shared by both cancels', () => {
    const base = [100, 60, 140, 80, 120];
    const row = base.map((b) => b + 2);
    const d = pairedDifference(row, base);
    assert.deepEqual([d.median, d.low, d.high], [2, 2, 2]);
    assert.equal(intervalVerdict(d, 3), 'met');
    assert.equal(intervalVerdict(d, 1), 'NOT MET');
    // Unpaired, the two rows' ranges (60..140, 62..142) overlap almost completely.
    assert.equal(pairedRatio(row, base).median, 102 / 100);
  });

  it('judges only when the interval is on one side of the goal', () => {
    assert.equal(intervalVerdict(medianInterval([1, 2, 3, 4, 8]), 5), 'NOT JUDGED (the interval spans the goal)');
    assert.equal(intervalVerdict(medianInterval([6, 7, 8, 9, 10]), 5), 'NOT MET');
  });

  it('runs rows forward and backward in alternate rounds', () => {
    assert.deepEqual(roundOrder(3, 0), [0, 1, 2]);
    assert.deepEqual(roundOrder(3, 1), [2, 1, 0]);
    assert.deepEqual(roundOrder(3, 2), [0, 1, 2]);
  });
});
