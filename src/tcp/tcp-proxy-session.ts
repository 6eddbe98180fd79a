import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { PeerType, StreamType } from '../abi/enums';
import type { Logger } from '../common/logger';
import type { Plugin } from '../runtime/plugin';
import { clusterStatName } from '../observability/stats';
import { upstreamTlsConnectOptions } from '../tls/tls-context';
import type { LiveCluster } from '../upstream/cluster-manager';
import type { ConnectionAttributes } from './connection-attributes';
import type { TcpProxyConfig } from './network-config';
import { TcpProxyStatNames, UpstreamCxStatNames, type TcpStats } from './tcp-stats';
import { WasmNetworkFilter, type NetworkDataResult, type NetworkFilterCallbacks } from './wasm-network-filter';

const EMPTY = Buffer.alloc(0);
const DELAYED_CLOSE_MS = 1000;

/** Clusters by name (the ClusterManager, or a worker's view of it). */
export interface ClusterLookup {
  get(name: string): LiveCluster | undefined;
}

export interface TcpProxySessionOptions {
  readonly downstream: Socket;
  readonly proxy: TcpProxyConfig;
  /** One per Wasm network filter, in listener order. */
  readonly plugins: readonly Plugin[];
  readonly clusters: ClusterLookup;
  readonly stats: TcpStats;
  readonly statNames: TcpProxyStatNames;
  readonly attributes: ConnectionAttributes;
  /** Listener.per_connection_buffer_limit_bytes: data held by a stopped filter past it stops reading that side. */
  readonly bufferLimitBytes: number;
  readonly logger: Logger;
}

/**
 * Data on its way in one direction: what a stopped filter (or a not yet connected upstream) holds, Envoy's
 * connection buffer. Each arrival restarts iteration at the first filter with everything held (Envoy's
 * onContinueReading from the top), so a filter's data size is the total not yet passed on.
 */
class Flow {
  pending: Buffer = EMPTY;
  /** The source ended (end_stream), not yet passed to the sink. */
  endStream = false;
  /** End of stream was passed to the sink. */
  delivered = false;
  /** Position in this direction's filter order of the filter holding the data; the filter count: the sink. -1: none. */
  heldAt = -1;
  constructor(readonly direction: 'downstream' | 'upstream') {}
}

type PauseReason = 'connecting' | 'backpressure' | 'buffer_limit';

/**
 * One downstream connection through envoy.filters.network.wasm filters and envoy.filters.network.tcp_proxy, in
 * Envoy's order: the Wasm filters' proxy_on_new_connection, then (all continued) the tcp_proxy picks a host of
 * its cluster through the load balancer and connects (TLS when the cluster has an UpstreamTlsContext); the
 * downstream is not read until the upstream is connected (Envoy disables reading meanwhile). Reads pass the Wasm
 * filters in listener order, writes in reverse; a filter that stops holds the data until it continues (more
 * data, or proxy_continue_stream). Half-close propagates both ways (end of stream); the connection closes when
 * both directions have ended, on the idle timeout, when the upstream fails, or when a plugin closes it.
 */
export class TcpProxySession implements NetworkFilterCallbacks {
  private readonly ds: Socket;
  private us: Socket | undefined;
  private upstreamState: 'idle' | 'connecting' | 'connected' | 'closed' = 'idle';
  private readonly filters: WasmNetworkFilter[] = [];
  private readonly read = new Flow('downstream');
  private readonly write = new Flow('upstream');
  /** The filter (index) that stopped at proxy_on_new_connection; the tcp_proxy has not started yet. */
  private newConnectionHeldAt = -1;
  private proxyStarted = false;
  /** We closed the downstream (plugin, idle timeout, upstream failure): its close is LOCAL. */
  private localClose = false;
  private downstreamClosed = false;
  private readonly dsPaused = new Set<PauseReason>();
  private readonly usPaused = new Set<PauseReason>();
  private idleTimer: NodeJS.Timeout | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private upstreamStats: UpstreamCxStatNames | undefined;
  private upstreamError: Error | undefined;
  private readonly logger: Logger;
  private closedResolve!: () => void;
  /** Resolves once the downstream and the upstream are both closed. */
  readonly closed: Promise<void>;

  constructor(private readonly options: TcpProxySessionOptions) {
    this.ds = options.downstream;
    this.logger = options.logger;
    this.closed = new Promise((resolve) => (this.closedResolve = resolve));
  }

