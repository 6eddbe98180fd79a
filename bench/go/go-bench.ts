/**
 * Per-request cost of plugins in the data plane: the sidecar with no plugin, an SDK-free .wat no-op, the
 * AssemblyScript no-op, the Go no-op, Go header plugins on the upstream and on the Higress SDK, and Redis calls
 * issued from HTTP streams by SDK-built plugins (a Go Higress-SDK GET, an AssemblyScript SET NX gate), against a
 * real redis-server. Measured in one run with the rows interleaved (A B C ..., C B A ..., ...) over many short rounds,
 * so drift on a shared machine spreads over every row instead of landing on one; min/median/max per row, the
 * ratio of medians to the no-plugin row, and the goals read from each round's difference from the same round's
 * no-plugin row, judged by that median's distribution-free interval (bench/support/paired.ts): met or NOT MET only
 * when the whole interval is on one side of the goal. Each sidecar is a `proxy-wasm-sidecar run` child process of its own, so
 * the CPU read from /proc (the run time of all its threads) is the sidecar's alone; the load generator is
 * wrk (C, one thread) and the upstream and redis-server are processes of their own too (bench/support/load.ts).
 * Then, each in a process of its own: the plugin alone without HTTP, per stream (stream-probe.ts), and VM start
 * time and memory per VM of a Go plugin (vm-probe.ts).
 * Each figure is printed beside its goal; a goal not met says NOT MET. Never pass/fail.
 * Each row that Envoy can run (no Higress-only host call) also runs on real Envoy (--concurrency 1, the oracle's
 * build), interleaved in the same rounds: its extra CPU per plugin is printed beside the sidecar's, so a goal can be
 * read against what Envoy's own V8 host pays for the same module under the same load. Higress plugins (ABI marker
 * 0_2_100) run there under the 0.2.1 marker, the module otherwise unchanged. PWS_BENCH_ENVOY=0 leaves Envoy out.
 * Then the same processes at fixed request rates (vegeta, open loop; PWS_BENCH_GO_RATE, default "1000,4000", 0 skips
 * it): wrk's closed loop reads a slower row at a lower load, so its p99 grows with its lower throughput; at one rate
 * every row is compared at the same load. Two rates because the load sets what a request costs the kernel on this
 * VM: at 1000/s every process sleeps between requests and each socket write pays a wake-up (about 240 µs per
 * request with no plugin), so it is the rate for latency; 4000/s, near what the slowest header row sustains,
 * reads CPU per request in the regime of a loaded proxy (about 135 µs with no plugin).
 * PWS_BENCH_ROWS=<substring,...> runs only those rows (and the no-plugin row).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pluginPath } from '../../test/support/plugins';
import type { VmProbeRequest, VmProbeResult } from './vm-probe';
import type { StreamProbeRequest, StreamProbeResult } from './stream-probe';
import { clockTicks, maxOf, measure, median, minOf, printTable, runWrk, SidecarProcess, verdict, WRK, type LoadTarget, type Sample } from '../support/load';
import { EnvoyProcess, envoyBinary } from '../support/envoy-process';
import { measureOpenLoop, vegetaBinary, type OpenLoopSample } from '../support/vegeta';
import { HIGRESS_MARKER, higressOnly, withRenamedExport } from '../../test/oracle/harness';
import { CONFIDENCE, describeEstimate, estimateCell, intervalVerdict, medianInterval, pairedDifference, pairedRatio, roundDifferences, roundOrder, type PairedEstimate } from '../support/paired';
import { checkRow, HIGRESS_HEADER_ROW, pluginRows, RowEnvironment, selectRows, WAT_ROW, type Row } from './plugin-rows';
import { envNumber } from '../support/env';

export interface GoBenchOptions {
  /** Development mode: short rows, fewer VMs. */
  readonly quick?: boolean;
}

