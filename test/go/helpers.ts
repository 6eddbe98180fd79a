import { Writable } from 'node:stream';
import pino from 'pino';
import { request } from 'undici';
import type { Logger } from '../../src/common/logger';
import { silentLogger } from '../../src/common/logger';
import { Sidecar } from '../../src/main';
import { bootstrapJson, type ClusterSpec, type FilterSpec, type TempDir } from '../http/helpers';

/**
 * Helpers for the Go plugin tests (test/go/sdk-*.test.ts): a bootstrap with several virtual hosts, named
 * routes and Istio-style cluster names, so the properties a Higress plugin's `_rules_` matcher reads
 * (route_name, cluster_name, :authority) take different values per request; an admin endpoint for
 * /logging; and a capture of the sidecar's logger output.
 */

/** Istio's (and Higress's) cluster name for a Kubernetes service port: `outbound|80||svc.ns.svc.cluster.local`. */
export function k8sClusterName(service: string, namespace: string, port: number): string {
  return `outbound|${port}||${service}.${namespace}.svc.cluster.local`;
}

export interface RouteSpec {
  /** RouteConfiguration route `name` (what `route_name` returns); omitted: a route without a name. */
  readonly name?: string;
  /** `match.prefix`; default '/' unless `path` is given. */
  readonly prefix?: string;
  /** `match.path` (exact). */
  readonly path?: string;
  /** `route.cluster`. */
  readonly cluster?: string;
  /** `route.timeout`. */
  readonly timeout?: string;
  /** `direct_response` instead of a route action. */
  readonly directResponse?: { readonly status: number; readonly body?: string };
}

export interface VirtualHostSpec {
  readonly name: string;
  readonly domains: readonly string[];
  readonly routes: readonly RouteSpec[];
}

export interface GoSidecarSpec {
  readonly filters: readonly FilterSpec[];
  readonly clusters: readonly ClusterSpec[];
  /** Default: one virtual host `*` with one route `default` to the first cluster (test/http/helpers.ts). */
  readonly virtualHosts?: readonly VirtualHostSpec[];
  /** An admin endpoint on a free loopback port (for /logging). */
  readonly admin?: boolean;
  /** STATIC clusters with no endpoints (Envoy accepts them; every request to them finds no healthy host). */
  readonly emptyClusters?: readonly string[];
}

function routeJson(r: RouteSpec): Record<string, unknown> {
  const match = r.path !== undefined ? { path: r.path } : { prefix: r.prefix ?? '/' };
  const out: Record<string, unknown> = { match };
  if (r.name !== undefined) out['name'] = r.name;
  if (r.directResponse) {
    out['direct_response'] = {
      status: r.directResponse.status,
      ...(r.directResponse.body !== undefined ? { body: { inline_string: r.directResponse.body } } : {}),
    };
  } else {
    if (r.cluster === undefined) throw new Error(`route ${r.name ?? '(unnamed)'} needs a cluster or a direct response`);
    out['route'] = { cluster: r.cluster, ...(r.timeout !== undefined ? { timeout: r.timeout } : {}) };
  }
  return out;
}

/**
 * test/http/helpers.ts's bootstrap (listener, wasm filters, STATIC clusters) with these virtual hosts in its
 * inline route_config and, if asked, an admin endpoint.
 */
export function goBootstrap(spec: GoSidecarSpec): Record<string, unknown> {
  const bootstrap = bootstrapJson({ filters: spec.filters, clusters: spec.clusters });
  if (spec.virtualHosts) {
    const hcm = (bootstrap as unknown as BootstrapShape).static_resources.listeners[0]!.filter_chains[0]!.filters[0]!.typed_config;
    hcm.route_config = {
      name: 'local_route',
      virtual_hosts: spec.virtualHosts.map((vh) => ({ name: vh.name, domains: [...vh.domains], routes: vh.routes.map(routeJson) })),
    };
  }
  for (const name of spec.emptyClusters ?? []) {
    (bootstrap as unknown as BootstrapShape).static_resources.clusters.push({
      name, type: 'STATIC', connect_timeout: '1s', load_assignment: { cluster_name: name, endpoints: [] },
    });
  }
  if (spec.admin) bootstrap['admin'] = { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } };
  return bootstrap;
}

/** The part of bootstrapJson's output this file rewrites. */
interface BootstrapShape {
  static_resources: {
    listeners: Array<{ filter_chains: Array<{ filters: Array<{ typed_config: { route_config: unknown } }> }> }>;
    clusters: unknown[];
  };
}

export interface GoSidecar {
  readonly sidecar: Sidecar;
  /** The public listener, `http://127.0.0.1:<port>`. */
  readonly url: string;
  /** The admin endpoint, when the spec asked for one. */
  readonly adminUrl: string | undefined;
}

export interface StartOptions {
  /** Default: a silent logger. */
  readonly logger?: Logger;
  readonly concurrency?: number;
}

export async function startGoSidecar(tmp: TempDir, spec: GoSidecarSpec, options: StartOptions = {}): Promise<GoSidecar> {
  const file = tmp.write(`bootstrap-${Math.random().toString(36).slice(2)}.json`, goBootstrap(spec));
  const sidecar = await Sidecar.start({
    configFile: file,
    logger: options.logger ?? silentLogger(),
    drainTimeoutMs: 2000,
    ...(options.concurrency !== undefined ? { concurrency: options.concurrency } : {}),
  });
  const admin = sidecar.admin?.boundAddress();
  return {
    sidecar,
    url: `http://127.0.0.1:${sidecar.publicListeners[0]!.port}`,
    adminUrl: admin ? `http://127.0.0.1:${admin.port}` : undefined,
  };
}

/** One line of the sidecar's logger output (pino JSON). */
export interface LogLine {
  readonly level: number;
  readonly msg: string;
  readonly plugin?: string;
  readonly wasm_level?: string;
  readonly [key: string]: unknown;
}

/**
 * A real pino logger (the sidecar's logger type) whose JSON lines are kept in memory instead of going to
 * stderr, so a test reads exactly what the sidecar would have printed.
 */
export class LogCapture {
  readonly lines: LogLine[] = [];
  readonly logger: Logger;

  constructor(level: pino.LevelWithSilent = 'info') {
    let pending = '';
    const sink = new Writable({
      write: (chunk: Buffer, _enc, done) => {
        pending += chunk.toString('utf8');
        let nl: number;
        while ((nl = pending.indexOf('\n')) !== -1) {
          const line = pending.slice(0, nl);
          pending = pending.slice(nl + 1);
          if (line) this.lines.push(JSON.parse(line) as LogLine);
        }
        done();
      },
    });
    this.logger = pino({ level }, sink);
  }

  /** Lines a plugin logged (the host's `plugin` field is the PluginConfig name). */
  pluginLines(name: string): LogLine[] {
    return this.lines.filter((l) => l.plugin === name && l.wasm_level !== undefined);
  }
}

/** POST /logging?level=<level> on the admin endpoint; returns the response text. */
export async function setLogLevel(adminUrl: string, level: string): Promise<{ status: number; body: string }> {
  const res = await request(`${adminUrl}/logging?level=${encodeURIComponent(level)}`, { method: 'POST' });
  return { status: res.statusCode, body: await res.body.text() };
}
