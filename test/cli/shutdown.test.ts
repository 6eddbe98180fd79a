import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT } from '../support/plugins';
import { REFUSED_PORT } from '../support/ports';
import { until } from '../support/until';
import { bootstrapJson, TempDir, Upstream } from '../http/helpers';

// Shutdown always ends (issue 14 item 3), the real CLI as a child process: SIGTERM drains and exits whatever a
// client connection or an upstream is doing, a second signal exits at once, and the exit code says which.
// An upstream that never answers /stuck keeps a request in flight; a client that half-closes its connection
// (FIN after the request, still reading) is the case that used to hang --concurrency 2 for ever.

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli.js');
const tmp = new TempDir();
let up: Upstream;
let file: string;

before(async () => {
  up = await Upstream.start((req, res) => {
    if (req.url === '/stuck') return; // never answered
    res.end('ok');
  });
  file = tmp.write('shutdown.json', bootstrapJson({
    filters: [{ plugin: 'worker-probe', name: 'probe', rootId: 'worker_probe', vmId: 'probe' }],
    clusters: [{ name: 'backend', port: up.port }],
  }));
});
after(async () => {
  await up?.close();
  tmp.cleanup();
});

interface Run {
  readonly child: ChildProcess;
  readonly port: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly stderr: () => string;
}

async function run(args: readonly string[]): Promise<Run> {
  const child = spawn(process.execPath, [CLI, 'run', '-c', file, '--log-level', 'info', ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => { stdout += c.toString(); });
  child.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  const early = exited.then((e) => { throw new Error(`sidecar exited (${e.code}) before listening: ${stderr}`); });
  early.catch(() => undefined);
  await Promise.race([until(() => /listening \S+ 127\.0\.0\.1:\d+/.test(stdout), 60_000, 'listening'), early]);
  return { child, port: Number(/listening \S+ 127\.0\.0\.1:(\d+)/.exec(stdout)![1]), exited, stderr: () => stderr };
}

/**
 * A raw client that sends `GET path` and keeps reading; with `halfClose` it then sends its FIN (a half-open
 * connection). Resolves when the sidecar closes the connection.
 */
function rawRequest(port: number, path: string, halfClose: boolean): { socket: Socket; closed: Promise<string> } {
  const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  let received = '';
  socket.on('data', (c: Buffer) => { received += c.toString(); });
  socket.on('error', () => undefined);
  socket.on('end', () => socket.end()); // allowHalfOpen: the sidecar's FIN closes the read side only
  const request = `GET ${path} HTTP/1.1\r\nhost: test\r\n\r\n`;
  socket.on('connect', () => (halfClose ? socket.end(request) : socket.write(request)));
  const closed = new Promise<string>((resolve) => socket.on('close', () => resolve(received)));
  return { socket, closed };
}

const stuckSeen = (): number => up.requests.filter((r) => r.url === '/stuck').length;

for (const concurrency of [1, 2]) {
  describe(`--concurrency ${concurrency}`, () => {
    it('SIGTERM with a half-open client and a request stuck upstream: drains, closes the client, exits 0', async () => {
      const r = await run(['--concurrency', String(concurrency), '--drain-timeout-ms', '1000']);
      const seen = stuckSeen();
      const client = rawRequest(r.port, '/stuck', true);
      await until(() => stuckSeen() > seen, 10_000, 'the request reached the upstream');
      r.child.kill('SIGTERM');
      const [exit] = await Promise.all([r.exited, client.closed]);
      assert.deepEqual(exit, { code: 0, signal: null }, r.stderr());
      assert.match(r.stderr(), /"msg":"draining"/);
    });

    it('SIGTERM with a request stuck upstream in flight: the drain time passes, the request is reset, exits 0', async () => {
      const r = await run(['--concurrency', String(concurrency), '--drain-timeout-ms', '1000']);
      const seen = stuckSeen();
      const client = rawRequest(r.port, '/stuck', false);
      await until(() => stuckSeen() > seen, 10_000, 'the request reached the upstream');
      r.child.kill('SIGTERM');
      const [exit] = await Promise.all([r.exited, client.closed]);
      assert.deepEqual(exit, { code: 0, signal: null }, r.stderr());
    });

    it('a second SIGTERM exits at once (143) while the drain waits on a stuck request', async () => {
      // A drain time far past the test's own timeout: only the second signal can end this run in time.
      const r = await run(['--concurrency', String(concurrency), '--drain-timeout-ms', '600000']);
      const seen = stuckSeen();
      const client = rawRequest(r.port, '/stuck', false);
      await until(() => stuckSeen() > seen, 10_000, 'the request reached the upstream');
      r.child.kill('SIGTERM');
      await until(() => /"msg":"draining"/.test(r.stderr()), 10_000, 'draining');
      r.child.kill('SIGTERM');
      assert.deepEqual(await r.exited, { code: 143, signal: null }, r.stderr());
      assert.match(r.stderr(), /SIGTERM during the drain: exiting now/);
      await client.closed;
    });
  });
}

it('a shutdown that runs past the drain time and its grace exits 1', async () => {
  // Grace 0: the deadline is the drain time itself, set before the drain starts, so it comes first while the
  // drain still waits on the stuck request.
  const r = await run(['--concurrency', '2', '--drain-timeout-ms', '1500', '--shutdown-grace-ms', '0']);
  const seen = stuckSeen();
  const client = rawRequest(r.port, '/stuck', false);
  await until(() => stuckSeen() > seen, 10_000, 'the request reached the upstream');
  r.child.kill('SIGTERM');
  assert.deepEqual(await r.exited, { code: 1, signal: null }, r.stderr());
  assert.match(r.stderr(), /shutdown did not finish within 1500 ms \(drain 1500 ms \+ grace 0 ms\): exiting/);
  await client.closed;
});

it('SIGTERM while the sidecar starts exits at once with 143', async () => {
  // Start waits for the initial xDS fetch, with no timeout (0s), from a control plane that is not there.
  const doc = bootstrapJson({ filters: [], clusters: [{ name: 'backend', port: up.port }, { name: 'xds-grpc', port: REFUSED_PORT }] });
  Object.assign(doc, {
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    dynamic_resources: {
      ads_config: { api_type: 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'xds-grpc' } }] },
      cds_config: { ads: {}, resource_api_version: 'V3', initial_fetch_timeout: '0s' },
    },
  });
  const starting = tmp.write('starting.json', doc);
  const child = spawn(process.execPath, [CLI, 'run', '-c', starting, '--log-level', 'info', '--concurrency', '2'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  await until(() => /"msg":"admin listening"/.test(stderr) || child.exitCode !== null, 30_000, 'admin listening');
  child.kill('SIGTERM');
  assert.deepEqual(await exited, { code: 143, signal: null }, stderr);
});

it('SIGINT after SIGTERM exits at once with 130', async () => {
  const r = await run(['--concurrency', '2', '--drain-timeout-ms', '600000']);
  const seen = stuckSeen();
  const client = rawRequest(r.port, '/stuck', false);
  await until(() => stuckSeen() > seen, 10_000, 'the request reached the upstream');
  r.child.kill('SIGTERM');
  await until(() => /"msg":"draining"/.test(r.stderr()), 10_000, 'draining');
  r.child.kill('SIGINT');
  assert.deepEqual(await r.exited, { code: 130, signal: null }, r.stderr());
  await client.closed;
});

it('an idle sidecar exits 0 on SIGINT', async () => {
  const r = await run(['--concurrency', '2']);
  r.child.kill('SIGINT');
  assert.deepEqual(await r.exited, { code: 0, signal: null }, r.stderr());
});
