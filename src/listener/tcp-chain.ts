import type { Socket } from 'node:net';
import type { Logger } from '../common/logger';
import type { FilterChainConfig, ListenerConfig } from '../http/listener-config';
import type { HttpListenerOptions, ListenerChain } from '../http/listener';
import type { UpstreamPools } from '../http/upstream-pools';
import type { Plugin } from '../runtime/plugin';
import type { NetworkFilterChainConfig } from '../tcp/network-config';
import { TcpProxyChain } from '../tcp/tcp-proxy-chain';

/**
 * A listener's filter chain of Wasm network filters then tcp_proxy (src/tcp/), as one of the chains a listener
 * matches connections to. Plaintext only: the listener config refuses a transport socket on such a chain.
 */
export class TcpChain implements ListenerChain {
  private readonly chain: TcpProxyChain;

  constructor(
    readonly config: FilterChainConfig,
    tcp: NetworkFilterChainConfig,
    private readonly options: {
      readonly listener: ListenerConfig;
      readonly plugins: readonly Plugin[];
      readonly pools: UpstreamPools;
      readonly logger: Logger;
      readonly node?: HttpListenerOptions['node'];
      readonly statAddress: string;
    },
  ) {
    const l = options.listener;
    this.chain = new TcpProxyChain({
      chain: tcp,
      listener: { listenerName: l.name, bufferLimitBytes: l.bufferLimitBytes, metadata: l.metadata, trafficDirection: l.trafficDirection, filterChainName: config.name },
      plugins: options.plugins,
      clusters: { get: (name) => options.pools.cluster(name) },
      logger: options.logger,
      ...(options.node ? { node: options.node } : {}),
    });
  }

  get match(): FilterChainConfig['match'] {
    return this.config.match;
  }

  get activeStreams(): number {
    return 0;
  }

  get connections(): number {
    return this.chain.activeConnections;
  }

  /** Envoy's HCM drain_timeout default; a tcp_proxy has no drain of its own beyond the listener's. */
  get drainTimeoutMs(): number {
    return 5000;
  }

  serve(socket: Socket, inspected = false): void {
    // The inspector left it paused; data flows from the next tick, after the session has set itself up (and
    // may pause it again for flow control).
    if (inspected) socket.resume();
    this.chain.acceptConnection(socket);
  }

  bound(port: number): void {
    this.chain.bound(this.options.statAddress, port);
  }

  counters(): Record<string, number> {
    return this.chain.stats.snapshot();
  }

  drain(drainTimeoutMs: number): Promise<void> {
    return this.chain.close(drainTimeoutMs);
  }

  close(drainTimeoutMs = 0): Promise<void> {
    return this.chain.close(drainTimeoutMs);
  }

  destroy(): Promise<void> {
    return this.chain.close(0);
  }
}
