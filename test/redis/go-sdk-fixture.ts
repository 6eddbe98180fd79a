/**
 * The sidecar with the Higress Go SDK's redis-client plugin (plugins/go/higress/redis-client) in front, Redis
 * clusters named as the SDK derives them, and a log capture, for the end-to-end tests in test/go/redis-*.test.ts.
 * Every cluster is declared in the bootstrap as Envoy would have it (STATIC, or STRICT_DNS for the SDK's
 * DnsCluster); the plugin answers every request with a local reply, so the HTTP backend must never be reached.
 */
import { Writable } from 'node:stream';
import pino from 'pino';
import { request } from 'undici';
import type { Logger } from '../../src/common/logger';
import { Sidecar } from '../../src/main';
import { bootstrapJson, TempDir, Upstream } from '../http/helpers';

export interface RedisClusterDef {
  readonly name: string;
  /** 127.0.0.1:port (STATIC), or localhost:port (STRICT_DNS) when `dns` is set. */
  readonly port: number;
  readonly dns?: boolean;
  /** Declared with no endpoint at all (proxy_redis_call finds no host). */
  readonly noEndpoints?: boolean;
  /** The cluster's connect_timeout (Envoy duration); default 1s. */
  readonly connectTimeout?: string;
}

/** One entry of the plugin's `clients` configuration (see the plugin's parseConfig). */
export interface ClientConfig {
  readonly name: string;
  readonly cluster: Readonly<Record<string, string | number | boolean>>;
  readonly username?: string;
  readonly password?: string;
  readonly timeout?: number;
  readonly database?: number;
  /** 'request' defers Init to the first request on that client (RouteCluster needs the request's route). */
  readonly init?: 'config' | 'request';
}

export interface InitReport {
  readonly name: string;
  readonly cluster: string;
  readonly phase: string;
  readonly err: string;
  readonly ready: boolean;
  readonly done: boolean;
}

/** A resp.Value as the plugin serialises it. */
export interface RespJson {
  readonly type: 'SimpleString' | 'Error' | 'Integer' | 'BulkString' | 'Array' | 'Unknown';
  readonly str?: string;
  readonly int?: number;
  readonly null?: boolean;
  readonly err?: string;
  readonly array?: readonly RespJson[];
}

export interface OpResult {
  readonly op: string;
  readonly dispatch_err?: string;
  readonly reply?: RespJson;
}

export interface Op {
  readonly op: string;
  readonly args?: readonly unknown[];
}

export interface PluginLog {
  readonly level: string;
  readonly message: string;
}

/** Collects the sidecar's pino records; plugin logs are the ones carrying `wasm_level`. */
export class LogCapture {
  readonly records: Array<Record<string, unknown>> = [];
  readonly logger: Logger;
  constructor() {
    const records = this.records;
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        for (const line of chunk.toString('utf8').split('\n')) if (line) records.push(JSON.parse(line) as Record<string, unknown>);
        cb();
      },
    });
    this.logger = pino({ level: 'debug' }, sink);
  }

  plugin(): PluginLog[] {
    return this.records
      .filter((r) => typeof r['wasm_level'] === 'string')
      .map((r) => ({ level: String(r['wasm_level']), message: String(r['msg'] ?? '') }));
  }

  /** Plugin log lines containing `text`. */
  pluginMatching(text: string): PluginLog[] {
    return this.plugin().filter((l) => l.message.includes(text));
  }
}

export interface GoRedisSidecar {
  readonly sidecar: Sidecar;
  readonly url: string;
  readonly logs: LogCapture;
  readonly backend: Upstream;
  close(): Promise<void>;
}

export interface GoRedisSidecarSpec {
  readonly clients: readonly ClientConfig[];
  readonly clusters: readonly RedisClusterDef[];
  /** Requests under `prefix` are routed to `cluster` (what the SDK's RouteCluster reads as cluster_name). */
  readonly redisRoute?: { readonly prefix: string; readonly cluster: string };
}

type Json = Record<string, unknown>;

