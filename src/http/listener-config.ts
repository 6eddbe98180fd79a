import { readFileSync } from 'node:fs';
import { isAbsolute, resolve as resolvePath } from 'node:path';
import { parseYaml } from '../config/yaml';
import { mapRecording } from '../config/error-collector';
import { str } from '../config/json-fields';
import { ConfigError } from '../common/errors';
import type { FailurePolicy } from '../abi/enums';
import type * as BootstrapModule from '../config/bootstrap';
import type { Bootstrap } from '../config/bootstrap';
import { protoLib } from '../xds/proto-lib';
import { EMPTY_METADATA, type EncodedMetadata, type StructObject } from '../runtime/stream-attributes';
import { http2Settings, type Http2Settings } from './protocol-options';
import { parseRemoteWasmCode, type RemoteWasmCode } from '../wasm/remote-code';
import { isNetworkFilterChain, parseNetworkFilterChain, type NetworkFilterChainConfig } from '../tcp/network-config';
import { DOWNSTREAM_TLS_TYPE, downstreamTlsContext, transportSocket, type DownstreamTls, type StaticSecrets } from '../tls/tls-context';

/**
 * static_resources.listeners, reduced to the HTTP data plane the sidecar runs: one HttpConnectionManager per
 * listener with an inline route_config and an http_filters list of envoy.filters.http.wasm filters ending with
 * envoy.filters.http.router. Input is proto3 JSON as Envoy accepts it (snake_case field names, `@type` Any
 * wrappers, durations as strings); every error names the JSON path of the offending field.
 */

// The bootstrap reader (and the Envoy protos under it, src/xds/proto-lib.ts) is required where a document is read,
// not when this module loads: a --concurrency worker imports this module for its types and chainWasmFilters and
// parses nothing (the main thread posts it parsed configuration).
let bootstrapModule: typeof BootstrapModule | undefined;
const bootstrapReader = (): typeof BootstrapModule => (bootstrapModule ??= require('../config/bootstrap') as typeof BootstrapModule);

export const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
export const WASM_FILTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm';
export const ROUTER_FILTER_TYPE = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';
const STRING_VALUE_TYPE = 'type.googleapis.com/google.protobuf.StringValue';
const BYTES_VALUE_TYPE = 'type.googleapis.com/google.protobuf.BytesValue';
const STRUCT_TYPE = 'type.googleapis.com/google.protobuf.Struct';
const TYPED_STRUCT_TYPES = ['type.googleapis.com/xds.type.v3.TypedStruct', 'type.googleapis.com/udpa.type.v1.TypedStruct'];

/** Envoy's route timeout default (RouteAction.timeout). */
export const DEFAULT_ROUTE_TIMEOUT_MS = 15_000;

/** Envoy's default Listener.per_connection_buffer_limit_bytes (1 MiB): also each stream's buffer limit. */
export const DEFAULT_BUFFER_LIMIT_BYTES = 1024 * 1024;

export type StringMatcher =
  | { readonly kind: 'exact' | 'prefix' | 'suffix' | 'contains'; readonly value: string; readonly ignoreCase: boolean }
  | { readonly kind: 'regex'; readonly regex: RegExp };

export type HeaderMatch =
  | { readonly kind: 'present'; readonly present: boolean }
  | { readonly kind: 'string'; readonly matcher: StringMatcher };

export interface HeaderMatcher {
  readonly name: string;
  readonly match: HeaderMatch;
  readonly invert: boolean;
}

export type PathMatch =
  | { readonly kind: 'prefix'; readonly value: string }
  | { readonly kind: 'path'; readonly value: string }
  | { readonly kind: 'regex'; readonly regex: RegExp };

export type RouteActionConfig =
  | {
      readonly kind: 'cluster';
      readonly cluster: string;
      readonly prefixRewrite: string | undefined;
      readonly hostRewriteLiteral: string | undefined;
      /** 0 disables the timeout, as in Envoy. */
      readonly timeoutMs: number;
    }
  | { readonly kind: 'direct_response'; readonly status: number; readonly body: string };

export interface RouteConfigEntry {
  readonly name: string;
  readonly path: PathMatch;
  readonly caseSensitive: boolean;
  readonly headers: readonly HeaderMatcher[];
  readonly action: RouteActionConfig;
  /** Route.metadata (xds.route_metadata). */
  readonly metadata: EncodedMetadata;
}

export interface VirtualHostConfig {
  readonly name: string;
  readonly domains: readonly string[];
  readonly routes: readonly RouteConfigEntry[];
  readonly metadata: EncodedMetadata;
}

export interface RouteTableConfig {
  readonly name: string;
  readonly virtualHosts: readonly VirtualHostConfig[];
  /** RouteConfiguration.ignore_port_in_host_matching: virtual hosts are matched without the :authority port. */
  readonly ignorePortInHostMatching: boolean;
}

/** Code the sidecar holds itself (`code.local`): what `validate` compiles offline. */
export type LocalWasmCode = { readonly kind: 'file'; readonly filename: string } | { readonly kind: 'inline'; readonly bytes: Buffer };
/** `code.local`, or `code.remote` (fetched through a cluster and checked against its sha256 when the plugin loads). */
export type WasmCode = LocalWasmCode | { readonly kind: 'remote'; readonly remote: RemoteWasmCode };

export interface WasmFilterConfig {
  readonly type: 'wasm';
  /** http_filters[].name. */
  readonly filterName: string;
  /** JSON path of the filter, for errors and logs. */
  readonly path: string;
  readonly code: WasmCode;
  readonly name: string;
  readonly rootId: string;
  readonly vmId: string;
  readonly configuration: Buffer;
  readonly vmConfiguration: Buffer;
  readonly environment: Readonly<Record<string, string>>;
  readonly failurePolicy: FailurePolicy;
  readonly allowOnHeadersStopIteration: boolean;
  readonly reloadBackoffMs: number | undefined;
}

export type LocalWasmFilterConfig = WasmFilterConfig & { readonly code: LocalWasmCode };

export interface RouterFilterConfig {
  readonly type: 'router';
  readonly filterName: string;
}

export type HttpFilterConfig = WasmFilterConfig | RouterFilterConfig;

/**
 * An http filter whose configuration comes over ECDS (`config_discovery`): the resource named `configName` (the
 * filter's name, as Envoy subscribes it), until then `defaultConfig` if there is one.
 */
export interface EcdsFilterConfig {
  readonly type: 'ecds';
  readonly filterName: string;
  readonly path: string;
  /** The TypedExtensionConfig resource name (http_filters[].name). */
  readonly configName: string;
  readonly defaultConfig: WasmFilterConfig | undefined;
  /** Serve with default_config at once instead of waiting for the first ECDS resource. */
  readonly applyDefaultConfigWithoutWarming: boolean;
  /** config_source.initial_fetch_timeout (default 15 s; 0 waits for ever). */
  readonly initialFetchTimeoutMs: number;
  /** type_urls: the typed_config types an ECDS resource for this filter may carry. */
  readonly typeUrls: readonly string[];
}

