import * as protobuf from 'protobufjs';
import { ConfigError } from '../common/errors';
import { recordOrThrow } from '../config/error-collector';
import type { EnvoyProtos } from './protos';

/**
 * Proto3 JSON mapping (https://protobuf.dev/programming-guides/json/) over protobufjs reflection, because
 * protobufjs's fromObject/toObject are not proto3 JSON (no Duration strings, wrappers, Struct). Parsing is
 * strict: unknown fields, unknown Any types, bad enum names and out-of-range numbers are ConfigErrors that
 * name the JSON path. Output uses the original (snake_case) field names and omits defaults, like Envoy's
 * /config_dump.
 */

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** A protobufjs message or a plain object of the same shape (what Type.encode accepts and decode returns). */
export type ProtoObject = Record<string, unknown>;

export interface ToJsonOptions {
  /**
   * What to do with an Any whose type is not in the registry: 'error' (default) throws a ConfigError naming the
   * path; 'opaque' emits `{"@type": url, "value": base64}` (not proto3 JSON, but never loses data).
   */
  readonly unknownAny?: 'error' | 'opaque';
}

const WKT = '.google.protobuf.';

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function describe(v: unknown): string {
  return v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v;
}

function fieldIndex(type: protobuf.Type): Map<string, protobuf.Field> {
  const cache = fieldIndexCache.get(type);
  if (cache) return cache;
  const m = new Map<string, protobuf.Field>();
  for (const f of type.fieldsArray) {
    m.set(f.name, f);
    m.set(camel(f.name), f);
    const jsonName = (f.options as Record<string, unknown> | undefined)?.['json_name'];
    if (typeof jsonName === 'string') m.set(jsonName, f);
  }
  fieldIndexCache.set(type, m);
  return m;
}
const fieldIndexCache = new WeakMap<protobuf.Type, Map<string, protobuf.Field>>();

function child(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

// ---------------------------------------------------------------------------------------------------------------
// JSON -> message

/** Parses proto3 JSON into a plain object that `type.encode()` accepts. Throws ConfigError with the JSON path. */
export function fromProtoJson(protos: EnvoyProtos, type: protobuf.Type, json: unknown, path = ''): ProtoObject {
  return parseMessage(protos, type, json, path);
}

/** Parses proto3 JSON, encodes and decodes it: the result is a real protobufjs message of `type`. */
export function decodeProtoJson(protos: EnvoyProtos, type: protobuf.Type, json: unknown, path = ''): protobuf.Message {
  const plain = parseMessage(protos, type, json, path);
  return type.decode(type.encode(plain).finish());
}

function parseMessage(protos: EnvoyProtos, type: protobuf.Type, json: unknown, path: string): ProtoObject {
  const wkt = type.fullName.startsWith(WKT) ? type.fullName.slice(WKT.length) : '';
  if (wkt) {
    const special = parseWellKnown(protos, wkt, type, json, path);
    if (special !== undefined) return special;
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new ConfigError(`expected an object for ${type.fullName.slice(1)}, got ${describe(json)}`, path);
  }
  const out: ProtoObject = {};
  const index = fieldIndex(type);
  const seenOneofs = new Map<string, string>();
  for (const [key, value] of Object.entries(json as Record<string, unknown>)) {
    try {
      const field = index.get(key);
      const p = child(path, key);
      if (!field) throw new ConfigError(`unknown field '${key}' in ${type.fullName.slice(1)}`, p);
      if (value === null && !isValueType(field)) continue; // null means "default" except for google.protobuf.Value
      if (field.partOf && !isSyntheticOneof(field.partOf)) {
        const other = seenOneofs.get(field.partOf.name);
        if (other !== undefined && other !== field.name) {
          throw new ConfigError(`oneof '${field.partOf.name}' has both '${other}' and '${field.name}'`, p);
        }
        seenOneofs.set(field.partOf.name, field.name);
      }
      out[field.name] = parseField(protos, field, value, p);
    } catch (err) {
      recordOrThrow(err); // collecting: the field is left out and decoding goes on
    }
  }
  return out;
}

function isSyntheticOneof(o: protobuf.OneOf): boolean {
  return o.fieldsArray.length === 1 && o.name === `_${o.fieldsArray[0]?.name ?? ''}`;
}

function isValueType(field: protobuf.Field): boolean {
  const t = field.resolvedType;
  return (t instanceof protobuf.Type && t.fullName === '.google.protobuf.Value') ||
    (t instanceof protobuf.Enum && t.fullName === '.google.protobuf.NullValue');
}

function parseField(protos: EnvoyProtos, field: protobuf.Field, value: unknown, path: string): unknown {
  if (field instanceof protobuf.MapField) {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      throw new ConfigError(`expected an object for map field, got ${describe(value)}`, path);
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      const p = `${path}[${JSON.stringify(k)}]`;
      parseScalar(field.keyType, k, p, true); // validates the key
      out[k] = parseSingle(protos, field, v, p);
    }
    return out;
  }
  if (field.repeated) {
    if (!Array.isArray(value)) throw new ConfigError(`expected an array, got ${describe(value)}`, path);
    return value.map((v, i) => parseSingle(protos, field, v, `${path}[${i}]`));
  }
  return parseSingle(protos, field, value, path);
}

