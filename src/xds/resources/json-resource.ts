import type * as protobuf from 'protobufjs';
import { ConfigError } from '../../common/errors';
import { toProtoJson, type JsonObject, type ProtoObject } from '../proto-json';
import type { Decoded, DecodeContext, ResourceType } from './types';

/**
 * A resource type delivered to its manager as proto3 JSON (LDS, RDS, ECDS: see resource-sink.ts), so the managers
 * read it with the same parsers as a bootstrap. The stages follow Envoy: a malformed message or a PGV rule of the
 * message itself fails decoding (the whole response is rejected); a rule inside a typed_config, or a check of
 * `check`, is found building that one resource. An Any of a type the registry does not know stays opaque
 * (`{"@type", "value": base64}`) for the manager to refuse with its path.
 */
export interface JsonResourceSpec {
  readonly typeUrl: string;
  readonly id: string;
  readonly messageName: string;
  readonly wildcard: boolean;
  readonly after: readonly string[];
  /** Envoy's checks for the type beyond PGV, on the decoded JSON: build errors with their paths. */
  readonly check?: (json: JsonObject) => string[];
}

export function jsonResourceType(spec: JsonResourceSpec): ResourceType<JsonObject> {
  let type: protobuf.Type | undefined;
  const decode = (ctx: DecodeContext, bytes: Uint8Array): Decoded<JsonObject> => {
    type ??= ctx.protos.lookup(spec.messageName);
    if (!type) return { name: '', ok: false, errors: [`type ${spec.messageName} is not in the loaded protos`], stage: 'decode' };
    let msg: ProtoObject;
    try {
      msg = type.decode(bytes) as unknown as ProtoObject;
    } catch (err) {
      return { name: '', ok: false, errors: [`cannot decode ${spec.messageName.slice(spec.messageName.lastIndexOf('.') + 1)}: ${(err as Error).message}`], stage: 'decode' };
    }
    const name = String(msg['name'] ?? '');
    const violations = ctx.validator.validate(type, msg);
    const top = violations.filter((v) => !v.inAny).map((v) => `${v.path}: ${v.message}`);
    if (top.length > 0) return { name, ok: false, errors: top, stage: 'decode' };
    const errors = violations.map((v) => `${v.path}: ${v.message}`);
    if (errors.length > 0) return { name, ok: false, errors, stage: 'build' };
    let json: JsonObject;
    try {
      json = toProtoJson(ctx.protos, type, msg, { unknownAny: 'opaque' });
    } catch (err) {
      if (err instanceof ConfigError) return { name, ok: false, errors: [err.message], stage: 'build' };
      throw err;
    }
    const extra = spec.check?.(json) ?? [];
    if (extra.length > 0) return { name, ok: false, errors: extra, stage: 'build' };
    return { name, ok: true, value: json };
  };
  return { typeUrl: spec.typeUrl, id: spec.id, messageName: spec.messageName, wildcard: spec.wildcard, after: spec.after, decode };
}
