/**
 * The cost of one watchdog hook, measured where nothing else runs: a recursive fib (a call and its entry hook per
 * call: fib branches before it calls, so its entry is hooked) and a tight counting loop (one loop hook per iteration), compiled as written and
 * instrumented, alternated over many short samples; the minimum of each is the least disturbed figure on a shared
 * machine. `node dist/bench/watchdog/hook-cost.js`
 */
import { instrument } from '../../src/wasm/instrument';
import { CHECK_BUDGET } from '../../src/wasm/watchdog';

interface Wabt {
  parseWat(name: string, text: string): { toBinary(o: object): { buffer: Uint8Array }; destroy(): void };
}

const WAT = `(module
  (memory (export "memory") 1)
  (func $fib (export "fib") (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1))) (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
  (func (export "sum") (param $n i32) (result i32) (local $i i32) (local $s i32)
    (loop $l
      (local.set $s (i32.add (local.get $s) (i32.xor (local.get $i) (local.get $s))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $s)))`;

const FIB_N = 24; // 75 025 returns, 150 049 calls
const FIB_CALLS = 150_049;
const LOOP_N = 2_000_000;

async function main(): Promise<void> {
  const wabt = await (require('wabt') as () => Promise<Wabt>)();
  const mod = wabt.parseWat('hooks.wat', WAT);
  const plainBytes = mod.toBinary({}).buffer;
  mod.destroy();
  const inst = await instrument(plainBytes, CHECK_BUDGET);
  const plain = new WebAssembly.Instance(new WebAssembly.Module(plainBytes), {});
  const memory = new WebAssembly.Memory({ initial: 1 });
  const instrumented = new WebAssembly.Instance(new WebAssembly.Module(inst.bytes), { pws_watchdog: { check: () => CHECK_BUDGET, memory } });
  type Fn = (n: number) => number;
  const run = (i: WebAssembly.Instance, name: string, n: number): number => {
    const f = i.exports[name] as Fn;
    const t = process.hrtime.bigint();
    f(n);
    return Number(process.hrtime.bigint() - t);
  };
  const best = { plainFib: Infinity, instFib: Infinity, plainSum: Infinity, instSum: Infinity };
  for (let i = 0; i < 400; i++) {
    best.plainFib = Math.min(best.plainFib, run(plain, 'fib', FIB_N));
    best.instFib = Math.min(best.instFib, run(instrumented, 'fib', FIB_N));
    best.plainSum = Math.min(best.plainSum, run(plain, 'sum', LOOP_N));
    best.instSum = Math.min(best.instSum, run(instrumented, 'sum', LOOP_N));
  }
  const perCall = (best.instFib - best.plainFib) / FIB_CALLS;
  const perIter = (best.instSum - best.plainSum) / LOOP_N;
  console.log(`fib(${FIB_N}): ${(best.plainFib / FIB_CALLS).toFixed(2)} ns/call plain, ${(best.instFib / FIB_CALLS).toFixed(2)} instrumented: +${perCall.toFixed(2)} ns per call (its entry hook)`);
  console.log(`loop: ${(best.plainSum / LOOP_N).toFixed(3)} ns/iteration plain, ${(best.instSum / LOOP_N).toFixed(3)} instrumented: +${perIter.toFixed(3)} ns per iteration (loop hook)`);
}

main().then(() => process.exit(0), (err: unknown) => {
  console.error(err);
  process.exit(1);
});
