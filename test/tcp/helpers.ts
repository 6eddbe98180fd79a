import { once } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import pino, { type Logger } from 'pino';
import { bootstrapFromJson } from '../../src/config/bootstrap';
import { SharedDataStore } from '../../src/services/shared-data';
import { SharedQueueRegistry } from '../../src/services/shared-queue';
import { MetricsRegistry } from '../../src/services/metrics';
import type { HostServices } from '../../src/abi/host-services';
import { ClusterManager } from '../../src/upstream/cluster-manager';
import { loadFilterPlugin } from '../../src/workers/data-plane';
import type { Plugin } from '../../src/runtime/plugin';
import { NETWORK_WASM_TYPE, TCP_PROXY_TYPE, parseNetworkFilterChain } from '../../src/tcp/network-config';
import { TcpListener } from '../../src/tcp/tcp-listener';
import { pluginPath } from '../support/plugins';

export interface NetworkFilterSpec {
  /** build/plugins/<plugin>.wasm */
  readonly plugin: string;
  readonly name: string;
  readonly rootId: string;
  readonly configuration?: string;
  /** PluginConfig.failure_policy. */
  readonly failurePolicy?: 'FAIL_OPEN' | 'FAIL_CLOSED' | 'FAIL_RELOAD';
}

/** A Wasm network filter as proto3 JSON (configuration as a StringValue, as Istio and Higress send it). */
export function wasmNetworkFilter(f: NetworkFilterSpec): Record<string, unknown> {
  return {
    name: 'envoy.filters.network.wasm',
    typed_config: {
      '@type': NETWORK_WASM_TYPE,
      config: {
        name: f.name,
        root_id: f.rootId,
        vm_config: { runtime: 'envoy.wasm.runtime.v8', code: { local: { filename: pluginPath(f.plugin) } } },
        ...(f.configuration !== undefined ? { configuration: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: f.configuration } } : {}),
        ...(f.failurePolicy ? { failure_policy: f.failurePolicy } : {}),
      },
    },
  };
}

export function tcpProxyFilter(cluster: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { name: 'envoy.filters.network.tcp_proxy', typed_config: { '@type': TCP_PROXY_TYPE, stat_prefix: 'tcp_test', cluster, ...extra } };
}

export interface PluginLog {
  readonly plugin: string;
  readonly level: string;
  readonly message: string;
}

export interface ProxyOptions {
  readonly filters?: readonly NetworkFilterSpec[];
  /** The upstream the cluster `backend` points to. */
  readonly upstreamPort: number;
  readonly tcpProxy?: Record<string, unknown>;
  /** Extra fields of the `backend` cluster (e.g. transport_socket, connect_timeout). */
  readonly cluster?: Record<string, unknown>;
  readonly clusterName?: string;
  readonly bufferLimitBytes?: number;
}

export interface BuiltTcpListener {
  readonly listener: TcpListener;
  readonly plugins: readonly Plugin[];
  readonly services: HostServices;
  readonly clusters: ClusterManager;
}

/**
 * A TcpListener on 127.0.0.1:0 (not started) as a data plane builds one: the chain parsed from proto3 JSON, the
 * plugins loaded with loadFilterPlugin, the cluster `backend` (STATIC, 127.0.0.1:upstreamPort) in a real
 * ClusterManager. The tests and the TCP bench build theirs here.
 */
export async function buildTcpListener(options: ProxyOptions, logger: Logger): Promise<BuiltTcpListener> {
  const name = options.clusterName ?? 'backend';
  const bootstrap = bootstrapFromJson({
    static_resources: {
      clusters: [{
        name,
        type: 'STATIC',
        connect_timeout: '2s',
        load_assignment: {
          cluster_name: name,
          endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: options.upstreamPort } } } }] }],
        },
        ...options.cluster,
      }],
    },
  });
  const clusters = new ClusterManager({ logger });
  for (const c of bootstrap.staticClusters) clusters.addOrUpdateCluster(c);
  const filters = [...(options.filters ?? []).map(wasmNetworkFilter), tcpProxyFilter('backend', options.tcpProxy)];
  const chain = parseNetworkFilterChain(filters, 'listener.filter_chains[0].filters');
  const services: HostServices = {
    sharedData: new SharedDataStore(),
    sharedQueues: new SharedQueueRegistry(),
    metrics: new MetricsRegistry(),
    logLevel: () => 0,
  };
  const plugins: Plugin[] = [];
  for (const f of chain.wasmFilters) plugins.push(await loadFilterPlugin(f, services, logger));
  const listener = new TcpListener({
    config: { name: 'tcp-test', address: '127.0.0.1', port: 0, chain, ...(options.bufferLimitBytes ? { bufferLimitBytes: options.bufferLimitBytes } : {}) },
    plugins,
    clusters,
    logger,
  });
  return { listener, plugins, services, clusters };
}

