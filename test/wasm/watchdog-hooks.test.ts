import assert from 'node:assert/strict';
import { test } from 'node:test';
import { WasmBinaryError } from '../../src/wasm/binary';
import { instrument, WATCHDOG_BUDGET_EXPORT, WATCHDOG_CHECK, WATCHDOG_MEMORY, WATCHDOG_MODULE } from '../../src/wasm/instrument';
import { placeWatchdogHooks } from '../../src/wasm/watchdog-hooks';
import { watToWasm } from '../support/wat';

// The watchdog's hooks (src/wasm/watchdog-hooks.ts): one per loop header and per entry of a function that calls,
// none where an earlier one already runs at every entry, none in leaves; the rewritten code computes what the
// original did, whatever instructions it uses; and unbounded execution still meets a hook.

const TARGETS = { budgetGlobal: 0, check: 0 };

test('hooks go on loop headers and on the entries of calling functions, not on leaves nor where a loop comes first', async () => {
  const bytes = await watToWasm(`(module
    (func $leaf (result i32) (i32.add (i32.const 1) (i32.const 2)))
    (func $leafLoop (local $i i32)
      (loop $l (local.set $i (i32.add (local.get $i) (i32.const 1))) (br_if $l (i32.lt_u (local.get $i) (i32.const 9)))))
    (func $caller (drop (call $leaf)))
    (func $goStyle (param $pc i32) (result i32) (local $sp i32)
      (local.set $sp (i32.const 8))
      (block $exit (loop $dispatch (br_if $exit (local.get $pc)) (drop (call $leaf)) (local.set $pc (i32.const 1)) (br $dispatch)))
      (i32.const 0))
    (func $branchFirst (param $x i32)
      (if (local.get $x) (then (return)))
      (loop $l (drop (call $leaf))))
    (func $tail (result i32) (return_call $leaf)))`, { features: { tail_call: true } });
  const { bytes: out, counts } = placeWatchdogHooks(bytes, TARGETS);
  // loops: leafLoop, goStyle, branchFirst; entries: caller, branchFirst (its if comes before its loop), tail.
  assert.deepEqual(counts, { loops: 3, entries: 3, leaves: 1, loopAtEntry: 1 });
  assert.ok(out.length > bytes.length);
});

test('the rewritten code computes what the original did, across instruction kinds the decoder must step over', async () => {
  const features = { simd: true, threads: true, bulk_memory: true, reference_types: true, exceptions: true, tail_call: true, multi_value: true, sat_float_to_int: true, sign_extension: true };
  const wasm = await watToWasm(`(module
    (type $binop (func (param i32 i32) (result i32)))
    (memory (export "memory") 1 1 shared)
    (table $t 4 funcref)
    (elem (table $t) (i32.const 0) func $add $sub)
    (tag $oops (param i32))
    (data $d "\\01\\02\\03\\04\\05\\06\\07\\08")
    (global $g (mut i64) (i64.const -9223372036854775808))
    (func $add (type $binop) (i32.add (local.get 0) (local.get 1)))
    (func $sub (type $binop) (i32.sub (local.get 0) (local.get 1)))
    (func $pair (param i32) (result i32 i32) (local.get 0) (i32.mul (local.get 0) (i32.const 3)))
    (func $sum (param $n i32) (result i32) (local $s i32)
      (block $done (loop $l
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $s (i32.add (local.get $s) (local.get $n)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $l)))
      (local.get $s))
    (func $pick (param $k i32) (result i32)
      (block $c (block $b (block $a (br_table $a $b $c (local.get $k))) (return (i32.const 10))) (return (i32.const 20)))
      (i32.const 30))
    (func (export "run") (result i32) (local $v v128) (local $r i32) (local $f funcref)
      (memory.init $d (i32.const 16) (i32.const 0) (i32.const 8))
      (data.drop $d)
      (memory.fill (i32.const 32) (i32.const 7) (i32.const 4))
      (memory.copy (i32.const 40) (i32.const 16) (i32.const 8))
      (local.set $v (v128.load offset=16 align=1 (i32.const 0)))
      (local.set $v (i8x16.shuffle 0 1 2 3 4 5 6 7 8 9 10 11 3 3 3 3 (local.get $v) (v128.const i32x4 0x03030303 0x03030303 0x03030303 0x03030303)))
      (local.set $v (i32x4.replace_lane 3 (local.get $v) (i32.const 100)))
      (local.set $v (v128.load32_lane offset=3 3 (i32.const 29) (local.get $v)))
      (local.set $r (i32.add (i32x4.extract_lane 0 (local.get $v)) (i32x4.extract_lane 3 (local.get $v))))
      (local.set $r (i32.add (local.get $r) (i32x4.extract_lane 1 (local.get $v))))
      (drop (i32.atomic.rmw.add (i32.const 64) (i32.const 5)))
      (atomic.fence)
      (local.set $r (i32.add (local.get $r) (i32.atomic.load (i32.const 64))))
      (local.set $r (i32.add (local.get $r) (call_indirect (type $binop) (i32.const 9) (i32.const 4) (i32.const 1))))
      (local.set $f (table.get $t (i32.const 0)))
      (local.set $r (i32.add (local.get $r) (select (result i32) (i32.const 1) (i32.const 2) (ref.is_null (local.get $f)))))
      (local.set $r (i32.add (local.get $r) (table.size $t)))
      (local.set $r (i32.add (local.get $r)
        (try (result i32) (do (throw $oops (i32.const 11))) (catch $oops) (catch_all (i32.const 0)))))
      (global.set $g (i64.add (global.get $g) (i64.const 0x7fffffffffff)))
      (local.set $r (i32.add (local.get $r) (i32.wrap_i64 (i64.shr_u (global.get $g) (i64.const 40)))))
      (local.set $r (i32.add (local.get $r) (i32.trunc_sat_f64_s (f64.add (f64.const 2.5) (f64.promote_f32 (f32.const 0.25))))))
      (local.set $r (i32.add (local.get $r) (i32.extend8_s (i32.const 0xff))))
      (local.set $r (i32.add (local.get $r) (call $sum (i32.const 100))))
      (local.set $r (i32.add (local.get $r) (i32.add (call $pick (i32.const 0)) (call $pick (i32.const 7)))))
      (local.set $r (i32.add (local.get $r) (i32.add (call $pair (i32.const 4)))))
      (local.get $r)))`, { features });
  const run = (instance: WebAssembly.Instance): number => (instance.exports['run'] as () => number)();
  const expected = run(new WebAssembly.Instance(new WebAssembly.Module(wasm), {}));

  const rewritten = await instrument(wasm, 3);
  assert.ok(rewritten.memory);
  let checks = 0;
  const memory = new WebAssembly.Memory({ initial: rewritten.memory.initial, maximum: rewritten.memory.maximum ?? rewritten.memory.initial, shared: true });
  const instance = new WebAssembly.Instance(new WebAssembly.Module(rewritten.bytes), {
    [WATCHDOG_MODULE]: { [WATCHDOG_CHECK]: () => { checks++; return 3; }, [WATCHDOG_MEMORY]: memory },
  });
  assert.equal(run(instance), expected);
  // $sum's 101 loop iterations alone spend a budget of 3 many times over.
  assert.ok(checks > 30, `${checks} checks`);
});

