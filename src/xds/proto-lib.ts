import type * as ProtosModule from './protos';
import type * as ProtoJsonModule from './proto-json';
import type * as ValidateModule from './validate';

/**
 * The Envoy protos (protobufjs, its registry, the proto3 JSON reader and the PGV validator), required at their
 * first use rather than when a module that may need them loads: a --concurrency worker imports the configuration
 * and remote-code modules for their types and helpers and parses nothing (the main thread posts it parsed
 * configuration), and these are ~20 ms of require.
 */
export interface ProtoLib {
  readonly protos: typeof ProtosModule;
  readonly json: typeof ProtoJsonModule;
  readonly validate: typeof ValidateModule;
}

let lib: ProtoLib | undefined;

export function protoLib(): ProtoLib {
  return (lib ??= {
    protos: require('./protos') as typeof ProtosModule,
    json: require('./proto-json') as typeof ProtoJsonModule,
    validate: require('./validate') as typeof ValidateModule,
  });
}
