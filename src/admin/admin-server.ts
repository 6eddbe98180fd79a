/**
 * The Envoy-style admin endpoint on node:http. Like Envoy's admin.cc it is one route table (path, help, handler,
 * mutates-state flag, parameters); /help and the 404 page are generated from it, and a state-mutating route
 * refuses anything but POST (405 "Method GET not allowed, POST required.", Envoy's answer). It binds to the
 * bootstrap's admin address, loopback by default.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { AdminError } from '../common/errors';
import type { Logger } from '../common/logger';
import { silentLogger } from '../common/logger';
import { PrometheusExporter, PROMETHEUS_CONTENT_TYPE } from '../observability/prometheus';
import { ClusterEventCounters, collectStats, quantiles, SUPPORTED_QUANTILES, type Stat } from '../observability/stats';
import type { LiveCluster } from '../upstream/cluster-manager';
import { clustersJson, clustersText } from './clusters';
import { configDump } from './config-dump';
import { redactJson } from './redact';
import { ENVOY_LOG_LEVELS, type AdminJson, type AdminSources, type EnvoyLogLevel } from './sources';

export const DEFAULT_ADMIN_ADDRESS = '127.0.0.1';

export interface AdminServerOptions {
  /** Default 127.0.0.1 (loopback only). */
  readonly address?: string | undefined;
  /** 0 picks a free port (see start()). */
  readonly port: number;
  readonly logger?: Logger | undefined;
}

export interface AdminRequest {
  readonly method: string;
  readonly path: string;
  readonly query: URLSearchParams;
}

export interface AdminResponse {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

export interface AdminRoute {
  readonly path: string;
  readonly help: string;
  readonly mutatesState: boolean;
  /** Query parameters, for /help. */
  readonly params: readonly { readonly name: string; readonly help: string }[];
  readonly handler: (req: AdminRequest) => AdminResponse | Promise<AdminResponse>;
}

const TEXT = 'text/plain; charset=UTF-8';
const JSON_TYPE = 'application/json';

function text(body: string, status = 200): AdminResponse {
  return { status, contentType: TEXT, body };
}

function json(value: AdminJson, status = 200): AdminResponse {
  return { status, contentType: JSON_TYPE, body: `${JSON.stringify(value, null, 2)}\n` };
}

/** `<package version>/Clean/RELEASE/node-<v>`, Envoy's `<sha>/<version>/<status>/<build type>/<ssl>` shape without the sha. */
export function defaultVersion(): string {
  let version = 'unknown';
  for (const dir of [join(__dirname, '..', '..'), join(__dirname, '..', '..', '..')]) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'proxy-wasm-sidecar' && typeof pkg.version === 'string') {
        version = pkg.version;
        break;
      }
    } catch {
      // try the next candidate
    }
  }
  return `proxy-wasm-sidecar/${version}/Clean/RELEASE/node-${process.version}`;
}

function parseLevel(value: string): EnvoyLogLevel | undefined {
  const v = value === 'warn' ? 'warning' : value;
  return (ENVOY_LOG_LEVELS as readonly string[]).includes(v) ? (v as EnvoyLogLevel) : undefined;
}

function compileFilter(query: URLSearchParams): RegExp | undefined | AdminError {
  const f = query.get('filter');
  if (f === null || f === '') return undefined;
  try {
    return new RegExp(f);
  } catch (err) {
    return new AdminError(`Invalid re2 regex: ${(err as Error).message}`, { cause: err });
  }
}

export class AdminServer {
  readonly routes: readonly AdminRoute[];
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly events: ClusterEventCounters;
  private readonly prometheus: PrometheusExporter;
  private readonly address: string;
  private readonly logger: Logger;
  private readonly version: string;
  private listening: Promise<{ port: number }> | undefined;
  private closing: Promise<void> | undefined;

  constructor(
    options: AdminServerOptions,
    private readonly sources: AdminSources,
  ) {
    this.address = options.address || DEFAULT_ADMIN_ADDRESS;
    this.port = options.port;
    this.logger = (options.logger ?? silentLogger()).child({ component: 'admin' });
    this.version = sources.version ?? defaultVersion();
    // Counts cluster_added/modified/removed from now on; construct the admin before clusters are added.
    this.events = new ClusterEventCounters(sources.clusterManager);
    this.prometheus = new PrometheusExporter(sources.histogramBuckets);
    this.routes = this.buildRoutes();
    this.server = createServer((req, res) => void this.dispatch(req, res));
    this.server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
  }

