import { readFileSync } from 'node:fs';
import type * as protobuf from 'protobufjs';
import { parseYaml } from './yaml';
import { ConfigError } from '../common/errors';
import type { ClusterConfig } from '../upstream/types';
import { decodeProtoJson, toProtoJson, type JsonObject, type ProtoObject } from '../xds/proto-json';
import { loadEnvoyProtos, type EnvoyProtos } from '../xds/protos';
import { clusterToConfig } from '../xds/resources/cluster';
import { ProtoValidator } from '../xds/validate';
import { TagProducer, type TagSpecifier } from '../observability/tag-extractor';
import { HistogramBuckets, StatsMatcher } from '../observability/stats-matcher';

import type { AdsClientOptions, ClusterSink } from '../xds/ads-client';
import type { ResourceSink } from '../xds/resource-sink';

export { clusterToConfig } from '../xds/resources/cluster';
export { claToHosts } from '../xds/resources/endpoint';

/**
 * Envoy v3 bootstrap loading (YAML or JSON, proto3 JSON mapping). The whole document is decoded into
 * `envoy.config.bootstrap.v3.Bootstrap` and PGV-validated, so a typo or an unknown `@type` is a ConfigError that
 * names its JSON path. node, static clusters, ADS, cds_config, admin, stats_config (tag extraction, stats
 * matcher, histogram buckets) and bootstrap_extensions (Wasm services) are acted on; listeners are exposed for
 * the HTTP data plane. Bootstrap extensions the sidecar does not implement are refused with their path.
 */

/** The typed_config of an `envoy.bootstrap.wasm` bootstrap extension. */
export const WASM_SERVICE_TYPE = 'type.googleapis.com/envoy.extensions.wasm.v3.WasmService';

/** One `envoy.extensions.wasm.v3.WasmService` from bootstrap_extensions. */
export interface WasmServiceConfig {
  /** JSON path of the extension's typed_config, for errors. */
  readonly path: string;
  /** true: one instance, in the main thread; false: one per worker, on that worker's VMs. */
  readonly singleton: boolean;
  /** The service's PluginConfig as proto3 JSON (snake_case), read like an HTTP filter's. */
  readonly config: JsonObject;
}

/** 0 means "wait forever" (Istio and Higress send "0s"). */
export const DEFAULT_INITIAL_FETCH_TIMEOUT_MS = 15_000;

export type AdsApiType = 'GRPC' | 'DELTA_GRPC';

export interface AdsConfig {
  readonly apiType: AdsApiType;
  /**
   * A gRPC target: `host:port` (or `unix:<path>` for a pipe) from the static cluster's first endpoint, or
   * google_grpc.target_uri as given.
   */
  readonly target: string;
  /** envoy_grpc.cluster_name, or '' for google_grpc. */
  readonly clusterName: string;
  readonly setNodeOnFirstMessageOnly: boolean;
}

export interface CdsConfig {
  /** cds_config is `{ads: {}}`: clusters come over the ADS stream. */
  readonly ads: boolean;
  readonly initialFetchTimeoutMs: number;
}

/** dynamic_resources.lds_config: listeners over the ADS stream. */
export interface LdsConfig {
  readonly initialFetchTimeoutMs: number;
}

export interface NodeInfo {
  readonly id: string;
  readonly cluster: string;
  /** node.metadata as JSON (a Struct). */
  readonly metadata: JsonObject;
  /** The whole node as a plain object of `envoy.config.core.v3.Node` fields, as sent on the ADS stream. */
  readonly message: ProtoObject;
}

