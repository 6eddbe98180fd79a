/**
 * Property values as Envoy serializes them for proxy_get_property (context.cc serializeValue):
 * strings/bytes raw, integers 8 bytes LE, bools 1 byte, maps in the pairs format.
 */
import { serializePairs } from './pairs';

/** Maps are pairs; keys and values may be bytes (serialized nested values, as Envoy's serializeValue). */
export type PropertyValue = string | Buffer | bigint | number | boolean | ReadonlyArray<readonly [string | Uint8Array, string | Uint8Array]>;

export function serializeProperty(value: PropertyValue): Buffer {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (Buffer.isBuffer(value)) return value;
  if (typeof value === 'boolean') return Buffer.from([value ? 1 : 0]);
  if (typeof value === 'number' || typeof value === 'bigint') {
    const out = Buffer.alloc(8);
    if (typeof value === 'number' && !Number.isInteger(value)) out.writeDoubleLE(value);
    else out.writeBigInt64LE(BigInt(value));
    return out;
  }
  return serializePairs(value);
}

/** Paths arrive as `\0`-joined segments; dotted forms (`request.path`) are accepted too. */
export function splitPropertyPath(raw: string): string[] {
  return raw.includes('\0') ? raw.split('\0') : raw.split('.');
}
