/**
 * Where a plugin row's CPU goes: runs each row of the plugin bench (bench/go/plugin-rows.ts) in a sidecar child
 * started with `node --cpu-prof` and PWS_HOST_CALL_RECORD, under wrk load, then prints the self time of the
 * measured phase by where the code lives (guest Wasm, host functions, stream plumbing, attributes, node's HTTP,
 * GC, ...) and per function, each also as µs per request, and the host calls the plugin made per request.
 * Profiling slows V8 down: the figures say where time goes, not what a row costs (go-bench.ts measures that).
 *
 * With --diff, it ends with the functions whose self time per request differs most between the first row and each
 * later one (where the extra CPU of a plugin row goes, around the plugin as well as in it).
 *
 *   node dist/bench/profile/profile.js [--seconds N] [--top N] [--diff] [row substring ...]
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkRow, pluginRows, RowEnvironment, selectRows } from '../go/plugin-rows';
import { runWrk, SidecarProcess } from '../support/load';
import { printProfile, ProfileSummary, summarizeProfile } from './cpu-profile';

const CONNECTIONS = 16;

interface RecordedCalls {
  readonly modules: Record<string, Record<string, Record<string, number>>>;
}

/** Host calls per request, per function (all modules of the process summed). */
function hostCallsPerRequest(dir: string, requests: number): Array<[string, number]> {
  const totals = new Map<string, number>();
  for (const f of readdirSync(dir)) {
    const rec = JSON.parse(readFileSync(join(dir, f), 'utf8')) as RecordedCalls;
    for (const fns of Object.values(rec.modules)) {
      for (const [fn, statuses] of Object.entries(fns)) {
        const n = Object.values(statuses).reduce((a, b) => a + b, 0);
        totals.set(fn, (totals.get(fn) ?? 0) + n);
      }
    }
  }
  return [...totals].map(([fn, n]): [string, number] => [fn, n / requests]).sort((a, b) => b[1] - a[1]);
}

function selfUsPerRequest(s: ProfileSummary, requests: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const f of s.functions) out.set(f.name, (out.get(f.name) ?? 0) + (f.ms * 1000) / requests);
  return out;
}

function printDiff(base: { row: string; fns: Map<string, number> }, other: { row: string; fns: Map<string, number> }, top: number): void {
  const names = new Set([...base.fns.keys(), ...other.fns.keys()]);
  const deltas = [...names].map((n): [string, number] => [n, (other.fns.get(n) ?? 0) - (base.fns.get(n) ?? 0)]);
  deltas.sort((a, b) => Math.abs(b[1]) - Math.abs(a[1]));
  const total = deltas.reduce((a, [, d]) => a + d, 0);
  console.log(`\n######## ${other.row} minus ${base.row}: ${total >= 0 ? '+' : ''}${total.toFixed(2)} µs/req self time`);
  for (const [n, d] of deltas.slice(0, top)) console.log(`  ${(d >= 0 ? '+' : '') + d.toFixed(2).padStart(7)} µs/req  ${n}`);
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const flag = (name: string, dflt: number): number => {
    const i = args.indexOf(name);
    if (i === -1) return dflt;
    const v = Number(args[i + 1]);
    args.splice(i, 2);
    return v;
  };
  const diffIndex = args.indexOf('--diff');
  if (diffIndex !== -1) args.splice(diffIndex, 1);
  const seconds = flag('--seconds', 10);
  const top = flag('--top', 30);
  const env = await RowEnvironment.start();
  const work = mkdtempSync(join(tmpdir(), 'pws-profile-'));
  try {
    const rows = selectRows(pluginRows(env.redis.port), args.join(','));
    const perRequest: Array<{ row: string; fns: Map<string, number> }> = [];
    for (const [i, row] of rows.entries()) {
      const profDir = join(work, `prof-${i}`);
      const callDir = join(work, `calls-${i}`);
      const spawnedAt = Date.now();
      const sidecar = await SidecarProcess.start(env.bootstrap(row, i), {
        nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`],
        env: { ...process.env, PWS_HOST_CALL_RECORD: callDir },
      });
      const url = `http://127.0.0.1:${sidecar.port}/bench`;
      const wrk = { connections: CONNECTIONS, ...(row.wrkEnv ? { env: row.wrkEnv } : {}) };
      let requests = 1;
      await checkRow(row, sidecar);
      requests += (await runWrk(url, 3, wrk)).requests; // warm-up: tier-up before the measured phase
      const fromMs = Date.now() - spawnedAt;
      const measured = await runWrk(url, seconds, wrk);
      const toMs = Date.now() - spawnedAt;
      requests += measured.requests;
      await sidecar.stop();
      const [file] = readdirSync(profDir);
      console.log(`\n######## ${row.name}: ${measured.requests} requests in ${seconds} s (${(measured.requests / seconds).toFixed(0)}/s under the profiler)`);
      const summary = summarizeProfile(join(profDir, file!), { fromMs, toMs });
      printProfile(summary, measured.requests, top);
      perRequest.push({ row: row.name, fns: selfUsPerRequest(summary, measured.requests) });
      const calls = row.filters.length > 0 ? hostCallsPerRequest(callDir, requests) : [];
      if (calls.length > 0) {
        const total = calls.reduce((a, [, n]) => a + n, 0);
        console.log(`host calls per request: ${total.toFixed(1)}`);
        for (const [fn, n] of calls) if (n >= 0.01) console.log(`  ${n.toFixed(2).padStart(7)}  ${fn}`);
      }
    }
    if (diffIndex !== -1) for (const other of perRequest.slice(1)) printDiff(perRequest[0]!, other, top);
  } finally {
    await env.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
