/**
 * `make bench`: every benchmark, each printing its figures beside a baseline measured in the same run.
 * Benchmarks are never pass/fail; run one alone with `node dist/bench/<area>/<name>.js`, or name areas:
 * `node dist/bench/run.js redis xds`.
 */
import { runStreamBench } from './abi/stream-bench';
import { runRedisBench } from './redis/redis-bench';
import { runXdsBench } from './xds/xds-bench';
import { runHttpBench } from './http/http-bench';

const BENCHES: Readonly<Record<string, () => Promise<void>>> = {
  abi: () => runStreamBench(),
  redis: () => runRedisBench(),
  xds: () => runXdsBench(),
  http: () => runHttpBench(),
};

async function main(): Promise<void> {
  const wanted = process.argv.slice(2);
  const unknown = wanted.filter((w) => !(w in BENCHES));
  if (unknown.length > 0) throw new Error(`unknown bench ${unknown.join(', ')}; known: ${Object.keys(BENCHES).join(', ')}`);
  for (const [name, run] of Object.entries(BENCHES)) {
    if (wanted.length > 0 && !wanted.includes(name)) continue;
    console.log(`\n######## ${name} ########`);
    await run();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
