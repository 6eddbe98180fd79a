import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HostEmulator } from '../../src/testing/host-emulator';
import { pluginPath } from '../support/plugins';

test('a trap fails that stream and the VM, is logged with plugin and callback, and other plugins keep working', async () => {
  const trapping = await HostEmulator.load(pluginPath('trap'), { name: 'trapper', failurePolicy: 'FAIL_CLOSED' });
  const healthy = await HostEmulator.load(pluginPath('add-header'), { name: 'healthy', rootId: 'add_header' });

  const ok = trapping.stream();
  assert.equal(ok.sendRequestHeaders([[':path', '/']], true), 'continue');
  const concurrent = trapping.stream(); // a stream opened before the trap
  const bad = trapping.stream();
  assert.equal(bad.sendRequestHeaders([[':path', '/'], ['x-trap', '1']], true), 'failed');
  await trapping.settle();
  const failure = trapping.hostLogs.find((r) => r['msg'] === 'plugin VM failed');
  assert.ok(failure, 'the failure is logged');
  assert.equal(failure['plugin'], 'trapper');
  assert.equal(failure['callback'], 'proxy_on_request_headers');
  assert.match(String(failure['err']), /unreachable/);
  assert.ok(trapping.plugin.failed);
  // The failed VM serves nothing more: streams on it report failure, new streams are refused (FAIL_CLOSED).
  assert.equal(concurrent.sendRequestHeaders([[':path', '/']], true), 'failed');
  assert.throws(() => trapping.stream());
  ok.complete();

  const s = healthy.stream();
  assert.equal(s.sendRequestHeaders([[':path', '/']], true), 'continue');
  assert.equal(s.header('x-added-by'), 'proxy-wasm-sidecar');
  trapping.close();
  healthy.close();
});

test('FAIL_RELOAD builds a new VM for a later stream after its backoff', async () => {
  const host = await HostEmulator.load(pluginPath('trap'), { name: 'reloader', failurePolicy: 'FAIL_RELOAD', reloadBackoffMs: 0 });
  assert.equal(host.plugin.vmGeneration, 1);
  assert.equal(host.stream().sendRequestHeaders([[':path', '/'], ['x-trap', '1']], true), 'failed');
  const next = host.stream();
  assert.equal(host.plugin.vmGeneration, 2);
  assert.equal(host.plugin.failed, undefined);
  assert.equal(next.sendRequestHeaders([[':path', '/']], true), 'continue');
  host.close();
});

test('FAIL_RELOAD waits for its backoff before rebuilding', async () => {
  const host = await HostEmulator.load(pluginPath('trap'), { name: 'slow-reloader', failurePolicy: 'FAIL_RELOAD', reloadBackoffMs: 60_000 });
  host.stream().sendRequestHeaders([[':path', '/'], ['x-trap', '1']], true);
  const first = host.stream(); // the first reload is immediate; its backoff then applies to the next failure
  assert.equal(host.plugin.vmGeneration, 2);
  first.sendRequestHeaders([[':path', '/'], ['x-trap', '1']], true);
  assert.throws(() => host.stream(), 'no second reload within the backoff');
  assert.equal(host.plugin.vmGeneration, 2);
  host.close();
});

test('proc_exit from a callback ends that VM, not the process', async () => {
  const exiting = await HostEmulator.load(pluginPath('proc-exit'), { name: 'go-panic' });
  const other = await HostEmulator.load(pluginPath('add-header'), { name: 'bystander', rootId: 'add_header' });
  assert.equal(exiting.stream().sendRequestHeaders([[':path', '/']], true), 'failed');
  await exiting.settle();
  const failure = exiting.hostLogs.find((r) => r['msg'] === 'plugin VM failed');
  assert.match(String(failure?.['err']), /proc_exit\(2\)/);
  assert.ok(exiting.plugin.failed);
  assert.equal(other.stream().sendRequestHeaders([[':path', '/']], true), 'continue');
  exiting.close();
  other.close();
});
