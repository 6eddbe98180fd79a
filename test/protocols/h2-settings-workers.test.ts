import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { after, before, test } from 'node:test';
import { TempDir, Upstream } from '../http/helpers';
import { startShapedSidecar } from './helpers';

// HCM http2_protocol_options reach the client as the listener's SETTINGS, and HTTP/2 prior knowledge works
// on connections that the main thread forwards to workers (codec AUTO detects the preface there).

const tmp = new TempDir();
let upstream: Upstream;
const cleanups: Array<() => Promise<void> | void> = [];

before(async () => {
  upstream = await Upstream.start((req, res) => res.end(`ok ${req.url}`));
});

after(async () => {
  for (const c of cleanups.reverse()) await c();
  await upstream.close();
  tmp.cleanup();
});

function get(session: ClientHttp2Session, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':path': path });
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (d: string) => { body += d; });
    req.on('end', () => resolve(body));
    req.on('error', reject);
    req.end();
  });
}

test('http2_protocol_options max_concurrent_streams and initial_stream_window_size are the SETTINGS the client receives', async () => {
  const { sidecar, port } = await startShapedSidecar(tmp, { filters: [], clusters: [{ name: 'app', port: upstream.port }] }, ({ hcm }) => {
    hcm['codec_type'] = 'HTTP2';
    hcm['http2_protocol_options'] = { max_concurrent_streams: 7, initial_stream_window_size: 131072 };
  });
  cleanups.push(() => sidecar.stop());
  const session = h2connect(`http://127.0.0.1:${port}`);
  try {
    await once(session, 'remoteSettings');
    assert.equal(session.remoteSettings.maxConcurrentStreams, 7);
    assert.equal(session.remoteSettings.initialWindowSize, 131072);
    assert.equal(await get(session, '/s'), 'ok /s');
  } finally {
    session.close();
  }
});

test('HTTP/2 prior knowledge and HTTP/1.1 on one AUTO port with two workers', async () => {
  const { sidecar, port } = await startShapedSidecar(tmp, { filters: [], clusters: [{ name: 'app', port: upstream.port }] }, () => undefined, { concurrency: 2 });
  cleanups.push(() => sidecar.stop());
  for (let i = 0; i < 4; i++) {
    const session = h2connect(`http://127.0.0.1:${port}`);
    try {
      assert.equal(await get(session, `/w${i}`), `ok /w${i}`);
    } finally {
      session.close();
    }
    const res = await fetch(`http://127.0.0.1:${port}/h1-${i}`);
    assert.equal(await res.text(), `ok /h1-${i}`);
  }
});
