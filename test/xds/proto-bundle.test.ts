import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as protobuf from 'protobufjs';
import { parseBootstrap } from '../../src/config/bootstrap';
import { bundleRoot, LazyProtoRoot, PROTO_BUNDLE_FORMAT, readProtoBundle, type ProtoBundle } from '../../src/xds/proto-bundle';
import { decodeProtoJson, type ProtoObject } from '../../src/xds/proto-json';
import { CDS_TYPE_URL, EDS_TYPE_URL, envoyProtoInputsHash, TYPE_URL_PREFIX, envoyProtosOf, lazyEnvoyProtos, parseEnvoyProtos, type EnvoyProtos } from '../../src/xds/protos';
import { ProtoValidator } from '../../src/xds/validate';

/** Every reflection object, keyed by kind and full name. */
function objects(ns: protobuf.NamespaceBase, out = new Map<string, protobuf.ReflectionObject>()): Map<string, protobuf.ReflectionObject> {
  for (const o of ns.nestedArray) {
    out.set(`${o.constructor.name}:${o.fullName}`, o);
    if (o instanceof protobuf.Type) for (const x of [...o.fieldsArray, ...o.oneofsArray]) out.set(`${x.constructor.name}:${x.fullName}`, x);
    if (o instanceof protobuf.Service) for (const m of o.methodsArray) out.set(`Method:${m.fullName}`, m);
    if (o instanceof protobuf.Namespace) objects(o, out);
  }
  return out;
}

// The option types of descriptor.proto gain one field per extension (validate.rules, udpa annotations, ...) when
// the files declaring them are parsed; the bundle leaves extension declarations out (see proto-bundle.ts), so
// there the fields of descriptor.proto itself are compared, as a set.
const EXTENDED = /^\.google\.protobuf\.\w+Options$/;
const isExtensionSister = (key: string): boolean => /^Field:\.google\.protobuf\.\w+Options\.\./.test(key);

/** What the codecs and the validator read of an object, as plain data. */
function describeObject(o: protobuf.ReflectionObject): Record<string, unknown> {
  const d: Record<string, unknown> = {
    options: o.options,
    parsedOptions: (o as unknown as { parsedOptions: unknown }).parsedOptions,
    features: (o as unknown as { _features: unknown })._features,
  };
  if (o instanceof protobuf.Field) {
    Object.assign(d, {
      id: o.id, type: o.type, rule: (o as unknown as { rule: unknown }).rule, repeated: o.repeated, required: o.required, optional: o.optional, map: o.map,
      keyType: (o as unknown as { keyType?: string }).keyType, packed: o.packed, hasPresence: (o as unknown as { hasPresence: boolean }).hasPresence,
      resolvedType: o.resolvedType?.fullName, partOf: o.partOf?.name, extend: o.extend, long: o.long, bytes: o.bytes,
      typeDefault: String(o.typeDefault), defaultValue: String(o.defaultValue),
    });
  }
  if (o instanceof protobuf.OneOf) d['fields'] = o.fieldsArray.map((f) => f.name);
  if (o instanceof protobuf.Type) {
    const names = o.fieldsArray.map((f) => f.name);
    Object.assign(d, { fields: EXTENDED.test(o.fullName) ? names.filter((n) => !n.startsWith('.')).sort() : names, oneofs: o.oneofsArray.map((x) => x.name), reserved: o.reserved, extensions: o.extensions, group: (o as unknown as { group: unknown }).group });
  }
  if (o instanceof protobuf.Enum) {
    Object.assign(d, { values: o.values, valuesOptions: o.valuesOptions, valuesFeatures: (o as unknown as { _valuesFeatures: unknown })._valuesFeatures, reserved: o.reserved });
  }
  if (o instanceof protobuf.Method) {
    Object.assign(d, { request: o.resolvedRequestType?.fullName, response: o.resolvedResponseType?.fullName, requestStream: o.requestStream, responseStream: o.responseStream });
  }
  if (o instanceof protobuf.Namespace) d['nested'] = o.nestedArray.map((n) => n.name);
  return JSON.parse(JSON.stringify(d)) as Record<string, unknown>;
}

