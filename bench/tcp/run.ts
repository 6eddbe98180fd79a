/** `node dist/bench/tcp/run.js [--quick]`: the TCP proxy bench alone (see tcp-bench.ts). */
import { runTcpBench } from './tcp-bench';

runTcpBench({ quick: process.argv.includes('--quick') }).then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
