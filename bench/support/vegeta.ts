/**
 * vegeta (github.com/tsenart/vegeta), an open-loop load generator: requests leave at a fixed rate whether or not
 * earlier ones were answered. wrk is closed-loop: a slower proxy is sent fewer requests, so its latency grows with
 * its lower throughput (Little's law) and its CPU per request is read at another load level than a faster row's.
 * At one fixed rate that every row sustains, CPU per request and latency percentiles compare like with like.
 * Built from the Go module proxy into build/bench-bin on first use (pinned version), like the Go plugins.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../../test/support/plugins';
import { cpuSeconds, type LoadTarget } from './load';

const VEGETA_MODULE = 'github.com/tsenart/vegeta/v12@v12.13.0';
const BIN_DIR = join(REPO_ROOT, 'build', 'bench-bin');

/** The vegeta binary, built when missing; throws with go's output when it cannot be. */
export function vegetaBinary(): string {
  const bin = join(BIN_DIR, 'vegeta');
  if (existsSync(bin)) return bin;
  mkdirSync(BIN_DIR, { recursive: true });
  const r = spawnSync(process.env['GO'] ?? 'go', ['install', VEGETA_MODULE], { encoding: 'utf8', env: { ...process.env, GOBIN: BIN_DIR }, timeout: 600_000 });
  if (r.status !== 0 || !existsSync(bin)) throw new Error(`go install ${VEGETA_MODULE} failed: ${`${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`.trim()}`);
  return bin;
}

/** `vegeta report -type=json`, the fields read here (latencies in ns). */
interface VegetaReport {
  readonly requests: number;
  readonly throughput: number;
  readonly success: number;
  readonly latencies: { readonly '50th': number; readonly '99th': number; readonly max: number };
  readonly status_codes: Readonly<Record<string, number>>;
}

export interface OpenLoopSample {
  readonly cpuUsPerRequest: number;
  /** Answered requests per second. */
  readonly qps: number;
  readonly p50Us: number;
  readonly p99Us: number;
  readonly requests: number;
  /** Requests not answered 2xx (errors, timeouts, other statuses). */
  readonly failed: number;
}

function runVegeta(bin: string, url: string, rate: number, seconds: number): Promise<VegetaReport> {
  return new Promise((resolve, reject) => {
    // Keep-alive connections, as wrk's; workers grow as needed so the rate holds while answers are late.
    const attack = spawn(bin, ['attack', `-rate=${rate}/s`, `-duration=${seconds}s`, '-keepalive=true', '-workers=16', '-max-workers=256', '-timeout=10s'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const report = spawn(bin, ['report', '-type=json'], { stdio: ['pipe', 'pipe', 'pipe'] });
    attack.stdin.end(`GET ${url}\n`);
    attack.stdout.pipe(report.stdin);
    let out = '';
    let err = '';
    attack.stderr.on('data', (c: Buffer) => { err += c.toString(); });
    report.stderr.on('data', (c: Buffer) => { err += c.toString(); });
    report.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    attack.on('error', reject);
    report.on('error', reject);
    const closed = (p: typeof attack): Promise<number | null> => new Promise((r) => p.on('close', r));
    void Promise.all([closed(attack), closed(report)]).then(([a, b]) => {
      if (a !== 0 || b !== 0) return reject(new Error(`vegeta failed (attack ${a}, report ${b}): ${err}`));
      resolve(JSON.parse(out) as VegetaReport);
    });
  });
}

/** One open-loop run at `rate` requests per second against the target, with the target's CPU over it. */
export async function measureOpenLoop(bin: string, target: LoadTarget, path: string, rate: number, seconds: number, ticks: number): Promise<OpenLoopSample> {
  const cpu0 = cpuSeconds(target.pid, ticks);
  const r = await runVegeta(bin, `http://127.0.0.1:${target.port}${path}`, rate, seconds);
  const cpu = cpuSeconds(target.pid, ticks) - cpu0;
  const ok = Object.entries(r.status_codes).reduce((a, [code, n]) => a + (code.startsWith('2') ? n : 0), 0);
  return {
    cpuUsPerRequest: r.requests > 0 ? (cpu * 1e6) / r.requests : NaN,
    qps: r.throughput,
    p50Us: r.latencies['50th'] / 1000,
    p99Us: r.latencies['99th'] / 1000,
    requests: r.requests,
    failed: r.requests - ok,
  };
}
