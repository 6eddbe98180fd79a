/**
 * Instructions per HTTP stream of a plugin alone (the stream probe), counted by valgrind's callgrind: a figure no
 * steal, frequency scaling or neighbour on the machine moves, so a change to the host path or the watchdog's
 * rewrite can be judged on a machine too noisy for go-bench's CPU figures (the eleventh session's was: 9-26%
 * steal). Not a goal of its own: issue 13's goals are CPU µs per request through the data plane; this is the
 * plugin's share of them in a unit that does not drift.
 *
 * Method: the probe runs `count` streams twice (warm-up, then counted) in one VM; it runs under callgrind once
 * with WARM and once with WARM + COUNTED streams per half, and the difference of the two totals over the extra
 * streams is the steady-state cost (start-up, compilation and warm-up cancel out). V8 runs single-threaded with
 * no Liftoff and no lazy compilation, so every wasm function is compiled by TurboFan before the streams, on the one
 * thread callgrind counts. The host's JS still tiers up long after a thousand streams (the `.wat` no-op's streams
 * 750-1500 cost 30 µs each, its steady state 0.8), so the shorter run is 20 000 streams: with 1 500 the difference
 * counted compilation too (Go add-header 171,616 instructions per stream instead of 117,635); for the `.wat`
 * no-op, 20 000 and 40 000 agree within 6% and 10 000 reads 30% more. About ten minutes per Go module.
 * Run alone: `node dist/bench/go/instruction-count.js`.
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StreamProbeRequest } from './stream-probe';
import { printTable } from '../support/load';
import { probeTargets, type ProbeTarget } from './go-bench';
import { namedIn } from './plugin-rows';
import { envNumber } from '../support/env';

const WARM = envNumber('PWS_BENCH_IC_WARM', 10_000);
const COUNTED = envNumber('PWS_BENCH_IC_STREAMS', 5_000);
const V8_FLAGS = ['--single-threaded', '--no-liftoff', '--no-wasm-lazy-compilation'];

/** PWS_BENCH_IC_MODULES=<substring,...>: only the probe modules named (all when unset). */
function targets(filter = process.env['PWS_BENCH_IC_MODULES']): ProbeTarget[] {
  const all = probeTargets();
  const chosen = namedIn(all, filter);
  if (chosen.length === 0) throw new Error(`PWS_BENCH_IC_MODULES=${JSON.stringify(filter)} names none of: ${all.map((t) => t.name).join('; ')}`);
  return chosen;
}

/** The instructions callgrind counted in one probe run of `count` streams per half. */
async function countInstructions(target: ProbeTarget, count: number): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'pws-callgrind-'));
  try {
    const out = join(dir, 'callgrind.out');
    const req: StreamProbeRequest = { file: target.file, rootId: target.rootId, configuration: target.configuration, count };
    const args = ['--tool=callgrind', `--callgrind-out-file=${out}`, process.execPath, ...V8_FLAGS, join(__dirname, 'stream-probe.js'), JSON.stringify(req)];
    await new Promise<void>((resolve, reject) => {
      const child = spawn('valgrind', args, { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (c: Buffer) => { stderr = (stderr + c.toString()).slice(-2000); });
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`valgrind on the stream probe exited ${code}: ${stderr}`))));
    });
    // callgrind writes "summary: <Ir>" (or "totals:") once per output file.
    const m = /^(?:summary|totals):\s+(\d+)/m.exec(readFileSync(out, 'utf8'));
    if (!m) throw new Error(`no instruction total in ${out}`);
    return Number(m[1]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runInstructionCountBench(): Promise<void> {
  if (spawnSync('valgrind', ['--version']).status !== 0) {
    console.log('(instruction count not run: valgrind is not installed; apt-get install -y valgrind)');
    return;
  }
  const body: string[][] = [];
  for (const t of targets()) {
    const base = await countInstructions(t, WARM);
    const more = await countInstructions(t, WARM + COUNTED);
    // The probe runs its count twice (warm-up, counted): the second run has 2 * COUNTED more streams.
    const perStream = (more - base) / (2 * COUNTED);
    body.push([t.name, String(base), String(more), Math.round(perStream).toLocaleString('en-US')]);
  }
  console.log(`\nInstructions per stream, the plugin alone (stream probe under callgrind; node ${V8_FLAGS.join(' ')}; ${2 * WARM} vs ${2 * (WARM + COUNTED)} streams per run, the difference over ${2 * COUNTED})`);
  printTable(['module', `Ir, ${2 * WARM} streams`, `Ir, ${2 * (WARM + COUNTED)} streams`, 'instructions/stream'], body);
  console.log('(no goal: the plugin\'s share of the go-bench CPU figure in a unit machine noise does not move; the `.wat` no-op row is the host\'s own floor)');
}

if (require.main === module) {
  runInstructionCountBench().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
}
