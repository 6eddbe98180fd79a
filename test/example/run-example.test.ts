import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from '../support/plugins';

// The README's first command runs this example; CI runs it end to end with a real redis-server.

async function runCheck(script: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [join(REPO_ROOT, 'dist', 'src', 'example', script), '--check'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { code, stdout, stderr };
}

test('the bundled example: redis-server, upstream and sidecar; the plugin passes, rejects a replay, refuses no nonce', async () => {
  const { code, stdout, stderr } = await runCheck('run-example.js');
  assert.equal(code, 0, `example --check failed:\n${stdout}\n${stderr}`);
  const lines = stdout.trim().split('\n');
  assert.deepEqual(lines.map((l) => l.slice(0, 3)), ['ok ', 'ok ', 'ok ']);
  assert.match(lines[0]!, /: 200 hello from the upstream: GET \//);
  assert.match(lines[1]!, /: 429 replay detected/);
  assert.match(lines[2]!, /: 400 missing x-nonce header/);
});

test('the xDS example: the plugin follows a live endpoint move served by the test control plane', async () => {
  const { code, stdout, stderr } = await runCheck('run-xds-example.js');
  assert.equal(code, 0, `xds example --check failed:\n${stdout}\n${stderr}`);
  assert.match(stdout, /EDS version 2 ACKed/);
  assert.match(stdout, /keys on A: replay-protection:before-move; keys on B: replay-protection:after-move/);
});
