import { ConfigError } from '../common/errors';

/** Reading an extension's typed_config as proto3 JSON, field by field, with path-named errors. */
export type JsonFields = Record<string, unknown>;

export function isObject(v: unknown): v is JsonFields {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An optional message field: undefined when absent, an error when not an object. */
export function object(v: unknown, path: string): JsonFields | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v)) throw new ConfigError('must be an object', path);
  return v;
}

/** Refuses, with its path, any set field not in `fields`: what is not implemented is never accepted silently. */
export function only(o: JsonFields, fields: readonly string[], path: string): void {
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined || v === null || fields.includes(k)) continue;
    throw new ConfigError('is not supported by this data plane', `${path}.${k}`);
  }
}

/** A string field; absent: `fallback`, or "is required" without one. */
export function str(v: unknown, path: string, fallback?: string): string {
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new ConfigError('is required', path);
  }
  if (typeof v !== 'string') throw new ConfigError('must be a string', path);
  return v;
}
