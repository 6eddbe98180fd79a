import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT } from '../support/plugins';
import { REFUSED_PORT } from '../support/ports';
import { until } from '../support/until';
import { bootstrapJson } from '../http/helpers';
import { CLI, drainCases, ShutdownFixture } from './shutdown-support';

// Shutdown always ends (issue 14 item 3), the real CLI as a child process, --concurrency 1 (the same cases with
// workers are in test/workers/shutdown.test.ts): SIGTERM drains and exits whatever a client connection or an
// upstream is doing, a second signal exits at once, and the exit code says which.

let fixture: ShutdownFixture;
before(async () => { fixture = await ShutdownFixture.start(); });
after(async () => { await fixture?.close(); });

describe('--concurrency 1', () => {
  for (const [name, fn] of drainCases(() => fixture, 1)) it(name, fn);
});

it('SIGTERM while the sidecar starts exits at once with 143', async () => {
  // Start waits for the initial xDS fetch, with no timeout (0s), from a control plane that is not there.
  const doc = bootstrapJson({ filters: [], clusters: [{ name: 'backend', port: fixture.up.port }, { name: 'xds-grpc', port: REFUSED_PORT }] });
  Object.assign(doc, {
    admin: { address: { socket_address: { address: '127.0.0.1', port_value: 0 } } },
    dynamic_resources: {
      ads_config: { api_type: 'GRPC', transport_api_version: 'V3', grpc_services: [{ envoy_grpc: { cluster_name: 'xds-grpc' } }] },
      cds_config: { ads: {}, resource_api_version: 'V3', initial_fetch_timeout: '0s' },
    },
  });
  const file = fixture.tmp.write('starting.json', doc);
  const child = spawn(process.execPath, [CLI, 'run', '-c', file, '--log-level', 'info'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
  await until(() => /"msg":"admin listening"/.test(stderr) || child.exitCode !== null, 30_000, 'admin listening');
  child.kill('SIGTERM');
  assert.deepEqual(await exited, { code: 143, signal: null }, stderr);
});

it('an idle sidecar exits 0 on SIGINT', async () => {
  const r = await fixture.run([]);
  r.child.kill('SIGINT');
  assert.deepEqual(await r.exited, { code: 0, signal: null }, r.stderr());
});
