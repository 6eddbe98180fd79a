import type * as Protobuf from 'protobufjs';

/**
 * The argument messages of Envoy's and Higress's foreign functions (source/extensions/common/wasm/ext/*.proto),
 * built at the first foreign call that takes one: protobufjs is ~25 ms of require, which every worker and every
 * plugin that never makes such a call would otherwise pay at start.
 */
export interface InjectArgs {
  readonly body: string;
  readonly endstream: boolean;
}
export interface DeclarePropertyArgs {
  readonly name: string;
  readonly readonly: boolean;
  readonly type: number;
  readonly schema: Uint8Array;
  readonly span: number;
}
export interface SetEnvoyFilterStateArgs {
  readonly path: string;
  readonly value: string;
  readonly span: number;
}

interface ArgTypes {
  readonly inject: Protobuf.Type;
  readonly declareProperty: Protobuf.Type;
  readonly setEnvoyFilterState: Protobuf.Type;
}

let types: ArgTypes | undefined;

function argTypes(): ArgTypes {
  if (types !== undefined) return types;
  const protobuf = require('protobufjs') as typeof Protobuf;
  types = {
    inject: new protobuf.Type('InjectEncodedDataToFilterChainArguments')
      .add(new protobuf.Field('body', 1, 'string'))
      .add(new protobuf.Field('endstream', 2, 'bool')),
    declareProperty: new protobuf.Type('DeclarePropertyArguments')
      .add(new protobuf.Field('name', 1, 'string'))
      .add(new protobuf.Field('readonly', 2, 'bool'))
      .add(new protobuf.Field('type', 3, 'int32'))
      .add(new protobuf.Field('schema', 4, 'bytes'))
      .add(new protobuf.Field('span', 5, 'int32')),
    setEnvoyFilterState: new protobuf.Type('SetEnvoyFilterStateArguments')
      .add(new protobuf.Field('path', 1, 'string'))
      .add(new protobuf.Field('value', 2, 'string'))
      .add(new protobuf.Field('span', 3, 'int32')),
  };
  return types;
}

/** Decoded with proto3 defaults; undefined when the bytes are not that message. */
function decode<T>(type: Protobuf.Type, bytes: Uint8Array): T | undefined {
  try {
    return type.toObject(type.decode(bytes), { defaults: true }) as T;
  } catch {
    return undefined;
  }
}

export const decodeInjectArgs = (bytes: Uint8Array): InjectArgs | undefined => decode(argTypes().inject, bytes);
export const decodeDeclarePropertyArgs = (bytes: Uint8Array): DeclarePropertyArgs | undefined => decode(argTypes().declareProperty, bytes);
export const decodeSetEnvoyFilterStateArgs = (bytes: Uint8Array): SetEnvoyFilterStateArgs | undefined => decode(argTypes().setEnvoyFilterState, bytes);
