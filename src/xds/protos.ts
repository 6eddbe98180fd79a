import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { debuglog } from 'node:util';
import * as protobuf from 'protobufjs';
import descriptorJson from 'protobufjs/google/protobuf/descriptor.json';
import { ConfigError } from '../common/errors';
import { readProtoBundle, type LazyProtoRoot } from './proto-bundle';

/**
 * Envoy's protos, loaded with protobufjs (keepCase, so field names match Envoy's docs and /config_dump). The
 * .proto files come from the installed `@grpc/grpc-js-xds` package; the list of entry files is
 * `proto/envoy-protos.txt`. Nothing from upstream is committed; `make build` writes a prebuilt bundle of the
 * parsed registry into dist/ (proto-bundle.ts), used when it matches the inputs.
 */

export { CDS_TYPE_URL, ECDS_TYPE_URL, EDS_TYPE_URL, LDS_TYPE_URL, RDS_TYPE_URL, RESOURCE_TYPE_URL, TYPE_URL_PREFIX } from './type-urls';

export const ADS_SERVICE = 'envoy.service.discovery.v3.AggregatedDiscoveryService';
export const ADS_SOTW_METHOD = `/${ADS_SERVICE}/StreamAggregatedResources`;
export const ADS_DELTA_METHOD = `/${ADS_SERVICE}/DeltaAggregatedResources`;

/** The loaded type registry with the handful of types the xDS code uses directly. */
export interface EnvoyProtos {
  /** The registry's Root; from the bundle, it holds only the types looked up so far and what they reach. */
  readonly root: protobuf.Root;
  readonly DiscoveryRequest: protobuf.Type;
  readonly DiscoveryResponse: protobuf.Type;
  readonly DeltaDiscoveryRequest: protobuf.Type;
  readonly DeltaDiscoveryResponse: protobuf.Type;
  readonly Resource: protobuf.Type;
  readonly Cluster: protobuf.Type;
  readonly ClusterLoadAssignment: protobuf.Type;
  readonly Bootstrap: protobuf.Type;
  readonly Any: protobuf.Type;
  /** A message type by full name or type URL, or undefined if the registry does not know it. */
  lookup(nameOrTypeUrl: string): protobuf.Type | undefined;
}

/**
 * The registry, held weakly through its Root: it lives while anything of it does (an ADS client, a control
 * plane, a decoded message, which reaches the Root through its type) and is loaded again by the next caller once
 * it is collected. Keyed by the Root, not by the registry object, so that a message outliving the registry
 * object still finds the same registry rather than a second copy. A static sidecar reads it only while it
 * parses its bootstrap; keeping it would keep 4-5 MiB of materialised types and unread bundle text in every
 * idle sidecar. What a static sidecar needs from it later (a cluster's /config_dump source) is computed then.
 */
let cachedRoot: WeakRef<protobuf.Root> | undefined;
const registryOfRoot = new WeakMap<protobuf.Root, EnvoyProtos>();

function remember(protos: EnvoyProtos): EnvoyProtos {
  registryOfRoot.set(protos.root, protos);
  cachedRoot = new WeakRef(protos.root);
  return protos;
}

function depsDir(): string {
  const pkg = require.resolve('@grpc/grpc-js-xds/package.json');
  return path.join(path.dirname(pkg), 'deps');
}

function protoListFile(): string {
  // dist/src/xds/protos.js and src/xds/protos.ts both sit three levels below the repository root.
  for (const up of ['../../..', '../..']) {
    const p = path.resolve(__dirname, up, 'proto/envoy-protos.txt');
    if (existsSync(p)) return p;
  }
  throw new ConfigError('proto/envoy-protos.txt not found', 'proto');
}

/** Where the build writes the prebuilt registry (scripts/build-proto-bundle.mjs): beside the compiled protos.js. */
export const ENVOY_PROTO_BUNDLE_FILE = path.join(__dirname, 'envoy-protos.bundle.json');

/**
 * What the parsed registry depends on: the list of entry files, the .proto files' package (by version; its
 * files are never edited in place) and the protobufjs that parses them and reads the bundle.
 */