export async function startGoRedisSidecar(tmp: TempDir, spec: GoRedisSidecarSpec): Promise<GoRedisSidecar> {
  const backend = await Upstream.start();
  const boot = bootstrapJson({
    filters: [{ plugin: 'go/redis-client', name: 'redis-client', rootId: '', configuration: JSON.stringify({ clients: spec.clients }) }],
    clusters: [{ name: 'backend', port: backend.port }, ...spec.clusters.map((c) => ({ name: c.name, port: c.port, ...(c.connectTimeout ? { connectTimeout: c.connectTimeout } : {}) }))],
    routeCluster: 'backend',
  });
  const res = boot['static_resources'] as Json;
  for (const c of res['clusters'] as Json[]) {
    const def = spec.clusters.find((d) => d.name === c['name']);
    if (!def) continue;
    const la = c['load_assignment'] as Json;
    if (def.noEndpoints) la['endpoints'] = [];
    if (def.dns) {
      c['type'] = 'STRICT_DNS';
      la['endpoints'] = [{ lb_endpoints: [{ endpoint: { address: { socket_address: { address: 'localhost', port_value: def.port } } } }] }];
    }
  }
  if (spec.redisRoute) {
    const hcm = ((((res['listeners'] as Json[])[0]!['filter_chains'] as Json[])[0]!['filters'] as Json[])[0]!['typed_config']) as Json;
    const vhost = ((hcm['route_config'] as Json)['virtual_hosts'] as Json[])[0]!;
    (vhost['routes'] as Json[]).unshift({ name: 'redis-route', match: { prefix: spec.redisRoute.prefix }, route: { cluster: spec.redisRoute.cluster } });
  }
  const file = tmp.write(`bootstrap-${Math.random().toString(36).slice(2)}.json`, boot);
  const logs = new LogCapture();
  const sidecar = await Sidecar.start({ configFile: file, logger: logs.logger, drainTimeoutMs: 2000 });
  const url = `http://127.0.0.1:${sidecar.listeners[0]!.port}`;
  return {
    sidecar,
    url,
    logs,
    backend,
    async close() {
      await sidecar.stop();
      await backend.close();
    },
  };
}

/** GET `${url}${path}` with the plugin's headers; returns the status and the parsed JSON body. */
async function getJson(url: string, path: string, headers: Record<string, string>): Promise<{ status: number; body: unknown }> {
  const res = await request(`${url}${path}`, { headers, headersTimeout: 60_000, bodyTimeout: 60_000 });
  const text = await res.body.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new Error(`${path}: status ${res.statusCode}, body is not JSON: ${text.slice(0, 200)}`);
  }
  return { status: res.statusCode, body };
}

/** Runs `ops` in order on `client` (each in the previous one's callback) and returns what the plugin saw. */
export async function runOps(url: string, client: string, ops: readonly Op[], prefix = ''): Promise<{ client: InitReport; results: OpResult[] }> {
  const { status, body } = await getJson(url, `${prefix}/ops`, { 'x-redis-client': client, 'x-redis-ops': JSON.stringify(ops) });
  if (status !== 200) throw new Error(`/ops on ${client}: status ${status}: ${JSON.stringify(body)}`);
  return body as { client: InitReport; results: OpResult[] };
}

/** The init report of every client initialised at configuration time (and of request-time ones once used). */
export async function initReports(url: string): Promise<InitReport[]> {
  const { status, body } = await getJson(url, '/init', {});
  if (status !== 200) throw new Error(`/init: status ${status}`);
  return body as InitReport[];
}

/** Shorthands for reading replies in assertions. */
export const reply = {
  ok: (r: OpResult): RespJson => {
    if (r.dispatch_err !== undefined || !r.reply) throw new Error(`${r.op}: no reply (${r.dispatch_err ?? 'none'})`);
    return r.reply;
  },
  /** Strings of a flat array reply, null entries as null. */
  strings: (r: OpResult): Array<string | null> => (reply.ok(r).array ?? []).map((v) => (v.null ? null : v.str ?? String(v.int))),
};
