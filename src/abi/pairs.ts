import { MAX_PAIRS_BYTES, MAX_PAIRS_COUNT } from '../common/limits';

import type { HeaderPairs } from '../common/headers';

export type { HeaderPairs };

/**
 * Proxy-Wasm pairs serialization (cpp-host pairs_util.cc), little-endian:
 *   u32 count; count x (u32 key_len, u32 value_len); count x (key, 0x00, value, 0x00)
 */
export function serializePairs(pairs: ReadonlyArray<readonly [string | Uint8Array, string | Uint8Array]>): Buffer {
  const encoded = pairs.map(([k, v]) => [toBytes(k), toBytes(v)] as const);
  let size = 4;
  for (const [k, v] of encoded) size += 8 + k.length + 1 + v.length + 1;
  const out = Buffer.allocUnsafe(size);
  out.writeUInt32LE(encoded.length, 0);
  let lenOff = 4;
  let dataOff = 4 + encoded.length * 8;
  for (const [k, v] of encoded) {
    out.writeUInt32LE(k.length, lenOff);
    out.writeUInt32LE(v.length, lenOff + 4);
    lenOff += 8;
    out.set(k, dataOff);
    dataOff += k.length;
    out[dataOff++] = 0;
    out.set(v, dataOff);
    dataOff += v.length;
    out[dataOff++] = 0;
  }
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

function toBytes(s: string | Uint8Array): Uint8Array {
  return typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
}
