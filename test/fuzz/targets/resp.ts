/**
 * RESP reply framing (src/redis/resp-scanner.ts), the first thing a Redis server's bytes meet. Oracles:
 *  - differential: a small recursive reference parser written from higress-abi.md §1.9 (RESP2 only; any other
 *    first byte is a protocol error) must agree on every frame boundary and on the final state (need more
 *    bytes, or error);
 *  - streaming: the same bytes pushed in arbitrary chunks give the same frames and the same final state;
 *  - well-formed RESP2 gives back exactly the replies that were encoded; RESP3 types are refused;
 *  - only RedisProtocolError escapes; the accumulator stays within twice the bytes held (bounded memory).
 */
import fc from 'fast-check';
import { RedisProtocolError } from '../../../src/common/errors';
import { MAX_BULK_LENGTH, RespFramer } from '../../../src/redis/resp-scanner';
import { b64, onlyTyped, OracleFailure, type FuzzTarget } from '../harness';

export interface RespInput {
  readonly bytes: Uint8Array;
  /** Chunk boundaries (positions in bytes, any order, duplicates allowed). */
  readonly splits: readonly number[];
  /** The replies `bytes` encodes exactly (well-formed RESP2 inputs only). */
  readonly expected?: readonly Uint8Array[];
}

// ---------- the reference parser ----------

type Step = number | 'need' | 'error';
const TYPES = new Set([0x2b, 0x2d, 0x3a, 0x24, 0x2a]);
/** Type byte + 20 characters (sign and digits) + CR: the longest length line still waiting for its LF. */
const LONGEST_OPEN_NUMBER_LINE = 22;

function crlfFrom(buf: Uint8Array, from: number): number {
  for (let i = from; i + 1 < buf.length; i++) if (buf[i] === 0x0d && buf[i + 1] === 0x0a) return i;
  return -1;
}

function integer(buf: Uint8Array, from: number, to: number): number | undefined {
  const s = Buffer.from(buf.subarray(from, to)).toString('latin1');
  return s.length <= 20 && /^-?[0-9]+$/.test(s) ? Number(s) : undefined;
}

/** End of the reply starting at `pos`, 'need' or 'error'. */
function reference(buf: Uint8Array, pos: number): Step {
  if (pos >= buf.length) return 'need';
  const t = buf[pos]!;
  if (!TYPES.has(t)) return 'error';
  const cr = crlfFrom(buf, pos + 1);
  const simple = t === 0x2b || t === 0x2d;
  if (cr < 0) return !simple && buf.length - pos > LONGEST_OPEN_NUMBER_LINE ? 'error' : 'need';
  const after = cr + 2;
  if (simple) return after;
  const n = integer(buf, pos + 1, cr);
  if (n === undefined) return 'error';
  if (t === 0x3a) return after;
  if (t === 0x24) {
    if (n === -1) return after;
    if (n < -1 || n > MAX_BULK_LENGTH) return 'error';
    const end = after + n + 2;
    if (end > buf.length) return 'need';
    return buf[end - 2] === 0x0d && buf[end - 1] === 0x0a ? end : 'error';
  }
  if (n === -1 || n === 0) return after;
  if (n < -1) return 'error';
  let p = after;
  for (let k = 0; k < n; k++) {
    const r = reference(buf, p);
    if (typeof r !== 'number') return r;
    p = r;
  }
  return p;
}

interface Outcome {
  readonly frames: string[];
  readonly end: 'need' | 'error';
  /** Bytes held back when the end is 'need'. */
  readonly buffered: number;
}

