import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { until } from '../support/until';
import { drainCases, ShutdownFixture } from '../cli/shutdown-support';

// Shutdown always ends with workers (issue 14 item 3; --concurrency 1 is test/cli/shutdown.test.ts). The
// half-open client is the case that used to keep --concurrency 2 waiting for ever.

let fixture: ShutdownFixture;
before(async () => { fixture = await ShutdownFixture.start(); });
after(async () => { await fixture?.close(); });

describe('--concurrency 2', () => {
  for (const [name, fn] of drainCases(() => fixture, 2)) it(name, fn);

  it('SIGINT after SIGTERM exits at once with 130', async () => {
    const r = await fixture.run(['--concurrency', '2', '--drain-timeout-ms', '600000']);
    const client = await fixture.stuckRequest(r, false);
    r.child.kill('SIGTERM');
    await until(() => /"msg":"draining"/.test(r.stderr()), 10_000, 'draining');
    r.child.kill('SIGINT');
    assert.deepEqual(await r.exited, { code: 130, signal: null }, r.stderr());
    await client.closed;
  });

  it('a shutdown that runs past the drain time and its grace exits 1', async () => {
    // Grace 0: the deadline is the drain time itself, set before the drain starts, so it comes first while the
    // drain still waits on the stuck request.
    const r = await fixture.run(['--concurrency', '2', '--drain-timeout-ms', '1500', '--shutdown-grace-ms', '0']);
    const client = await fixture.stuckRequest(r, false);
    r.child.kill('SIGTERM');
    assert.deepEqual(await r.exited, { code: 1, signal: null }, r.stderr());
    assert.match(r.stderr(), /shutdown did not finish within 1500 ms \(drain 1500 ms \+ grace 0 ms\): exiting/);
    await client.closed;
  });
});