/** The goals of issue 13 (and 9), as numbers so the comparison is made here and printed beside the figure. */
const GOAL_WAT_NOOP_CPU_US = 3;
const GOAL_HEADER_PLUGIN_CPU_US = 25;
const GOAL_P99_RATIO = 1.5;
const GOAL_FURTHER_VM_MS = 50;

const HEADER_ROW = HIGRESS_HEADER_ROW;
const CONNECTIONS = envNumber('PWS_BENCH_GO_CONNECTIONS', 16);

interface RowResult {
  readonly row: Row;
  readonly samples: readonly Sample[];
}

interface OpenLoopResult {
  readonly row: Row;
  readonly samples: readonly OpenLoopSample[];
}

/**
 * The open-loop tables' fixed rates, each at or below what the slowest row sustains, so every row is read at one
 * load. "0" runs none; an entry that is not a whole number of requests per second is refused, not skipped.
 */
function openLoopRates(value = process.env['PWS_BENCH_GO_RATE'] ?? '1000,4000'): number[] {
  const rates = value.split(',').map((entry) => {
    const rate = Number(entry.trim());
    if (entry.trim() === '' || !Number.isInteger(rate) || rate < 0) throw new Error(`PWS_BENCH_GO_RATE: ${JSON.stringify(entry)} is not a rate (requests/s, comma-separated; 0 runs none)`);
    return rate;
  });
  return rates.filter((r) => r > 0);
}
const OPEN_LOOP_RATES = openLoopRates();

/** Prints the request tables (closed loop with wrk, then open loop at a fixed rate with vegeta). */
async function requestBench(options: GoBenchOptions): Promise<{ closed: RowResult[]; open: Array<{ rate: number; results: OpenLoopResult[] }> }> {
  // Many short rounds rather than a few long ones: each goal is read from round-by-round differences
  // (bench/support/paired.ts), whose interval narrows with the number of rounds.
  const seconds = options.quick ? 1 : envNumber('PWS_BENCH_GO_SECONDS', 2);
  const rounds = options.quick ? 3 : envNumber('PWS_BENCH_GO_ROUNDS', 10);
  // Long enough for V8's dynamic tiering to have optimised the hot Go functions: a cold Go row costs about twice
  // its warm figure.
  const warmupSeconds = options.quick ? 2 : 5;
  // Each row on this many processes of its own, taking the rounds in turn: two identical sidecar processes were seen
  // to differ by 20-30 µs per request for their whole life, which the round-by-round interval cannot see in one
  // process per row; with several, that difference is in the rounds and widens the interval as it should.
  const processes = options.quick ? 1 : envNumber('PWS_BENCH_GO_PROCESSES', 2);
  const ticks = clockTicks();
  const env = await RowEnvironment.start();
  /** sidecars[row][k]: the row's k-th process; round r measures process r % processes. */
  const sidecars: Array<Array<LoadTarget & { stop(): Promise<void> }>> = [];
  try {
    // PWS_BENCH_COMPARE_TREE=<another checkout, built>: each row also runs on that build's sidecar, interleaved
    // with this one's (a before/after comparison under the same machine conditions).
    const compare = process.env['PWS_BENCH_COMPARE_TREE'];
    const rows = selectRows(pluginRows(env.redis.port));
    const envoy = process.env['PWS_BENCH_ENVOY'] === '0' ? { problem: 'PWS_BENCH_ENVOY=0' } : envoyBinary();
    if (envoy.bin === undefined) console.log(`(no Envoy rows: ${envoy.problem})`);
    const envoyRows = envoy.bin === undefined ? [] : rows.flatMap((r) => { const e = forEnvoy(r); return e ? [e] : []; });
    const table: Row[] = [...(compare ? rows.flatMap((r) => [{ ...r, name: `${r.name}${COMPARE_SUFFIX}` }, r]) : rows), ...envoyRows];
    for (const [i, row] of table.entries()) {
      const cli = compare && sideOf(row) === COMPARE_SUFFIX ? join(compare, 'dist', 'src', 'cli.js') : undefined;
      const own: Array<LoadTarget & { stop(): Promise<void> }> = [];
      sidecars.push(own); // before starting them: whatever started is stopped even if a later start fails
      for (let k = 0; k < processes; k++) {
        const bootstrap = env.bootstrap(row, i * processes + k);
        const target = sideOf(row) === ENVOY_SUFFIX
          ? await EnvoyProcess.start(envoy.bin!, bootstrap)
          : await SidecarProcess.start(bootstrap, cli ? { cli } : {});
        own.push(target);
        await checkRow(row, target);
      }
    }
    const wrkOf = (row: Row) => ({ connections: CONNECTIONS, ...(row.wrkEnv ? { env: row.wrkEnv } : {}) });
    // Warm-up (connections, JIT, Liftoff -> TurboFan tier-up of the Go modules) before any counted round.
    for (const [i, own] of sidecars.entries()) for (const s of own) await runWrk(`http://127.0.0.1:${s.port}/bench`, warmupSeconds, wrkOf(table[i]!));
    const samples: Sample[][] = table.map(() => []);
    for (let round = 0; round < rounds; round++) {
      for (const i of roundOrder(sidecars.length, round)) samples[i]!.push(await measure(sidecars[i]![round % processes]!, '/bench', seconds, ticks, wrkOf(table[i]!)));
    }
    const results = table.map((row, i) => ({ row, samples: samples[i]! }));
    printRequestTable(results, { rounds, seconds, processes });
    const open: Array<{ rate: number; results: OpenLoopResult[] }> = [];
    for (const rate of OPEN_LOOP_RATES) open.push({ rate, results: await openLoopRounds(table, sidecars, { rate, rounds, seconds, ticks }) });
    return { closed: results, open };
  } finally {
    await Promise.all(sidecars.flat().map((s) => s.stop()));
    await env.stop();
  }
}