/** An http filter before the router: inline Wasm, or Wasm configured over ECDS. */
export type HttpFilterSpec = WasmFilterConfig | EcdsFilterConfig;

/** Where an HCM's routes come from: inline route_config, or RDS over ADS. */
export type RouteSpec =
  | { readonly kind: 'static'; readonly config: RouteTableConfig }
  | { readonly kind: 'rds'; readonly name: string; readonly initialFetchTimeoutMs: number };

/** Envoy's HttpConnectionManager.drain_timeout default. */
export const DEFAULT_DRAIN_TIMEOUT_MS = 5000;
/** Envoy's ConfigSource.initial_fetch_timeout default. */
export const DEFAULT_CONFIG_SOURCE_TIMEOUT_MS = 15_000;

export interface HcmConfig {
  readonly statPrefix: string;
  readonly routes: RouteSpec;
  /** Wasm filters in listener order (Envoy runs http_filters as listed; the router is implied last). */
  readonly httpFilters: readonly HttpFilterSpec[];
  /** HttpConnectionManager.generate_request_id (default true). */
  readonly generateRequestId: boolean;
  /** HttpConnectionManager strip_any_host_port / strip_matching_host_port: the :authority port removed on arrival. */
  readonly stripHostPort: 'none' | 'any' | 'matching';
  /** HCM codec_type: AUTO serves HTTP/1.1 and HTTP/2 (ALPN, or the h2 connection preface in cleartext). */
  readonly codec: HttpCodec;
  /** HCM http2_protocol_options, as HTTP/2 SETTINGS. */
  readonly http2: Http2Settings;
  /** HCM drain_timeout: how long a draining chain's connections get before they are closed. */
  readonly drainTimeoutMs: number;
}

/** FilterChainMatch, the criteria this data plane can evaluate (an empty list or undefined matches anything). */
export interface FilterChainMatchConfig {
  readonly destinationPort: number | undefined;
  /** Lower-cased; `*.example.com` wildcards allowed (Envoy). Needs the tls_inspector listener filter. */
  readonly serverNames: readonly string[];
  /** '' (any), 'tls' or 'raw_buffer'. */
  readonly transportProtocol: string;
  readonly applicationProtocols: readonly string[];
}

/**
 * One filter chain. `network` is what runs on its connections: an HttpConnectionManager today; the TCP filters
 * (envoy.filters.network.wasm + tcp_proxy, src/tcp/) add their own kind beside it.
 */
export interface FilterChainConfig {
  /** FilterChain.name (xds.filter_chain_name). */
  readonly name: string;
  /** JSON path of the chain, for logs. */
  readonly path: string;
  readonly match: FilterChainMatchConfig;
  /** transport_socket (DownstreamTlsContext); undefined: plaintext. */
  readonly tls: DownstreamTls | undefined;
  readonly network:
    | { readonly kind: 'http'; readonly hcm: HcmConfig }
    /** Wasm network filters then tcp_proxy (src/tcp/): a chain without an HCM. */
    | { readonly kind: 'tcp'; readonly tcp: NetworkFilterChainConfig };
}

export interface ListenerConfig {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  /** The filter chains in listener order (the first match in Envoy's match order wins). */
  readonly filterChains: readonly FilterChainConfig[];
  /** default_filter_chain: connections no chain matches (undefined: they are closed, as in Envoy). */
  readonly defaultFilterChain: FilterChainConfig | undefined;
  /** listener_filters has envoy.filters.listener.tls_inspector: SNI, ALPN and the transport are read first. */
  readonly tlsInspector: boolean;
  /**
   * Every inline Wasm filter of every chain (ECDS defaults included) whose code is local, in order: what
   * `validate` compiles offline. Filters with `code.remote` are in `remoteWasmFilters` (fetched when they load).
   */
  readonly wasmFilters: readonly LocalWasmFilterConfig[];
  readonly remoteWasmFilters: readonly WasmFilterConfig[];
  /** Listener.per_connection_buffer_limit_bytes: each stream's buffer limit (Envoy: 413/500 past it while buffering). */
  readonly bufferLimitBytes: number;
  /** Listener.metadata (xds.listener_metadata). */
  readonly metadata: EncodedMetadata;
  /** Listener.traffic_direction (0 UNSPECIFIED, 1 INBOUND, 2 OUTBOUND). */
  readonly trafficDirection: number;
}

export type HttpCodec = 'AUTO' | 'HTTP1' | 'HTTP2';


/** PluginConfig fields newer than the protos the bootstrap loader ships with, taken from the raw document. */
export type PluginConfigExtras = ReadonlyMap<string, Readonly<Record<string, unknown>>>;

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function obj(v: unknown, path: string, required = false): Json | undefined {
  if (v === undefined || v === null) {
    if (required) throw new ConfigError('is required', path);
    return undefined;
  }
  if (!isObject(v)) throw new ConfigError('must be an object', path);
  return v;
}

function arr(v: unknown, path: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new ConfigError('must be a list', path);
  return v;
}

function bool(v: unknown, path: string, fallback: boolean): boolean {
  if (v === undefined || v === null) return fallback;
  if (isObject(v) && 'value' in v) return bool(v['value'], path, fallback); // BoolValue written as an object
  if (typeof v !== 'boolean') throw new ConfigError('must be a boolean', path);
  return v;
}

/** A UInt32Value (proto3 JSON: a number, or {value}). */
function uint32(v: unknown, path: string, fallback: number): number {
  if (v === undefined || v === null) return fallback;
  const n = isObject(v) && 'value' in v ? Number(v['value']) : Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new ConfigError('must be a 32-bit unsigned integer', path);
  return n;
}

const TRAFFIC_DIRECTIONS: Readonly<Record<string, number>> = { UNSPECIFIED: 0, INBOUND: 1, OUTBOUND: 2, 0: 0, 1: 1, 2: 2 };

function trafficDirection(v: unknown, path: string): number {
  if (v === undefined || v === null) return 0;
  const d = TRAFFIC_DIRECTIONS[String(v)];
  if (d === undefined) throw new ConfigError(`unknown traffic_direction '${String(v)}'`, path);
  return d;
}

/** proto3 JSON Duration: "1.5s"; also {seconds, nanos} as YAML users sometimes write it. */
export function durationMs(v: unknown, path: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') {
    const m = /^(-?\d+(?:\.\d+)?)s$/.exec(v.trim());
    if (!m) throw new ConfigError(`invalid duration '${v}' (expected e.g. "1.5s")`, path);
    return Math.round(Number(m[1]) * 1000);
  }
  if (isObject(v)) return Number(v['seconds'] ?? 0) * 1000 + Math.round(Number(v['nanos'] ?? 0) / 1e6);
  throw new ConfigError('must be a duration string such as "15s"', path);
}

