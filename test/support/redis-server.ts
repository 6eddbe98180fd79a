/**
 * Real redis-server processes for tests and benchmarks: Debian's binary on PATH, on a free loopback port
 * (never 6379), no persistence. Each server gets its own temp dir. `stop()`/`kill()` wait for the process to exit;
 * `restart()` starts it again on the same port. Stalls are made with `DEBUG SLEEP` through a side client.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { freePort } from '../../src/common/free-port';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Redis, { type RedisOptions } from 'ioredis';

export interface RedisAclUser {
  readonly name: string;
  readonly password: string;
  /** ACL rules after `on >password`; default `~* &* +@all`. */
  readonly rules?: readonly string[];
}

export interface RedisServerOptions {
  readonly requirepass?: string;
  readonly users?: readonly RedisAclUser[];
  /** Fixed port (e.g. to restart on the same one); default: a free one. */
  readonly port?: number;
  readonly extraArgs?: readonly string[];
  readonly startTimeoutMs?: number;
}

const HOST = '127.0.0.1';

export { freePort };

export class RedisServer {
  readonly host = HOST;
  private proc: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private output = '';
  private readonly dir: string;
  private readonly clients = new Set<Redis>();

  private constructor(
    readonly port: number,
    private readonly options: RedisServerOptions,
  ) {
    this.dir = mkdtempSync(join(tmpdir(), 'pws-redis-'));
  }

  /** Starts a server; retries on another free port if the chosen one was taken meanwhile. */
  static async start(options: RedisServerOptions = {}): Promise<RedisServer> {
    let lastErr: unknown;
    for (let attempt = 0; attempt < 5; attempt++) {
      const port = options.port ?? (await freePort());
      if (port === 6379) continue;
      const server = new RedisServer(port, options);
      try {
        await server.launch();
        return server;
      } catch (err) {
        lastErr = err;
        await server.stop();
        if (options.port !== undefined) break;
      }
    }
    throw new Error(`could not start redis-server: ${String(lastErr)}`);
  }

  get running(): boolean {
    return this.proc !== null;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** A parsed client for inspecting server state (closed by stop()). Authenticates as the default user. */
  client(options: RedisOptions = {}): Redis {
    const c = new Redis({
      host: this.host,
      port: this.port,
      password: this.options.requirepass,
      lazyConnect: false,
      maxRetriesPerRequest: 1,
      retryStrategy: () => null,
      ...options,
    });
    c.on('error', () => {});
    this.clients.add(c);
    c.once('end', () => this.clients.delete(c));
    return c;
  }

  /** Makes the server unresponsive for `seconds` (DEBUG SLEEP from a side client); resolves once it is asleep. */
  async pause(seconds: number): Promise<void> {
    const c = this.client();
    await c.ping();
    void c
      .call('DEBUG', 'SLEEP', String(seconds))
      .catch(() => {})
      .finally(() => c.disconnect());
    // DEBUG SLEEP blocks the event loop once the command is read; give it the moment to be read.
    await new Promise<void>((resolve) => setTimeout(resolve, 20));
  }

  /** Graceful stop (SIGTERM); waits for exit. Idempotent. */
  async stop(): Promise<void> {
    await this.kill('SIGTERM');
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Sends `signal` and waits for the process to exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    for (const c of this.clients) c.disconnect();
    this.clients.clear();
    const proc = this.proc;
    if (!proc) return;
    proc.kill(signal);
    await this.exited;
  }

  /** Starts the process again on the same port (after kill/stop). */
  async restart(): Promise<void> {
    if (this.proc) await this.kill('SIGKILL');
    let lastErr: unknown;
    for (let attempt = 0; attempt < 20; attempt++) {
      try {
        await this.launch();
        return;
      } catch (err) {
        lastErr = err;
        await new Promise<void>((resolve) => setTimeout(resolve, 100));
      }
    }
    throw new Error(`could not restart redis-server on ${this.port}: ${String(lastErr)}`);
  }

  private async launch(): Promise<void> {
    const args = [
      '--port', String(this.port),
      '--bind', HOST,
      '--save', '',
      '--appendonly', 'no',
      '--daemonize', 'no',
      '--protected-mode', 'no',
      '--enable-debug-command', 'yes',
      '--dir', this.dir,
      '--logfile', '',
      ...(this.options.requirepass ? ['--requirepass', this.options.requirepass] : []),
      ...(this.options.extraArgs ?? []),
    ];
    this.output = '';
    const proc = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    const append = (d: Buffer): void => {
      this.output = (this.output + d.toString()).slice(-8192);
    };
    proc.stdout?.on('data', append);
    proc.stderr?.on('data', append);
    this.exited = new Promise<void>((resolve) => {
      proc.once('exit', () => {
        if (this.proc === proc) this.proc = null;
        resolve();
      });
    });
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 5000);
    for (;;) {
      if (this.proc !== proc) throw new Error(`redis-server exited: ${this.output.trim().split('\n').slice(-3).join(' | ')}`);
      if (await this.pings()) break;
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        await this.exited;
        throw new Error(`redis-server did not answer PING on ${this.port}`);
      }
      await new Promise<void>((resolve) => setTimeout(resolve, 20));
    }
    for (const user of this.options.users ?? []) {
      const c = this.client();
      await c.call('ACL', 'SETUSER', user.name, 'reset', 'on', `>${user.password}`, ...(user.rules ?? ['~*', '&*', '+@all']));
      c.disconnect();
    }
  }

  /** True once the server answers (PONG, or -NOAUTH when a password is required). */
  private pings(): Promise<boolean> {
    return new Promise((resolve) => {
      const s = connect({ host: HOST, port: this.port });
      const done = (ok: boolean): void => {
        s.destroy();
        resolve(ok);
      };
      s.setTimeout(500, () => done(false));
      s.once('error', () => done(false));
      s.once('connect', () => s.write('PING\r\n'));
      s.once('data', (d: Buffer) => done(d[0] === 0x2b || d.toString().startsWith('-NOAUTH')));
    });
  }
}
