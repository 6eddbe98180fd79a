import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '../../src/common/errors';
import { loadSidecarConfig } from '../../src/http/listener-config';
import { bootstrapJson, TempDir } from '../http/helpers';

/**
 * Listener configuration this data plane does not implement is refused at start with the field's path, never
 * accepted and ignored (a filter chain whose transport socket was dropped would serve plaintext).
 */

type Json = Record<string, any>;

function base(): Json {
  return bootstrapJson({ filters: [], clusters: [{ name: 'app', port: 9 }] });
}

function refused(mutate: (doc: Json) => void, path: RegExp): void {
  const dir = new TempDir();
  try {
    const doc = base();
    mutate(doc);
    const file = dir.write('bootstrap.json', doc);
    assert.throws(() => loadSidecarConfig(file), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.match(err.path, path);
      return true;
    });
  } finally {
    dir.cleanup();
  }
}

const L = 'static_resources.listeners[0]';
const FC = `${L}.filter_chains[0]`;
const HCM = `${FC}.filters[0].typed_config`;
const listener = (doc: Json): Json => doc['static_resources']['listeners'][0];
const chain = (doc: Json): Json => listener(doc)['filter_chains'][0];
const hcm = (doc: Json): Json => chain(doc)['filters'][0]['typed_config'];

test('a TLS transport socket naming certificate files that do not exist is refused at start, never served in plaintext', () => {
  refused((d) => {
    chain(d)['transport_socket'] = {
      name: 'envoy.transport_sockets.tls',
      typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext', common_tls_context: { tls_certificates: [{ certificate_chain: { filename: '/does/not/exist.pem' }, private_key: { filename: '/does/not/exist.key' } }] } },
    };
  }, new RegExp(`^${esc(FC)}\\.transport_socket\\.typed_config\\.common_tls_context\\.tls_certificates\\[0\\]\\.certificate_chain\\.filename$`));
});

test('listener filters, use_original_dst and filter chain criteria that are not implemented are refused with their path', () => {
  // tls_inspector and destination_port/server_names/ALPN matching are implemented (src/listener); these are not.
  refused((d) => { listener(d)['listener_filters'] = [{ name: 'envoy.filters.listener.original_dst', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst' } }]; }, new RegExp(`^${esc(L)}\\.listener_filters\\[0\\]\\.typed_config\\.@type$`));
  refused((d) => { listener(d)['use_original_dst'] = true; }, new RegExp(`^${esc(L)}\\.use_original_dst$`));
  refused((d) => { chain(d)['filter_chain_match'] = { prefix_ranges: [{ address_prefix: '10.0.0.0', prefix_len: 8 }] }; }, new RegExp(`^${esc(FC)}\\.filter_chain_match\\.prefix_ranges$`));
});

test('HCM fields that are not implemented are refused with their path', () => {
  refused((d) => { hcm(d)['use_remote_address'] = true; }, new RegExp(`^${esc(HCM)}\\.use_remote_address$`));
  refused((d) => { hcm(d)['http_protocol_options'] = { accept_http_10: true }; }, new RegExp(`^${esc(HCM)}\\.http_protocol_options$`));
  refused((d) => { hcm(d)['codec_type'] = 'HTTP3'; }, new RegExp(`^${esc(HCM)}\\.codec_type$`));
});

test('an http filter field that is not implemented (disabled) is refused', () => {
  refused((d) => { hcm(d)['http_filters'][0]['disabled'] = true; }, new RegExp(`^${esc(HCM)}\\.http_filters\\[0\\]\\.disabled$`));
});

function esc(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
