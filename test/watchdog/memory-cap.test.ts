import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PluginStartError } from '../../src/common/errors';
import { silentLogger } from '../../src/common/logger';
import { PluginVm } from '../../src/abi/plugin-vm';
import { ModuleCache } from '../../src/wasm/module-cache';
import { DEFAULT_MEMORY_LIMIT_BYTES, WASM_PAGE_BYTES } from '../../src/wasm/memory-limit';
import { PluginDeadlineError } from '../../src/wasm/watchdog';
import { createVm, rootOf, services } from './vm-harness';

// Each VM's linear memory is capped (1 GiB by default, lower per plugin): memory.grow past the cap answers -1
// inside the guest, which carries on; an allocator that cannot cope aborts, failing only its own VM.

interface Wabt {
  parseWat(name: string, text: string, features?: Record<string, boolean>): { toBinary(o: object): { buffer: Uint8Array }; destroy(): void };
}

const MiB = 1024 * 1024;
const vmConfig = Buffer.from('grow');

async function fromWat(wat: string, overrides: { memoryLimitBytes?: number } = {}): Promise<PluginVm> {
  const wabt = await (require('wabt') as () => Promise<Wabt>)();
  const mod = wabt.parseWat('inline.wat', wat);
  const bytes = mod.toBinary({}).buffer;
  mod.destroy();
  const compiled = await new ModuleCache({ cacheDir: null }).compile(bytes);
  return PluginVm.create({
    module: compiled.module, abi: compiled.abi, vmId: '', vmConfiguration: vmConfig, environment: {}, services: services(),
    logger: silentLogger(), label: 'inline', ...overrides,
  });
}

/** A plugin that grows its memory page by page in proxy_on_vm_start until -1 and stores memory.size at 64. */
const growing = (memory: string): string => `(module
  ${memory}
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "malloc") (param i32) (result i32) (i32.const 1024))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
    (block $full (loop $more (br_if $full (i32.eq (memory.grow (i32.const 1)) (i32.const -1))) (br $more)))
    (i32.store (i32.const 64) (memory.size))
    (i32.const 1)))`;

test('memory.grow stops at the default 1 GiB cap with -1 in the guest, which goes on', async () => {
  const vm = await createVm('hostile-grow', { vmConfiguration: vmConfig });
  const root = rootOf(vm);
  assert.equal(vm.callGuest(root, 'proxy_on_vm_start', root.id, vmConfig.length), 1, 'the guest returned normally');
  assert.equal(vm.memory.getU32(64), DEFAULT_MEMORY_LIMIT_BYTES / WASM_PAGE_BYTES, 'memory.size when grow answered -1');
  assert.equal(vm.memory.size, DEFAULT_MEMORY_LIMIT_BYTES);
  assert.equal(vm.failed, undefined);
  vm.close();
});

test('a per-plugin memoryLimitBytes lowers the cap for that VM only', async () => {
  const small = await createVm('hostile-grow', { vmConfiguration: vmConfig, memoryLimitBytes: 16 * MiB });
  const other = await createVm('hostile-grow', { vmConfiguration: vmConfig, memoryLimitBytes: 32 * MiB });
  const [a, b] = [rootOf(small), rootOf(other)];
  assert.equal(small.callGuest(a, 'proxy_on_vm_start', a.id, vmConfig.length), 1);
  assert.equal(other.callGuest(b, 'proxy_on_vm_start', b.id, vmConfig.length), 1);
  assert.equal(small.memory.getU32(64), 256);
  assert.equal(other.memory.getU32(64), 512, 'the same compiled module, another cap');
  small.close();
  other.close();
});

test("a module's own smaller maximum stays its maximum; an initial size over the cap cannot start", async () => {
  const bounded = await fromWat(growing('(memory (export "memory") 1 8)'), { memoryLimitBytes: 16 * MiB });
  const root = rootOf(bounded);
  assert.equal(bounded.callGuest(root, 'proxy_on_vm_start', root.id, 4), 1);
  assert.equal(bounded.memory.getU32(64), 8, 'min(declared 8 pages, cap 256 pages)');
  bounded.close();

  await assert.rejects(fromWat(growing('(memory (export "memory") 300)'), { memoryLimitBytes: 16 * MiB }), (err: unknown) => {
    assert.ok(err instanceof PluginStartError);
    assert.match(err.message, /initial memory \(300 pages, 19660800 bytes\) is over its memory limit of 16777216 bytes/);
    return true;
  });
});

test('a module that imports its memory gets one from the host, capped the same way', async () => {
  const vm = await fromWat(growing('(import "env" "memory" (memory 2))\n  (export "memory" (memory 0))'), { memoryLimitBytes: 4 * MiB });
  const root = rootOf(vm);
  assert.equal(vm.callGuest(root, 'proxy_on_vm_start', root.id, 4), 1);
  assert.equal(vm.memory.getU32(64), 64);
  vm.close();
});

test('an AssemblyScript allocation loop fails its own VM at the cap; another VM is unaffected', async () => {
  const bomb = await createVm('hostile-alloc', { memoryLimitBytes: 32 * MiB });
  const bystander = await createVm('hostile-alloc', { memoryLimitBytes: 32 * MiB });
  const root = rootOf(bomb, 'bomb');
  assert.equal(bomb.callGuest(root, 'proxy_on_configure', root.id, 4), undefined, 'the runtime aborted');
  assert.ok(bomb.failed);
  assert.ok(!(bomb.failed.cause instanceof PluginDeadlineError), 'an out-of-memory abort, not the watchdog');
  assert.ok(bomb.memory.size <= 32 * MiB && bomb.memory.size > 24 * MiB, `grew to the cap (${bomb.memory.size} bytes)`);
  const calm = rootOf(bystander);
  assert.equal(bystander.callGuest(calm, 'proxy_on_configure', calm.id, 0), 1);
  assert.equal(bystander.failed, undefined);
  bomb.close();
  bystander.close();
});

test('a memory limit below one page is refused', async () => {
  await assert.rejects(createVm('hostile-grow', { memoryLimitBytes: 1000 }), /memory limit must be at least 65536 bytes/);
});