/**
 * The same processes at one fixed request rate, rows interleaved. Rows whose requests must differ (the nonce of the
 * replay gate, which wrk's script sets) are left out: vegeta repeats one request.
 */
async function openLoopRounds(table: readonly Row[], targets: ReadonlyArray<readonly LoadTarget[]>, run: { rate: number; rounds: number; seconds: number; ticks: number }): Promise<OpenLoopResult[]> {
  const bin = vegetaBinary();
  const chosen = table.map((row, i) => ({ row, targets: targets[i]! })).filter(({ row }) => row.wrkEnv === undefined);
  const samples: OpenLoopSample[][] = chosen.map(() => []);
  for (let round = 0; round < run.rounds; round++) {
    for (const i of roundOrder(chosen.length, round)) {
      const own = chosen[i]!.targets;
      samples[i]!.push(await measureOpenLoop(bin, own[round % own.length]!, '/bench', run.rate, run.seconds, run.ticks));
    }
  }
  const results = chosen.map(({ row }, i) => ({ row, samples: samples[i]! }));
  console.log(
    `\nOpen loop: ${run.rate} requests/s (vegeta, keep-alive), ${run.rounds} rounds interleaved, ${run.seconds} s per row and round; ` +
    'every row at the same load, so CPU per request and latency compare like with like (wrk above is closed loop: a slower row is read at a lower load)',
  );
  printTable(
    ['row', 'CPU µs/req min', 'median', 'max', '+µs vs none', 'paired +µs', 'qps median', 'p50 ms median', 'p99 ms min', 'median', 'max', 'vs none', 'failed/requests'],
    results.map(({ row, samples: ss }) => {
      const base = baseOf(results, row);
      const cpu = ss.map((s) => s.cpuUsPerRequest);
      const p99 = ss.map((s) => s.p99Us / 1000);
      return [
        row.name, minOf(cpu).toFixed(1), median(cpu).toFixed(1), maxOf(cpu).toFixed(1),
        (median(cpu) - median(base.map((s) => s.cpuUsPerRequest))).toFixed(1), pairedCell(cpu, base.map((s) => s.cpuUsPerRequest)),
        median(ss.map((s) => s.qps)).toFixed(0), (median(ss.map((s) => s.p50Us)) / 1000).toFixed(2),
        minOf(p99).toFixed(2), median(p99).toFixed(2), maxOf(p99).toFixed(2),
        `${(median(ss.map((s) => s.p99Us)) / median(base.map((s) => s.p99Us))).toFixed(2)}x`,
        `${ss.reduce((a, s) => a + s.failed, 0)}/${ss.reduce((a, s) => a + s.requests, 0)}`,
      ];
    }),
  );
  const failedRows = results.filter(({ samples: ss }) => ss.some((s) => s.failed > 0)).map(({ row }) => row.name);
  if (failedRows.length > 0) console.log(`WARNING: failed requests in: ${failedRows.join(', ')}; those rows are not valid figures`);
  return results;
}

