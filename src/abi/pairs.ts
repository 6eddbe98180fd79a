import { MAX_PAIRS_BYTES, MAX_PAIRS_COUNT } from '../common/limits';

import type { HeaderPairs } from '../common/headers';

export type { HeaderPairs };

type PairsLike = ReadonlyArray<readonly [string | Uint8Array, string | Uint8Array]>;

/** Strings up to this length are measured and written by a JS loop when ASCII: no native call for a header. */
const SHORT = 128;
const encoder = new TextEncoder();

/** UTF-8 byte length of `s`. */
export function utf8Length(s: string): number {
  const n = s.length;
  if (n > SHORT) return Buffer.byteLength(s, 'utf8');
  for (let i = 0; i < n; i++) if (s.charCodeAt(i) >= 0x80) return Buffer.byteLength(s, 'utf8');
  return n;
}

/**
 * Writes `s` as UTF-8 at `out[offset]`; `len` is its utf8Length. UTF-8 is never shorter than the UTF-16 length,
 * so `len === s.length` means ASCII, copied char by char.
 */
export function writeUtf8(out: Uint8Array, offset: number, s: string, len: number): void {
  if (len === s.length && len <= SHORT) {
    for (let i = 0; i < len; i++) out[offset + i] = s.charCodeAt(i);
    return;
  }
  encoder.encodeInto(s, out.subarray(offset, offset + len));
}

function byteLength(s: string | Uint8Array): number {
  return typeof s === 'string' ? utf8Length(s) : s.length;
}

/** The size of the serialized pairs (see writePairs). */
export function pairsByteSize(pairs: PairsLike): number {
  let size = 4 + pairs.length * 10;
  for (let i = 0; i < pairs.length; i++) {
    const p = pairs[i]!;
    size += byteLength(p[0]) + byteLength(p[1]);
  }
  return size;
}

function put(out: Uint8Array, offset: number, s: string | Uint8Array): number {
  if (typeof s !== 'string') {
    out.set(s, offset);
    return s.length;
  }
  const n = utf8Length(s);
  writeUtf8(out, offset, s, n);
  return n;
}

function putU32(out: Uint8Array, offset: number, v: number): void {
  out[offset] = v & 0xff;
  out[offset + 1] = (v >>> 8) & 0xff;
  out[offset + 2] = (v >>> 16) & 0xff;
  out[offset + 3] = (v >>> 24) & 0xff;
}

/**
 * Proxy-Wasm pairs serialization (cpp-host pairs_util.cc), little-endian, written at `out[offset]` (guest memory
 * or a Buffer) in the pairsByteSize(pairs) bytes there:
 *   u32 count; count x (u32 key_len, u32 value_len); count x (key, 0x00, value, 0x00)
 */
export function writePairs(pairs: PairsLike, out: Uint8Array, offset: number): void {
  putU32(out, offset, pairs.length);
  let lenOff = offset + 4;
  let dataOff = offset + 4 + pairs.length * 8;
  for (let i = 0; i < pairs.length; i++) {
    const p = pairs[i]!;
    const kLen = put(out, dataOff, p[0]);
    dataOff += kLen;
    out[dataOff++] = 0;
    const vLen = put(out, dataOff, p[1]);
    dataOff += vLen;
    out[dataOff++] = 0;
    putU32(out, lenOff, kLen);
    putU32(out, lenOff + 4, vLen);
    lenOff += 8;
  }
}

/** The pairs serialized into a Buffer of their own (host functions write into guest memory directly instead). */
export function serializePairs(pairs: PairsLike): Buffer {
  const out = Buffer.allocUnsafe(pairsByteSize(pairs));
  writePairs(pairs, out, 0);
  return out;
}

/** Parses serialized pairs; undefined if malformed or over the cpp-host caps. Empty input (0 or 1 byte) is an empty map. */
export function deserializePairs(bytes: Uint8Array): HeaderPairs | undefined {
  if (bytes.length <= 1) return [];
  if (bytes.length > MAX_PAIRS_BYTES || bytes.length < 4) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(0, true);
  if (count > MAX_PAIRS_COUNT || 4 + count * 8 > bytes.length) return undefined;
  const out: HeaderPairs = [];
  let dataOff = 4 + count * 8;
  for (let i = 0; i < count; i++) {
    const kLen = view.getUint32(4 + i * 8, true);
    const vLen = view.getUint32(8 + i * 8, true);
    if (dataOff + kLen + 1 + vLen + 1 > bytes.length) return undefined;
    const key = Buffer.from(bytes.buffer, bytes.byteOffset + dataOff, kLen).toString('utf8');
    dataOff += kLen + 1;
    const value = Buffer.from(bytes.buffer, bytes.byteOffset + dataOff, vLen).toString('utf8');
    dataOff += vLen + 1;
    out.push([key, value]);
  }
  return out;
}
