/**
 * `--concurrency N` against 1 on the same machine: each row is a `proxy-wasm-sidecar run` child process of its
 * own serving the Go header plugin (Higress SDK) in front of an upstream process, with wrk (one thread) as load
 * generator on the same cores. Rows are interleaved (A B A B ...) over several rounds; CPU µs per request is the
 * sidecar process's utime + stime (all its threads, from /proc) over the requests wrk counted. Then the cost of a
 * worker: time from spawn to `listening` and idle RSS of the process at --concurrency 1, 2 and 3 (a worker's
 * cost is the step from 2 to 3; 1 has no workers at all), and each worker's own start from its `worker ready`
 * log line (spawn to serving; by phase: thread up, require, config, plugins, listen; and the thread's own CPU time). Figures are printed beside their goals (issue 13 item 3).
 * PWS_BENCH_WORKERS_BEFORE=<path to another build's dist/src/cli.js> adds that build's rows, interleaved with
 * these, for a before/after under the same load. Flags: --throughput-only, --cost-only. Never pass/fail.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { request } from 'undici';
import { REPO_ROOT } from '../../test/support/plugins';
import { bootstrapJson, TempDir, type FilterSpec } from '../../test/http/helpers';
import { startUpstream } from '../http/http-bench';
import { envNumber } from '../support/env';

const WRK = '/usr/bin/wrk';
const CONNECTIONS = envNumber('PWS_BENCH_WORKERS_CONNECTIONS', 32);
const SECONDS = envNumber('PWS_BENCH_WORKERS_SECONDS', 4);
const ROUNDS = envNumber('PWS_BENCH_WORKERS_ROUNDS', 3);
const GOAL_RATIO = 1.0;
const GOAL_WORKER_START_MS = 300;
const GOAL_WORKER_MB = 60;

const FILTERS: readonly FilterSpec[] = [{ plugin: 'go/add-header', name: 'go-add-header', rootId: '', configuration: JSON.stringify({ value: 'v1' }) }];

function clockTicks(): number {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
}
const TICKS = clockTicks();

/** utime + stime of a process (all threads), seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** A worker's `worker ready` log line: its start as the pool saw it, and by phase where the build reports them. */
interface WorkerReady {
  readonly startMs: number;
  readonly threadMs?: number;
  readonly requireMs?: number;
  readonly configMs?: number;
  readonly pluginsMs?: number;
  readonly listenMs?: number;
  /** The worker thread's own CPU time by phase (builds that report it, on Linux). */
  readonly cpuMs?: { readonly requireMs: number; readonly configMs: number; readonly pluginsMs: number; readonly listenMs: number };
}

interface Sidecar {
  readonly child: ChildProcess;
  readonly port: number;
  /** Spawn to the `listening` line. */
  readonly startMs: number;
  /** Each worker's `worker ready` line (with --log-level info; none at --concurrency 1). */
  readonly workers: readonly WorkerReady[];
}

/** A row: a --concurrency, and the CLI build it runs (PWS_BENCH_WORKERS_BEFORE adds rows of another build, e.g. the code before a change). */
interface Level {
  readonly name: string;
  readonly concurrency: number;
  readonly cli: string;
}

function startSidecar(configFile: string, level: Level, logLevel: 'error' | 'info' = 'error'): Promise<Sidecar> {
  const t0 = process.hrtime.bigint();
  const workers: WorkerReady[] = [];
  const child = spawn(process.execPath, [level.cli, 'run', '-c', configFile, '--log-level', logLevel, '--concurrency', String(level.concurrency)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => { stderr = (stderr + c.toString()).slice(-4000); });
  // The log (stderr) has each worker's `worker ready` line before `listening` is printed.
  createInterface({ input: child.stderr! }).on('line', (line) => {
    if (line.includes('"msg":"worker ready"')) workers.push(JSON.parse(line) as WorkerReady);
  });
  return new Promise((resolve, reject) => {
    const onExit = (code: number | null): void => reject(new Error(`sidecar exited ${code} before listening: ${stderr}`));
    child.once('exit', onExit);
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /^listening \S+ [\d.]+:(\d+)$/.exec(line);
      if (!m) return;
      child.off('exit', onExit);
      resolve({ child, port: Number(m[1]), startMs: Number(process.hrtime.bigint() - t0) / 1e6, workers });
    });
  });
}

function stopSidecar(s: Sidecar): Promise<void> {
  if (s.child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    s.child.once('exit', () => resolve());
    s.child.kill('SIGTERM');
  });
}

