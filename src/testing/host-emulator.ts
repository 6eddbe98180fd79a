import { Writable } from 'node:stream';
import pino from 'pino';
import type { Logger } from '../common/logger';
import { LogLevel, StreamType } from '../abi/enums';
import type { HostServices } from '../abi/host-services';
import type { HeaderPairs } from '../abi/pairs';
import type { PropertyValue } from '../abi/properties';
import type { LocalResponse, StreamHost } from '../abi/stream-state';
import { MetricsRegistry, type PluginMetric } from '../services/metrics';
import { SharedDataStore } from '../services/shared-data';
import { SharedQueueRegistry } from '../services/shared-queue';
import type { RedisService } from '../services/redis';
import { RedisClusters } from './redis-clusters';
import type { HttpCalloutService } from '../services/http-callout';
import { getHeader } from '../common/headers';
import { streamAttribute, wasmLocalReplyDetails } from '../runtime/stream-attributes';
import { Plugin, type PluginCode, type PluginConfig } from '../runtime/plugin';
import type { DataAction, HeadersAction, HttpStream, TrailersAction } from '../runtime/http-stream';

/**
 * A library API for testing a plugin without Envoy, for plugins in any language (in the spirit of
 * proxy-wasm-go-sdk's proxytest HostEmulator and Higress wasm-go pkg/test): load a compiled plugin with its
 * configuration, drive HTTP streams, and read back actions, mutated headers and bodies, local responses, logs,
 * metrics and shared data. Redis and HTTP callouts go to whatever services you pass (a real RedisPoolManager,
 * or your own implementation of the interface).
 */

export interface EmulatorLog {
  readonly level: string;
  readonly plugin: string;
  readonly message: string;
}

export interface HostEmulatorOptions extends Omit<PluginConfig, 'name'> {
  readonly name?: string;
  readonly redis?: RedisService;
  /**
   * Redis for the plugin from cluster name (as the plugin passes it to proxy_redis_init) to `redis://host:port`,
   * over the sidecar's own pools; closed with the emulator. A cluster the plugin asks for that is not here is an
   * error in `hostLogs` that names it and the clusters there are.
   */
  readonly redisClusters?: Readonly<Record<string, string>>;
  readonly httpCallout?: HttpCalloutService;
  /** proxy_get_log_level answer; default TRACE. */
  readonly logLevel?: LogLevel;
  /** Share services between emulators (e.g. two VMs with the same vm_id). */
  readonly shared?: { sharedData: SharedDataStore; sharedQueues: SharedQueueRegistry; metrics: MetricsRegistry };
}

/** One host function call the plugin made, with the status the host returned. */
export interface HostCallRecord {
  readonly name: string;
  readonly result: number | undefined;
}

export interface StreamOptions {
  /** Extra properties the stream answers (`route_name`, `cluster_name`, `source.address`, ...), by dotted path. */
  readonly properties?: Readonly<Record<string, PropertyValue>>;
}

export class HostEmulator {
  private constructor(
    readonly plugin: Plugin,
    readonly services: HostServices,
    /** proxy_log and WASI stdout/stderr lines, in order. */
    readonly logs: readonly EmulatorLog[],
    /** Every host function call, in order (the calls the plugin made). */
    readonly hostCalls: readonly HostCallRecord[],
    /** The host's own log records about this plugin (VM failures, refused calls), as pino JSON objects. */
    readonly hostLogs: ReadonlyArray<Readonly<Record<string, unknown>>>,
  ) {}

