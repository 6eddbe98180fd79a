// Route matching and rewriting through both: domains, prefix/path/safe_regex/header matchers, prefix_rewrite,
// host_rewrite_literal, direct_response, no route (404), route timeout (504), an unreachable cluster (503). The
// oracle plugin adds a header on every request, so what the router forwards includes the filter's work.
import { after, before, describe, it } from 'node:test';
import { assertExplained, Oracle, type OracleRequest } from './harness';

describe('oracle: routes (Envoy vs sidecar)', () => {
  let oracle: Oracle;

  before(async () => {
    oracle = await Oracle.start({
      name: 'routes',
      filters: [{ plugin: 'oracle-http', name: 'oracle', rootId: 'oracle_http', configuration: 'routes' }],
      clusters: [
        {
          name: 'a',
          handler: (req, res) => {
            if (req.url?.startsWith('/slow')) {
              setTimeout(() => res.end('too late'), 4000).unref();
              return;
            }
            res.end(`a saw ${req.url} host=${req.headers.host}`);
          },
        },
        { name: 'b', handler: (req, res) => res.end(`b saw ${req.url} host=${req.headers.host}`) },
        { name: 'down', unreachable: true },
      ],
      virtualHosts: [
        {
          name: 'api',
          domains: ['api.example', 'api.example:*'],
          routes: [
            { name: 'api-prefix', match: { prefix: '/v0/' }, route: { cluster: 'b', prefix_rewrite: '/v1/' } },
          ],
        },
        {
          name: 'default',
          domains: ['*'],
          routes: [
            { name: 'exact', match: { path: '/exact' }, route: { cluster: 'b' } },
            { name: 'regex', match: { safe_regex: { regex: '^/re/[0-9]+$' } }, route: { cluster: 'b' } },
            { name: 'by-header', match: { prefix: '/h', headers: [{ name: 'x-route', string_match: { exact: 'b' } }] }, route: { cluster: 'b' } },
            { name: 'rewrite', match: { prefix: '/old/' }, route: { cluster: 'a', prefix_rewrite: '/new/' } },
            { name: 'rewrite-root', match: { prefix: '/strip' }, route: { cluster: 'a', prefix_rewrite: '/' } },
            { name: 'host', match: { prefix: '/host' }, route: { cluster: 'a', host_rewrite_literal: 'rewritten.example' } },
            { name: 'direct', match: { prefix: '/direct' }, direct_response: { status: 418, body: { inline_string: 'short and stout\n' } } },
            { name: 'direct-empty', match: { prefix: '/nobody' }, direct_response: { status: 204 } },
            { name: 'slow', match: { prefix: '/slow' }, route: { cluster: 'a', timeout: '0.5s' } },
            { name: 'down', match: { prefix: '/down' }, route: { cluster: 'down' } },
            { name: 'none', match: { prefix: '/' }, route: { cluster: 'a' } },
          ],
        },
      ],
    });
  });

  after(async () => {
    await oracle?.close();
  });

  const h = { 'x-oracle': 'headers' };
  const cases: Array<[string, OracleRequest]> = [
    ['vhost-by-host', { path: '/v0/items?x=1', headers: { ...h, host: 'api.example' } }],
    ['vhost-no-route', { path: '/elsewhere', headers: { ...h, host: 'api.example' } }],
    ['path-exact', { path: '/exact', headers: h }],
    ['path-exact-not-prefix', { path: '/exact/more', headers: h }],
    ['regex', { path: '/re/123', headers: h }],
    ['regex-miss', { path: '/re/abc', headers: h }],
    ['header-match', { path: '/hx', headers: { ...h, 'x-route': 'b' } }],
    ['header-miss', { path: '/hx', headers: { ...h, 'x-route': 'c' } }],
    ['prefix-rewrite', { path: '/old/thing?q=2', headers: h }],
    ['prefix-rewrite-root', { path: '/strip/me', headers: h }],
    ['host-rewrite', { path: '/host', headers: h }],
    ['direct-response', { path: '/direct', headers: h }],
    ['direct-response-empty', { path: '/nobody', headers: h }],
    ['route-timeout', { path: '/slow', headers: h }],
    ['unreachable-cluster', { path: '/down', headers: h }],
    ['post-through', { method: 'POST', path: '/anything', body: 'payload', headers: h }],
  ];
  for (const [id, req] of cases) {
    it(id, async (t) => {
      const { diffs } = await oracle.exchange(id, req);
      assertExplained(diffs, (m) => t.diagnostic(m));
    });
  }

  it('stats', async (t) => {
    assertExplained(await oracle.statDiffs(['cluster.a.', 'cluster.b.', 'cluster.down.']), (m) => t.diagnostic(m));
  });
});