export interface Bootstrap {
  readonly node: NodeInfo;
  readonly staticClusters: readonly ClusterConfig[];
  /** static_resources.listeners as proto3 JSON, unchanged in meaning. */
  readonly staticListeners: readonly JsonObject[];
  /** undefined when dynamic_resources.ads_config is absent. */
  readonly ads: AdsConfig | undefined;
  readonly cds: CdsConfig | undefined;
  /** undefined when dynamic_resources.lds_config is absent. */
  readonly lds: LdsConfig | undefined;
  readonly admin: { readonly address: string; readonly port: number } | undefined;
  /** Tag extraction from stats_config (stats_tags, use_all_default_tags); Envoy's default tags without one. */
  readonly tagProducer: TagProducer;
  /** stats_config.stats_matcher: which stats exist; every one without it. */
  readonly statsMatcher: StatsMatcher;
  /** stats_config.histogram_bucket_settings: Prometheus buckets by histogram name. */
  readonly histogramBuckets: HistogramBuckets;
  /** bootstrap_extensions of type WasmService, in order. */
  readonly wasmServices: readonly WasmServiceConfig[];
  /** The whole bootstrap, re-serialized as canonical proto3 JSON (for /config_dump). */
  readonly json: JsonObject;
}

export interface BootstrapOptions {
  readonly protos?: EnvoyProtos;
}

