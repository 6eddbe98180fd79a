import * as protobuf from 'protobufjs';
import type { EnvoyProtos } from './protos';
import type { ProtoObject } from './proto-json';

/**
 * protoc-gen-validate for protobufjs: enforces the `(validate.rules)`, `(validate.required)` (oneof) and
 * `(validate.disabled)`/`(validate.ignored)` (message) annotations as the loaded descriptors carry them, so the
 * rules always match the protos in use. Every violation is collected with its field path; Any fields of a known
 * type are decoded and validated recursively, unknown ones are left opaque. The shipped validate.proto (2020)
 * has no `ignore_empty`; it parses as an unknown option and is honoured when present.
 *
 * Messages look like `field: value must be <= 65535 (uint32.lte)`, following PGV's own wording.
 */

export interface Violation {
  readonly path: string;
  readonly message: string;
  /**
   * Found inside an Any (a typed_config): Envoy validates those only when the extension's factory builds its
   * config, so such an error rejects that resource alone rather than the response it came in.
   */
  readonly inAny?: boolean;
}

type Rules = Record<string, unknown>;

interface FieldPlan {
  readonly field: protobuf.Field;
  readonly rules: Rules | undefined;
  readonly isMessage: boolean;
}

interface TypePlan {
  readonly disabled: boolean;
  readonly fields: readonly FieldPlan[];
  readonly requiredOneofs: readonly protobuf.OneOf[];
}

const NUMERIC_KINDS = ['int32', 'int64', 'uint32', 'uint64', 'sint32', 'sint64', 'fixed32', 'fixed64', 'sfixed32', 'sfixed64', 'float', 'double'];
const WRAPPERS = new Set(['DoubleValue', 'FloatValue', 'Int64Value', 'UInt64Value', 'Int32Value', 'UInt32Value', 'BoolValue', 'StringValue', 'BytesValue'].map((n) => `.google.protobuf.${n}`));

/** Validator over one loaded registry; plans per type are cached. */
export class ProtoValidator {
  private readonly plans = new WeakMap<protobuf.Type, TypePlan>();
  constructor(private readonly protos: EnvoyProtos) {}

  /** Every violation in `msg` (a decoded message of `type`), with paths relative to `path`. */
  validate(type: protobuf.Type, msg: ProtoObject, path = ''): Violation[] {
    const out: Violation[] = [];
    this.walk(type, msg, path, out, 0);
    return out;
  }

  private plan(type: protobuf.Type): TypePlan {
    const cached = this.plans.get(type);
    if (cached) return cached;
    const typeOpts = type.options ?? {};
    const disabled = typeOpts['(validate.disabled)'] === true || typeOpts['(validate.ignored)'] === true;
    const fields: FieldPlan[] = type.fieldsArray.map((field) => ({
      field,
      rules: fieldRules(field),
      isMessage: field.resolvedType instanceof protobuf.Type,
    }));
    const requiredOneofs = type.oneofsArray.filter((o) => o.options?.['(validate.required)'] === true);
    const plan = { disabled, fields, requiredOneofs };
    this.plans.set(type, plan);
    return plan;
  }

  private walk(type: protobuf.Type, msg: ProtoObject, path: string, out: Violation[], depth: number): void {
    if (depth > 64) return;
    const plan = this.plan(type);
    if (plan.disabled) return;
    for (const oneof of plan.requiredOneofs) {
      if (!oneof.fieldsArray.some((f) => isSet(msg, f))) {
        out.push({ path: join(path, oneof.name), message: `value is required (oneof ${oneof.name})` });
      }
    }
    for (const { field, rules, isMessage } of plan.fields) {
      const p = join(path, field.name);
      const value = msg[field.name];
      const set = isSet(msg, field);
      if (field instanceof protobuf.MapField) {
        const entries = Object.entries((value as Record<string, unknown> | null | undefined) ?? {});
        if (rules?.['map']) this.checkMap(field, rules['map'] as Rules, entries, p, out);
        if (isMessage) for (const [k, v] of entries) this.walkValue(field, v, `${p}[${JSON.stringify(k)}]`, out, depth);
        continue;
      }
      if (field.repeated) {
        const items = (value as unknown[] | null | undefined) ?? [];
        const rep = rules?.['repeated'] as Rules | undefined;
        if (rep) this.checkRepeated(field, rep, items, p, out);
        items.forEach((v, i) => {
          if (isMessage) this.walkValue(field, v, `${p}[${i}]`, out, depth);
        });
        continue;
      }
      if (rules) this.checkSingle(field, rules, value, set, p, out);
      if (isMessage && set && value !== null && value !== undefined) this.walkValue(field, value, p, out, depth);
    }
  }

