import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { after, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { WATCHDOG_MODULE } from '../../src/wasm/instrument';
import { runInstrumentation } from '../../src/wasm/instrument-runner';
import { CHECK_BUDGET } from '../../src/wasm/watchdog';
import { pluginPath } from '../support/plugins';

// The watchdog rewrite runs in a child process and hands its result over through files in a temporary
// directory: nothing of binaryen stays in the sidecar, and nothing of the rewrite stays once its caller drops it.

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const scratch = mkdtempSync(join(tmpdir(), 'pws-instrument-runner-'));
const savedTmp = process.env['TMPDIR'];
process.env['TMPDIR'] = scratch;
after(() => {
  if (savedTmp === undefined) delete process.env['TMPDIR'];
  else process.env['TMPDIR'] = savedTmp;
  rmSync(scratch, { recursive: true, force: true });
});

const code = readFileSync(pluginPath('hostile-loop'));

test('the rewrite comes back whole, and leaves no temporary files', async () => {
  const result = await runInstrumentation(code, CHECK_BUDGET);
  const module = await WebAssembly.compile(result.bytes);
  assert.ok(WebAssembly.Module.imports(module).some((i) => i.module === WATCHDOG_MODULE && i.kind === 'memory'));
  assert.deepEqual(result.memory, { module: WATCHDOG_MODULE, name: 'memory', initial: 1, shared: false });
  assert.deepEqual(readdirSync(scratch), [], 'the job directory is removed');
});

test('a rewrite the caller dropped is collected: the runner keeps no reference to its last result', async () => {
  // A queue that settles to the last result (run.catch() of a fulfilled run) kept a Go module's 7 MB rewrite for the
  // life of the process.
  let result: Awaited<ReturnType<typeof runInstrumentation>> | undefined = await runInstrumentation(code, CHECK_BUDGET);
  const bytes = new WeakRef(result.bytes);
  result = undefined;
  for (let i = 0; i < 5 && bytes.deref() !== undefined; i++) {
    await nextTurn(); // a WeakRef target is kept until the job that read it has ended
    gc();
  }
  assert.equal(bytes.deref(), undefined);
});

test('a module binaryen refuses fails with its words and the next rewrite still runs', async () => {
  // Valid for nobody: the runner is given bytes that are not Wasm (ModuleCache asks V8 first; the runner itself does not).
  await assert.rejects(runInstrumentation(Buffer.from('\0asm\x01\0\0\0\x01\x02'), CHECK_BUDGET), (err: unknown) => {
    assert.ok(err instanceof Error);
    assert.match(err.message, /^binaryen cannot read the module: /);
    return true;
  });
  const result = await runInstrumentation(code, CHECK_BUDGET);
  assert.ok(result.bytes.length > code.length);
  assert.deepEqual(readdirSync(scratch), []);
});
