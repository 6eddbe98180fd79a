import type { TlsConnectionInfo } from '../tls/tls-context';
import { getHeader, type HeaderPairs } from '../common/headers';
import { serializeProperty, type PropertyValue } from '../abi/properties';

/** A google.protobuf.Struct value in its JSON form (what proto3 JSON and the bootstrap carry). */
export type StructValue = null | boolean | number | string | StructValue[] | { [key: string]: StructValue };
export type StructObject = { [key: string]: StructValue };

/**
 * An `envoy.config.core.v3.Metadata` as Envoy serves it through proxy_get_property: the whole message as
 * protobuf bytes; below it, `filter_metadata` is a map whose Structs CEL unwraps into maps (cel-cpp treats
 * google.protobuf.Struct as a map), so they are walked and serialized as maps, not as message bytes.
 */
export interface EncodedMetadata {
  readonly message: Buffer;
  readonly filterMetadata: ReadonlyMap<string, StructObject>;
}

export const EMPTY_METADATA: EncodedMetadata = { message: Buffer.alloc(0), filterMetadata: new Map() };

/** What an HTTP stream knows about itself, as Envoy's StreamInfo does (the data plane fills it as traffic flows). */
export interface StreamAttributeInfo {
  readonly startNs: bigint;
  /** `HTTP/1.1`, `HTTP/1.0`, `HTTP/2` (request.protocol); absent: HTTP/1.1. */
  readonly protocol?: string;
  /** The downstream TLS connection (connection.tls_version, certificates, SANs); absent in plaintext. */
  readonly tls?: TlsConnectionInfo;
  readonly requestId: string;
  /** Body bytes received from the client (Envoy bytesReceived). */
  readonly requestBytes: number;
  /** Body bytes sent to the client (Envoy bytesSent). */
  readonly responseBytes: number;
  /** 0 until response headers are known. */
  readonly responseCode: number;
  /** '' until set: `via_upstream`, or the local reply's details. */
  readonly responseCodeDetails: string;
  /** Envoy's short names (UH, UF, NR, ...). */
  readonly responseFlags: readonly string[];
  readonly sourceAddress: string;
  readonly sourcePort: number;
  readonly destinationAddress: string;
  readonly destinationPort: number;
  /** Downstream connection id (Envoy's process-wide connection counter). */
  readonly connectionId: number;
  /** `ip:port` of the upstream host, '' before one was chosen. */
  readonly upstreamHost: string;
  /** Why the upstream connection failed, '' if it did not (Envoy upstreamTransportFailureReason). */
  readonly upstreamTransportFailureReason: string;
  /** A route was selected (its name may be ''). */
  readonly hasRoute: boolean;
  readonly routeName: string;
  readonly clusterName: string;
  readonly virtualHostName: string;
  /** Set when the stream completed (Envoy requestComplete()); request.duration is absent until then. */
  readonly durationNs: bigint | undefined;
}

/** Configuration-side facts (route, virtual host, listener) the attributes expose; all optional. */
export interface StreamAttributeConfig {
  readonly routeMetadata?: EncodedMetadata;
  readonly virtualHostMetadata?: EncodedMetadata;
  readonly listenerMetadata?: EncodedMetadata;
  readonly filterChainName?: string;
  /** envoy.config.core.v3.TrafficDirection of the listener (0 UNSPECIFIED, 1 INBOUND, 2 OUTBOUND). */
  readonly listenerDirection?: number;
}

/** The bootstrap node as plugins read it; `message`: the serialized envoy.config.core.v3.Node (Higress serves `node` as that message). */
export interface ServedNode {
  readonly id: string;
  readonly cluster: string;
  readonly message?: Buffer;
  readonly metadata?: StructObject;
}

export interface StreamAttributeSource {
  readonly requestHeaders: HeaderPairs;
  readonly responseHeaders: HeaderPairs;
  readonly responseTrailers?: HeaderPairs;
  readonly info: StreamAttributeInfo;
  readonly node: ServedNode;
  readonly config?: StreamAttributeConfig;
}

/**
 * Higress's Envoy reports a plugin's local reply as `via_wasm::<plugin name>::<details>` (context.cc
 * sendLocalResponse; whitespace in the details replaced by `_`, the `::<details>` part left out when empty).
 */