interface Sample { readonly cpuUs: number; readonly qps: number; readonly failed: number; readonly requests: number }

function wrk(url: string, seconds: number): Promise<{ requests: number; duration_us: number; connect: number; read: number; write: number; status: number; timeout: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(WRK, ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--timeout', '10s', '-s', join(REPO_ROOT, 'bench', 'go', 'wrk-report.lua'), url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    child.on('error', reject);
    child.on('close', (code) => {
      const json = out.split('\n').find((l) => l.startsWith('{'));
      if (code !== 0 || !json) return reject(new Error(`wrk exited ${code}: ${out}`));
      resolve(JSON.parse(json));
    });
  });
}

async function measure(s: Sidecar, seconds: number): Promise<Sample> {
  const pid = s.child.pid!;
  const cpu0 = cpuSeconds(pid);
  const r = await wrk(`http://127.0.0.1:${s.port}/bench`, seconds);
  const cpu = cpuSeconds(pid) - cpu0;
  return { cpuUs: (cpu * 1e6) / r.requests, qps: r.requests / (r.duration_us / 1e6), failed: r.connect + r.read + r.write + r.status + r.timeout, requests: r.requests };
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const verdict = (met: boolean): string => (met ? 'met' : 'NOT MET');

function table(header: readonly string[], body: readonly (readonly string[])[]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((r) => r[i]!.length)));
  const line = (cells: readonly string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of body) console.log(line(r));
}

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli.js');
const BEFORE = process.env['PWS_BENCH_WORKERS_BEFORE'];

function levelsOf(concurrencies: readonly number[]): Level[] {
  const out = concurrencies.map((c) => ({ name: `--concurrency ${c}`, concurrency: c, cli: CLI }));
  if (BEFORE) out.push(...concurrencies.map((c) => ({ name: `before: --concurrency ${c}`, concurrency: c, cli: BEFORE })));
  return out;
}

async function throughput(file: string): Promise<void> {
  const levels = levelsOf([1, 2]);
  const sidecars: Sidecar[] = [];
  try {
    for (const l of levels) {
      const s = await startSidecar(file, l);
      sidecars.push(s);
      const res = await request(`http://127.0.0.1:${s.port}/bench`);
      await res.body.dump();
      if (res.statusCode !== 200 || res.headers['x-go-response'] !== 'v1') throw new Error(`${l.name} does not run the plugin: ${res.statusCode}`);
    }
    for (const s of sidecars) await wrk(`http://127.0.0.1:${s.port}/bench`, 5); // warm-up: JIT and tier-up of the Go module
    const samples: Sample[][] = levels.map(() => []);
    for (let round = 0; round < ROUNDS; round++) {
      for (const [i, s] of sidecars.entries()) samples[i]!.push(await measure(s, SECONDS));
    }
    console.log(`Go add-header plugin, ${ROUNDS} rounds interleaved, ${SECONDS} s per row and round, wrk -t1 -c${CONNECTIONS} on the same cores; CPU = utime+stime of the sidecar process / requests; node ${process.version}, ${cpus().length} cores, load average ${loadavg().map((x) => x.toFixed(1)).join(' ')} at the end`);
    const baseQps = median(samples[0]!.map((s) => s.qps));
    table(['row', 'qps min', 'median', 'max', 'vs c1', 'CPU µs/req min', 'median', 'max', 'failed/requests'], levels.map((l, i) => {
      const qps = samples[i]!.map((s) => s.qps);
      const cpu = samples[i]!.map((s) => s.cpuUs);
      return [l.name, Math.min(...qps).toFixed(0), median(qps).toFixed(0), Math.max(...qps).toFixed(0), `${(median(qps) / baseQps).toFixed(2)}x`,
        Math.min(...cpu).toFixed(1), median(cpu).toFixed(1), Math.max(...cpu).toFixed(1), `${samples[i]!.reduce((a, s) => a + s.failed, 0)}/${samples[i]!.reduce((a, s) => a + s.requests, 0)}`];
    }));
    const ratio = median(samples[1]!.map((s) => s.qps)) / baseQps;
    console.log(`--concurrency 2 / 1 (median qps): ${ratio.toFixed(2)}x  goal >= ${GOAL_RATIO.toFixed(1)}x: ${verdict(ratio >= GOAL_RATIO)}`);
    if (BEFORE) console.log(`before: --concurrency 2 / 1 (median qps): ${(median(samples[3]!.map((s) => s.qps)) / median(samples[2]!.map((s) => s.qps))).toFixed(2)}x`);
  } finally {
    await Promise.all(sidecars.map(stopSidecar));
  }
}