  /** Recurse into a set message value; Any fields of known types are decoded and validated too. */
  private walkValue(field: protobuf.Field, value: unknown, path: string, out: Violation[], depth: number): void {
    value ??= {}; // a map entry or repeated item without a value decodes as null: the empty message
    const t = field.resolvedType as protobuf.Type;
    if (t.fullName === '.google.protobuf.Any') {
      const any = value as { type_url?: string; value?: Uint8Array };
      const inner = any.type_url ? this.protos.lookup(any.type_url) : undefined;
      if (!inner || inner.fullName.startsWith('.google.protobuf.')) return;
      let decoded: ProtoObject;
      try {
        decoded = inner.decode(any.value ?? new Uint8Array()) as unknown as ProtoObject;
      } catch (err) {
        out.push({ path, message: `cannot decode ${any.type_url}: ${(err as Error).message}`, inAny: true });
        return;
      }
      const nested: Violation[] = [];
      this.walk(inner, decoded, path, nested, depth + 1);
      for (const v of nested) out.push({ ...v, inAny: true });
      return;
    }
    if (t.fullName.startsWith('.google.protobuf.')) return;
    this.walk(t, value as ProtoObject, path, out, depth + 1);
  }

  private checkSingle(field: protobuf.Field, rules: Rules, value: unknown, set: boolean, path: string, out: Violation[]): void {
    const partOfOneof = field.partOf !== null;
    if (partOfOneof && !set) return; // rules apply only to the oneof member that is set (PGV)
    const msgRules = rules['message'] as Rules | undefined;
    if (msgRules?.['required'] === true && !set) out.push({ path, message: 'value is required (message.required)' });
    const rt = field.resolvedType;
    if (rt instanceof protobuf.Type) {
      if (!set || value === null || value === undefined) {
        const kind = ruleKind(rules);
        if (kind && ['duration', 'timestamp', 'any'].includes(kind) && (rules[kind] as Rules)['required'] === true) {
          out.push({ path, message: `value is required (${kind}.required)` });
        }
        return;
      }
      const v = value as ProtoObject;
      if (rt.fullName === '.google.protobuf.Duration') return checkDuration(rules['duration'] as Rules | undefined, v, path, out);
      if (rt.fullName === '.google.protobuf.Any') return checkAny(rules['any'] as Rules | undefined, v, path, out);
      if (WRAPPERS.has(rt.fullName)) {
        const kind = ruleKind(rules);
        if (kind && kind !== 'message') checkScalar(kind, rules[kind] as Rules, v['value'] ?? defaultOf(rt.fields['value']?.type ?? ''), path, out);
      }
      return;
    }
    const kind = ruleKind(rules);
    if (!kind) return;
    const r = rules[kind] as Rules;
    if (rt instanceof protobuf.Enum) {
      if (kind !== 'enum') return;
      const n = value as number;
      if (r['defined_only'] === true && rt.valuesById[n] === undefined) {
        out.push({ path, message: `value must be one of the defined enum values (enum.defined_only)` });
      }
      checkConstIn('enum', r, n, path, out);
      return;
    }
    checkScalar(kind, r, value, path, out);
  }