export function wasmLocalReplyDetails(pluginName: string, details: string): string {
  const d = details.replace(/\s/g, '_');
  return `via_wasm${pluginName ? `::${pluginName}` : ''}${d ? `::${d}` : ''}`;
}

/** Envoy's StreamInfo::CoreResponseFlag bit positions, as `response.flags` reports them. */
const RESPONSE_FLAG_BITS: Readonly<Record<string, number>> = {
  LH: 0, UH: 1, UT: 2, LR: 3, UR: 4, UF: 5, UC: 6, UO: 7, NR: 8, DI: 9, FI: 10, RL: 11, UAEX: 12, RLSE: 13,
  DC: 14, URX: 15, SI: 16, IH: 17, DPE: 18, UMSDR: 19, RFCF: 20, NFCF: 21, DT: 22, UPE: 23, NC: 24, OM: 25, DF: 26, DO: 27,
};

function responseFlagBits(flags: readonly string[]): bigint {
  let out = 0n;
  for (const f of flags) {
    const bit = RESPONSE_FLAG_BITS[f];
    if (bit !== undefined) out |= 1n << BigInt(bit);
  }
  return out;
}

/** Envoy Grpc::Utility::httpToGrpcStatus. */
export function httpToGrpcStatus(code: number): number {
  switch (code) {
    case 400: return 13;
    case 401: return 16;
    case 403: return 7;
    case 404: return 12;
    case 429: case 502: case 503: case 504: return 14;
    default: return 2;
  }
}

/** Envoy HeaderMap::byteSize(): key and value bytes. */
function byteSize(headers: HeaderPairs | undefined): number {
  if (!headers) return 0;
  let n = 0;
  for (const [k, v] of headers) n += Buffer.byteLength(k) + Buffer.byteLength(v);
  return n;
}

function splitHostPort(address: string): { host: string; port: number } | undefined {
  const i = address.lastIndexOf(':');
  if (i <= 0) return undefined;
  const port = Number(address.slice(i + 1));
  return Number.isInteger(port) ? { host: address.slice(0, i), port } : undefined;
}

/** A header map attribute: the map (pseudo-headers included, as Envoy's map holds them), or one joined value. */
function headerAttribute(headers: HeaderPairs | undefined, name: string | undefined): PropertyValue | undefined {
  if (!headers) return undefined;
  return name === undefined ? headers : joined(headers, name.toLowerCase());
}

/** Metadata traversal as Envoy walks it: the message, then its filter_metadata map, then each Struct as a map. */
function metadataAttribute(md: EncodedMetadata | undefined, rest: readonly string[]): PropertyValue | undefined {
  if (!md) return undefined;
  const [field, ns, ...deeper] = rest;
  if (field === undefined) return md.message;
  if (field !== 'filter_metadata') return field === 'typed_filter_metadata' && ns === undefined ? [] : undefined;
  if (ns === undefined) return [...md.filterMetadata].map(([k, v]) => [k, serializeStruct(v)] as const);
  const struct = md.filterMetadata.get(ns);
  return struct === undefined ? undefined : structAttribute(struct, deeper);
}

/**
 * A Struct value as Envoy's serializeValue writes the CEL value it becomes: strings raw, numbers as 8-byte
 * doubles, booleans one byte, structs as pairs (key, serialized value), lists as pairs (serialized element, '').
 * A null has no serialization in Envoy (SERIALIZATION_FAILURE); here it is not found.
 */
function structAttribute(value: StructValue, rest: readonly string[]): PropertyValue | undefined {
  let v: StructValue | undefined = value;
  for (const part of rest) {
    if (Array.isArray(v)) v = /^\d+$/.test(part) ? v[Number(part)] : undefined;
    else if (v !== null && typeof v === 'object') v = Object.prototype.hasOwnProperty.call(v, part) ? v[part] : undefined;
    else v = undefined;
    if (v === undefined) return undefined;
  }
  if (v === null) return undefined;
  if (typeof v === 'number') {
    const out = Buffer.alloc(8);
    out.writeDoubleLE(v);
    return out;
  }
  if (typeof v === 'string' || typeof v === 'boolean') return v;
  return Array.isArray(v) ? v.map((e) => [structBytes(e), ''] as const) : Object.entries(v).map(([k, e]) => [k, structBytes(e)] as const);
}