function referenceOutcome(buf: Uint8Array): Outcome {
  const frames: string[] = [];
  let p = 0;
  for (;;) {
    const r = reference(buf, p);
    if (r === 'need') return { frames, end: 'need', buffered: buf.length - p };
    if (r === 'error') return { frames, end: 'error', buffered: 0 };
    frames.push(hex(buf.subarray(p, r)));
    p = r;
  }
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

// ---------- the framer under test ----------

/** White-box view of the framer's accumulator, for the memory bound. */
interface FramerInternals {
  readonly acc: Buffer;
}

function frame(bytes: Uint8Array, splits: readonly number[]): Outcome {
  const cuts = [...new Set(splits.map((s) => s % (bytes.length + 1)))].sort((a, b) => a - b);
  const bounds = [0, ...cuts.filter((c) => c > 0 && c < bytes.length), bytes.length];
  const framer = new RespFramer();
  const frames: string[] = [];
  let held = 0;
  let maxHeld = 0;
  const err = onlyTyped(() => {
    for (let i = 0; i + 1 < bounds.length; i++) {
      // A fresh Buffer per chunk, as a socket gives (the framer may keep slices of it).
      const chunk = Buffer.from(bytes.subarray(bounds[i]!, bounds[i + 1]!));
      maxHeld = Math.max(maxHeld, held + chunk.length);
      framer.push(chunk, (reply) => frames.push(hex(reply)));
      held = framer.buffered;
      const acc = (framer as unknown as FramerInternals).acc.length;
      if (acc > Math.max(4096, 2 * maxHeld)) throw new OracleFailure(`accumulator ${acc} bytes while at most ${maxHeld} were held`);
    }
  }, [RedisProtocolError, OracleFailure], 'RespFramer.push');
  if (err instanceof OracleFailure) throw err;
  return err ? { frames, end: 'error', buffered: 0 } : { frames, end: 'need', buffered: framer.buffered };
}

function same(a: Outcome, b: Outcome, what: string): void {
  const first = a.frames.findIndex((f, i) => f !== b.frames[i]);
  if (a.frames.length !== b.frames.length || first >= 0) {
    throw new OracleFailure(`${what}: frames differ at #${first < 0 ? Math.min(a.frames.length, b.frames.length) : first}: ${JSON.stringify(a.frames.slice(0, 8))} vs ${JSON.stringify(b.frames.slice(0, 8))}`);
  }
  if (a.end !== b.end || a.buffered !== b.buffered) throw new OracleFailure(`${what}: ends ${a.end}/${a.buffered} vs ${b.end}/${b.buffered}`);
}

function check(input: RespInput): void {
  const ref = referenceOutcome(input.bytes);
  const whole = frame(input.bytes, []);
  same(ref, whole, 'reference vs one chunk');
  same(whole, frame(input.bytes, input.splits), `one chunk vs split at ${JSON.stringify(input.splits)}`);
  if (input.expected) {
    same({ frames: input.expected.map(hex), end: 'need', buffered: 0 }, whole, 'encoded replies vs framed');
  }
}

// ---------- inputs ----------

const CRLF = '\r\n';
const enc = (s: string): Buffer => Buffer.from(s, 'latin1');
const line = fc.string({ unit: fc.constantFrom(...'abcXYZ 09:$*+-_\t\u00e9'.split('')), maxLength: 12 });

const resp2 = fc.letrec<{ value: Buffer }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    line.map((s) => enc(`+${s}${CRLF}`)),
    line.map((s) => enc(`-ERR ${s}${CRLF}`)),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map((n) => enc(`:${n}${CRLF}`)),
    fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.concat([enc(`$${b.length}${CRLF}`), b, enc(CRLF)])),
    fc.constantFrom(enc(`$-1${CRLF}`), enc(`*-1${CRLF}`), enc(`*0${CRLF}`), enc(`$0${CRLF}${CRLF}`)),
    fc.array(tie('value'), { minLength: 1, maxLength: 5 }).map((items) => Buffer.concat([enc(`*${items.length}${CRLF}`), ...items])),
  ),
})).value;

