import assert from 'node:assert/strict';
import { once } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { connect as h2connect, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { ConfigError } from '../../src/common/errors';
import { loadSidecarConfig } from '../../src/http/listener-config';
import type { Sidecar } from '../../src/main';
import { bootstrapJson, TempDir, Upstream } from '../http/helpers';
import { downstreamTls, hex, makePki, shape, startShapedSidecar, type Json, type TestPki } from './helpers';

// TLS on listeners (DownstreamTlsContext): certificates inline, from files and from static secrets; ALPN h2 and
// http/1.1; client certificates. Clients are real (node:tls, node:https, node:http2) and check what they see
// (the negotiated protocol, the TLS version); the Higress SDK plugin go/host-attrs reports the attributes the
// plugin saw, hex-encoded, as response headers x-req-<i>.

const PROPS = [
  ['request', 'protocol'], // 0
  ['connection', 'tls_version'], // 1
  ['connection', 'requested_server_name'], // 2
  ['connection', 'mtls'], // 3
  ['connection', 'subject_peer_certificate'], // 4
  ['connection', 'sha256_peer_certificate_digest'], // 5
  ['connection', 'uri_san_peer_certificate'], // 6
  ['connection', 'dns_san_peer_certificate'], // 7
  ['connection', 'subject_local_certificate'], // 8
  ['request', 'scheme'], // 9
];
const CONFIG = JSON.stringify({ properties: PROPS });
const NOT_FOUND = '!error status returned by host: not found';
const TRUE = '01';
const FALSE = '00';

const tmp = new TempDir();
let pki: TestPki;
let upstream: Upstream;
const cleanups: Array<() => Promise<void> | void> = [];

before(async () => {
  pki = makePki(tmp);
  upstream = await Upstream.start((req, res) => {
    res.setHeader('x-upstream-saw-proto', String(req.headers['x-forwarded-proto']));
    res.end('ok');
  });
  cleanups.push(() => upstream.close());
});

after(async () => {
  for (const c of cleanups.reverse()) await c();
  tmp.cleanup();
});

function spec() {
  return { filters: [{ plugin: 'go/host-attrs', name: 'attrs', rootId: '', configuration: CONFIG }], clusters: [{ name: 'app', port: upstream.port }] };
}

async function start(edit: (s: ReturnType<typeof shape>) => void): Promise<{ sidecar: Sidecar; port: number }> {
  const started = await startShapedSidecar(tmp, spec(), edit);
  cleanups.push(() => started.sidecar.stop());
  return started;
}

function h2Get(session: ClientHttp2Session, path: string): Promise<{ headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':path': path });
    let body = '';
    let headers: IncomingHttpHeaders = {};
    req.setEncoding('utf8');
    req.on('response', (h) => { headers = h; });
    req.on('data', (d: string) => { body += d; });
    req.on('end', () => resolve({ headers, body }));
    req.on('error', reject);
    req.end();
  });
}

function h(headers: IncomingHttpHeaders, name: string): string {
  return String(headers[name] ?? '');
}