/**
 * A table cell: the median of round-by-round differences with its interval; the "+µs" column beside it is the
 * difference of the two rows' medians, which drift between rounds does not cancel.
 */
function pairedCell(row: readonly number[], base: readonly number[]): string {
  return estimateCell(pairedDifference(row, base));
}

/** What the goal lines read of a row in either table. */
interface MeasuredRow {
  readonly row: Row;
  readonly samples: ReadonlyArray<{ readonly cpuUsPerRequest: number; readonly p99Us: number }>;
}

/**
 * The goal lines of one table: for each plugin row of this build, CPU per request over no plugin and p99 over no
 * plugin, each read round by round against the no-plugin row of the same proxy (bench/support/paired.ts) and judged
 * by its interval; the same module on Envoy beside it, against Envoy's own no-plugin row.
 */
function goalLines(results: readonly MeasuredRow[], where: string): string[] {
  /** Each round's CPU per request of the row minus its proxy's no-plugin row's. */
  const extraPerRound = (r: MeasuredRow): number[] => roundDifferences(r.samples.map((s) => s.cpuUsPerRequest), baseOf(results, r.row).map((s) => s.cpuUsPerRequest));
  const p99 = (r: MeasuredRow) => pairedRatio(r.samples.map((s) => s.p99Us), baseOf(results, r.row).map((s) => s.p99Us));
  const lines: string[] = [];
  for (const r of results) {
    if (baseOf(results, r.row) === r.samples || sideOf(r.row) !== '') continue;
    const onEnvoy = results.find((e) => e.row.name === `${r.row.name}${ENVOY_SUFFIX}`);
    const goal = r.row.goal === 'wat-noop' ? GOAL_WAT_NOOP_CPU_US : r.row.goal === 'header-plugin' ? GOAL_HEADER_PLUGIN_CPU_US : undefined;
    const mine = extraPerRound(r);
    const extra = medianInterval(mine);
    const held = goal === undefined ? '(no goal)' : `(goal <= ${goal} µs): ${intervalVerdict(extra, goal)}`;
    const envoy = onEnvoy ? extraPerRound(onEnvoy) : undefined;
    const envoyExtra = envoy ? medianInterval(envoy) : undefined;
    const cpuEnvoy = envoyExtra ? `; Envoy with the same module: ${describeEstimate(envoyExtra, ' µs')}` : '';
    lines.push(`  ${r.row.name}${where}: CPU per request over no plugin ${describeEstimate(extra, ' µs')} ${held}${cpuEnvoy}`);
    if (envoy && envoyExtra) lines.push(`  ${r.row.name}${where}: ${relativeToEnvoy(mine, envoy, envoyExtra)}`);
    const ratio = p99(r);
    const p99Text = describeEstimate(ratio, 'x', 2, false);
    if (r.row.redis) {
      lines.push(`  ${r.row.name}${where}: p99 ${p99Text} of no plugin (no goal: each request waits for a Redis round trip)`);
    } else {
      const p99Envoy = onEnvoy ? `; Envoy: ${describeEstimate(p99(onEnvoy), 'x', 2, false)}` : '';
      lines.push(`  ${r.row.name}${where}: p99 ${p99Text} of no plugin (goal <= ${GOAL_P99_RATIO}x): ${intervalVerdict(ratio, GOAL_P99_RATIO)}${p99Envoy}`);
    }
  }
  return lines;
}