  private checkRepeated(field: protobuf.Field, r: Rules, items: unknown[], path: string, out: Violation[]): void {
    const min = optNum(r['min_items']);
    const max = optNum(r['max_items']);
    if (min !== undefined && items.length < min) out.push({ path, message: `value must contain at least ${min} item(s) (repeated.min_items)` });
    if (max !== undefined && items.length > max) out.push({ path, message: `value must contain no more than ${max} item(s) (repeated.max_items)` });
    if (r['unique'] === true && new Set(items.map((v) => String(v))).size !== items.length) {
      out.push({ path, message: 'repeated value must contain unique items (repeated.unique)' });
    }
    const itemRules = r['items'] as Rules | undefined;
    if (itemRules) items.forEach((v, i) => this.checkSingle(asSingular(field), itemRules, v, true, `${path}[${i}]`, out));
  }

  private checkMap(field: protobuf.MapField, r: Rules, entries: [string, unknown][], path: string, out: Violation[]): void {
    const min = optNum(r['min_pairs']);
    const max = optNum(r['max_pairs']);
    if (min !== undefined && entries.length < min) out.push({ path, message: `value must contain at least ${min} pair(s) (map.min_pairs)` });
    if (max !== undefined && entries.length > max) out.push({ path, message: `value must contain no more than ${max} pair(s) (map.max_pairs)` });
    const keyRules = r['keys'] as Rules | undefined;
    const keyKind = keyRules ? ruleKind(keyRules) : undefined;
    const valueRules = r['values'] as Rules | undefined;
    for (const [k, v] of entries) {
      const p = `${path}[${JSON.stringify(k)}]`;
      if (keyRules && keyKind) checkScalar(keyKind, keyRules[keyKind] as Rules, field.keyType === 'string' ? k : Number(k), p, out);
      if (valueRules) this.checkSingle(asSingular(field as unknown as protobuf.Field), valueRules, v, true, p, out);
    }
  }
}

/** A view of a repeated/map field as one element, for items/values rules. */
function asSingular(field: protobuf.Field): protobuf.Field {
  return Object.create(field, { repeated: { value: false }, partOf: { value: null } }) as protobuf.Field;
}

function fieldRules(field: protobuf.Field): Rules | undefined {
  const parsed = (field as unknown as { parsedOptions?: Record<string, unknown>[] | null }).parsedOptions;
  if (!parsed) return undefined;
  let rules: Rules | undefined;
  for (const opt of parsed) {
    const r = opt['(validate.rules)'];
    if (r && typeof r === 'object') rules = { ...(rules ?? {}), ...(r as Rules) };
  }
  return rules;
}

function ruleKind(rules: Rules): string | undefined {
  for (const k of Object.keys(rules)) if (k !== 'message') return k;
  return undefined;
}

function isSet(msg: ProtoObject, field: protobuf.Field): boolean {
  if (field.partOf) return Object.prototype.hasOwnProperty.call(msg, field.name) && msg[field.name] !== null && msg[field.name] !== undefined;
  const v = msg[field.name];
  return v !== null && v !== undefined;
}

function join(path: string, name: string): string {
  return path === '' ? name : `${path}.${name}`;
}

function optNum(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  return toNumber(v);
}

function toNumber(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return Number(v);
  if (typeof v === 'object' && v !== null && 'low' in v && 'high' in v) return Number(String(v));
  return Number(v);
}

function defaultOf(type: string): unknown {
  return type === 'string' ? '' : type === 'bool' ? false : type === 'bytes' ? new Uint8Array() : 0;
}

function checkConstIn(kind: string, r: Rules, v: number | string, path: string, out: Violation[]): void {
  if (r['const'] !== undefined && String(r['const']) !== String(v)) out.push({ path, message: `value must equal ${String(r['const'])} (${kind}.const)` });
  const inList = r['in'];
  if (inList !== undefined) {
    const list = (Array.isArray(inList) ? inList : [inList]).map(String);
    if (!list.includes(String(v))) out.push({ path, message: `value must be in list [${list.join(', ')}] (${kind}.in)` });
  }
  const notIn = r['not_in'];
  if (notIn !== undefined) {
    const list = (Array.isArray(notIn) ? notIn : [notIn]).map(String);
    if (list.includes(String(v))) out.push({ path, message: `value must not be in list [${list.join(', ')}] (${kind}.not_in)` });
  }
}