function parseSingle(protos: EnvoyProtos, field: protobuf.Field, value: unknown, path: string): unknown {
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Type) return parseMessage(protos, rt, value, path);
  if (rt instanceof protobuf.Enum) return parseEnum(rt, value, path);
  return parseScalar(field.type, value, path, false);
}

function parseEnum(e: protobuf.Enum, value: unknown, path: string): number {
  if (e.fullName === '.google.protobuf.NullValue' && value === null) return 0;
  if (typeof value === 'string') {
    const n = e.values[value];
    if (n === undefined) throw new ConfigError(`unknown ${e.fullName.slice(1)} value '${value}'`, path);
    return n;
  }
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  throw new ConfigError(`expected an enum name for ${e.fullName.slice(1)}, got ${describe(value)}`, path);
}

const INT32_RANGES: Record<string, readonly [number, number]> = {
  int32: [-2147483648, 2147483647],
  sint32: [-2147483648, 2147483647],
  sfixed32: [-2147483648, 2147483647],
  uint32: [0, 4294967295],
  fixed32: [0, 4294967295],
};

function parseScalar(type: string, value: unknown, path: string, isKey: boolean): unknown {
  switch (type) {
    case 'string':
      if (typeof value !== 'string') throw new ConfigError(`expected a string, got ${describe(value)}`, path);
      return value;
    case 'bool':
      if (typeof value === 'boolean') return value;
      if (isKey && (value === 'true' || value === 'false')) return value === 'true';
      throw new ConfigError(`expected a boolean, got ${describe(value)}`, path);
    case 'bytes': {
      if (typeof value !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(value)) {
        throw new ConfigError('expected base64 bytes', path);
      }
      return Buffer.from(value.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
    }
    case 'double':
    case 'float': {
      if (typeof value === 'number') return value;
      if (value === 'NaN') return NaN;
      if (value === 'Infinity') return Infinity;
      if (value === '-Infinity') return -Infinity;
      if (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value))) return Number(value);
      throw new ConfigError(`expected a number, got ${describe(value)}`, path);
    }
    case 'int64':
    case 'sint64':
    case 'sfixed64':
    case 'uint64':
    case 'fixed64': {
      const s = typeof value === 'number' ? (Number.isInteger(value) ? String(value) : '') : typeof value === 'string' ? value : '';
      if (!/^-?\d+$/.test(s)) throw new ConfigError(`expected an integer, got ${describe(value)}`, path);
      const big = BigInt(s);
      const unsigned = type === 'uint64' || type === 'fixed64';
      const min = unsigned ? 0n : -(2n ** 63n);
      const max = unsigned ? 2n ** 64n - 1n : 2n ** 63n - 1n;
      if (big < min || big > max) throw new ConfigError(`${type} out of range: ${s}`, path);
      if (big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(big);
      return s; // protobufjs's writer takes decimal strings for 64-bit fields
    }
    default: {
      const range = INT32_RANGES[type];
      if (!range) throw new ConfigError(`unsupported scalar type ${type}`, path);
      const n = typeof value === 'number' ? value : typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : NaN;
      if (!Number.isInteger(n)) throw new ConfigError(`expected an integer, got ${describe(value)}`, path);
      if (n < range[0] || n > range[1]) throw new ConfigError(`${type} out of range: ${n}`, path);
      return n;
    }
  }
}

const WRAPPER_SCALARS: Record<string, string> = {
  DoubleValue: 'double',
  FloatValue: 'float',
  Int64Value: 'int64',
  UInt64Value: 'uint64',
  Int32Value: 'int32',
  UInt32Value: 'uint32',
  BoolValue: 'bool',
  StringValue: 'string',
  BytesValue: 'bytes',
};