/**
 * The module's CPU cost here over its cost in Envoy, round by round (each proxy's row minus its own no-plugin row
 * of the same round): the figure of the plugin path that the machine does not set, since both proxies pay the same
 * machine for the same guest code (on issue 13's 2-core VMs neither meets the absolute µs goals). Read only when
 * Envoy's own cost is clearly above zero: a ratio of near-zero differences says nothing.
 */
function relativeToEnvoy(mine: readonly number[], envoy: readonly number[], envoyExtra: PairedEstimate): string {
  if (envoyExtra.low === undefined || envoyExtra.low <= 0) return 'its cost over its cost in Envoy: not read (Envoy\'s own cost is not clearly above zero)';
  const ratio = medianInterval(envoy.map((e, i) => mine[i]! / e));
  return `its cost over its cost in Envoy, round by round: ${describeEstimate(ratio, 'x', 2, false)} (no goal: the plugin path's figure the machine does not set)`;
}

const COMPARE_SUFFIX = ' [compare]';
const ENVOY_SUFFIX = ' [envoy]';
/** Which proxy a row runs on, by its name's suffix: '' (this build), COMPARE_SUFFIX or ENVOY_SUFFIX. */
const sideOf = (row: Row): string => [COMPARE_SUFFIX, ENVOY_SUFFIX].find((s) => row.name.endsWith(s)) ?? '';

/**
 * The row as Envoy runs it, or undefined when Envoy cannot (a Higress-only host call, such as the Redis rows'):
 * Higress modules are given the 0.2.1 ABI marker (a renamed copy of the export, nothing else changed).
 */
function forEnvoy(row: Row): Row | undefined {
  const filters = [];
  for (const f of row.filters) {
    const only = higressOnly(pluginPath(f.plugin));
    if (only.imports.length > 0) return undefined;
    filters.push(only.marker ? { ...f, plugin: withRenamedExport(pluginPath(f.plugin), HIGRESS_MARKER, 'proxy_abi_version_0_2_1', `bench-0-2-1/${f.plugin.replaceAll('/', '-')}`) } : f);
  }
  return { ...row, name: `${row.name}${ENVOY_SUFFIX}`, filters };
}

/** The no-plugin row of the same proxy as `row` (the first row of each). */
function baseOf<S>(results: ReadonlyArray<{ readonly row: Row; readonly samples: readonly S[] }>, row: Row): readonly S[] {
  return results.find((r) => sideOf(r.row) === sideOf(row))!.samples;
}