/** A TCP listener on 127.0.0.1:0 with real plugins and a real ClusterManager, and what they logged. */
export class TestProxy {
  private constructor(
    readonly logs: readonly PluginLog[],
    readonly hostLogs: ReadonlyArray<Record<string, unknown>>,
    readonly listener: TcpListener,
    readonly plugins: readonly Plugin[],
    readonly services: HostServices,
    readonly clusters: ClusterManager,
  ) {}

  static async start(options: ProxyOptions): Promise<TestProxy> {
    const logs: PluginLog[] = [];
    const hostLogs: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString('utf8').split('\n')) {
          if (!line) continue;
          const rec = JSON.parse(line) as Record<string, unknown>;
          if (typeof rec['wasm_level'] === 'string') logs.push({ plugin: String(rec['plugin'] ?? ''), level: rec['wasm_level'], message: String(rec['msg'] ?? '') });
          else hostLogs.push(rec);
        }
        cb();
      },
    });
    const built = await buildTcpListener(options, pino({ level: 'debug' }, sink));
    await built.listener.start();
    return new TestProxy(logs, hostLogs, built.listener, built.plugins, built.services, built.clusters);
  }

  get port(): number {
    return this.listener.port;
  }

  connect(): Promise<Socket> {
    const s = connect({ host: '127.0.0.1', port: this.port, allowHalfOpen: true });
    return once(s, 'connect').then(() => s);
  }

  /** Plugin log lines starting with `prefix` (e.g. `cb `), in order. */
  lines(prefix: string, plugin?: string): string[] {
    return this.logs.filter((l) => l.message.startsWith(prefix) && (plugin === undefined || l.plugin === plugin)).map((l) => l.message);
  }

  counter(name: string): number {
    return this.listener.stats.get(name);
  }

  metric(name: string): bigint | undefined {
    return this.services.metrics.all().find((m) => m.name === name)?.value;
  }

  async close(): Promise<void> {
    await this.listener.close();
    for (const p of this.plugins) p.close();
    this.clusters.close();
  }
}

/** What an upstream server saw of one connection. */
export class UpstreamConnection {
  private readonly chunks: Buffer[] = [];
  /** Bytes received so far. */
  bytes = 0;
  /** The proxy half-closed (end of stream arrived). */
  ended = false;
  closed = false;
  constructor(readonly socket: Socket) {}

  add(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.bytes += chunk.length;
  }

  get received(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

/**
 * A TCP upstream on 127.0.0.1:0 (half-open allowed). `echo`: everything received is sent back, and the end of
 * stream is echoed too (the server ends when the proxy does).
 */
export class TestUpstream {
  private constructor(
    private readonly server: Server,
    readonly connections: readonly UpstreamConnection[],
  ) {}

  static async start(options: { echo?: boolean; onConnection?: (c: UpstreamConnection) => void } = {}): Promise<TestUpstream> {
    const connections: UpstreamConnection[] = [];
    const server = createServer({ allowHalfOpen: true }, (socket) => {
      const c = new UpstreamConnection(socket);
      connections.push(c);
      socket.on('data', (d: Buffer) => {
        c.add(d);
        if (options.echo) socket.write(d);
      });
      socket.on('end', () => {
        c.ended = true;
        if (options.echo) socket.end();
      });
      socket.on('error', () => {});
      socket.on('close', () => (c.closed = true));
      options.onConnection?.(c);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return new TestUpstream(server, connections);
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    for (const c of this.connections) c.socket.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** Reads from `socket` until `n` bytes arrived (or the end), returning what came. */
export function readBytes(socket: Socket, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      got = Buffer.concat([got, d]);
      if (got.length >= n) finish();
    };
    const finish = (): void => {
      socket.off('data', onData);
      socket.off('end', finish);
      socket.off('error', reject);
      resolve(got);
    };
    socket.on('data', onData);
    socket.once('end', finish);
    socket.once('error', reject);
  });
}

/**
 * Resolves with everything the socket receives until the other side ends or closes it (the test clients are
 * half-open, so a close from the proxy shows as the end of stream); the socket is then closed.
 */
export function readAll(socket: Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const done = (): void => {
      socket.destroy();
      resolve(Buffer.concat(chunks));
    };
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => {});
    socket.once('end', done);
    socket.once('close', done);
  });
}
