import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { HostEmulator } from '../../src/testing/host-emulator';
import { ModuleCache } from '../../src/wasm/module-cache';
import { pluginPath } from '../support/plugins';

test('an AssemblyScript 0.2.1 plugin adds headers in both directions and sees its configuration', async () => {
  const host = await HostEmulator.load(pluginPath('add-header'), { rootId: 'add_header', configuration: 'from-config' });
  assert.equal(host.plugin.abi, '0.2.1');
  const s = host.stream();
  assert.equal(s.sendRequestHeaders([[':path', '/'], [':method', 'GET']], true), 'continue');
  assert.equal(s.header('x-added-by'), 'from-config');
  assert.equal(s.sendResponseHeaders([[':status', '200']], true), 'continue');
  assert.equal(s.header('x-added-by', s.responseHeaders), 'from-config');
  s.complete();
  host.close();
});

test('the compiled module is reused for every load of the same bytes', async () => {
  const cache = new ModuleCache();
  const bytes = readFileSync(pluginPath('add-header'));
  const a = await cache.compile(bytes);
  const b = await cache.compile(Buffer.from(bytes));
  assert.equal(a.module, b.module);
  assert.equal(cache.size, 1);
});

test('a module without an ABI marker is refused, naming its exports', async () => {
  await assert.rejects(HostEmulator.load(pluginPath('no-marker')), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'PWS_ERR_PLUGIN_LOAD');
    assert.match(err.message, /proxy_abi_version/);
    assert.match(err.message, /exports: memory, malloc, proxy_on_vm_start/);
    return true;
  });
});

test('bytes that are not WebAssembly give a load error, not a crash', async () => {
  await assert.rejects(HostEmulator.load(Buffer.from('not wasm at all')), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'PWS_ERR_PLUGIN_LOAD');
    return true;
  });
});

test('proxy_on_configure returning false fails the plugin with a clear error', async () => {
  await assert.rejects(HostEmulator.load(pluginPath('reject-config'), { name: 'picky' }), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'PWS_ERR_PLUGIN_START');
    assert.match(err.message, /picky.*proxy_on_configure returned false/);
    return true;
  });
});

test('a Go 1.24 wasip1 import set links, initializes, and sees only the configured environment', async () => {
  process.env['PWS_SECRET_SHOULD_NOT_LEAK'] = 'leak';
  const host = await HostEmulator.load(pluginPath('go-wasip1-imports'), {
    name: 'go-like',
    environment: { REGION: 'eu', MODE: 'test' },
  });
  await host.settle();
  assert.equal(host.plugin.abi, '0.2.100');
  assert.deepEqual(host.logMessages('info'), ['go init', 'env=REGION=eu MODE=test ']);
  assert.ok(!host.logs.some((l) => l.message.includes('leak')));
  host.close();
});

test('ABI 0.1.0: two-parameter header callbacks, missing header is OK and empty, proxy_get_configuration', async () => {
  const host = await HostEmulator.load(pluginPath('abi-0-1-0'), { configuration: 'abc' });
  assert.equal(host.plugin.abi, '0.1.0');
  const mem = host.plugin.vm.memory;
  assert.equal(mem.getU32(264), 0);
  assert.equal(mem.getU32(268), 3);
  const s = host.stream();
  assert.equal(s.sendRequestHeaders([[':path', '/']]), 'continue');
  assert.equal(mem.getU32(256), 0, 'missing header: OK in 0.1.0');
  assert.equal(mem.getU32(260), 0, 'with an empty value');
});