function printRequestTable(results: readonly RowResult[], run: { rounds: number; seconds: number; processes: number }): void {
  console.log(
    `Plugins per request, ${run.rounds} rounds interleaved, ${run.seconds} s per row and round, each row on ${run.processes} processes taking the rounds in turn, wrk -t1 -c${CONNECTIONS}; ` +
    `CPU = run time of all the sidecar process's threads (/proc schedstat; its own child, --concurrency 1) / requests; node ${process.version}`,
  );
  const body = results.map(({ row, samples }) => {
    const base = baseOf(results, row);
    const baseCpu = median(base.map((s) => s.cpuUsPerRequest));
    const baseQps = median(base.map((s) => s.qps));
    const baseP99 = median(base.map((s) => s.p99Us));
    const cpu = samples.map((s) => s.cpuUsPerRequest);
    const qps = samples.map((s) => s.qps);
    const p99 = samples.map((s) => s.p99Us / 1000);
    const share = samples.map((s) => s.cpuShare);
    const failed = samples.reduce((a, s) => a + s.failed, 0);
    const requests = samples.reduce((a, s) => a + s.requests, 0);
    return [
      row.name,
      minOf(cpu).toFixed(1), median(cpu).toFixed(1), maxOf(cpu).toFixed(1),
      `${(median(cpu) / baseCpu).toFixed(2)}x`, `${(median(cpu) - baseCpu).toFixed(1)}`, pairedCell(cpu, base.map((s) => s.cpuUsPerRequest)),
      minOf(qps).toFixed(0), median(qps).toFixed(0), maxOf(qps).toFixed(0), `${(median(qps) / baseQps).toFixed(2)}x`,
      minOf(p99).toFixed(2), median(p99).toFixed(2), maxOf(p99).toFixed(2), `${((median(p99) * 1000) / baseP99).toFixed(2)}x`,
      `${(median(share) * 100).toFixed(0)}%`, `${failed}/${requests}`,
    ];
  });
  printTable(
    ['row', 'CPU µs/req min', 'median', 'max', 'vs none', '+µs', 'paired +µs', 'qps min', 'median', 'max', 'vs none', 'p99 ms min', 'median', 'max', 'vs none', 'sidecar CPU', 'failed/requests'],
    body,
  );
  console.log('(sidecar CPU: its CPU time over wall time, median; below ~90% the machine, not the sidecar, set the pace)');
  console.log(`(paired +µs: the median of each round's difference from the same round's no-plugin row, [its interval, at least ${CONFIDENCE * 100}%]; rows run forward and backward in alternate rounds; a row's processes take the rounds in turn, so a lasting difference between two of them is in it)`);
  if (results.some(({ row }) => sideOf(row) === COMPARE_SUFFIX)) console.log(`(rows${COMPARE_SUFFIX}: the sidecar of PWS_BENCH_COMPARE_TREE, each against its own build's no-plugin row)`);
  if (results.some(({ row }) => sideOf(row) === ENVOY_SUFFIX)) console.log(`(rows${ENVOY_SUFFIX}: real Envoy --concurrency 1 with the same modules, each against Envoy's no-plugin row; "sidecar CPU" is Envoy's there)`);
  const failedRows = results.filter(({ samples }) => samples.some((s) => s.failed > 0)).map(({ row }) => row.name);
  if (failedRows.length > 0) console.log(`WARNING: failed requests (errors or non-2xx) in: ${failedRows.join(', ')}; those rows are not valid figures`);
}

/** Runs one of the probes (vm-probe.js, stream-probe.js) in a fresh process and returns its JSON line. */
function runProbe<R>(script: string, req: object): Promise<R> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', join(__dirname, script), JSON.stringify(req)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`${script} exited ${code}`));
      resolve(JSON.parse(out) as R);
    });
  });
}

/** A module as the probes load it (a probe request without its count), and the row name it is printed under. */
export interface ProbeTarget extends Omit<StreamProbeRequest, 'count'> {
  readonly name: string;
}

/** The plugin modules the VM and stream probes (and instruction-count.ts) load, as the request rows configure them. */
export function probeTargets(): ProbeTarget[] {
  return [
    { name: HEADER_ROW, file: pluginPath('go/add-header'), rootId: '', configuration: JSON.stringify({ value: 'v1' }) },
    { name: 'Go no-op (higress/noop)', file: pluginPath('go/noop'), rootId: '', configuration: '' },
    { name: 'AssemblyScript no-op (noop.wasm)', file: pluginPath('noop'), rootId: 'noop', configuration: '' },
    // No SDK, no guest work: what remains is the host's own cost per stream, the floor under every row above.
    { name: WAT_ROW, file: pluginPath('noop-min'), rootId: '', configuration: '' },
  ];
}

