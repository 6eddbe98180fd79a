import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '../../src/common/logger';
import { Sidecar } from '../../src/main';
import { pluginPath } from '../support/plugins';

/** A real upstream: node:http on a free loopback port. */
export class Upstream {
  readonly requests: Array<{ method: string; url: string; headers: IncomingMessage['headers']; body: string }> = [];
  private constructor(readonly server: Server) {}

  static async start(handler?: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<Upstream> {
    let up!: Upstream;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        up.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        if (handler) handler(req, res, body);
        else {
          res.setHeader('content-type', 'text/plain');
          res.end(`upstream saw ${req.method} ${req.url} ${body}`);
        }
      });
    });
    up = new Upstream(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return up;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((r) => this.server.close(() => r()));
  }
}

export interface FilterSpec {
  readonly plugin: string;
  readonly name: string;
  readonly rootId: string;
  readonly configuration?: string;
  readonly vmId?: string;
  /** Written as the real PluginConfig field. */
  readonly failurePolicy?: 'FAIL_OPEN' | 'FAIL_CLOSED' | 'FAIL_RELOAD';
  readonly failOpen?: boolean;
}

export interface ClusterSpec {
  readonly name: string;
  readonly port: number;
  /** More endpoints of the same cluster (127.0.0.1:port each). */
  readonly extraPorts?: readonly number[];
  readonly connectTimeout?: string;
}

export interface BootstrapSpec {
  readonly filters: readonly FilterSpec[];
  readonly clusters: readonly ClusterSpec[];
  /** Route cluster; default the first cluster. */
  readonly routeCluster?: string;
  readonly routeTimeout?: string;
}

/** An Envoy v3 bootstrap (JSON) with one listener on port 0, the given wasm filters, and STATIC clusters. */
export function bootstrapJson(spec: BootstrapSpec): Record<string, unknown> {
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
        ...(f.failOpen !== undefined ? { fail_open: f.failOpen } : {}),
      },
    },
  }));
  httpFilters.push({ name: 'envoy.filters.http.router', typed_config: { '@type': 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router' } });
  return {
    node: { id: 'test-node', cluster: 'test' },
    static_resources: {
      listeners: [{
        name: 'ingress',
        address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
        filter_chains: [{
          filters: [{
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
              stat_prefix: 'ingress_http',
              route_config: {
                name: 'local_route',
                virtual_hosts: [{
                  name: 'all',
                  domains: ['*'],
                  routes: [{
                    name: 'default',
                    match: { prefix: '/' },
                    route: { cluster: spec.routeCluster ?? spec.clusters[0]!.name, ...(spec.routeTimeout ? { timeout: spec.routeTimeout } : {}) },
                  }],
                }],
              },
              http_filters: httpFilters,
            },
          }],
        }],
      }],
      clusters: spec.clusters.map((c) => ({
        name: c.name,
        type: 'STATIC',
        connect_timeout: c.connectTimeout ?? '1s',
        load_assignment: {
          cluster_name: c.name,
          endpoints: [{ lb_endpoints: [c.port, ...(c.extraPorts ?? [])].map((port) => ({ endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } })) }],
        },
      })),
    },
  };
}

/** Temp files for bootstraps, removed by cleanup(). */
export class TempDir {
  readonly path = mkdtempSync(join(tmpdir(), 'pws-http-'));
  write(name: string, content: string | object): string {
    const file = join(this.path, name);
    writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
    return file;
  }
  cleanup(): void {
    rmSync(this.path, { recursive: true, force: true });
  }
}

export async function startSidecar(tmp: TempDir, spec: BootstrapSpec): Promise<{ sidecar: Sidecar; url: string }> {
  const file = tmp.write(`bootstrap-${Math.random().toString(36).slice(2)}.json`, bootstrapJson(spec));
  const sidecar = await Sidecar.start({ configFile: file, logger: silentLogger(), drainTimeoutMs: 2000 });
  return { sidecar, url: `http://127.0.0.1:${sidecar.listeners[0]!.port}` };
}

/** Shared data of a plugin's VM, as a number (0 when unset). */
export function sharedCounter(sidecar: Sidecar, vmId: string, key: string): number {
  const v = sidecar.services.sharedData.get(vmId, key)?.value;
  return v === undefined ? 0 : Number(v.toString());
}