/** A Metadata in proto3 JSON → the protobuf bytes Envoy serves for it, and each filter_metadata namespace's Struct. */
export function encodeMetadata(v: unknown, path: string): EncodedMetadata {
  if (v === undefined || v === null) return EMPTY_METADATA;
  obj(v, path);
  const lib = protoLib();
  const protos = lib.protos.loadEnvoyProtos();
  const type = protos.lookup('envoy.config.core.v3.Metadata');
  if (!type) throw new ConfigError('envoy.config.core.v3.Metadata is missing from the loaded protos', path);
  const msg = lib.json.decodeProtoJson(protos, type, v, path);
  // The decode above validated the document; a Struct's proto3 JSON form is the value itself.
  const filterMetadata = new Map<string, StructObject>();
  const fm = (v as Record<string, unknown>)['filter_metadata'];
  if (isObject(fm)) for (const [ns, value] of Object.entries(fm)) filterMetadata.set(ns, (isObject(value) ? value : {}) as StructObject);
  return { message: Buffer.from(type.encode(msg).finish()), filterMetadata };
}

function compileRegex(v: unknown, path: string, anchored: boolean): RegExp {
  const src = str(obj(v, path, true)!['regex'], `${path}.regex`);
  try {
    // RE2 full-match semantics: the whole input must match.
    return new RegExp(anchored ? `^(?:${src})$` : src);
  } catch (err) {
    throw new ConfigError(`invalid regex: ${(err as Error).message}`, `${path}.regex`, { cause: err });
  }
}

function stringMatcher(v: unknown, path: string): StringMatcher {
  const m = obj(v, path, true)!;
  const ignoreCase = bool(m['ignore_case'], `${path}.ignore_case`, false);
  for (const kind of ['exact', 'prefix', 'suffix', 'contains'] as const) {
    if (m[kind] !== undefined) return { kind, value: str(m[kind], `${path}.${kind}`), ignoreCase };
  }
  if (m['safe_regex'] !== undefined) return { kind: 'regex', regex: compileRegex(m['safe_regex'], `${path}.safe_regex`, true) };
  throw new ConfigError('needs one of exact, prefix, suffix, contains or safe_regex', path);
}

function headerMatcher(v: unknown, path: string): HeaderMatcher {
  const h = obj(v, path, true)!;
  const name = str(h['name'], `${path}.name`).toLowerCase();
  const invert = bool(h['invert_match'], `${path}.invert_match`, false);
  if (h['string_match'] !== undefined) return { name, invert, match: { kind: 'string', matcher: stringMatcher(h['string_match'], `${path}.string_match`) } };
  if (h['exact_match'] !== undefined) return { name, invert, match: { kind: 'string', matcher: { kind: 'exact', value: str(h['exact_match'], `${path}.exact_match`), ignoreCase: false } } };
  if (h['prefix_match'] !== undefined) return { name, invert, match: { kind: 'string', matcher: { kind: 'prefix', value: str(h['prefix_match'], `${path}.prefix_match`), ignoreCase: false } } };
  if (h['safe_regex_match'] !== undefined) return { name, invert, match: { kind: 'string', matcher: { kind: 'regex', regex: compileRegex(h['safe_regex_match'], `${path}.safe_regex_match`, true) } } };
  if (h['present_match'] !== undefined) return { name, invert, match: { kind: 'present', present: bool(h['present_match'], `${path}.present_match`, true) } };
  // No match specifier: the header must be present (Envoy).
  return { name, invert, match: { kind: 'present', present: true } };
}

function route(v: unknown, path: string): RouteConfigEntry {
  const r = obj(v, path, true)!;
  const m = obj(r['match'], `${path}.match`, true)!;
  let pathMatch: PathMatch;
  if (m['prefix'] !== undefined) pathMatch = { kind: 'prefix', value: str(m['prefix'], `${path}.match.prefix`) };
  else if (m['path'] !== undefined) pathMatch = { kind: 'path', value: str(m['path'], `${path}.match.path`) };
  else if (m['safe_regex'] !== undefined) pathMatch = { kind: 'regex', regex: compileRegex(m['safe_regex'], `${path}.match.safe_regex`, true) };
  else throw new ConfigError('needs prefix, path or safe_regex (other path specifiers are not supported)', `${path}.match`);
  const headers = arr(m['headers'], `${path}.match.headers`).map((h, i) => headerMatcher(h, `${path}.match.headers[${i}]`));
  const caseSensitive = bool(m['case_sensitive'], `${path}.match.case_sensitive`, true);
  let action: RouteActionConfig;
  if (r['route'] !== undefined) {
    const a = obj(r['route'], `${path}.route`, true)!;
    if (a['cluster'] === undefined) throw new ConfigError('only `cluster` is supported as the route target', `${path}.route`);
    action = {
      kind: 'cluster',
      cluster: str(a['cluster'], `${path}.route.cluster`),
      prefixRewrite: a['prefix_rewrite'] === undefined ? undefined : str(a['prefix_rewrite'], `${path}.route.prefix_rewrite`),
      hostRewriteLiteral: a['host_rewrite_literal'] === undefined ? undefined : str(a['host_rewrite_literal'], `${path}.route.host_rewrite_literal`),
      timeoutMs: durationMs(a['timeout'], `${path}.route.timeout`) ?? DEFAULT_ROUTE_TIMEOUT_MS,
    };
  } else if (r['direct_response'] !== undefined) {
    const d = obj(r['direct_response'], `${path}.direct_response`, true)!;
    const status = Number(d['status']);
    if (!Number.isInteger(status) || status < 200 || status > 599) throw new ConfigError('must be 200..599', `${path}.direct_response.status`);
    const body = obj(d['body'], `${path}.direct_response.body`);
    action = { kind: 'direct_response', status, body: body ? str(body['inline_string'], `${path}.direct_response.body.inline_string`, '') : '' };
  } else {
    throw new ConfigError('needs `route` or `direct_response`', path);
  }
  return { name: str(r['name'], `${path}.name`, ''), path: pathMatch, caseSensitive, headers, action, metadata: encodeMetadata(r['metadata'], `${path}.metadata`) };
}

function routeTable(v: unknown, path: string): RouteTableConfig {
  const rc = obj(v, path, true)!;
  const virtualHosts = mapRecording(arr(rc['virtual_hosts'], `${path}.virtual_hosts`), (vh, i): VirtualHostConfig => {
    const p = `${path}.virtual_hosts[${i}]`;
    const o = obj(vh, p, true)!;
    const domains = arr(o['domains'], `${p}.domains`).map((d, j) => str(d, `${p}.domains[${j}]`).toLowerCase());
    if (domains.length === 0) throw new ConfigError('needs at least one domain', `${p}.domains`);
    const routes = mapRecording(arr(o['routes'], `${p}.routes`), (r, j) => route(r, `${p}.routes[${j}]`));
    return { name: str(o['name'], `${p}.name`), domains, routes, metadata: encodeMetadata(o['metadata'], `${p}.metadata`) };
  });
  return {
    name: str(rc['name'], `${path}.name`, ''),
    virtualHosts,
    ignorePortInHostMatching: bool(rc['ignore_port_in_host_matching'], `${path}.ignore_port_in_host_matching`, false),
  };
}

