import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { after, before, test } from 'node:test';
import { TempDir, Upstream } from '../http/helpers';
import { makePki, startShapedSidecar, upstreamTls, type TestPki } from './helpers';

// proxy_grpc_call to a cluster with an UpstreamTlsContext: the callout channel is TLS with the cluster's
// trusted CA, SNI and client certificate (the grpc-js server requires and checks it). The WAT plugin
// grpc-callout answers "<status>|<initial metadata>|<reply or status message>".

const tmp = new TempDir();
let pki: TestPki;
let server: grpc.Server;
let up: Upstream;
let grpcPort = 0;
let peerSeen = '';
const cleanups: Array<() => Promise<void> | void> = [];

before(async () => {
  pki = makePki(tmp);
  server = new grpc.Server();
  const identity = (b: Buffer): Buffer => b;
  server.register<Buffer, Buffer>('/test.Echo/Say', (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
    peerSeen = call.getAuthContext?.()?.sslPeerCertificate?.subject?.CN ?? '';
    const md = new grpc.Metadata();
    md.set('x-server-md', 'over-tls');
    call.sendMetadata(md);
    callback(null, Buffer.from(`pong:${call.request.toString()}`));
  }, identity, identity, 'unary');
  const creds = grpc.ServerCredentials.createSsl(Buffer.from(pki.caCert), [{ private_key: Buffer.from(pki.serverKey), cert_chain: Buffer.from(pki.serverCert) }], true);
  grpcPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
  up = await Upstream.start();
});

after(async () => {
  for (const c of cleanups.reverse()) await c();
  await up.close();
  server.forceShutdown();
  tmp.cleanup();
});

async function sidecarWith(trustedCa: string): Promise<number> {
  const { sidecar, port } = await startShapedSidecar(tmp, {
    filters: [{ plugin: 'grpc-callout', name: 'grpc', rootId: '' }],
    clusters: [{ name: 'backend', port: up.port }, { name: 'grpc-backend', port: grpcPort }],
  }, ({ clusters }) => {
    clusters[1]!['transport_socket'] = upstreamTls({
      tls_certificates: [{ certificate_chain: { inline_string: pki.clientCert }, private_key: { inline_string: pki.clientKey } }],
      validation_context: { trusted_ca: { inline_string: trustedCa } },
    }, { sni: 'server.test' });
  });
  cleanups.push(() => sidecar.stop());
  return port;
}

test('a unary callout over TLS with a client certificate: the reply, the metadata, the server saw the client', async () => {
  const port = await sidecarWith(pki.caCert);
  const res = await fetch(`http://127.0.0.1:${port}/`);
  assert.equal(res.status, 200);
  assert.equal(await res.text(), '00|over-tls|pong:ping');
  assert.equal(peerSeen, 'client');
});

test('a server certificate the trusted CA did not sign: the callout closes UNAVAILABLE, never in plaintext', async () => {
  const port = await sidecarWith(pki.otherClientCert);
  const res = await fetch(`http://127.0.0.1:${port}/`);
  assert.match(await res.text(), /^14\|\|/);
});
