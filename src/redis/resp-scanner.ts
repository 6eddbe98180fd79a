/**
 * RESP2 reply framing. This finds where one reply ends; it never decodes or re-encodes, so the bytes a plugin
 * gets are exactly the bytes the server sent (higress-abi.md §1.9: one RESP2 reply, first byte `+ - : $ *`,
 * anything else is a protocol error that closes the connection).
 *
 * The scanner is resumable. It keeps its offset into the current reply and a stack of remaining element counts.
 * A bulk header moves the offset straight past the payload, so a 1 MiB bulk that arrives in many chunks is
 * scanned once, not once per chunk. It knows nothing about sockets.
 */
import { RedisProtocolError } from '../common/errors';

/** Returned by RespScanner.scan when the reply is not complete yet. */
export const NEED_MORE = -1;

/** Redis's own proto-max-bulk-len default (512 MB). Larger lengths are treated as garbage. */
export const MAX_BULK_LENGTH = 512 * 1024 * 1024;
/** The most one incomplete reply may hold in the framer: one maximal bulk plus its framing. */
const MAX_BUFFERED_REPLY = MAX_BULK_LENGTH + 64 * 1024;
/** Longest decimal length/count line we accept (sign + 19 digits is already beyond any sane value). */
const MAX_NUMBER_LINE = 20;

const CR = 0x0d;
const LF = 0x0a;
const PLUS = 0x2b; // +
const MINUS = 0x2d; // -
const COLON = 0x3a; // :
const DOLLAR = 0x24; // $
const STAR = 0x2a; // *

export class RespScanner {
  /** Offset, relative to the reply start, of the next unscanned element (or of the bulk end while awaiting one). */
  private offset = 0;
  /** Remaining elements of each open array, innermost last. */
  private readonly stack: number[] = [];
  /** Set while waiting for a bulk payload: offset (relative to reply start) just past its trailing CRLF. */
  private bulkEnd = -1;
  /** Where to resume looking for CR in a line not yet terminated (relative to reply start). */
  private lineSearchFrom = -1;

  /**
   * Scans `buf[start, limit)`, where `start` is the first byte of the reply. Returns the absolute end offset
   * (exclusive) of the one complete reply, or NEED_MORE. Throws RedisProtocolError on bytes that are not RESP2.
   * Between calls for the same reply, `start` may move (the caller compacts its buffer) as long as the bytes
   * already seen are unchanged; after a complete reply or an error the scanner is reset for the next reply.
   */
  scan(buf: Uint8Array, start: number, limit: number): number {
    try {
      const end = this.scanInner(buf, start, limit);
      if (end !== NEED_MORE) this.reset();
      return end;
    } catch (err) {
      this.reset();
      throw err;
    }
  }

  reset(): void {
    this.offset = 0;
    this.stack.length = 0;
    this.bulkEnd = -1;
    this.lineSearchFrom = -1;
  }

  private scanInner(buf: Uint8Array, start: number, limit: number): number {
    for (;;) {
      if (this.bulkEnd >= 0) {
        const end = start + this.bulkEnd;
        if (end > limit) return NEED_MORE;
        if (buf[end - 2] !== CR || buf[end - 1] !== LF) throw new RedisProtocolError('bulk string not terminated by CRLF');
        this.bulkEnd = -1;
        this.offset = end - start;
        if (this.elementDone()) return end;
        continue;
      }
      const pos = start + this.offset;
      if (pos >= limit) return NEED_MORE;
      const type = buf[pos]!;
      if (type !== PLUS && type !== MINUS && type !== COLON && type !== DOLLAR && type !== STAR) {
        throw new RedisProtocolError(`unexpected RESP type byte 0x${type.toString(16).padStart(2, '0')}`);
      }
      const from = this.lineSearchFrom >= 0 ? start + this.lineSearchFrom : pos + 1;
      const cr = findCrlf(buf, from, limit);
      if (cr < 0) {
        // Resume at the last byte next time: it may be the CR of a CRLF split across chunks.
        this.lineSearchFrom = Math.max(pos + 1, limit - 1) - start;
        if (type !== PLUS && type !== MINUS && limit - pos > MAX_NUMBER_LINE + 2) {
          throw new RedisProtocolError('RESP length line too long');
        }
        return NEED_MORE;
      }
      this.lineSearchFrom = -1;
      const lineEnd = cr + 2; // absolute, past CRLF
      switch (type) {
        case PLUS:
        case MINUS:
          this.offset = lineEnd - start;
          if (this.elementDone()) return lineEnd;
          break;
        case COLON:
          parseInteger(buf, pos + 1, cr);
          this.offset = lineEnd - start;
          if (this.elementDone()) return lineEnd;
          break;
        case DOLLAR: {
          const len = parseInteger(buf, pos + 1, cr);
          if (len === -1) {
            this.offset = lineEnd - start;
            if (this.elementDone()) return lineEnd;
          } else if (len < -1 || len > MAX_BULK_LENGTH) {
            throw new RedisProtocolError(`invalid bulk length ${len}`);
          } else {
            this.bulkEnd = lineEnd + len + 2 - start;
          }
          break;
        }
        default: {
          // STAR
          const count = parseInteger(buf, pos + 1, cr);
          this.offset = lineEnd - start;
          if (count === -1 || count === 0) {
            if (this.elementDone()) return lineEnd;
          } else if (count < -1) {
            throw new RedisProtocolError(`invalid array length ${count}`);
          } else {
            this.stack.push(count);
          }
        }
      }
    }
  }

