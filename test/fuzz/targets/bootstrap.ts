/**
 * Proto3 JSON bootstrap loading (src/xds/proto-json.ts through src/config/bootstrap.ts): real bootstraps mutated
 * as documents, and as JSON/YAML text. Oracles:
 *  - a ConfigError (naming a field path whenever the document parsed) or a Bootstrap; never a TypeError,
 *    RangeError or stack overflow;
 *  - round trip: a bootstrap's proto3 JSON (toProtoJson(fromProtoJson(x))) loads again to the same JSON.
 */
import fc from 'fast-check';
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../../../src/common/errors';
import { bootstrapFromJson, parseBootstrap, type Bootstrap } from '../../../src/config/bootstrap';
import { loadEnvoyProtos } from '../../../src/xds/protos';
import { onlyTyped, OracleFailure, type FuzzTarget } from '../harness';
import { editText, mutateJson, mutationsArb, textEditsArb, yamlText, type Json } from '../json-mutate';
import { bootstrapSeeds } from '../seeds';

export type BootstrapInput = { readonly kind: 'doc'; readonly doc: Json } | { readonly kind: 'text'; readonly format: 'json' | 'yaml'; readonly text: string };

/** A loaded config must come back the same through its own proto3 JSON. */
export function roundTrip(b: Bootstrap, load: (doc: Json) => Bootstrap, what: string): void {
  const again = onlyTyped(() => void load(b.json as Json), [ConfigError], `${what}: reloading its own JSON`);
  if (again) throw new OracleFailure(`${what}: its own proto3 JSON is refused: ${again.message}`);
  const j2 = load(b.json as Json).json;
  if (JSON.stringify(j2) !== JSON.stringify(b.json)) throw new OracleFailure(`${what}: proto3 JSON not stable: ${JSON.stringify(b.json).slice(0, 400)} vs ${JSON.stringify(j2).slice(0, 400)}`);
}

/** A refusal must say where, once the document itself parsed into an object (the root's own path is ''). */
export function requirePath(err: ConfigError, doc: unknown, what: string): void {
  const isObject = typeof doc === 'object' && doc !== null && !Array.isArray(doc);
  if (err.path === '' && isObject) throw new OracleFailure(`${what}: ConfigError without a path: ${err.message}`);
}

function check(input: BootstrapInput): void {
  const protos = loadEnvoyProtos();
  const load = (doc: Json): Bootstrap => bootstrapFromJson(doc, { protos });
  let result: Bootstrap | undefined;
  if (input.kind === 'doc') {
    const err = onlyTyped(() => void (result = load(input.doc)), [ConfigError], 'bootstrapFromJson');
    if (err) return requirePath(err, input.doc, 'bootstrapFromJson');
  } else {
    const err = onlyTyped(() => void (result = parseBootstrap(input.text, input.format, { protos })), [ConfigError], `parseBootstrap(${input.format})`);
    if (err) {
      // Text that is not JSON/YAML at all has no field to name.
      if (!/^bootstrap is not valid/.test(err.message)) requirePath(err, input.format === 'json' ? JSON.parse(input.text) : parseYaml(input.text), 'parseBootstrap');
      return;
    }
  }
  roundTrip(result!, load, 'bootstrap');
}

const seeds = (): Json[] => bootstrapSeeds();

const docInput = fc.tuple(fc.nat(), mutationsArb).map(([i, ms]): BootstrapInput => {
  const s = seeds();
  return { kind: 'doc', doc: mutateJson(s[i % s.length]!, ms) };
});

const textInput = fc.tuple(fc.nat(), fc.array(fc.record({ at: fc.nat(), op: fc.constant('replace' as const), pick: fc.nat(), value: fc.jsonValue({ maxDepth: 1 }) as fc.Arbitrary<Json> }), { maxLength: 2 }), fc.constantFrom<'json' | 'yaml'>('json', 'yaml'), textEditsArb).map(
  ([i, ms, format, edits]): BootstrapInput => {
    const s = seeds();
    const doc = mutateJson(s[i % s.length]!, ms);
    const text = format === 'json' ? JSON.stringify(doc, null, 1) : yamlText(doc);
    return { kind: 'text', format, text: editText(text, edits) };
  },
);

export const bootstrapTarget: FuzzTarget<BootstrapInput> = {
  name: 'bootstrap',
  arbitrary: fc.oneof({ arbitrary: docInput, weight: 3 }, { arbitrary: textInput, weight: 1 }),
  check,
  ciRuns: 150,
  setup: async () => void loadEnvoyProtos(),
  encode: (i) => i,
  decode: (j) => j as BootstrapInput,
};
