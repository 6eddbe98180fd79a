import { getHeader, type HeaderPairs } from '../common/headers';
import type { PropertyValue } from '../abi/properties';

/** What an HTTP stream knows about itself, as Envoy's StreamInfo does (the data plane fills it as traffic flows). */
export interface StreamAttributeInfo {
  readonly startNs: bigint;
  readonly requestId: string;
  readonly requestBytes: number;
  readonly responseBytes: number;
  /** 0 until response headers are known. */
  readonly responseCode: number;
  readonly responseCodeDetails: string;
  readonly sourceAddress: string;
  readonly sourcePort: number;
  readonly destinationAddress: string;
  readonly destinationPort: number;
  readonly upstreamHost: string;
  readonly routeName: string;
  readonly clusterName: string;
}

export interface StreamAttributeSource {
  readonly requestHeaders: HeaderPairs;
  readonly responseHeaders: HeaderPairs;
  readonly info: StreamAttributeInfo;
  readonly node: { readonly id: string; readonly cluster: string };
  /** process.hrtime.bigint() when the stream started (request.duration). */
  readonly monoStart: bigint;
}

/**
 * Envoy's attributes for proxy_get_property on an HTTP stream (request.*, response.*, source.*, destination.*,
 * connection.*, upstream.address, route_name, cluster_name, x_request_id, node.*), in Envoy's types: strings,
 * 8-byte integers, header maps as pairs. Undefined means NOT_FOUND. One definition serves the data plane and the
 * plugin test kit, so a plugin sees the same values in both.
 */
export function streamAttribute(path: readonly string[], s: StreamAttributeSource): PropertyValue | undefined {
  const info = s.info;
  const rh = (name: string): string | undefined => getHeader(s.requestHeaders, name);
  const [a, b, c] = path;
  switch (a) {
    case 'request':
      switch (b) {
        case 'path': return rh(':path');
        case 'url_path': return (rh(':path') ?? '').split('?')[0];
        case 'method': return rh(':method');
        case 'host': return rh(':authority');
        case 'scheme': return rh(':scheme') ?? 'http';
        case 'protocol': return 'HTTP/1.1';
        case 'id': return rh('x-request-id') ?? info.requestId;
        case 'referer': return rh('referer');
        case 'useragent': return rh('user-agent');
        case 'time': return info.startNs;
        case 'duration': return process.hrtime.bigint() - s.monoStart;
        case 'size': return BigInt(Number(rh('content-length') ?? info.requestBytes));
        case 'total_size': return BigInt(info.requestBytes);
        case 'headers': return c === undefined ? s.requestHeaders.filter(([k]) => !k.startsWith(':')) : joined(s.requestHeaders, c.toLowerCase());
        default: return undefined;
      }
    case 'response':
      switch (b) {
        case 'code': return info.responseCode === 0 ? undefined : BigInt(info.responseCode);
        case 'code_details': return info.responseCodeDetails || undefined;
        case 'flags': return BigInt(0);
        case 'size': return BigInt(info.responseBytes);
        case 'total_size': return BigInt(info.responseBytes);
        case 'headers': return c === undefined ? s.responseHeaders.filter(([k]) => !k.startsWith(':')) : joined(s.responseHeaders, c.toLowerCase());
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
      if (b === 'requested_server_name') return '';
      if (b === 'mtls') return false;
      return undefined;
    case 'upstream':
      if (b === 'address') return info.upstreamHost || undefined;
      return undefined;
    case 'route_name': return info.routeName;
    case 'cluster_name': return info.clusterName;
    case 'x_request_id': return rh('x-request-id') ?? info.requestId;
    case 'listener_direction': return BigInt(0);
    case 'listener_metadata': return [];
    case 'node':
      if (b === 'id') return s.node.id;
      if (b === 'cluster') return s.node.cluster;
      return undefined;
    default:
      return undefined;
  }
}

function joined(headers: HeaderPairs, name: string): string | undefined {
  let out: string | undefined;
  for (const [k, v] of headers) if (k === name) out = out === undefined ? v : `${out},${v}`;
  return out;
}
