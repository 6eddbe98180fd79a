/**
 * xDS wire decoding (src/xds/wire.ts): the ADS client scans every SotW DiscoveryResponse with it, locates each
 * resource's Any in place and peeks at its name, then decodes changed resources (decodeCluster,
 * decodeClusterLoadAssignment). Inputs are real responses (the Higress dump's clusters, CLAs as the tests build
 * them, plain and in Resource wrappers) mutated at the byte level, and raw bytes. Oracles:
 *  - only the module's documented RangeError escapes decodeDiscoveryResponse/locateAny; peekStringField and the
 *    resource decoders never throw;
 *  - located ranges nest (Any inside the response, type/value inside the Any);
 *  - agreement with a strict reading that follows protobuf C++ (what Envoy does with the same bytes): the same
 *    accept/refuse decision (proto2 groups aside), and the same version_info, type_url, nonce and resource bytes.
 */
import { readFileSync, existsSync } from 'node:fs';
import fc from 'fast-check';
import { loadEnvoyProtos, type EnvoyProtos, CDS_TYPE_URL, EDS_TYPE_URL, RESOURCE_TYPE_URL } from '../../../src/xds/protos';
import { ProtoValidator } from '../../../src/xds/validate';
import { decodeProtoJson, type ProtoObject } from '../../../src/xds/proto-json';
import { decodeDiscoveryResponse, locateAny, peekStringField } from '../../../src/xds/wire';
import { decodeCluster } from '../../../src/xds/resources/cluster';
import { decodeClusterLoadAssignment } from '../../../src/xds/resources/endpoint';
import { cla, edsCluster, staticCluster } from '../../support/xds-fixtures';
import { b64, onlyTyped, OracleFailure, type FuzzTarget } from '../harness';

export interface WireInput {
  readonly bytes: Uint8Array;
}

let state: { protos: EnvoyProtos; validator: ProtoValidator; seeds: Buffer[] } | undefined;

function clustersFromDump(): Record<string, unknown>[] {
  const file = '/work/shared/vectors/higress_config_dump.json';
  if (!existsSync(file)) return [];
  const dump = JSON.parse(readFileSync(file, 'utf8')) as { configs: Array<Record<string, unknown>> };
  const cds = dump.configs.find((c) => String(c['@type']).endsWith('ClustersConfigDump')) ?? {};
  const entries = [...((cds['static_clusters'] as Array<{ cluster: Record<string, unknown> }> | undefined) ?? []), ...((cds['dynamic_active_clusters'] as Array<{ cluster: Record<string, unknown> }> | undefined) ?? [])];
  return entries.map(({ cluster }) => {
    const { '@type': _t, ...rest } = cluster;
    return rest;
  });
}

function load(): NonNullable<typeof state> {
  if (state) return state;
  const protos = loadEnvoyProtos();
  const enc = (t: typeof protos.Cluster, json: unknown): Uint8Array => t.encode(decodeProtoJson(protos, t, json)).finish();
  const any = (typeUrl: string, value: Uint8Array): ProtoObject => ({ type_url: typeUrl, value });
  const wrap = (name: string, typeUrl: string, value: Uint8Array): ProtoObject =>
    any(RESOURCE_TYPE_URL, protos.Resource.encode(protos.Resource.fromObject({ name, version: '1', resource: any(typeUrl, value), ttl: { seconds: 5 } })).finish());
  const response = (typeUrl: string, resources: ProtoObject[], version = '1', nonce = 'n1'): Buffer =>
    Buffer.from(protos.DiscoveryResponse.encode(protos.DiscoveryResponse.fromObject({ version_info: version, resources, type_url: typeUrl, nonce, control_plane: { identifier: 'fuzz' } })).finish());
  const clusters: Uint8Array[] = [];
  for (const c of [...clustersFromDump(), edsCluster('outbound|6379||redis'), staticCluster('app', 8080)]) {
    try {
      clusters.push(enc(protos.Cluster, c));
    } catch {
      // a dump entry this registry cannot read (a contrib extension): not a seed
    }
  }
  const clas = [cla('outbound|6379||redis', [['127.0.0.1', 6379], ['10.0.0.2', 6380]]), cla('b', [['::1', 1]], 'UNHEALTHY')].map((c) => enc(protos.ClusterLoadAssignment, c));
  const seeds = [
    response(CDS_TYPE_URL, clusters.map((c) => any(CDS_TYPE_URL, c))),
    response(CDS_TYPE_URL, clusters.slice(0, 2).map((c, i) => wrap(`c${i}`, CDS_TYPE_URL, c))),
    response(EDS_TYPE_URL, clas.map((c) => any(EDS_TYPE_URL, c)), '2', 'n2'),
    response(EDS_TYPE_URL, clas.map((c, i) => wrap(`e${i}`, EDS_TYPE_URL, c))),
    response(EDS_TYPE_URL, [], '', ''),
  ];
  state = { protos, validator: new ProtoValidator(protos), seeds };
  return state;
}

