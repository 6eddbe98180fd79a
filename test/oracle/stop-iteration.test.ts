// StopIteration from proxy_on_request_headers under ABI 0.2.1: Envoy turns it into StopAllIterationAndWatermark
// (body callbacks held back) unless the PluginConfig sets allow_on_headers_stop_iteration. data-plane.test.ts
// covers the default (both hold the request); here the flag is set, so the body reaches the plugin, which adds
// x-body-seen to the still-held headers and continues. (Higress's 0_2_100 marker, where 1 always means
// StopIteration, cannot be compared: stock Envoy refuses that ABI, see loads.test.ts.)
import { after, before, describe, it } from 'node:test';
import { assertExplained, Oracle, type OracleRequest } from './harness';

describe('oracle: allow_on_headers_stop_iteration (Envoy vs sidecar)', () => {
  let oracle: Oracle;
  before(async () => {
    oracle = await Oracle.start({
      name: 'stop-iteration',
      filters: [{ plugin: 'oracle-http', name: 'oracle', rootId: 'oracle_http', configuration: 'stop', extra: { allow_on_headers_stop_iteration: true } }],
      clusters: [{ name: 'upstream' }],
    });
  });
  after(async () => {
    await oracle?.close();
  });

  const cases: Array<[string, OracleRequest]> = [
    ['stop-then-body', { method: 'POST', path: '/stop', body: 'held body', headers: { 'x-oracle': 'stop-headers' } }],
    ['stop-then-rewrite', { method: 'POST', path: '/stop-rewrite', body: 'quiet', headers: { 'x-oracle': 'stop-headers,body-rewrite' } }],
    ['no-body', { path: '/nobody', headers: { 'x-oracle': 'stop-headers' } }],
  ];
  for (const [id, req] of cases) {
    it(id, async (t) => {
      const { diffs } = await oracle.exchange(id, req);
      assertExplained(diffs, (m) => t.diagnostic(m));
    });
  }
});
