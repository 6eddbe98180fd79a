import assert from 'node:assert/strict';
import { connect as h2connect } from 'node:http2';
import { after, before, test } from 'node:test';
import { TempDir, Upstream } from '../http/helpers';
import { until } from '../support/until';
import { downstreamTls, hex, makePki, startShapedSidecar, type TestPki } from './helpers';

// The protocol and TLS counters under Envoy's names in /stats, with one process and with workers (each
// worker terminates TLS on the connections the main thread forwards; /stats sums the workers).

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

async function h2Get(port: number, path: string): Promise<{ status: number; protocol: string; destination: string; alpn: string | false | undefined }> {
  const session = h2connect(`https://127.0.0.1:${port}`, { ca: pki.caCert, servername: 'server.test' });
  try {
    return await new Promise((resolve, reject) => {
      session.on('error', reject);
      const req = session.request({ ':path': path });
      let status = 0;
      let protocol = '';
      let destination = '';
      req.on('response', (h) => { status = Number(h[':status']); protocol = String(h['x-req-0'] ?? ''); destination = String(h['x-req-1'] ?? ''); });
      req.resume();
      req.on('end', () => resolve({ status, protocol, destination, alpn: session.alpnProtocol }));
      req.on('error', reject);
      req.end();
    });
  } finally {
    session.close();
  }
}

function statLines(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^([^:]+): (\d+)$/.exec(line.trim());
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

for (const concurrency of [1, 2]) {
  test(`TLS and HTTP/2 counters in /stats (concurrency ${concurrency})`, async () => {
    const { sidecar, port, adminUrl } = await startShapedSidecar(tmp, {
      filters: [{ plugin: 'go/host-attrs', name: 'attrs', rootId: '', configuration: JSON.stringify({ properties: [['request', 'protocol'], ['destination', 'address']] }) }],
      clusters: [{ name: 'app', port: upstream.port }],
    }, ({ doc, chain }) => {
      doc['admin'] = { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } };
      chain['transport_socket'] = downstreamTls({
        tls_certificates: [{ certificate_chain: { inline_string: pki.serverCert }, private_key: { inline_string: pki.serverKey } }],
        alpn_protocols: ['h2', 'http/1.1'],
      });
    }, { concurrency });
    cleanups.push(() => sidecar.stop());
    for (let i = 0; i < 3; i++) {
      const r = await h2Get(port, `/n${i}`);
      assert.equal(r.status, 200);
      assert.equal(r.alpn, 'h2');
      assert.equal(r.protocol, hex('HTTP/2'));
      // destination.address is the public listener's, also behind a worker's TLS termination.
      assert.equal(r.destination, hex(`127.0.0.1:${port}`));
    }
    // With workers /stats sums what the workers last reported: wait until all three connections are in.
    let stats = new Map<string, number>();
    await until(async () => {
      stats = statLines(await (await fetch(`${adminUrl}/stats`)).text());
      return stats.get('http.ingress_http.downstream_rq_http2_total') === 3;
    }, 20_000, 'three HTTP/2 requests counted');
    assert.equal(stats.get('http.ingress_http.downstream_cx_http2_total'), 3);
    assert.equal(stats.get('http.ingress_http.downstream_rq_http2_total'), 3);
    assert.equal(stats.get('http.ingress_http.downstream_cx_ssl_total'), 3);
    // Named by the public listener's address, also when workers terminate the TLS.
    assert.equal(stats.get(`listener.127.0.0.1_${port}.ssl.handshake`), 3, [...stats.keys()].filter((k) => k.startsWith('listener.')).join(', '));
    assert.equal(stats.get(`listener.127.0.0.1_${port}.ssl.versions.TLSv1.3`), 3);
    // Only the public name: a worker's own loopback listener never shows.
    assert.deepEqual([...stats.keys()].filter((k) => k.startsWith('listener.') && !k.startsWith(`listener.127.0.0.1_${port}.`)), []);
  });
}
