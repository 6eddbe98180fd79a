import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as undici from 'undici';
import { buildConnector, Pool } from '../../src/http/undici-pool';

test('the Pool and connector required from undici/lib are the ones undici exports', () => {
  assert.equal(Pool, undici.Pool);
  assert.equal(buildConnector, undici.buildConnector);
});
