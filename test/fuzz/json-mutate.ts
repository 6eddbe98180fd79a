/**
 * Structure-aware mutations of real JSON documents (bootstraps, xDS resources, WasmPlugin resources): a mutated
 * document keeps most of a real one, so it gets past the first checks and reaches the deep ones. Each mutation
 * picks a node by index among all nodes of the current document, then deletes, replaces, type-confuses, deepens
 * (nesting that a recursive reader might not survive), renames or duplicates it.
 */
import fc from 'fast-check';
import { stringify as toYaml } from 'yaml';

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface Mutation {
  readonly at: number;
  readonly op: 'delete' | 'replace' | 'confuse' | 'deepen' | 'rename' | 'dup' | 'retype';
  readonly pick: number;
  readonly value: Json;
}

/** Values that sit on the edges of what proto3 JSON readers accept. */
export const CONFUSERS: readonly Json[] = [
  '', 0, -1, -0.5, 1.5, 1e308, -1e308, 2 ** 53 + 1, 2 ** 64, '18446744073709551616', '-9223372036854775809', true, false, null, [], {},
  'NaN', 'Infinity', '-Infinity', '1e400', '0x10', ' 1', '1s', '-1s', '1.0000000001s', '315576000001s', '9999999999999999999s', '1e3s', 's', '',
  '2026-13-45T99:99:99Z', '\u0000', '\ud800', 'AAAA', '!!!', 'x'.repeat(300), [null], [[]], { '': null }, { '@type': '' },
  { value: 1 }, { seconds: '1', nanos: 2e9 },
];

/** Type URLs a mutated Any may claim: real ones (of other shapes), wrappers, and garbage. */
export const TYPE_URLS: readonly string[] = [
  'type.googleapis.com/google.protobuf.StringValue', 'type.googleapis.com/google.protobuf.Struct', 'type.googleapis.com/google.protobuf.Duration',
  'type.googleapis.com/google.protobuf.Any', 'type.googleapis.com/google.protobuf.Value', 'type.googleapis.com/google.protobuf.Empty',
  'type.googleapis.com/google.protobuf.BytesValue', 'type.googleapis.com/google.protobuf.Timestamp', 'type.googleapis.com/google.protobuf.FieldMask',
  'type.googleapis.com/udpa.type.v1.TypedStruct', 'type.googleapis.com/xds.type.v3.TypedStruct',
  'type.googleapis.com/envoy.config.cluster.v3.Cluster', 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm',
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext', 'type.googleapis.com/', 'nope', '/', 'type.googleapis.com/envoy..v3',
];

const DEPTHS = [40, 200, 3000] as const;

function deep(depth: number, kind: number): Json {
  let v: Json = kind % 3 === 0 ? 1 : kind % 3 === 1 ? 'x' : null;
  for (let i = 0; i < depth; i++) v = kind % 2 === 0 ? [v] : { a: v };
  return v;
}

interface Slot {
  readonly parent: Json[] | { [k: string]: Json };
  readonly key: string | number;
}

function slots(doc: Json, out: Slot[], depth = 0): void {
  if (depth > 60 || doc === null || typeof doc !== 'object') return;
  if (Array.isArray(doc)) {
    doc.forEach((v, i) => {
      out.push({ parent: doc, key: i });
      slots(v, out, depth + 1);
    });
  } else {
    for (const k of Object.keys(doc)) {
      out.push({ parent: doc, key: k });
      slots(doc[k]!, out, depth + 1);
    }
  }
}

function camel(s: string): string {
  return s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Applies the mutations to a deep copy of `doc`. */
export function mutateJson(doc: Json, mutations: readonly Mutation[]): Json {
  const root: { [k: string]: Json } = { root: structuredClone(doc) };
  for (const m of mutations) {
    const all: Slot[] = [{ parent: root, key: 'root' }];
    slots(root['root']!, all);
    const { parent, key } = all[m.at % all.length]!;
    const get = (): Json => (parent as Record<string | number, Json>)[key]!;
    const set = (v: Json): void => void ((parent as Record<string | number, Json>)[key] = v);
    switch (m.op) {
      case 'delete':
        if (Array.isArray(parent)) parent.splice(key as number, 1);
        else if (parent !== root) delete parent[key as string];
        break;
      case 'replace':
        set(m.value);
        break;
      case 'confuse':
        set(CONFUSERS[m.pick % CONFUSERS.length]!);
        break;
      case 'deepen':
        set(deep(DEPTHS[m.pick % DEPTHS.length]!, m.pick));
        break;
      case 'rename':
        if (!Array.isArray(parent) && parent !== root) {
          const v = get();
          delete parent[key as string];
          const names = [camel(key as string), `${key as string}_x`, '@type', 'unknown_field', (key as string).toUpperCase(), ''];
          parent[names[m.pick % names.length]!] = v;
        }
        break;
      case 'dup':
        if (Array.isArray(parent)) parent.splice(key as number, 0, structuredClone(get()));
        else {
          const v = get();
          if (Array.isArray(v) && v.length > 0) v.push(structuredClone(v[m.pick % v.length]!));
        }
        break;
      case 'retype': {
        const v = get();
        const url = TYPE_URLS[m.pick % TYPE_URLS.length]!;
        if (v !== null && typeof v === 'object' && !Array.isArray(v)) v['@type'] = url;
        else set({ '@type': url, value: m.value });
        break;
      }
    }
  }
  return root['root'] ?? null;
}

export const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  at: fc.nat(),
  op: fc.constantFrom<Mutation['op']>('delete', 'replace', 'confuse', 'confuse', 'deepen', 'rename', 'dup', 'retype'),
  pick: fc.nat(),
  value: fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>,
});

export const mutationsArb = fc.array(mutationArb, { minLength: 1, maxLength: 4 });

/** A few text-level edits (for YAML/JSON text): a byte replaced, inserted or removed, or the text cut. */
export interface TextEdit {
  readonly at: number;
  readonly op: 'set' | 'insert' | 'delete' | 'cut';
  readonly ch: string;
}

export const textEditsArb: fc.Arbitrary<TextEdit[]> = fc.array(
  fc.record({ at: fc.nat(), op: fc.constantFrom<TextEdit['op']>('set', 'insert', 'delete', 'cut'), ch: fc.constantFrom(':', '-', ' ', '\n', '{', '}', '[', ']', '"', "'", '&', '*', '!', '#', '|', '>', '%', '@', '\t', '0', 'a', '\\', '<<') }),
  { maxLength: 3 },
);

export function editText(text: string, edits: readonly TextEdit[]): string {
  let t = text;
  for (const e of edits) {
    const i = t.length === 0 ? 0 : e.at % t.length;
    if (e.op === 'set') t = t.slice(0, i) + e.ch + t.slice(i + 1);
    else if (e.op === 'insert') t = t.slice(0, i) + e.ch + t.slice(i);
    else if (e.op === 'delete') t = t.slice(0, i) + t.slice(i + 1);
    else t = t.slice(0, i);
  }
  return t;
}

/** YAML text of a document; JSON (a YAML subset) when the YAML writer cannot nest that deep. */
export function yamlText(doc: Json): string {
  try {
    return toYaml(doc);
  } catch {
    try {
      return JSON.stringify(doc);
    } catch {
      return `${'['.repeat(5000)}${']'.repeat(5000)}`; // deeper than JSON.stringify goes: the nesting alone
    }
  }
}
