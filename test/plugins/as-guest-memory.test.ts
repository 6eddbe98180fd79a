import assert from 'node:assert/strict';
import { it } from 'node:test';
import { HostEmulator } from '../../src/testing/host-emulator';
import { pluginPath } from '../support/plugins';

// Issue 13 item 4: the AssemblyScript plugins' guest memory doubled every few seconds under load. Their shared
// reader (plugins/as/lib/higress.ts) copied every host result and left the SDK-malloc'd buffer pinned, so each
// header value read stayed alive for ever. With the buffers released, memory stays where it is after warm-up.
it('an AssemblyScript plugin reading headers on 20,000 streams keeps its guest memory flat after warm-up', async () => {
  const emulator = await HostEmulator.load(pluginPath('http-test'), { name: 'mem', rootId: '', configuration: 'mode=pass name=mem' });
  try {
    const value = 'v'.repeat(512);
    const run = (n: number): void => {
      for (let i = 0; i < n; i++) {
        const s = emulator.stream();
        // The plugin reads x-deny and x-seen-by (and rewrites x-seen-by) on every request.
        s.sendRequestHeaders([[':method', 'GET'], [':path', `/${i}`], [':authority', 'x'], ['x-seen-by', value], ['x-deny', 'nobody']], true);
        s.complete();
      }
    };
    run(2000);
    const warm = emulator.plugin.vm.memory.size;
    run(18_000);
    assert.equal(emulator.plugin.vm.memory.size, warm, `guest memory grew from ${warm} bytes`);
  } finally {
    emulator.close();
  }
});