  static async load(code: PluginCode, options: HostEmulatorOptions = {}): Promise<HostEmulator> {
    const logs: EmulatorLog[] = [];
    const hostCalls: HostCallRecord[] = [];
    const hostLogs: Array<Record<string, unknown>> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString('utf8').split('\n')) {
          if (!line) continue;
          const rec = JSON.parse(line) as { wasm_level?: string; level: number; plugin?: string; msg?: string };
          if (rec.wasm_level) logs.push({ level: rec.wasm_level, plugin: rec.plugin ?? '', message: rec.msg ?? '' });
          else hostLogs.push(rec);
        }
        cb();
      },
    });
    const logger: Logger = pino({ level: 'trace' }, sink);
    const ownedRedis = options.redisClusters ? new RedisClusters(options.redisClusters, logger) : undefined;
    const redis = options.redis ?? (ownedRedis ? explainUnknown(ownedRedis, Object.keys(options.redisClusters!), logger) : missingRedis(logger));
    const shared = options.shared ?? { sharedData: new SharedDataStore(), sharedQueues: new SharedQueueRegistry(), metrics: new MetricsRegistry() };
    const services: HostServices = {
      ...shared,
      redis,
      ...(options.httpCallout ? { httpCallout: options.httpCallout } : {}),
      logLevel: () => options.logLevel ?? LogLevel.Trace,
      onHostCall: (name, result) => void hostCalls.push({ name, result }),
    };
    const plugin = await Plugin.load(code, { ...options, name: options.name ?? 'test-plugin' }, { services, logger });
    const host = new HostEmulator(plugin, services, logs, hostCalls, hostLogs);
    host.ownedRedis = ownedRedis;
    return host;
  }

  /** Waits for pending log writes and deferred deliveries (Redis replies, queue wake-ups) of the current tick. */
  async settle(): Promise<void> {
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
  }

  logMessages(level?: string): string[] {
    return this.logs.filter((l) => level === undefined || l.level === level).map((l) => l.message);
  }

  metric(name: string): PluginMetric | undefined {
    return this.services.metrics.all().find((m) => m.name === name);
  }

  sharedData(key: string): Buffer | undefined {
    return this.services.sharedData.get(this.plugin.config.vmId, key)?.value;
  }

  /** Opens an HTTP stream through the plugin. */
  stream(options: StreamOptions = {}): EmulatedStream {
    return new EmulatedStream(this.plugin, options);
  }

  /** Fires the root context's tick once (as the timer would). */
  tick(): void {
    const root = this.plugin.root;
    this.plugin.vm.callGuest(root, 'proxy_on_tick', root.id);
  }

  private ownedRedis: RedisClusters | undefined;

  /** Closes the plugin, and the Redis pools of `redisClusters` (their close completes in the background). */
  close(): void {
    this.plugin.close();
    void this.ownedRedis?.close();
  }
}

/** Stands in when no Redis was given: every use is an error that says what to pass. */
function missingRedis(logger: Logger): RedisService {
  const refuse = (upstream: string): { status: 'unknown_cluster' } => {
    logger.error({ cluster: upstream.split('?')[0] }, `the plugin uses Redis cluster '${upstream.split('?')[0]}' but this HostEmulator has no Redis: pass redisClusters: { '<cluster>': 'redis://host:port' } (or redis: a RedisService)`);
    return { status: 'unknown_cluster' };
  };
  return { init: (_o, r) => refuse(r.upstream), call: (_o, upstream) => refuse(upstream), release: () => undefined };
}

/** RedisClusters, with an error naming the known clusters whenever the plugin asks for another. */
function explainUnknown(clusters: RedisClusters, known: readonly string[], logger: Logger): RedisService {
  const explain = (upstream: string): void => {
    logger.error({ cluster: upstream.split('?')[0] }, `Redis cluster '${upstream.split('?')[0]}' is not in redisClusters (${known.map((k) => `'${k}'`).join(', ') || 'none'})`);
  };
  return {
    init: (owner, request) => {
      const outcome = clusters.init(owner, request);
      if (outcome.status === 'unknown_cluster') explain(request.upstream);
      return outcome;
    },
    call: (owner, upstream, query, onReply) => {
      const outcome = clusters.call(owner, upstream, query, onReply);
      if (outcome.status === 'unknown_cluster') explain(upstream);
      return outcome;
    },
    release: (owner) => clusters.release(owner),
  };
}

/** One HTTP stream as the test sees it: what the plugin decided, and what it changed. */
export class EmulatedStream implements StreamHost {
  readonly requestHeaders: HeaderPairs = [];
  readonly responseHeaders: HeaderPairs = [];
  requestTrailers: HeaderPairs = [];
  responseTrailers: HeaderPairs = [];
  requestBody: Buffer = Buffer.alloc(0);
  responseBody: Buffer = Buffer.alloc(0);
  localResponse: LocalResponse | undefined;
  readonly continued: StreamType[] = [];
  readonly closed: StreamType[] = [];
  /** Times the plugin cleared the route cache (a request-header change, or proxy_clear_route_cache), as the data plane counts them. */
  routeCacheClears = 0;
  /** Higress `clear_route_cache=off` was written: header changes no longer clear the route cache. */
  routeCacheClearDisabled = false;
  /** proxy_inject_encoded_data_to_filter_chain and its foreign-function forms, in call order. */
  readonly injected: Array<{ readonly data: Buffer; readonly endOfStream: boolean; readonly onHeader: boolean }> = [];
  readonly stream: HttpStream;
  private readonly startNs = BigInt(Date.now()) * 1_000_000n;
  private readonly pluginName: string;
  private responseSeen = false;
  private readonly monoStart = process.hrtime.bigint();
  /** Set by complete(): request.duration is readable from proxy_on_log on, as in Envoy. */
  private durationNs: bigint | undefined;

