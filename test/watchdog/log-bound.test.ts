import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PluginVm } from '../../src/abi/plugin-vm';
import { createLogger } from '../../src/common/logger';
import { MAX_LOG_MESSAGE_BYTES } from '../../src/common/limits';
import { ModuleCache } from '../../src/wasm/module-cache';
import { services } from './vm-harness';

interface Wabt { parseWat(name: string, text: string): { toBinary(o: object): { buffer: Uint8Array }; destroy(): void } }

// Issue 14 item 2: host-side copies of guest data are bounded. A plugin logging 3 MiB in one proxy_log call
// gets its first MiB logged, marked as truncated, instead of a 3 MiB string and log line per call.
test('one proxy_log message is copied and logged up to 1 MiB, marked as truncated beyond', async () => {
  const wabt = await (require('wabt') as () => Promise<Wabt>)();
  const mod = wabt.parseWat('log.wat', `(module
    (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
    (memory (export "memory") 64)
    (func (export "proxy_abi_version_0_2_1"))
    (func (export "malloc") (param i32) (result i32) (i32.const 16))
    (func (export "proxy_on_context_create") (param i32 i32))
    (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
      (memory.fill (i32.const 0) (i32.const 97) (i32.const 3145728))
      (drop (call $log (i32.const 2) (i32.const 0) (i32.const 3145728)))
      (drop (call $log (i32.const 2) (i32.const 0) (i32.const 5)))
      (i32.const 1)))`);
  const bytes = mod.toBinary({}).buffer;
  mod.destroy();
  const compiled = await new ModuleCache({ cacheDir: null }).compile(bytes);
  const lines: string[] = [];
  const logger = createLogger('info', { write: (line: string) => void lines.push(line) });
  const vm = PluginVm.create({ module: compiled.module, abi: compiled.abi, vmId: '', vmConfiguration: Buffer.alloc(0), environment: {}, services: services(), logger, label: 'log' });
  const root = vm.createRootContext({ name: 'log', rootId: '', configuration: Buffer.alloc(0) });
  assert.equal(vm.callGuest(root, 'proxy_on_vm_start', root.id, 0), 1);
  const messages = lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
  assert.equal(messages.length, 2);
  assert.equal(messages[0], `${'a'.repeat(MAX_LOG_MESSAGE_BYTES)}... [truncated: 3145728 bytes]`);
  assert.equal(messages[1], 'aaaaa', 'a short message is logged whole');
});
