import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HttpContext } from '../../src/abi/contexts';
import { HostEmulator } from '../../src/testing/host-emulator';
import { pluginPath } from '../support/plugins';

// A deleted stream context keeps nothing of its stream: V8 keeps rehashed tables of the contexts Map linked to the
// next one, so a context such a table still holds was a GC root for its whole stream (headers, filter chain,
// router) until a full collection, which under bursty load promoted megabytes per scavenge
// (bench/profile/burst-gc.ts). These check the lifetime rule itself.

test('a stream context is unregistered and drops its stream state when the stream ends', async () => {
  const host = await HostEmulator.load(pluginPath('add-header'), { rootId: 'add_header', configuration: 'v' });
  try {
    const vm = host.plugin.vm;
    const s = host.stream();
    assert.equal(s.sendRequestHeaders([[':path', '/'], [':method', 'GET']], true), 'continue');
    const ctx = [...vm.contexts.values()].find((c): c is HttpContext => c instanceof HttpContext);
    assert.ok(ctx, 'the stream has a context while it runs');
    assert.equal(ctx.stream.requestHeaders?.some(([k]) => k === 'x-added-by'), true);
    s.complete();
    assert.equal(vm.contexts.has(ctx.id), false);
    assert.throws(() => ctx.stream, (err: Error & { code?: string }) => err.code === 'PWS_ERR_CONTEXT_DELETED');
  } finally {
    host.close();
  }
});

test('the root context outlives its streams and keeps working', async () => {
  const host = await HostEmulator.load(pluginPath('add-header'), { rootId: 'add_header', configuration: 'v' });
  try {
    for (let i = 0; i < 3; i++) {
      const s = host.stream();
      assert.equal(s.sendRequestHeaders([[':path', '/'], [':method', 'GET']], true), 'continue');
      assert.equal(s.header('x-added-by'), 'v');
      s.complete();
    }
    assert.equal([...host.plugin.vm.contexts.values()].filter((c) => c instanceof HttpContext).length, 0);
  } finally {
    host.close();
  }
});