/** A PluginConfig/VmConfig `configuration` Any → the bytes the plugin reads (proxy-wasm-abi.md §11). */
export function anyToBytes(v: unknown, path: string): Buffer {
  const any = obj(v, path);
  if (!any) return Buffer.alloc(0);
  const type = str(any['@type'], `${path}.@type`);
  if (type === STRING_VALUE_TYPE) return Buffer.from(str(any['value'], `${path}.value`, ''), 'utf8');
  if (type === BYTES_VALUE_TYPE) return Buffer.from(str(any['value'], `${path}.value`, ''), 'base64');
  if (type === STRUCT_TYPE) return Buffer.from(JSON.stringify(any['value'] ?? {}), 'utf8');
  if (TYPED_STRUCT_TYPES.includes(type)) return Buffer.from(JSON.stringify(any['value'] ?? {}), 'utf8');
  throw new ConfigError(`configuration of type ${type} is not supported (use StringValue, BytesValue or Struct)`, `${path}.@type`);
}

const FAILURE_POLICIES: Readonly<Record<string, FailurePolicy>> = {
  UNSPECIFIED: 'FAIL_CLOSED', FAIL_RELOAD: 'FAIL_RELOAD', FAIL_CLOSED: 'FAIL_CLOSED', FAIL_OPEN: 'FAIL_OPEN',
  0: 'FAIL_CLOSED', 1: 'FAIL_RELOAD', 2: 'FAIL_CLOSED', 3: 'FAIL_OPEN',
};

/** `cfg` is the Wasm Any (at `anyPath`); `path` is the http filter's, kept for errors and logs. */
function wasmFilter(name: string, cfg: Json, path: string, anyPath: string, extras: Json | undefined, baseDir: string): WasmFilterConfig {
  const cpath = `${anyPath}.config`;
  const pc = obj(cfg['config'], cpath, true)!;
  const vm = obj(pc['vm_config'], `${cpath}.vm_config`, true)!;
  const vpath = `${cpath}.vm_config`;
  const code = obj(vm['code'], `${vpath}.code`, true)!;
  let wasm: WasmCode;
  const local = obj(code['local'], `${vpath}.code.local`);
  if (code['remote'] !== undefined && code['remote'] !== null) {
    if (local) throw new ConfigError('local and remote are mutually exclusive', `${vpath}.code.remote`);
    wasm = { kind: 'remote', remote: parseRemoteWasmCode(code['remote'], `${vpath}.code.remote`) };
  } else if (!local) {
    throw new ConfigError('needs local or remote', `${vpath}.code`);
  } else if (local['filename'] !== undefined) {
    const f = str(local['filename'], `${vpath}.code.local.filename`);
    wasm = { kind: 'file', filename: isAbsolute(f) ? f : resolvePath(baseDir, f) };
  } else if (local['inline_bytes'] !== undefined) {
    wasm = { kind: 'inline', bytes: Buffer.from(str(local['inline_bytes'], `${vpath}.code.local.inline_bytes`), 'base64') };
  } else {
    throw new ConfigError('needs filename or inline_bytes', `${vpath}.code.local`);
  }
  const environment: Record<string, string> = {};
  const env = obj(vm['environment_variables'], `${vpath}.environment_variables`);
  if (env) {
    for (const [i, k] of arr(env['host_env_keys'], `${vpath}.environment_variables.host_env_keys`).entries()) {
      const key = str(k, `${vpath}.environment_variables.host_env_keys[${i}]`);
      const value = process.env[key];
      if (value !== undefined) environment[key] = value;
    }
    const kv = obj(env['key_values'], `${vpath}.environment_variables.key_values`) ?? {};
    for (const [k, value] of Object.entries(kv)) {
      const p = `${vpath}.environment_variables.key_values.${k}`;
      // Envoy rejects a key given both ways.
      if (k in environment) throw new ConfigError('key also listed in host_env_keys', p);
      environment[k] = str(value, p);
    }
  }
  const failOpen = bool(pc['fail_open'], `${cpath}.fail_open`, false);
  let failurePolicy: FailurePolicy = failOpen ? 'FAIL_OPEN' : 'FAIL_CLOSED';
  const fp = extras?.['failure_policy'] ?? pc['failure_policy'];
  if (fp !== undefined && fp !== null) {
    const p = FAILURE_POLICIES[String(fp)];
    if (!p) throw new ConfigError(`unknown failure_policy '${String(fp)}' (FAIL_RELOAD, FAIL_CLOSED or FAIL_OPEN)`, `${cpath}.failure_policy`);
    // Envoy: failure_policy wins over the deprecated fail_open unless it is UNSPECIFIED.
    if (String(fp) !== 'UNSPECIFIED' && String(fp) !== '0') failurePolicy = p;
  }
  const reload = obj(extras?.['reload_config'] ?? pc['reload_config'], `${cpath}.reload_config`);
  const backoff = reload ? obj(reload['backoff'], `${cpath}.reload_config.backoff`) : undefined;
  const reloadBackoffMs = backoff ? durationMs(backoff['base_interval'], `${cpath}.reload_config.backoff.base_interval`) : undefined;
  return {
    type: 'wasm',
    filterName: name,
    path,
    code: wasm,
    name: str(pc['name'], `${cpath}.name`, ''),
    rootId: str(pc['root_id'], `${cpath}.root_id`, ''),
    vmId: str(vm['vm_id'], `${vpath}.vm_id`, ''),
    configuration: anyToBytes(pc['configuration'], `${cpath}.configuration`),
    vmConfiguration: anyToBytes(vm['configuration'], `${vpath}.configuration`),
    environment,
    failurePolicy,
    allowOnHeadersStopIteration: bool(extras?.['allow_on_headers_stop_iteration'] ?? pc['allow_on_headers_stop_iteration'], `${cpath}.allow_on_headers_stop_iteration`, false),
    reloadBackoffMs,
  };
}

/**
 * The fields of each message this data plane implements. Anything else that is set is refused with its path:
 * a listener that silently dropped a listener filter, a filter_chain_match criterion or a transport socket would
 * serve other traffic than the one configured (plaintext where TLS was asked for is the worst case).
 */
