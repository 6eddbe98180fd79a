import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { ConfigError } from '../../src/common/errors';
import { loadSidecarConfig } from '../../src/http/listener-config';
import { bootstrapJson, TempDir, Upstream } from '../http/helpers';
import { downstreamTls, makePki, shape, startShapedSidecar, upstreamTls, type Json, type TestPki } from './helpers';

// Key material read for TLS never shows in /config_dump (the admin's redaction), and cluster TLS or protocol
// fields that are not implemented are refused with their path.

const tmp = new TempDir();
let pki: TestPki;
let upstream: Upstream;
const cleanups: Array<() => Promise<void> | void> = [];

before(async () => {
  pki = makePki(tmp);
  upstream = await Upstream.start((_req, res) => res.end('ok'));
});

after(async () => {
  for (const c of cleanups.reverse()) await c();
  await upstream.close();
  tmp.cleanup();
});

test('/config_dump shows no private key: inline in the listener, in a static secret, inline in a cluster', async () => {
  const { sidecar, adminUrl, port } = await startShapedSidecar(tmp, { filters: [], clusters: [{ name: 'app', port: upstream.port }] }, ({ doc, chain, clusters }) => {
    doc['admin'] = { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } };
    doc['static_resources']['secrets'] = [{ name: 'client-cert', tls_certificate: { certificate_chain: { inline_string: pki.clientCert }, private_key: { inline_string: pki.clientKey } } }];
    chain['transport_socket'] = downstreamTls({ tls_certificates: [{ certificate_chain: { inline_string: pki.serverCert }, private_key: { inline_string: pki.serverKey } }] });
    // The upstream is plaintext; this cluster is never used, it only carries a key into the dump.
    clusters.push({
      name: 'tls-app', type: 'STATIC', connect_timeout: '1s',
      load_assignment: { cluster_name: 'tls-app', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 9 } } } }] }] },
      transport_socket: upstreamTls({ tls_certificates: [{ certificate_chain: { inline_string: pki.clientCert }, private_key: { inline_bytes: Buffer.from(pki.clientKey).toString('base64') } }] }),
    });
  });
  cleanups.push(() => sidecar.stop());
  assert.ok(port > 0);
  const dump = await (await fetch(`${adminUrl}/config_dump?include_eds`)).text();
  assert.ok(dump.includes('tls-app'), 'the TLS cluster is in the dump');
  assert.ok(!dump.includes('PRIVATE KEY'), 'no PEM private key');
  for (const key of [pki.clientKey, pki.serverKey]) {
    const body = key.split('\n').filter((l) => l && !l.startsWith('-----')).join('');
    assert.ok(!dump.includes(body.slice(0, 40)), 'no key body');
    assert.ok(!dump.includes(Buffer.from(key).toString('base64').slice(0, 40)), 'no base64 key');
  }
});

function refusedCluster(edit: (c: Json) => void, path: RegExp): void {
  const doc = bootstrapJson({ filters: [], clusters: [{ name: 'app', port: 9 }] }) as Json;
  edit(shape(doc).clusters[0]!);
  const file = tmp.write(`bad-${Math.random().toString(36).slice(2)}.json`, doc);
  assert.throws(() => loadSidecarConfig(file), (err: unknown) => {
    assert.ok(err instanceof ConfigError, String(err));
    assert.match(err.message, path);
    return true;
  });
}

const HPO = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const hpo = (config: Json): Json => ({ [HPO]: { '@type': `type.googleapis.com/${HPO}`, ...config } });

test('cluster TLS and protocol fields that are not implemented are refused with their path', () => {
  refusedCluster((c) => { c['transport_socket_matches'] = [{ name: 'tls', match: {}, transport_socket: upstreamTls({}) }]; }, /transport_socket_matches\[0\]: transport_socket_matches are not supported/);
  refusedCluster((c) => { c['transport_socket'] = upstreamTls({ tls_certificate_sds_secret_configs: [{ name: 'x', sds_config: { ads: {} } }] }); }, /transport_socket\.typed_config\.common_tls_context\.tls_certificate_sds_secret_configs\[0\]\.sds_config: dynamic SDS is not supported/);
  refusedCluster((c) => { c['transport_socket'] = upstreamTls({ validation_context: { trusted_ca: { inline_string: pki.caCert }, match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: 'x' } }] } }); }, /validation_context\.match_typed_subject_alt_names: is not supported/);
  refusedCluster((c) => { c['transport_socket'] = upstreamTls({}, { allow_renegotiation: true }); }, /transport_socket\.typed_config\.allow_renegotiation: is not supported/);
  refusedCluster((c) => { c['typed_extension_protocol_options'] = hpo({ common_http_protocol_options: { idle_timeout: '1s' }, explicit_http_config: { http2_protocol_options: {} } }); }, /HttpProtocolOptions"\]\.common_http_protocol_options: is not supported/);
  refusedCluster((c) => { c['typed_extension_protocol_options'] = hpo({ explicit_http_config: { http3_protocol_options: {} } }); }, /explicit_http_config\.http3_protocol_options: is not supported/);
  refusedCluster((c) => { c['typed_extension_protocol_options'] = hpo({ explicit_http_config: { http2_protocol_options: { hpack_table_size: 100 } } }); }, /http2_protocol_options\.hpack_table_size: is not supported/);
});