describe('TLS listener, certificates inline, ALPN h2 and http/1.1', () => {
  let port = 0;
  let sidecar: Sidecar;
  before(async () => {
    ({ port, sidecar } = await start(({ chain }) => {
      chain['transport_socket'] = downstreamTls({
        tls_certificates: [{ certificate_chain: { inline_string: pki.serverCert }, private_key: { inline_bytes: Buffer.from(pki.serverKey).toString('base64') } }],
        alpn_protocols: ['h2', 'http/1.1'],
      });
    }));
  });

  test('an HTTP/2 client negotiates h2 and TLSv1.3; the plugin sees HTTP/2, the TLS version and the SNI', async () => {
    const session = h2connect(`https://127.0.0.1:${port}`, { ca: pki.caCert, servername: 'server.test' });
    try {
      await new Promise<void>((resolve, reject) => { session.once('connect', () => resolve()); session.once('error', reject); });
      assert.equal(session.alpnProtocol, 'h2');
      assert.equal((session.socket as TLSSocket).getProtocol(), 'TLSv1.3');
      const r = await h2Get(session, '/tls');
      assert.equal(r.headers[':status'], 200);
      assert.equal(r.body, 'ok');
      assert.equal(h(r.headers, 'x-req-0'), hex('HTTP/2'));
      assert.equal(h(r.headers, 'x-req-1'), hex('TLSv1.3'));
      assert.equal(h(r.headers, 'x-req-2'), hex('server.test'));
      assert.equal(h(r.headers, 'x-req-3'), FALSE, 'no client certificate: not mTLS');
      assert.equal(h(r.headers, 'x-req-4'), NOT_FOUND, 'no peer certificate');
      assert.equal(h(r.headers, 'x-req-8'), hex('CN=server.test,O=Test'), 'the local certificate subject, RFC 2253');
      assert.equal(h(r.headers, 'x-req-9'), hex('https'));
      assert.equal(h(r.headers, 'x-upstream-saw-proto'), 'https', 'x-forwarded-proto');
    } finally {
      session.close();
    }
  });

  test('an HTTP/1.1 client negotiates http/1.1 on the same port', async () => {
    const r = await new Promise<{ alpn: string | false | null; headers: Json; body: string }>((resolve, reject) => {
      const options: RequestOptions & ConnectionOptions = { host: '127.0.0.1', port, path: '/h1', ca: pki.caCert, servername: 'server.test', ALPNProtocols: ['http/1.1'], agent: false };
      const req = httpsRequest(options, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => { body += d; });
        res.on('end', () => resolve({ alpn: (res.socket as TLSSocket).alpnProtocol, headers: res.headers, body }));
      });
      req.on('error', reject);
      req.end();
    });
    assert.equal(r.alpn, 'http/1.1');
    assert.equal(r.body, 'ok');
    assert.equal(r.headers['x-req-0'], hex('HTTP/1.1'));
    assert.equal(r.headers['x-req-1'], hex('TLSv1.3'));
  });

  test('a plaintext client gets no HTTP service from a TLS port', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/plain`).then(() => 'answered', () => 'failed');
    assert.equal(res, 'failed');
    const s = sidecar.listeners[0] as unknown as { protocolStats?: { snapshot(): Record<string, number> } };
    const stats = s.protocolStats?.snapshot() ?? {};
    assert.ok((stats[`listener.127.0.0.1_${port}.ssl.connection_error`] ?? 0) >= 1, JSON.stringify(stats));
    assert.ok((stats[`listener.127.0.0.1_${port}.ssl.handshake`] ?? 0) >= 2, JSON.stringify(stats));
    assert.ok((stats['http.ingress_http.downstream_cx_http2_total'] ?? 0) >= 1, JSON.stringify(stats));
    assert.ok((stats['http.ingress_http.downstream_cx_ssl_total'] ?? 0) >= 2, JSON.stringify(stats));
  });
});

describe('TLS without ALPN, codec AUTO', () => {
  test('HTTP/1.1 and HTTP/2 prior knowledge are told apart by the first bytes, as in cleartext', async () => {
    const { port } = await start(({ chain }) => {
      chain['transport_socket'] = downstreamTls({ tls_certificates: [{ certificate_chain: { inline_string: pki.serverCert }, private_key: { inline_string: pki.serverKey } }] });
    });
    const socket = tlsConnect({ host: '127.0.0.1', port, ca: pki.caCert, servername: 'server.test' });
    await once(socket, 'secureConnect');
    assert.equal(socket.alpnProtocol, false, 'no ALPN was negotiated');
    // node:http2's client speaks over any connected duplex it is given; it is told the socket is h2.
    (socket as TLSSocket & { alpnProtocol: string | false | null }).alpnProtocol = 'h2';
    const session = h2connect(`https://127.0.0.1:${port}`, { createConnection: () => socket });
    try {
      const r = await h2Get(session, '/prior-knowledge-over-tls');
      assert.equal(r.headers[':status'], 200);
      assert.equal(h(r.headers, 'x-req-0'), hex('HTTP/2'));
      assert.equal(h(r.headers, 'x-req-1'), hex('TLSv1.3'));
    } finally {
      session.close();
    }
    const r1 = await new Promise<Json>((resolve, reject) => {
      const options: RequestOptions & ConnectionOptions = { host: '127.0.0.1', port, path: '/h1-no-alpn', ca: pki.caCert, servername: 'server.test', agent: false };
      const req = httpsRequest(options, (res) => { res.resume(); res.on('end', () => resolve(res.headers)); });
      req.on('error', reject);
      req.end();
    });
    assert.equal(r1['x-req-0'], hex('HTTP/1.1'));
  });
});