  /** Runs the connection: call once, right after accept. */
  start(): void {
    const ds = this.ds;
    const { stats, statNames } = this.options;
    stats.add(statNames.cxTotal);
    // Half-close: the client's end of stream is passed on, whatever the accepting server's default was.
    ds.allowHalfOpen = true;
    ds.setNoDelay(true);
    ds.on('data', (chunk: Buffer) => this.onDownstreamData(chunk));
    ds.on('end', () => this.onDownstreamEnd());
    ds.on('error', (err) => this.logger.debug({ err: err.message, connection: this.options.attributes.connectionId }, 'downstream connection error'));
    ds.on('close', () => this.onDownstreamClose());
    // Nothing is read before the chain allows it: the upstream connected, or a filter waiting at new connection.
    this.pauseDownstream('connecting');
    for (const plugin of this.options.plugins) {
      const f = WasmNetworkFilter.create(plugin, this);
      if (f) this.filters.push(f);
    }
    this.iterateNewConnection(0);
  }

  get activeFilters(): readonly WasmNetworkFilter[] {
    return this.filters;
  }

  // ---------- NetworkFilterCallbacks ----------

  property(path: readonly string[]): ReturnType<NetworkFilterCallbacks['property']> {
    return this.options.attributes.get(path);
  }

  continueStream(filter: WasmNetworkFilter, type: StreamType.Downstream | StreamType.Upstream): void {
    if (this.closing) return;
    const index = this.filters.indexOf(filter);
    if (index < 0) return;
    if (this.newConnectionHeldAt === index && !this.proxyStarted) {
      this.newConnectionHeldAt = -1;
      this.iterateNewConnection(index + 1);
      return;
    }
    const readPos = index;
    const writePos = this.filters.length - 1 - index;
    const readHeld = this.read.heldAt === readPos;
    const writeHeld = this.write.heldAt === writePos;
    // The named direction; the Go SDK's ContinueTcpStream names Downstream for either, so a lone held upstream resumes too.
    if (type === StreamType.Upstream ? writeHeld : readHeld) this.resume(type === StreamType.Upstream ? this.write : this.read, filter);
    else if (type === StreamType.Downstream && writeHeld) this.resume(this.write, filter);
  }

  closeConnection(_filter: WasmNetworkFilter, reason: string): void {
    this.closeDownstream(true, reason);
  }

  // ---------- the chain ----------

  private get closing(): boolean {
    return this.localClose || this.downstreamClosed;
  }

  private iterateNewConnection(from: number): void {
    for (let i = from; i < this.filters.length; i++) {
      const status = this.filters[i]!.newConnection();
      if (this.closing) return;
      if (status === 'stop') {
        this.newConnectionHeldAt = i;
        // Envoy reads meanwhile: the filters see the data while the tcp_proxy has not started.
        this.resumeDownstream('connecting');
        return;
      }
    }
    this.startProxy();
  }

  private resume(flow: Flow, filter: WasmNetworkFilter): void {
    flow.pending = filter.heldData(flow.direction) ?? flow.pending;
    filter.release(flow.direction);
    this.iterate(flow, flow.heldAt + 1);
  }

  /** Passes the flow's data through its filters from position `from`, then to its sink. */
  private iterate(flow: Flow, from: number): void {
    const n = this.filters.length;
    for (let pos = from; pos < n; pos++) {
      // Envoy calls a filter only with data or the end of stream.
      if (flow.pending.length === 0 && !flow.endStream) {
        flow.heldAt = -1;
        return;
      }
      if (flow.delivered) return;
      const filter = flow === this.read ? this.filters[pos]! : this.filters[n - 1 - pos]!;
      const r: NetworkDataResult = flow === this.read ? filter.downstreamData(flow.pending, flow.endStream) : filter.upstreamData(flow.pending, flow.endStream);
      flow.pending = r.data;
      if (this.closing) return;
      if (r.status === 'stop') {
        flow.heldAt = pos;
        this.applyBufferLimit(flow);
        return;
      }
    }
    flow.heldAt = -1;
    if (flow === this.read) {
      if (!this.proxyStarted) this.startProxy(); // a Continue past every filter starts the tcp_proxy (Envoy initializes it then)
      if (this.upstreamState !== 'connected') {
        flow.heldAt = n;
        return;
      }
    }
    this.deliver(flow);
    this.applyBufferLimit(flow);
  }

  /** The sink: the upstream socket for reads, the downstream socket for writes. */
  private deliver(flow: Flow): void {
    const toUpstream = flow === this.read;
    const sock = toUpstream ? this.us! : this.ds;
    const { stats } = this.options;
    const data = flow.pending;
    flow.pending = EMPTY;
    flow.heldAt = -1;
    if (data.length > 0) {
      if (toUpstream) stats.add(this.upstreamStats!.txBytes, data.length);
      else stats.add(this.options.statNames.txBytes, data.length);
      this.touch();
      sock.write(data);
      // Flow control at Envoy's high watermark (the buffer limit): past it, stop reading the other side until
      // this one drains. Below it the other side keeps being read, so its close is seen.
      if (sock.writableLength > this.options.bufferLimitBytes) {
        if (toUpstream) this.pauseDownstream('backpressure');
        else this.pauseUpstream('backpressure');
      }
    }
    if (flow.endStream && !flow.delivered) {
      flow.delivered = true;
      sock.end();
    }
  }

