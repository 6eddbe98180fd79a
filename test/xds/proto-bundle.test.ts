import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import * as protobuf from 'protobufjs';
import { parseBootstrap } from '../../src/config/bootstrap';
import { bundleRoot, PROTO_BUNDLE_FORMAT, readProtoBundle, type ProtoBundle } from '../../src/xds/proto-bundle';
import { decodeProtoJson, type ProtoObject } from '../../src/xds/proto-json';
import { envoyProtoInputsHash, envoyProtosOf, parseEnvoyProtos, type EnvoyProtos } from '../../src/xds/protos';
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

// The option types of descriptor.proto gain one field per extension (validate.rules, udpa annotations, ...) in
// the order the files declaring them were loaded; nothing walks them, so there the field set is compared.
const EXTENDED = /^\.google\.protobuf\.\w+Options$/;

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
    Object.assign(d, { fields: EXTENDED.test(o.fullName) ? names.sort() : names, oneofs: o.oneofsArray.map((x) => x.name), reserved: o.reserved, extensions: o.extensions, group: (o as unknown as { group: unknown }).group });
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

describe('the prebuilt proto bundle', () => {
  let dir: string;
  let bundleFile: string;
  let parsed: EnvoyProtos;
  let bundled: EnvoyProtos;
  let bundle: ProtoBundle;

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'pws-proto-bundle-'));
    bundleFile = path.join(dir, 'envoy-protos.bundle.json');
    // What scripts/build-proto-bundle.mjs writes, through the same JSON text.
    bundle = bundleRoot(parseEnvoyProtos(), envoyProtoInputsHash());
    writeFileSync(bundleFile, JSON.stringify(bundle));
    parsed = envoyProtosOf(parseEnvoyProtos());
    const read = readProtoBundle(bundleFile, envoyProtoInputsHash());
    assert.ok('root' in read, 'unusable' in read ? read.unusable : '');
    bundled = envoyProtosOf(read.root);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('holds every type, field, oneof, enum and service of the parsed registry, with ids, types, rules and parsedOptions', () => {
    const a = objects(parsed.root);
    const b = objects(bundled.root);
    assert.deepEqual([...b.keys()].sort(), [...a.keys()].sort());
    assert.ok(a.size > 5000, `${a.size} objects`);
    let withRules = 0;
    for (const [key, o] of a) {
      const want = describeObject(o);
      assert.deepEqual(describeObject(b.get(key)!), want, key);
      if (JSON.stringify(want['parsedOptions'] ?? null).includes('(validate.rules)')) withRules++;
    }
    assert.ok(withRules > 500, `${withRules} fields with (validate.rules)`);
    // The case protobufjs's own JSON loses: an aggregate option with no flat form.
    const ct = bundled.Cluster.fields['connect_timeout']!;
    assert.deepEqual((ct as unknown as { parsedOptions: unknown }).parsedOptions, [{ '(validate.rules)': { duration: { gt: {} } } }]);
  });

  it('rejects an invalid resource with the same PGV violations, in the same order', () => {
    const run = (p: EnvoyProtos): string[] => {
      const msg = decodeProtoJson(p, p.Cluster, BAD_CLUSTER) as unknown as ProtoObject;
      return new ProtoValidator(p).validate(p.Cluster, msg).map((v) => `${v.path}: ${v.message}`);
    };
    const want = run(parsed);
    assert.ok(want.includes('connect_timeout: value must be > 0s (duration.gt)'), want.join('\n'));
    assert.ok(want.includes('name: value length must be at least 1 characters (string.min_len)'), want.join('\n'));
    assert.deepEqual(run(bundled), want);
  });

  it('loads the example bootstrap to the same result and encodes it to the same bytes', () => {
    const a = parseBootstrap(BOOTSTRAP, 'yaml', { protos: parsed });
    const b = parseBootstrap(BOOTSTRAP, 'yaml', { protos: bundled });
    assert.deepEqual(b.json, a.json);
    assert.equal(JSON.stringify(b), JSON.stringify(a));
    const bytes = (p: EnvoyProtos): Buffer => Buffer.from(p.Bootstrap.encode(decodeProtoJson(p, p.Bootstrap, a.json, '')).finish());
    assert.deepEqual(bytes(bundled), bytes(parsed));
    assert.throws(() => parseBootstrap(BOOTSTRAP.replace('connect_timeout: 1s', 'connect_timeout: 0s'), 'yaml', { protos: bundled }), /duration\.gt/);
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
