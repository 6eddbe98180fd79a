import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { PluginLoadError } from '../../src/common/errors';
import { ModuleCache, moduleInstrumentation } from '../../src/wasm/module-cache';
import { WATCHDOG_MODULE } from '../../src/wasm/instrument';
import { pluginPath } from '../support/plugins';
import { createVm } from './vm-harness';

// Instrumented modules are kept on disk by the original code's sha256, so a restart skips binaryen; a file that
// does not parse or compile is rewritten, never trusted.

const dir = mkdtempSync(join(tmpdir(), 'pws-instrument-cache-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const code = readFileSync(pluginPath('hostile-loop'));

test('the first load instruments and stores the result; the next ModuleCache loads it from disk', async () => {
  const first = new ModuleCache({ cacheDir: dir });
  const a = await first.compile(code);
  assert.equal(first.lastLoad?.source, 'instrumented');
  assert.equal(readdirSync(dir).filter((f) => f.startsWith(a.sha256)).length, 1);
  assert.ok(WebAssembly.Module.imports(a.module).some((i) => i.module === WATCHDOG_MODULE && i.kind === 'memory'), 'memory became an import');
  assert.deepEqual(moduleInstrumentation(a.module)?.memory, { module: WATCHDOG_MODULE, name: 'memory', initial: 1, shared: false });

  const second = new ModuleCache({ cacheDir: dir });
  const b = await second.compile(code);
  assert.equal(second.lastLoad?.source, 'disk');
  assert.equal(b.sha256, a.sha256, 'keyed by the code as delivered');
  assert.deepEqual(moduleInstrumentation(b.module), moduleInstrumentation(a.module));
  const vm = await createVm('hostile-loop', { callDeadlineMs: 50 }, second);
  assert.equal(vm.failed, undefined);
  vm.close();
});

test('a corrupt cache file is ignored and rewritten', async () => {
  const sha = (await new ModuleCache({ cacheDir: dir }).compile(code)).sha256;
  const file = join(dir, readdirSync(dir).find((f) => f.startsWith(sha))!);
  writeFileSync(file, Buffer.from('PWSI\x02\x00\x00\x00{}not wasm'));
  const cache = new ModuleCache({ cacheDir: dir });
  await cache.compile(code);
  assert.equal(cache.lastLoad?.source, 'instrumented');
  const again = new ModuleCache({ cacheDir: dir });
  await again.compile(code);
  assert.equal(again.lastLoad?.source, 'disk', 'the rewritten file is good');
});

test('a malformed module is still refused with V8 words; without instrumentation nothing is recorded', async () => {
  await assert.rejects(new ModuleCache({ cacheDir: null }).compile(Buffer.from('\0asm\x01\0\0\0\x01')), (err: unknown) => {
    assert.ok(err instanceof PluginLoadError);
    assert.match(err.message, /^not a valid WebAssembly module/);
    return true;
  });
  const plain = await new ModuleCache({ instrument: false }).compile(code);
  assert.equal(moduleInstrumentation(plain.module), undefined);
  assert.ok(!WebAssembly.Module.imports(plain.module).some((i) => i.module === WATCHDOG_MODULE));
});
