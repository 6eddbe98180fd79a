// Writes the prebuilt Envoy proto registry (dist/src/xds/envoy-protos.bundle.json) from the same .proto files
// loadEnvoyProtos() parses, cut into lazily loaded units (src/xds/proto-bundle.ts); run by `make build` after tsc.
// Generated, never committed.
import { writeFileSync, renameSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { ENVOY_PROTO_BUNDLE_FILE, envoyProtoInputsHash, parseEnvoyProtos } = require('../dist/src/xds/protos.js');
const { bundleRoot } = require('../dist/src/xds/proto-bundle.js');

const bundle = bundleRoot(parseEnvoyProtos(), envoyProtoInputsHash());
const tmp = `${ENVOY_PROTO_BUNDLE_FILE}.${process.pid}.tmp`;
writeFileSync(tmp, JSON.stringify(bundle));
renameSync(tmp, ENVOY_PROTO_BUNDLE_FILE); // a concurrent reader sees the old file or the new one, never half
console.log(`proto bundle: ${ENVOY_PROTO_BUNDLE_FILE} (${Object.keys(bundle.units).length} units in ${Object.keys(bundle.namespaces).length} packages)`);
