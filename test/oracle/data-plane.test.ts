// The oracle's data-plane cases: the oracle's own plugin (every behaviour selected per request by `x-oracle`),
// the project's portable plugins, callouts, buffering limits, trailers and the admin outputs, each through real
// Envoy and the sidecar. One Envoy and one sidecar for the whole file.
import { after, before, describe, it } from 'node:test';
import { assertExplained, Oracle, type OracleRequest } from './harness';

const big = 'x'.repeat(2 * 1024 * 1024);

describe('oracle: data plane (Envoy vs sidecar)', () => {
  let oracle: Oracle;

  before(async () => {
    oracle = await Oracle.start({
      name: 'data-plane',
      filters: [
        { plugin: 'oracle-http', name: 'oracle', rootId: 'oracle_http', configuration: 'first' },
        { plugin: 'add-header', name: 'add-header', rootId: 'add_header', configuration: 'oracle' },
      ],
      clusters: [
        {
          name: 'upstream',
          handler: (req, res, body) => {
            res.setHeader('content-type', 'text/plain');
            res.setHeader('x-upstream-remove', 'gone');
            if (req.headers['x-upstream-trailers']) {
              res.setHeader('trailer', 'x-upstream-trailer');
              res.write(`trailers for ${req.url}`);
              res.addTrailers({ 'x-upstream-trailer': 'yes' });
              res.end();
              return;
            }
            if (req.headers['x-upstream-big']) {
              res.end(big);
              return;
            }
            if (req.headers['x-upstream-slow']) {
              setTimeout(() => res.end('late'), 3000).unref();
              return;
            }
            res.end(`upstream saw ${req.method} ${req.url} ${body.toString()}`);
          },
        },
        {
          name: 'callout',
          handler: (req, res) => {
            res.setHeader('x-callout', '1');
            if (req.url === '/slow') setTimeout(() => res.end('late'), 3000).unref();
            else res.end(`callout answer for ${req.url}`);
          },
        },
        { name: 'closed', unreachable: true },
      ],
    });
  });

  after(async () => {
    await oracle?.close();
  });

  const cases: Array<[string, OracleRequest]> = [
    ['plain-get', { path: '/plain' }],
    ['headers', { path: '/headers', headers: { 'x-oracle': 'headers', 'x-replace-me': 'old', 'x-remove-me': 'x' } }],
    ['post-body', { method: 'POST', path: '/post', body: 'hello body', headers: { 'content-type': 'text/plain' } }],
    ['body-rewrite', { method: 'POST', path: '/rewrite', body: 'make me loud', headers: { 'x-oracle': 'body-rewrite' } }],
    ['local-req-headers', { path: '/deny', headers: { 'x-oracle': 'local-req-headers' } }],
    ['local-req-body', { method: 'POST', path: '/deny-body', body: 'some body', headers: { 'x-oracle': 'local-req-body' } }],
    ['local-resp-headers', { path: '/deny-resp', headers: { 'x-oracle': 'local-resp-headers' } }],
    ['local-resp-body', { path: '/deny-resp-body', headers: { 'x-oracle': 'local-resp-body' } }],
    ['callout', { path: '/callout', headers: { 'x-oracle': 'callout', 'x-callout-path': '/side' } }],
    ['callout-timeout', { path: '/callout-timeout', headers: { 'x-oracle': 'callout', 'x-callout-path': '/slow', 'x-callout-timeout': '200' } }],
    ['callout-unknown-cluster', { path: '/callout-unknown', headers: { 'x-oracle': 'callout', 'x-callout-cluster': 'no-such-cluster' } }],
    ['callout-refused', { path: '/callout-refused', headers: { 'x-oracle': 'callout', 'x-callout-cluster': 'closed' } }],
    ['stop-headers', { method: 'POST', path: '/stop', body: 'held', headers: { 'x-oracle': 'stop-headers' }, timeoutMs: 3000 }],
    ['buffer-req-small', { method: 'POST', path: '/buf', body: 'small', headers: { 'x-oracle': 'buffer-req' } }],
    ['buffer-req-over-limit', { method: 'POST', path: '/buf-big', body: big, headers: { 'x-oracle': 'buffer-req' } }],
    ['buffer-resp-over-limit', { path: '/buf-resp-big', headers: { 'x-oracle': 'buffer-resp', 'x-upstream-big': '1' } }],
    ['no-buffer-big', { method: 'POST', path: '/stream-big', body: big, headers: { 'x-upstream-big': '1' } }],
    ['trailers', { path: '/trailers', headers: { 'x-oracle': 'trailers', 'x-upstream-trailers': '1' } }],
    ['props', { method: 'PUT', path: '/props?q=1', body: 'p', headers: { 'x-oracle': 'props' } }],
    ['log-metrics', { path: '/log', headers: { 'x-oracle': 'log,metrics' } }],
    ['log-metrics-again', { path: '/log2', headers: { 'x-oracle': 'log,metrics' } }],
    ['hostile', { path: '/hostile', headers: { 'x-oracle': 'hostile' } }],
    ['head', { method: 'HEAD', path: '/head' }],
  ];

  for (const [id, req] of cases) {
    it(id, async (t) => {
      const { diffs } = await oracle.exchange(id, req);
      assertExplained(diffs, (m) => t.diagnostic(m));
    });
  }

  it('plugin logs (level, plugin, message)', async (t) => {
    assertExplained(await oracle.logDiffs(), (m) => t.diagnostic(m));
  });

  it('stats: plugin metrics and the HTTP/cluster counters', async (t) => {
    const required = ['downstream_rq_total', 'downstream_rq_2xx', 'downstream_rq_4xx', 'downstream_rq_5xx', 'downstream_cx_total'].map((n) => `http.ingress_http.${n}`);
    assertExplained(await oracle.statDiffs(['wasm', 'http.ingress_http.', 'cluster.upstream.', 'cluster.callout.'], required), (m) => t.diagnostic(m));
  });

  it('admin shapes: /clusters?format=json and /config_dump', async (t) => {
    assertExplained([...(await oracle.shapeDiffs('/clusters?format=json')), ...(await oracle.shapeDiffs('/config_dump'))], (m) => t.diagnostic(m));
  });
});
