import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RedisProtocolError } from '../../src/common/errors';
import { NEED_MORE, RespFramer, RespScanner } from '../../src/redis/resp-scanner';

/** A small seeded PRNG (mulberry32) so failures reproduce. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Random bytes that may include CR, LF and RESP type bytes, to trip a scanner that looks inside payloads. */
function randomPayload(r: () => number, max: number): Buffer {
  const n = Math.floor(r() * max);
  const b = Buffer.alloc(n);
  const nasty = [0x0d, 0x0a, 0x2a, 0x24, 0x2b, 0x2d, 0x3a];
  for (let i = 0; i < n; i++) b[i] = r() < 0.2 ? nasty[Math.floor(r() * nasty.length)]! : Math.floor(r() * 256);
  return b;
}

function randomLine(r: () => number): string {
  const n = Math.floor(r() * 20);
  let s = '';
  for (let i = 0; i < n; i++) s += String.fromCharCode(0x20 + Math.floor(r() * 95));
  return s;
}

/** One random valid RESP2 reply, serialized. */
function randomReply(r: () => number, depth = 0): Buffer {
  const kind = Math.floor(r() * (depth < 3 ? 7 : 5));
  switch (kind) {
    case 0:
      return Buffer.from(`+${randomLine(r)}\r\n`);
    case 1:
      return Buffer.from(`-ERR ${randomLine(r)}\r\n`);
    case 2:
      return Buffer.from(`:${Math.floor((r() - 0.5) * 1e12)}\r\n`);
    case 3: {
      const p = randomPayload(r, 64);
      return Buffer.concat([Buffer.from(`$${p.length}\r\n`), p, Buffer.from('\r\n')]);
    }
    case 4:
      return Buffer.from('$-1\r\n');
    case 5:
      return Buffer.from(r() < 0.3 ? '*-1\r\n' : '*0\r\n');
    default: {
      const n = 1 + Math.floor(r() * 5);
      const parts: Buffer[] = [Buffer.from(`*${n}\r\n`)];
      for (let i = 0; i < n; i++) parts.push(randomReply(r, depth + 1));
      return Buffer.concat(parts);
    }
  }
}

function frameAll(chunks: readonly Buffer[]): Buffer[] {
  const framer = new RespFramer();
  const out: Buffer[] = [];
  for (const c of chunks) framer.push(c, (b) => out.push(b));
  assert.equal(framer.buffered, 0, 'no bytes left over');
  return out;
}

function splitAt(buf: Buffer, points: number[]): Buffer[] {
  const sorted = [...new Set(points)].filter((p) => p > 0 && p < buf.length).sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const p of sorted) {
    out.push(buf.subarray(from, p));
    from = p;
  }
  out.push(buf.subarray(from));
  return out;
}

test('frames each fixed reply type back to its exact bytes', () => {
  const replies = [
    '+OK\r\n',
    '-NOAUTH Authentication required.\r\n',
    ':-42\r\n',
    '$0\r\n\r\n',
    '$-1\r\n',
    '*-1\r\n',
    '*0\r\n',
    '$4\r\na\r\nb\r\n',
    '*3\r\n:1\r\n*2\r\n$1\r\nx\r\n$-1\r\n*-1\r\n',
    '*2\r\n*1\r\n*1\r\n+deep\r\n:7\r\n',
  ].map((s) => Buffer.from(s));
  assert.deepEqual(frameAll([Buffer.concat(replies)]), replies);
  for (const reply of replies) {
    // one byte at a time
    const bytes = [...reply].map((b) => Buffer.from([b]));
    assert.deepEqual(frameAll(bytes), [reply]);
  }
});

test('fuzz: random replies split at every point and at random points frame back exactly', () => {
  const r = rng(0x5eed);
  for (let round = 0; round < 300; round++) {
    const replies = Array.from({ length: 1 + Math.floor(r() * 6) }, () => randomReply(r));
    const wire = Buffer.concat(replies);
    // every single split point
    if (round < 60) {
      for (let p = 1; p < wire.length; p++) assert.deepEqual(frameAll(splitAt(wire, [p])), replies, `round ${round} split ${p}`);
    }
    // random multi-way splits
    for (let k = 0; k < 10; k++) {
      const points = Array.from({ length: Math.floor(r() * 8) }, () => Math.floor(r() * wire.length));
      assert.deepEqual(frameAll(splitAt(wire, points)), replies, `round ${round} points ${points.join(',')}`);
    }
    // coalesced byte-by-byte
    if (round % 20 === 0) assert.deepEqual(frameAll([...wire].map((b) => Buffer.from([b]))), replies);
  }
});

test('a 4 MiB bulk in 1 KiB chunks frames once, without rescanning the payload', () => {
  const payload = Buffer.alloc(4 * 1024 * 1024, 0x0d); // all CR: a naive scanner would look at every byte
  const reply = Buffer.concat([Buffer.from(`$${payload.length}\r\n`), payload, Buffer.from('\r\n')]);
  const chunks = splitAt(reply, Array.from({ length: reply.length / 1024 }, (_, i) => i * 1024));
  const started = process.hrtime.bigint();
  const out = frameAll(chunks);
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  assert.equal(out.length, 1);
  assert.ok(out[0]!.equals(reply));
  assert.ok(ms < 2000, `framing took ${ms} ms`);
});

test('scanner reports need-more and resumes where it stopped', () => {
  const s = new RespScanner();
  const wire = Buffer.from('*2\r\n$3\r\nabc\r\n:1\r\n');
  assert.equal(s.scan(wire, 0, 6), NEED_MORE);
  assert.equal(s.scan(wire, 0, 12), NEED_MORE);
  assert.equal(s.scan(wire, 0, wire.length - 1), NEED_MORE);
  assert.equal(s.scan(wire, 0, wire.length), wire.length);
});

test('protocol errors: bad type byte, bad lengths, unterminated bulk', () => {
  for (const bad of ['!oops\r\n', '$abc\r\n', '$-2\r\n', '*-5\r\n', '$3\r\nabcXY', ':12a\r\n', '_\r\n', `$${'9'.repeat(30)}`]) {
    const framer = new RespFramer();
    assert.throws(
      () => framer.push(Buffer.from(bad), () => {}),
      (err: unknown) => err instanceof RedisProtocolError && err.code === 'PWS_ERR_REDIS_PROTOCOL',
      bad,
    );
  }
});
