/**
 * The PGV validator (src/xds/validate.ts) on random messages of Envoy's own types, built from the loaded
 * descriptors (every field kind, enums with undefined values, Anys of known and unknown types holding random or
 * well-formed bytes, 64-bit edges, NaN), and on mutated encodings of those messages. Each message goes the way an
 * xDS resource goes: bytes, protobufjs decode, validate; Clusters and ClusterLoadAssignments also through the
 * decoders the ADS client uses (decodeCluster, decodeClusterLoadAssignment). Oracles: the validator and the
 * decoders never throw, every violation has a path and a message, and validating twice gives the same answer.
 */
import fc from 'fast-check';
import * as protobuf from 'protobufjs';
import { loadEnvoyProtos, type EnvoyProtos } from '../../../src/xds/protos';
import { ProtoValidator } from '../../../src/xds/validate';
import { decodeCluster } from '../../../src/xds/resources/cluster';
import { decodeClusterLoadAssignment } from '../../../src/xds/resources/endpoint';
import type { ProtoObject } from '../../../src/xds/proto-json';
import { b64, OracleFailure, type FuzzTarget } from '../harness';
import { TYPE_URLS } from '../json-mutate';

export interface ValidateInput {
  /** Full name of the message type, e.g. envoy.config.cluster.v3.Cluster. */
  readonly type: string;
  readonly bytes: Uint8Array;
}

export const FUZZED_TYPES = [
  'envoy.config.cluster.v3.Cluster',
  'envoy.config.endpoint.v3.ClusterLoadAssignment',
  'envoy.config.bootstrap.v3.Bootstrap',
  'envoy.config.listener.v3.Listener',
  'envoy.config.route.v3.RouteConfiguration',
  'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  'envoy.extensions.filters.http.wasm.v3.Wasm',
  'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
] as const;

const MAX_DEPTH = 4;

let protos: EnvoyProtos | undefined;
let validator: ProtoValidator | undefined;
function registry(): { protos: EnvoyProtos; validator: ProtoValidator } {
  protos ??= loadEnvoyProtos();
  validator ??= new ProtoValidator(protos);
  return { protos, validator };
}

function typeOf(name: string): protobuf.Type {
  const t = registry().protos.lookup(name);
  if (!t) throw new Error(`type ${name} is not in the registry`);
  return t;
}

// ---------- random messages from descriptors ----------

const I32 = fc.oneof(fc.constantFrom(0, 1, -1, 2 ** 31 - 1, -(2 ** 31)), fc.integer());
const U32 = fc.oneof(fc.constantFrom(0, 1, 65535, 65536, 2 ** 32 - 1), fc.nat());
const I64 = fc.oneof(fc.constantFrom('0', '-1', '9223372036854775807', '-9223372036854775808', '315576000001'), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }).map(String));
const U64 = fc.oneof(fc.constantFrom('0', '18446744073709551615', '4294967296'), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String));
const DOUBLE = fc.oneof(fc.constantFrom(NaN, Infinity, -Infinity, -0, 0.5, 101, -1), fc.double());
const STRING = fc.oneof(
  fc.constantFrom('', '127.0.0.1', '::1', '0.0.0.0', '*', 'a'.repeat(300), 'outbound|6379||redis', 'x:y', '/', 'type.googleapis.com/x', '\u0000', 'é'),
  fc.string({ maxLength: 12 }),
);
const BYTES = fc.uint8Array({ maxLength: 24 });

function scalar(kind: string): fc.Arbitrary<unknown> {
  switch (kind) {
    case 'int32': case 'sint32': case 'sfixed32': return I32;
    case 'uint32': case 'fixed32': return U32;
    case 'int64': case 'sint64': case 'sfixed64': return I64;
    case 'uint64': case 'fixed64': return U64;
    case 'double': case 'float': return DOUBLE;
    case 'bool': return fc.boolean();
    case 'string': return STRING;
    case 'bytes': return BYTES;
    default: return fc.constant(undefined);
  }
}

const arbCache = new Map<string, fc.Arbitrary<ProtoObject>>();

function messageArb(type: protobuf.Type, depth: number): fc.Arbitrary<ProtoObject> {
  const key = `${type.fullName}@${depth}`;
  const hit = arbCache.get(key);
  if (hit) return hit;
  let arb: fc.Arbitrary<ProtoObject>;
  if (depth >= MAX_DEPTH || type.fieldsArray.length === 0) arb = fc.constant({});
  else if (type.fullName === '.google.protobuf.Any') arb = anyArb(depth);
  else {
    const fields = type.fieldsArray;
    // A few fields per message: real resources set a handful of Envoy's many fields.
    arb = fc.subarray(fields, { maxLength: Math.min(5, fields.length) }).chain((chosen) => {
      const shape: Record<string, fc.Arbitrary<unknown>> = {};
      for (const f of chosen) shape[f.name] = fieldArb(f, depth);
      return fc.record(shape) as fc.Arbitrary<ProtoObject>;
    });
  }
  arbCache.set(key, arb);
  return arb;
}

