// Failure policies: a plugin that traps (plugins/wat/trap.wat on `x-trap`) under each failure_policy, in front of
// add-header. What the trapping request gets, and what the requests after it get (the VM is dead: fail open,
// fail closed, or reloaded), must match Envoy. One Envoy per policy: a dead VM cannot be shared between cases.
import { after, before, describe, it } from 'node:test';
import { assertExplained, Oracle } from './harness';

const POLICIES = [undefined, 'FAIL_OPEN', 'FAIL_CLOSED', 'FAIL_RELOAD'] as const;

for (const policy of POLICIES) {
  const label = policy ?? 'default';
  describe(`oracle: trap under failure_policy ${label}`, () => {
    let oracle: Oracle;
    before(async () => {
      oracle = await Oracle.start({
        name: `failure-${label}`,
        filters: [
          { plugin: 'trap', name: 'trap', rootId: '', ...(policy ? { failurePolicy: policy } : {}) },
          { plugin: 'add-header', name: 'add-header', rootId: 'add_header', configuration: 'after-trap' },
        ],
        clusters: [{ name: 'upstream' }],
      });
    });
    after(async () => {
      await oracle?.close();
    });

    const steps = [
      ['before', { path: '/before' }],
      ['trap', { path: '/trap', headers: { 'x-trap': '1' } }],
      ['after-1', { path: '/after-1' }],
      ['after-2', { path: '/after-2' }],
      ['trap-again', { path: '/trap-again', headers: { 'x-trap': '1' } }],
      ['after-3', { path: '/after-3' }],
    ] as const;
    for (const [id, req] of steps) {
      it(id, async (t) => {
        const { diffs } = await oracle.exchange(id, req);
        assertExplained(diffs, (m) => t.diagnostic(m));
      });
    }
    it('stats', async (t) => {
      assertExplained(await oracle.statDiffs(['wasm', 'cluster.upstream.']), (m) => t.diagnostic(m));
    });
  });
}
