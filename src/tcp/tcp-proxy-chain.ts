import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { Logger } from '../common/logger';
import { ConfigError } from '../common/errors';
import type { Plugin } from '../runtime/plugin';
import type { EncodedMetadata, ServedNode, StructObject } from '../runtime/stream-attributes';
import { tlsConnectionInfo } from '../tls/tls-context';
import { nextConnectionId } from '../common/connection-id';
import { ConnectionAttributes, type ConnectionAttributeConfig } from './connection-attributes';
import type { NetworkFilterChainConfig } from './network-config';
import { TcpProxySession, type ClusterLookup } from './tcp-proxy-session';
import { TcpProxyStatNames, TcpStats } from './tcp-stats';

/** Envoy's default Listener.per_connection_buffer_limit_bytes (1 MiB). */
const DEFAULT_BUFFER_LIMIT_BYTES = 1024 * 1024;

/** The listener-level facts a TCP filter chain needs besides its filters. */
export interface TcpChainListenerFacts {
  /** Listener.name, for logs. */
  readonly listenerName: string;
  readonly bufferLimitBytes?: number;
  /** Listener.metadata (xds.listener_metadata). */
  readonly metadata?: EncodedMetadata;
  /** Listener.traffic_direction (0 UNSPECIFIED, 1 INBOUND, 2 OUTBOUND). */
  readonly trafficDirection?: number;
  /** FilterChain.name (xds.filter_chain_name). */
  readonly filterChainName?: string;
}

export interface TcpProxyChainOptions {
  readonly chain: NetworkFilterChainConfig;
  readonly listener: TcpChainListenerFacts;
  /** The loaded plugin of each chain.wasmFilters entry, in the same order. */
  readonly plugins: readonly Plugin[];
  readonly clusters: ClusterLookup;
  readonly logger: Logger;
  /** The bootstrap's node (as HttpListenerOptions takes it): `node` / `xds.node` properties. */
  readonly node?: ServedNode;
  /** `listener.<address>_<port>.` for the listener stats; set it again with bound() once the port is known. */
  readonly listenerStatPrefix?: string;
  /** Shared with other chains of a data plane; default: its own. */
  readonly stats?: TcpStats;
}

/** The node as plugins read it: `node` is the serialized envoy.config.core.v3.Node (as the HTTP listener serves it). */
function attributeNode(node: TcpProxyChainOptions['node']): ConnectionAttributeConfig['node'] {
  const message = node?.message;
  return {
    id: node?.id ?? '',
    cluster: node?.cluster ?? '',
    ...(message ? { message } : {}),
    ...(node?.metadata ? { metadata: node.metadata } : {}),
  };
}

/**
 * One filter chain of network filters (Wasm network filters, then tcp_proxy) without a socket of its own: a
 * listener (TcpListener, or a multi-chain listener after filter chain matching, TLS already terminated) hands
 * it each accepted connection. Keeps the connections for draining and the tcp.* / listener.* counters.
 */
export class TcpProxyChain {
  readonly stats: TcpStats;
  private readonly sessions = new Set<TcpProxySession>();
  private readonly statNames: TcpProxyStatNames;
  private readonly logger: Logger;
  private readonly node: ConnectionAttributeConfig['node'];
  private listenerPrefix: string;
  private closing: Promise<void> | null = null;

  constructor(private readonly options: TcpProxyChainOptions) {
    if (options.plugins.length !== options.chain.wasmFilters.length) {
      throw new ConfigError(`listener '${options.listener.listenerName}': ${options.chain.wasmFilters.length} Wasm network filters but ${options.plugins.length} plugins`, options.chain.tcpProxy.path);
    }
    this.stats = options.stats ?? new TcpStats();
    this.statNames = new TcpProxyStatNames(options.chain.tcpProxy.statPrefix);
    this.logger = options.logger.child({ component: 'tcp', listener: options.listener.listenerName });
    this.node = attributeNode(options.node);
    this.listenerPrefix = options.listenerStatPrefix ?? '';
  }

  get plugins(): readonly Plugin[] {
    return this.options.plugins;
  }

  get config(): NetworkFilterChainConfig {
    return this.options.chain;
  }

  get activeConnections(): number {
    return this.sessions.size;
  }

  /** Names the listener.* stats by the bound address (Envoy: listener.127.0.0.1_10000.). */
  bound(address: string, port: number): void {
    this.listenerPrefix = `listener.${address}_${port}.`;
  }

  /** Runs one accepted connection (a TLSSocket when the chain's listener terminated TLS) through the chain. */
  acceptConnection(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const l = this.options.listener;
    if (this.listenerPrefix) this.stats.add(`${this.listenerPrefix}downstream_cx_total`);
    const attributes = new ConnectionAttributes({
      connectionId: nextConnectionId(),
      sourceAddress: socket.remoteAddress ?? '',
      sourcePort: socket.remotePort ?? 0,
      destinationAddress: socket.localAddress ?? '',
      destinationPort: socket.localPort ?? 0,
      ...(socket instanceof TLSSocket ? { tls: tlsConnectionInfo(socket) } : {}),
    }, {
      node: this.node,
      ...(l.metadata ? { listenerMetadata: l.metadata } : {}),
      listenerDirection: l.trafficDirection ?? 0,
      filterChainName: l.filterChainName ?? '',
    });
    const session = new TcpProxySession({
      downstream: socket,
      proxy: this.options.chain.tcpProxy,
      plugins: this.options.plugins,
      clusters: this.options.clusters,
      stats: this.stats,
      statNames: this.statNames,
      attributes,
      bufferLimitBytes: l.bufferLimitBytes ?? DEFAULT_BUFFER_LIMIT_BYTES,
      logger: this.logger,
    });
    this.sessions.add(session);
    const prefix = this.listenerPrefix;
    void session.closed.then(() => {
      this.sessions.delete(session);
      if (prefix) this.stats.add(`${prefix}downstream_cx_destroy`);
    });
    session.start();
  }

  /** Takes no more connections; open ones get `drainTimeoutMs` to end on their own, then are closed. Idempotent. */
  close(drainTimeoutMs = 0): Promise<void> {
    this.closing ??= (async () => {
      const all = (): Promise<unknown> => Promise.all([...this.sessions].map((s) => s.closed));
      if (this.sessions.size > 0 && drainTimeoutMs > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([all(), new Promise<void>((resolve) => (timer = setTimeout(resolve, drainTimeoutMs)))]);
        if (timer) clearTimeout(timer);
      }
      for (const s of this.sessions) s.destroy();
      await all();
    })();
    return this.closing;
  }
}