/** Loads a bootstrap file; `.json` is parsed as JSON, everything else as YAML (a superset of JSON). */
export function loadBootstrapFile(file: string, options: BootstrapOptions = {}): Bootstrap {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read bootstrap ${file}: ${(err as Error).message}`, '', { cause: err });
  }
  return parseBootstrap(text, file.endsWith('.json') ? 'json' : 'yaml', options);
}

export function parseBootstrap(text: string, format: 'yaml' | 'json', options: BootstrapOptions = {}): Bootstrap {
  let doc: unknown;
  try {
    doc = format === 'json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(`bootstrap is not valid ${format.toUpperCase()}: ${(err as Error).message}`, '', { cause: err });
  }
  return bootstrapFromJson(doc, options);
}

function durationMs(d: unknown): number | undefined {
  if (!d || typeof d !== 'object') return undefined;
  const o = d as { seconds?: unknown; nanos?: unknown };
  return Number(String(o.seconds ?? 0)) * 1000 + Math.round(Number(o.nanos ?? 0) / 1e6);
}

function present(msg: ProtoObject | null | undefined, field: string): boolean {
  return !!msg && Object.prototype.hasOwnProperty.call(msg, field) && msg[field] !== null && msg[field] !== undefined;
}

/** Builds a Bootstrap from an already-parsed JSON/YAML document. */
export function bootstrapFromJson(doc: unknown, options: BootstrapOptions = {}): Bootstrap {
  const protos = options.protos ?? loadEnvoyProtos();
  const validator = new ProtoValidator(protos);
  const msg = decodeProtoJson(protos, protos.Bootstrap, doc, '') as unknown as ProtoObject;
  const violations = validator.validate(protos.Bootstrap, msg);
  if (violations.length > 0) {
    const [first, ...rest] = violations;
    const more = rest.length > 0 ? `; also ${rest.map((v) => `${v.path}: ${v.message}`).join('; ')}` : '';
    throw new ConfigError(`${first!.message}${more}`, first!.path);
  }
  const json = toProtoJson(protos, protos.Bootstrap, msg);

  const nodeMsg = (msg['node'] as ProtoObject | null | undefined) ?? {};
  const nodeType = protos.lookup('envoy.config.core.v3.Node') as protobuf.Type;
  const nodeJson = toProtoJson(protos, nodeType, nodeMsg);
  const node: NodeInfo = {
    id: String(nodeMsg['id'] ?? ''),
    cluster: String(nodeMsg['cluster'] ?? ''),
    metadata: (nodeJson['metadata'] as JsonObject | undefined) ?? {},
    // A plain object: the decoded message would keep the whole registry alive for the life of the sidecar.
    message: nodeType.toObject(nodeMsg as unknown as protobuf.Message) as ProtoObject,
  };

  const statics = (msg['static_resources'] as ProtoObject | null | undefined) ?? {};
  const staticClusters: ClusterConfig[] = [];
  const seen = new Set<string>();
  ((statics['clusters'] as ProtoObject[] | undefined) ?? []).forEach((c, i) => {
    const path = `static_resources.clusters[${i}]`;
    const decoded = clusterToConfig(protos, validator, c, { versionInfo: '', addedViaApi: false });
    if (!decoded.ok) throw new ConfigError(`cluster '${decoded.name}': ${decoded.errors.join('; ')}`, path);
    if (seen.has(decoded.name)) throw new ConfigError(`duplicate cluster name '${decoded.name}'`, `${path}.name`);
    seen.add(decoded.name);
    staticClusters.push(decoded.value);
  });
  const listenerType = protos.lookup('envoy.config.listener.v3.Listener') as protobuf.Type;
  const staticListeners = ((statics['listeners'] as ProtoObject[] | undefined) ?? []).map((l) => toProtoJson(protos, listenerType, l));

  const dyn = (msg['dynamic_resources'] as ProtoObject | null | undefined) ?? undefined;
  let ads: AdsConfig | undefined;
  const adsMsg = dyn?.['ads_config'] as ProtoObject | null | undefined;
  if (adsMsg) ads = adsConfig(adsMsg, (statics['clusters'] as ProtoObject[] | undefined) ?? []);
  for (const field of ['cds_resources_locator', 'lds_resources_locator']) {
    if (present(dyn, field)) throw new ConfigError('xdstp:// resource locators are not supported (use cds_config/lds_config with ads)', `dynamic_resources.${field}`);
  }
  let cds: CdsConfig | undefined;
  const cdsMsg = dyn?.['cds_config'] as ProtoObject | null | undefined;
  if (cdsMsg) cds = { ads: true, initialFetchTimeoutMs: adsConfigSource(cdsMsg, 'dynamic_resources.cds_config', 'CDS', ads !== undefined) };
  let lds: LdsConfig | undefined;
  const ldsMsg = dyn?.['lds_config'] as ProtoObject | null | undefined;
  if (ldsMsg) lds = { initialFetchTimeoutMs: adsConfigSource(ldsMsg, 'dynamic_resources.lds_config', 'LDS', ads !== undefined) };

  let admin: Bootstrap['admin'];
  const sock = ((msg['admin'] as ProtoObject | null | undefined)?.['address'] as ProtoObject | null | undefined)?.['socket_address'] as ProtoObject | null | undefined;
  if (sock) admin = { address: String(sock['address'] ?? ''), port: Number(sock['port_value'] ?? 0) };

  const statsMsg = (msg['stats_config'] as ProtoObject | null | undefined) ?? undefined;
  const tagProducer = statsConfig(statsMsg);
  const statsMatcher = StatsMatcher.fromProto(statsMsg?.['stats_matcher'] as ProtoObject | null | undefined, 'stats_config.stats_matcher');
  const histogramBuckets = HistogramBuckets.fromProto(statsMsg?.['histogram_bucket_settings'] as ProtoObject[] | undefined, 'stats_config.histogram_bucket_settings');
  // From the proto3 JSON form, where each typed_config Any is already decoded to `{"@type", ...fields}`.
  const wasmServices = bootstrapExtensions((json['bootstrap_extensions'] as JsonObject[] | undefined) ?? []);

  return { node, staticClusters, staticListeners, ads, cds, lds, admin, tagProducer, statsMatcher, histogramBuckets, wasmServices, json };
}

/** stats_config's tag extraction (every StatsConfig field of these protos is implemented: see also statsMatcher). */
function statsConfig(msg: ProtoObject | undefined): TagProducer {
  if (!msg) return new TagProducer();
  const statsTags = ((msg['stats_tags'] as ProtoObject[] | undefined) ?? []).map((t): TagSpecifier => {
    const tagName = String(t['tag_name'] ?? '');
    if (present(t, 'fixed_value')) return { tagName, fixedValue: String(t['fixed_value']) };
    return present(t, 'regex') ? { tagName, regex: String(t['regex']) } : { tagName };
  });
  const useAll = msg['use_all_default_tags'] as ProtoObject | null | undefined;
  // BoolValue: absent means true (Envoy: !has_use_all_default_tags() || value).
  return new TagProducer({ statsTags, useAllDefaultTags: !useAll || useAll['value'] !== false }, 'stats_config');
}

/**
 * Bootstrap extensions that change nothing here: internal_listener only enables listeners with an
 * `envoy_internal_address`, which the listener reader refuses (it needs a socket_address). Higress and Istio
 * gateways carry it in every bootstrap.
 */
const INERT_EXTENSIONS = ['type.googleapis.com/envoy.extensions.bootstrap.internal_listener.v3.InternalListener'];
const TYPED_STRUCTS = ['type.googleapis.com/udpa.type.v1.TypedStruct', 'type.googleapis.com/xds.type.v3.TypedStruct'];

function bootstrapExtensions(extensions: readonly JsonObject[]): WasmServiceConfig[] {
  return extensions.flatMap((e, i): WasmServiceConfig[] => {
    const path = `bootstrap_extensions[${i}].typed_config`;
    const tc = e['typed_config'] as JsonObject | undefined;
    const type = tc ? String(tc['@type'] ?? '') : '';
    if (INERT_EXTENSIONS.includes(type) || (TYPED_STRUCTS.includes(type) && INERT_EXTENSIONS.includes(String(tc!['type_url'] ?? '')))) return [];
    if (type !== WASM_SERVICE_TYPE) {
      throw new ConfigError(`bootstrap extension ${type || '(no typed_config)'} is not supported (only envoy.bootstrap.wasm: envoy.extensions.wasm.v3.WasmService)`, tc ? `${path}.@type` : path);
    }
    const config = tc!['config'];
    if (!config || typeof config !== 'object' || Array.isArray(config)) throw new ConfigError('WasmService needs a config (PluginConfig)', `${path}.config`);
    return [{ path, singleton: tc!['singleton'] === true, config: config as JsonObject }];
  });
}

const API_TYPES: Readonly<Record<number, string>> = { 0: 'DEPRECATED_AND_UNAVAILABLE_DO_NOT_USE', 1: 'REST', 2: 'GRPC', 3: 'DELTA_GRPC', 5: 'AGGREGATED_GRPC', 6: 'AGGREGATED_DELTA_GRPC' };

/** The gRPC target of a cluster's first endpoint: `host:port`, or `unix:<path>` for a pipe (Istio's agent socket). */
function firstEndpointTarget(cluster: ProtoObject): string | undefined {
  const la = cluster['load_assignment'] as ProtoObject | null | undefined;
  const lle = ((la?.['endpoints'] as ProtoObject[] | undefined) ?? [])[0];
  const lbe = ((lle?.['lb_endpoints'] as ProtoObject[] | undefined) ?? [])[0];
  const address = (lbe?.['endpoint'] as ProtoObject | null | undefined)?.['address'] as ProtoObject | null | undefined;
  if (!address) return undefined;
  const sock = address['socket_address'] as ProtoObject | null | undefined;
  if (sock) {
    const host = String(sock['address'] ?? '');
    return `${host.includes(':') ? `[${host}]` : host}:${Number(sock['port_value'] ?? 0)}`;
  }
  const pipe = address['pipe'] as ProtoObject | null | undefined;
  if (pipe) return `unix:${String(pipe['path'] ?? '')}`;
  return undefined;
}

/** `envoy.config.core.v3.ApiVersion` by number. */
const API_VERSIONS: Readonly<Record<number, string>> = { 0: 'AUTO', 1: 'V2', 2: 'V3' };
/** ConfigSource fields acted on; the others are refused with their path. */
const CONFIG_SOURCE_FIELDS = new Set(['ads', 'initial_fetch_timeout', 'resource_api_version']);

/**
 * A bootstrap ConfigSource (cds_config, lds_config) that must be `{ads: {}}` (with initial_fetch_timeout and
 * resource_api_version AUTO/V3). Returns its initial_fetch_timeout in ms (0 waits forever). A path,
 * api_config_source (a separate non-ADS stream), `self` or authorities are refused with their path.
 */
function adsConfigSource(msg: ProtoObject, path: string, what: string, haveAds: boolean): number {
  for (const [field, value] of Object.entries(msg)) {
    if (value === null || value === undefined || (Array.isArray(value) && value.length === 0)) continue;
    if (field === 'resource_api_version' && Number(value) === 0) continue;
    if (!CONFIG_SOURCE_FIELDS.has(field)) {
      throw new ConfigError(`${field} is not supported for ${what}: only the ADS stream ({ads: {}}) is`, `${path}.${field}`);
    }
  }
  if (!present(msg, 'ads')) throw new ConfigError(`only ADS is supported for ${what} (${path.slice(path.lastIndexOf('.') + 1)}: {ads: {}})`, path);
  const version = API_VERSIONS[Number(msg['resource_api_version'] ?? 0)] ?? String(msg['resource_api_version']);
  if (version !== 'AUTO' && version !== 'V3') throw new ConfigError(`resource_api_version ${version} is not supported (V3)`, `${path}.resource_api_version`);
  if (!haveAds) throw new ConfigError(`${path.slice(path.lastIndexOf('.') + 1)} uses ADS but dynamic_resources.ads_config is missing`, `${path}.ads`);
  return durationMs(msg['initial_fetch_timeout']) ?? DEFAULT_INITIAL_FETCH_TIMEOUT_MS;
}

function adsConfig(msg: ProtoObject, clusters: readonly ProtoObject[]): AdsConfig {
  const path = 'dynamic_resources.ads_config';
  const apiType = API_TYPES[Number(msg['api_type'] ?? 0)] ?? String(msg['api_type']);
  if (apiType !== 'GRPC' && apiType !== 'DELTA_GRPC') {
    throw new ConfigError(`api_type ${apiType} is not supported (GRPC or DELTA_GRPC)`, `${path}.api_type`);
  }
  const services = (msg['grpc_services'] as ProtoObject[] | undefined) ?? [];
  const svc = services[0];
  if (!svc) throw new ConfigError('ads_config needs one grpc_services entry', `${path}.grpc_services`);
  let target: string;
  let clusterName = '';
  if (present(svc, 'envoy_grpc')) {
    clusterName = String((svc['envoy_grpc'] as ProtoObject)['cluster_name'] ?? '');
    const cluster = clusters.find((c) => c['name'] === clusterName);
    const p = `${path}.grpc_services[0].envoy_grpc.cluster_name`;
    if (!cluster) throw new ConfigError(`no static cluster named '${clusterName}'`, p);
    const first = firstEndpointTarget(cluster);
    if (!first) throw new ConfigError(`static cluster '${clusterName}' has no endpoint address`, p);
    target = first;
  } else if (present(svc, 'google_grpc')) {
    target = String((svc['google_grpc'] as ProtoObject)['target_uri'] ?? '');
    if (!target) throw new ConfigError('google_grpc.target_uri is empty', `${path}.grpc_services[0].google_grpc.target_uri`);
  } else {
    throw new ConfigError('grpc_services[0] needs envoy_grpc or google_grpc', `${path}.grpc_services[0]`);
  }
  return {
    apiType,
    target,
    clusterName,
    setNodeOnFirstMessageOnly: msg['set_node_on_first_message_only'] === true,
  };
}


/**
 * The AdsClient options a bootstrap implies (target, node, api type, node-once, the CDS and LDS
 * initial_fetch_timeouts, LDS when lds_config is set) with the managers that consume the stream. Throws a
 * ConfigError if the bootstrap has no ADS config; the client refuses lds_config without `sinks.listeners`.
 */
export function adsClientOptions(
  bootstrap: Bootstrap,
  sink: ClusterSink,
  sinks?: { readonly listeners?: ResourceSink; readonly routes?: ResourceSink; readonly extensionConfigs?: ResourceSink },
): AdsClientOptions {
  if (!bootstrap.ads) throw new ConfigError('no dynamic_resources.ads_config', 'dynamic_resources.ads_config');
  return {
    target: bootstrap.ads.target,
    node: bootstrap.node.message,
    sink,
    apiType: bootstrap.ads.apiType,
    setNodeOnFirstMessageOnly: bootstrap.ads.setNodeOnFirstMessageOnly,
    initialFetchTimeoutMs: bootstrap.cds?.initialFetchTimeoutMs ?? DEFAULT_INITIAL_FETCH_TIMEOUT_MS,
    ...(bootstrap.lds ? { lds: { initialFetchTimeoutMs: bootstrap.lds.initialFetchTimeoutMs } } : {}),
    ...(sinks ? { sinks } : {}),
  };
}
