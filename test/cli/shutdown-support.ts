import { spawn, type ChildProcess } from 'node:child_process';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/plugins';
import { until } from '../support/until';
import { bootstrapJson, TempDir, Upstream } from '../http/helpers';

// What the shutdown tests (test/cli/shutdown.test.ts, test/workers/shutdown.test.ts) share: the real CLI as a
// child process, an upstream that never answers /stuck, and raw clients that can half-close.

export const CLI = join(REPO_ROOT, 'dist', 'src', 'cli.js');

export interface Run {
  readonly child: ChildProcess;
  readonly port: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly stdout: () => string;
  readonly stderr: () => string;
}

/** The real CLI as a child (`nodeArgs` go to node itself, e.g. V8 flags), once it prints its first listener. */
export async function startCli(cliArgs: readonly string[], nodeArgs: readonly string[] = []): Promise<Run> {
  const child = spawn(process.execPath, [...nodeArgs, CLI, ...cliArgs], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => { stdout += c.toString(); });
  child.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  const early = exited.then((e) => { throw new Error(`sidecar exited (${e.code}) before listening: ${stderr}`); });
  early.catch(() => undefined);
  await Promise.race([until(() => /listening \S+ 127\.0\.0\.1:\d+/.test(stdout), 60_000, 'listening'), early]);
  return { child, port: Number(/listening \S+ 127\.0\.0\.1:(\d+)/.exec(stdout)![1]), exited, stdout: () => stdout, stderr: () => stderr };
}

/** An upstream whose /stuck never answers, and a bootstrap (one probe plugin) in front of it. */
export class ShutdownFixture {
  private constructor(readonly tmp: TempDir, readonly up: Upstream, readonly file: string) {}

  static async start(): Promise<ShutdownFixture> {
    const up = await Upstream.start((req, res) => {
      if (req.url === '/stuck') return; // never answered
      res.end('ok');
    });
    const tmp = new TempDir();
    const file = tmp.write('shutdown.json', bootstrapJson({
      filters: [{ plugin: 'worker-probe', name: 'probe', rootId: 'worker_probe', vmId: 'probe' }],
      clusters: [{ name: 'backend', port: up.port }],
    }));
    return new ShutdownFixture(tmp, up, file);
  }

  stuckSeen(): number {
    return this.up.requests.filter((r) => r.url === '/stuck').length;
  }

  /** `run -c <bootstrap> --log-level info ...args`, once it prints its listener. */
  run(args: readonly string[], file = this.file): Promise<Run> {
    return startCli(['run', '-c', file, '--log-level', 'info', ...args]);
  }

  /** A request to /stuck on `run`, once the upstream has it (in flight for good). */
  async stuckRequest(run: Run, halfClose: boolean): Promise<{ socket: Socket; closed: Promise<string> }> {
    const seen = this.stuckSeen();
    const client = rawRequest(run.port, '/stuck', halfClose);
    await until(() => this.stuckSeen() > seen, 10_000, 'the request reached the upstream');
    return client;
  }

  async close(): Promise<void> {
    await this.up.close();
    this.tmp.cleanup();
  }
}

/**
 * A raw client that sends `GET path` and keeps reading; with `halfClose` it then sends its FIN (a half-open
 * connection). Resolves when the sidecar closes the connection.
 */
export function rawRequest(port: number, path: string, halfClose: boolean): { socket: Socket; closed: Promise<string> } {
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

/** The drain tests both files run, for one --concurrency. */
export const drainCases = (fx: () => ShutdownFixture, concurrency: number): Array<[string, () => Promise<void>]> => [
  ['SIGTERM with a half-open client and a request stuck upstream: drains, closes the client, exits 0', async () => {
    const f = fx();
    const r = await f.run(['--concurrency', String(concurrency), '--drain-timeout-ms', '1000']);
    const client = await f.stuckRequest(r, true);
    r.child.kill('SIGTERM');
    const [exit] = await Promise.all([r.exited, client.closed]);
    assertExit(exit, 0, r);
    if (!/"msg":"draining"/.test(r.stderr())) throw new Error(`no "draining" log: ${r.stderr()}`);
  }],
  ['SIGTERM with a request stuck upstream in flight: the drain time passes, the request is reset, exits 0', async () => {
    const f = fx();
    const r = await f.run(['--concurrency', String(concurrency), '--drain-timeout-ms', '1000']);
    const client = await f.stuckRequest(r, false);
    r.child.kill('SIGTERM');
    const [exit] = await Promise.all([r.exited, client.closed]);
    assertExit(exit, 0, r);
    // Each worker drained and exited by itself, without the pool's last resort.
    if (/did not exit after draining/.test(r.stderr())) throw new Error(`a worker had to be terminated: ${r.stderr()}`);
  }],
  ['a second SIGTERM exits at once (143) while the drain waits on a stuck request', async () => {
    const f = fx();
    // A drain time far past the test's own timeout: only the second signal can end this run in time.
    const r = await f.run(['--concurrency', String(concurrency), '--drain-timeout-ms', '600000']);
    const client = await f.stuckRequest(r, false);
    r.child.kill('SIGTERM');
    await until(() => /"msg":"draining"/.test(r.stderr()), 10_000, 'draining');
    r.child.kill('SIGTERM');
    assertExit(await r.exited, 143, r);
    if (!/SIGTERM during the drain: exiting now/.test(r.stderr())) throw new Error(`no second-signal message: ${r.stderr()}`);
    await client.closed;
  }],
];

export function assertExit(exit: { code: number | null; signal: NodeJS.Signals | null }, code: number, run: Run): void {
  if (exit.code !== code || exit.signal !== null) throw new Error(`expected exit code ${code}, got ${JSON.stringify(exit)}: ${run.stderr()}`);
}