type Reference =
  | { readonly ok: true; version_info: string; type_url: string; nonce: string; readonly resources: Buffer[]; groups: boolean }
  | { readonly ok: false; readonly error: string; readonly groups: boolean };

/**
 * The DiscoveryResponse's top-level fields read as protobuf C++ reads them (what Envoy does with the same bytes):
 * a varint is at most 10 bytes, a tag fits 32 bits and names a field >= 1, a field counts only with its declared
 * wire type, and wire types 6/7 are errors. protobufjs is no reference here: its generated decode() dispatches
 * on the field number alone (a `resources` tag with wire type 7 is read as length-delimited) and its Reader
 * truncates over-long varints.
 */
function strictReference(buf: Buffer): Reference {
  let pos = 0;
  const out = { ok: true as const, version_info: '', type_url: '', nonce: '', resources: [] as Buffer[], groups: false };
  const varint = (): bigint => {
    let v = 0n;
    for (let i = 0; i < 10; i++) {
      if (pos >= buf.length) throw new Error('truncated varint');
      const b = buf[pos++]!;
      v |= BigInt(b & 0x7f) << BigInt(7 * i);
      if (b < 0x80) return v;
    }
    throw new Error('varint longer than 10 bytes');
  };
  const take = (n: bigint): Buffer => {
    if (n > BigInt(buf.length - pos)) throw new Error('truncated field');
    const b = buf.subarray(pos, pos + Number(n));
    pos += Number(n);
    return b;
  };
  try {
    while (pos < buf.length) {
      const tag = varint();
      if (tag > 0xffffffffn || tag >> 3n === 0n) throw new Error(`invalid tag ${tag}`);
      const field = Number(tag >> 3n);
      const wire = Number(tag & 7n);
      if (wire === 3 || wire === 4) {
        out.groups = true;
        throw new Error('group');
      }
      if (wire === 0) varint();
      else if (wire === 1) take(8n);
      else if (wire === 5) take(4n);
      else if (wire === 2) {
        const bytes = take(varint());
        if (field === 2) out.resources.push(Buffer.from(bytes));
        else if (field === 1) out.version_info = bytes.toString('utf8');
        else if (field === 4) out.type_url = bytes.toString('utf8');
        else if (field === 5) out.nonce = bytes.toString('utf8');
      } else throw new Error(`invalid wire type ${wire}`);
    }
    return out;
  } catch (err) {
    return { ok: false, error: (err as Error).message, groups: out.groups };
  }
}

