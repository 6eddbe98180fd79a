import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { connect as h2connect, createSecureServer, createServer as createH2Server, type Http2ServerRequest, type Http2ServerResponse, type IncomingHttpHeaders } from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { after, before, describe, test } from 'node:test';
import { TempDir } from '../http/helpers';
import { makePki, startShapedSidecar, upstreamTls, type Json, type TestPki } from './helpers';
import { REFUSED_PORT } from '../support/ports';

// Upstream protocols: HttpProtocolOptions (explicit HTTP/2 in cleartext, use_downstream_protocol_config,
// auto_config with ALPN), the legacy http2_protocol_options, and UpstreamTlsContext (SNI, trusted CA, client
// certificate). Each upstream is a real node:http / node:http2 server that records what it saw.

interface Seen {
  readonly httpVersion: string;
  readonly alpn: string | false | null | undefined;
  readonly servername: string | undefined;
  readonly peerSubject: string | undefined;
  readonly te: string | undefined;
}

class RecordingUpstream {
  readonly seen: Seen[] = [];
  constructor(private readonly server: { close(cb?: () => void): unknown; address(): AddressInfo | string | null }, private readonly closeAll: () => void) {}

  static handler(up: () => RecordingUpstream) {
    return (req: IncomingMessage | Http2ServerRequest, res: ServerResponse | Http2ServerResponse) => {
      const socket = req.socket as TLSSocket;
      const peer = typeof socket.getPeerCertificate === 'function' ? socket.getPeerCertificate() : undefined;
      up().seen.push({
        httpVersion: req.httpVersion,
        alpn: socket.alpnProtocol,
        servername: (socket as TLSSocket & { servername?: string }).servername,
        peerSubject: peer && peer.subject ? peer.subject.CN : undefined,
        te: req.headers['te'] as string | undefined,
      });
      req.resume();
      req.on('end', () => {
        res.setHeader('content-type', 'text/plain');
        if (req.httpVersion === '2.0') (res as Http2ServerResponse).addTrailers({ 'x-upstream-trailer': 'from-h2' });
        res.end(`hello over ${req.httpVersion}`);
      });
    };
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    this.closeAll();
    return new Promise((r) => this.server.close(() => r()));
  }
}

async function h2cUpstream(): Promise<RecordingUpstream> {
  let up!: RecordingUpstream;
  const server = createH2Server();
  const sessions = new Set<import('node:http2').Http2Session>();
  server.on('session', (s) => { sessions.add(s); s.on('close', () => sessions.delete(s)); });
  server.on('request', RecordingUpstream.handler(() => up));
  up = new RecordingUpstream(server, () => { for (const s of sessions) s.destroy(); });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return up;
}

async function h1Upstream(): Promise<RecordingUpstream> {
  let up!: RecordingUpstream;
  const server = createHttpServer(RecordingUpstream.handler(() => up));
  up = new RecordingUpstream(server, () => server.closeAllConnections());
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return up;
}

async function tlsUpstream(pki: TestPki, requireClientCert: boolean): Promise<RecordingUpstream> {
  let up!: RecordingUpstream;
  const server = createSecureServer({ cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert, allowHTTP1: true, requestCert: requireClientCert, rejectUnauthorized: requireClientCert });
  const sockets = new Set<import('node:net').Socket>();
  server.on('secureConnection', (s) => { sockets.add(s); s.on('close', () => sockets.delete(s)); });
  server.on('request', RecordingUpstream.handler(() => up));
  up = new RecordingUpstream(server, () => { for (const s of sockets) s.destroy(); });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return up;
}

const HPO_KEY = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
function hpo(config: Json): Json {
  return { [HPO_KEY]: { '@type': `type.googleapis.com/${HPO_KEY}`, ...config } };
}

const tmp = new TempDir();
let pki: TestPki;
const cleanups: Array<() => Promise<void> | void> = [];

before(() => {
  pki = makePki(tmp);
});

after(async () => {
  for (const c of cleanups.reverse()) await c();
  tmp.cleanup();
});

async function sidecarTo(up: RecordingUpstream, cluster: (c: Json) => void): Promise<number> {
  const { sidecar, port } = await startShapedSidecar(tmp, { filters: [], clusters: [{ name: 'app', port: up.port }] }, ({ clusters }) => cluster(clusters[0]!));
  cleanups.push(() => sidecar.stop());
  cleanups.push(() => up.close());
  return port;
}

