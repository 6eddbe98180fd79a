import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type Redis from 'ioredis';
import { TempDir } from '../http/helpers';
import { RedisServer } from '../support/redis-server';
import { reply, runOps, type GoRedisSidecar, type Op, type OpResult, startGoRedisSidecar } from '../redis/go-sdk-fixture';
import { RATE_LIMIT_SCRIPT } from '../redis/helpers';

// Every command family of wasm-go v1.1.1's RedisClient, called by a Go plugin on real traffic through the sidecar:
// what the plugin's callback received (resp.Value, serialised by the plugin into its local reply) and what Redis
// holds afterwards (read with ioredis). The client authenticates with a password and works in database 1.

const CLUSTER = 'outbound|6379||redis.default.svc.cluster.local';
const tmp = new TempDir();
let server: RedisServer;
let db: Redis;
let env: GoRedisSidecar;

before(async () => {
  server = await RedisServer.start({ requirepass: 'cmd-pass' });
  env = await startGoRedisSidecar(tmp, {
    clients: [{ name: 'c', cluster: { type: 'fqdn', fqdn: 'redis.default.svc.cluster.local', port: 6379 }, password: 'cmd-pass', timeout: 10_000, database: 1 }],
    clusters: [{ name: CLUSTER, port: server.port }],
  });
  // After the sidecar is up: its start compiles the plugin, and a client connecting meanwhile could time out.
  db = server.client({ db: 1 });
  await db.ping();
});

after(async () => {
  await env?.close();
  await server?.stop();
  tmp.cleanup();
});

async function run(ops: readonly Op[]): Promise<OpResult[]> {
  const { results } = await runOps(env.url, 'c', ops);
  assert.equal(results.length, ops.length);
  for (const [i, r] of results.entries()) {
    assert.equal(r.op, ops[i]!.op);
    assert.equal(r.dispatch_err, undefined, `${r.op}: ${r.dispatch_err}`);
  }
  return results;
}

const OK = { type: 'SimpleString', str: 'OK' } as const;
const int = (n: number) => ({ type: 'Integer', int: n }) as const;
const bulk = (s: string) => ({ type: 'BulkString', str: s }) as const;
const NIL = { type: 'BulkString', null: true } as const;
const sorted = (xs: Array<string | null>): Array<string | null> => [...xs].sort();