  private applyBufferLimit(flow: Flow): void {
    const over = flow.pending.length >= this.options.bufferLimitBytes;
    if (flow === this.read) {
      if (over) this.pauseDownstream('buffer_limit');
      else this.resumeDownstream('buffer_limit');
    } else if (over) this.pauseUpstream('buffer_limit');
    else this.resumeUpstream('buffer_limit');
  }

  // ---------- downstream ----------

  private onDownstreamData(chunk: Buffer): void {
    if (this.closing) return;
    this.options.stats.add(this.options.statNames.rxBytes, chunk.length);
    this.touch();
    const flow = this.read;
    flow.pending = flow.pending.length === 0 ? chunk : Buffer.concat([flow.pending, chunk]);
    if (flow.heldAt === this.filters.length) return; // waiting for the upstream; it gets everything once connected
    this.iterate(flow, 0);
  }

  private onDownstreamEnd(): void {
    if (this.closing) return;
    this.read.endStream = true;
    if (this.read.heldAt === this.filters.length) return;
    this.iterate(this.read, 0);
  }

  private onDownstreamClose(): void {
    this.downstreamClosed = true;
    this.clearTimers();
    const peer = this.localClose ? PeerType.Local : PeerType.Remote;
    for (const f of this.filters) f.downstreamConnectionClose(peer);
    const us = this.us;
    if (us && !us.destroyed) {
      if (peer === PeerType.Remote && this.upstreamState === 'connected') {
        // Envoy closes the upstream with FlushWrite: what is still queued for it is sent first.
        if (us.writableLength > 0) {
          this.options.stats.add(this.options.statNames.upstreamFlush);
          // Envoy's drainer keeps the idle timeout on a flushing upstream.
          const idle = this.options.proxy.idleTimeoutMs;
          if (idle > 0) setTimeout(() => us.destroy(), idle).unref();
        }
        us.end(() => us.destroy());
      } else {
        us.destroy();
      }
    }
    this.maybeClosed();
  }

  /** Closes the downstream connection from this side: `flush` sends what is queued first (Envoy FlushWrite). */
  private closeDownstream(flush: boolean, reason: string): void {
    if (this.closing) return;
    this.localClose = true;
    this.logger.debug({ connection: this.options.attributes.connectionId, reason }, 'closing downstream connection');
    this.clearTimers();
    this.us?.pause();
    const ds = this.ds;
    if (flush && !ds.destroyed && ds.writable) {
      ds.end(() => ds.destroy());
      // Envoy's delayed_close_timeout (1 s): a peer that reads nothing does not keep the connection open.
      setTimeout(() => ds.destroy(), DELAYED_CLOSE_MS).unref();
    } else {
      ds.destroy();
    }
    // The upstream goes now: Envoy's LocalClose closes it without flushing.
    if (this.us && !this.us.destroyed) this.us.destroy();
  }

  // ---------- upstream ----------

  private startProxy(): void {
    if (this.proxyStarted) return;
    this.proxyStarted = true;
    const { proxy, clusters, stats, statNames } = this.options;
    const cluster = clusters.get(proxy.cluster);
    if (!cluster) {
      stats.add(statNames.noRoute);
      this.closeDownstream(false, `no cluster ${proxy.cluster}`);
      return;
    }
    this.options.attributes.cluster(cluster.name);
    const names = (this.upstreamStats = new UpstreamCxStatNames(clusterStatName(cluster.config)));
    const host = cluster.chooseHost();
    if (!host) {
      stats.add(names.noneHealthy);
      this.options.attributes.upstreamFailure('no healthy upstream');
      this.closeDownstream(false, 'no healthy upstream');
      return;
    }
    stats.add(names.total);
    this.upstreamState = 'connecting';
    this.pauseDownstream('connecting');
    const tls = cluster.config.tls;
    // Half-open both ways (tcp_proxy half-close); TLS runs over such a socket.
    const raw = netConnect({ host: host.address, port: host.port, allowHalfOpen: true, noDelay: true });
    const us = tls ? tlsConnect({ socket: raw, ...upstreamTlsConnectOptions(tls) }) : raw;
    if (tls) raw.on('error', (err) => (this.upstreamError ??= err));
    this.us = us;
    us.on(tls ? 'secureConnect' : 'connect', () => this.onUpstreamConnected(host.key));
    us.on('data', (chunk: Buffer) => this.onUpstreamData(chunk));
    us.on('end', () => this.onUpstreamEnd());
    us.on('drain', () => this.resumeDownstream('backpressure'));
    us.on('error', (err) => {
      this.upstreamError ??= err;
    });
    us.on('close', () => this.onUpstreamClose());
    const timeout = cluster.config.connectTimeoutMs;
    if (timeout > 0) {
      this.connectTimer = setTimeout(() => {
        this.connectTimer = undefined;
        if (this.upstreamState !== 'connecting') return;
        stats.add(names.connectTimeout);
        this.upstreamError = new Error('connect timeout');
        us.destroy();
      }, timeout);
    }
  }