export function envoyProtoInputsHash(): string {
  const version = (pkg: string): string => (JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')) as { version: string }).version;
  return createHash('sha256')
    .update(readFileSync(protoListFile()))
    .update(`\0@grpc/grpc-js-xds@${version('@grpc/grpc-js-xds')}\0protobufjs@${version('protobufjs')}`)
    .digest('hex');
}

/** Parses every Envoy v3 proto listed in proto/envoy-protos.txt (and their imports) into a new Root. */
export function parseEnvoyProtos(): protobuf.Root {
  const deps = depsDir();
  const includeDirs = ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(deps, d));
  const files = readFileSync(protoListFile(), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  // descriptor.proto is needed for custom options such as (validate.rules); protobufjs ships it as JSON.
  protobuf.common('descriptor', (descriptorJson as { nested: { google: { nested: { protobuf: { nested: protobuf.INamespace['nested'] } } } } }).nested.google.nested.protobuf.nested as Record<string, protobuf.INamespace>);
  const root = new protobuf.Root();
  root.resolvePath = (origin: string, target: string): string => {
    if (target.startsWith('google/protobuf/')) return target;
    for (const dir of includeDirs) {
      const p = path.join(dir, target);
      if (existsSync(p)) return p;
    }
    return protobuf.util.path.resolve(origin, target);
  };
  root.loadSync(files, { keepCase: true });
  root.resolveAll();
  return root;
}

const debug = debuglog('pws-protos');

/**
 * Loads (once while it is in use, see cachedRoot) the Envoy v3 protos listed in proto/envoy-protos.txt: from
 * the prebuilt bundle when it matches the inputs, type by type as they are looked up (an idle static sidecar
 * materialises about 30% of them), else by parsing them all. A stale bundle is a build that forgot a step, so it warns; an absent one
 * (running straight after tsc) is only logged under NODE_DEBUG=pws-protos.
 */
export function loadEnvoyProtos(): EnvoyProtos {
  const root = cachedRoot?.deref();
  const hit = root && registryOfRoot.get(root);
  if (hit) return hit;
  const read = readProtoBundle(ENVOY_PROTO_BUNDLE_FILE, envoyProtoInputsHash());
  if ('lazy' in read) return remember(lazyEnvoyProtos(read.lazy));
  if (existsSync(ENVOY_PROTO_BUNDLE_FILE)) {
    process.emitWarning(`${read.unusable}; parsing the .proto files instead (make build rewrites it)`, { code: 'PWS_PROTO_BUNDLE_STALE' });
  } else {
    debug('%s; parsing the .proto files', read.unusable);
  }
  return remember(envoyProtosOf(parseEnvoyProtos()));
}

/** The registry over a resolved Root holding every type. */
export function envoyProtosOf(root: protobuf.Root): EnvoyProtos {
  return registry(root, () => true);
}

/** The registry over a bundle's lazily filled Root. */
export function lazyEnvoyProtos(lazy: LazyProtoRoot): EnvoyProtos {
  return registry(lazy.root, (fullName) => lazy.ensure(fullName));
}

/**
 * `ensure(fullName)` makes the type named (leading dot) present and resolved in `root` if the registry has it,
 * and says whether it may be there.
 */
function registry(root: protobuf.Root, ensure: (fullName: string) => boolean): EnvoyProtos {
  const typeCache = new Map<string, protobuf.Type | undefined>();
  const lookup = (nameOrTypeUrl: string): protobuf.Type | undefined => {
    const name = nameOrTypeUrl.slice(nameOrTypeUrl.lastIndexOf('/') + 1);
    if (typeCache.has(name)) return typeCache.get(name);
    const fullName = name.startsWith('.') ? name : `.${name}`;
    let t: protobuf.Type | undefined;
    if (ensure(fullName)) { // outside the try: a bundle that cannot load a unit is a build fault, not an unknown type
      try {
        const found = root.lookup(fullName);
        t = found instanceof protobuf.Type ? found : undefined;
      } catch {
        t = undefined;
      }
    }
    typeCache.set(name, t);
    return t;
  };
  const need = (name: string): protobuf.Type => {
    const t = lookup(name);
    if (!t) throw new ConfigError(`type ${name} missing from the loaded protos`, 'proto');
    return t;
  };
  // Getters, so a static sidecar never materialises the discovery types.
  return {
    root,
    get DiscoveryRequest() { return need('envoy.service.discovery.v3.DiscoveryRequest'); },
    get DiscoveryResponse() { return need('envoy.service.discovery.v3.DiscoveryResponse'); },
    get DeltaDiscoveryRequest() { return need('envoy.service.discovery.v3.DeltaDiscoveryRequest'); },
    get DeltaDiscoveryResponse() { return need('envoy.service.discovery.v3.DeltaDiscoveryResponse'); },
    get Resource() { return need('envoy.service.discovery.v3.Resource'); },
    get Cluster() { return need('envoy.config.cluster.v3.Cluster'); },
    get ClusterLoadAssignment() { return need('envoy.config.endpoint.v3.ClusterLoadAssignment'); },
    get Bootstrap() { return need('envoy.config.bootstrap.v3.Bootstrap'); },
    get Any() { return need('google.protobuf.Any'); },
    lookup,
  };
}

/** `google.protobuf.Any` as protobufjs decodes it. */
export interface AnyMessage {
  type_url: string;
  value: Uint8Array;
}

/** The bootstrap node serialized as envoy.config.core.v3.Node (the `node` attribute plugins read); undefined: none. */
export function encodeNode(message: Record<string, unknown> | undefined): Buffer | undefined {
  if (!message) return undefined;
  const type = loadEnvoyProtos().lookup('envoy.config.core.v3.Node');
  return type ? Buffer.from(type.encode(message).finish()) : undefined;
}
