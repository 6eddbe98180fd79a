import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { PluginStartError } from '../../src/common/errors';
import { Sidecar } from '../../src/main';
import { silentLogger } from '../../src/common/logger';
import { DEFAULT_CALL_DEADLINE_MS, PluginDeadlineError } from '../../src/wasm/watchdog';
import { bootstrapJson, TempDir } from '../http/helpers';
import { createVm, rootOf, services } from './vm-harness';
import { HostEmulator } from '../../src/testing/host-emulator';
import { pluginPath } from '../support/plugins';
import { PluginVm } from '../../src/abi/plugin-vm';
import { ModuleCache } from '../../src/wasm/module-cache';

interface WabtModule {
  parseWat(name: string, text: string, features: Record<string, boolean>): { toBinary(o: object): { buffer: Uint8Array }; destroy(): void };
}

// The watchdog at the VM: an endless loop in each kind of guest call ends as a deadline failure, with the
// callback and the deadline in the error, and a start-up loop fails plugin start instead of hanging it.

const tmp = new TempDir();
after(() => tmp.cleanup());

function deadlineOf(err: unknown): PluginDeadlineError | undefined {
  let e: unknown = err;
  while (e instanceof Error) {
    if (e instanceof PluginDeadlineError) return e;
    e = e.cause;
  }
  return undefined;
}

test('a _start that never returns fails VM creation with the start deadline', async () => {
  await assert.rejects(createVm('hostile-loop-start', { startDeadlineMs: 100 }), (err: unknown) => {
    assert.ok(err instanceof PluginStartError);
    const deadline = deadlineOf(err);
    assert.ok(deadline, 'caused by the deadline');
    assert.equal(deadline.code, 'PWS_ERR_PLUGIN_DEADLINE');
    assert.equal(deadline.callback, '_start');
    assert.equal(deadline.deadlineMs, 100);
    assert.match(err.message, /_start failed: PluginDeadlineError: _start ran past its deadline of 100 ms/);
    return true;
  });
});

test('proxy_on_configure looping runs to the start deadline, not the per-call one, and fails the VM', async () => {
  const vm = await createVm('hostile-loop-configure', { startDeadlineMs: 300, callDeadlineMs: 50 });
  const root = rootOf(vm);
  assert.equal(vm.failed, undefined, 'proxy_on_context_create is an ordinary call and returns');
  assert.equal(vm.callGuest(root, 'proxy_on_configure', root.id, 0), undefined);
  const deadline = deadlineOf(vm.failed);
  assert.ok(deadline);
  assert.equal(deadline.callback, 'proxy_on_configure');
  assert.equal(deadline.deadlineMs, 300);
  vm.close();
});

test('a request callback looping for ever is stopped at the call deadline, logged with plugin and callback', async () => {
  const host = await HostEmulator.load(pluginPath('hostile-loop'), { name: 'looper', failurePolicy: 'FAIL_CLOSED' });
  assert.equal(host.stream().sendRequestHeaders([[':path', '/']], true), 'continue');
  assert.equal(host.stream().sendRequestHeaders([[':path', '/'], ['x-loop', '1']], true), 'failed');
  await host.settle();
  const failure = host.hostLogs.find((r) => r['msg'] === 'plugin VM failed');
  assert.ok(failure, 'the failure is logged');
  assert.equal(failure['plugin'], 'looper');
  assert.equal(failure['callback'], 'proxy_on_request_headers');
  assert.match(String(failure['err']), new RegExp(`PluginDeadlineError: proxy_on_request_headers ran past its deadline of ${DEFAULT_CALL_DEADLINE_MS} ms`));
  assert.equal(deadlineOf(host.plugin.failed)?.callback, 'proxy_on_request_headers');
  assert.throws(() => host.stream(), 'FAIL_CLOSED: the failed VM takes no new stream');
  host.close();
});

test('endless recursion with no loop at all (tail calls) is stopped by the function-entry hooks', async () => {
  const wabt = await (require('wabt') as () => Promise<WabtModule>)();
  const wat = `(module
    (memory (export "memory") 1)
    (func (export "proxy_abi_version_0_2_1"))
    (func (export "malloc") (param i32) (result i32) (i32.const 1024))
    (func (export "proxy_on_context_create") (param i32 i32))
    (func $again (export "proxy_on_vm_start") (param i32 i32) (result i32)
      (return_call $again (local.get 0) (local.get 1))))`;
  const mod = wabt.parseWat('tail.wat', wat, { tail_call: true });
  const bytes = mod.toBinary({}).buffer;
  mod.destroy();
  const cache = new ModuleCache({ cacheDir: null });
  const compiled = await cache.compile(bytes);
  const vm = PluginVm.create({
    module: compiled.module, abi: compiled.abi, vmId: '', vmConfiguration: Buffer.alloc(0), environment: {}, services: services(),
    logger: silentLogger(), label: 'tail', startDeadlineMs: 100,
  });
  const root = rootOf(vm);
  assert.equal(vm.callGuest(root, 'proxy_on_vm_start', root.id, 0), undefined);
  assert.equal(deadlineOf(vm.failed)?.callback, 'proxy_on_vm_start');
  vm.close();
});

test("a module whose start function (run by instantiation) never returns fails VM creation", async () => {
  const wabt = await (require('wabt') as () => Promise<WabtModule>)();
  const mod = wabt.parseWat('start.wat', `(module
    (memory (export "memory") 1)
    (func $init (loop $forever (br $forever)))
    (start $init)
    (func (export "proxy_abi_version_0_2_1"))
    (func (export "malloc") (param i32) (result i32) (i32.const 1024)))`, {});
  const bytes = mod.toBinary({}).buffer;
  mod.destroy();
  const compiled = await new ModuleCache({ cacheDir: null }).compile(bytes);
  assert.throws(() => PluginVm.create({
    module: compiled.module, abi: compiled.abi, vmId: '', vmConfiguration: Buffer.alloc(0), environment: {}, services: services(),
    logger: silentLogger(), label: 'start-loop', startDeadlineMs: 100,
  }), (err: unknown) => {
    assert.ok(err instanceof PluginStartError);
    assert.match(err.message, /instantiation failed: PluginDeadlineError: \(start function\) ran past its deadline of 100 ms/);
    return true;
  });
});

test('a plugin whose proxy_on_configure never returns fails sidecar start with the deadline in the error', async () => {
  const file = tmp.write('configure-loop.json', bootstrapJson({
    filters: [{ plugin: 'hostile-loop-configure', name: 'stuck-configure', rootId: '' }],
    clusters: [{ name: 'backend', port: 1 }],
  }));
  await assert.rejects(Sidecar.start({ configFile: file, logger: silentLogger(), drainTimeoutMs: 1000 }), (err: unknown) => {
    assert.ok(err instanceof Error);
    assert.match(err.message, /stuck-configure/);
    assert.match(err.message, /proxy_on_configure ran past its deadline of 10000 ms/);
    assert.ok(deadlineOf(err), 'the deadline is in the cause chain');
    return true;
  });
});
