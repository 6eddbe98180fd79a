import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { TempDir, Upstream } from '../http/helpers';
import { k8sClusterName, startGoSidecar, type GoSidecar } from './helpers';

// Higress `_rules_` matching (wasm-go pkg/matcher) on real traffic. The matcher reads `:authority`,
// `route_name` and `cluster_name` in onHttpRequestHeaders and takes the first rule that matches, in config
// order, else the global config:
//  - `_match_route_`: route_name equals one of the names;
//  - `_match_domain_`: :authority with its port stripped, exact, `*suffix` or `prefix*`;
//  - `_match_service_`: cluster_name split on `|` must have 4 parts (`outbound|port|subset|fqdn`); the entry is
//    `fqdn` or `fqdn:port`.
// What Envoy returns for the properties: Higress's Envoy serves them as the top-level tokens route_name and
// cluster_name (its context.cc PROPERTY_TOKENS); stock Envoy 1.40 has the same values under xds.route_name and
// xds.cluster_name (checked with an upstream-SDK probe plugin). route_name is the selected route's `name` ("" when
// it has none: found, empty; NOT_FOUND when no route matched); cluster_name is the route's cluster, verbatim
// (`outbound|80||api.default.svc.cluster.local`), NOT_FOUND on a direct_response route (no route entry). The HTTP
// connection manager selects the route before the filter chain runs, so both are known in the first filter's
// request headers.

const API_80 = k8sClusterName('api', 'default', 80);
const API_8080 = k8sClusterName('api', 'default', 8080);
const WEB = k8sClusterName('web', 'prod', 80);

const CONFIG = {
  name: 'global',
  tag: 'g',
  _rules_: [
    { _match_route_: ['api-v1'], name: 'by-route' },
    { _match_domain_: ['*.shop.example.com'], name: 'by-domain-suffix', tag: 'shop' },
    { _match_domain_: ['internal.*'], name: 'by-domain-prefix' },
    { _match_domain_: ['exact.example.com'], name: 'by-domain-exact' },
    { _match_service_: ['api.default.svc.cluster.local:8080'], name: 'by-service-port' },
    { _match_service_: ['web.prod.svc.cluster.local'], name: 'by-service' },
  ],
};

const tmp = new TempDir();
let api: Upstream;
let web: Upstream;
let sc: GoSidecar;

before(async () => {
  api = await Upstream.start();
  web = await Upstream.start();
  sc = await startGoSidecar(tmp, {
    filters: [{ plugin: 'go/sdk-rules', name: 'rules', rootId: '', configuration: JSON.stringify(CONFIG) }],
    clusters: [
      { name: API_80, port: api.port },
      { name: API_8080, port: api.port },
      { name: WEB, port: web.port },
      { name: 'backend', port: api.port },
    ],
    virtualHosts: [
      {
        name: 'api',
        domains: ['api.example.com'],
        routes: [
          { name: 'api-v1', prefix: '/v1', cluster: API_80 },
          { name: 'api-admin', prefix: '/admin', cluster: API_8080 },
          { name: 'api-default', prefix: '/', cluster: 'backend' },
        ],
      },
      { name: 'shop', domains: ['*.shop.example.com'], routes: [{ name: 'shop', prefix: '/', cluster: WEB }] },
      { name: 'internal', domains: ['internal.*'], routes: [{ prefix: '/', cluster: 'backend' }] },
      {
        name: 'catch-all',
        domains: ['*'],
        routes: [
          { name: 'static', path: '/static', directResponse: { status: 200, body: 'static body' } },
          { name: 'web', prefix: '/web', cluster: WEB },
          { name: 'fallback', prefix: '/', cluster: 'backend' },
        ],
      },
    ],
  });
});

after(async () => {
  await sc?.sidecar.stop();
  await api?.close();
  await web?.close();
  tmp.cleanup();
});

interface Seen {
  readonly status: number;
  readonly rule: string | undefined;
  readonly tag: string | undefined;
  readonly routeName: string | undefined;
  readonly clusterName: string | undefined;
  readonly authority: string | undefined;
  readonly upstreamRule: string | undefined;
  readonly body: string;
}

async function send(host: string, path: string): Promise<Seen> {
  const before = { api: api.requests.length, web: web.requests.length };
  const res = await request(`${sc.url}${path}`, { headers: { host } });
  const body = await res.body.text();
  const h = (name: string) => {
    const v = res.headers[name];
    return Array.isArray(v) ? v.join(',') : v;
  };
  const reached = [...api.requests.slice(before.api), ...web.requests.slice(before.web)];
  const rule = reached[0]?.headers['x-sdk-rule'];
  return {
    status: res.statusCode,
    rule: h('x-sdk-rule'),
    tag: h('x-sdk-tag'),
    routeName: h('x-seen-route-name'),
    clusterName: h('x-seen-cluster-name'),
    authority: h('x-seen-authority'),
    upstreamRule: Array.isArray(rule) ? rule.join(',') : rule,
    body,
  };
}

