/**
 * Just enough protobuf wire format to read a SotW DiscoveryResponse without decoding its resources. A SotW EDS
 * push at 10 000 clusters carries all 10 000 CLAs (~2 MB) to change one; decoding every `Any` with protobufjs
 * (an object and a Buffer view each) cost more than the rest of the update. Here the response is one scan that
 * records where each `resources` entry (field 2) sits; the client reads a resource's name and compares its raw
 * bytes with the accepted ones, and decodes only the resources that changed.
 */

/** `envoy.service.discovery.v3.DiscoveryResponse` with its resources left encoded. */
export interface RawDiscoveryResponse {
  readonly buf: Buffer;
  readonly version_info: string;
  readonly type_url: string;
  readonly nonce: string;
  /** `[anyStart[i], anyEnd[i])` is the i-th encoded `google.protobuf.Any` of `resources` in `buf`. */
  readonly anyStart: readonly number[];
  readonly anyEnd: readonly number[];
}

const WIRE_VARINT = 0;
const WIRE_I64 = 1;
const WIRE_LEN = 2;
const WIRE_I32 = 5;

/** A cursor over `buf`; throws RangeError on truncated or unsupported input. */
class Cursor {
  constructor(
    readonly buf: Uint8Array,
    public pos: number,
    readonly end: number,
  ) {}

  varint(): number {
    if (this.pos >= this.end) throw new RangeError('truncated varint');
    const buf = this.buf;
    let b = buf[this.pos++]!;
    if (b < 0x80) return b;
    let result = b & 0x7f;
    let mul = 0x80;
    for (;;) {
      if (this.pos >= this.end) throw new RangeError('truncated varint');
      b = buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 0x80;
      if (mul > 2 ** 63) throw new RangeError('varint too long');
    }
  }

  /** Reads a field tag; field number 0 and tags beyond 32 bits are malformed (protobuf C++ refuses them). */
  tag(): number {
    const tag = this.varint();
    if (tag < 8 || tag > 0xffffffff) throw new RangeError(`invalid tag ${tag}`);
    return tag;
  }

  /** Skips the value of a field with wire type `wire`. */
  skip(wire: number): void {
    switch (wire) {
      case WIRE_VARINT:
        this.varint();
        return;
      case WIRE_I64:
        this.pos += 8;
        break;
      case WIRE_LEN: {
        // Not `this.pos += this.varint()`: that reads pos before the varint advances it.
        const len = this.varint();
        this.pos += len;
        break;
      }
      case WIRE_I32:
        this.pos += 4;
        break;
      default:
        throw new RangeError(`unsupported wire type ${wire}`);
    }
    if (this.pos > this.end) throw new RangeError('truncated field');
  }

  /** Reads a length prefix; returns the end of the value (the cursor is at its start). */
  lengthDelimited(): number {
    const len = this.varint();
    const end = this.pos + len;
    if (end > this.end) throw new RangeError('truncated field');
    return end;
  }
}

const decoder = new TextDecoder();

/** A Buffer's toString(range) makes no intermediate Buffer object (a view would cost more than the string). */
function utf8(buf: Uint8Array, start: number, end: number): string {
  return Buffer.isBuffer(buf) ? buf.toString('utf8', start, end) : decoder.decode(buf.subarray(start, end));
}

/** Scans a serialized DiscoveryResponse. Throws RangeError on malformed input. */
export function decodeDiscoveryResponse(buf: Buffer): RawDiscoveryResponse {
  const c = new Cursor(buf, 0, buf.length);
  let version = '';
  let typeUrl = '';
  let nonce = '';
  const anyStart: number[] = [];
  const anyEnd: number[] = [];
  while (c.pos < c.end) {
    const tag = c.tag();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (wire !== WIRE_LEN || (field !== 1 && field !== 2 && field !== 4 && field !== 5)) {
      c.skip(wire);
      continue;
    }
    const end = c.lengthDelimited();
    const start = c.pos;
    c.pos = end;
    if (field === 2) {
      anyStart.push(start);
      anyEnd.push(end);
    } else if (field === 1) version = utf8(buf, start, end);
    else if (field === 4) typeUrl = utf8(buf, start, end);
    else nonce = utf8(buf, start, end);
  }
  return { buf, version_info: version, type_url: typeUrl, nonce, anyStart, anyEnd };
}

/**
 * Locates the fields of an encoded `google.protobuf.Any` in `buf[start, end)`: writes `[typeStart, typeEnd,
 * valueStart, valueEnd]` into `out` (a missing field is an empty range). Throws RangeError on malformed input.
 */
