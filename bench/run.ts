/**
 * `make bench`: every benchmark, each printing its figures beside a baseline measured in the same run.
 * Benchmarks are never pass/fail; run one alone with `node dist/bench/<area>/<name>.js`, or name areas:
 * `node dist/bench/run.js redis xds`. `--quick` gives the benches that have one a short development run. Not in the
 * list (run alone): `dist/bench/watchdog/watchdog-bench.js` (instrumentation cost), `dist/bench/go/instruction-count.js`
 * (a plugin's instructions per stream under callgrind, for machines too noisy for CPU figures) and `dist/bench/soak/run.js`.
 */
import { runStreamBench } from './abi/stream-bench';
import { runRedisBench } from './redis/redis-bench';
import { runXdsBench } from './xds/xds-bench';
import { runHttpBench } from './http/http-bench';
import { runGoBench } from './go/go-bench';
import { runMemoryBench } from './memory/memory-bench';
import { runTcpBench } from './tcp/tcp-bench';
import { runWorkersBench } from './workers/workers-bench';

interface BenchFlags {
  readonly quick: boolean;
}

const BENCHES: Readonly<Record<string, (flags: BenchFlags) => Promise<void>>> = {
  abi: () => runStreamBench(),
  redis: () => runRedisBench(),
  xds: () => runXdsBench(),
  http: (flags) => runHttpBench({ quick: flags.quick }),
  go: (flags) => runGoBench({ quick: flags.quick }),
  memory: (flags) => runMemoryBench({ quick: flags.quick }),
  tcp: (flags) => runTcpBench({ quick: flags.quick }),
  workers: () => runWorkersBench(),
};
const FLAGS = ['--quick'];

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const flags: BenchFlags = { quick: args.includes('--quick') };
  const wanted = args.filter((a) => !FLAGS.includes(a));
  const unknown = wanted.filter((w) => !(w in BENCHES));
  if (unknown.length > 0) throw new Error(`unknown bench ${unknown.join(', ')}; known: ${Object.keys(BENCHES).join(', ')} (flags: ${FLAGS.join(', ')})`);
  for (const [name, run] of Object.entries(BENCHES)) {
    if (wanted.length > 0 && !wanted.includes(name)) continue;
    console.log(`\n######## ${name} ########`);
    await run(flags);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