/** PGV range semantics: if the upper bound is below the lower bound, the range is exclusive (outside). */
function checkRange(kind: string, r: Rules, v: number, path: string, out: Violation[], fmt: (n: number) => string = String): void {
  const gt = optNumOrDuration(r['gt']);
  const gte = optNumOrDuration(r['gte']);
  const lt = optNumOrDuration(r['lt']);
  const lte = optNumOrDuration(r['lte']);
  const lower = gt ?? gte;
  const upper = lt ?? lte;
  const lowerOk = gt !== undefined ? v > gt : gte !== undefined ? v >= gte : true;
  const upperOk = lt !== undefined ? v < lt : lte !== undefined ? v <= lte : true;
  if (lower !== undefined && upper !== undefined && upper < lower) {
    if (!(lowerOk || upperOk)) {
      out.push({ path, message: `value must be outside range ${fmt(upper)}..${fmt(lower)} (${kind}.${gt !== undefined ? 'gt' : 'gte'})` });
    }
    return;
  }
  if (!lowerOk) {
    out.push(gt !== undefined
      ? { path, message: `value must be > ${fmt(gt)} (${kind}.gt)` }
      : { path, message: `value must be >= ${fmt(gte ?? 0)} (${kind}.gte)` });
  }
  if (!upperOk) {
    out.push(lt !== undefined
      ? { path, message: `value must be < ${fmt(lt)} (${kind}.lt)` }
      : { path, message: `value must be <= ${fmt(lte ?? 0)} (${kind}.lte)` });
  }
}

function optNumOrDuration(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'object' && !('low' in v)) {
    const d = v as { seconds?: unknown; nanos?: unknown };
    return toNumber(d.seconds ?? 0) + toNumber(d.nanos ?? 0) / 1e9;
  }
  return toNumber(v);
}

function checkDuration(r: Rules | undefined, v: ProtoObject, path: string, out: Violation[]): void {
  if (!r) return;
  const secs = toNumber(v['seconds'] ?? 0) + toNumber(v['nanos'] ?? 0) / 1e9;
  if (r['const'] !== undefined) {
    const c = optNumOrDuration(r['const']);
    if (c !== secs) out.push({ path, message: `value must equal ${c}s (duration.const)` });
  }
  checkRange('duration', r, secs, path, out, (n) => `${n}s`);
}

function checkAny(r: Rules | undefined, v: ProtoObject, path: string, out: Violation[]): void {
  if (!r) return;
  const url = String(v['type_url'] ?? '');
  const inList = r['in'];
  if (inList !== undefined) {
    const list = (Array.isArray(inList) ? inList : [inList]).map(String);
    if (!list.includes(url)) out.push({ path, message: `type URL must be in list [${list.join(', ')}] (any.in)` });
  }
  const notIn = r['not_in'];
  if (notIn !== undefined) {
    const list = (Array.isArray(notIn) ? notIn : [notIn]).map(String);
    if (list.includes(url)) out.push({ path, message: `type URL must not be in list [${list.join(', ')}] (any.not_in)` });
  }
}

