import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { freePort } from '../common/free-port';
import { isAbsolute, join, resolve } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';

/** What both examples need: free ports, a redis-server, an upstream, and the shipped bootstrap on those ports. */

export const ROOT = resolve(__dirname, '..', '..', '..');

const INSTALL_HINT = `redis-server is needed for the example and was not found on PATH.
Install it, then run \`make run\` again:
  Debian/Ubuntu:  sudo apt-get install -y redis-server
  Fedora/RHEL:    sudo dnf install -y redis
  macOS:          brew install redis`;

export { freePort };

function ping(port: number): Promise<boolean> {
  return new Promise((res) => {
    const sock = connect(port, '127.0.0.1');
    let out = '';
    sock.setTimeout(500, () => sock.destroy());
    sock.on('connect', () => sock.write('*1\r\n$4\r\nPING\r\n'));
    sock.on('data', (d) => {
      out += d.toString();
      if (out.includes('\r\n')) sock.end();
    });
    sock.on('close', () => res(out.startsWith('+PONG')));
    sock.on('error', () => res(false));
  });
}

export async function startRedis(dir: string): Promise<{ port: number; proc: ChildProcess }> {
  if (spawnSync('redis-server', ['--version']).error) {
    console.error(INSTALL_HINT);
    process.exit(1);
  }
  const port = await freePort();
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
    stdio: 'ignore',
  });
  const deadline = Date.now() + 10_000;
  while (!(await ping(port))) {
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error(`redis-server did not start on port ${port}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return { port, proc };
}

export async function startUpstream(): Promise<{ port: number; server: Server }> {
  const server = createHttpServer((req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end(`hello from the upstream: ${req.method} ${req.url}\n`);
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { port, server };
}

export interface ExamplePorts {
  readonly admin: number;
  readonly listener: number;
  /** Cluster name -> the port of its (single, loopback) endpoint. */
  readonly clusters: Readonly<Record<string, number>>;
}

// A YAML tree edited by known paths; the result is loaded and validated by the sidecar like any bootstrap.
type Doc = Record<string, any>;

/**
 * examples/<name>/bootstrap.yaml as shipped (a real bootstrap with default ports), moved to the given free ports
 * and with its plugin paths made absolute, so the example runs from any directory without clashing with
 * anything already on 9901, 10000, 6379 or 8080.
 */
export function exampleBootstrap(example: string, ports: ExamplePorts): string {
  const doc = parseYaml(readFileSync(join(ROOT, 'examples', example, 'bootstrap.yaml'), 'utf8')) as Doc;
  doc['admin'].address.socket_address.port_value = ports.admin;
  const listeners = doc['static_resources'].listeners as Doc[];
  listeners[0]!['address'].socket_address.port_value = ports.listener;
  for (const l of listeners) {
    for (const chain of l['filter_chains'] as Doc[]) {
      for (const f of chain['filters'] as Doc[]) {
        for (const hf of (f['typed_config']?.http_filters ?? []) as Doc[]) {
          const local = hf['typed_config']?.config?.vm_config?.code?.local;
          if (local && !isAbsolute(local.filename)) local.filename = join(ROOT, local.filename);
        }
      }
    }
  }
  for (const c of doc['static_resources'].clusters as Doc[]) {
    const port = ports.clusters[c['name']];
    if (port === undefined) continue;
    for (const e of c['load_assignment'].endpoints as Doc[]) for (const lb of e['lb_endpoints'] as Doc[]) lb['endpoint'].address.socket_address.port_value = port;
  }
  return stringifyYaml(doc);
}
