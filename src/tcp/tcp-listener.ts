import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Logger } from '../common/logger';
import type { Plugin } from '../runtime/plugin';
import type { EncodedMetadata } from '../runtime/stream-attributes';
import type { NetworkFilterChainConfig } from './network-config';
import { TcpProxyChain, type TcpProxyChainOptions } from './tcp-proxy-chain';
import type { ClusterLookup } from './tcp-proxy-session';
import type { TcpStats } from './tcp-stats';

/** A listener whose one filter chain is network filters ending in tcp_proxy (no HttpConnectionManager). */
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
  readonly node?: TcpProxyChainOptions['node'];
  /** The address `listener.<address>_<port>.` stats are named by (a worker binds loopback; its stats carry the public one). */
  readonly statAddress?: string;
  readonly stats?: TcpStats;
}

/**
 * A TCP listener: a plaintext socket on its address whose connections run through one TcpProxyChain. start()
 * binds; close() stops accepting and drains (see TcpProxyChain.close). The front the tests and the bench use,
 * and what a data plane starts for a listener with a network filter chain.
 */
export class TcpListener {
  readonly chain: TcpProxyChain;
  private readonly server: Server;
  private readonly logger: Logger;
  private boundPort = 0;
  private closing: Promise<void> | null = null;

  constructor(private readonly options: TcpListenerOptions) {
    const cfg = options.config;
    this.logger = options.logger.child({ component: 'tcp', listener: cfg.name });
    this.chain = new TcpProxyChain({
      chain: cfg.chain,
      listener: {
        listenerName: cfg.name,
        ...(cfg.bufferLimitBytes !== undefined ? { bufferLimitBytes: cfg.bufferLimitBytes } : {}),
        ...(cfg.metadata ? { metadata: cfg.metadata } : {}),
        ...(cfg.trafficDirection !== undefined ? { trafficDirection: cfg.trafficDirection } : {}),
        ...(cfg.filterChainName !== undefined ? { filterChainName: cfg.filterChainName } : {}),
      },
      plugins: options.plugins,
      clusters: options.clusters,
      logger: options.logger,
      ...(options.node ? { node: options.node } : {}),
      listenerStatPrefix: `listener.${options.statAddress ?? cfg.address}_${cfg.port}.`,
      ...(options.stats ? { stats: options.stats } : {}),
    });
    // allowHalfOpen: a client's end of stream is passed on (tcp_proxy half-close), not answered with a close.
    this.server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => this.chain.acceptConnection(socket));
  }

  get config(): TcpListenerConfig {
    return this.options.config;
  }

  get plugins(): readonly Plugin[] {
    return this.options.plugins;
  }

  get stats(): TcpStats {
    return this.chain.stats;
  }

  /** The bound port (useful with port_value 0). */
  get port(): number {
    return this.boundPort;
  }

  get activeConnections(): number {
    return this.chain.activeConnections;
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
    this.chain.bound(this.options.statAddress ?? address, this.boundPort);
    this.logger.info({ address, port: this.boundPort, filters: this.options.plugins.map((p) => p.config.name), cluster: this.options.config.chain.tcpProxy.cluster }, 'tcp listener started');
  }

  /** Serves a connection accepted elsewhere (a worker's forwarded socket) as if this listener had accepted it. */
  acceptConnection(socket: Socket): void {
    this.chain.acceptConnection(socket);
  }

  /** Stops accepting; open connections get `drainTimeoutMs` to end on their own, then are closed. Idempotent. */
  close(drainTimeoutMs = 0): Promise<void> {
    this.closing ??= (async () => {
      const stopped = new Promise<void>((resolve) => this.server.close(() => resolve()));
      await this.chain.close(drainTimeoutMs);
      await stopped;
    })();
    return this.closing;
  }
}