function parseWellKnown(protos: EnvoyProtos, wkt: string, type: protobuf.Type, json: unknown, path: string): ProtoObject | undefined {
  const scalar = WRAPPER_SCALARS[wkt];
  if (scalar) return { value: parseScalar(scalar, json, path, false) };
  switch (wkt) {
    case 'Any':
      return parseAny(protos, json, path);
    case 'Duration':
      return parseDuration(json, path);
    case 'Timestamp':
      return parseTimestamp(json, path);
    case 'FieldMask':
      if (typeof json !== 'string') throw new ConfigError(`expected a FieldMask string, got ${describe(json)}`, path);
      return { paths: json === '' ? [] : json.split(',').map((p) => p.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)) };
    case 'Struct':
      if (json === null || typeof json !== 'object' || Array.isArray(json)) {
        throw new ConfigError(`expected an object for Struct, got ${describe(json)}`, path);
      }
      return parseStruct(json as Record<string, unknown>, path);
    case 'Value':
      return parseValue(json, path);
    case 'ListValue':
      if (!Array.isArray(json)) throw new ConfigError(`expected an array for ListValue, got ${describe(json)}`, path);
      return { values: json.map((v, i) => parseValue(v, `${path}[${i}]`)) };
    case 'Empty':
      if (json === null || typeof json !== 'object' || Array.isArray(json) || Object.keys(json).length > 0) {
        throw new ConfigError('expected {} for Empty', path);
      }
      return {};
    default:
      void type;
      return undefined;
  }
}

// protobufjs's bundled struct.proto uses camelCase field names (nullValue, structValue, ...).
/** protobuf's JSON parser refuses values nested deeper than this (and so does Envoy's config loading). */
const MAX_JSON_DEPTH = 100;

function parseStruct(json: Record<string, unknown>, path: string, depth = 0): ProtoObject {
  if (depth > MAX_JSON_DEPTH) throw new ConfigError(`nested deeper than ${MAX_JSON_DEPTH} levels`, path);
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(json)) fields[k] = parseValue(v, `${path}[${JSON.stringify(k)}]`, depth + 1);
  return { fields };
}

function parseValue(json: unknown, path: string, depth = 0): ProtoObject {
  if (depth > MAX_JSON_DEPTH) throw new ConfigError(`nested deeper than ${MAX_JSON_DEPTH} levels`, path);
  if (json === null) return { nullValue: 0 };
  if (typeof json === 'number') return { numberValue: json };
  if (typeof json === 'string') return { stringValue: json };
  if (typeof json === 'boolean') return { boolValue: json };
  if (Array.isArray(json)) return { listValue: { values: json.map((v, i) => parseValue(v, `${path}[${i}]`, depth + 1)) } };
  if (typeof json === 'object') return { structValue: parseStruct(json as Record<string, unknown>, path, depth + 1) };
  throw new ConfigError(`unsupported JSON value ${describe(json)}`, path);
}

function parseAny(protos: EnvoyProtos, json: unknown, path: string): ProtoObject {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new ConfigError(`expected an object for Any, got ${describe(json)}`, path);
  }
  const obj = json as Record<string, unknown>;
  const url = obj['@type'];
  if (typeof url !== 'string' || url === '') throw new ConfigError('Any without "@type"', path);
  const inner = protos.lookup(url);
  if (!inner) throw new ConfigError(`unknown Any type '${url}'`, child(path, '@type'));
  const { '@type': _drop, ...rest } = obj;
  void _drop;
  const isWkt = inner.fullName.startsWith(WKT) && inner.fullName !== `${WKT}Empty` && parseWellKnownProbe(inner);
  const body = isWkt ? (rest as Record<string, unknown>)['value'] : rest;
  if (isWkt && Object.keys(rest).some((k) => k !== 'value')) {
    throw new ConfigError(`Any of well-known type ${url} takes only "value"`, path);
  }
  const plain = parseMessage(protos, inner, body, path);
  return { type_url: url, value: inner.encode(plain).finish() };
}

function parseWellKnownProbe(t: protobuf.Type): boolean {
  const n = t.fullName.slice(WKT.length);
  return n in WRAPPER_SCALARS || ['Any', 'Duration', 'Timestamp', 'FieldMask', 'Struct', 'Value', 'ListValue'].includes(n);
}

function parseDuration(json: unknown, path: string): ProtoObject {
  const m = typeof json === 'string' ? /^(-)?(\d+)(?:\.(\d{1,9}))?s$/.exec(json) : null;
  if (!m) throw new ConfigError(`expected a Duration string such as "1.5s", got ${JSON.stringify(json)}`, path);
  const sign = m[1] ? -1 : 1;
  const seconds = Number(m[2]);
  if (seconds > 315576000000) throw new ConfigError('Duration out of range', path);
  const nanos = m[3] ? Number(m[3].padEnd(9, '0')) : 0;
  return { seconds: sign * seconds, nanos: sign * nanos };
}