export function locateAny(buf: Uint8Array, start: number, end: number, out: number[]): void {
  out[0] = out[1] = out[2] = out[3] = start;
  const c = new Cursor(buf, start, end);
  while (c.pos < c.end) {
    const tag = c.tag();
    const field = tag >>> 3;
    const wire = tag & 7;
    if (wire !== WIRE_LEN || (field !== 1 && field !== 2)) {
      c.skip(wire);
      continue;
    }
    const e = c.lengthDelimited();
    const s = c.pos;
    c.pos = e;
    const i = field === 1 ? 0 : 2;
    out[i] = s;
    out[i + 1] = e;
  }
}

/** Does `buf[start, end)` hold exactly `expected`? */
export function rangeEquals(buf: Buffer, start: number, end: number, expected: Buffer): boolean {
  return end - start === expected.length && expected.compare(buf, start, end) === 0;
}

/** Reads a top-level length-delimited field (e.g. a resource's name) of `bytes[start, end)` without decoding it. */
export function peekStringField(bytes: Uint8Array, fieldNumber: number, start = 0, end = bytes.length): string | undefined {
  try {
    const c = new Cursor(bytes, start, end);
    while (c.pos < c.end) {
      const tag = c.tag();
      if ((tag & 7) === WIRE_LEN && tag >>> 3 === fieldNumber) {
        const e = c.lengthDelimited();
        return utf8(bytes, c.pos, e);
      }
      c.skip(tag & 7);
    }
  } catch {
    return undefined;
  }
  return undefined;
}

/**
 * Where the value of an encoded `google.protobuf.Any` in `buf[start, end)` starts when the Any is laid out as
 * encoders write it (type_url < 128 bytes, then value, nothing else); -1 otherwise (locateAny() reads any layout).
 */
export function canonicalAnyValueStart(buf: Uint8Array, start: number, end: number): number {
  if (end - start < 4 || buf[start] !== 0x0a) return -1;
  const typeLength = buf[start + 1]!;
  if (typeLength >= 0x80) return -1;
  let p = start + 2 + typeLength;
  if (p >= end || buf[p] !== 0x12) return -1;
  p++;
  let length = 0;
  for (let shift = 0; ; shift += 7) {
    if (p >= end || shift > 21) return -1;
    const b = buf[p++]!;
    length += (b & 0x7f) * 2 ** shift;
    if (b < 0x80) break;
  }
  return p + length === end ? p : -1;
}

/**
 * A 31-bit hash of `view[start, end)` (a small-integer key), four bytes per multiply: a hash index of names, where
 * a collision costs a slower lookup, not a wrong one.
 */
export function bytesHash(view: DataView, start: number, end: number): number {
  let h = (end - start) ^ 0x811c9dc5;
  let k = start;
  for (; k + 4 <= end; k += 4) {
    h = Math.imul(h ^ view.getInt32(k, true), 0x5bd1e995);
    h ^= h >>> 15;
  }
  for (; k < end; k++) h = Math.imul(h ^ view.getUint8(k), 0x01000193);
  h = Math.imul(h ^ (h >>> 13), 0x5bd1e995);
  return (h ^ (h >>> 15)) & 0x7fffffff;
}

/**
 * bytesHash() of a message's name when it is its first field (field 1, length-delimited, under 128 bytes, as
 * encoders write a resource's name); -1 otherwise.
 */
export function leadingNameHash(view: DataView, start: number, end: number): number {
  if (end - start < 2 || view.getUint8(start) !== 0x0a) return -1;
  const length = view.getUint8(start + 1);
  if (length >= 0x80 || start + 2 + length > end) return -1;
  return bytesHash(view, start + 2, start + 2 + length);
}

/** A DataView of all of `bytes`. */
export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Whether `a[aStart, aStart + length)` equals `b[bStart, bStart + length)`, read four bytes at a time in JS: for
 * thousands of short ranges this beats a native Buffer.compare() call per range.
 */
export function viewRangesEqual(a: DataView, aStart: number, b: DataView, bStart: number, length: number): boolean {
  let k = 0;
  for (; k + 4 <= length; k += 4) if (a.getInt32(aStart + k, true) !== b.getInt32(bStart + k, true)) return false;
  for (; k < length; k++) if (a.getUint8(aStart + k) !== b.getUint8(bStart + k)) return false;
  return true;
}