  private onUpstreamConnected(hostKey: string): void {
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    if (this.closing) return;
    this.upstreamState = 'connected';
    this.us!.setNoDelay(true);
    this.options.attributes.upstreamHost(hostKey);
    const idle = this.options.proxy.idleTimeoutMs;
    if (idle > 0) this.idleTimer = setTimeout(() => this.onIdleTimeout(), idle);
    if (this.read.heldAt === this.filters.length) this.deliver(this.read);
    this.resumeDownstream('connecting');
  }

  private onUpstreamData(chunk: Buffer): void {
    if (this.closing) return;
    this.options.stats.add(this.upstreamStats!.rxBytes, chunk.length);
    this.touch();
    const flow = this.write;
    flow.pending = flow.pending.length === 0 ? chunk : Buffer.concat([flow.pending, chunk]);
    this.iterate(flow, 0);
  }

  private onUpstreamEnd(): void {
    if (this.closing) return;
    this.write.endStream = true;
    this.iterate(this.write, 0);
  }

  private onUpstreamClose(): void {
    const wasConnected = this.upstreamState === 'connected';
    this.upstreamState = 'closed';
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    if (!this.closing) {
      if (!wasConnected) {
        // Envoy: the connect failed; the downstream is closed without flushing.
        if (this.upstreamStats) this.options.stats.add(this.upstreamStats.connectFail);
        this.options.attributes.upstreamFailure(describeConnectFailure(this.upstreamError));
        this.closeDownstream(false, `upstream connect failed: ${this.upstreamError?.message ?? 'closed'}`);
      } else if (!(this.write.delivered && this.read.delivered)) {
        // The upstream went away (reset, or closed before both directions ended): Envoy closes the downstream with FlushWrite.
        this.closeDownstream(true, `upstream closed${this.upstreamError ? `: ${this.upstreamError.message}` : ''}`);
      }
    }
    this.maybeClosed();
  }

  private onIdleTimeout(): void {
    this.idleTimer = undefined;
    if (this.closing) return;
    this.options.stats.add(this.options.statNames.idleTimeout);
    this.closeDownstream(false, 'idle timeout');
  }

  // ---------- flow control, timers ----------

  private touch(): void {
    this.idleTimer?.refresh();
  }

  private pauseDownstream(reason: PauseReason): void {
    if (this.dsPaused.has(reason)) return;
    this.dsPaused.add(reason);
    if (reason !== 'connecting') this.options.stats.add(this.options.statNames.pausedReading);
    this.ds.pause();
  }

  private resumeDownstream(reason: PauseReason): void {
    if (!this.dsPaused.delete(reason)) return;
    if (reason !== 'connecting') this.options.stats.add(this.options.statNames.resumedReading);
    if (this.dsPaused.size === 0 && !this.closing) this.ds.resume();
  }

  private pauseUpstream(reason: PauseReason): void {
    if (this.usPaused.has(reason)) return;
    this.usPaused.add(reason);
    this.us?.pause();
    if (reason === 'backpressure') this.ds.once('drain', () => this.resumeUpstream('backpressure'));
  }

  private resumeUpstream(reason: PauseReason): void {
    if (!this.usPaused.delete(reason)) return;
    if (this.usPaused.size === 0 && !this.closing) this.us?.resume();
  }

  private clearTimers(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
  }

  private maybeClosed(): void {
    if (this.downstreamClosed && (this.us === undefined || this.us.destroyed || this.upstreamState === 'closed')) this.closedResolve();
    else if (this.downstreamClosed && this.us) this.us.once('close', () => this.closedResolve());
  }

  /** Ends the connection now, a flushing upstream included (listener shutdown past its drain time). */
  destroy(): void {
    this.closeDownstream(false, 'listener closed');
    this.us?.destroy();
  }
}

/** Envoy's upstream transport failure reason words for a failed connect. */
function describeConnectFailure(err: Error | undefined): string {
  const code = (err as (Error & { code?: string }) | undefined)?.code;
  if (code === 'ECONNREFUSED') return 'delayed connect error: 111';
  if (err?.message === 'connect timeout') return 'connect timeout';
  return err?.message ?? 'connection failure';
}