function structBytes(v: StructValue): Uint8Array {
  const p = structAttribute(v, []);
  return p === undefined ? Buffer.alloc(0) : serializeProperty(p);
}

function serializeStruct(v: StructObject): Uint8Array {
  return structBytes(v);
}

const NO_CONFIG: StreamAttributeConfig = {};

/** The configuration facts, read only by the attributes that need them (the source may build them on demand). */
function cfgOf(s: StreamAttributeSource): StreamAttributeConfig {
  return s.config ?? NO_CONFIG;
}

function rh(s: StreamAttributeSource, name: string): string | undefined {
  return getHeader(s.requestHeaders, name);
}

/**
 * Envoy's attributes for proxy_get_property on an HTTP stream, in Envoy's types: strings raw, integers as 8-byte
 * little-endian, booleans one byte, header maps and string maps in the pairs format, messages (metadata, node) as
 * protobuf bytes. Covers request.*, response.*, source.*, destination.*, connection.*, upstream.*, xds.* and
 * Higress's top-level route_name, cluster_name, route_metadata, node, listener_direction, listener_metadata.
 * Undefined means NOT_FOUND (Envoy has no value: no TLS, no upstream yet, ...). One definition serves the data
 * plane and the plugin test kit, so a plugin sees the same values in both.
 */
