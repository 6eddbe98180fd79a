import { readFileSync } from 'node:fs';
import * as protobuf from 'protobufjs';

/**
 * A prebuilt form of a parsed protobufjs Root (written at build time by scripts/build-proto-bundle.mjs), so a
 * process need not parse hundreds of .proto files at start-up. protobufjs's own JSON (`Root.toJSON`) keeps only
 * the flattened `options` of each object, which lose aggregate values (`(validate.rules).duration.gt = {}` leaves
 * `options` undefined); the validator reads `parsedOptions`, so the bundle carries those as a side table keyed
 * by object and re-attaches them after `Root.fromJSON`.
 */

/** Bumped when the layout below changes: an older file is then stale whatever its inputs hash says. */
export const PROTO_BUNDLE_FORMAT = 2;

type ParsedOptions = Record<string, unknown>[];

export interface ProtoBundle {
  readonly format: number;
  /** Hash of everything the parsed Root depends on (see `envoyProtoInputsHash` in protos.ts). */
  readonly inputsHash: string;
  readonly root: protobuf.INamespace;
  /** `parsedOptions` of every object that has some, by `optionsKey`. */
  readonly parsedOptions: Record<string, ParsedOptions>;
  /** `valuesOptions` of every enum that has some, by full name: `Enum.fromJSON` drops them (protobufjs 7.5). */
  readonly valuesOptions: Record<string, EnumValuesOptions>;
}

type EnumValuesOptions = Record<string, Record<string, unknown>>;

/** Every reflection object under `ns`: nested namespaces, types, enums, services, fields, oneofs and methods. */
function* reflectionObjects(ns: protobuf.NamespaceBase): Generator<protobuf.ReflectionObject> {
  for (const o of ns.nestedArray) {
    yield o;
    if (o instanceof protobuf.Type) {
      yield* o.fieldsArray;
      yield* o.oneofsArray;
    }
    if (o instanceof protobuf.Service) yield* o.methodsArray;
    if (o instanceof protobuf.Namespace) yield* reflectionObjects(o);
  }
}

/** Unique per object: a oneof, a field and a nested type share one name scope in protobufjs only by convention. */
function optionsKey(o: protobuf.ReflectionObject): string {
  return `${o.constructor.name}:${o.fullName}`;
}

function parsedOptionsOf(o: protobuf.ReflectionObject): ParsedOptions | null {
  return (o as unknown as { parsedOptions: ParsedOptions | null }).parsedOptions;
}

export function bundleRoot(root: protobuf.Root, inputsHash: string): ProtoBundle {
  const parsedOptions: Record<string, ParsedOptions> = {};
  const valuesOptions: Record<string, EnumValuesOptions> = {};
  for (const o of reflectionObjects(root)) {
    if (o instanceof protobuf.Enum && o.valuesOptions) valuesOptions[o.fullName] = o.valuesOptions as EnumValuesOptions;
    const opts = parsedOptionsOf(o);
    if (!opts) continue;
    const key = optionsKey(o);
    if (key in parsedOptions) throw new Error(`two reflection objects share the options key ${key}`);
    parsedOptions[key] = opts;
  }
  return { format: PROTO_BUNDLE_FORMAT, inputsHash, root: root.toJSON() as protobuf.INamespace, parsedOptions, valuesOptions };
}

export function rootFromBundle(bundle: ProtoBundle): protobuf.Root {
  // Root.fromJSON, with the options re-attached before resolveAll (which derives the enum values' features).
  const root = new protobuf.Root();
  if (bundle.root.options) root.setOptions(bundle.root.options);
  root.addJSON(bundle.root.nested ?? {});
  for (const o of reflectionObjects(root)) {
    const opts = bundle.parsedOptions[optionsKey(o)];
    if (opts) (o as unknown as { parsedOptions: ParsedOptions }).parsedOptions = opts;
    if (o instanceof protobuf.Enum && bundle.valuesOptions[o.fullName]) o.valuesOptions = bundle.valuesOptions[o.fullName];
  }
  root.resolveAll();
  return root;
}

export type BundleRead = { readonly root: protobuf.Root } | { readonly unusable: string };

/** The Root in `file` if it was built from the inputs hashed as `inputsHash`; else why not (absent, stale, unreadable). */
export function readProtoBundle(file: string, inputsHash: string): BundleRead {
  let bundle: ProtoBundle;
  try {
    bundle = JSON.parse(readFileSync(file, 'utf8')) as ProtoBundle;
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { unusable: e.code === 'ENOENT' ? `${file} is absent` : `${file} is unreadable: ${e.message}` };
  }
  if (bundle.format !== PROTO_BUNDLE_FORMAT) return { unusable: `${file} has format ${String(bundle.format)}, this build reads ${PROTO_BUNDLE_FORMAT}` };
  if (bundle.inputsHash !== inputsHash) return { unusable: `${file} is stale (built from other protos: inputs hash ${String(bundle.inputsHash)}, now ${inputsHash})` };
  return { root: rootFromBundle(bundle) };
}
