import { ConfigError } from '../common/errors';
import { isObject, object, only, type JsonFields } from '../config/json-fields';

/**
 * HTTP/2 and upstream protocol options shared by listeners (HCM http2_protocol_options) and clusters
 * (envoy.extensions.upstreams.http.v3.HttpProtocolOptions, the legacy Cluster.http2_protocol_options), read
 * from proto3 JSON. Fields that are not implemented are refused with their path.
 */

type Json = JsonFields;

export interface Http2Settings {
  /** max_concurrent_streams (Envoy default 2147483647). */
  readonly maxConcurrentStreams: number;
  /** initial_stream_window_size (Envoy default 268435456). */
  readonly initialWindowSize: number;
}

/** Envoy's Http2ProtocolOptions defaults. */
export const DEFAULT_HTTP2_SETTINGS: Http2Settings = { maxConcurrentStreams: 2147483647, initialWindowSize: 268435456 };

export const HTTP_PROTOCOL_OPTIONS_KEY = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
export const HTTP_PROTOCOL_OPTIONS_TYPE = `type.googleapis.com/${HTTP_PROTOCOL_OPTIONS_KEY}`;

/**
 * Which HTTP version a cluster speaks: explicit HTTP/1.1 or HTTP/2, the downstream request's
 * (use_downstream_protocol_config), or ALPN over TLS (auto_config; HTTP/1.1 in plaintext, as Envoy).
 */
export type UpstreamProtocolPolicy = 'http1' | 'http2' | 'downstream' | 'auto';

export interface UpstreamProtocol {
  readonly policy: UpstreamProtocolPolicy;
  readonly http2: Http2Settings;
}

export const DEFAULT_UPSTREAM_PROTOCOL: UpstreamProtocol = { policy: 'http1', http2: DEFAULT_HTTP2_SETTINGS };

function uint32(v: unknown, path: string, fallback: number, min: number, max: number): number {
  if (v === undefined || v === null) return fallback;
  const n = isObject(v) && 'value' in v ? Number(v['value']) : Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new ConfigError(`must be ${min}..${max}`, path);
  return n;
}

/** Http2ProtocolOptions: the fields implemented as SETTINGS; any other is refused. */
export function http2Settings(v: unknown, path: string): Http2Settings {
  const o = object(v, path);
  if (!o) return DEFAULT_HTTP2_SETTINGS;
  only(o, ['max_concurrent_streams', 'initial_stream_window_size'], path);
  // Envoy's PGV bounds.
  return {
    maxConcurrentStreams: uint32(o['max_concurrent_streams'], `${path}.max_concurrent_streams`, DEFAULT_HTTP2_SETTINGS.maxConcurrentStreams, 1, 2147483647),
    initialWindowSize: uint32(o['initial_stream_window_size'], `${path}.initial_stream_window_size`, DEFAULT_HTTP2_SETTINGS.initialWindowSize, 65535, 2147483647),
  };
}

/** Http1ProtocolOptions: none of its fields is implemented, so only an empty message is accepted. */
function http1Options(v: unknown, path: string): void {
  const o = object(v, path);
  if (o) only(o, [], path);
}

/**
 * A cluster's upstream protocol from proto3 JSON: typed_extension_protocol_options[HttpProtocolOptions] or the
 * legacy http2_protocol_options (Envoy refuses both at once).
 */
export function upstreamProtocol(cluster: Json, path = ''): UpstreamProtocol {
  const p = (f: string) => (path ? `${path}.${f}` : f);
  const legacyH2 = cluster['http2_protocol_options'];
  const legacyH1 = cluster['http_protocol_options'];
  const typed = object(cluster['typed_extension_protocol_options'], p('typed_extension_protocol_options')) ?? {};
  for (const [k, v] of Object.entries(typed)) {
    if (k !== HTTP_PROTOCOL_OPTIONS_KEY) throw new ConfigError('is not supported by this data plane', `${p('typed_extension_protocol_options')}["${k}"]`);
    const t = object(v, `${p('typed_extension_protocol_options')}["${k}"]`);
    if (t && t['@type'] !== HTTP_PROTOCOL_OPTIONS_TYPE) throw new ConfigError(`must be ${HTTP_PROTOCOL_OPTIONS_TYPE}`, `${p('typed_extension_protocol_options')}["${k}"].@type`);
  }
  const hpo = object(typed[HTTP_PROTOCOL_OPTIONS_KEY], `${p('typed_extension_protocol_options')}["${HTTP_PROTOCOL_OPTIONS_KEY}"]`);
  if (hpo) {
    const hp = `${p('typed_extension_protocol_options')}["${HTTP_PROTOCOL_OPTIONS_KEY}"]`;
    // Envoy: "cluster: Both HTTP1 or HTTP2 options may only be configured with non-default 'protocol_options'".
    if (legacyH2 !== undefined || legacyH1 !== undefined) throw new ConfigError('the deprecated http_protocol_options / http2_protocol_options cannot be set with HttpProtocolOptions', p(legacyH2 !== undefined ? 'http2_protocol_options' : 'http_protocol_options'));
    only(hpo, ['@type', 'explicit_http_config', 'use_downstream_protocol_config', 'auto_config'], hp);
    const explicit = object(hpo['explicit_http_config'], `${hp}.explicit_http_config`);
    if (explicit) {
      only(explicit, ['http_protocol_options', 'http2_protocol_options'], `${hp}.explicit_http_config`);
      if (explicit['http2_protocol_options'] !== undefined) return { policy: 'http2', http2: http2Settings(explicit['http2_protocol_options'], `${hp}.explicit_http_config.http2_protocol_options`) };
      http1Options(explicit['http_protocol_options'], `${hp}.explicit_http_config.http_protocol_options`);
      return DEFAULT_UPSTREAM_PROTOCOL;
    }
    const downstream = object(hpo['use_downstream_protocol_config'], `${hp}.use_downstream_protocol_config`);
    if (downstream) {
      only(downstream, ['http_protocol_options', 'http2_protocol_options'], `${hp}.use_downstream_protocol_config`);
      http1Options(downstream['http_protocol_options'], `${hp}.use_downstream_protocol_config.http_protocol_options`);
      return { policy: 'downstream', http2: http2Settings(downstream['http2_protocol_options'], `${hp}.use_downstream_protocol_config.http2_protocol_options`) };
    }
    const auto = object(hpo['auto_config'], `${hp}.auto_config`);
    if (auto) {
      only(auto, ['http_protocol_options', 'http2_protocol_options'], `${hp}.auto_config`);
      http1Options(auto['http_protocol_options'], `${hp}.auto_config.http_protocol_options`);
      return { policy: 'auto', http2: http2Settings(auto['http2_protocol_options'], `${hp}.auto_config.http2_protocol_options`) };
    }
    return DEFAULT_UPSTREAM_PROTOCOL;
  }
  http1Options(legacyH1, p('http_protocol_options'));
  if (legacyH2 !== undefined && legacyH2 !== null) return { policy: 'http2', http2: http2Settings(legacyH2, p('http2_protocol_options')) };
  return DEFAULT_UPSTREAM_PROTOCOL;
}
