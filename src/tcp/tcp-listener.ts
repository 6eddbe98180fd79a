import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from '../common/logger';
import { ConfigError } from '../common/errors';
import type { Plugin } from '../runtime/plugin';
import type { EncodedMetadata, StructObject } from '../runtime/stream-attributes';
import { loadEnvoyProtos } from '../xds/protos';
import { ConnectionAttributes, type ConnectionAttributeConfig } from './connection-attributes';
import type { NetworkFilterChainConfig } from './network-config';
import { TcpProxySession, type ClusterLookup } from './tcp-proxy-session';
import { TcpProxyStatNames, TcpStats } from './tcp-stats';

/** Envoy's default Listener.per_connection_buffer_limit_bytes (1 MiB). */
const DEFAULT_BUFFER_LIMIT_BYTES = 1024 * 1024;

/** A listener whose filter chain is network filters ending in tcp_proxy (no HttpConnectionManager). */
export interface TcpListenerConfig {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  readonly chain: NetworkFilterChainConfig;
  readonly bufferLimitBytes?: number;
  /** Listener.metadata (xds.listener_metadata). */
  readonly metadata?: EncodedMetadata;
  /** Listener.traffic_direction (0 UNSPECIFIED, 1 INBOUND, 2 OUTBOUND). */
  readonly trafficDirection?: number;
  /** filter_chains[0].name (xds.filter_chain_name). */
  readonly filterChainName?: string;
}

export interface TcpListenerOptions {
  readonly config: TcpListenerConfig;
  /** The loaded plugin of each chain.wasmFilters entry, in the same order. */
  readonly plugins: readonly Plugin[];
  readonly clusters: ClusterLookup;
  readonly logger: Logger;
  /** The bootstrap's node (as HttpListenerOptions takes it): `node` / `xds.node` properties. */
  readonly node?: { readonly id: string; readonly cluster: string; readonly message?: Record<string, unknown>; readonly metadata?: StructObject };
  /** The address `listener.<address>_<port>.` stats are named by (a worker binds loopback; its stats carry the public one). */
  readonly statAddress?: string;
  /** Shared with other listeners of a data plane; default: the listener's own. */
  readonly stats?: TcpStats;
}

/** The node as plugins read it: `node` is the serialized envoy.config.core.v3.Node (as the HTTP listener serves it). */
function attributeNode(node: TcpListenerOptions['node']): ConnectionAttributeConfig['node'] {
  const type = node?.message ? loadEnvoyProtos().lookup('envoy.config.core.v3.Node') : undefined;
  const message = type && node?.message ? Buffer.from(type.encode(node.message).finish()) : undefined;
  return {
    id: node?.id ?? '',
    cluster: node?.cluster ?? '',
    ...(message ? { message } : {}),
    ...(node?.metadata ? { metadata: node.metadata } : {}),
  };
}

/** Envoy's process-wide connection ids (connection.id / connection_id), counted apart from the HTTP listener's. */
let nextConnectionId = 1_000_000_000;

/**
 * A TCP listener: accepts connections on its address and runs each through its network filter chain (Wasm
 * network filters, then tcp_proxy; see TcpProxySession). close() stops accepting and waits for open connections
 * up to the drain time, then closes them.
 */
export class TcpListener {
  readonly stats: TcpStats;
  private readonly server: Server;
  private readonly sessions = new Set<TcpProxySession>();
  private readonly statNames: TcpProxyStatNames;
  private readonly logger: Logger;
  private listenerPrefix: string;
  private boundPort = 0;
  private closing: Promise<void> | null = null;
  private readonly node: ConnectionAttributeConfig['node'];

  constructor(private readonly options: TcpListenerOptions) {
    const cfg = options.config;
    if (options.plugins.length !== cfg.chain.wasmFilters.length) {
      throw new ConfigError(`listener '${cfg.name}': ${cfg.chain.wasmFilters.length} Wasm network filters but ${options.plugins.length} plugins`, cfg.chain.tcpProxy.path);
    }
    this.stats = options.stats ?? new TcpStats();
    this.node = attributeNode(options.node);
    this.statNames = new TcpProxyStatNames(cfg.chain.tcpProxy.statPrefix);
    this.logger = options.logger.child({ component: 'tcp', listener: cfg.name });
    this.listenerPrefix = `listener.${options.statAddress ?? cfg.address}_${cfg.port}.`;
    // allowHalfOpen: a client's end of stream is passed on (tcp_proxy half-close), not answered with a close.
    this.server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.acceptConnection(socket));
  }

  get config(): TcpListenerConfig {
    return this.options.config;
  }

  get plugins(): readonly Plugin[] {
    return this.options.plugins;
  }

  /** The bound port (useful with port_value 0). */
  get port(): number {
    return this.boundPort;
  }

  get activeConnections(): number {
    return this.sessions.size;
  }

  get closed(): boolean {
    return this.closing !== null;
  }

  async start(): Promise<void> {
    const { address, port } = this.options.config;
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, address, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    this.boundPort = (this.server.address() as AddressInfo).port;
    this.listenerPrefix = `listener.${this.options.statAddress ?? address}_${this.boundPort}.`;
    this.logger.info({ address, port: this.boundPort, filters: this.options.plugins.map((p) => p.config.name), cluster: this.options.config.chain.tcpProxy.cluster }, 'tcp listener started');
  }

  /** Serves a connection accepted elsewhere (a worker's forwarded socket) as if this listener had accepted it. */
  acceptConnection(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const cfg = this.options.config;
    this.stats.add(`${this.listenerPrefix}downstream_cx_total`);
    const attributes = new ConnectionAttributes({
      connectionId: nextConnectionId++,
      sourceAddress: socket.remoteAddress ?? '',
      sourcePort: socket.remotePort ?? 0,
      destinationAddress: socket.localAddress ?? '',
      destinationPort: socket.localPort ?? 0,
    }, {
      node: this.node,
      ...(cfg.metadata ? { listenerMetadata: cfg.metadata } : {}),
      listenerDirection: cfg.trafficDirection ?? 0,
      filterChainName: cfg.filterChainName ?? '',
    });
    const session = new TcpProxySession({
      downstream: socket,
      proxy: cfg.chain.tcpProxy,
      plugins: this.options.plugins,
      clusters: this.options.clusters,
      stats: this.stats,
      statNames: this.statNames,
      attributes,
      bufferLimitBytes: cfg.bufferLimitBytes ?? DEFAULT_BUFFER_LIMIT_BYTES,
      logger: this.logger,
    });
    this.sessions.add(session);
    void session.closed.then(() => {
      this.sessions.delete(session);
      this.stats.add(`${this.listenerPrefix}downstream_cx_destroy`);
    });
    session.start();
  }

  /** Stops accepting; open connections get `drainTimeoutMs` to end on their own, then are closed. Idempotent. */
  close(drainTimeoutMs = 0): Promise<void> {
    this.closing ??= (async () => {
      const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
      const all = (): Promise<unknown> => Promise.all([...this.sessions].map((s) => s.closed));
      if (this.sessions.size > 0 && drainTimeoutMs > 0) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([all(), new Promise<void>((resolve) => (timer = setTimeout(resolve, drainTimeoutMs)))]);
        if (timer) clearTimeout(timer);
      }
      for (const s of this.sessions) s.destroy();
      await all();
      await stopped;
    })();
    return this.closing;
  }
}