const IMPLEMENTED_FIELDS = {
  listener: new Set(['name', 'address', 'filter_chains', 'default_filter_chain', 'listener_filters', 'per_connection_buffer_limit_bytes', 'metadata', 'traffic_direction']),
  listenerFilter: new Set(['name', 'typed_config']),
  filterChain: new Set(['name', 'filters', 'transport_socket', 'filter_chain_match']),
  filterChainMatch: new Set(['destination_port', 'server_names', 'transport_protocol', 'application_protocols']),
  networkFilter: new Set(['name', 'typed_config']),
  hcm: new Set(['@type', 'stat_prefix', 'route_config', 'rds', 'http_filters', 'generate_request_id', 'strip_any_host_port', 'strip_matching_host_port', 'codec_type', 'http2_protocol_options', 'drain_timeout']),
  rds: new Set(['config_source', 'route_config_name']),
  configSource: new Set(['ads', 'initial_fetch_timeout', 'resource_api_version']),
  httpFilter: new Set(['name', 'typed_config', 'config_discovery']),
  configDiscovery: new Set(['config_source', 'default_config', 'apply_default_config_without_warming', 'type_urls']),
} as const;

export const TLS_INSPECTOR_TYPE = 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector';

function refuseUnimplemented(o: Json, implemented: ReadonlySet<string>, path: string): void {
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined || v === null || implemented.has(k)) continue;
    throw new ConfigError('is not supported by this data plane', `${path}.${k}`);
  }
}

/** HttpConnectionManager.codec_type: the codecs this data plane speaks. */
function codecType(v: unknown, path: string): HttpCodec {
  if (v === undefined || v === null || v === 'AUTO' || v === 0) return 'AUTO';
  if (v === 'HTTP1' || v === 1) return 'HTTP1';
  if (v === 'HTTP2' || v === 2) return 'HTTP2';
  throw new ConfigError(`codec_type ${String(v)} is not supported (AUTO, HTTP1 or HTTP2)`, path);
}

/** A ConfigSource: only `ads: {}` (the bootstrap's ADS stream); returns its initial_fetch_timeout. */
function adsConfigSource(v: unknown, path: string): number {
  const cs = obj(v, path, true)!;
  refuseUnimplemented(cs, IMPLEMENTED_FIELDS.configSource, path);
  if (cs['ads'] === undefined || cs['ads'] === null) throw new ConfigError('only ADS config sources are supported (config_source: {ads: {}})', path);
  const rv = cs['resource_api_version'];
  if (rv !== undefined && rv !== null && rv !== 'V3' && rv !== 2) throw new ConfigError(`resource_api_version ${String(rv)} is not supported (V3)`, `${path}.resource_api_version`);
  return durationMs(cs['initial_fetch_timeout'], `${path}.initial_fetch_timeout`) ?? DEFAULT_CONFIG_SOURCE_TIMEOUT_MS;
}

function routeSpec(hcm: Json, path: string): RouteSpec {
  if (hcm['rds'] !== undefined && hcm['rds'] !== null) {
    if (hcm['route_config'] !== undefined && hcm['route_config'] !== null) throw new ConfigError('route_config and rds are mutually exclusive', `${path}.rds`);
    const rds = obj(hcm['rds'], `${path}.rds`, true)!;
    refuseUnimplemented(rds, IMPLEMENTED_FIELDS.rds, `${path}.rds`);
    const name = str(rds['route_config_name'], `${path}.rds.route_config_name`);
    if (name === '') throw new ConfigError('must not be empty', `${path}.rds.route_config_name`);
    return { kind: 'rds', name, initialFetchTimeoutMs: adsConfigSource(rds['config_source'], `${path}.rds.config_source`) };
  }
  return { kind: 'static', config: routeTable(hcm['route_config'], `${path}.route_config`) };
}

/** http_filters[i] with config_discovery: Wasm over ECDS (type_urls must allow Wasm; default_config must be Wasm). */
function ecdsFilter(fname: string, fo: Json, p: string, extras: PluginConfigExtras, baseDir: string): EcdsFilterConfig {
  const dp = `${p}.config_discovery`;
  const cd = obj(fo['config_discovery'], dp, true)!;
  refuseUnimplemented(cd, IMPLEMENTED_FIELDS.configDiscovery, dp);
  if (fo['typed_config'] !== undefined && fo['typed_config'] !== null) throw new ConfigError('typed_config and config_discovery are mutually exclusive', `${p}.typed_config`);
  const typeUrls = arr(cd['type_urls'], `${dp}.type_urls`).map((t, i) => str(t, `${dp}.type_urls[${i}]`));
  if (!typeUrls.includes(WASM_FILTER_TYPE)) throw new ConfigError(`only ${WASM_FILTER_TYPE} filters are served over ECDS; type_urls must list it`, `${dp}.type_urls`);
  const initialFetchTimeoutMs = adsConfigSource(cd['config_source'], `${dp}.config_source`);
  let defaultConfig: WasmFilterConfig | undefined;
  const def = obj(cd['default_config'], `${dp}.default_config`);
  if (def) {
    const type = str(def['@type'], `${dp}.default_config.@type`);
    if (type !== WASM_FILTER_TYPE) throw new ConfigError(`default_config of type ${type} is not supported (only ${WASM_FILTER_TYPE})`, `${dp}.default_config.@type`);
    defaultConfig = wasmFilter(fname, def, p, `${dp}.default_config`, extras.get(`${dp}.default_config.config`), baseDir);
  }
  const applyDefaultConfigWithoutWarming = bool(cd['apply_default_config_without_warming'], `${dp}.apply_default_config_without_warming`, false);
  if (applyDefaultConfigWithoutWarming && !defaultConfig) throw new ConfigError('apply_default_config_without_warming needs a default_config', `${dp}.apply_default_config_without_warming`);
  return { type: 'ecds', filterName: fname, path: p, configName: fname, defaultConfig, applyDefaultConfigWithoutWarming, initialFetchTimeoutMs, typeUrls };
}

function httpConnectionManager(hcmAny: Json, hPath: string, extras: PluginConfigExtras, baseDir: string): HcmConfig {
  refuseUnimplemented(hcmAny, IMPLEMENTED_FIELDS.hcm, hPath);
  const codec = codecType(hcmAny['codec_type'], `${hPath}.codec_type`);
  const http2 = http2Settings(hcmAny['http2_protocol_options'], `${hPath}.http2_protocol_options`);
  const routes = routeSpec(hcmAny, hPath);
  const httpFilters: HttpFilterSpec[] = [];
  let router = false;
  arr(hcmAny['http_filters'], `${hPath}.http_filters`).forEach((f, i) => {
    const p = `${hPath}.http_filters[${i}]`;
    const fo = obj(f, p, true)!;
    refuseUnimplemented(fo, IMPLEMENTED_FIELDS.httpFilter, p);
    const fname = str(fo['name'], `${p}.name`);
    if (router) throw new ConfigError(`filter '${fname}' follows the terminal router filter`, p);
    if (fo['config_discovery'] !== undefined && fo['config_discovery'] !== null) {
      httpFilters.push(...mapRecording([fo], (x) => ecdsFilter(fname, x, p, extras, baseDir)));
      return;
    }
    const tc = obj(fo['typed_config'], `${p}.typed_config`, true)!;
    const type = str(tc['@type'], `${p}.typed_config.@type`);
    if (type === WASM_FILTER_TYPE) httpFilters.push(...mapRecording([tc], (c) => wasmFilter(fname, c, p, `${p}.typed_config`, extras.get(`${p}.typed_config.config`), baseDir)));
    else if (type === ROUTER_FILTER_TYPE) router = true;
    else throw new ConfigError(`http filter ${type} is not supported (envoy.filters.http.wasm and envoy.filters.http.router only)`, `${p}.typed_config.@type`);
  });
  if (!router) throw new ConfigError('the last http filter must be envoy.filters.http.router', `${hPath}.http_filters`);
  return {
    statPrefix: str(hcmAny['stat_prefix'], `${hPath}.stat_prefix`, ''),
    routes,
    httpFilters,
    generateRequestId: bool(hcmAny['generate_request_id'], `${hPath}.generate_request_id`, true),
    stripHostPort: stripHostPort(hcmAny, hPath),
    codec,
    http2,
    drainTimeoutMs: durationMs(hcmAny['drain_timeout'], `${hPath}.drain_timeout`) ?? DEFAULT_DRAIN_TIMEOUT_MS,
  };
}