function h2Request(port: number, path: string, headers: Json = {}): Promise<{ headers: IncomingHttpHeaders; trailers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const session = h2connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const req = session.request({ ':path': path, ...headers });
    let body = '';
    let h: IncomingHttpHeaders = {};
    let t: IncomingHttpHeaders = {};
    req.setEncoding('utf8');
    req.on('response', (x) => { h = x; });
    req.on('trailers', (x) => { t = x; });
    req.on('data', (d: string) => { body += d; });
    req.on('end', () => { session.close(); resolve({ headers: h, trailers: t, body }); });
    req.on('error', reject);
    req.end();
  });
}

describe('HTTP/2 to the upstream', () => {
  test('explicit_http_config http2_protocol_options: h2c prior knowledge; the upstream trailers reach an HTTP/2 client', async () => {
    const up = await h2cUpstream();
    const port = await sidecarTo(up, (c) => { c['typed_extension_protocol_options'] = hpo({ explicit_http_config: { http2_protocol_options: {} } }); });
    const r = await h2Request(port, '/explicit', { te: 'trailers' });
    assert.equal(r.headers[':status'], 200);
    assert.equal(r.body, 'hello over 2.0');
    assert.equal(r.trailers['x-upstream-trailer'], 'from-h2');
    assert.equal(up.seen[0]?.httpVersion, '2.0');
    assert.equal(up.seen[0]?.te, 'trailers', 'te: trailers is forwarded');
    // An HTTP/1.1 client to the same cluster: the upstream still speaks HTTP/2.
    const res = await fetch(`http://127.0.0.1:${port}/from-h1`);
    assert.equal(await res.text(), 'hello over 2.0');
  });

  test('request trailers from an HTTP/2 client reach an HTTP/2 upstream', async () => {
    let up!: RecordingUpstream;
    const got: { body: string; trailers: Record<string, unknown> }[] = [];
    const server = createH2Server();
    server.on('request', (req: Http2ServerRequest, res: Http2ServerResponse) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => { body += d; });
      req.on('end', () => {
        got.push({ body, trailers: { ...req.trailers } });
        res.end('got it');
      });
    });
    const sessions = new Set<import('node:http2').Http2Session>();
    server.on('session', (s) => { sessions.add(s); s.on('close', () => sessions.delete(s)); });
    up = new RecordingUpstream(server, () => { for (const s of sessions) s.destroy(); });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = await sidecarTo(up, (c) => { c['typed_extension_protocol_options'] = hpo({ explicit_http_config: { http2_protocol_options: {} } }); });
    const answer = await new Promise<string>((resolve, reject) => {
      const session = h2connect(`http://127.0.0.1:${port}`);
      session.on('error', reject);
      const req = session.request({ ':path': '/with-trailers', ':method': 'POST' }, { waitForTrailers: true });
      req.on('wantTrailers', () => req.sendTrailers({ 'x-checksum': 'abc123' }));
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => { body += d; });
      req.on('end', () => { session.close(); resolve(body); });
      req.on('error', reject);
      req.write('part one, ');
      req.end('part two');
    });
    assert.equal(answer, 'got it');
    assert.equal(got[0]?.body, 'part one, part two');
    assert.equal(got[0]?.trailers['x-checksum'], 'abc123');
  });

  test('explicit HTTP/2 to a port nobody listens on: 503, a connect failure (UF), as over HTTP/1.1', async () => {
    const { sidecar, port } = await startShapedSidecar(tmp, { filters: [], clusters: [{ name: 'app', port: REFUSED_PORT }] }, ({ clusters }) => {
      clusters[0]!['typed_extension_protocol_options'] = hpo({ explicit_http_config: { http2_protocol_options: {} } });
    });
    cleanups.push(() => sidecar.stop());
    for (let i = 0; i < 12; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/dead`);
      assert.equal(res.status, 503);
      assert.equal(await res.text(), 'upstream connect error or disconnect/reset before headers. reset reason: connection failure');
    }
  });

  test('the legacy Cluster.http2_protocol_options', async () => {
    const up = await h2cUpstream();
    const port = await sidecarTo(up, (c) => { c['http2_protocol_options'] = { max_concurrent_streams: 50 }; });
    const res = await fetch(`http://127.0.0.1:${port}/legacy`);
    assert.equal(await res.text(), 'hello over 2.0');
  });

  test('use_downstream_protocol_config: HTTP/2 downstream goes HTTP/2 upstream, HTTP/1.1 goes HTTP/1.1', async () => {
    // An upstream that serves both: node:http2 with allowHTTP1 needs TLS, so two servers behind one cluster
    // would be chosen by round robin; instead one h1 and one h2c cluster host are checked separately.
    const h2 = await h2cUpstream();
    const port2 = await sidecarTo(h2, (c) => { c['typed_extension_protocol_options'] = hpo({ use_downstream_protocol_config: { http2_protocol_options: {} } }); });
    const r = await h2Request(port2, '/down-h2');
    assert.equal(r.body, 'hello over 2.0');
    const h1 = await h1Upstream();
    const port1 = await sidecarTo(h1, (c) => { c['typed_extension_protocol_options'] = hpo({ use_downstream_protocol_config: { http2_protocol_options: {} } }); });
    const res = await fetch(`http://127.0.0.1:${port1}/down-h1`);
    assert.equal(await res.text(), 'hello over 1.1');
  });
});

