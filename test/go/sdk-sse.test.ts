import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { request } from 'undici';
import { TempDir } from '../http/helpers';
import { until } from '../support/until';
import { startGoSidecar, type GoSidecar } from './helpers';

// Streaming bodies through the Higress SDK (wrapper.ProcessStreamingRequestBody / ProcessStreamingResponseBody,
// plugins/go/higress/sdk-sse): Envoy calls the filter for each body chunk as it arrives, and the SDK replaces the
// chunk with what the plugin returns, so a chunk reaches the other side before the next one exists. Each test
// holds the sender until the receiver has seen the rewritten previous chunk: a proxy that buffered would never
// deliver it and the test would time out. Ordering is by events, not timing.

const tmp = new TempDir();
let server: Server;
let sc: GoSidecar;
/** Request body chunks as the upstream received them. */
const received: string[] = [];
/** What happened, in order, on both sides. */
const events: string[] = [];
let releaseEvents: (() => void) | undefined;
let releaseSplit: (() => void) | undefined;

function upstream(req: IncomingMessage, res: ServerResponse): void {
  if (req.url === '/upload') {
    req.on('data', (c: Buffer) => received.push(c.toString()));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`got ${received.join('')}`);
    });
    return;
  }
  if (req.url === '/events') {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write('event: greeting\ndata: hello world\n\n');
    events.push('upstream sent the first event');
    const gate = new Promise<void>((resolve) => (releaseEvents = resolve));
    void gate.then(() => {
      res.write('data: two\n\n');
      events.push('upstream sends the last event');
      res.write('id: 3\ndata: three\n\n');
      res.end();
    });
    return;
  }
  if (req.url === '/split') {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    // One event in two writes, the second only once the client has seen the first half rewritten.
    res.write('data: sp');
    void new Promise<void>((resolve) => (releaseSplit = resolve)).then(() => res.end('lit\n\n'));
    return;
  }
  if (req.url === '/duplex') {
    // Answers at once and turns each request chunk into an event while the request is still streaming.
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    req.on('data', (c: Buffer) => res.write(`data: ${c.toString().toLowerCase()}\n\n`));
    req.on('end', () => res.end());
    return;
  }
  res.writeHead(404).end();
}

before(async () => {
  server = createServer(upstream);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  sc = await startGoSidecar(tmp, {
    filters: [{ plugin: 'go/sdk-sse', name: 'sse', rootId: '', configuration: '{}' }],
    clusters: [{ name: 'backend', port: (server.address() as AddressInfo).port }],
  });
});

after(async () => {
  releaseEvents?.();
  releaseSplit?.();
  await sc?.sidecar.stop();
  server?.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
  tmp.cleanup();
});

describe('request body, chunk by chunk', () => {
  it('each client chunk reaches the upstream rewritten before the client sends the next', async () => {
    const seen = () => received.join('');
    async function* body(): AsyncGenerator<string> {
      yield 'alpha';
      await until(() => seen().includes('ALPHA'), 20_000, 'upstream received ALPHA');
      events.push('client saw the upstream receive ALPHA');
      yield 'beta';
      await until(() => seen().includes('BETA'), 20_000, 'upstream received BETA');
      events.push('client saw the upstream receive BETA');
      yield 'gamma';
    }
    const res = await request(`${sc.url}/upload`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: Readable.from(body()) });
    assert.equal(res.statusCode, 200);
    assert.equal(await res.body.text(), 'got ALPHABETAGAMMA|END');
    assert.equal(res.headers['x-sdk-sse'], undefined, 'a text/plain response is not read');
    assert.equal(seen(), 'ALPHABETAGAMMA|END');
    // At least the three client chunks arrived separately (the last chunk may or may not carry |END itself).
    assert.ok(received.length >= 3, JSON.stringify(received));
  });
});

describe('request body with a content-length, chunk by chunk', () => {
  it('streams too, and the upstream gets the rewritten length (the plugin dropped content-length)', async () => {
    received.length = 0;
    const seen = () => received.join('');
    async function* body(): AsyncGenerator<string> {
      yield 'first-';
      await until(() => seen().includes('FIRST-'), 20_000, 'upstream received FIRST-');
      yield 'second';
    }
    const res = await request(`${sc.url}/upload`, {
      method: 'POST', headers: { 'content-type': 'text/plain', 'content-length': String('first-second'.length) }, body: Readable.from(body()),
    });
    assert.equal(res.statusCode, 200);
    assert.equal(await res.body.text(), 'got FIRST-SECOND|END');
  });
});

describe('text/event-stream response, event by event', () => {
  it('the client receives the first rewritten event before the upstream sends the last', async () => {
    const res = await request(`${sc.url}/events`);
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'text/event-stream');
    assert.equal(res.headers['x-sdk-sse'], 'rewritten');
    let text = '';
    for await (const chunk of res.body) {
      text += (chunk as Buffer).toString();
      if (releaseEvents && text.includes('event: greeting\ndata: HELLO WORLD\n\n') && !events.includes('client got the first event')) {
        events.push('client got the first event');
        releaseEvents();
      }
    }
    assert.equal(text, 'event: greeting\ndata: HELLO WORLD\n\ndata: TWO\n\nid: 3\ndata: THREE\n\ndata: [SDK-END]\n\n');
    const got = events.indexOf('client got the first event');
    const last = events.indexOf('upstream sends the last event');
    assert.ok(got !== -1 && last !== -1 && got < last, JSON.stringify(events));
    assert.ok(events.indexOf('upstream sent the first event') < got);
  });
});

describe('state across chunks and both directions at once', () => {
  it('an event split between two chunks is rewritten as one, the first half delivered on its own', async () => {
    const res = await request(`${sc.url}/split`);
    let text = '';
    for await (const chunk of res.body) {
      text += (chunk as Buffer).toString();
      if (text === 'data: SP') releaseSplit?.();
    }
    assert.equal(text, 'data: SPLIT\n\ndata: [SDK-END]\n\n');
  });

  it('request chunks stream up and their events stream down in the same exchange', async () => {
    let text = '';
    const waitFor = (fragment: string) => until(() => text.includes(fragment), 20_000, `client received ${fragment}`);
    async function* body(): AsyncGenerator<string> {
      yield 'one';
      await waitFor('data: ONE\n\n');
      yield 'two';
      await waitFor('data: TWO\n\n');
    }
    const res = await request(`${sc.url}/duplex`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: Readable.from(body()) });
    assert.equal(res.statusCode, 200);
    for await (const chunk of res.body) {
      text += (chunk as Buffer).toString();
    }
    // Request chunks were upper-cased on the way up (the upstream lower-cases them back), events' data on the
    // way down; the request's last chunk carried |END, the response's got [SDK-END].
    assert.equal(text, 'data: ONE\n\ndata: TWO\n\ndata: |END\n\ndata: [SDK-END]\n\n');
  });
});