  /** One element finished; closes every array it completes. True when the whole reply is complete. */
  private elementDone(): boolean {
    const stack = this.stack;
    while (stack.length > 0) {
      const top = stack.length - 1;
      const left = stack[top]! - 1;
      if (left > 0) {
        stack[top] = left;
        return false;
      }
      stack.pop();
    }
    return true;
  }
}

/** Absolute index of the CR of the first CRLF in buf[from, limit), or -1. */
function findCrlf(buf: Uint8Array, from: number, limit: number): number {
  let i = from;
  while (i < limit - 1) {
    const cr = buf.indexOf(CR, i);
    if (cr < 0 || cr >= limit - 1) return -1;
    if (buf[cr + 1] === LF) return cr;
    i = cr + 1;
  }
  return -1;
}

/** Parses `[-]digits` in buf[from, to). */
function parseInteger(buf: Uint8Array, from: number, to: number): number {
  let i = from;
  let negative = false;
  if (i < to && buf[i] === MINUS) {
    negative = true;
    i++;
  }
  if (i >= to || to - from > MAX_NUMBER_LINE) throw new RedisProtocolError('invalid RESP integer');
  let n = 0;
  for (; i < to; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) throw new RedisProtocolError('invalid RESP integer');
    n = n * 10 + d;
  }
  return negative ? -n : n;
}

/**
 * Accumulates socket chunks and hands out each complete reply as its own Buffer. When nothing is pending,
 * replies are framed straight from the chunk and handed out as slices of it, without a copy: the caller must
 * pass chunks it never writes to or reuses afterwards (a net.Socket's 'data' chunks are fresh for every read).
 * Replies completed in the accumulator are copies (the accumulator is reused).
 */
export class RespFramer {
  private readonly scanner = new RespScanner();
  private acc: Buffer = Buffer.allocUnsafe(0);
  private start = 0;
  private end = 0;

  /** Bytes received but not yet part of a complete reply. */
  get buffered(): number {
    return this.end - this.start;
  }

  /** Feeds one chunk; calls `onReply` for every complete reply, in order. Throws RedisProtocolError. */
  push(chunk: Buffer, onReply: (reply: Buffer) => void): void {
    if (this.start === this.end) {
      // Fast path: frame straight from the chunk; keep only the incomplete tail.
      let from = 0;
      for (;;) {
        const stop = this.scanner.scan(chunk, from, chunk.length);
        if (stop === NEED_MORE) break;
        onReply(chunk.subarray(from, stop));
        from = stop;
        if (from === chunk.length) return;
      }
      this.start = 0;
      this.end = 0;
      this.append(chunk, from);
      return;
    }
    this.append(chunk, 0);
    for (;;) {
      const stop = this.scanner.scan(this.acc, this.start, this.end);
      if (stop === NEED_MORE) return;
      onReply(Buffer.from(this.acc.subarray(this.start, stop)));
      this.start = stop;
      if (this.start === this.end) {
        this.start = 0;
        this.end = 0;
        if (this.acc.length > 64 * 1024) this.acc = Buffer.allocUnsafe(0); // don't pin a big buffer when idle
        return;
      }
    }
  }

  reset(): void {
    this.scanner.reset();
    this.acc = Buffer.allocUnsafe(0);
    this.start = 0;
    this.end = 0;
  }

  private append(chunk: Buffer, from: number): void {
    const n = chunk.length - from;
    if (n === 0) return;
    // One bulk is capped by its length line, but an array's total is not: bound what one reply may buffer.
    if (this.end - this.start + n > MAX_BUFFERED_REPLY) throw new RedisProtocolError(`reply larger than ${MAX_BUFFERED_REPLY} bytes`);
    if (this.end + n > this.acc.length) {
      const live = this.end - this.start;
      if (live + n <= this.acc.length && this.start > 0) {
        this.acc.copy(this.acc, 0, this.start, this.end);
      } else {
        const grown = Buffer.allocUnsafe(Math.max(live + n, this.acc.length * 2, 4096));
        this.acc.copy(grown, 0, this.start, this.end);
        this.acc = grown;
      }
      this.start = 0;
      this.end = live;
    }
    chunk.copy(this.acc, this.end, from);
    this.end += n;
  }
}
