// The oracle's own machinery, without Envoy: the known-differences file is well formed and names real cases,
// unexplained differences fail with both values, presence/ignore entries behave, shapes ignore values.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { REPO_ROOT } from '../support/plugins';
import { assertExplained, classify, diffShapes, shapeOf } from './harness';

const SPECS = ['data-plane', 'project-plugins', 'loads', 'failure-', 'routes', 'xds', 'stop-iteration'];

describe('oracle harness', () => {
  it('every known difference names a case of an oracle test file and says why', () => {
    const doc = parse(readFileSync(join(REPO_ROOT, 'test', 'oracle', 'intended-differences.yaml'), 'utf8')) as { differences: Array<Record<string, string>> };
    assert.ok(doc.differences.length > 0);
    for (const e of doc.differences) {
      const c = e['case']!.replace(/^\{/, '');
      assert.ok(c.startsWith('*') || SPECS.some((s) => c.startsWith(s)), `unknown case ${e['case']}`);
      assert.ok(['intended', 'bug'].includes(e['status']!), `${e['case']} ${e['field']}: status`);
      assert.ok((e['reason'] ?? '').length > 15, `${e['case']} ${e['field']}: a reason`);
      if (e['compare'] !== undefined) assert.ok(['presence', 'ignore'].includes(e['compare']), `${e['case']} ${e['field']}: compare`);
    }
  });

  it('an unexplained difference fails with the case, the field and both values', () => {
    assert.throws(
      () => assertExplained([{ case: 'nowhere/x', field: 'client.header.x-made-up', envoy: 'a', sidecar: undefined }]),
      (err: Error) => err.message.includes('nowhere/x  client.header.x-made-up') && err.message.includes('envoy:   "a"') && err.message.includes('sidecar: (absent)'),
    );
  });

  it('presence entries accept differing values but not a missing field; bug entries are reported, not failed', () => {
    const present = classify([{ case: 'data-plane/a', field: 'client.header.date', envoy: 'Mon', sidecar: 'Tue' }]);
    assert.deepEqual([present.unexplained.length, present.known.length], [0, 0]);
    const missing = classify([{ case: 'data-plane/a', field: 'client.header.date', envoy: 'Mon', sidecar: undefined }]);
    assert.equal(missing.known.length, 1);
    const bug = classify([{ case: 'data-plane/a', field: 'upstream.upstream.header.connection', envoy: undefined, sidecar: 'keep-alive' }]);
    assert.deepEqual(bug.known.map((k) => k.status), ['bug']);
  });

  it('shapes compare keys and types, not values; typed entries by their @type', () => {
    assert.deepEqual([...shapeOf({ a: 1, b: [{ c: 'x' }, { c: 'y', d: true }], e: {} })], [['a', 'number'], ['b[].c', 'string'], ['b[].d', 'boolean'], ['e', 'object']]);
    assert.deepEqual([...shapeOf({ configs: [{ '@type': 'type.googleapis.com/x.y.Dump', n: 1 }] })], [['configs[Dump].@type', 'string'], ['configs[Dump].n', 'number']]);
    assert.deepEqual(diffShapes('c', 'p', { a: 1 }, { a: 2 }), []);
    assert.deepEqual(diffShapes('c', 'p', { a: 1 }, { a: '1' }), [{ case: 'c', field: 'p.a', envoy: 'number', sidecar: 'string' }]);
  });
});
