import assert from 'node:assert/strict';
import { it } from 'node:test';
import { vmKey } from '../../src/runtime/plugin';

// Plugins share a VM only when everything that VM starts with is the same: vm_id, vm configuration, code and
// the environment variables its WASI sees (a second plugin's variables are never dropped for the first's).
it('keys VMs by vm_id, vm configuration, code and environment', () => {
  const base = { vmId: 'v', vmConfiguration: 'c', environment: { A: '1', B: '2' } };
  assert.equal(vmKey(base, 'sha'), vmKey({ ...base, environment: { B: '2', A: '1' } }, 'sha'), 'order of variables does not matter');
  assert.notEqual(vmKey(base, 'sha'), vmKey({ ...base, environment: { A: '1' } }, 'sha'));
  assert.notEqual(vmKey(base, 'sha'), vmKey({ ...base, vmId: 'w' }, 'sha'));
  assert.notEqual(vmKey(base, 'sha'), vmKey({ ...base, vmConfiguration: 'd' }, 'sha'));
  assert.notEqual(vmKey(base, 'sha'), vmKey(base, 'other'));
});
