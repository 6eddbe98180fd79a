/**
 * The pieces every load benchmark shares: the sidecar as a `proxy-wasm-sidecar run` child process of its own (so
 * the CPU read from /proc, the run time of all its threads, is the sidecar's alone), wrk as the load
 * generator (C, one thread, its end-of-run summary as JSON through wrk-report.lua), and the table printing.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { REPO_ROOT } from '../../test/support/plugins';

export const WRK = '/usr/bin/wrk';

export interface WrkSummary {
  requests: number;
  duration_us: number;
  connect: number;
  read: number;
  write: number;
  status: number;
  timeout: number;
  p50_us: number;
  p99_us: number;
}

export interface Sample {
  readonly cpuUsPerRequest: number;
  /** Sidecar CPU time over wall time: near 100% means the sidecar, not the load generator, set the pace. */
  readonly cpuShare: number;
  readonly qps: number;
  readonly p99Us: number;
  readonly requests: number;
  readonly failed: number;
}

/**
 * CPU time of a process, all its threads, in seconds: the sum of its threads' /proc/<pid>/task/<tid>/schedstat
 * run time (nanoseconds), else utime + stime of /proc/<pid>/stat. The ticks of utime/stime (10 ms) would
 * quantise a 5000-request sample to 2 µs per request, as coarse as the goals it is held to.
 */
export function cpuSeconds(pid: number, ticksPerSecond: number): number {
  const threads = threadRunTimes(pid);
  if (threads !== undefined && threads.main + threads.others > 0) return (threads.main + threads.others) / 1e9;
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command (which may hold spaces): state is field 3, utime 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

/**
 * Run time (ns, /proc/<pid>/task/<tid>/schedstat) of a process's main thread and of all its other threads
 * together; undefined without schedstat (a kernel without CONFIG_SCHEDSTATS).
 */
export function threadRunTimes(pid: number): { main: number; others: number } | undefined {
  let main = 0;
  let others = 0;
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        const ns = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
        if (tid === String(pid)) main += ns;
        else others += ns;
      } catch {
        // the thread ended meanwhile
      }
    }
  } catch {
    return undefined;
  }
  return { main, others };
}

/** Resident set size of a process in bytes (/proc/<pid>/status VmRSS). */
export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

export function clockTicks(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}

export interface SidecarProcessOptions {
  /** Node flags before the script (`--cpu-prof`, ...). */
  readonly nodeArgs?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
  /** `run` flags after the config (default `--log-level error --concurrency 1`). */
  readonly runArgs?: readonly string[];
  /** Another build's cli.js (a before/after comparison); default this repository's dist/src/cli.js. */
  readonly cli?: string;
}

/**
 * The node flags the image starts the sidecar with: those between `node` and the script in deploy/Dockerfile's
 * ENTRYPOINT, read from there so a bench row "as the image runs it" cannot drift from the image.
 */
export function imageNodeArgs(): string[] {
  const lines = readFileSync(join(REPO_ROOT, 'deploy', 'Dockerfile'), 'utf8').split('\n').filter((l) => /^ENTRYPOINT\s/.test(l));
  const argv = JSON.parse(lines[lines.length - 1]!.replace(/^ENTRYPOINT\s+/, '')) as string[];
  const script = argv.findIndex((a, i) => i > 0 && !a.startsWith('-'));
  return argv.slice(1, script);
}

/** A `proxy-wasm-sidecar run` child process; start() resolves once it prints its listener. */
export class SidecarProcess {
  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
  ) {}

  static start(configFile: string, options: SidecarProcessOptions = {}): Promise<SidecarProcess> {
    const cli = options.cli ?? join(REPO_ROOT, 'dist', 'src', 'cli.js');
    const runArgs = options.runArgs ?? ['--log-level', 'error', '--concurrency', '1'];
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), cli, 'run', '-c', configFile, ...runArgs], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: options.env ?? process.env,
    });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => { stderr = (stderr + c.toString()).slice(-4000); });
    return new Promise((resolve, reject) => {
      const lines = createInterface({ input: child.stdout! });
      const onExit = (code: number | null): void => reject(new Error(`sidecar exited ${code} before listening: ${stderr}`));
      child.once('exit', onExit);
      child.once('error', reject);
      lines.on('line', (line) => {
        const m = /^listening \S+ [\d.]+:(\d+)$/.exec(line);
        if (!m) return;
        child.off('exit', onExit);
        resolve(new SidecarProcess(child, Number(m[1])));
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** SIGTERM, and wait for the exit (a --cpu-prof profile is written then). */
  stop(): Promise<void> {
    return terminate(this.child);
  }
}

/** SIGTERM to a child, resolved once it exited (at once when it already has). */
export function terminate(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

export interface WrkOptions {
  readonly connections: number;
  /** A Lua script of bench/go (default wrk-report.lua, which only reports). */
  readonly script?: string;
  /** wrk's environment additions (PWS_WRK_NONCE_HEADER for wrk-report.lua). */
  readonly env?: Readonly<Record<string, string>>;
  /** Request headers on every request (`name: value`, wrk -H). */
  readonly headers?: readonly string[];
}

export function runWrk(url: string, seconds: number, options: WrkOptions): Promise<WrkSummary> {
  const script = join(REPO_ROOT, 'bench', 'go', options.script ?? 'wrk-report.lua');
  const headers = (options.headers ?? []).flatMap((h) => ['-H', h]);
  const args = ['-t1', `-c${options.connections}`, `-d${seconds}s`, '--timeout', '10s', ...headers, '-s', script, url];
  return new Promise((resolve, reject) => {
    const child = spawn(WRK, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } });
    let out = '';
    let err = '';
    child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { err += c.toString(); });
    child.on('error', reject);
    child.on('close', (code) => {
      const json = out.split('\n').find((l) => l.startsWith('{'));
      if (code !== 0 || !json) return reject(new Error(`wrk exited ${code}: ${err || out}`));
      resolve(JSON.parse(json) as WrkSummary);
    });
  });
}

/** A process under load: its pid (for /proc) and the loopback port it serves. */
export interface LoadTarget {
  readonly pid: number;
  readonly port: number;
}

/** One wrk run against the target, with the target's CPU over it. */
export async function measure(sidecar: LoadTarget, path: string, seconds: number, ticks: number, wrk: WrkOptions): Promise<Sample> {
  const cpu0 = cpuSeconds(sidecar.pid, ticks);
  const r = await runWrk(`http://127.0.0.1:${sidecar.port}${path}`, seconds, wrk);
  const cpu = cpuSeconds(sidecar.pid, ticks) - cpu0;
  const failed = r.connect + r.read + r.write + r.status + r.timeout;
  const wall = r.duration_us / 1e6;
  return { cpuUsPerRequest: r.requests > 0 ? (cpu * 1e6) / r.requests : NaN, cpuShare: cpu / wall, qps: r.requests / wall, p99Us: r.p99_us, requests: r.requests, failed };
}

export const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
export const minOf = (xs: readonly number[]): number => Math.min(...xs);
export const maxOf = (xs: readonly number[]): number => Math.max(...xs);
export const verdict = (met: boolean): string => (met ? 'met' : 'NOT MET');

export function printTable(header: readonly string[], body: readonly (readonly string[])[]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of body) console.log(line(r));
}
