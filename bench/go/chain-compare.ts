/**
 * The chain probe (chain-probe.ts) for the no-plugin, `.wat` no-op and Go Higress add-header rows, each row in a
 * process of its own per sample, interleaved over rounds (row A, row B, ... then again) so drift on a shared
 * machine spreads over every row; with `--before <tree>` (repeatable) each sample is also taken on another build (a
 * checkout with its dist/ built), interleaved with this one's: a before/after of the host path under the same
 * conditions.
 * `--in-process`: every build's probe runs in this one process instead, alternating (the order rotating each round):
 * V8 shares one compiled copy of a module among loads of the same bytes, so the builds run the same guest code and
 * the comparison is of the host code alone, with less noise than process against process on a busy machine.
 * Prints min and median CPU µs per stream, and each plugin row over its own build's no-plugin row beside the goal
 * it is held to (a socket-free floor, not the sidecar's figure: the goals are judged on the sidecar table).
 *
 *   node dist/bench/go/chain-compare.js [--before /path/to/tree ...] [--in-process] [--rounds 5] [--count 20000]
 */
import { spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { pluginPath } from '../../test/support/plugins';
import type { ChainProbeRequest, ChainProbeResult } from './chain-probe';

interface ProbeRow {
  readonly name: string;
  readonly file: string;
  readonly configuration: string;
  /** Goal over no plugin, µs per request (issue 13). */
  readonly goalUs?: number;
}

const ROWS: readonly ProbeRow[] = [
  { name: 'no plugin', file: '', configuration: '' },
  { name: '.wat no-op', file: pluginPath('noop-min'), configuration: '', goalUs: 3 },
  { name: 'Go add-header (Higress)', file: pluginPath('go/add-header'), configuration: JSON.stringify({ value: 'v1' }), goalUs: 25 },
];

/** The probe of a build, loaded into this process (its own module instances: nothing shared but V8's caches). */
function inProcessProbe(tree: string): (req: ChainProbeRequest) => Promise<ChainProbeResult> {
  return (require(join(tree, 'dist', 'bench', 'go', 'chain-probe.js')) as typeof import('./chain-probe')).probeChain;
}

function probe(tree: string, req: ChainProbeRequest): Promise<ChainProbeResult> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--expose-gc', join(tree, 'dist', 'bench', 'go', 'chain-probe.js'), JSON.stringify(req)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.on('error', fail);
    child.on('close', (code) => (code === 0 ? done(JSON.parse(out) as ChainProbeResult) : fail(new Error(`chain-probe exited ${code}`))));
  });
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const min = (xs: readonly number[]): number => Math.min(...xs);

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const opt = (name: string): string | undefined => {
    const i = args.indexOf(name);
    return i === -1 ? undefined : args[i + 1];
  };
  const rounds = Number(opt('--rounds') ?? 5);
  const count = Number(opt('--count') ?? 20_000);
  const trees: Array<[string, string]> = [['this build', resolve(__dirname, '..', '..', '..')]];
  args.forEach((a, i) => {
    if (a === '--before' && args[i + 1]) trees.push([args[i + 1]!, resolve(args[i + 1]!)]);
  });
  const inProcess = args.includes('--in-process');
  const run = new Map(trees.map(([, tree]) => [tree, inProcess ? inProcessProbe(tree) : (req: ChainProbeRequest) => probe(tree, req)]));
  const samples = new Map<string, number[]>();
  for (let round = 0; round < rounds; round++) {
    for (const row of ROWS) {
      for (let t = 0; t < trees.length; t++) {
        const [label, tree] = trees[(t + round) % trees.length]!;
        const r = await run.get(tree)!({ file: row.file, rootId: '', configuration: row.configuration, count });
        const key = `${row.name}\0${label}`;
        samples.set(key, [...(samples.get(key) ?? []), r.cpuUsPerStream]);
      }
    }
  }
  console.log(`chain probe: ${rounds} rounds x ${count} streams, CPU µs per stream (min / median), interleaved${inProcess ? ', in one process' : ''}`);
  for (const [label] of trees) {
    const base = samples.get(`${ROWS[0]!.name}\0${label}`)!;
    for (const row of ROWS) {
      const s = samples.get(`${row.name}\0${label}`)!;
      const over = row.file ? `  over no plugin: min ${(min(s) - min(base)).toFixed(2)}, median ${(median(s) - median(base)).toFixed(2)}` : '';
      const goal = row.goalUs !== undefined ? `  (goal <= ${row.goalUs} µs on the sidecar; not judged here)` : '';
      console.log(`  ${label.padEnd(20)} ${row.name.padEnd(26)} ${min(s).toFixed(2).padStart(7)} / ${median(s).toFixed(2).padStart(7)}${over}${goal}`);
    }
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