async function streamBench(options: GoBenchOptions): Promise<number> {
  const count = options.quick ? 5000 : 20000;
  const body: string[][] = [];
  let header = NaN;
  for (const t of probeTargets()) {
    const req: StreamProbeRequest = { file: t.file, rootId: t.rootId, configuration: t.configuration, count };
    const r = await runProbe<StreamProbeResult>('stream-probe.js', req);
    if (t.name === HEADER_ROW) header = r.cpuUsPerStream;
    body.push([t.name, r.cpuUsPerStream.toFixed(1)]);
  }
  console.log(`\nThe plugin alone, no HTTP: CPU µs per stream (context, request and response headers, body, log/done/delete), ${count} streams in one VM (own process each)`);
  printTable(['module', 'CPU µs/stream'], body);
  console.log('(back to back the plugin stays in the CPU caches: a floor for its share of the sidecar figure, not an estimate of it)');
  return header;
}

async function vmBench(options: GoBenchOptions): Promise<number> {
  const count = options.quick ? 5 : 20;
  const mib = (b: number): string => (b / 1048576).toFixed(2);
  const results: Array<[string, VmProbeResult]> = [];
  for (const t of probeTargets()) {
    const req: VmProbeRequest = { file: t.file, rootId: t.rootId, configuration: t.configuration, count };
    results.push([t.name, await runProbe<VmProbeResult>('vm-probe.js', req)]);
  }
  console.log(`\nVM start and memory per VM: compile once, a first VM, then ${count} further VMs of the compiled module kept alive (own process each)`);
  printTable(
    ['module', 'compile ms', 'first VM ms', 'further VM ms min', 'median', 'max', 'CPU ms median', 'linear memory MiB', 'RSS MiB/VM', 'heap MiB/VM', 'external MiB/VM'],
    results.map(([name, r]) => [
      name, r.compileMs.toFixed(1), r.firstVmMs.toFixed(1),
      minOf(r.furtherVmMs).toFixed(1), median(r.furtherVmMs).toFixed(1), maxOf(r.furtherVmMs).toFixed(1), median(r.furtherVmCpuMs).toFixed(1),
      mib(r.linearMemoryBytes),
      mib((r.after.rss - r.before.rss) / count), mib((r.after.heapUsed - r.before.heapUsed) / count), mib((r.after.external - r.before.external) / count),
    ]),
  );
  console.log('(further VM: Plugin.load of the compiled module: instantiate, _initialize, root context, on_vm_start, on_configure; wall ms, and CPU ms of the process meanwhile)');
  return median(results.find(([name]) => name === HEADER_ROW)![1].furtherVmMs);
}

export async function runGoBench(options: GoBenchOptions = {}): Promise<void> {
  if (!existsSync(WRK)) throw new Error(`${WRK} is missing: the plugin bench drives load with wrk; install it with \`apt-get install wrk\``);
  const { closed: results, open } = await requestBench(options);
  const headerAlone = await streamBench(options);
  const vmMs = await vmBench(options);
  console.log('\nGoals');
  console.log(' closed loop (wrk):');
  for (const line of goalLines(results, '')) console.log(line);
  for (const { rate, results: at } of open) {
    console.log(` open loop (vegeta, ${rate}/s for every row):`);
    for (const line of goalLines(at, `, at ${rate}/s`)) console.log(line);
  }
  console.log(`  ${HEADER_ROW}, the plugin alone, no HTTP: ${headerAlone.toFixed(1)} µs per stream (no goal: the floor of its share of the figure above)`);
  console.log(`  a further Go VM with the module compiled: ${vmMs.toFixed(1)} ms median (goal <= ${GOAL_FURTHER_VM_MS} ms): ${verdict(vmMs <= GOAL_FURTHER_VM_MS)}`);
  if (!results.some(({ row }) => row.name === WAT_ROW)) console.log(`  (${WAT_ROW} not run: PWS_BENCH_ROWS)`);
}

if (require.main === module) {
  runGoBench({ quick: process.argv.includes('--quick') }).then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