async function workerCost(file: string): Promise<void> {
  const levels = levelsOf([1, 2, 3]);
  const start: number[][] = levels.map(() => []);
  const rss: number[][] = levels.map(() => []);
  const ready: WorkerReady[][] = levels.map(() => []);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, l] of levels.entries()) {
      const s = await startSidecar(file, l, 'info');
      try {
        const res = await request(`http://127.0.0.1:${s.port}/bench`);
        await res.body.dump();
        await new Promise((r) => setTimeout(r, 500)); // let start-up garbage go
        start[i]!.push(s.startMs);
        rss[i]!.push(rssMb(s.child.pid!));
        ready[i]!.push(...s.workers); // the log is written asynchronously: read after the wait
      } finally {
        await stopSidecar(s);
      }
    }
  }
  console.log(`\nstart-up and idle RSS of the sidecar process (spawn to "listening"; RSS after one request), ${ROUNDS} rounds interleaved, median; load average ${loadavg().map((x) => x.toFixed(1)).join(' ')}`);
  const medianOf = (xs: ReadonlyArray<number | undefined>): string => {
    const ns = xs.filter((x): x is number => typeof x === 'number');
    return ns.length > 0 ? median(ns).toFixed(0) : '-';
  };
  const phase = (i: number, k: Exclude<keyof WorkerReady, 'cpuMs'>): string => medianOf(ready[i]!.map((w) => w[k]));
  const cpu = (i: number, k: keyof NonNullable<WorkerReady['cpuMs']> | 'total'): string =>
    medianOf(ready[i]!.map((w) => (w.cpuMs === undefined ? undefined : k === 'total' ? w.cpuMs.requireMs + w.cpuMs.configMs + w.cpuMs.pluginsMs + w.cpuMs.listenMs : w.cpuMs[k])));
  // A worker's own start (spawn to serving, as the pool logs it), by phase where the build reports phases;
  // the workers of one process start at once, so at 3 they share 2 cores with each other. The thread's own CPU
  // time (after it is up) beside it: on a shared machine the wall phases are mostly waiting for a core.
  table(['row', 'start ms', 'RSS MB', 'worker start ms', 'thread', 'require', 'config', 'plugins', 'listen', 'worker CPU ms', 'require', 'plugins'], levels.map((l, i) => [
    l.name, median(start[i]!).toFixed(0), median(rss[i]!).toFixed(0),
    phase(i, 'startMs'), phase(i, 'threadMs'), phase(i, 'requireMs'), phase(i, 'configMs'), phase(i, 'pluginsMs'), phase(i, 'listenMs'),
    cpu(i, 'total'), cpu(i, 'requireMs'), cpu(i, 'pluginsMs'),
  ]));
  for (const [label, at] of BEFORE ? [['', 1], ['before: ', 4]] as const : [['', 1]] as const) {
    const workerMs = median(start[at + 1]!) - median(start[at]!);
    const workerMb = median(rss[at + 1]!) - median(rss[at]!);
    const own = median(ready[at]!.map((w) => w.startMs));
    console.log(`${label}one more worker (3 - 2): +${workerMs.toFixed(0)} ms start  goal <= ${GOAL_WORKER_START_MS} ms: ${verdict(workerMs <= GOAL_WORKER_START_MS)}; +${workerMb.toFixed(0)} MB  goal <= ${GOAL_WORKER_MB} MB: ${verdict(workerMb <= GOAL_WORKER_MB)}`);
    console.log(`${label}a worker's own start at --concurrency 2 (median of its workers): ${own.toFixed(0)} ms  goal <= ${GOAL_WORKER_START_MS} ms: ${verdict(own <= GOAL_WORKER_START_MS)}`);
  }
}

export async function runWorkersBench(): Promise<void> {
  if (!existsSync(WRK)) throw new Error(`${WRK} is missing: install it with \`apt-get install wrk\``);
  const upstream = await startUpstream();
  const tmp = new TempDir();
  try {
    const file = tmp.write('workers.json', bootstrapJson({ filters: FILTERS, clusters: [{ name: 'backend', port: upstream.port }], routeCluster: 'backend' }));
    if (!process.argv.includes('--cost-only')) await throughput(file);
    if (!process.argv.includes('--throughput-only')) await workerCost(file);
  } finally {
    upstream.child.kill('SIGTERM');
    tmp.cleanup();
  }
}

if (require.main === module) {
  runWorkersBench().then(() => process.exit(0), (err: unknown) => { console.error(err); process.exit(1); });
}