  private readonly port: number;

  /** Listens; resolves with the bound port (useful with port 0). Idempotent. */
  start(): Promise<{ port: number }> {
    this.listening ??= new Promise((resolve, reject) => {
      const onError = (err: Error): void => reject(new AdminError(`admin cannot listen on ${this.address}:${this.port}: ${err.message}`, { cause: err }));
      this.server.once('error', onError);
      this.server.listen(this.port, this.address, () => {
        this.server.off('error', onError);
        const port = (this.server.address() as AddressInfo).port;
        this.logger.info({ address: this.address, port }, 'admin listening');
        resolve({ port });
      });
    });
    return this.listening;
  }

  /** The bound socket address once listening. */
  boundAddress(): AddressInfo | undefined {
    const a = this.server.address();
    return a !== null && typeof a === 'object' ? a : undefined;
  }

  /** Stops listening, closes open connections and the event subscription. Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.events.dispose();
      if (!this.server.listening) {
        resolve();
        return;
      }
      this.server.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
    return this.closing;
  }

  /** The stats snapshot /stats and /stats/prometheus render (exposed for tests and the CLI). */
  stats(): Stat[] {
    const s = this.sources;
    return collectStats(
      {
        state: s.state(),
        uptimeSeconds: (Date.now() - s.startTime.getTime()) / 1000,
        active: this.activeClusters(),
        warming: [...s.clusterManager.warming()],
        xds: s.ads?.status(),
        redis: s.redis?.stats(),
        pluginMetrics: s.metrics.all(),
        counters: s.counters?.(),
        traffic: s.traffic?.(),
        // Envoy's gauge counts live VMs; plugins sharing one count once.
        ...(s.workers ? { workers: s.workers() } : {}),
        pluginsActive: new Set(s.plugins().filter((p) => !p.failed).map((p) => p.vm ?? p)).size,
      },
      this.events,
      s.tagProducer,
      s.statsMatcher,
    );
  }

