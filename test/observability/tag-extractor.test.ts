import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TagProducer } from '../../src/observability/tag-extractor';

// Envoy's tag extraction rules, on names Envoy itself prints (expected values are what Envoy's
// /stats/prometheus shows for them).

function extract(p: TagProducer, name: string): [string, Record<string, string>] {
  const out = p.produce(name);
  return [out.tagExtractedName, Object.fromEntries(out.tags.map((t) => [t.name, t.value]))];
}

describe('TagProducer', () => {
  const defaults = new TagProducer();

  it("applies Envoy's default tags in Envoy's order", () => {
    assert.deepEqual(extract(defaults, 'http.ingress_http.downstream_rq_2xx'), ['http.downstream_rq_xx', { 'envoy.response_code_class': '2', 'envoy.http_conn_manager_prefix': 'ingress_http' }]);
    assert.deepEqual(defaults.produce('cluster.backend.upstream_rq_200').tags.map((t) => t.name), ['envoy.response_code', 'envoy.cluster_name']);
    assert.deepEqual(extract(defaults, 'vhost.vh1.route.r1.upstream_rq_total'), ['vhost.route.upstream_rq_total', { 'envoy.virtual_host': 'vh1', 'envoy.route': 'r1' }]);
    assert.deepEqual(extract(defaults, 'listener.0.0.0.0_8080.downstream_cx_total'), ['listener.downstream_cx_total', { 'envoy.listener_address': '0.0.0.0_8080' }]);
    assert.deepEqual(extract(defaults, 'listener.admin.downstream_cx_total'), ['listener.admin.downstream_cx_total', {}], 'negative match: admin is not an address');
    assert.deepEqual(extract(defaults, 'server.worker_1.watchdog_miss'), ['server.worker_watchdog_miss', { 'envoy.worker_id': '1' }]);
    assert.deepEqual(extract(defaults, 'pfx.http_local_rate_limit.enabled'), ['http_local_rate_limit.enabled', { 'envoy.http_local_rate_limit_prefix': 'pfx' }]);
    assert.deepEqual(extract(defaults, 'cluster_manager.cds.update_success'), ['cluster_manager.cds.update_success', {}]);
  });

  it('takes dotted cluster names whole (the Istio/Higress regex the sidecar uses as its default)', () => {
    assert.deepEqual(extract(defaults, 'cluster.outbound|80||svc.ns.svc.cluster.local.membership_total'), ['cluster.membership_total', { 'envoy.cluster_name': 'outbound|80||svc.ns.svc.cluster.local' }]);
    assert.deepEqual(extract(defaults, 'redis.outbound|6379||r.ns.svc.cluster.local.calls'), ['redis.calls', { 'envoy.cluster_name': 'outbound|6379||r.ns.svc.cluster.local' }]);
  });

  it('stats_tags: first group removed, second (or first) the value; std::regex POSIX classes; fixed values', () => {
    const p = new TagProducer({
      useAllDefaultTags: false,
      statsTags: [
        { tagName: 'reporter', regex: '(reporter=\\.=(.*?);\\.;)' },
        { tagName: 'whole', regex: '^foo\\.(bar\\.)' },
        { tagName: 'listener_address', regex: '^listener\\.(((?:[_.[:digit:]]*|[_\\[\\]aAbBcCdDeEfF[:digit:]]*))\\.)' },
        { tagName: 'zone', fixedValue: 'z1' },
      ],
    });
    assert.deepEqual(extract(p, 'istiocustom.istio_requests_total.reporter=.=destination;.;'), ['istiocustom.istio_requests_total.', { reporter: 'destination', zone: 'z1' }]);
    assert.deepEqual(extract(p, 'foo.bar.baz'), ['foo.baz', { whole: 'bar.', zone: 'z1' }]);
    assert.deepEqual(extract(p, 'listener.[__1]_80.downstream_cx_total'), ['listener.downstream_cx_total', { zone: 'z1', listener_address: '[__1]_80' }]);
    assert.deepEqual(extract(p, 'cluster.x.membership_total'), ['cluster.x.membership_total', { zone: 'z1' }], 'no default tags');
  });

  it('a tag name alone selects the default extractors of that name; the first match of a shared name wins', () => {
    const p = new TagProducer({ useAllDefaultTags: false, statsTags: [{ tagName: 'envoy.cluster_name' }, { tagName: 'envoy.cluster_name', regex: '^(x)' }] });
    assert.deepEqual(extract(p, 'cluster.backend.upstream_cx_total'), ['cluster.upstream_cx_total', { 'envoy.cluster_name': 'backend' }]);
    assert.deepEqual(p.produce('xcluster.a.b').tags, [{ name: 'envoy.cluster_name', value: 'x' }]);
  });
});
