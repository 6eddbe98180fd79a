import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { REPO_ROOT } from '../support/plugins';
import { until } from '../support/until';
import { bootstrapJson, TempDir, Upstream } from '../http/helpers';

// `proxy-wasm-sidecar run --concurrency 2` as a child process: both workers serve, and SIGTERM lets a request
// that is in flight on a worker finish before the process exits 0.

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli.js');
const tmp = new TempDir();
after(() => tmp.cleanup());

function get(url: string): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { body += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

it('run --concurrency 2 serves from both workers and drains an in-flight request on SIGTERM', async () => {
  let release: (() => void) | undefined;
  const up = await Upstream.start((req, res) => {
    if (req.url === '/slow') {
      release = () => res.end('slow done');
      return;
    }
    res.end('ok');
  });
  try {
    const file = tmp.write('run-workers.json', bootstrapJson({
      filters: [{ plugin: 'worker-probe', name: 'probe', rootId: 'worker_probe', vmId: 'probe' }],
      clusters: [{ name: 'backend', port: up.port }],
    }));
    const child = spawn(process.execPath, [CLI, 'run', '-c', file, '--concurrency', '2', '--log-level', 'warn', '--drain-timeout-ms', '5000'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    await until(() => /listening ingress 127\.0\.0\.1:\d+/.test(stdout), 20_000, 'listener up');
    const url = `http://127.0.0.1:${/listening ingress 127\.0\.0\.1:(\d+)/.exec(stdout)![1]}`;

    const vms = new Set<string>();
    // Both workers accept on duplicates of one socket and the kernel wakes whichever it likes: with one connection
    // at a time, the same idle worker can win every accept for a long while. Eight at once keep one busy.
    await until(async () => {
      for (const r of await Promise.all(Array.from({ length: 8 }, () => get(`${url}/hello`)))) {
        assert.equal(r.status, 200);
        vms.add(String(r.headers['x-vm-number']));
      }
      return vms.size === 2;
    }, 30_000, 'both workers served');

    const slow = get(`${url}/slow`);
    await until(() => release !== undefined, 5000, 'the slow request reached the upstream');
    child.kill('SIGTERM');
    // Once draining, the public listener no longer accepts.
    await until(async () => get(`${url}/after`).then(() => false, () => true), 5000, 'listener closed');
    release!();
    const r = await slow;
    assert.equal(r.status, 200);
    assert.equal(r.body, 'slow done');
    assert.equal(await exited, 0, stderr);
  } finally {
    await up.close();
  }
});
