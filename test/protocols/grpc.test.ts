import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { after, before, describe, test } from 'node:test';
import type { Sidecar } from '../../src/main';
import { TempDir } from '../http/helpers';
import { startShapedSidecar } from './helpers';

// gRPC end to end: a @grpc/grpc-js client -> the sidecar (HTTP/2 cleartext listener, codec AUTO) -> a
// @grpc/grpc-js server over an HTTP/2 cluster. The Higress SDK plugin go/proto-grpc reads the gRPC request
// headers and the response trailers and reports them in a trailer the client reads back; it also answers
// local replies that Envoy turns into trailers-only gRPC responses.

const id = (b: Buffer): Buffer => b;
const def = (name: string, requestStream: boolean, responseStream: boolean) => ({
  path: `/test.Echo/${name}`, requestStream, responseStream,
  requestSerialize: id, requestDeserialize: id, responseSerialize: id, responseDeserialize: id,
});
const SERVICE = {
  Unary: def('Unary', false, false),
  Fail: def('Fail', false, false),
  Bidi: def('Bidi', true, true),
  ServerStream: def('ServerStream', false, true),
  ClientStream: def('ClientStream', true, false),
  DenyExplicit: def('DenyExplicit', false, false),
  DenyMapped: def('DenyMapped', false, false),
} satisfies grpc.ServiceDefinition;

const tmp = new TempDir();
let server: grpc.Server;
let sidecar: Sidecar;
let client: grpc.Client;
const serverSaw: Array<{ method: string; metadata: Record<string, unknown> }> = [];

before(async () => {
  server = new grpc.Server();
  const trailer = () => {
    const m = new grpc.Metadata();
    m.set('x-server-trailer', 'from-grpc-js');
    return m;
  };
  server.addService(SERVICE, {
    Unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      serverSaw.push({ method: 'Unary', metadata: call.metadata.getMap() });
      cb(null, Buffer.concat([Buffer.from('echo:'), call.request]), trailer());
    },
    Fail: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' });
    },
    Bidi: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (m: Buffer) => call.write(Buffer.concat([Buffer.from('re:'), m])));
      call.on('end', () => call.end(trailer()));
    },
    ServerStream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
      const n = Number(call.request.toString());
      for (let i = 0; i < n; i++) call.write(Buffer.from(`part-${i}`));
      call.end(trailer());
    },
    ClientStream: (call: grpc.ServerReadableStream<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const parts: Buffer[] = [];
      call.on('data', (m: Buffer) => parts.push(m));
      call.on('end', () => cb(null, Buffer.from(parts.map(String).join('+')), trailer()));
    },
    DenyExplicit: (_c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from('must not be reached')),
    DenyMapped: (_c: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, Buffer.from('must not be reached')),
  });
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  const started = await startShapedSidecar(tmp, { filters: [{ plugin: 'go/proto-grpc', name: 'proto-grpc', rootId: '' }], clusters: [{ name: 'grpc', port }] }, ({ clusters }) => {
    clusters[0]!['typed_extension_protocol_options'] = {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
        '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
        explicit_http_config: { http2_protocol_options: {} },
      },
    };
  });
  sidecar = started.sidecar;
  client = new grpc.Client(`127.0.0.1:${started.port}`, grpc.credentials.createInsecure());
});

after(async () => {
  client?.close();
  await sidecar?.stop();
  await new Promise<void>((r) => (server ? server.tryShutdown(() => r()) : r()));
  tmp.cleanup();
});

interface Outcome {
  readonly error: grpc.ServiceError | null;
  readonly value: Buffer | undefined;
  readonly status: grpc.StatusObject;
}

function unary(method: keyof typeof SERVICE, message: string, metadata = new grpc.Metadata()): Promise<Outcome> {
  return new Promise((resolve) => {
    let error: grpc.ServiceError | null = null;
    let value: Buffer | undefined;
    const call = client.makeUnaryRequest(SERVICE[method].path, id, id, Buffer.from(message), metadata, (err, v) => {
      error = err;
      value = v;
    });
    call.on('status', (status: grpc.StatusObject) => setImmediate(() => resolve({ error, value, status })));
  });
}

