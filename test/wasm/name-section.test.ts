import assert from 'node:assert/strict';
import { test } from 'node:test';
import { instrument } from '../../src/wasm/instrument';
import { WasmBinaryError } from '../../src/wasm/binary';
import { withoutLocalNames } from '../../src/wasm/name-section';
import { CHECK_BUDGET } from '../../src/wasm/watchdog';
import { watToWasm } from '../support/wat';

// The watchdog rewrite keeps function names (traps print them) and drops local names, which V8 would keep in
// memory with the module for nothing.

const WAT = `(module
  (memory (export "memory") 1)
  (func $inner (param $depth i32) (result i32)
    (local $scratch i32)
    (local.set $scratch (i32.add (local.get $depth) (i32.const 1)))
    (if (i32.gt_u (local.get $scratch) (i32.const 2)) (then unreachable))
    (local.get $scratch))
  (func $outer_named_function (export "run") (param $n i32) (result i32)
    (call $inner (local.get $n))))`;

/** The ids of the name section's subsections, in order; undefined when there is no name section. */
function nameSubsections(bytes: Uint8Array): number[] | undefined {
  const sections = WebAssembly.Module.customSections(new WebAssembly.Module(bytes), 'name');
  if (sections.length === 0) return undefined;
  const b = new Uint8Array(sections[0]!);
  const ids: number[] = [];
  for (let p = 0; p < b.length;) {
    ids.push(b[p]!);
    let size = 0;
    let shift = 0;
    let q = p + 1;
    for (;; q++, shift += 7) {
      size += (b[q]! & 0x7f) * 2 ** shift;
      if ((b[q]! & 0x80) === 0) break;
    }
    p = q + 1 + size;
  }
  return ids;
}

test('local names are dropped; function names and every other section stay byte for byte', async () => {
  const named = await watToWasm(WAT, { debugNames: true });
  assert.deepEqual(nameSubsections(named), [1, 2], 'wabt wrote function and local names');
  const trimmed = withoutLocalNames(named);
  assert.deepEqual(nameSubsections(trimmed), [1]);
  assert.ok(trimmed.length < named.length);
  // Everything before the name section (the module's code and data) is unchanged.
  const plain = await watToWasm(WAT);
  assert.deepEqual(Buffer.from(trimmed.subarray(0, plain.length)), Buffer.from(plain));
  const { exports } = new WebAssembly.Instance(new WebAssembly.Module(trimmed));
  assert.equal((exports['run'] as (n: number) => number)(1), 2);
});

test('a module with no local names comes back as the same bytes', async () => {
  const plain = await watToWasm(WAT);
  assert.equal(withoutLocalNames(plain), plain);
});

test('a section that runs past the end of the module is an error, not a guess', async () => {
  const named = await watToWasm(WAT, { debugNames: true });
  assert.throws(() => withoutLocalNames(named.subarray(0, named.length - 3)), WasmBinaryError);
});

test('after the watchdog rewrite a trap still names the function it happened in, and no local names are left', async () => {
  const rewritten = await instrument(await watToWasm(WAT, { debugNames: true }), CHECK_BUDGET);
  assert.deepEqual(nameSubsections(rewritten.bytes)?.includes(2), false);
  const memory = new WebAssembly.Memory({ initial: 1 });
  const instance = new WebAssembly.Instance(new WebAssembly.Module(rewritten.bytes), { pws_watchdog: { memory, check: () => CHECK_BUDGET } });
  const run = instance.exports['run'] as (n: number) => number;
  assert.equal(run(1), 2);
  assert.throws(() => run(5), (err: unknown) => {
    assert.ok(err instanceof WebAssembly.RuntimeError);
    assert.match(String(err.stack), /at inner \(/);
    assert.match(String(err.stack), /at outer_named_function \(/);
    return true;
  });
});