describe('TLS to the upstream (UpstreamTlsContext)', () => {
  test('SNI, the trusted CA and a client certificate; auto_config negotiates h2 by ALPN', async () => {
    const up = await tlsUpstream(pki, true);
    const port = await sidecarTo(up, (c) => {
      c['transport_socket'] = upstreamTls({
        tls_certificates: [{ certificate_chain: { inline_string: pki.clientCert }, private_key: { filename: pki.files.clientKey } }],
        validation_context: { trusted_ca: { filename: pki.files.ca } },
      }, { sni: 'server.test' });
      c['typed_extension_protocol_options'] = hpo({ auto_config: {} });
    });
    const r = await h2Request(port, '/tls');
    assert.equal(r.headers[':status'], 200);
    assert.equal(r.body, 'hello over 2.0');
    assert.equal(r.trailers['x-upstream-trailer'], 'from-h2', 'trailers travel when ALPN chose h2');
    assert.equal(up.seen[0]?.alpn, 'h2');
    assert.equal(up.seen[0]?.servername, 'server.test');
    assert.equal(up.seen[0]?.peerSubject, 'client', 'the cluster presented its client certificate');
  });

  test('auto_config to a TLS server without h2: ALPN chooses http/1.1', async () => {
    let up!: RecordingUpstream;
    const server = createHttpsServer({ cert: pki.serverCert, key: pki.serverKey, ALPNProtocols: ['http/1.1'] }, RecordingUpstream.handler(() => up));
    up = new RecordingUpstream(server, () => server.closeAllConnections());
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = await sidecarTo(up, (c) => {
      c['transport_socket'] = upstreamTls({ validation_context: { trusted_ca: { inline_string: pki.caCert } } });
      c['typed_extension_protocol_options'] = hpo({ auto_config: {} });
    });
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/alpn-h1`);
      assert.equal(await res.text(), 'hello over 1.1');
    }
    assert.equal(up.seen.length, 2);
  });

  test('without protocol options: HTTP/1.1 over TLS', async () => {
    const up = await tlsUpstream(pki, false);
    const port = await sidecarTo(up, (c) => {
      c['transport_socket'] = upstreamTls({ validation_context: { trusted_ca: { inline_string: pki.caCert } } });
    });
    const res = await fetch(`http://127.0.0.1:${port}/tls-h1`);
    assert.equal(await res.text(), 'hello over 1.1');
    assert.equal(up.seen[0]?.alpn, 'http/1.1');
  });

  test('a server certificate the trusted CA did not sign: 503, a connect failure (UF), never plaintext', async () => {
    const up = await tlsUpstream(pki, false);
    const port = await sidecarTo(up, (c) => {
      // The "other" CA is not the server's issuer.
      c['transport_socket'] = upstreamTls({ validation_context: { trusted_ca: { inline_string: pki.otherClientCert } } });
    });
    const res = await fetch(`http://127.0.0.1:${port}/bad-ca`);
    assert.equal(res.status, 503);
    assert.match(await res.text(), /^upstream connect error or disconnect\/reset before headers\. reset reason: connection failure/);
    assert.equal(up.seen.length, 0, 'no request reached the upstream');
  });
});