  constructor(
    plugin: Plugin,
    private readonly options: StreamOptions,
  ) {
    const s = plugin.createStream(this);
    if (!s) throw plugin.failed ?? new Error('plugin cannot serve streams');
    this.stream = s;
    this.pluginName = plugin.config.name;
  }

  get contextId(): number {
    return this.stream.contextId;
  }

  sendRequestHeaders(headers: HeaderPairs, endOfStream = false): HeadersAction {
    this.requestHeaders.splice(0, this.requestHeaders.length, ...headers.map(([k, v]): [string, string] => [k.toLowerCase(), v]));
    return this.stream.requestHeaders(this.requestHeaders, endOfStream);
  }

  sendRequestBody(chunk: Buffer | string, endOfStream = false): DataAction {
    const action = this.stream.requestBody(Buffer.from(chunk), endOfStream);
    this.requestBody = this.stream.state.requestBody ?? Buffer.alloc(0);
    return action;
  }

  sendRequestTrailers(trailers: HeaderPairs): TrailersAction {
    this.requestTrailers = trailers;
    return this.stream.requestTrailers(this.requestTrailers);
  }

  sendResponseHeaders(headers: HeaderPairs, endOfStream = false): HeadersAction {
    this.responseHeaders.splice(0, this.responseHeaders.length, ...headers.map(([k, v]): [string, string] => [k.toLowerCase(), v]));
    this.responseSeen = true;
    return this.stream.responseHeaders(this.responseHeaders, endOfStream);
  }

  sendResponseBody(chunk: Buffer | string, endOfStream = false): DataAction {
    const action = this.stream.responseBody(Buffer.from(chunk), endOfStream);
    this.responseBody = this.stream.state.responseBody ?? Buffer.alloc(0);
    return action;
  }

  sendResponseTrailers(trailers: HeaderPairs): TrailersAction {
    this.responseTrailers = trailers;
    return this.stream.responseTrailers(this.responseTrailers);
  }

  /** proxy_on_log, proxy_on_done, proxy_on_delete. */
  complete(): void {
    this.durationNs ??= process.hrtime.bigint() - this.monoStart;
    this.stream.finish({ requestHeaders: this.requestHeaders, responseHeaders: this.responseHeaders });
  }

  header(name: string, from: HeaderPairs = this.requestHeaders): string | undefined {
    return getHeader(from, name.toLowerCase());
  }

  // StreamHost
  continueStream(type: StreamType): void {
    this.continued.push(type);
  }
  closeStream(type: StreamType): void {
    this.closed.push(type);
  }
  sendLocalResponse(response: LocalResponse): void {
    this.localResponse = response;
  }
  requestHeadersModified(): void {
    this.clearRouteCache();
  }
  clearRouteCache(): void {
    if (!this.routeCacheClearDisabled) this.routeCacheClears++;
  }
  propertyWritten(path: string, value: Buffer): void {
    if (path.split('\0').join('.') === 'clear_route_cache') this.routeCacheClearDisabled = value.toString() === 'off';
  }
  injectEncodedData(data: Buffer, endOfStream: boolean, onHeader: boolean): boolean {
    // As the data plane: only once a response has reached the filter.
    if (!this.responseSeen) return false;
    this.injected.push({ data, endOfStream, onHeader });
    return true;
  }
  property(path: readonly string[]): PropertyValue | undefined {
    const given = this.options.properties?.[path.join('.')];
    if (given !== undefined) return given;
    // The data plane's own attribute table, over what this emulated stream has seen.
    return streamAttribute(path, {
      requestHeaders: this.requestHeaders,
      responseHeaders: this.responseHeaders,
      responseTrailers: this.responseTrailers,
      info: {
        startNs: this.startNs,
        requestId: this.header('x-request-id') ?? '',
        requestBytes: this.requestBody.length,
        responseBytes: this.responseBody.length,
        responseCode: Number(this.header(':status', this.responseHeaders) ?? 0),
        // As the data plane reports them: the plugin's local reply, or a response the test sent as the upstream's.
        responseCodeDetails: this.localResponse
          ? wasmLocalReplyDetails(this.pluginName, this.localResponse.details)
          : this.responseSeen ? 'via_upstream' : '',
        responseFlags: [],
        sourceAddress: '127.0.0.1',
        sourcePort: 50000,
        destinationAddress: '127.0.0.1',
        destinationPort: 8080,
        connectionId: 0,
        upstreamHost: '',
        upstreamTransportFailureReason: '',
        hasRoute: false,
        routeName: '',
        clusterName: '',
        virtualHostName: '',
        durationNs: this.durationNs,
      },
      node: { id: 'host-emulator', cluster: 'host-emulator' },
    });
  }
}