const BAD_CLUSTER = {
  name: '',
  connect_timeout: '0s',
  load_assignment: { cluster_name: 'a', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '1.2.3.4', port_value: 70000 } } } }] }] },
};

const BOOTSTRAP = readFileSync(path.resolve(__dirname, '../../..', 'examples/static/bootstrap.yaml'), 'utf8');

type UnitObject = protobuf.Type | protobuf.Enum | protobuf.Service;

const isUnit = (o: protobuf.ReflectionObject): o is UnitObject => o instanceof protobuf.Type || o instanceof protobuf.Enum || o instanceof protobuf.Service;

/** Every type, enum and service of a parsed Root, nested ones included. */
function typesOf(ns: protobuf.NamespaceBase, out: UnitObject[] = []): UnitObject[] {
  for (const o of ns.nestedArray) {
    if (isUnit(o)) out.push(o);
    if (o instanceof protobuf.Namespace || o instanceof protobuf.Type || o instanceof protobuf.Service) typesOf(o, out);
  }
  return out;
}

/** A type, enum or service with everything inside it, keyed as `objects` keys them. */
function unitContents(u: UnitObject, out = new Map<string, protobuf.ReflectionObject>()): Map<string, protobuf.ReflectionObject> {
  out.set(`${u.constructor.name}:${u.fullName}`, u);
  if (u instanceof protobuf.Type) for (const x of [...u.fieldsArray, ...u.oneofsArray]) out.set(`${x.constructor.name}:${x.fullName}`, x);
  if (u instanceof protobuf.Service) for (const m of u.methodsArray) out.set(`Method:${m.fullName}`, m);
  if (u instanceof protobuf.Namespace) objects(u, out);
  return out;
}

function outermost(o: protobuf.ReflectionObject): UnitObject {
  let u = o;
  while (u.parent && isUnit(u.parent)) u = u.parent;
  return u as UnitObject;
}

/**
 * What a lazy registry must hold after looking up `t`: the outermost type (or enum, or service) holding it and,
 * transitively, those holding what their fields and methods name (never through Any).
 */
function reachableUnits(t: protobuf.ReflectionObject): Set<UnitObject> {
  const seen = new Set<UnitObject>();
  const todo = [outermost(t)];
  while (todo.length) {
    const u = todo.pop()!;
    if (seen.has(u)) continue;
    seen.add(u);
    for (const o of unitContents(u).values()) {
      if (o instanceof protobuf.Field && o.resolvedType) todo.push(outermost(o.resolvedType));
      if (o instanceof protobuf.Method) for (const r of [o.resolvedRequestType, o.resolvedResponseType]) if (r) todo.push(outermost(r));
    }
  }
  return seen;
}

function ancestors(o: protobuf.ReflectionObject): protobuf.ReflectionObject[] {
  const out: protobuf.ReflectionObject[] = [];
  for (let p = o.parent; p && !(p instanceof protobuf.Root); p = p.parent) if (!isUnit(p)) out.push(p);
  return out;
}

/** A package namespace as the codecs see it: its options and features, not which types it holds so far. */
function describeNamespace(o: protobuf.ReflectionObject): unknown {
  const { nested: _, ...rest } = describeObject(o);
  return rest;
}