export function streamAttribute(path: readonly string[], s: StreamAttributeSource): PropertyValue | undefined {
  const info = s.info;
  const a = path[0];
  const b = path[1];
  const c = path[2];
  switch (a) {
    case 'request':
      switch (b) {
        case 'path': return rh(s, ':path');
        case 'url_path': return (rh(s, ':path') ?? '').split('?')[0];
        case 'query': {
          const p = rh(s, ':path') ?? '';
          const q = p.indexOf('?');
          return q === -1 ? '' : p.slice(q + 1);
        }
        case 'method': return rh(s, ':method');
        case 'host': return rh(s, ':authority');
        case 'scheme': return rh(s, ':scheme');
        case 'protocol': return info.protocol ?? 'HTTP/1.1';
        case 'id': return rh(s, 'x-request-id');
        case 'referer': return rh(s, 'referer');
        case 'useragent': return rh(s, 'user-agent');
        case 'time': return info.startNs;
        case 'duration': return info.durationNs;
        case 'size': {
          const cl = rh(s, 'content-length');
          return cl !== undefined && /^\d+$/.test(cl) ? BigInt(cl) : BigInt(info.requestBytes);
        }
        case 'total_size': return BigInt(info.requestBytes + byteSize(s.requestHeaders));
        case 'headers': return headerAttribute(s.requestHeaders, c);
        default: return undefined;
      }
    case 'response':
      switch (b) {
        case 'code': return info.responseCode === 0 ? undefined : BigInt(info.responseCode);
        case 'code_details': return info.responseCodeDetails || undefined;
        case 'flags': return responseFlagBits(info.responseFlags);
        case 'grpc_status': {
          const g = (s.responseTrailers && getHeader(s.responseTrailers, 'grpc-status')) ?? getHeader(s.responseHeaders, 'grpc-status');
          if (g !== undefined && /^\d+$/.test(g)) return BigInt(g);
          return info.responseCode === 0 ? undefined : BigInt(httpToGrpcStatus(info.responseCode));
        }
        case 'size': return BigInt(info.responseBytes);
        case 'total_size': return BigInt(info.responseBytes + byteSize(s.responseHeaders) + byteSize(s.responseTrailers));
        case 'headers': return headerAttribute(s.responseHeaders, c);
        case 'trailers': return headerAttribute(s.responseTrailers ?? [], c);
        default: return undefined;
      }
    case 'source':
      if (b === 'address') return `${info.sourceAddress}:${info.sourcePort}`;
      if (b === 'port') return BigInt(info.sourcePort);
      return undefined;
    case 'destination':
      if (b === 'address') return `${info.destinationAddress}:${info.destinationPort}`;
      if (b === 'port') return BigInt(info.destinationPort);
      return undefined;
    case 'connection':
      switch (b) {
        case 'id': return BigInt(info.connectionId);
        // Envoy: TLS with a peer certificate presented (and, since the handshake passed, verified).
        case 'mtls': return info.tls?.peerVerified ?? false;
        case 'requested_server_name': return info.tls?.serverName ?? '';
        // In plaintext the TLS attributes have no value (Envoy: not found).
        case 'tls_version': return info.tls?.version;
        case 'subject_peer_certificate': return info.tls?.peer?.subject;
        case 'subject_local_certificate': return info.tls?.local?.subject;
        case 'sha256_peer_certificate_digest': return info.tls?.peer?.sha256;
        // Envoy serves the first SAN of the kind.
        case 'uri_san_peer_certificate': return info.tls?.peer?.uriSans[0];
        case 'uri_san_local_certificate': return info.tls?.local?.uriSans[0];
        case 'dns_san_peer_certificate': return info.tls?.peer?.dnsSans[0];
        case 'dns_san_local_certificate': return info.tls?.local?.dnsSans[0];
        default: return undefined;
      }
    case 'upstream': {
      const hp = info.upstreamHost ? splitHostPort(info.upstreamHost) : undefined;
      switch (b) {
        case 'address': return info.upstreamHost || undefined;
        case 'port': return hp ? BigInt(hp.port) : undefined;
        case 'transport_failure_reason': return info.upstreamTransportFailureReason || undefined;
        default: return undefined;
      }
    }
    case 'xds':
      switch (b) {
        case 'node': return nodeAttribute(s, path.slice(2));
        case 'cluster_name': return info.clusterName || undefined;
        case 'route_name': return info.hasRoute ? info.routeName : undefined;
        case 'route_metadata': return info.hasRoute ? metadataAttribute(cfgOf(s).routeMetadata ?? EMPTY_METADATA, path.slice(2)) : undefined;
        case 'virtual_host_name': return info.virtualHostName || undefined;
        case 'virtual_host_metadata': return cfgOf(s).virtualHostMetadata ? metadataAttribute(cfgOf(s).virtualHostMetadata, path.slice(2)) : undefined;
        case 'filter_chain_name': return cfgOf(s).filterChainName ?? '';
        case 'listener_metadata': return metadataAttribute(cfgOf(s).listenerMetadata ?? EMPTY_METADATA, path.slice(2));
        case 'listener_direction': return BigInt(cfgOf(s).listenerDirection ?? 0);
        // Cluster and host metadata are not carried by the cluster model (see the report): not found.
        default: return undefined;
      }
    // Higress's top-level tokens (context.cc PROPERTY_TOKENS).
    case 'route_name': return info.hasRoute ? info.routeName : undefined;
    case 'cluster_name': return info.clusterName || undefined;
    case 'route_metadata': return info.hasRoute ? metadataAttribute(cfgOf(s).routeMetadata ?? EMPTY_METADATA, path.slice(1)) : undefined;
    case 'x_request_id': return rh(s, 'x-request-id');
    case 'listener_direction': return BigInt(cfgOf(s).listenerDirection ?? 0);
    case 'listener_metadata': return metadataAttribute(cfgOf(s).listenerMetadata ?? EMPTY_METADATA, path.slice(1));
    case 'connection_id': return BigInt(info.connectionId);
    case 'node': return nodeAttribute(s, path.slice(1));
    default:
      return undefined;
  }
}

/** `node` is the Node message; its scalar fields are reachable by name. */
function nodeAttribute(s: StreamAttributeSource, rest: readonly string[]): PropertyValue | undefined {
  const [field] = rest;
  if (field === undefined) return s.node.message ?? Buffer.alloc(0);
  if (field === 'metadata') return s.node.metadata ? structAttribute(s.node.metadata, rest.slice(1)) : undefined;
  if (rest.length > 1) return undefined;
  if (field === 'id') return s.node.id;
  if (field === 'cluster') return s.node.cluster;
  return undefined;
}

function joined(headers: HeaderPairs, name: string): string | undefined {
  let out: string | undefined;
  for (const [k, v] of headers) if (k === name) out = out === undefined ? v : `${out},${v}`;
  return out;
}
