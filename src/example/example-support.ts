import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { connect } from 'node:net';
import { freePort } from '../common/free-port';
import { join, resolve } from 'node:path';

/** What both examples need: free ports, a redis-server, an upstream, and a filled-in bootstrap template. */

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

/** Reads examples/<name>/bootstrap.yaml and replaces each {{KEY}} with its value. */
export function fillTemplate(example: string, values: Readonly<Record<string, string | number>>): string {
  let text = readFileSync(join(ROOT, 'examples', example, 'bootstrap.yaml'), 'utf8');
  for (const [k, v] of Object.entries({ PLUGIN_DIR: join(ROOT, 'build', 'plugins'), ...values })) text = text.replaceAll(`{{${k}}}`, String(v));
  return text;
}