function parseTimestamp(json: unknown, path: string): ProtoObject {
  const m = typeof json === 'string'
    ? /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$/.exec(json)
    : null;
  if (!m) throw new ConfigError(`expected an RFC 3339 timestamp, got ${JSON.stringify(json)}`, path);
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (Number.isNaN(ms)) throw new ConfigError(`invalid timestamp ${String(json)}`, path);
  return { seconds: Math.floor(ms / 1000), nanos: m[2] ? Number(m[2].padEnd(9, '0')) : 0 };
}

// ---------------------------------------------------------------------------------------------------------------
// message -> JSON

/** Serializes a decoded message (or plain object of the same shape) as proto3 JSON with default values omitted. */
export function toProtoJson(protos: EnvoyProtos, type: protobuf.Type, msg: ProtoObject, options: ToJsonOptions = {}, path = ''): JsonObject {
  const v = writeMessage(protos, type, msg, options, path);
  if (v === null || typeof v !== 'object' || Array.isArray(v)) {
    throw new ConfigError(`${type.fullName.slice(1)} does not serialize to a JSON object`, path);
  }
  return v;
}

function writeMessage(protos: EnvoyProtos, type: protobuf.Type, msg: ProtoObject | null, options: ToJsonOptions, path: string): JsonValue {
  msg ??= {}; // a message-valued map entry or repeated item without a value (protobufjs gives null)
  if (type.fullName.startsWith(WKT)) {
    const special = writeWellKnown(protos, type.fullName.slice(WKT.length), msg, options, path);
    if (special !== undefined) return special;
  }
  const out: JsonObject = {};
  for (const field of type.fieldsArray) {
    if (field.partOf && !Object.prototype.hasOwnProperty.call(msg, field.name)) continue;
    const value = msg[field.name];
    if (value === undefined || value === null) continue;
    const p = child(path, field.name);
    if (field instanceof protobuf.MapField) {
      const entries = Object.entries(value as Record<string, unknown>);
      if (entries.length === 0) continue;
      const m: JsonObject = {};
      for (const [k, v] of entries) m[k] = writeSingle(protos, field, v, options, `${p}[${JSON.stringify(k)}]`);
      out[field.name] = m;
    } else if (field.repeated) {
      const arr = value as unknown[];
      if (arr.length === 0) continue;
      out[field.name] = arr.map((v, i) => writeSingle(protos, field, v, options, `${p}[${i}]`));
    } else {
      const explicitPresence = field.partOf !== null || field.resolvedType instanceof protobuf.Type;
      if (!explicitPresence && isDefaultScalar(value)) continue;
      out[field.name] = writeSingle(protos, field, value, options, p);
    }
  }
  return out;
}

interface LongLike {
  readonly low: number;
  readonly high: number;
  toString(): string;
}

function isLong(v: unknown): v is LongLike {
  return typeof v === 'object' && v !== null && typeof (v as LongLike).low === 'number' && typeof (v as LongLike).high === 'number';
}

function isDefaultScalar(v: unknown): boolean {
  if (v === 0 || v === '' || v === false) return true;
  if (v instanceof Uint8Array) return v.length === 0;
  if (isLong(v)) return v.low === 0 && v.high === 0;
  return false;
}

function writeSingle(protos: EnvoyProtos, field: protobuf.Field, value: unknown, options: ToJsonOptions, path: string): JsonValue {
  const rt = field.resolvedType;
  if (rt instanceof protobuf.Type) return writeMessage(protos, rt, value as ProtoObject, options, path);
  if (rt instanceof protobuf.Enum) {
    if (rt.fullName === '.google.protobuf.NullValue') return null;
    const name = rt.valuesById[value as number];
    return name ?? (value as number);
  }
  return writeScalar(field.type, value);
}

function writeScalar(type: string, value: unknown): JsonValue {
  switch (type) {
    case 'int64':
    case 'sint64':
    case 'sfixed64':
    case 'uint64':
    case 'fixed64':
      return String(value);
    case 'bytes':
      return Buffer.from(value as Uint8Array).toString('base64');
    case 'double':
    case 'float': {
      const n = value as number;
      if (Number.isNaN(n)) return 'NaN';
      if (n === Infinity) return 'Infinity';
      if (n === -Infinity) return '-Infinity';
      return n;
    }
    default:
      return value as JsonValue;
  }
}

