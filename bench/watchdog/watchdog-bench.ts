/**
 * What the plugin watchdog costs (issue 14): per-stream CPU of plugins compiled as they are and instrumented
 * (budget hooks at loop headers and at the entries of functions that call; memory as a capped import), and load time of the
 * Go modules (2-8 MB) through the instrumentation: cold (binaryen in a worker), from the disk cache, and plain.
 *
 * Per stream: a fresh VM per sample runs `count` streams back to back after a warm-up (the callbacks the data
 * plane makes for a GET answered 200: context create, request headers, response headers, response body, log,
 * done, delete), rows and variants interleaved over several rounds so drift on a shared machine lands on every
 * row alike; process CPU µs per stream, min/median/max. This isolates the guest-side cost of the hooks (no
 * HTTP around it, which would add the same absolute figure to both variants). Never pass/fail.
 *
 * `node dist/bench/watchdog/watchdog-bench.js [--quick]`; PWS_BENCH_ROWS=<substring,...> selects rows. With
 * `--processes` each (row, variant) runs in a process of its own instead (the in-process table mixes in the GC
 * and compile threads of every other VM loaded beside it).
 */
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HeaderPairs } from '../../src/abi/pairs';
import type { PropertyValue } from '../../src/abi/properties';
import type { StreamHost } from '../../src/abi/stream-state';
import { Plugin } from '../../src/runtime/plugin';
import { ModuleCache, type CompiledPlugin } from '../../src/wasm/module-cache';
import { probeServices } from '../go/vm-probe';
import { pluginPath } from '../../test/support/plugins';
import { median } from '../support/load';
import { namedIn } from '../go/plugin-rows';
import { envNumber } from '../support/env';

interface Row {
  readonly name: string;
  readonly plugin: string;
  readonly rootId: string;
  readonly configuration?: string;
}

const ROWS: readonly Row[] = [
  { name: 'WAT no-op (noop-min.wat)', plugin: 'noop-min', rootId: '' },
  { name: 'AssemblyScript no-op (noop.wasm)', plugin: 'noop', rootId: 'noop' },
  { name: 'Go no-op (higress/noop)', plugin: 'go/noop', rootId: '' },
  { name: 'Go add-header (higress/add-header)', plugin: 'go/add-header', rootId: '', configuration: JSON.stringify({ value: 'v1' }) },
  { name: 'Go up-headers (upstream SDK)', plugin: 'go/up-headers', rootId: '' },
];
const LOAD_ROWS: readonly string[] = ['go/up-headers', 'go/add-header', 'go/redis-client'];

const ROUTE: Readonly<Record<string, string>> = { route_name: 'default', cluster_name: 'backend' };
const host: StreamHost = {
  continueStream: () => {},
  closeStream: () => {},
  sendLocalResponse: () => {},
  property: (path): PropertyValue | undefined => (path.length === 1 ? ROUTE[path[0]!] : undefined),
};
const REQUEST: HeaderPairs = [
  [':authority', '127.0.0.1:10000'], [':path', '/bench'], [':method', 'GET'], [':scheme', 'http'],
  ['user-agent', 'wrk'], ['x-request-id', '9b1d6f1e-5d0c-4c5e-9d8e-0f1a2b3c4d5e'], ['x-forwarded-proto', 'http'],
];
const RESPONSE: HeaderPairs = [[':status', '200'], ['content-type', 'text/plain'], ['content-length', '2']];

function runStreams(plugin: Plugin, count: number): number {
  const t0 = process.cpuUsage();
  for (let i = 0; i < count; i++) {
    const s = plugin.createStream(host);
    if (!s) throw new Error(`${plugin.config.name} failed: ${plugin.failed?.message}`);
    s.requestHeaders(REQUEST, true);
    s.responseHeaders(RESPONSE, false);
    s.responseBody(Buffer.from('ok'), true);
    s.finish({ requestHeaders: REQUEST, responseHeaders: RESPONSE });
  }
  const t = process.cpuUsage(t0);
  return (t.user + t.system) / count;
}

const fmt = (n: number): string => n.toFixed(2);

async function streamBench(quick: boolean): Promise<void> {
  const rounds = quick ? 3 : envNumber('PWS_BENCH_ROUNDS', 7);
  const count = quick ? 1000 : envNumber('PWS_BENCH_STREAMS', 5000);
  const rows = namedIn(ROWS, process.env['PWS_BENCH_ROWS']);
  const caches = { plain: new ModuleCache({ instrument: false }), instrumented: new ModuleCache() };
  type Variant = keyof typeof caches;
  const cells: Array<{ row: Row; variant: Variant; compiled: CompiledPlugin; samples: number[] }> = [];
  for (const row of rows) {
    for (const variant of ['plain', 'instrumented'] as const) {
      cells.push({ row, variant, compiled: await caches[variant].compile(readFileSync(pluginPath(row.plugin))), samples: [] });
    }
  }
  // A fresh VM per sample: a plugin whose per-stream cost drifts as its VM ages (Go heaps) then drifts alike in
  // both variants, and each sample starts from the same state. The compiled code (and V8's tier-up of it) is
  // shared by the module, so the warm-up streams of each sample only warm the VM's own state.
  const sample = async (cell: (typeof cells)[number]): Promise<number> => {
    const plugin = await Plugin.load(cell.compiled, { name: `${cell.row.plugin}-${cell.variant}`, rootId: cell.row.rootId, configuration: cell.row.configuration ?? '' }, { services: probeServices() });
    try {
      runStreams(plugin, Math.max(200, count / 10));
      return runStreams(plugin, count);
    } finally {
      plugin.close();
    }
  };
  for (const cell of cells) await sample(cell); // V8's tier-up of each module's hot functions
  for (let r = 0; r < rounds; r++) {
    // Alternate the order, so neither variant always runs right after the other.
    const order = r % 2 === 0 ? cells : [...cells].reverse();
    for (const cell of order) cell.samples.push(await sample(cell));
  }
  console.log(`\nCPU µs per stream (${count} streams x ${rounds} rounds, interleaved; min / median / max)`);
  console.log('row'.padEnd(38), 'plain'.padEnd(22), 'instrumented'.padEnd(22), 'overhead (medians)');
  for (const row of rows) {
    const [plain, inst] = (['plain', 'instrumented'] as const).map((v) => cells.find((c) => c.row === row && c.variant === v)!.samples);
    const cell = (xs: number[]): string => `${fmt(Math.min(...xs))} / ${fmt(median(xs))} / ${fmt(Math.max(...xs))}`;
    const d = median(inst!) - median(plain!);
    console.log(row.name.padEnd(38), cell(plain!).padEnd(22), cell(inst!).padEnd(22), `${d >= 0 ? '+' : ''}${fmt(d)} µs (${fmt((d / median(plain!)) * 100)}%)`);
  }
}

