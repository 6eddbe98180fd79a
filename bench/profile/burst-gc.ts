/**
 * Whether per-request objects still die young under bursty load: each row's sidecar (a `run` child with
 * --trace-gc-nvp) is loaded continuously first, then in bursts (2 s of wrk -c16, then idle while the other rows
 * take theirs and a pause, as the interleaved plugin bench loads them), then read again after a lead-in. Per phase:
 * the median bytes a scavenge promotes (held to the same 512 KB as test/http/router-gc.test.ts), the mean
 * scavenge pause, mark-compacts, and CPU per request of the main thread and of the others (V8's GC and compiler
 * helpers). A process whose scavenges promote megabytes pays it on every request until V8 notices, which is what
 * made the plugin rows of the plugin bench read tens of µs over the no-plugin row while a profile of the same code
 * reads a few. Never pass/fail.
 *
 *   node dist/bench/profile/burst-gc.js [row substring ...]   PWS_BURST_CYCLES (default 6), PWS_BURST_IDLE_SECONDS (12)
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { startCli, type Run } from '../../test/cli/shutdown-support';
import { readGcTrace } from '../../test/support/gc-trace';
import { pluginRows, RowEnvironment, selectRows, type Row } from '../go/plugin-rows';
import { median, printTable, runWrk, threadRunTimes } from '../support/load';
import { envNumber } from '../support/env';

const PROMOTED_LIMIT = 512 * 1024;
const CONNECTIONS = 16;
const BURST_SECONDS = 2;

interface Phase {
  readonly label: string;
  readonly cells: string[];
}

/** Loads the sidecar for `seconds` and reads its GC trace and thread times over that window. */
async function measured(run: Run, seconds: number, label: string): Promise<Phase> {
  const pid = run.child.pid!;
  const from = run.stdout().length;
  const t0 = threadRunTimes(pid) ?? { main: NaN, others: NaN };
  const r = await runWrk(`http://127.0.0.1:${run.port}/bench`, seconds, { connections: CONNECTIONS });
  const t1 = threadRunTimes(pid) ?? { main: NaN, others: NaN };
  const gc = readGcTrace(run.stdout().slice(from));
  const promoted = gc.scavenges.length > 0 ? median(gc.scavenges.map((s) => s.promoted)) : NaN;
  const pause = gc.scavenges.reduce((a, s) => a + s.pauseMs, 0) / Math.max(1, gc.scavenges.length);
  const perRequest = (ns: number): string => (r.requests > 0 ? (ns / 1000 / r.requests).toFixed(1) : 'n/a');
  return {
    label,
    cells: [
      String(r.requests), String(gc.scavenges.length), (promoted / 1024).toFixed(1), pause.toFixed(2), String(gc.markCompacts),
      perRequest(t1.main - t0.main), perRequest(t1.others - t0.others),
      promoted < PROMOTED_LIMIT ? 'met' : 'NOT MET',
    ],
  };
}

async function main(): Promise<void> {
  const cycles = envNumber('PWS_BURST_CYCLES', 6);
  const idleSeconds = envNumber('PWS_BURST_IDLE_SECONDS', 12, { allowZero: true });
  const env = await RowEnvironment.start();
  const runs: Array<{ row: Row; run: Run }> = [];
  try {
    const filter = process.argv.slice(2).join(',') || 'wat';
    const rows = selectRows(pluginRows(env.redis.port), filter);
    for (const [i, row] of rows.entries()) {
      runs.push({ row, run: await startCli(['run', '-c', env.bootstrap(row, i), '--log-level', 'error', '--concurrency', '1'], ['--trace-gc-nvp']) });
    }
    const phases = new Map<Run, Phase[]>(runs.map(({ run }) => [run, []]));
    for (const { run } of runs) phases.get(run)!.push(await measured(run, 5, 'continuous, after start'));
    for (let c = 0; c < cycles; c++) {
      for (const { run } of runs) await runWrk(`http://127.0.0.1:${run.port}/bench`, BURST_SECONDS, { connections: CONNECTIONS });
      await sleep(idleSeconds * 1000);
    }
    for (const { run } of runs) {
      await runWrk(`http://127.0.0.1:${run.port}/bench`, 3, { connections: CONNECTIONS });
      phases.get(run)!.push(await measured(run, 3, `after ${cycles} bursts with ${idleSeconds} s pauses, 3 s lead-in`));
    }
    console.log(`Bursty load: ${cycles} cycles of ${BURST_SECONDS} s per row then ${idleSeconds} s idle; wrk -t1 -c${CONNECTIONS}; --trace-gc-nvp`);
    printTable(
      ['row', 'phase', 'requests', 'scavenges', 'promoted KB median', 'pause ms mean', 'mark-compacts', 'main µs/req', 'other threads µs/req', `promoted < ${PROMOTED_LIMIT / 1024} KB`],
      runs.flatMap(({ row, run }) => phases.get(run)!.map((p) => [row.name, p.label, ...p.cells])),
    );
  } finally {
    for (const { run } of runs) {
      run.child.kill('SIGTERM');
      await run.exited;
    }
    await env.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