const TRANSPORT_PROTOCOLS = new Set(['', 'tls', 'raw_buffer']);

function filterChainMatch(v: unknown, path: string, tlsInspector: boolean): FilterChainMatchConfig {
  const m = obj(v, path) ?? {};
  refuseUnimplemented(m, IMPLEMENTED_FIELDS.filterChainMatch, path);
  const dp = m['destination_port'];
  const destinationPort = dp === undefined || dp === null ? undefined : uint32(dp, `${path}.destination_port`, 0);
  if (destinationPort !== undefined && (destinationPort < 1 || destinationPort > 65535)) throw new ConfigError('must be 1..65535', `${path}.destination_port`);
  const serverNames = arr(m['server_names'], `${path}.server_names`).map((s, i) => str(s, `${path}.server_names[${i}]`).toLowerCase());
  const transportProtocol = str(m['transport_protocol'], `${path}.transport_protocol`, '');
  if (!TRANSPORT_PROTOCOLS.has(transportProtocol)) throw new ConfigError(`transport_protocol '${transportProtocol}' is not supported (tls or raw_buffer)`, `${path}.transport_protocol`);
  const applicationProtocols = arr(m['application_protocols'], `${path}.application_protocols`).map((s, i) => str(s, `${path}.application_protocols[${i}]`));
  // Without tls_inspector Envoy never learns SNI, ALPN or that a connection is TLS: such a chain could never match.
  const needsInspector = serverNames.length > 0 ? 'server_names' : applicationProtocols.length > 0 ? 'application_protocols' : transportProtocol === 'tls' ? 'transport_protocol' : undefined;
  if (needsInspector && !tlsInspector) throw new ConfigError('needs the envoy.filters.listener.tls_inspector listener filter', `${path}.${needsInspector}`);
  return { destinationPort, serverNames, transportProtocol, applicationProtocols };
}

function filterChain(v: unknown, fcPath: string, ctx: ListenerContext, tlsInspector: boolean): FilterChainConfig {
  const chain = obj(v, fcPath, true)!;
  refuseUnimplemented(chain, IMPLEMENTED_FIELDS.filterChain, fcPath);
  const match = filterChainMatch(chain['filter_chain_match'], `${fcPath}.filter_chain_match`, tlsInspector);
  const filters = arr(chain['filters'], `${fcPath}.filters`);
  if (isNetworkFilterChain(filters)) {
    if (chain['transport_socket'] !== undefined && chain['transport_socket'] !== null) throw new ConfigError('TLS termination on a tcp_proxy chain is not supported', `${fcPath}.transport_socket`);
    const tcp = parseNetworkFilterChain(filters, `${fcPath}.filters`, {
      wasmFilter: (n, tc, p) => wasmFilter(n, tc, p, `${p}.typed_config`, ctx.extras.get(`${p}.typed_config.config`), ctx.baseDir),
    });
    return { name: str(chain['name'], `${fcPath}.name`, ''), path: fcPath, match, tls: undefined, network: { kind: 'tcp', tcp } };
  }
  if (filters.length !== 1) throw new ConfigError('exactly one network filter (http_connection_manager, or Wasm filters then tcp_proxy) is supported', `${fcPath}.filters`);
  const fPath = `${fcPath}.filters[0]`;
  const networkFilter = obj(filters[0], fPath, true)!;
  refuseUnimplemented(networkFilter, IMPLEMENTED_FIELDS.networkFilter, fPath);
  const hcmAny = obj(networkFilter['typed_config'], `${fPath}.typed_config`, true)!;
  const hcmType = str(hcmAny['@type'], `${fPath}.typed_config.@type`);
  if (hcmType !== HCM_TYPE) throw new ConfigError(`network filter ${hcmType} is not supported (only HttpConnectionManager)`, `${fPath}.typed_config.@type`);
  const hcm = httpConnectionManager(hcmAny, `${fPath}.typed_config`, ctx.extras, ctx.baseDir);
  const tlsAny = transportSocket(chain['transport_socket'], `${fcPath}.transport_socket`, DOWNSTREAM_TLS_TYPE);
  const tls = tlsAny ? downstreamTlsContext(tlsAny, `${fcPath}.transport_socket.typed_config`, ctx.secrets) : undefined;
  if (tls) {
    const alpnPath = `${fcPath}.transport_socket.typed_config.common_tls_context.alpn_protocols`;
    for (const [i, p] of tls.alpn.entries()) {
      if (p !== 'h2' && p !== 'http/1.1') throw new ConfigError(`ALPN protocol '${p}' is not served (h2 and http/1.1)`, `${alpnPath}[${i}]`);
      if (hcm.codec === 'HTTP1' && p === 'h2') throw new ConfigError('h2 is offered but codec_type is HTTP1', `${alpnPath}[${i}]`);
      if (hcm.codec === 'HTTP2' && p === 'http/1.1') throw new ConfigError('http/1.1 is offered but codec_type is HTTP2', `${alpnPath}[${i}]`);
    }
  }
  if (match.transportProtocol === 'raw_buffer' && tls) throw new ConfigError('a raw_buffer chain cannot terminate TLS', `${fcPath}.filter_chain_match.transport_protocol`);
  return { name: str(chain['name'], `${fcPath}.name`, ''), path: fcPath, match, tls, network: { kind: 'http', hcm } };
}