async function loadBench(): Promise<void> {
  console.log('\nLoad time of Go modules (ms): cold instrumentation (worker + binaryen), from the disk cache, plain compile');
  console.log('module'.padEnd(22), 'size'.padEnd(10), 'cold'.padEnd(8), 'disk'.padEnd(8), 'plain');
  const dir = mkdtempSync(join(tmpdir(), 'pws-watchdog-bench-'));
  try {
    for (const name of LOAD_ROWS) {
      const bytes = readFileSync(pluginPath(name));
      const timed = async (cache: ModuleCache): Promise<number> => {
        await cache.compile(bytes);
        return cache.lastLoad!.ms;
      };
      const cold = await timed(new ModuleCache({ cacheDir: dir }));
      const disk = await timed(new ModuleCache({ cacheDir: dir }));
      const plain = await timed(new ModuleCache({ instrument: false }));
      const mb = `${(statSync(pluginPath(name)).size / 1e6).toFixed(1)} MB`;
      console.log(name.padEnd(22), mb.padEnd(10), cold.toFixed(0).padEnd(8), disk.toFixed(0).padEnd(8), plain.toFixed(0));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `--alone <plugin> <plain|instrumented>`: one VM in this process (a child of `--processes`), nothing else loaded,
 * so the process CPU is that VM's streams plus V8's own threads for this module only; prints the minimum and the
 * median of its samples as JSON.
 */
async function alone(pluginName: string, variant: 'plain' | 'instrumented', count: number, samples: number): Promise<void> {
  const row = ROWS.find((r) => r.plugin === pluginName);
  if (!row) throw new Error(`no row for ${pluginName}`);
  const compiled = await new ModuleCache({ instrument: variant === 'instrumented' }).compile(readFileSync(pluginPath(row.plugin)));
  const plugin = await Plugin.load(compiled, { name: row.plugin, rootId: row.rootId, configuration: row.configuration ?? '' }, { services: probeServices() });
  runStreams(plugin, count * 2); // tier-up
  const xs: number[] = [];
  for (let i = 0; i < samples; i++) xs.push(runStreams(plugin, count));
  plugin.close();
  process.stdout.write(`${JSON.stringify({ min: Math.min(...xs), median: median(xs) })}\n`);
}

/** Each (row, variant) in a process of its own, the processes interleaved over rounds; min and median of the medians. */
async function processes(rounds: number, count: number): Promise<void> {
  const { execFileSync } = await import('node:child_process');
  const rows = namedIn(ROWS, process.env['PWS_BENCH_ROWS']);
  const results = new Map<string, number[]>();
  for (let r = 0; r < rounds; r++) {
    for (const row of rows) {
      const variants = r % 2 === 0 ? (['plain', 'instrumented'] as const) : (['instrumented', 'plain'] as const);
      for (const v of variants) {
        const out = execFileSync(process.execPath, [__filename, '--alone', row.plugin, v, String(count)], { encoding: 'utf8' });
        const { median: m } = JSON.parse(out.trim().split('\n').at(-1)!) as { median: number };
        const key = `${row.plugin}|${v}`;
        results.set(key, [...(results.get(key) ?? []), m]);
      }
    }
  }
  console.log(`\nCPU µs per stream, one process per (row, variant) x ${rounds} rounds interleaved, ${count} streams per sample (min / median of the per-process medians)`);
  console.log('row'.padEnd(38), 'plain'.padEnd(18), 'instrumented'.padEnd(18), 'overhead (medians)');
  for (const row of rows) {
    const p = results.get(`${row.plugin}|plain`)!;
    const i = results.get(`${row.plugin}|instrumented`)!;
    const d = median(i) - median(p);
    console.log(row.name.padEnd(38), `${fmt(Math.min(...p))} / ${fmt(median(p))}`.padEnd(18), `${fmt(Math.min(...i))} / ${fmt(median(i))}`.padEnd(18), `${d >= 0 ? '+' : ''}${fmt(d)} µs (${fmt((d / median(p)) * 100)}%)`);
  }
}

async function main(): Promise<void> {
  const at = process.argv.indexOf('--alone');
  if (at >= 0) {
    await alone(process.argv[at + 1]!, process.argv[at + 2] as 'plain' | 'instrumented', Number(process.argv[at + 3] ?? 2000), 5);
    return;
  }
  if (process.argv.includes('--processes')) {
    await processes(envNumber('PWS_BENCH_ROUNDS', 5), envNumber('PWS_BENCH_STREAMS', 2000));
    return;
  }
  const quick = process.argv.includes('--quick');
  if (!process.argv.includes('--no-load')) await loadBench();
  if (!process.argv.includes('--no-streams')) await streamBench(quick);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
