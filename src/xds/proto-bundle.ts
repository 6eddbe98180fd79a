import { readFileSync } from 'node:fs';
import * as protobuf from 'protobufjs';

/**
 * A prebuilt form of the parsed Envoy registry (written at build time by scripts/build-proto-bundle.mjs), loaded
 * lazily: a process materialises only the types it looks up and what they reach (an idle static sidecar, about
 * 30% of them). The bundle is cut into units, one per top-level message, enum or service of a package (nested
 * types travel with their parent), each with the units its fields and methods name. A unit's body stays JSON
 * text until it is first needed, so the unread ones cost their string only.
 *
 * protobufjs's own JSON (`toJSON`) keeps only the flattened `options` of each object, which lose aggregate values
 * (`(validate.rules).duration.gt = {}` leaves `options` undefined); the validator reads `parsedOptions`, so each
 * unit carries those as a side table keyed by object and they are re-attached before the unit is resolved.
 *
 * Extension declarations (`extend google.protobuf.FieldOptions { ... }`, 21 of them, all at package level) are
 * not carried: they only add fields to descriptor.proto's option types, which nothing decodes (custom options
 * reach the validator as `parsedOptions`), and an extension whose extended type is absent would make resolveAll throw.
 */

/** Bumped when the layout below changes: an older file is then stale whatever its inputs hash says. */
export const PROTO_BUNDLE_FORMAT = 3;

type ParsedOptions = Record<string, unknown>[];
type EnumValuesOptions = Record<string, Record<string, unknown>>;
type UnitObject = protobuf.Type | protobuf.Enum | protobuf.Service;

/** A unit as JSON.parse gives it from the body text. */
interface UnitBody {
  readonly def: protobuf.AnyNestedObject;
  /** `parsedOptions` of every object in the unit that has some, by `optionsKey`. */
  readonly parsedOptions: Record<string, ParsedOptions>;
  /** `valuesOptions` of every enum in the unit that has some, by full name: `Enum.fromJSON` drops them (protobufjs 7.5). */
  readonly valuesOptions: Record<string, EnumValuesOptions>;
}

export interface BundleUnit {
  /** Full names (with the leading dot) of the units this one's fields and methods name. */
  readonly deps: readonly string[];
  /** JSON text of a UnitBody. */
  readonly body: string;
}

export interface BundleNamespace {
  readonly options?: Record<string, unknown>;
  readonly parsedOptions?: ParsedOptions;
}

export interface ProtoBundle {
  readonly format: number;
  /** Hash of everything the parsed Root depends on (see `envoyProtoInputsHash` in protos.ts). */
  readonly inputsHash: string;
  /** Every package namespace by full name, parents before children. */
  readonly namespaces: Record<string, BundleNamespace>;
  /** Every unit by full name. */
  readonly units: Record<string, BundleUnit>;
}

/** Unique per object: a oneof, a field and a nested type share one name scope in protobufjs only by convention. */
function optionsKey(o: protobuf.ReflectionObject): string {
  return `${o.constructor.name}:${o.fullName}`;
}

function parsedOptionsOf(o: protobuf.ReflectionObject): ParsedOptions | null {
  return (o as unknown as { parsedOptions: ParsedOptions | null }).parsedOptions;
}

function isUnit(o: protobuf.ReflectionObject): o is UnitObject {
  return o instanceof protobuf.Type || o instanceof protobuf.Enum || o instanceof protobuf.Service;
}

/** A unit and every reflection object inside it: nested types and enums, fields, oneofs and methods. */
function* unitObjects(o: protobuf.ReflectionObject): Generator<protobuf.ReflectionObject> {
  yield o;
  if (o instanceof protobuf.Type) {
    yield* o.fieldsArray;
    yield* o.oneofsArray;
  }
  if (o instanceof protobuf.Service) yield* o.methodsArray;
  if (o instanceof protobuf.Type || o instanceof protobuf.Service) for (const n of o.nestedArray) yield* unitObjects(n);
}

/** The unit an object belongs to: its outermost enclosing type, enum or service. */
function unitOf(o: protobuf.ReflectionObject): UnitObject {
  let u = o;
  while (u.parent && isUnit(u.parent)) u = u.parent;
  return u as UnitObject;
}

function unitDeps(u: UnitObject): string[] {
  const deps = new Set<string>();
  for (const o of unitObjects(u)) {
    if (o instanceof protobuf.Field && o.resolvedType) deps.add(unitOf(o.resolvedType).fullName);
    if (o instanceof protobuf.Method) for (const t of [o.resolvedRequestType, o.resolvedResponseType]) if (t) deps.add(unitOf(t).fullName);
  }
  deps.delete(u.fullName);
  return [...deps];
}