describe('mTLS: certificates from static secrets and files, require_client_certificate', () => {
  let port = 0;
  before(async () => {
    ({ port } = await start(({ doc, chain }) => {
      doc['static_resources']['secrets'] = [
        { name: 'server-cert', tls_certificate: { certificate_chain: { filename: pki.files.serverCert }, private_key: { filename: pki.files.serverKey } } },
        { name: 'trust', validation_context: { trusted_ca: { filename: pki.files.ca } } },
      ];
      chain['transport_socket'] = downstreamTls({
        tls_certificate_sds_secret_configs: [{ name: 'server-cert' }],
        validation_context_sds_secret_config: { name: 'trust' },
        alpn_protocols: ['h2'],
      }, { require_client_certificate: true });
    }));
  });

  test('a client certificate signed by the trusted CA: the plugin sees mtls, the subject, the digest and the SANs', async () => {
    const session = h2connect(`https://127.0.0.1:${port}`, { ca: pki.caCert, servername: 'server.test', cert: pki.clientCert, key: pki.clientKey });
    try {
      const r = await h2Get(session, '/mtls');
      assert.equal(r.headers[':status'], 200);
      assert.equal(h(r.headers, 'x-req-3'), TRUE);
      assert.equal(h(r.headers, 'x-req-4'), hex('CN=client,O=Test,C=US'));
      const digest = new X509Certificate(pki.clientCert).fingerprint256.replace(/:/g, '').toLowerCase();
      assert.equal(h(r.headers, 'x-req-5'), hex(digest));
      assert.equal(h(r.headers, 'x-req-6'), hex('spiffe://cluster.local/ns/default/sa/client'));
      assert.equal(h(r.headers, 'x-req-7'), hex('client.test'));
    } finally {
      session.close();
    }
  });

  async function handshake(options: { cert?: string; key?: string }): Promise<'connected' | 'refused'> {
    return new Promise((resolve) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, ca: pki.caCert, servername: 'server.test', ALPNProtocols: ['h2'], ...options });
      // TLSv1.3: the server's verdict on the client certificate arrives after the client's handshake is done.
      socket.on('secureConnect', () => {
        socket.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
        socket.once('data', () => { socket.destroy(); resolve('connected'); });
      });
      socket.on('error', () => resolve('refused'));
      socket.on('close', () => resolve('refused'));
    });
  }

  test('no client certificate, or one from another CA: the handshake fails', async () => {
    assert.equal(await handshake({}), 'refused');
    assert.equal(await handshake({ cert: pki.otherClientCert, key: pki.otherClientKey }), 'refused');
    assert.equal(await handshake({ cert: pki.clientCert, key: pki.clientKey }), 'connected');
  });
});

describe('HTTP/2 cleartext (prior knowledge)', () => {
  test('codec_type AUTO: an h2 client and an HTTP/1.1 client on the same port', async () => {
    const { port } = await start(() => undefined);
    const session = h2connect(`http://127.0.0.1:${port}`);
    try {
      const r = await h2Get(session, '/h2c');
      assert.equal(r.headers[':status'], 200);
      assert.equal(r.body, 'ok');
      assert.equal(h(r.headers, 'x-req-0'), hex('HTTP/2'));
      assert.equal(h(r.headers, 'x-req-1'), NOT_FOUND, 'no TLS: no tls_version');
      assert.equal(h(r.headers, 'x-req-3'), FALSE);
      assert.equal(h(r.headers, 'x-req-9'), hex('http'));
    } finally {
      session.close();
    }
    const res = await fetch(`http://127.0.0.1:${port}/h1`);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-req-0'), hex('HTTP/1.1'));
    assert.equal(await res.text(), 'ok');
  });

  test('HTTP/2 request bodies stream to an HTTP/1.1 upstream; a local reply ends only its own stream', async () => {
    const echo = await Upstream.start((req, res, body) => res.end(`${req.method} ${req.headers['transfer-encoding'] ?? req.headers['content-length']} ${body}`));
    cleanups.push(() => echo.close());
    const { sidecar } = await startShapedSidecar(tmp, {
      filters: [{ plugin: 'go/host-attrs', name: 'attrs', rootId: '', configuration: JSON.stringify({ properties: [], deny_header: 'x-deny' }) }],
      clusters: [{ name: 'app', port: echo.port }],
    }, () => undefined);
    cleanups.push(() => sidecar.stop());
    const session = h2connect(`http://127.0.0.1:${sidecar.publicListeners[0]!.port}`);
    try {
      const post = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = session.request({ ':path': '/upload', ':method': 'POST' });
        let body = '';
        let status = 0;
        req.setEncoding('utf8');
        req.on('response', (h) => { status = Number(h[':status']); });
        req.on('data', (d: string) => { body += d; });
        req.on('end', () => resolve({ status, body }));
        req.on('error', reject);
        req.write('one,');
        req.write('two,');
        req.end('three');
      });
      assert.equal(post.status, 200);
      // Chunks that arrive in one turn go out with a content-length (the router's rule), later ones chunked.
      assert.match(post.body, /^POST (chunked|13) one,two,three$/);
      const denied = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = session.request({ ':path': '/x', 'x-deny': '1' });
        let body = '';
        let status = 0;
        req.setEncoding('utf8');
        req.on('response', (h) => { status = Number(h[':status']); });
        req.on('data', (d: string) => { body += d; });
        req.on('end', () => resolve({ status, body }));
        req.on('error', reject);
        req.end();
      });
      assert.equal(denied.status, 403);
      assert.equal(denied.body, 'denied');
      // The same connection serves the next stream.
      const again = await h2Get(session, '/after');
      assert.equal(again.headers[':status'], 200);
      // Cookie crumbs (several cookie headers) reach an HTTP/1.1 upstream as one header joined with "; ".
      await new Promise<void>((resolve, reject) => {
        const req = session.request({ ':path': '/cookies', cookie: ['a=1', 'b=2'] });
        req.resume();
        req.on('end', () => resolve());
        req.on('error', reject);
        req.end();
      });
      assert.equal(echo.requests.at(-1)?.headers['cookie'], 'a=1; b=2');
    } finally {
      session.close();
    }
  });

  test('codec_type HTTP2: prior knowledge only', async () => {
    const { port } = await start(({ hcm }) => { hcm['codec_type'] = 'HTTP2'; });
    const session = h2connect(`http://127.0.0.1:${port}`);
    try {
      const r = await h2Get(session, '/only-h2');
      assert.equal(h(r.headers, 'x-req-0'), hex('HTTP/2'));
    } finally {
      session.close();
    }
  });
});

