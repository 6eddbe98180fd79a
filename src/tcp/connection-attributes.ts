import type { PropertyValue } from '../abi/properties';
import type { TlsConnectionInfo } from '../tls/tls-context';
import {
  EMPTY_METADATA, streamAttribute, type EncodedMetadata, type StreamAttributeInfo, type StreamAttributeSource,
} from '../runtime/stream-attributes';

/**
 * The attributes a network filter's plugin reads through proxy_get_property, in Envoy's types: the connection's
 * (source.*, destination.*, connection.*, connection_id), its upstream's once chosen (upstream.address/port,
 * upstream.transport_failure_reason, cluster_name), and the configuration's (xds.*, listener_*, node). There is
 * no request or route on a TCP connection, so request.*, response.* and route_* are not found, as in Envoy.
 * Values are served by the HTTP stream's definitions (runtime/stream-attributes.ts), so both agree on encoding.
 */

/** The first path segments a TCP connection has values for. */
const CONNECTION_ROOTS: ReadonlySet<string> = new Set([
  'source', 'destination', 'connection', 'upstream', 'xds', 'cluster_name', 'listener_direction', 'listener_metadata', 'connection_id', 'node',
]);
const NO_ROUTE_XDS: ReadonlySet<string> = new Set(['route_name', 'route_metadata', 'virtual_host_name', 'virtual_host_metadata']);

export interface ConnectionAttributeConfig {
  readonly node: StreamAttributeSource['node'];
  readonly listenerMetadata?: EncodedMetadata;
  readonly listenerDirection?: number;
  readonly filterChainName?: string;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** One connection's facts, updated by the proxy as the connection progresses. */
export class ConnectionAttributes {
  private readonly info: Mutable<StreamAttributeInfo>;
  private readonly source: StreamAttributeSource;

  constructor(
    facts: {
      readonly connectionId: number;
      readonly sourceAddress: string;
      readonly sourcePort: number;
      readonly destinationAddress: string;
      readonly destinationPort: number;
      /** The downstream TLS connection (connection.tls_version, certificates); absent in plaintext. */
      readonly tls?: TlsConnectionInfo;
    },
    config: ConnectionAttributeConfig,
  ) {
    this.info = {
      startNs: process.hrtime.bigint(),
      requestId: '',
      requestBytes: 0,
      responseBytes: 0,
      responseCode: 0,
      responseCodeDetails: '',
      responseFlags: [],
      sourceAddress: facts.sourceAddress,
      sourcePort: facts.sourcePort,
      destinationAddress: facts.destinationAddress,
      destinationPort: facts.destinationPort,
      connectionId: facts.connectionId,
      upstreamHost: '',
      upstreamTransportFailureReason: '',
      hasRoute: false,
      routeName: '',
      clusterName: '',
      virtualHostName: '',
      durationNs: undefined,
      ...(facts.tls ? { tls: facts.tls } : {}),
    };
    this.source = {
      requestHeaders: [],
      responseHeaders: [],
      info: this.info,
      node: config.node,
      config: {
        listenerMetadata: config.listenerMetadata ?? EMPTY_METADATA,
        listenerDirection: config.listenerDirection ?? 0,
        filterChainName: config.filterChainName ?? '',
      },
    };
  }

  get connectionId(): number {
    return this.info.connectionId;
  }

  /** The tcp_proxy picked its cluster (Envoy sets the upstream cluster info then). */
  cluster(name: string): void {
    this.info.clusterName = name;
  }

  /** The upstream host chosen, `ip:port`. */
  upstreamHost(hostPort: string): void {
    this.info.upstreamHost = hostPort;
  }

  upstreamFailure(reason: string): void {
    this.info.upstreamTransportFailureReason = reason;
  }

  get(path: readonly string[]): PropertyValue | undefined {
    const [a, b] = path;
    if (a === undefined || !CONNECTION_ROOTS.has(a)) return undefined;
    if (a === 'xds' && b !== undefined && NO_ROUTE_XDS.has(b)) return undefined;
    return streamAttribute(path, this.source);
  }
}