describe('the prebuilt proto bundle, loaded lazily', () => {
  let dir: string;
  let bundleFile: string;
  let parsed: EnvoyProtos;
  let bundle: ProtoBundle;
  /** A registry over the bundle as read back from its file, nothing looked up yet. */
  const fresh = (): { protos: EnvoyProtos; lazy: LazyProtoRoot } => {
    const lazy = new LazyProtoRoot(bundle);
    return { protos: lazyEnvoyProtos(lazy), lazy };
  };

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'pws-proto-bundle-'));
    bundleFile = path.join(dir, 'envoy-protos.bundle.json');
    // What scripts/build-proto-bundle.mjs writes, through the same JSON text.
    writeFileSync(bundleFile, JSON.stringify(bundleRoot(parseEnvoyProtos(), envoyProtoInputsHash())));
    bundle = JSON.parse(readFileSync(bundleFile, 'utf8')) as ProtoBundle;
    parsed = envoyProtosOf(parseEnvoyProtos());
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads back from its file and starts with the package namespaces only', () => {
    const read = readProtoBundle(bundleFile, envoyProtoInputsHash());
    assert.ok('lazy' in read, 'unusable' in read ? read.unusable : '');
    assert.deepEqual(typesOf(read.lazy.root), []);
    const namespaces = (root: protobuf.Root): string[] => [...objects(root).keys()].filter((k) => k.startsWith('Namespace:')).sort();
    assert.deepEqual(namespaces(read.lazy.root), namespaces(parsed.root));
  });

  it('loads, for any one type looked up, that type and exactly what it reaches, each as the full parse has it', () => {
    const all = typesOf(parsed.root);
    assert.ok(all.length > 1300, `${all.length} types, enums and services`);
    const withRules = new Set<string>();
    for (const t of all) {
      const { protos, lazy } = fresh();
      if (t instanceof protobuf.Type) {
        assert.equal(protos.lookup(t.fullName.slice(1))?.fullName, t.fullName);
      } else {
        assert.equal(protos.lookup(t.fullName.slice(1)), undefined, `${t.fullName} is not a message`);
        assert.ok(lazy.ensure(t.fullName), t.fullName);
      }
      const want = new Map<string, protobuf.ReflectionObject>();
      for (const u of reachableUnits(t)) unitContents(u, want);
      for (const key of want.keys()) if (isExtensionSister(key)) want.delete(key);
      const got = objects(lazy.root);
      const gotTypes = [...got.keys()].filter((k) => !k.startsWith('Namespace:')).sort();
      assert.deepEqual(gotTypes, [...want.keys()].sort(), `what looking up ${t.fullName} loads`);
      for (const [key, o] of want) {
        const d = describeObject(o);
        assert.deepEqual(describeObject(got.get(key)!), d, key);
        if (JSON.stringify(d['parsedOptions'] ?? null).includes('(validate.rules)')) withRules.add(key);
        for (const ns of ancestors(o)) assert.deepEqual(describeNamespace(got.get(`Namespace:${ns.fullName}`)!), describeNamespace(ns), `${ns.fullName} above ${key}`);
      }
    }
    assert.ok(withRules.size > 500, `${withRules.size} fields with (validate.rules)`);
    // The case protobufjs's own JSON loses: an aggregate option with no flat form.
    const ct = fresh().protos.Cluster.fields['connect_timeout']!;
    assert.deepEqual((ct as unknown as { parsedOptions: unknown }).parsedOptions, [{ '(validate.rules)': { duration: { gt: {} } } }]);
  });

  it('answers undefined for a package or a name it does not know, and loads nothing for them', () => {
    const { protos, lazy } = fresh();
    for (const name of ['envoy.config.cluster.v3', 'envoy.config.cluster.v3.NoSuchType', 'no.such.Type', `${TYPE_URL_PREFIX}no.such.Type`]) assert.equal(protos.lookup(name), undefined, name);
    assert.deepEqual(typesOf(lazy.root).map((t) => t.fullName), []);
  });

  it('rejects an invalid resource with the same PGV violations, in the same order', () => {
    const run = (p: EnvoyProtos): string[] => {
      const msg = decodeProtoJson(p, p.Cluster, BAD_CLUSTER) as unknown as ProtoObject;
      return new ProtoValidator(p).validate(p.Cluster, msg).map((v) => `${v.path}: ${v.message}`);
    };
    const want = run(parsed);
    assert.ok(want.includes('connect_timeout: value must be > 0s (duration.gt)'), want.join('\n'));
    assert.ok(want.includes('name: value length must be at least 1 characters (string.min_len)'), want.join('\n'));
    assert.deepEqual(run(fresh().protos), want);
  });

  it('loads the example bootstrap to the same result and bytes, materialising under half of the types', () => {
    const { protos: lazy, lazy: lazyRoot } = fresh();
    const a = parseBootstrap(BOOTSTRAP, 'yaml', { protos: parsed });
    const b = parseBootstrap(BOOTSTRAP, 'yaml', { protos: lazy });
    assert.deepEqual(b.json, a.json);
    assert.equal(JSON.stringify(b), JSON.stringify(a));
    const bytes = (p: EnvoyProtos): Buffer => Buffer.from(p.Bootstrap.encode(decodeProtoJson(p, p.Bootstrap, a.json, '')).finish());
    assert.deepEqual(bytes(lazy), bytes(parsed));
    const loaded = typesOf(lazyRoot.root).length;
    const total = typesOf(parsed.root).length;
    assert.ok(loaded < total / 2, `the bootstrap loaded ${loaded} of ${total} types`);
    assert.throws(() => parseBootstrap(BOOTSTRAP.replace('connect_timeout: 1s', 'connect_timeout: 0s'), 'yaml', { protos: fresh().protos }), /duration\.gt/);
  });

  it('decodes and re-encodes a DiscoveryResponse whose Any resources it loads by type URL', () => {
    const cluster = parsed.Cluster.fromObject({ name: 'c1', type: 'EDS', connect_timeout: { seconds: 1 }, eds_cluster_config: { eds_config: { ads: {} } } });
    const cla = parsed.ClusterLoadAssignment.fromObject({ cluster_name: 'c1', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.0.0.1', port_value: 8080 } } } }] }] });
    const response = parsed.DiscoveryResponse.encode(parsed.DiscoveryResponse.fromObject({
      version_info: '1',
      type_url: CDS_TYPE_URL,
      nonce: 'n1',
      resources: [
        { type_url: CDS_TYPE_URL, value: parsed.Cluster.encode(cluster).finish() },
        { type_url: EDS_TYPE_URL, value: parsed.ClusterLoadAssignment.encode(cla).finish() },
      ],
    })).finish();

    const { protos, lazy } = fresh();
    const decoded = protos.DiscoveryResponse.decode(response) as unknown as { resources: { type_url: string; value: Uint8Array }[] };
    assert.equal(lazy.root.lookup('.envoy.config.cluster.v3.Cluster'), null, 'a DiscoveryResponse does not reach Cluster but through Any');
    const resources = decoded.resources.map((r) => {
      const type = protos.lookup(r.type_url);
      assert.ok(type, r.type_url);
      return { type, message: type.decode(r.value) };
    });
    assert.deepEqual(resources.map((r) => r.type.toObject(r.message)), [parsed.Cluster.toObject(cluster), parsed.ClusterLoadAssignment.toObject(cla)]);
    assert.deepEqual(Buffer.from(protos.DiscoveryResponse.encode(decoded).finish()), Buffer.from(response));
    for (const r of resources) assert.deepEqual(Buffer.from(r.type.encode(r.message).finish()), Buffer.from(parsed.lookup(r.type.fullName)!.encode(r.message).finish()));
  });

  it('is not used when stale (other inputs), of another format, or absent', () => {
    const stale = readProtoBundle(bundleFile, 'f'.repeat(64));
    assert.ok('unusable' in stale && /stale/.test(stale.unusable), JSON.stringify(stale));
    const other = path.join(dir, 'other-format.json');
    writeFileSync(other, JSON.stringify({ ...bundle, format: PROTO_BUNDLE_FORMAT + 1 }));
    const old = readProtoBundle(other, envoyProtoInputsHash());
    assert.ok('unusable' in old && /format/.test(old.unusable), JSON.stringify(old));
    const absent = readProtoBundle(path.join(dir, 'none.json'), envoyProtoInputsHash());
    assert.ok('unusable' in absent && /absent/.test(absent.unusable), JSON.stringify(absent));
  });
});
