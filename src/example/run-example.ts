import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Sidecar } from '../main';

/**
 * The bundled example (`make run`): starts redis-server on a free loopback port, a small upstream, and the
 * sidecar on examples/static/bootstrap.yaml with the replay-protection example plugin; prints the curl lines
 * that show it working and the admin URL, and runs until Ctrl-C. `--check` makes the same requests itself,
 * prints what came back and exits 0 only if the plugin behaved (CI runs it).
 */

const ROOT = resolve(__dirname, '..', '..', '..');

const INSTALL_HINT = `redis-server is needed for the example and was not found on PATH.
Install it, then run \`make run\` again:
  Debian/Ubuntu:  sudo apt-get install -y redis-server
  Fedora/RHEL:    sudo dnf install -y redis
  macOS:          brew install redis`;

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
}

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

async function startRedis(dir: string): Promise<{ port: number; proc: ChildProcess }> {
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

async function startUpstream(): Promise<{ port: number; server: Server }> {
  const server = createHttpServer((req, res) => {
    res.setHeader('content-type', 'text/plain');
    res.end(`hello from the upstream: ${req.method} ${req.url}\n`);
  });
  const port = await freePort();
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return { port, server };
}

interface Check {
  readonly what: string;
  readonly headers: Record<string, string>;
  readonly status: number;
  readonly header?: readonly [string, string];
}

async function selfCheck(base: string): Promise<boolean> {
  const nonce = `example-${process.pid}-${Date.now()}`;
  const checks: Check[] = [
    { what: 'first use of a nonce passes to the upstream', headers: { 'x-nonce': nonce }, status: 200, header: ['x-replay-check', 'passed'] },
    { what: 'the same nonce again is a replay', headers: { 'x-nonce': nonce }, status: 429 },
    { what: 'no nonce at all', headers: {}, status: 400 },
  ];
  let ok = true;
  for (const c of checks) {
    const res = await fetch(base, { headers: c.headers });
    const body = (await res.text()).trim();
    const good = res.status === c.status && (!c.header || res.headers.get(c.header[0]) === c.header[1]);
    ok &&= good;
    console.log(`${good ? 'ok ' : 'BAD'} ${c.what}: ${res.status} ${body}`);
  }
  return ok;
}

async function main(): Promise<void> {
  const check = process.argv.includes('--check');
  const dir = mkdtempSync(join(tmpdir(), 'pws-example-'));
  const redis = await startRedis(dir);
  const upstream = await startUpstream();
  const [listenerPort, adminPort] = [await freePort(), await freePort()];
  const template = readFileSync(join(ROOT, 'examples', 'static', 'bootstrap.yaml'), 'utf8');
  const bootstrap = template
    .replaceAll('{{ADMIN_PORT}}', String(adminPort))
    .replaceAll('{{LISTENER_PORT}}', String(listenerPort))
    .replaceAll('{{UPSTREAM_PORT}}', String(upstream.port))
    .replaceAll('{{REDIS_PORT}}', String(redis.port))
    .replaceAll('{{PLUGIN_DIR}}', join(ROOT, 'build', 'plugins'));
  const configFile = join(dir, 'bootstrap.yaml');
  writeFileSync(configFile, bootstrap);

  let sidecar: Sidecar | undefined;
  const cleanup = async (): Promise<void> => {
    await sidecar?.stop();
    upstream.server.close();
    redis.proc.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    sidecar = await Sidecar.start({ configFile, logLevel: check ? 'warn' : 'info' });
  } catch (err) {
    await cleanup();
    throw err;
  }
  const base = `http://127.0.0.1:${listenerPort}/`;
  if (check) {
    const ok = await selfCheck(base);
    await cleanup();
    process.exit(ok ? 0 : 1);
  }
  console.log(`
proxy-wasm-sidecar example is running
  listener   ${base}  (replay-protection plugin -> upstream on ${upstream.port})
  redis      127.0.0.1:${redis.port}  (cluster outbound|6379||redis.static)
  admin      http://127.0.0.1:${adminPort}/  (try /clusters, /stats/prometheus, /config_dump)
  bootstrap  ${configFile}

Try it:
  curl -i -H 'x-nonce: n-1' ${base}     # 200 from the upstream, x-replay-check: passed
  curl -i -H 'x-nonce: n-1' ${base}     # 429 replay detected (the nonce is in Redis now)
  curl -i ${base}                       # 400 missing x-nonce header

Ctrl-C stops everything.`);
  const stop = (): void => {
    void cleanup().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
