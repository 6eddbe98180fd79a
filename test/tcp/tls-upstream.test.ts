import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as tlsConnect, createServer, type TLSSocket } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { TcpProxyChain } from '../../src/tcp/tcp-proxy-chain';
import { TempDir } from '../http/helpers';
import { makePki, upstreamTls } from '../protocols/helpers';
import { until } from '../support/until';
import { buildTcpListener, readAll, readBytes, TestProxy, TestUpstream } from './helpers';

test("a cluster's UpstreamTlsContext: the tcp_proxy speaks TLS upstream (SNI, trusted CA, client certificate), plaintext downstream", async () => {
  const tmp = new TempDir();
  const pki = makePki(tmp);
  const seen: Array<{ sni: string | false; peer: string }> = [];
  const server = createServer({ cert: pki.serverCert, key: pki.serverKey, ca: pki.caCert, requestCert: true, rejectUnauthorized: true }, (s: TLSSocket) => {
    seen.push({ sni: (s as TLSSocket & { servername?: string | false }).servername ?? false, peer: String(s.getPeerCertificate().subject?.CN ?? '') });
    s.on('data', (d: Buffer) => s.write(Buffer.concat([Buffer.from('tls:'), d])));
    s.on('error', () => {});
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const proxy = await TestProxy.start({
    upstreamPort: (server.address() as AddressInfo).port,
    filters: [{ plugin: 'tcp-probe', name: 'probe', rootId: 'tcp_probe' }],
    cluster: {
      transport_socket: upstreamTls({
        validation_context: { trusted_ca: { inline_string: pki.caCert } },
        tls_certificates: [{ certificate_chain: { inline_string: pki.clientCert }, private_key: { inline_string: pki.clientKey } }],
      }, { sni: 'server.test' }),
    },
  });
  try {
    const c = await proxy.connect();
    c.write('secret');
    assert.equal((await readBytes(c, 10)).toString(), 'tls:secret');
    assert.deepEqual(seen, [{ sni: 'server.test', peer: 'client' }]);
    c.destroy();
  } finally {
    await proxy.close();
    server.close();
  }
  // A server the trusted CA did not sign: the connect fails, the client is closed, nothing goes in plaintext.
  const other = createServer({ cert: pki.otherClientCert, key: pki.otherClientKey }, () => assert.fail('no handshake may complete'));
  other.listen(0, '127.0.0.1');
  await once(other, 'listening');
  const refusing = await TestProxy.start({
    upstreamPort: (other.address() as AddressInfo).port,
    cluster: { transport_socket: upstreamTls({ validation_context: { trusted_ca: { inline_string: pki.caCert } } }) },
  });
  try {
    const c = await refusing.connect();
    c.write('secret');
    assert.equal((await readAll(c)).length, 0);
    assert.equal(refusing.counter('cluster.backend.upstream_cx_connect_fail'), 1);
  } finally {
    await refusing.close();
    other.close();
    tmp.cleanup();
  }
});

test('a chain handed TLS-terminated connections (a multi-chain listener): plaintext upstream, connection.tls_version for the plugin', async () => {
  const tmp = new TempDir();
  const pki = makePki(tmp);
  const up = await TestUpstream.start({ echo: true });
  const probeLogs: string[] = [];
  const logged = pino({ level: 'info' }, new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n')) if (line) probeLogs.push(String((JSON.parse(line) as { msg?: string }).msg ?? ''));
      cb();
    },
  }));
  const built = await buildTcpListener({ upstreamPort: up.port, filters: [{ plugin: 'tcp-probe', name: 'probe', rootId: 'tcp_probe' }] }, logged);
  const chain = new TcpProxyChain({ chain: built.listener.chain.config, listener: { listenerName: 'multi' }, plugins: built.plugins, clusters: built.clusters, logger: logged });
  const front = createServer({ cert: pki.serverCert, key: pki.serverKey }, (s) => chain.acceptConnection(s));
  front.listen(0, '127.0.0.1');
  await once(front, 'listening');
  try {
    const c = tlsConnect({ host: '127.0.0.1', port: (front.address() as AddressInfo).port, ca: pki.caCert, servername: 'server.test' });
    await once(c, 'secureConnect');
    c.write('over tls');
    assert.equal((await readBytes(c, 8)).toString(), 'over tls');
    assert.equal(up.connections[0]!.received.toString(), 'over tls');
    c.destroy();
    await until(() => probeLogs.some((m) => m.startsWith('props ')), 5000, 'props logged');
    assert.match(probeLogs.find((m) => m.startsWith('props '))!, / tls=TLSv1\.3$/);
  } finally {
    await chain.close();
    front.close();
    for (const p of built.plugins) p.close();
    built.clusters.close();
    await up.close();
    tmp.cleanup();
  }
});