describe('TLS configuration errors name the field', () => {
  function refused(edit: (doc: Json) => void, path: string): void {
    const doc = bootstrapJson({ filters: [], clusters: [{ name: 'app', port: 9 }] }) as Json;
    edit(doc);
    const file = tmp.write(`bad-${Math.random().toString(36).slice(2)}.json`, doc);
    assert.throws(() => loadSidecarConfig(file), (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.equal(err.path, path);
      assert.ok(!err.message.includes('PRIVATE KEY'), 'no key material in the error');
      return true;
    });
  }
  const TS = 'static_resources.listeners[0].filter_chains[0].transport_socket';
  const cert = () => ({ certificate_chain: { inline_string: pki.serverCert }, private_key: { inline_string: pki.serverKey } });

  test('a certificate file that does not exist', () => {
    refused((d) => { shape(d).chain['transport_socket'] = downstreamTls({ tls_certificates: [{ certificate_chain: { filename: '/does/not/exist.pem' }, private_key: { inline_string: pki.serverKey } }] }); },
      `${TS}.typed_config.common_tls_context.tls_certificates[0].certificate_chain.filename`);
  });
  test('a secret name that no static secret has', () => {
    refused((d) => { shape(d).chain['transport_socket'] = downstreamTls({ tls_certificate_sds_secret_configs: [{ name: 'missing' }] }); },
      `${TS}.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].name`);
  });
  test('validation fields that are not implemented (match_typed_subject_alt_names)', () => {
    refused((d) => { shape(d).chain['transport_socket'] = downstreamTls({ tls_certificates: [cert()], validation_context: { trusted_ca: { inline_string: pki.caCert }, match_typed_subject_alt_names: [{ san_type: 'DNS', matcher: { exact: 'x' } }] } }); },
      `${TS}.typed_config.common_tls_context.validation_context.match_typed_subject_alt_names`);
  });
  test('DownstreamTlsContext fields that are not implemented (session_ticket_keys)', () => {
    refused((d) => { shape(d).chain['transport_socket'] = downstreamTls({ tls_certificates: [cert()] }, { session_ticket_keys: { keys: [{ inline_bytes: Buffer.alloc(80).toString('base64') }] } }); },
      `${TS}.typed_config.session_ticket_keys`);
  });
  test('a transport socket that is not TLS', () => {
    refused((d) => { shape(d).chain['transport_socket'] = { name: 'envoy.transport_sockets.alts', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.transport_sockets.alts.v3.Alts', handshaker_service: 'x' } }; },
      `${TS}.typed_config.@type`);
  });
});