// HTTP header name/value patterns from PGV (strict mode), and the relaxed variants.
const HEADER_NAME_STRICT = /^:?[0-9a-zA-Z!#$%&'*+\-.^_|~`]+$/;
const HEADER_VALUE_STRICT = /^[^\u0000-\u0008\u000A-\u001F\u007F]*$/;
const HEADER_LOOSE = /^[^\u0000\u000A\u000D]*$/;

function checkScalar(kind: string, r: Rules, value: unknown, path: string, out: Violation[]): void {
  if (kind === 'string') return checkString(r, String(value ?? ''), path, out);
  if (kind === 'bytes') {
    const len = value instanceof Uint8Array ? value.length : 0;
    const min = optNum(r['min_len']);
    const max = optNum(r['max_len']);
    const exact = optNum(r['len']);
    if (min !== undefined && len < min) out.push({ path, message: `value length must be at least ${min} bytes (bytes.min_len)` });
    if (max !== undefined && len > max) out.push({ path, message: `value length must be at most ${max} bytes (bytes.max_len)` });
    if (exact !== undefined && len !== exact) out.push({ path, message: `value length must be ${exact} bytes (bytes.len)` });
    return;
  }
  if (kind === 'bool') {
    if (r['const'] !== undefined && r['const'] !== value) out.push({ path, message: `value must equal ${String(r['const'])} (bool.const)` });
    return;
  }
  if (NUMERIC_KINDS.includes(kind)) {
    const n = toNumber(value ?? 0);
    checkConstIn(kind, r, n, path, out);
    checkRange(kind, r, n, path, out);
  }
}

function checkString(r: Rules, s: string, path: string, out: Violation[]): void {
  if (r['ignore_empty'] === true && s === '') return;
  const chars = [...s].length;
  const bytes = Buffer.byteLength(s);
  const push = (message: string): void => void out.push({ path, message });
  const n = (k: string): number | undefined => optNum(r[k]);
  const minLen = n('min_len');
  const maxLen = n('max_len');
  const len = n('len');
  const minBytes = n('min_bytes');
  const maxBytes = n('max_bytes');
  const lenBytes = n('len_bytes');
  if (minLen !== undefined && chars < minLen) push(`value length must be at least ${minLen} characters (string.min_len)`);
  if (maxLen !== undefined && chars > maxLen) push(`value length must be at most ${maxLen} characters (string.max_len)`);
  if (len !== undefined && chars !== len) push(`value length must be ${len} characters (string.len)`);
  if (minBytes !== undefined && bytes < minBytes) push(`value length must be at least ${minBytes} bytes (string.min_bytes)`);
  if (maxBytes !== undefined && bytes > maxBytes) push(`value length must be at most ${maxBytes} bytes (string.max_bytes)`);
  if (lenBytes !== undefined && bytes !== lenBytes) push(`value length must be ${lenBytes} bytes (string.len_bytes)`);
  if (typeof r['const'] === 'string' && s !== r['const']) push(`value must equal ${JSON.stringify(r['const'])} (string.const)`);
  if (typeof r['prefix'] === 'string' && !s.startsWith(r['prefix'])) push(`value does not have prefix ${JSON.stringify(r['prefix'])} (string.prefix)`);
  if (typeof r['suffix'] === 'string' && !s.endsWith(r['suffix'])) push(`value does not have suffix ${JSON.stringify(r['suffix'])} (string.suffix)`);
  if (typeof r['contains'] === 'string' && !s.includes(r['contains'])) push(`value does not contain ${JSON.stringify(r['contains'])} (string.contains)`);
  if (typeof r['not_contains'] === 'string' && s.includes(r['not_contains'])) push(`value contains ${JSON.stringify(r['not_contains'])} (string.not_contains)`);
  checkConstIn('string', { in: r['in'], not_in: r['not_in'] }, s, path, out);
  if (typeof r['pattern'] === 'string') {
    let re: RegExp | undefined;
    try {
      re = new RegExp(r['pattern'], 'u');
    } catch {
      re = undefined; // an RE2 construct JS cannot express: not enforced
    }
    if (re && !re.test(s)) push(`value does not match regex pattern ${JSON.stringify(r['pattern'])} (string.pattern)`);
  }
  const wk = r['well_known_regex'];
  if (wk !== undefined) {
    const strict = r['strict'] !== false;
    const ok = wk === 'HTTP_HEADER_NAME' || wk === 1
      ? (strict ? HEADER_NAME_STRICT.test(s) || s === '' : HEADER_LOOSE.test(s))
      : wk === 'HTTP_HEADER_VALUE' || wk === 2
        ? (strict ? HEADER_VALUE_STRICT.test(s) : HEADER_LOOSE.test(s))
        : true;
    if (!ok) push(`value does not match regex pattern for ${String(wk)} (string.well_known_regex)`);
  }
  if (r['ipv4'] === true && !/^(\d{1,3})(\.\d{1,3}){3}$/.test(s)) push('value must be a valid IPv4 address (string.ipv4)');
  if (r['ip'] === true && !/^[0-9a-fA-F:.]+$/.test(s)) push('value must be a valid IP address (string.ip)');
  if (r['hostname'] === true && !/^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/.test(s)) {
    push('value must be a valid hostname (string.hostname)');
  }
}
