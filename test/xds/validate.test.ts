import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeProtoJson, type ProtoObject } from '../../src/xds/proto-json';
import { loadEnvoyProtos } from '../../src/xds/protos';
import { ProtoValidator } from '../../src/xds/validate';

const protos = loadEnvoyProtos();
const validator = new ProtoValidator(protos);

function violations(typeName: string, json: Record<string, unknown>): string[] {
  const type = protos.lookup(typeName)!;
  const msg = decodeProtoJson(protos, type, json) as unknown as ProtoObject;
  return validator.validate(type, msg).map((v) => `${v.path}: ${v.message}`);
}

describe('PGV rules from the loaded descriptors', () => {
  it('accepts a valid cluster', () => {
    assert.deepEqual(violations('envoy.config.cluster.v3.Cluster', { name: 'a', connect_timeout: '1s' }), []);
  });

  it('string.min_len, duration.gt and uint32.lte, collected together with paths', () => {
    const v = violations('envoy.config.cluster.v3.Cluster', {
      name: '',
      connect_timeout: '0s',
      load_assignment: { cluster_name: 'a', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '1.2.3.4', port_value: 70000 } } } }] }] },
    });
    assert.ok(v.includes('name: value length must be at least 1 characters (string.min_len)'), v.join('\n'));
    assert.ok(v.includes('connect_timeout: value must be > 0s (duration.gt)'), v.join('\n'));
    assert.ok(v.includes('load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.port_value: value must be <= 65535 (uint32.lte)'), v.join('\n'));
  });

  it('wrapper rules (uint32.gte on load_balancing_weight) and enum.defined_only', () => {
    const v = violations('envoy.config.endpoint.v3.ClusterLoadAssignment', {
      cluster_name: 'c',
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 'h', port_value: 1 } } }, load_balancing_weight: 0 }] }],
    });
    assert.ok(v.includes('endpoints[0].lb_endpoints[0].load_balancing_weight: value must be >= 1 (uint32.gte)'), v.join('\n'));
    const e = violations('envoy.config.cluster.v3.Cluster', { name: 'a', connect_timeout: '1s', type: 42 });
    assert.deepEqual(e, ['type: value must be one of the defined enum values (enum.defined_only)']);
  });

  it('oneof (validate.required) and string.min_len on cluster_name', () => {
    const v = violations('envoy.config.endpoint.v3.ClusterLoadAssignment', {
      cluster_name: '',
      endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 'h' } } } }] }],
    });
    assert.ok(v.includes('cluster_name: value length must be at least 1 characters (string.min_len)'), v.join('\n'));
    assert.ok(v.some((x) => x.endsWith('socket_address.port_specifier: value is required (oneof port_specifier)')), v.join('\n'));
  });

  it('recurses into Any fields of known types', () => {
    const v = violations('envoy.config.cluster.v3.Cluster', {
      name: 'tls',
      connect_timeout: '1s',
      transport_socket: {
        name: 'envoy.transport_sockets.tls',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
          sni: 'x'.repeat(300),
        },
      },
    });
    assert.ok(v.includes('transport_socket.typed_config.sni: value length must be at most 255 bytes (string.max_bytes)'), v.join('\n'));
  });

  it('HTTP header well_known_regex (non-strict) and a valid health check', () => {
    const v = violations('envoy.config.core.v3.HeaderValue', { key: 'bad\nheader', value: 'v' });
    assert.ok(v.some((x) => x.startsWith('key: ') && x.endsWith('(string.well_known_regex)')), v.join('\n'));
    const r = violations('envoy.config.core.v3.HealthCheck', { timeout: '1s', interval: '1s', unhealthy_threshold: 1, healthy_threshold: 1, http_health_check: { path: '/' , expected_statuses: [] } });
    assert.deepEqual(r, []);
  });
});
