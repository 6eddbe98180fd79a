import { execFile, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { REPO_ROOT } from '../support/plugins';

/**
 * Test-side handle on test/xds-go, the go-control-plane server: builds it once per source hash into
 * build/xds-go/ (GOTOOLCHAIN=local, -mod=readonly against the committed go.sum, as the Go plugins are built),
 * starts it on a free port, writes snapshot files for it and reads its JSON-line events (requests, responses,
 * ACKs and NACKs as go-control-plane's callbacks saw them).
 */

const SOURCE_DIR = join(REPO_ROOT, 'test', 'xds-go');
const BUILD_DIR = join(REPO_ROOT, 'build', 'xds-go');
const run = promisify(execFile);

export type Json = Record<string, any>;

export interface GoCpEvent {
  readonly event: 'listening' | 'set' | 'status' | 'error' | 'request' | 'response' | 'ack' | 'nack' | 'stream_open' | 'stream_closed' | 'received';
  readonly [key: string]: any;
}

export interface Snapshot {
  readonly version: string;
  /** A type's own version where it differs from `version`. */
  readonly versions?: Readonly<Record<string, string>>;
  /** proto3 JSON Anys: `@type` is the resource's xDS type. */
  readonly resources: readonly Json[];
}

function goBinary(): string {
  if (process.env['GO']) return process.env['GO'];
  for (const dir of (process.env['PATH'] ?? '').split(':')) if (dir && existsSync(join(dir, 'go'))) return join(dir, 'go');
  return '/usr/local/go/bin/go';
}

function sourceHash(): string {
  const h = createHash('sha256');
  for (const f of readdirSync(SOURCE_DIR).filter((n) => n.endsWith('.go') || n === 'go.mod' || n === 'go.sum').sort()) {
    h.update(f).update('\0').update(readFileSync(join(SOURCE_DIR, f))).update('\0');
  }
  return h.digest('hex').slice(0, 16);
}

let building: Promise<string> | undefined;

/** The server binary, built unless this source hash was built before. */
export function buildGoControlPlane(): Promise<string> {
  building ??= (async () => {
    const target = join(BUILD_DIR, `xds-go-${sourceHash()}`);
    if (existsSync(target)) return target;
    mkdirSync(BUILD_DIR, { recursive: true });
    const tmp = `${target}.${process.pid}.tmp`;
    const env = { ...process.env, GOTOOLCHAIN: 'local', GOFLAGS: '-mod=readonly', CGO_ENABLED: '0' };
    try {
      await run(goBinary(), ['build', '-trimpath', '-o', tmp, '.'], { cwd: SOURCE_DIR, env, maxBuffer: 16 << 20 });
    } catch (err) {
      const e = err as Error & { stderr?: string };
      throw new Error(`building test/xds-go (go-control-plane needs the Go its go.mod names, with GOTOOLCHAIN=local): ${e.stderr || e.message}`);
    }
    renameSync(tmp, target);
    return target;
  })();
  return building;
}

type Waiter = { readonly match: (e: GoCpEvent) => boolean; readonly resolve: (e: GoCpEvent) => void };

export class GoControlPlane {
  readonly events: GoCpEvent[] = [];
  private readonly waiters = new Set<Waiter>();
  private readonly dir = mkdtempSync(join(tmpdir(), 'pws-gocp-'));
  private nextId = 1;
  private exited: Promise<void>;
  private stderr = '';

  private constructor(private readonly child: ChildProcessWithoutNullStreams, readonly port: number) {
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
  }

  static async start(options: { port?: number } = {}): Promise<GoControlPlane> {
    const bin = await buildGoControlPlane();
    const child = spawn(bin, ['-port', String(options.port ?? 0)], { stdio: ['pipe', 'pipe', 'pipe'] });
    const lines = createInterface({ input: child.stdout });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const port = await new Promise<number>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`xds-go exited with ${code} before listening: ${stderr}`)));
      lines.once('line', (line) => {
        const e = JSON.parse(line) as GoCpEvent;
        if (e.event === 'listening') resolve(e['port'] as number);
        else reject(new Error(`xds-go: ${line}`));
      });
    });
    const cp = new GoControlPlane(child, port);
    child.stderr.on('data', (d: Buffer) => { cp.stderr += d.toString(); });
    lines.on('line', (line) => cp.onEvent(JSON.parse(line) as GoCpEvent));
    return cp;
  }

  /** What the sidecar's bootstrap points its xds-grpc cluster at. */
  get target(): string {
    return `127.0.0.1:${this.port}`;
  }

  private onEvent(e: GoCpEvent): void {
    this.events.push(e);
    for (const w of [...this.waiters]) {
      if (!w.match(e)) continue;
      this.waiters.delete(w);
      w.resolve(e);
    }
  }

  /** The first event (already seen or still to come) that matches. */
  waitFor(match: (e: GoCpEvent) => boolean, what: string, timeoutMs = 20_000): Promise<GoCpEvent> {
    const seen = this.events.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`go-control-plane: no ${what} within ${timeoutMs} ms; events: ${JSON.stringify(this.events.slice(-20))}; stderr: ${this.stderr.slice(-2000)}`));
      }, timeoutMs);
      const waiter: Waiter = { match, resolve: (e) => { clearTimeout(timer); resolve(e); } };
      this.waiters.add(waiter);
    });
  }

  private command(cmd: Json): Promise<GoCpEvent> {
    const id = this.nextId++;
    this.child.stdin.write(`${JSON.stringify({ id, ...cmd })}\n`);
    return this.waitFor((e) => (e.event === cmd['cmd'] || e.event === 'status' || e.event === 'error') && e['id'] === id, `reply to ${cmd['cmd']} ${id}`).then((e) => {
      if (e.event === 'error') throw new Error(`xds-go: ${e['message']}`);
      return e;
    });
  }

  /** Serves `snapshot` to every node (written as YAML or JSON, as the server reads both). */
  async set(snapshot: Snapshot, format: 'json' | 'yaml' = 'json'): Promise<void> {
    const file = join(this.dir, `snapshot-${this.nextId}.${format}`);
    // JSON is YAML: a .yaml file takes the server's YAML path with the same text.
    writeFileSync(file, JSON.stringify(snapshot, null, 2));
    await this.command({ cmd: 'set', file });
  }

  /** Per type URL: the last ACKed version, the last NACK and its error, counts. */
  async status(): Promise<Record<string, { acked: string; nacked?: string; error?: string; acks: number; nacks: number }>> {
    return (await this.command({ cmd: 'status' }))['types'] as Record<string, { acked: string; nacked?: string; error?: string; acks: number; nacks: number }>;
  }

  /** The sidecar's ACK of `version` for `typeUrl`. */
  ack(typeUrl: string, version: string): Promise<GoCpEvent> {
    return this.waitFor((e) => e.event === 'ack' && e['typeUrl'] === typeUrl && e['version'] === version, `ACK of ${typeUrl} ${version}`);
  }

  /** The sidecar's NACK of `version` for `typeUrl`. */
  nack(typeUrl: string, version: string): Promise<GoCpEvent> {
    return this.waitFor((e) => e.event === 'nack' && e['typeUrl'] === typeUrl && e['version'] === version, `NACK of ${typeUrl} ${version}`);
  }

  async close(): Promise<void> {
    this.child.stdin.end();
    const killer = setTimeout(() => this.child.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(killer);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