  private activeClusters(): LiveCluster[] {
    return [...this.sources.clusterManager.activeClusters()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let response: AdminResponse;
    try {
      response = await this.handle(req.method ?? 'GET', req.url ?? '/');
    } catch (err) {
      this.logger.error({ err }, 'admin handler failed');
      response = text(`error: ${err instanceof Error ? err.message : String(err)}\n`, 500);
    }
    // Drain any request body; the admin reads only the query string (as Envoy's admin does).
    req.resume();
    res.writeHead(response.status, {
      'content-type': response.contentType,
      'cache-control': 'no-cache, max-age=0',
      'x-content-type-options': 'nosniff',
    });
    res.end(response.body);
  }

  /** Routes one request (exposed so tests and the CLI can call the table without a socket). */
  async handle(method: string, rawUrl: string): Promise<AdminResponse> {
    const url = new URL(rawUrl, 'http://admin');
    const route = this.routes.find((r) => r.path === url.pathname);
    if (!route) return text(`invalid path. ${this.helpText()}`, 404);
    if (route.mutatesState && method !== 'POST') {
      this.logger.warn({ path: route.path, method }, 'admin path mutates state; POST required');
      return text(`Method ${method} not allowed, POST required.`, 405);
    }
    return route.handler({ method, path: url.pathname, query: url.searchParams });
  }

  helpText(): string {
    const lines = ['admin commands are:'];
    for (const r of [...this.routes].sort((a, b) => (a.path < b.path ? -1 : 1))) {
      lines.push(`  ${r.path}: ${r.help}`);
      for (const p of r.params) lines.push(`      ${p.name}: ${p.help}`);
    }
    return `${lines.join('\n')}\n`;
  }

  private buildRoutes(): AdminRoute[] {
    const route = (
      path: string,
      help: string,
      handler: AdminRoute['handler'],
      opts: { mutatesState?: boolean; params?: AdminRoute['params'] } = {},
    ): AdminRoute => ({ path, help, handler, mutatesState: opts.mutatesState ?? false, params: opts.params ?? [] });
    const formatParam = (formats: string) => ({ name: 'format', help: `File format to use; One of (${formats})` });
    return [
      route('/', 'Admin home page (this list)', () => text(this.helpText())),
      route('/help', 'print out list of admin commands', () => text(this.helpText())),
      route('/ready', 'print server state, return 200 if LIVE, otherwise return 503', () => {
        const state = this.sources.state();
        const workers = this.sources.workers?.();
        // A worker being restarted is said; the sidecar stays ready while another worker serves.
        const restarting = workers && workers.restarting > 0 ? `workers restarting: ${workers.restarting} of ${workers.concurrency}\n` : '';
        const ready = state === 'LIVE' && (!workers || workers.live > 0);
        return text(`${state}\n${restarting}`, ready ? 200 : 503);
      }),
      route('/server_info', 'print server version/status information', () => json(this.serverInfo())),
      route('/clusters', 'upstream cluster status', (req) => this.clusters(req), { params: [formatParam('text, json')] }),
      route('/config_dump', 'dump current Envoy configs (experimental)', (req) => this.configDump(req), {
        params: [
          { name: 'resource', help: 'The resource to dump' },
          { name: 'name_regex', help: 'Dump only the resources whose names match the given regex' },
          { name: 'include_eds', help: 'Dump currently loaded configuration including EDS' },
        ],
      }),
      route('/listeners', 'print listener info', (req) => this.listenersHandler(req), { params: [formatParam('text, json')] }),
      route('/stats', 'print server stats', (req) => this.statsHandler(req), {
        params: [
          { name: 'usedonly', help: 'Only include stats that have been written by system since restart' },
          { name: 'filter', help: 'Regular expression (Google re2) for filtering stats' },
          formatParam('text, json, prometheus'),
        ],
      }),
      route('/stats/prometheus', 'print server stats in prometheus format', (req) => this.prometheusHandler(req), {
        params: [
          { name: 'usedonly', help: 'Only include stats that have been written by system since restart' },
          { name: 'filter', help: 'Regular expression (Google re2) for filtering stats' },
        ],
      }),
      route('/logging', 'query/change logging levels', (req) => this.logging(req), {
        mutatesState: true,
        params: [{ name: 'level', help: `desired logging level, one of (${ENVOY_LOG_LEVELS.join(', ')})` }],
      }),
      route('/plugins', 'loaded Wasm plugins (name, root_id, vm_id, abi, failed) (sidecar-specific)', () =>
        json({
          plugins: this.sources.plugins().map((p) => ({ name: p.name, root_id: p.rootId, vm_id: p.vmId, abi: p.abi, failed: p.failed })),
        }),
      ),
    ];
  }

  private serverInfo(): AdminJson {
    const s = this.sources;
    const uptime = `${Math.max(0, Math.floor((Date.now() - s.startTime.getTime()) / 1000))}s`;
    const node = s.bootstrap['node'] ?? {};
    return redactJson({
      version: this.version,
      state: s.state(),
      uptime_current_epoch: uptime,
      uptime_all_epochs: uptime,
      hot_restart_version: 'disabled',
      command_line_options: s.commandLineOptions,
      node,
    });
  }

  private clusters(req: AdminRequest): AdminResponse {
    const clusters = this.activeClusters();
    const redis = this.sources.redis?.stats();
    const format = req.query.get('format') ?? 'text';
    const traffic = this.sources.traffic?.();
    if (format === 'json') return json(clustersJson(clusters, redis, traffic));
    if (format !== 'text') return text(`usage: /clusters?format=(text|json)\n`, 400);
    return text(clustersText(clusters, redis, traffic));
  }

  /** Envoy's /listeners: `name::address:port` lines, or ?format=json `{listener_statuses: [{name, local_address}]}`. */
  private listenersHandler(req: AdminRequest): AdminResponse {
    const list = this.sources.listeners?.activeListeners() ?? [];
    const format = req.query.get('format') ?? 'text';
    if (format === 'json') {
      return json({ listener_statuses: list.map((l) => ({ name: l.name, local_address: { socket_address: { address: l.address, port_value: l.port } } })) });
    }
    if (format !== 'text') return text('usage: /listeners?format=(text|json)\n', 400);
    return text(list.map((l) => `${l.name}::${l.address}:${l.port}\n`).join(''));
  }

  private configDump(req: AdminRequest): AdminResponse {
    const q = req.query;
    let nameRegex: RegExp | undefined;
    const nr = q.get('name_regex');
    if (nr !== null && nr !== '') {
      try {
        nameRegex = new RegExp(nr);
      } catch (err) {
        return text(`Error while parsing name_regex from ${nr}: ${(err as Error).message}\n`, 400);
      }
    }
    if (q.has('mask')) return text('?mask= is not supported by this admin endpoint\n', 400);
    const resource = q.get('resource');
    const result = configDump(
      {
        bootstrap: this.sources.bootstrap,
        startTime: this.sources.startTime,
        active: this.activeClusters(),
        warming: [...this.sources.clusterManager.warming()],
        xds: this.sources.ads?.status(),
        configUpdated: (name) => this.events.lastConfigUpdate(name),
        listeners: this.sources.listeners,
      },
      { includeEds: q.has('include_eds'), resource: resource === null || resource === '' ? undefined : resource, nameRegex },
    );
    if (!result.ok) return text(`${result.message}\n`, result.status);
    return json(result.body);
  }

  private filteredStats(req: AdminRequest): Stat[] | AdminResponse {
    const filter = compileFilter(req.query);
    if (filter instanceof AdminError) return text(`${filter.message}\n`, 400);
    let stats = this.stats();
    if (filter) stats = stats.filter((s) => filter.test(s.name));
    if (req.query.has('usedonly')) stats = stats.filter((s) => (s.kind === 'histogram' ? s.count > 0 : s.value !== 0 && s.value !== 0n));
    return stats;
  }

  private async statsHandler(req: AdminRequest): Promise<AdminResponse> {
    const format = req.query.get('format') ?? 'text';
    if (format === 'prometheus') return this.prometheusHandler(req);
    const stats = this.filteredStats(req);
    if (!Array.isArray(stats)) return stats;
    if (format === 'json') return json(statsJson(stats));
    if (format !== 'text') return text('usage: /stats?format=(text|json|prometheus)\n', 400);
    const lines: string[] = [];
    for (const s of stats) {
      if (s.kind !== 'histogram') {
        lines.push(`${s.name}: ${String(s.value)}`);
        continue;
      }
      const q = quantiles(s.samples);
      lines.push(
        q === undefined
          ? `${s.name}: No recorded values`
          : `${s.name}: ${SUPPORTED_QUANTILES.map((p, i) => `P${p}(nan,${formatNumber(q[i]!)})`).join(' ')}`,
      );
    }
    return text(lines.length > 0 ? `${lines.join('\n')}\n` : '');
  }

  private async prometheusHandler(req: AdminRequest): Promise<AdminResponse> {
    const stats = this.filteredStats(req);
    if (!Array.isArray(stats)) return stats;
    return { status: 200, contentType: PROMETHEUS_CONTENT_TYPE, body: await this.prometheus.render(stats) };
  }

  private logging(req: AdminRequest): AdminResponse {
    const s = this.sources;
    let status = 200;
    let body = '';
    const requested = req.query.get('level');
    const others = [...req.query.keys()].filter((k) => k !== 'level');
    if (requested !== null || others.length > 0) {
      const level = requested === null ? undefined : parseLevel(requested);
      if (level === undefined || others.length > 0) {
        status = 404;
        body +=
          `error: ${level === undefined && requested !== null ? 'unknown logger level' : 'per-logger levels are not supported'}\n\n` +
          'usage: /logging?level=<level> (change all levels)\n' +
          `levels: ${ENVOY_LOG_LEVELS.join(' ')} \n`;
      } else {
        s.setLogLevel(level);
        // `level` is pino's own key (the line's severity): the new level goes under another name.
        this.logger.info({ new_level: level }, 'log level changed');
      }
    }
    body += 'active loggers:\n';
    const loggers = s.loggers?.() ?? new Map([['sidecar', s.getLogLevel()]]);
    for (const [name, level] of [...loggers].sort(([a], [b]) => (a < b ? -1 : 1))) body += `  ${name}: ${level}\n`;
    return text(`${body}\n`, status);
  }
}

function formatNumber(n: number): string {
  return Number.isInteger(n) ? String(n) : String(Number(n.toPrecision(6)));
}

/** Envoy's /stats?format=json: `{stats: [{name, value}..., {histograms: {supported_quantiles, computed_quantiles}}]}`. */
function statsJson(stats: readonly Stat[]): AdminJson {
  const out: AdminJson[] = [];
  const computed: AdminJson[] = [];
  for (const s of stats) {
    if (s.kind === 'histogram') {
      const q = quantiles(s.samples);
      computed.push({ name: s.name, values: SUPPORTED_QUANTILES.map((_p, i) => ({ interval: null, cumulative: q?.[i] ?? null })) });
    } else {
      out.push({ name: s.name, value: typeof s.value === 'bigint' ? Number(s.value) : s.value });
    }
  }
  if (computed.length > 0) out.push({ histograms: { supported_quantiles: [...SUPPORTED_QUANTILES], computed_quantiles: computed } });
  return { stats: out };
}