function unitBody(u: UnitObject): string {
  const parsedOptions: Record<string, ParsedOptions> = {};
  const valuesOptions: Record<string, EnumValuesOptions> = {};
  for (const o of unitObjects(u)) {
    if (o instanceof protobuf.Enum && o.valuesOptions) valuesOptions[o.fullName] = o.valuesOptions as EnumValuesOptions;
    const opts = parsedOptionsOf(o);
    if (!opts) continue;
    const key = optionsKey(o);
    if (key in parsedOptions) throw new Error(`two reflection objects share the options key ${key}`);
    parsedOptions[key] = opts;
  }
  const body: UnitBody = { def: u.toJSON() as protobuf.AnyNestedObject, parsedOptions, valuesOptions };
  return JSON.stringify(body);
}

/** The bundle of a fully parsed and resolved Root. */
export function bundleRoot(root: protobuf.Root, inputsHash: string): ProtoBundle {
  if (root.options) throw new Error('the parsed Root has options, which the bundle does not carry');
  const namespaces: Record<string, BundleNamespace> = {};
  const units: Record<string, BundleUnit> = {};
  const walk = (ns: protobuf.NamespaceBase): void => {
    for (const o of ns.nestedArray) {
      if (isUnit(o)) {
        units[o.fullName] = { deps: unitDeps(o), body: unitBody(o) };
      } else if (o instanceof protobuf.Namespace) {
        const opts = parsedOptionsOf(o);
        namespaces[o.fullName] = { ...(o.options ? { options: o.options } : {}), ...(opts ? { parsedOptions: opts } : {}) };
        walk(o);
      }
      // else: a package-level extension declaration (see the module comment)
    }
  };
  walk(root);
  return { format: PROTO_BUNDLE_FORMAT, inputsHash, namespaces, units };
}

function unitFromJSON(name: string, def: protobuf.AnyNestedObject): UnitObject {
  if ('fields' in def) return protobuf.Type.fromJSON(name, def as protobuf.IType);
  if ('values' in def) return protobuf.Enum.fromJSON(name, def as protobuf.IEnum);
  if ('methods' in def) return protobuf.Service.fromJSON(name, def as protobuf.IService);
  throw new Error(`proto bundle unit ${name} is neither a message, an enum nor a service`);
}

/**
 * A Root that starts with the package namespaces only and gains units as they are asked for. Each unit is added
 * once (protobufjs throws on a duplicate type), after the units it needs.
 */
export class LazyProtoRoot {
  readonly root = new protobuf.Root();
  private readonly units: Record<string, BundleUnit>;
  private readonly loaded = new Set<string>();

  constructor(bundle: ProtoBundle) {
    this.units = bundle.units;
    for (const [fullName, ns] of Object.entries(bundle.namespaces)) {
      const at = fullName.lastIndexOf('.');
      const parent = at === 0 ? this.root : (this.root.lookup(fullName.slice(0, at)) as protobuf.Namespace);
      const n = new protobuf.Namespace(fullName.slice(at + 1), ns.options);
      if (ns.parsedOptions) (n as unknown as { parsedOptions: ParsedOptions }).parsedOptions = ns.parsedOptions;
      parent.add(n);
    }
  }

  /** The unit holding `fullName` (a type, enum or service, possibly nested; leading dot), or undefined. */
  unitHolding(fullName: string): string | undefined {
    for (let name = fullName; name.length > 1; name = name.slice(0, name.lastIndexOf('.'))) {
      if (Object.hasOwn(this.units, name)) return name;
    }
    return undefined;
  }

  /** Loads the unit holding `fullName` and what it reaches; false if the bundle has no such unit. */
  ensure(fullName: string): boolean {
    const unit = this.unitHolding(fullName);
    if (unit === undefined) return false;
    if (this.loaded.has(unit)) return true;
    const order: string[] = []; // dependencies before their users (a cycle is cut where it closes)
    const visit = (name: string): void => {
      if (this.loaded.has(name)) return;
      this.loaded.add(name);
      for (const d of this.units[name]!.deps) visit(d);
      order.push(name);
    };
    visit(unit);
    for (const name of order) this.addUnit(name);
    this.root.resolveAll(); // walks only the namespaces that gained units
    return true;
  }

  private addUnit(fullName: string): void {
    const body = JSON.parse(this.units[fullName]!.body) as UnitBody;
    const at = fullName.lastIndexOf('.');
    const parent = at === 0 ? this.root : (this.root.lookup(fullName.slice(0, at)) as protobuf.Namespace);
    const u = unitFromJSON(fullName.slice(at + 1), body.def);
    parent.add(u);
    // The options, re-attached before resolveAll (which derives the enum values' features).
    for (const o of unitObjects(u)) {
      const opts = body.parsedOptions[optionsKey(o)];
      if (opts) (o as unknown as { parsedOptions: ParsedOptions }).parsedOptions = opts;
      if (o instanceof protobuf.Enum && body.valuesOptions[o.fullName]) o.valuesOptions = body.valuesOptions[o.fullName];
    }
  }
}

export type BundleRead = { readonly lazy: LazyProtoRoot } | { readonly unusable: string };

/** The registry in `file` if it was built from the inputs hashed as `inputsHash`; else why not (absent, stale, unreadable). */
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
  return { lazy: new LazyProtoRoot(bundle) };
}