describe('properties the matcher reads, as Envoy returns them', () => {
  it('route_name is the route name and cluster_name the Istio-style cluster name, in request headers', async () => {
    const s = await send('api.example.com', '/v1/users');
    assert.equal(s.status, 200);
    assert.equal(s.routeName, 'api-v1');
    assert.equal(s.clusterName, API_80);
    assert.equal(s.clusterName, 'outbound|80||api.default.svc.cluster.local');
    assert.equal(s.authority, 'api.example.com');
  });

  it('takes different values per virtual host and route', async () => {
    const admin = await send('api.example.com', '/admin/x');
    assert.deepEqual([admin.routeName, admin.clusterName], ['api-admin', API_8080]);
    const shop = await send('a.shop.example.com', '/cart');
    assert.deepEqual([shop.routeName, shop.clusterName], ['shop', WEB]);
    const other = await send('other.example.com', '/anything');
    assert.deepEqual([other.routeName, other.clusterName], ['fallback', 'backend']);
  });

  it('route_name of a route without a name is found and empty', async () => {
    const s = await send('internal.corp', '/x');
    assert.equal(s.status, 200);
    assert.equal(s.routeName, '');
    assert.equal(s.clusterName, 'backend');
  });

  it('cluster_name on a direct_response route is NOT_FOUND (no route entry)', async () => {
    const s = await send('other.example.com', '/static');
    assert.equal(s.status, 200);
    assert.equal(s.body, 'static body');
    assert.equal(s.routeName, 'static');
    assert.equal(s.clusterName, '<not-found>');
  });
});

describe('_rules_ matching', () => {
  it('_match_route_ picks the rule by route name; unset fields come from the global config', async () => {
    const s = await send('api.example.com', '/v1/users');
    assert.equal(s.rule, 'by-route');
    assert.equal(s.tag, 'g');
    assert.equal(s.upstreamRule, 'by-route');
  });

  it('_match_service_ with fqdn:port matches only that port of the service', async () => {
    assert.equal((await send('api.example.com', '/admin/x')).rule, 'by-service-port');
    // The same service on port 80 (route api-v1 aside, through a route that is not named in any rule)
    // falls back to the global config: the port must match.
    assert.equal((await send('api.example.com', '/other')).rule, 'global');
  });

  it('_match_service_ with a bare fqdn matches any port of it', async () => {
    const s = await send('other.example.com', '/web/page');
    assert.equal(s.clusterName, WEB);
    assert.equal(s.rule, 'by-service');
  });

  it('_match_domain_ wildcards: *suffix, prefix* and exact; the first matching rule wins', async () => {
    // a.shop.example.com also routes to the web service (rule by-service, later in the list): domain first.
    const shop = await send('a.shop.example.com', '/cart');
    assert.deepEqual([shop.rule, shop.tag], ['by-domain-suffix', 'shop']);
    assert.equal((await send('internal.corp', '/x')).rule, 'by-domain-prefix');
    assert.equal((await send('exact.example.com', '/x')).rule, 'by-domain-exact');
    assert.equal((await send('sub.exact.example.com', '/x')).rule, 'global');
  });

  it('_match_domain_ ignores the port of :authority (the matcher strips it)', async () => {
    const s = await send('exact.example.com:8080', '/x');
    assert.equal(s.authority, 'exact.example.com:8080');
    assert.equal(s.rule, 'by-domain-exact');
  });

  it('no rule matches: the global config applies', async () => {
    const s = await send('other.example.com', '/anything');
    assert.deepEqual([s.rule, s.tag, s.upstreamRule], ['global', 'g', 'global']);
  });
});

describe('virtual host selection with a port in :authority', () => {
  // Envoy matches domains against :authority as sent, port included, unless the RouteConfiguration sets
  // ignore_port_in_host_matching (or the HCM strips ports): `a.shop.example.com:8443` matches neither
  // `*.shop.example.com` (it does not end with it) and lands on `*`.
  it('a.shop.example.com:8443 is served by the catch-all virtual host', async () => {
    const s = await send('a.shop.example.com:8443', '/cart');
    assert.equal(s.routeName, 'fallback');
    assert.equal(s.clusterName, 'backend');
    // The matcher strips the port itself, so the domain rule still matches.
    assert.equal(s.rule, 'by-domain-suffix');
  });
});