describe('wasm-go RedisClient command families through the sidecar', () => {
  it('strings: Set, Get, SetEx, SetNX, MSet, MGet, Del, Exists, and GetSet/Append/StrLen through Command', async () => {
    const r = await run([
      { op: 'Set', args: ['s:k1', 'v1'] },
      { op: 'Get', args: ['s:k1'] },
      { op: 'Get', args: ['s:missing'] },
      { op: 'SetEx', args: ['s:k2', 'v2', 100] },
      { op: 'SetNX', args: ['s:k1', 'other', 0] },
      { op: 'SetNX', args: ['s:k3', 'v3', 50] },
      { op: 'MSet', args: [{ 's:m1': 'a', 's:m2': 2 }] },
      { op: 'MGet', args: [['s:m1', 's:m2', 's:missing']] },
      { op: 'Command', args: [['getset', 's:k1', 'v1b']] },
      { op: 'Command', args: [['append', 's:k1', '-x']] },
      { op: 'Command', args: [['strlen', 's:k1']] },
      { op: 'Exists', args: ['s:m1'] },
      { op: 'Del', args: ['s:m1'] },
      { op: 'Exists', args: ['s:m1'] },
    ]);
    assert.deepEqual(r.map((x) => x.reply), [
      OK, bulk('v1'), NIL, OK, NIL, OK, OK,
      { type: 'Array', array: [bulk('a'), bulk('2'), NIL] },
      bulk('v1'), int(5), int(5), int(1), int(1), int(0),
    ]);
    assert.equal(await db.get('s:k1'), 'v1b-x');
    assert.equal(await db.get('s:k2'), 'v2');
    const ttl2 = await db.ttl('s:k2');
    assert.ok(ttl2 > 0 && ttl2 <= 100, `ttl ${ttl2}`);
    assert.equal(await db.get('s:k3'), 'v3');
    const ttl3 = await db.ttl('s:k3');
    assert.ok(ttl3 > 0 && ttl3 <= 50, `ttl ${ttl3}`);
    assert.equal(await db.exists('s:m1'), 0);
    assert.equal(await db.get('s:m2'), '2');
    // The SDK's debug log carries the query it dispatched: wasm-go's encoding, a RESP array of bulk strings.
    const sent = env.logs
      .pluginMatching('redis call start, request-id: ')
      .map((l) => Buffer.from(l.message.split('respQuery: ')[1] ?? '', 'base64').toString());
    assert.ok(sent.includes('*3\r\n$3\r\nset\r\n$4\r\ns:k1\r\n$2\r\nv1\r\n'), 'Set as wasm-go encodes it');
    assert.ok(sent.includes('*5\r\n$3\r\nset\r\n$4\r\ns:k2\r\n$2\r\nv2\r\n$2\r\nex\r\n$3\r\n100\r\n'), 'SetEx');
    // Database 1 only: nothing written to database 0.
    assert.equal(await server.client({ db: 0 }).dbsize(), 0);
  });

  it('counters: Incr, IncrBy, Decr, DecrBy, and the error reply for a non-integer', async () => {
    const r = await run([
      { op: 'Incr', args: ['n:c'] },
      { op: 'IncrBy', args: ['n:c', 10] },
      { op: 'Decr', args: ['n:c'] },
      { op: 'DecrBy', args: ['n:c', 4] },
      { op: 'IncrBy', args: ['n:neg', -3] },
      { op: 'Set', args: ['n:s', 'abc'] },
      { op: 'Incr', args: ['n:s'] },
    ]);
    assert.deepEqual(r.slice(0, 6).map((x) => x.reply), [int(1), int(11), int(10), int(6), int(-3), OK]);
    // A Redis error reply reaches the callback as a resp Error value (proxy_on_redis_call_response status 0).
    assert.deepEqual(r[6]!.reply, { type: 'Error', err: 'ERR value is not an integer or out of range' });
    assert.equal(await db.get('n:c'), '6');
    assert.equal(await db.get('n:neg'), '-3');
  });

  it('expiry: Expire, TTL (Command), Persist, Expire on a missing key', async () => {
    const r = await run([
      { op: 'Set', args: ['e:k', 'v'] },
      { op: 'Command', args: [['ttl', 'e:k']] },
      { op: 'Expire', args: ['e:k', 300] },
      { op: 'Command', args: [['ttl', 'e:k']] },
      { op: 'Persist', args: ['e:k'] },
      { op: 'Command', args: [['ttl', 'e:k']] },
      { op: 'Expire', args: ['e:missing', 10] },
      { op: 'Command', args: [['ttl', 'e:missing']] },
      { op: 'Expire', args: ['e:gone', 100] },
      { op: 'Set', args: ['e:gone', 'v'] },
      { op: 'Expire', args: ['e:gone', 200] },
    ]);
    assert.deepEqual(r[1]!.reply, int(-1));
    assert.deepEqual(r[2]!.reply, int(1));
    const ttl = r[3]!.reply!.int!;
    assert.ok(ttl > 0 && ttl <= 300, `ttl ${ttl}`);
    assert.deepEqual(r.slice(4).map((x) => x.reply), [int(1), int(-1), int(0), int(-2), int(0), OK, int(1)]);
    assert.equal(await db.ttl('e:k'), -1);
    const gone = await db.ttl('e:gone');
    assert.ok(gone > 100 && gone <= 200, `ttl ${gone}`);
  });

  it('hashes: HSet, HMSet, HGet, HMGet, HExists, HLen, HKeys, HVals, HGetAll, HIncrBy, HIncrByFloat, HDel', async () => {
    const r = await run([
      { op: 'HSet', args: ['h', 'f1', 'v1'] },
      { op: 'HMSet', args: ['h', { f2: 'v2', f3: 3 }] },
      { op: 'HGet', args: ['h', 'f1'] },
      { op: 'HGet', args: ['h', 'nope'] },
      { op: 'HMGet', args: ['h', ['f1', 'nope', 'f2']] },
      { op: 'HExists', args: ['h', 'f2'] },
      { op: 'HExists', args: ['h', 'nope'] },
      { op: 'HLen', args: ['h'] },
      { op: 'HKeys', args: ['h'] },
      { op: 'HVals', args: ['h'] },
      { op: 'HGetAll', args: ['h'] },
      { op: 'HIncrBy', args: ['h', 'f3', 2] },
      { op: 'HIncrByFloat', args: ['h', 'f3', 0.5] },
      { op: 'HDel', args: ['h', ['f1', 'nope']] },
    ]);
    assert.deepEqual(r.slice(0, 4).map((x) => x.reply), [int(1), OK, bulk('v1'), NIL]);
    assert.deepEqual(reply.strings(r[4]!), ['v1', null, 'v2']);
    assert.deepEqual(r.slice(5, 8).map((x) => x.reply), [int(1), int(0), int(3)]);
    assert.deepEqual(sorted(reply.strings(r[8]!)), ['f1', 'f2', 'f3']);
    assert.deepEqual(sorted(reply.strings(r[9]!)), ['3', 'v1', 'v2']);
    const all = reply.strings(r[10]!);
    const pairs = new Map<string | null, string | null>();
    for (let i = 0; i < all.length; i += 2) pairs.set(all[i]!, all[i + 1]!);
    assert.deepEqual(Object.fromEntries(pairs), { f1: 'v1', f2: 'v2', f3: '3' });
    assert.deepEqual(r.slice(11).map((x) => x.reply), [int(5), bulk('5.5'), int(1)]);
    assert.deepEqual(await db.hgetall('h'), { f2: 'v2', f3: '5.5' });
  });

  it('lists: RPush, LPush, LRange, LIndex, LInsertBefore, LInsertAfter, LRem, LLen, LPop, RPop', async () => {
    const r = await run([
      { op: 'RPush', args: ['l', ['a', 'b', 'c']] },
      { op: 'LPush', args: ['l', ['z']] },
      { op: 'LRange', args: ['l', 0, -1] },
      { op: 'LIndex', args: ['l', 1] },
      { op: 'LIndex', args: ['l', 99] },
      { op: 'LInsertBefore', args: ['l', 'b', 'x'] },
      { op: 'LInsertAfter', args: ['l', 'b', 'y'] },
      { op: 'LRem', args: ['l', 0, 'x'] },
      { op: 'LLen', args: ['l'] },
      { op: 'LPop', args: ['l'] },
      { op: 'RPop', args: ['l'] },
      { op: 'LPop', args: ['l:empty'] },
    ]);
    assert.deepEqual(r[0]!.reply, int(3));
    assert.deepEqual(r[1]!.reply, int(4));
    assert.deepEqual(reply.strings(r[2]!), ['z', 'a', 'b', 'c']);
    assert.deepEqual(r.slice(3).map((x) => x.reply), [bulk('a'), NIL, int(5), int(6), int(1), int(5), bulk('z'), bulk('c'), NIL]);
    assert.deepEqual(await db.lrange('l', 0, -1), ['a', 'b', 'y']);
  });

  it('sets: SAdd, SRem, SIsMember, SCard, SMembers, SDiff/SInter/SUnion and their Store forms', async () => {
    const r = await run([
      { op: 'SAdd', args: ['set1', ['a', 'b', 'c', 'x']] },
      { op: 'SAdd', args: ['set2', ['b', 'c', 'd']] },
      { op: 'SRem', args: ['set1', ['x', 'nope']] },
      { op: 'SIsMember', args: ['set1', 'a'] },
      { op: 'SIsMember', args: ['set1', 'x'] },
      { op: 'SCard', args: ['set1'] },
      { op: 'SMembers', args: ['set1'] },
      { op: 'SDiff', args: ['set1', 'set2'] },
      { op: 'SInter', args: ['set1', 'set2'] },
      { op: 'SUnion', args: ['set1', 'set2'] },
      { op: 'SDiffStore', args: ['set:diff', 'set1', 'set2'] },
      { op: 'SInterStore', args: ['set:inter', 'set1', 'set2'] },
      { op: 'SUnionStore', args: ['set:union', 'set1', 'set2'] },
    ]);
    assert.deepEqual(r.slice(0, 6).map((x) => x.reply), [int(4), int(3), int(1), int(1), int(0), int(3)]);
    assert.deepEqual(sorted(reply.strings(r[6]!)), ['a', 'b', 'c']);
    assert.deepEqual(sorted(reply.strings(r[7]!)), ['a']);
    assert.deepEqual(sorted(reply.strings(r[8]!)), ['b', 'c']);
    assert.deepEqual(sorted(reply.strings(r[9]!)), ['a', 'b', 'c', 'd']);
    assert.deepEqual(r.slice(10).map((x) => x.reply), [int(1), int(2), int(4)]);
    assert.deepEqual((await db.smembers('set:diff')).sort(), ['a']);
    assert.deepEqual((await db.smembers('set:inter')).sort(), ['b', 'c']);
    assert.deepEqual((await db.smembers('set:union')).sort(), ['a', 'b', 'c', 'd']);
  });

  it('sorted sets: ZAdd, ZCard, ZCount, ZIncrBy, ZScore, ZRank, ZRevRank, ZRange, ZRevRange, ZRem', async () => {
    const r = await run([
      { op: 'ZAdd', args: ['z', { a: 1, b: 2, c: 3 }] },
      { op: 'ZCard', args: ['z'] },
      { op: 'ZCount', args: ['z', 2, 3] },
      { op: 'ZCount', args: ['z', '-inf', '+inf'] },
      { op: 'ZIncrBy', args: ['z', 'a', 5] },
      { op: 'ZScore', args: ['z', 'b'] },
      { op: 'ZScore', args: ['z', 'nope'] },
      { op: 'ZRank', args: ['z', 'a'] },
      { op: 'ZRevRank', args: ['z', 'a'] },
      { op: 'ZRank', args: ['z', 'nope'] },
      { op: 'ZRange', args: ['z', 0, -1] },
      { op: 'ZRevRange', args: ['z', 0, 1] },
      { op: 'ZRem', args: ['z', ['b', 'nope']] },
    ]);
    assert.deepEqual(r.slice(0, 10).map((x) => x.reply), [int(3), int(3), int(2), int(3), bulk('6'), bulk('2'), NIL, int(2), int(0), NIL]);
    assert.deepEqual(reply.strings(r[10]!), ['b', 'c', 'a']);
    assert.deepEqual(reply.strings(r[11]!), ['a', 'c']);
    assert.deepEqual(r[12]!.reply, int(1));
    assert.deepEqual(await db.zrange('z', 0, -1, 'WITHSCORES'), ['c', '3', 'a', '6']);
  });

  it('scripts: Eval with keys and args, nested and status replies, error replies, a reply larger than 64 KiB', async () => {
    const r = await run([
      { op: 'Eval', args: ["return {KEYS[1], ARGV[1], redis.call('incrby', KEYS[1], ARGV[1]), {1, 'two'}}", 1, ['lua:n'], [7]] },
      { op: 'Eval', args: [RATE_LIMIT_SCRIPT, 1, ['lua:rl'], [10, 60]] },
      { op: 'Eval', args: [RATE_LIMIT_SCRIPT, 1, ['lua:rl'], [10, 60]] },
      { op: 'Eval', args: ["return redis.status_reply('FINE')", 0, [], []] },
      { op: 'Eval', args: ["return redis.error_reply('MYERR boom')", 0, [], []] },
      { op: 'Eval', args: ["return redis.call('get', KEYS[1])", 1, ['lua:missing'], []] },
      { op: 'Eval', args: ["return string.rep('x', tonumber(ARGV[1]))", 0, [], [200000]] },
      { op: 'Eval', args: ['this is not lua', 0, [], []] },
    ]);
    assert.deepEqual(r[0]!.reply, {
      type: 'Array',
      array: [bulk('lua:n'), bulk('7'), int(7), { type: 'Array', array: [int(1), bulk('two')] }],
    });
    assert.deepEqual(reply.strings(r[1]!), ['10', '9', '60']);
    const second = reply.strings(r[2]!);
    assert.deepEqual(second.slice(0, 2), ['10', '8']);
    assert.ok(Number(second[2]) > 0 && Number(second[2]) <= 60);
    assert.deepEqual(r[3]!.reply, { type: 'SimpleString', str: 'FINE' });
    assert.deepEqual(r[4]!.reply, { type: 'Error', err: 'MYERR boom' });
    assert.deepEqual(r[5]!.reply, NIL);
    assert.equal(r[6]!.reply!.type, 'BulkString');
    assert.equal(r[6]!.reply!.str, 'x'.repeat(200000));
    assert.equal(r[7]!.reply!.type, 'Error');
    assert.match(r[7]!.reply!.err!, /^ERR Error compiling script/);
    assert.equal(await db.get('lua:n'), '7');
    assert.equal(await db.get('lua:rl'), '8');
  });

  it('raw Command: PING, ECHO, SET with options, TYPE, an unknown command, a wrong arity', async () => {
    const r = await run([
      { op: 'Command', args: [['PING']] },
      { op: 'Command', args: [['ECHO', 'hello world']] },
      { op: 'Command', args: [['SET', 'raw:k', 'v', 'PX', 100000, 'NX']] },
      { op: 'Command', args: [['SET', 'raw:k', 'v2', 'PX', 100000, 'NX']] },
      { op: 'Command', args: [['TYPE', 'raw:k']] },
      { op: 'Command', args: [['NOSUCHCOMMAND', 'x']] },
      { op: 'Command', args: [['GET']] },
      { op: 'Command', args: [['SELECT', 1]] },
    ]);
    assert.deepEqual(r.slice(0, 5).map((x) => x.reply), [
      { type: 'SimpleString', str: 'PONG' }, bulk('hello world'), OK, NIL, { type: 'SimpleString', str: 'string' },
    ]);
    assert.equal(r[5]!.reply!.type, 'Error');
    assert.match(r[5]!.reply!.err!, /^ERR unknown command 'NOSUCHCOMMAND'/);
    assert.equal(r[6]!.reply!.type, 'Error');
    assert.match(r[6]!.reply!.err!, /^ERR wrong number of arguments for 'get' command/);
    assert.deepEqual(r[7]!.reply, OK);
    assert.equal(await db.get('raw:k'), 'v');
    const pttl = await db.pttl('raw:k');
    assert.ok(pttl > 0 && pttl <= 100000);
  });

  it('raw Command: a transaction (MULTI/EXEC) and a null array reply (BLPOP timing out)', async () => {
    const r = await run([
      { op: 'Command', args: [['MULTI']] },
      { op: 'Command', args: [['SET', 'tx:a', '1']] },
      { op: 'Command', args: [['INCR', 'tx:a']] },
      { op: 'Command', args: [['EXEC']] },
      { op: 'Command', args: [['BLPOP', 'tx:empty-list', '0.05']] },
    ]);
    assert.deepEqual(r.map((x) => x.reply), [
      OK,
      { type: 'SimpleString', str: 'QUEUED' },
      { type: 'SimpleString', str: 'QUEUED' },
      { type: 'Array', array: [OK, int(2)] },
      { type: 'Array', null: true },
    ]);
    assert.equal(await db.get('tx:a'), '2');
  });

  it('wrapper.RedisCall (no client) on the same cluster shares the connection the client initialised (AUTH, SELECT 1)', async () => {
    const r = await run([
      { op: 'RedisCall', args: [['SET', 'rc:k', 'via RedisCall']] },
      { op: 'RedisCall', args: [['CLIENT', 'INFO']] },
    ]);
    assert.deepEqual(r[0]!.reply, OK);
    assert.match(r[1]!.reply!.str!, /\bdb=1\b/);
    assert.equal(await db.get('rc:k'), 'via RedisCall');
  });

  it('concurrent streams: each request gets its own replies, pipelined on the shared connection', async () => {
    const n = 40;
    const runs = await Promise.all(
      Array.from({ length: n }, (_, i) =>
        runOps(env.url, 'c', [
          { op: 'Incr', args: [`par:${i}`] },
          { op: 'IncrBy', args: [`par:${i}`, i] },
          { op: 'Incr', args: ['par:shared'] },
          { op: 'Get', args: [`par:${i}`] },
        ]),
      ),
    );
    const shared = new Set<number>();
    for (const [i, { results }] of runs.entries()) {
      assert.deepEqual(results[0]!.reply, int(1));
      assert.deepEqual(results[1]!.reply, int(1 + i));
      assert.deepEqual(results[3]!.reply, bulk(String(1 + i)));
      shared.add(results[2]!.reply!.int!);
    }
    // Every INCR of the shared key was seen by exactly one stream.
    assert.deepEqual([...shared].sort((a, b) => a - b), Array.from({ length: n }, (_, i) => i + 1));
    assert.equal(await db.get('par:shared'), String(n));
  });

  it('answers an unknown SDK method with the plugin error and no Redis call', async () => {
    const { results } = await runOps(env.url, 'c', [{ op: 'NoSuchMethod' }, { op: 'Get', args: ['s:k2'] }]);
    assert.deepEqual(results, [
      { op: 'NoSuchMethod', dispatch_err: 'unknown op "NoSuchMethod"' },
      { op: 'Get', reply: bulk('v2') },
    ]);
    assert.equal(env.backend.requests.length, 0);
  });
});
