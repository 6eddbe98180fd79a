import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Writable } from 'node:stream';
import pino from 'pino';
import { PluginVm } from '../../src/abi/plugin-vm';
import { ModuleCache } from '../../src/wasm/module-cache';
import { MAX_FD_WRITE_BYTES } from '../../src/wasm/wasi';
import { CHECK_BUDGET, PluginDeadlineError } from '../../src/wasm/watchdog';
import { rootOf, services } from './vm-harness';

// Host-side copies of guest bytes are bounded: one WASI fd_write whose iovecs all point at the same 16 MiB takes
// at most MAX_FD_WRITE_BYTES and says so in nwritten (a short write), instead of copying iovecs x 16 MiB.

interface Wabt {
  parseWat(name: string, text: string, features?: Record<string, boolean>): { toBinary(o: object): { buffer: Uint8Array }; destroy(): void };
}

const WAT = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 257)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_context_create") (param i32 i32))
  ;; 64 iovecs at 128, each (65536, 16 MiB); result errno at 96, nwritten at 100.
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (local $i i32)
    (memory.fill (i32.const 65536) (i32.const 65) (i32.const 16777216))
    (loop $fill
      (i32.store (i32.add (i32.const 128) (i32.mul (local.get $i) (i32.const 8))) (i32.const 65536))
      (i32.store (i32.add (i32.const 132) (i32.mul (local.get $i) (i32.const 8))) (i32.const 16777216))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $fill (i32.lt_u (local.get $i) (i32.const 64))))
    (i32.store (i32.const 96) (call $write (i32.const 1) (i32.const 128) (i32.const 64) (i32.const 100)))
    (i32.const 1)))`;

test('one fd_write copies at most MAX_FD_WRITE_BYTES and reports the short write', async () => {
  const wabt = await (require('wabt') as () => Promise<Wabt>)();
  const mod = wabt.parseWat('fd-write.wat', WAT, { bulk_memory: true });
  const bytes = mod.toBinary({}).buffer;
  mod.destroy();
  const compiled = await new ModuleCache({ cacheDir: null }).compile(bytes);
  let logged = 0;
  const sink = new Writable({ write(chunk: Buffer, _e, cb) { logged += chunk.length; cb(); } });
  const vm = PluginVm.create({
    module: compiled.module, abi: compiled.abi, vmId: '', vmConfiguration: Buffer.alloc(0), environment: {}, services: services(),
    logger: pino({ level: 'info' }, sink), label: 'fd-write',
  });
  const root = rootOf(vm);
  assert.equal(vm.callGuest(root, 'proxy_on_vm_start', root.id, 0), 1);
  assert.equal(vm.memory.getU32(96), 0, 'errno SUCCESS');
  assert.equal(vm.memory.getU32(100), MAX_FD_WRITE_BYTES, 'nwritten: a short write');
  await new Promise((r) => setImmediate(r));
  assert.ok(logged < 2 * MAX_FD_WRITE_BYTES, `the host logged ${logged} bytes, not 64 x 16 MiB`);
  vm.close();
});

test('a loop whose every iteration is a slow host call (logging 1 MiB) stops near its deadline, not after CHECK_BUDGET calls', async () => {
  const wabt = await (require('wabt') as () => Promise<Wabt>)();
  const mod = wabt.parseWat('log-loop.wat', `(module
    (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
    (memory (export "memory") 17)
    (func (export "proxy_abi_version_0_2_1"))
    (func (export "malloc") (param i32) (result i32) (i32.const 1024))
    (func (export "proxy_on_context_create") (param i32 i32))
    (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
      (memory.fill (i32.const 65536) (i32.const 65) (i32.const 1048576))
      (loop $again (drop (call $log (i32.const 2) (i32.const 65536) (i32.const 1048576))) (br $again))
      (i32.const 1)))`, { bulk_memory: true });
  const bytes = mod.toBinary({}).buffer;
  mod.destroy();
  const compiled = await new ModuleCache({ cacheDir: null }).compile(bytes);
  let lines = 0;
  const sink = new Writable({ write(_chunk: Buffer, _e, cb) { lines++; cb(); } });
  const vm = PluginVm.create({
    module: compiled.module, abi: compiled.abi, vmId: '', vmConfiguration: Buffer.alloc(0), environment: {}, services: services(),
    logger: pino({ level: 'info' }, sink), label: 'log-loop', startDeadlineMs: 300,
  });
  const root = rootOf(vm);
  let calls = 0;
  const log = vm.pluginLog.bind(vm);
  vm.pluginLog = (level, message) => { calls++; log(level, message); };
  assert.equal(vm.callGuest(root, 'proxy_on_vm_start', root.id, 0), undefined);
  assert.ok(vm.failed?.cause instanceof PluginDeadlineError);
  assert.ok(calls > 0 && calls < CHECK_BUDGET, `stopped after ${calls} host calls (lines written: ${lines})`);
  vm.close();
});