function singleArb(f: protobuf.Field, depth: number): fc.Arbitrary<unknown> {
  f.resolve();
  const rt = f.resolvedType;
  if (rt instanceof protobuf.Type) return messageArb(rt, depth + 1);
  if (rt instanceof protobuf.Enum) return fc.constantFrom(...Object.values(rt.values), 99, -1);
  return scalar(f.type);
}

function fieldArb(f: protobuf.Field, depth: number): fc.Arbitrary<unknown> {
  if (f instanceof protobuf.MapField) {
    const keys = f.keyType === 'string' ? STRING : f.keyType === 'bool' ? fc.constantFrom('true', 'false') : fc.nat().map(String);
    return fc.dictionary(keys as fc.Arbitrary<string>, singleArb(f, depth), { maxKeys: 3 });
  }
  if (f.repeated) return fc.array(singleArb(f, depth), { maxLength: 3 });
  return singleArb(f, depth);
}

function encode(type: protobuf.Type, obj: ProtoObject): Uint8Array {
  try {
    return type.encode(type.fromObject(obj)).finish();
  } catch {
    return new Uint8Array(); // a shape protobufjs itself refuses: the empty message instead
  }
}

function anyArb(depth: number): fc.Arbitrary<ProtoObject> {
  return fc.oneof(
    fc.record({ type_url: fc.constantFrom(...TYPE_URLS), value: BYTES }),
    fc.constantFrom(...FUZZED_TYPES).chain((name) => {
      const inner = typeOf(name);
      return messageArb(inner, depth + 2).map((m) => ({ type_url: `type.googleapis.com/${name}`, value: encode(inner, m) }));
    }),
  );
}

// ---------- the check ----------

function validateTwice(type: protobuf.Type, msg: ProtoObject): void {
  const { validator: v } = registry();
  let first;
  try {
    first = v.validate(type, msg);
  } catch (err) {
    throw new OracleFailure(`validate(${type.fullName}) threw ${(err as Error).name}: ${(err as Error).message}\n${(err as Error).stack ?? ''}`);
  }
  for (const violation of first) {
    if (typeof violation.path !== 'string' || typeof violation.message !== 'string' || violation.message === '') {
      throw new OracleFailure(`malformed violation ${JSON.stringify(violation)}`);
    }
  }
  const second = v.validate(type, msg);
  if (JSON.stringify(first) !== JSON.stringify(second)) throw new OracleFailure('validate is not deterministic');
}

function check(input: ValidateInput): void {
  const { protos: p, validator: v } = registry();
  const type = typeOf(input.type);
  let msg: ProtoObject | undefined;
  try {
    msg = type.decode(input.bytes) as unknown as ProtoObject;
  } catch {
    msg = undefined; // malformed bytes: the decoders below must still answer with an error, not throw
  }
  if (msg) validateTwice(type, msg);
  try {
    if (input.type === 'envoy.config.cluster.v3.Cluster') decodeCluster(p, v, input.bytes, 'v1');
    if (input.type === 'envoy.config.endpoint.v3.ClusterLoadAssignment') decodeClusterLoadAssignment(p, v, input.bytes);
  } catch (err) {
    throw new OracleFailure(`decoding ${input.type} threw ${(err as Error).name}: ${(err as Error).message}\n${(err as Error).stack ?? ''}`);
  }
}

const generated = fc.constantFrom(...FUZZED_TYPES).chain((name) => {
  const type = typeOf(name);
  return messageArb(type, 0).map((m): ValidateInput => ({ type: name, bytes: encode(type, m) }));
});

const mutated = fc.tuple(generated, fc.array(fc.record({ at: fc.nat(), byte: fc.nat({ max: 255 }), cut: fc.boolean() }), { minLength: 1, maxLength: 3 })).map(
  ([input, ops]): ValidateInput => {
    let b = Buffer.from(input.bytes);
    for (const { at, byte, cut } of ops) {
      if (b.length === 0) break;
      if (cut) b = b.subarray(0, at % b.length);
      else b[at % b.length] = byte;
    }
    return { type: input.type, bytes: b };
  },
);

export const validateTarget: FuzzTarget<ValidateInput> = {
  name: 'validate',
  // Built lazily: the arbitraries read the registry, which setup() loads.
  get arbitrary() {
    return fc.oneof({ arbitrary: generated, weight: 3 }, { arbitrary: mutated, weight: 1 });
  },
  check,
  ciRuns: 200,
  setup: async () => void registry(),
  encode: (i) => ({ type: i.type, bytes: b64.enc(i.bytes) }),
  decode: (j) => {
    const o = j as { type: string; bytes: string };
    return { type: o.type, bytes: b64.dec(o.bytes) };
  },
};