/** listener_filters: only tls_inspector, which the filter chain matcher reads SNI, ALPN and the transport with. */
function listenerFilters(v: unknown, path: string): boolean {
  let inspector = false;
  arr(v, path).forEach((f, i) => {
    const p = `${path}[${i}]`;
    const fo = obj(f, p, true)!;
    refuseUnimplemented(fo, IMPLEMENTED_FIELDS.listenerFilter, p);
    const tc = obj(fo['typed_config'], `${p}.typed_config`, true)!;
    const type = str(tc['@type'], `${p}.typed_config.@type`);
    if (type !== TLS_INSPECTOR_TYPE) throw new ConfigError(`listener filter ${type} is not supported (only envoy.filters.listener.tls_inspector)`, `${p}.typed_config.@type`);
    const { ['@type']: _t, ...fields } = tc;
    refuseUnimplemented(fields, new Set(), `${p}.typed_config`);
    inspector = true;
  });
  return inspector;
}

interface ListenerContext {
  readonly extras: PluginConfigExtras;
  readonly baseDir: string;
  readonly secrets: StaticSecrets;
}

function listener(v: unknown, path: string, ctx: ListenerContext): ListenerConfig {
  const l = obj(v, path, true)!;
  refuseUnimplemented(l, IMPLEMENTED_FIELDS.listener, path);
  const name = str(l['name'], `${path}.name`, '');
  const sock = obj(obj(l['address'], `${path}.address`, true)!['socket_address'], `${path}.address.socket_address`, true)!;
  const address = str(sock['address'], `${path}.address.socket_address.address`);
  const port = Number(sock['port_value'] ?? 0);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError('must be 0..65535', `${path}.address.socket_address.port_value`);
  const tlsInspector = listenerFilters(l['listener_filters'], `${path}.listener_filters`);
  const chains = arr(l['filter_chains'], `${path}.filter_chains`);
  const filterChains = mapRecording(chains, (c, i) => filterChain(c, `${path}.filter_chains[${i}]`, ctx, tlsInspector));
  const def = l['default_filter_chain'];
  const defaultFilterChain = def === undefined || def === null ? undefined : filterChain(def, `${path}.default_filter_chain`, ctx, tlsInspector);
  if (chains.length === 0 && !defaultFilterChain) throw new ConfigError('needs at least one filter chain', `${path}.filter_chains`);
  if (defaultFilterChain && obj(obj(def, `${path}.default_filter_chain`)!['filter_chain_match'], `${path}.default_filter_chain.filter_chain_match`)) {
    throw new ConfigError('the default filter chain has no filter_chain_match', `${path}.default_filter_chain.filter_chain_match`);
  }
  refuseDuplicateMatches(filterChains, `${path}.filter_chains`);
  const all = defaultFilterChain ? [...filterChains, defaultFilterChain] : filterChains;
  const wasmFilters: LocalWasmFilterConfig[] = [];
  const remoteWasmFilters: WasmFilterConfig[] = [];
  for (const c of all) for (const f of chainWasmFilters(c)) {
    const w = f.type === 'wasm' ? f : f.defaultConfig;
    if (!w) continue;
    if (isLocal(w)) wasmFilters.push(w);
    else remoteWasmFilters.push(w);
  }
  return {
    name,
    address,
    port,
    filterChains,
    defaultFilterChain,
    tlsInspector,
    wasmFilters,
    remoteWasmFilters,
    bufferLimitBytes: uint32(l['per_connection_buffer_limit_bytes'], `${path}.per_connection_buffer_limit_bytes`, DEFAULT_BUFFER_LIMIT_BYTES),
    metadata: encodeMetadata(l['metadata'], `${path}.metadata`),
    trafficDirection: trafficDirection(l['traffic_direction'], `${path}.traffic_direction`),
  };
}

/** A chain's Wasm filters: the HCM's http filters, or the Wasm network filters of a tcp_proxy chain. */
export function chainWasmFilters(c: FilterChainConfig): readonly HttpFilterSpec[] {
  return c.network.kind === 'http' ? c.network.hcm.httpFilters : c.network.tcp.wasmFilters;
}

function isLocal(f: WasmFilterConfig): f is LocalWasmFilterConfig {
  return f.code.kind !== 'remote';
}

/** Envoy refuses a listener where two filter chains have the same match ("multiple filter chains with the same matching rules"). */
function refuseDuplicateMatches(chains: readonly FilterChainConfig[], path: string): void {
  const seen = new Map<string, number>();
  chains.forEach((c, i) => {
    const m = c.match;
    const key = JSON.stringify([m.destinationPort ?? 0, [...m.serverNames].sort(), m.transportProtocol, [...m.applicationProtocols].sort()]);
    const first = seen.get(key);
    if (first !== undefined) throw new ConfigError(`has the same filter_chain_match as filter_chains[${first}]`, `${path}[${i}].filter_chain_match`);
    seen.set(key, i);
  });
}

function stripHostPort(hcm: Json, path: string): HcmConfig['stripHostPort'] {
  const any = bool(hcm['strip_any_host_port'], `${path}.strip_any_host_port`, false);
  const matching = bool(hcm['strip_matching_host_port'], `${path}.strip_matching_host_port`, false);
  if (any && matching) throw new ConfigError('only one of strip_matching_host_port or strip_any_host_port can be set', `${path}.strip_any_host_port`);
  return any ? 'any' : matching ? 'matching' : 'none';
}

export interface ListenerParseOptions {
  readonly extras?: PluginConfigExtras;
  /** Resolves relative code filenames (default: the working directory, as Envoy resolves them). */
  readonly baseDir?: string;
  readonly secrets?: StaticSecrets;
}

/**
 * One Listener (proto3 JSON, snake_case), e.g. an LDS resource; `path` prefixes every error path. Throws the
 * first ConfigError (inside collectConfigErrors(), records each and goes on).
 */
export function parseListener(json: unknown, path: string, options: ListenerParseOptions = {}): ListenerConfig {
  return listener(json, path, { extras: options.extras ?? new Map(), baseDir: options.baseDir ?? process.cwd(), secrets: options.secrets ?? new Map() });
}

/** A RouteConfiguration (proto3 JSON), e.g. an RDS resource. */
export function parseRouteConfiguration(json: unknown, path: string): RouteTableConfig {
  return routeTable(json, path);
}

/** An http filter's typed_config Any of type Wasm (e.g. an ECDS TypedExtensionConfig's), as a Wasm filter named `name`. */
export function parseWasmFilterAny(name: string, any: unknown, path: string, baseDir = process.cwd()): WasmFilterConfig {
  const tc = obj(any, path, true)!;
  const type = str(tc['@type'], `${path}.@type`);
  if (type !== WASM_FILTER_TYPE) throw new ConfigError(`filter type ${type} is not supported (only ${WASM_FILTER_TYPE})`, `${path}.@type`);
  return wasmFilter(name, tc, path, path, undefined, baseDir);
}