function check(input: WireInput): void {
  const { protos, validator } = load();
  const buf = Buffer.from(input.bytes);
  let raw: ReturnType<typeof decodeDiscoveryResponse> | undefined;
  const scanErr = onlyTyped(() => void (raw = decodeDiscoveryResponse(buf)), [RangeError], 'decodeDiscoveryResponse');
  const reference = strictReference(buf);
  if (scanErr) {
    // protobufjs's skipType also reads groups (wire type 3, proto2); the scan refuses them (noted in the report).
    if (reference.ok && !reference.groups) throw new OracleFailure(`a strict (protobuf C++) reading accepts it, the scan refuses: ${scanErr.message}`);
    return;
  }
  const r = raw!;
  if (r.anyStart.length !== r.anyEnd.length) throw new OracleFailure('anyStart/anyEnd lengths differ');
  if (!reference.ok) throw new OracleFailure(`the scan accepts what a strict (protobuf C++) reading refuses: ${reference.error}`);
  for (const k of ['version_info', 'type_url', 'nonce'] as const) {
    if (reference[k] !== r[k]) throw new OracleFailure(`${k}: scan ${JSON.stringify(r[k])}, protobufjs ${JSON.stringify(reference[k])}`);
  }
  if (reference.resources.length !== r.anyStart.length) throw new OracleFailure(`resources: scan ${r.anyStart.length}, protobufjs ${reference.resources.length}`);
  const loc: number[] = [];
  for (let i = 0; i < r.anyStart.length; i++) {
    const s = r.anyStart[i]!;
    const e = r.anyEnd[i]!;
    if (!(s >= 0 && s <= e && e <= buf.length)) throw new OracleFailure(`resource ${i} range [${s}, ${e}) outside the response`);
    const anyErr = onlyTyped(() => locateAny(buf, s, e, loc), [RangeError], 'locateAny');
    if (anyErr) continue;
    const [ts, te, vs, ve] = loc as [number, number, number, number];
    if (!(s <= ts && ts <= te && te <= e && s <= vs && vs <= ve && ve <= e)) throw new OracleFailure(`resource ${i}: Any fields [${ts},${te}) [${vs},${ve}) outside [${s},${e})`);
    if (Buffer.compare(reference.resources[i]!, buf.subarray(s, e)) !== 0) throw new OracleFailure(`resource ${i}: bytes differ from protobufjs`);
    const value = buf.subarray(vs, ve);
    const typeUrl = buf.toString('utf8', ts, te);
    try {
      peekStringField(buf, 1, vs, ve);
      if (typeUrl === CDS_TYPE_URL) decodeCluster(protos, validator, value, r.version_info);
      else if (typeUrl === EDS_TYPE_URL) decodeClusterLoadAssignment(protos, validator, value);
      else if (typeUrl === RESOURCE_TYPE_URL) {
        try {
          protos.Resource.decode(value);
        } catch {
          // the client turns this into a NACK message
        }
      }
    } catch (err) {
      throw new OracleFailure(`resource ${i} (${typeUrl}) threw ${(err as Error).name}: ${(err as Error).message}\n${(err as Error).stack ?? ''}`);
    }
  }
}

const op = fc.record({ at: fc.nat(), kind: fc.constantFrom('set', 'insert', 'delete', 'cut', 'varint'), byte: fc.nat({ max: 255 }) });

function mutate(seed: Buffer, ops: ReadonlyArray<{ at: number; kind: string; byte: number }>): Buffer {
  let b = Buffer.from(seed);
  for (const { at, kind, byte } of ops) {
    const i = b.length === 0 ? 0 : at % b.length;
    if (kind === 'set' && b.length > 0) b[i] = byte;
    else if (kind === 'insert') b = Buffer.concat([b.subarray(0, i), Buffer.from([byte]), b.subarray(i)]);
    else if (kind === 'delete') b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
    else if (kind === 'cut') b = b.subarray(0, i);
    // An over-long varint where a length or tag is expected.
    else b = Buffer.concat([b.subarray(0, i), Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, byte & 0x7f]), b.subarray(i)]);
  }
  return b;
}

export const wireTarget: FuzzTarget<WireInput> = {
  name: 'wire',
  get arbitrary() {
    return fc.oneof(
      { weight: 4, arbitrary: fc.tuple(fc.nat(), fc.array(op, { minLength: 1, maxLength: 4 })).map(([i, ops]): WireInput => {
        const seeds = load().seeds;
        return { bytes: mutate(seeds[i % seeds.length]!, ops) };
      }) },
      { weight: 1, arbitrary: fc.uint8Array({ maxLength: 200 }).map((bytes): WireInput => ({ bytes })) },
    );
  },
  check,
  ciRuns: 300,
  setup: async () => void load(),
  encode: (i) => ({ bytes: b64.enc(i.bytes) }),
  decode: (j) => ({ bytes: b64.dec((j as { bytes: string }).bytes) }),
};
