import { MAX_PAIRS_BYTES, MAX_PAIRS_COUNT } from '../common/limits';

import type { HeaderPairs } from '../common/headers';

export type { HeaderPairs };

/**
 * Proxy-Wasm pairs serialization (cpp-host pairs_util.cc), little-endian:
 *   u32 count; count x (u32 key_len, u32 value_len); count x (key, 0x00, value, 0x00)
 */
export function serializePairs(pairs: ReadonlyArray<readonly [string | Uint8Array, string | Uint8Array]>): Buffer {
  // Sized first and written in place: no intermediate Buffer per key and value (this runs on every header read).
  let size = 4 + pairs.length * 10;
  for (const [k, v] of pairs) size += byteLength(k) + byteLength(v);
  const out = Buffer.allocUnsafe(size);
  out.writeUInt32LE(pairs.length, 0);
  let lenOff = 4;
  let dataOff = 4 + pairs.length * 8;
  for (const [k, v] of pairs) {
    const kLen = put(out, k, dataOff);
    dataOff += kLen;
    out[dataOff++] = 0;
    const vLen = put(out, v, dataOff);
    dataOff += vLen;
    out[dataOff++] = 0;
    out.writeUInt32LE(kLen, lenOff);
    out.writeUInt32LE(vLen, lenOff + 4);
    lenOff += 8;
  }
  return out;
}

function byteLength(s: string | Uint8Array): number {
  return typeof s === 'string' ? Buffer.byteLength(s, 'utf8') : s.length;
}

/** Writes `s` at `offset`; returns the bytes written. */
function put(out: Buffer, s: string | Uint8Array, offset: number): number {
  if (typeof s !== 'string') {
    out.set(s, offset);
    return s.length;
  }
  return s.length === 0 ? 0 : out.write(s, offset, 'utf8');
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
