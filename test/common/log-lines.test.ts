import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, it } from 'node:test';
import { request } from 'undici';
import { createLogger, topLevelKeys } from '../../src/common/logger';
import type { Sidecar } from '../../src/main';
import { Sidecar as SidecarClass } from '../../src/main';
import { bootstrapJson, TempDir, Upstream } from '../http/helpers';
import { RedisServer } from '../support/redis-server';
import { until } from '../support/until';

// Every log line the sidecar writes is one JSON object whose top-level keys are unique: plugin logs, Redis
// connection logs, admin actions and start-up all go through the same logger the CLI uses.
const tmp = new TempDir();
const lines: string[] = [];
let up: Upstream;
let redis: RedisServer;
let sidecar: Sidecar;

before(async () => {
  up = await Upstream.start();
  redis = await RedisServer.start({ requirepass: 's3cret' });
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(l);
      cb();
    },
  });
  const file = tmp.write('bootstrap.json', {
    ...bootstrapJson({
      filters: [
        { plugin: 'redis-gate', name: 'replay-protection', rootId: 'redis_gate', configuration: 'cluster=redis\npassword=s3cret\nttl=60\ntimeout=1000' },
        { plugin: 'go/up-body', name: 'up-body', rootId: '', configuration: 'a=b' },
      ],
      clusters: [{ name: 'backend', port: up.port }, { name: 'redis', port: redis.port }],
    }),
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
  });
  sidecar = await SidecarClass.start({ configFile: file, logger: createLogger('debug', sink), drainTimeoutMs: 1000 });
});

after(async () => {
  await sidecar?.stop();
  await up?.close();
  await redis?.stop();
  tmp.cleanup();
});

it('writes no log line with a repeated top-level key', async () => {
  const url = `http://127.0.0.1:${sidecar.listeners[0]!.port}`;
  for (const nonce of ['a', 'a', undefined]) {
    const res = await request(`${url}/x`, { method: 'POST', body: 'a body', headers: nonce ? { 'x-nonce': `${nonce}-${process.pid}` } : {} });
    await res.body.text();
  }
  const admin = sidecar.admin?.boundAddress()?.port;
  assert.ok(admin !== undefined, 'the admin is listening');
  const res = await request(`http://127.0.0.1:${admin}/logging?level=debug`, { method: 'POST' });
  await res.body.text();
  await redis.kill();
  await until(() => lines.some((l) => l.includes('"component":"redis"')), 10_000, 'a redis connection log line');
  assert.ok(lines.some((l) => l.includes('"wasm_level"')), 'plugin log lines were captured');
  const bad = lines
    .map((l) => ({ l, keys: topLevelKeys(l) }))
    .filter(({ keys }) => new Set(keys).size !== keys.length)
    .map(({ l, keys }) => `${keys.filter((k, i) => keys.indexOf(k) !== i).join(',')}: ${l}`);
  assert.deepEqual(bad, []);
});

it('reads repeated keys the way a JSON log consumer would miss them', () => {
  assert.deepEqual(topLevelKeys('{"level":30,"a":{"level":1,"b":[{"c":1}]},"msg":"x\\"y","level":40}'), ['level', 'a', 'msg', 'level']);
});
