import assert from 'node:assert/strict';
import { request as httpsRequest } from 'node:https';
import { connect as h2connect } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { TempDir } from '../http/helpers';
import { makePki, type TestPki } from '../protocols/helpers';
import { HCM, ROUTER, routeConfig, startEnv, type Env } from './helpers';

/**
 * Filter chain matching on a listener delivered over LDS, with the tls_inspector listener filter: SNI (exact
 * and `*.` wildcard), ALPN and the transport protocol pick the chain; a TLS connection no chain matches is closed.
 */

type Json = Record<string, unknown>;

function chain(name: string, cluster: string, match: Json, tls: TestPki | undefined): Json {
  return {
    name,
    filter_chain_match: match,
    filters: [{ name: 'envoy.filters.network.http_connection_manager', typed_config: { '@type': HCM, stat_prefix: name, route_config: routeConfig(`${name}-routes`, cluster), http_filters: [ROUTER] } }],
    ...(tls ? {
      transport_socket: {
        name: 'envoy.transport_sockets.tls',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext',
          common_tls_context: { tls_certificates: [{ certificate_chain: { inline_string: tls.serverCert }, private_key: { inline_string: tls.serverKey } }], alpn_protocols: ['h2', 'http/1.1'] },
        },
      },
    } : {}),
  };
}

function httpsGet(port: number, servername: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path: '/', servername, ca, agent: false, checkServerIdentity: () => undefined }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

function h2Get(port: number, servername: string, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const session = h2connect(`https://127.0.0.1:${port}`, { servername, ca, checkServerIdentity: () => undefined });
    session.on('error', reject);
    const s = session.request({ ':path': '/' });
    let body = '';
    s.on('data', (c: Buffer) => (body += c.toString()));
    s.on('end', () => {
      session.close();
      resolve(body);
    });
    s.on('error', reject);
    s.end();
  });
}

/** A TLS handshake with `servername`: true if it completes, false if the listener closes the connection. */
function handshakes(port: number, servername: string, ca: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername, ca, checkServerIdentity: () => undefined });
    s.once('secureConnect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
    s.once('close', () => resolve(false));
  });
}

describe('filter chain matching (tls_inspector: SNI, ALPN, transport)', () => {
  const tmp = new TempDir();
  let pki: TestPki;
  let env: Env;
  before(async () => {
    pki = makePki(tmp);
    env = await startEnv((xds) => {
      xds.setListeners([{
        name: 'multi',
        address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
        listener_filters: [{ name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector' } }],
        filter_chains: [
          chain('exact-a', 'app-a', { server_names: ['a.test'], transport_protocol: 'tls' }, pki),
          chain('wild-b', 'app-b', { server_names: ['*.b.test'], transport_protocol: 'tls' }, pki),
          chain('c-h2', 'app-a', { server_names: ['c.test'], application_protocols: ['h2'] }, pki),
          chain('c-any', 'app-b', { server_names: ['c.test'] }, pki),
          chain('plain', 'app-b', { transport_protocol: 'raw_buffer' }, undefined),
        ],
      }]);
    });
  });
  after(async () => {
    await env.close();
    tmp.cleanup();
  });

  it('SNI picks the chain: exact, then the longest wildcard', async () => {
    const port = env.port('multi');
    assert.equal(await httpsGet(port, 'a.test', pki.caCert), 'A -');
    assert.equal(await httpsGet(port, 'x.b.test', pki.caCert), 'B -');
  });

  it('ALPN picks between chains of one server name', async () => {
    const port = env.port('multi');
    assert.equal(await h2Get(port, 'c.test', pki.caCert), 'A -');
    assert.equal(await httpsGet(port, 'c.test', pki.caCert), 'B -');
  });

  it('plaintext goes to the raw_buffer chain; a TLS connection no chain matches is closed', async () => {
    const port = env.port('multi');
    assert.equal(await (await request(`http://127.0.0.1:${port}/`)).body.text(), 'B -');
    assert.equal(await handshakes(port, 'nobody.test', pki.caCert), false);
    assert.equal(await handshakes(port, 'a.test', pki.caCert), true);
  });
});

describe('a tcp_proxy chain beside an HTTP chain', () => {
  let env: Env;
  before(async () => {
    env = await startEnv((xds) => {
      xds.setListeners([{
        name: 'mixed',
        address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
        listener_filters: [{ name: 'envoy.filters.listener.tls_inspector', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector' } }],
        filter_chains: [{
          name: 'tcp',
          filter_chain_match: { transport_protocol: 'raw_buffer' },
          filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy', stat_prefix: 'raw', cluster: 'app-b' } }],
        }],
      }]);
    });
  });
  after(() => env.close());

  it('plaintext connections are proxied at L4 to the chain\'s cluster', async () => {
    const port = env.port('mixed');
    const reply = await new Promise<string>((resolve, reject) => {
      const s = netConnect(port);
      let data = '';
      s.on('data', (c: Buffer) => (data += c.toString()));
      s.on('end', () => resolve(data));
      s.on('error', reject);
      s.write('GET /tcp HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
    });
    assert.match(reply, /^HTTP\/1\.1 200/);
    assert.ok(reply.endsWith('B -'), reply);
  });
});
