import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { request } from 'undici';
import type { Sidecar } from '../../src/main';
import { startSidecar, TempDir, Upstream } from './helpers';

// proxy_grpc_call through the data plane to a real gRPC server (grpc-js, raw bytes): initial metadata,
// the reply message, the close status, a server error, a deadline, and cancellation.

type Mode = 'ok' | 'fail' | 'hang';
let mode: Mode = 'ok';
let seenMetadata = '';
let cancelledOnServer = 0;
const tmp = new TempDir();
let server: grpc.Server;
let up: Upstream;
let sidecar: Sidecar;
let url: string;

before(async () => {
  server = new grpc.Server();
  const identity = (b: Buffer): Buffer => b;
  server.register<Buffer, Buffer>('/test.Echo/Say', (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
    seenMetadata = String(call.metadata.get('x-md')[0] ?? '');
    call.on('cancelled', () => cancelledOnServer++);
    if (mode === 'hang') return;
    if (mode === 'fail') return callback({ code: grpc.status.PERMISSION_DENIED, details: 'denied by server' });
    const md = new grpc.Metadata();
    md.set('x-server-md', 'server-hello');
    call.sendMetadata(md);
    callback(null, Buffer.from(`pong:${call.request.toString()}:${seenMetadata}`));
  }, identity, identity, 'unary');
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  up = await Upstream.start();
  const s = await startSidecar(tmp, {
    filters: [{ plugin: 'grpc-callout', name: 'grpc', rootId: '' }],
    clusters: [{ name: 'backend', port: up.port }, { name: 'grpc-backend', port }],
  });
  sidecar = s.sidecar;
  url = s.url;
});

after(async () => {
  await sidecar.stop();
  await up.close();
  server.forceShutdown();
  tmp.cleanup();
});

async function get(headers: Record<string, string> = {}): Promise<string> {
  const res = await request(`${url}/`, { headers });
  assert.equal(res.statusCode, 200);
  return res.body.text();
}

test('a unary gRPC callout: metadata both ways, the reply bytes, status OK', async () => {
  mode = 'ok';
  assert.equal(await get(), '00|server-hello|pong:ping:from-plugin');
  assert.equal(seenMetadata, 'from-plugin');
});

test('a server error arrives at proxy_on_grpc_close with its code and message (proxy_get_status)', async () => {
  mode = 'fail';
  assert.equal(await get(), '07||denied by server');
});

test('the callout deadline closes the call with DEADLINE_EXCEEDED', async () => {
  mode = 'hang';
  const body = await get();
  assert.match(body, /^04\|\|/);
});

test('proxy_grpc_cancel stops the call: no callbacks, the server sees the cancellation', async () => {
  mode = 'hang';
  const before = cancelledOnServer;
  assert.equal(await get({ 'x-grpc-cancel': '1' }), 'cancelled');
  const deadline = Date.now() + 5000;
  while (cancelledOnServer === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  assert.equal(cancelledOnServer, before + 1);
});