function num(v: unknown): number {
  if (isLong(v)) return Number(v.toString());
  return typeof v === 'number' ? v : Number(v ?? 0);
}

function writeWellKnown(protos: EnvoyProtos, wkt: string, msg: ProtoObject, options: ToJsonOptions, path: string): JsonValue | undefined {
  const scalar = WRAPPER_SCALARS[wkt];
  if (scalar) return writeScalar(scalar, msg['value'] ?? (scalar === 'string' ? '' : scalar === 'bool' ? false : scalar === 'bytes' ? new Uint8Array() : 0));
  switch (wkt) {
    case 'Any':
      return writeAny(protos, msg, options, path);
    case 'Duration':
      return formatDuration(num(msg['seconds']), num(msg['nanos']));
    case 'Timestamp': {
      const seconds = num(msg['seconds']);
      const nanos = num(msg['nanos']);
      const base = new Date(seconds * 1000).toISOString().replace(/\.\d{3}Z$/, '');
      return `${base}${fraction(nanos)}Z`;
    }
    case 'FieldMask':
      return ((msg['paths'] as string[] | undefined) ?? []).map(camel).join(',');
    case 'Struct':
      return writeStruct(msg);
    case 'Value':
      return writeValue(msg);
    case 'ListValue':
      return ((msg['values'] as ProtoObject[] | undefined) ?? []).map((v) => writeValue(v));
    case 'Empty':
      return {};
    default:
      return undefined;
  }
}

function fraction(nanos: number): string {
  if (nanos === 0) return '';
  const s = String(Math.abs(nanos)).padStart(9, '0');
  if (s.endsWith('000000')) return `.${s.slice(0, 3)}`;
  if (s.endsWith('000')) return `.${s.slice(0, 6)}`;
  return `.${s}`;
}

/** Proto3 JSON Duration: "10s", "0.500s", "-1.000000001s". */
export function formatDuration(seconds: number, nanos: number): string {
  const negative = seconds < 0 || nanos < 0;
  return `${negative ? '-' : ''}${Math.abs(seconds)}${fraction(nanos)}s`;
}

// A map entry without a value decodes as null in protobufjs: it is the empty message.
function writeStruct(msg: ProtoObject | null, depth = 0): JsonObject {
  if (depth > MAX_JSON_DEPTH) throw new ConfigError(`nested deeper than ${MAX_JSON_DEPTH} levels`, '');
  const out: JsonObject = {};
  for (const [k, v] of Object.entries((msg?.['fields'] as Record<string, ProtoObject | null> | undefined) ?? {})) out[k] = writeValue(v, depth + 1);
  return out;
}

function writeValue(msg: ProtoObject | null, depth = 0): JsonValue {
  if (!msg) return null;
  if (depth > MAX_JSON_DEPTH) throw new ConfigError(`nested deeper than ${MAX_JSON_DEPTH} levels`, '');
  const has = (k: string): boolean => Object.prototype.hasOwnProperty.call(msg, k) && msg[k] !== null && msg[k] !== undefined;
  if (has('structValue')) return writeStruct(msg['structValue'] as ProtoObject, depth + 1);
  if (has('listValue')) return (((msg['listValue'] as ProtoObject)['values'] as ProtoObject[] | undefined) ?? []).map((v) => writeValue(v, depth + 1));
  if (has('stringValue')) return msg['stringValue'] as string;
  if (has('numberValue')) return msg['numberValue'] as number;
  if (has('boolValue')) return msg['boolValue'] as boolean;
  return null;
}

function writeAny(protos: EnvoyProtos, msg: ProtoObject, options: ToJsonOptions, path: string): JsonValue {
  const url = String(msg['type_url'] ?? '');
  const value = (msg['value'] as Uint8Array | undefined) ?? new Uint8Array();
  const inner = url ? protos.lookup(url) : undefined;
  if (!inner) {
    if (options.unknownAny === 'opaque') return { '@type': url, value: Buffer.from(value).toString('base64') };
    throw new ConfigError(`unknown Any type '${url}'`, child(path, '@type'));
  }
  let decoded: ProtoObject;
  try {
    decoded = inner.decode(value) as unknown as ProtoObject;
  } catch (err) {
    throw new ConfigError(`cannot decode ${url}: ${(err as Error).message}`, path);
  }
  const body = writeMessage(protos, inner, decoded, options, path);
  if (parseWellKnownProbe(inner)) return { '@type': url, value: body };
  return { '@type': url, ...(body as JsonObject) };
}