/** RESP3-only types (Redis 6+ after HELLO 3), which a RESP2 connection must never deliver as a reply. */
const resp3 = fc.constantFrom(
  `_${CRLF}`, `#t${CRLF}`, `,1.5${CRLF}`, `(3492890328409238509324850943850943825024385${CRLF}`,
  `=15${CRLF}txt:Some string${CRLF}`, `%1${CRLF}+key${CRLF}:1${CRLF}`, `~2${CRLF}+a${CRLF}+b${CRLF}`,
  `>2${CRLF}+message${CRLF}+hi${CRLF}`, `!9${CRLF}ERR oops!${CRLF}`, `|1${CRLF}+ttl${CRLF}:3${CRLF}+OK${CRLF}`,
).map(enc);

const splits = fc.oneof(fc.array(fc.nat({ max: 4096 }), { maxLength: 12 }), fc.constant(Array.from({ length: 600 }, (_, i) => i)));

const wellFormed = fc.record({ replies: fc.array(resp2, { minLength: 1, maxLength: 6 }), splits }).map(
  ({ replies, splits: s }): RespInput => ({ bytes: Buffer.concat(replies), splits: s, expected: replies }),
);

const mutation = fc.record({ op: fc.constantFrom('flip', 'insert', 'delete', 'truncate'), at: fc.nat(), byte: fc.constantFrom(0x0d, 0x0a, 0x2d, 0x30, 0x39, 0x2a, 0x24, 0x3a, 0x2b, 0x00, 0xff) });

function mutate(bytes: Buffer, ops: ReadonlyArray<{ op: string; at: number; byte: number }>): Buffer {
  let b = Buffer.from(bytes);
  for (const { op, at, byte } of ops) {
    const i = b.length === 0 ? 0 : at % b.length;
    if (op === 'flip' && b.length > 0) b[i] = byte;
    else if (op === 'insert') b = Buffer.concat([b.subarray(0, i), Buffer.from([byte]), b.subarray(i)]);
    else if (op === 'delete') b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
    else if (op === 'truncate') b = b.subarray(0, i);
  }
  return b;
}

const mutated = fc.record({ replies: fc.array(resp2, { minLength: 1, maxLength: 4 }), ops: fc.array(mutation, { minLength: 1, maxLength: 4 }), splits }).map(
  ({ replies, ops, splits: s }): RespInput => ({ bytes: mutate(Buffer.concat(replies), ops), splits: s }),
);

const withResp3 = fc.record({ before: fc.array(resp2, { maxLength: 2 }), three: resp3, after: fc.array(resp2, { maxLength: 2 }), nest: fc.boolean(), splits }).map(
  ({ before, three, after, nest, splits: s }): RespInput => ({
    bytes: Buffer.concat([...before, nest ? Buffer.concat([enc(`*2${CRLF}:1${CRLF}`), three]) : three, ...after]),
    splits: s,
  }),
);

const tokens = fc.array(
  fc.constantFrom('+', '-', ':', '$', '*', CRLF, '\r', '\n', '0', '1', '-1', '2', '3', '-2', '536870913', '99999999999999999999', 'ok', 'x', '\u0000'),
  { maxLength: 40 },
).map((t) => enc(t.join('')));

const arbitrary: fc.Arbitrary<RespInput> = fc.oneof(
  wellFormed,
  mutated,
  withResp3,
  fc.record({ bytes: tokens, splits }),
  fc.record({ bytes: fc.uint8Array({ maxLength: 300 }), splits }),
);

export const respTarget: FuzzTarget<RespInput> = {
  name: 'resp',
  arbitrary,
  check,
  ciRuns: 400,
  encode: (i) => ({ bytes: b64.enc(i.bytes), splits: i.splits, ...(i.expected ? { expected: i.expected.map(b64.enc) } : {}) }),
  decode: (j) => {
    const o = j as { bytes: string; splits: number[]; expected?: string[] };
    return { bytes: b64.dec(o.bytes), splits: o.splits, ...(o.expected ? { expected: o.expected.map(b64.dec) } : {}) };
  },
};