function saw(status: grpc.StatusObject): Record<string, string> {
  const raw = String(status.metadata.get('x-proto-grpc-saw')[0] ?? '');
  return Object.fromEntries(raw.split(';').filter((x) => x).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
}

describe('gRPC through the sidecar', () => {
  test('unary: the answer, the server trailer, and what the plugin saw in the headers and trailers', async () => {
    const md = new grpc.Metadata();
    md.set('x-client', 'grpc-js');
    const r = await unary('Unary', 'hello', md);
    assert.equal(r.error, null);
    assert.equal(r.value?.toString(), 'echo:hello');
    assert.equal(r.status.code, grpc.status.OK);
    assert.equal(r.status.metadata.get('x-server-trailer')[0], 'from-grpc-js', 'upstream trailers reach the client');
    const s = saw(r.status);
    assert.equal(s['path'], '/test.Echo/Unary');
    assert.equal(s['ct'], 'application/grpc');
    assert.equal(s['te'], 'trailers');
    assert.equal(s['proto'], 'HTTP/2');
    assert.match(s['resp-ct'] ?? '', /^application\/grpc/);
    assert.equal(s['grpc-status'], '0');
    assert.equal(serverSaw.at(-1)?.metadata['x-client'], 'grpc-js', 'request metadata reaches the server');
  });

  test('a failing unary call: the trailers-only response stays one HEADERS frame; the plugin reads grpc-status and grpc-message', async () => {
    const r = await unary('Fail', 'x');
    assert.equal(r.error?.code, grpc.status.NOT_FOUND);
    assert.equal(r.error?.details, 'no such thing');
    const s = saw(r.status);
    // grpc-js answers an error without messages trailers-only: the status is in the response headers.
    assert.equal(s['trailers-only'], 'true');
    assert.equal(s['grpc-status'], String(grpc.status.NOT_FOUND));
    // The header as it travels: grpc-js percent-encodes the message (spaces too), and the plugin reads raw.
    assert.equal(s['grpc-message'], 'no%20such%20thing');
  });

  test('bidirectional streaming, message by message: each echo arrives before the next message is sent', async () => {
    const call = client.makeBidiStreamRequest(SERVICE.Bidi.path, id, id);
    const received: string[] = [];
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('error', () => undefined);
    for (let i = 0; i < 5; i++) {
      const echoed = new Promise<Buffer>((resolve) => call.once('data', resolve));
      call.write(Buffer.from(`m${i}`));
      // The proxy must not hold messages back: the reply to message i comes while the stream is still open.
      received.push(String(await echoed));
    }
    call.end();
    const st = await status;
    assert.deepEqual(received, ['re:m0', 're:m1', 're:m2', 're:m3', 're:m4']);
    assert.equal(st.code, grpc.status.OK);
    assert.equal(st.metadata.get('x-server-trailer')[0], 'from-grpc-js');
    assert.equal(saw(st)['grpc-status'], '0');
  });

  test('server streaming and client streaming', async () => {
    const parts: string[] = [];
    const ss = client.makeServerStreamRequest(SERVICE.ServerStream.path, id, id, Buffer.from('4'));
    ss.on('data', (m: Buffer) => parts.push(String(m)));
    const st = await new Promise<grpc.StatusObject>((resolve) => ss.on('status', resolve));
    assert.equal(st.code, grpc.status.OK);
    assert.deepEqual(parts, ['part-0', 'part-1', 'part-2', 'part-3']);

    const joined = await new Promise<string>((resolve, reject) => {
      const cs = client.makeClientStreamRequest(SERVICE.ClientStream.path, id, id, (err, v) => (err ? reject(err) : resolve(String(v))));
      for (const p of ['a', 'b', 'c']) cs.write(Buffer.from(p));
      cs.end();
    });
    assert.equal(joined, 'a+b+c');
  });

  test("a plugin's local reply with grpc_status 7: a trailers-only response the client reads as PERMISSION_DENIED", async () => {
    const r = await unary('DenyExplicit', 'x');
    assert.equal(r.error?.code, grpc.status.PERMISSION_DENIED);
    assert.equal(r.error?.details, 'denied by proto-grpc', "grpc-message is the body, its final newline dropped");
    assert.equal(r.status.metadata.get('x-denied-by')[0], 'proto-grpc', "the plugin's headers are sent too");
  });

  test('a local reply without a grpc_status: the HTTP code is mapped (429 -> UNAVAILABLE), grpc-message percent-encoded', async () => {
    const r = await unary('DenyMapped', 'x');
    assert.equal(r.error?.code, grpc.status.UNAVAILABLE);
    // The client percent-decodes grpc-message.
    assert.equal(r.error?.details, 'slow down: 100%');
  });
});