/** Parses listeners (proto3 JSON, snake_case) into ListenerConfigs. `baseDir` resolves relative code filenames. */
export function parseListeners(
  listeners: readonly unknown[],
  options: ListenerParseOptions & { readonly path?: string } = {},
): ListenerConfig[] {
  const base = options.path ?? 'static_resources.listeners';
  // While validating, a bad listener (route, virtual host, filter) is reported and the rest still read.
  const out = mapRecording(listeners, (l, i) => parseListener(l, `${base}[${i}]`, options));
  const seen = new Set<string>();
  out.forEach((l, i) => {
    if (l.name && seen.has(l.name)) throw new ConfigError(`duplicate listener name '${l.name}'`, `${base}[${i}].name`);
    seen.add(l.name);
  });
  return out;
}

/** PluginConfig fields newer than the protos the bootstrap loader ships with (Envoy 1.31+). */
const EXTRA_PLUGIN_FIELDS: ReadonlyArray<readonly [string, string]> = [
  ['failure_policy', 'failurePolicy'],
  ['reload_config', 'reloadConfig'],
  ['allow_on_headers_stop_iteration', 'allowOnHeadersStopIteration'],
];

/**
 * Takes the PluginConfig fields the installed Envoy protos don't know yet out of a raw bootstrap (in place),
 * keyed by the JSON path of their PluginConfig, so that the strict proto decode accepts a file Envoy accepts.
 */
export function takePluginConfigExtras(doc: unknown): Map<string, Json> {
  const extras = new Map<string, Json>();
  if (!isObject(doc) || !isObject(doc['static_resources'])) return extras;
  const listeners = doc['static_resources']['listeners'];
  if (!Array.isArray(listeners)) return extras;
  const take = (pc: unknown, key: string): void => {
    if (!isObject(pc)) return;
    const taken: Json = {};
    for (const [snake, camel] of EXTRA_PLUGIN_FIELDS) {
      for (const k of [snake, camel]) {
        if (k in pc) {
          taken[snake] = pc[k];
          delete pc[k];
        }
      }
    }
    if (Object.keys(taken).length > 0) extras.set(key, taken);
  };
  listeners.forEach((l, li) => {
    const chains = isObject(l) ? (l['filter_chains'] ?? l['filterChains']) : undefined;
    if (!Array.isArray(chains)) return;
    chains.forEach((c, ci) => {
      const filters = isObject(c) ? c['filters'] : undefined;
      if (!Array.isArray(filters)) return;
      filters.forEach((f, fi) => {
        const tc = isObject(f) ? (f['typed_config'] ?? f['typedConfig']) : undefined;
        const base = `static_resources.listeners[${li}].filter_chains[${ci}].filters[${fi}].typed_config`;
        // A network Wasm filter's PluginConfig sits right in its typed_config.
        if (isObject(tc)) take(tc['config'], `${base}.config`);
        const hf = isObject(tc) ? (tc['http_filters'] ?? tc['httpFilters']) : undefined;
        if (!Array.isArray(hf)) return;
        hf.forEach((h, hi) => {
          const htc = isObject(h) ? (h['typed_config'] ?? h['typedConfig']) : undefined;
          take(isObject(htc) ? htc['config'] : undefined, `${base}.http_filters[${hi}].typed_config.config`);
        });
      });
    });
  });
  return extras;
}

export interface SidecarConfig {
  readonly bootstrap: Bootstrap;
  readonly listeners: readonly ListenerConfig[];
  /** dynamic_resources.lds_config (listeners over ADS), if any. */
  readonly lds: LdsConfig | undefined;
  readonly file: string;
}

/** dynamic_resources.lds_config: listeners over the ADS stream, with its initial_fetch_timeout (default 15 s). */
export interface LdsConfig {
  readonly initialFetchTimeoutMs: number;
}

/** Reads lds_config from the bootstrap (canonical proto3 JSON); only `ads: {}` sources are served. */
export function ldsConfig(bootstrap: Bootstrap): LdsConfig | undefined {
  const dyn = bootstrap.json['dynamic_resources'];
  const lds = isObject(dyn) ? dyn['lds_config'] : undefined;
  if (lds === undefined || lds === null) return undefined;
  const path = 'dynamic_resources.lds_config';
  const initialFetchTimeoutMs = adsConfigSource(lds, path);
  if (!bootstrap.ads) throw new ConfigError('lds_config uses ADS but dynamic_resources.ads_config is missing', `${path}.ads`);
  return { initialFetchTimeoutMs };
}

/** static_resources.secrets by name (Envoy's static SDS secrets, referenced by name without sds_config). */
export function staticSecrets(bootstrap: Bootstrap): StaticSecrets {
  const statics = bootstrap.json['static_resources'];
  const list = isObject(statics) && Array.isArray(statics['secrets']) ? statics['secrets'] : [];
  const out = new Map<string, Json>();
  list.forEach((s, i) => {
    if (!isObject(s)) return;
    const name = str(s['name'], `static_resources.secrets[${i}].name`, '');
    if (out.has(name)) throw new ConfigError(`duplicate secret name '${name}'`, `static_resources.secrets[${i}].name`);
    out.set(name, s);
  });
  return out;
}

/** Reads and validates a whole bootstrap (clusters via config/bootstrap.ts, listeners here). */
export function loadSidecarConfig(file: string): SidecarConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read bootstrap ${file}: ${(err as Error).message}`, '', { cause: err });
  }
  const format = file.endsWith('.json') ? 'json' : 'yaml';
  let doc: unknown;
  try {
    doc = format === 'json' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(`bootstrap is not valid ${format.toUpperCase()}: ${(err as Error).message}`, '', { cause: err });
  }
  const extras = takePluginConfigExtras(doc);
  const bootstrap = bootstrapReader().bootstrapFromJson(doc);
  // Relative code filenames resolve against the working directory, as Envoy resolves them.
  const listeners = parseListeners(bootstrap.staticListeners, { extras, secrets: staticSecrets(bootstrap) });
  const clusterNames = new Set(bootstrap.staticClusters.map((c) => c.name));
  // Envoy validates static route targets against static clusters unless validate_clusters is false; with ADS
  // the cluster may arrive later, so only check when there is no dynamic CDS.
  if (!bootstrap.cds) {
    listeners.forEach((l, li) => [...l.filterChains, ...(l.defaultFilterChain ? [l.defaultFilterChain] : [])].forEach((c) => {
      if (c.network.kind !== 'http') return;
      const routes = c.network.hcm.routes;
      if (routes.kind !== 'static') return;
      routes.config.virtualHosts.forEach((vh, vi) => vh.routes.forEach((r, ri) => {
        if (r.action.kind === 'cluster' && !clusterNames.has(r.action.cluster)) {
          const chainPath = c.path.startsWith(`static_resources.listeners[${li}]`) ? c.path : `static_resources.listeners[${li}]`;
          throw new ConfigError(`unknown cluster '${r.action.cluster}'`, `${chainPath}.filters[0].typed_config.route_config.virtual_hosts[${vi}].routes[${ri}].route.cluster`);
        }
      }));
    }));
  }
  return { bootstrap, listeners, lds: ldsConfig(bootstrap), file };
}