test('endless tail recursion through a function whose loop comes first meets that loop\'s hook, and traps when the host says so', async () => {
  const wasm = await watToWasm(`(module
    (memory (export "memory") 1)
    (global $n (mut i32) (i32.const 0))
    (func $spin (export "spin") (result i32)
      (block $out (loop $l (br_if $out (i32.const 1))))
      ;; Without hooks this ends in a different trap (integer divide by zero) instead of running for ever.
      (global.set $n (i32.add (global.get $n) (i32.const 1)))
      (drop (i32.div_u (i32.const 1) (i32.lt_u (global.get $n) (i32.const 1000000))))
      (return_call $spin)))`, { features: { tail_call: true } });
  const rewritten = await instrument(wasm, 1000);
  let checks = 0;
  const instance = new WebAssembly.Instance(new WebAssembly.Module(rewritten.bytes), {
    [WATCHDOG_MODULE]: { [WATCHDOG_CHECK]: () => (++checks < 5 ? 1000 : 0), [WATCHDOG_MEMORY]: new WebAssembly.Memory({ initial: 1 }) },
  });
  assert.throws(() => (instance.exports['spin'] as () => number)(), (err: unknown) => err instanceof WebAssembly.RuntimeError && /unreachable/.test(err.message));
  assert.equal(checks, 5);
  // The trap leaves the budget spent: the next call asks the host again at its first hook.
  assert.equal((instance.exports[WATCHDOG_BUDGET_EXPORT] as unknown as { value: number }).value, 0);
});

test('an instruction the decoder does not know is an error naming its byte, not a guess', async () => {
  const bytes = await watToWasm('(module (func nop))');
  const body = Buffer.from(bytes).lastIndexOf(Buffer.from([0x00, 0x01, 0x0b])); // no locals, nop, end
  assert.ok(body > 0);
  const bad = Uint8Array.from(bytes);
  bad[body + 1] = 0xc5; // not an opcode
  assert.throws(() => placeWatchdogHooks(bad, TARGETS), (err: unknown) => err instanceof WasmBinaryError && /unknown instruction 0xc5 at byte \d+/.test(err.message));
  assert.throws(() => placeWatchdogHooks(bytes.subarray(0, bytes.length - 2), TARGETS), WasmBinaryError);
});
