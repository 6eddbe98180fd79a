// The project's own test plugins that stock Envoy can run, in one filter chain: the upstream Go SDK plugins
// (ABI 0.2.0), the AssemblyScript and SDK-free modules and the trap plugin (FAIL_OPEN, not triggered here); the
// 0.1.0 module is in loads.test.ts (Envoy 1.40 crashes on it). Modules exporting Higress's 0_2_100 marker (every Higress wasm-go plugin, the 0_2_100 WAT
// modules) or importing Higress-only functions do not load in stock Envoy: loads.test.ts compares which
// plugins each side accepts, every plugin in build/plugins and build/plugins/go included.
import { after, before, describe, it } from 'node:test';
import { assertExplained, Oracle, type OracleRequest } from './harness';

describe('oracle: project plugins in one chain (Envoy vs sidecar)', () => {
  let oracle: Oracle;

  before(async () => {
    oracle = await Oracle.start({
      name: 'project-plugins',
      filters: [
        { plugin: 'go/up-headers', name: 'up-headers', rootId: '' },
        { plugin: 'go/up-body', name: 'up-body', rootId: '', configuration: 'hello=HELLO' },
        { plugin: 'noop', name: 'noop', rootId: 'noop' },
        { plugin: 'noop-min', name: 'noop-min', rootId: '' },
        { plugin: 'trap', name: 'trap', rootId: '', failurePolicy: 'FAIL_OPEN' },
        // A Struct configuration reaches the plugin as JSON text: the bytes (key order, spacing) must match Envoy's.
        {
          plugin: 'oracle-http',
          name: 'struct-config',
          rootId: 'oracle_http',
          extra: { configuration: { '@type': 'type.googleapis.com/google.protobuf.Struct', value: { b: 1, a: 'x y', nested: { z: true, list: [1, 'two', null] } } } },
        },
      ],
      clusters: [{ name: 'upstream' }],
    });
  });

  after(async () => {
    await oracle?.close();
  });

  const cases: Array<[string, OracleRequest]> = [
    ['get', { path: '/get' }],
    ['post-rewrite', { method: 'POST', path: '/post', body: 'hello world, hello', headers: { 'content-type': 'text/plain' } }],
    ['post-empty', { method: 'POST', path: '/empty', body: '' }],
    ['deny', { path: '/deny' }],
    ['query', { path: '/q?a=1&b=two' }],
    ['repeated-headers', { path: '/rep', headers: { 'x-multi': 'a' } }],
    ['struct-configuration', { path: '/struct', headers: { 'x-oracle': 'log' } }],
  ];
  for (const [id, req] of cases) {
    it(id, async (t) => {
      const { diffs } = await oracle.exchange(id, req);
      assertExplained(diffs, (m) => t.diagnostic(m));
    });
  }

  it('plugin logs', async (t) => {
    assertExplained(await oracle.logDiffs(), (m) => t.diagnostic(m));
  });

  it('stats', async (t) => {
    assertExplained(await oracle.statDiffs(['wasm', 'cluster.upstream.']), (m) => t.diagnostic(m));
  });
});
