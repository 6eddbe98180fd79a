import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { request } from 'undici';
import { REPO_ROOT } from '../support/plugins';
import { until } from '../support/until';
import { bootstrapJson, TempDir, Upstream } from './helpers';

const CLI = join(REPO_ROOT, 'dist', 'src', 'cli.js');
const tmp = new TempDir();
after(() => tmp.cleanup());

function runCli(args: string[]): { done: Promise<{ code: number | null; stdout: string; stderr: string }>; child: ReturnType<typeof spawn>; out: () => string } {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => { stdout += c.toString(); });
  child.stderr!.on('data', (c: Buffer) => { stderr += c.toString(); });
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
  return { done, child, out: () => stdout };
}

const spec = { filters: [{ plugin: 'add-header', name: 'add', rootId: 'add_header' }], clusters: [{ name: 'backend', port: 1 }] };

it('validate exits 0 for a good bootstrap', async () => {
  const file = tmp.write('good.json', bootstrapJson(spec));
  const r = await runCli(['validate', '-c', file]).done;
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /OK: 1 listener\(s\), 1 wasm filter\(s\), 1 static cluster\(s\)/);
});

it('validate exits 1 and names the offending field', async () => {
  const doc = bootstrapJson(spec) as { static_resources: { listeners: Array<Record<string, unknown>> } };
  const bad = JSON.parse(JSON.stringify(doc)) as typeof doc;
  const hcm = (bad.static_resources.listeners[0]!['filter_chains'] as Array<{ filters: Array<{ typed_config: { route_config: { virtual_hosts: Array<{ routes: Array<{ route: { cluster: string } }> }> } } }> }>)[0]!.filters[0]!.typed_config;
  hcm.route_config.virtual_hosts[0]!.routes[0]!.route.cluster = 'nope';
  let r = await runCli(['validate', '-c', tmp.write('bad-cluster.json', bad)]).done;
  assert.equal(r.code, 1);
  assert.match(r.stderr, /static_resources\.listeners\[0\]\.filter_chains\[0\]\.filters\[0\]\.typed_config\.route_config\.virtual_hosts\[0\]\.routes\[0\]\.route\.cluster: unknown cluster 'nope'/);

  const badPolicy = JSON.parse(JSON.stringify(doc).replace('"root_id":"add_header"', '"root_id":"add_header","failure_policy":"FAIL_SOMETIMES"')) as unknown;
  r = await runCli(['validate', '-c', tmp.write('bad-policy.json', badPolicy as object)]).done;
  assert.equal(r.code, 1);
  assert.match(r.stderr, /http_filters\[0\]\.typed_config\.config\.failure_policy: unknown failure_policy 'FAIL_SOMETIMES'/);

  const typo = JSON.parse(JSON.stringify(doc).replace('"stat_prefix"', '"stat_prefx"')) as unknown;
  r = await runCli(['validate', '-c', tmp.write('typo.json', typo as object)]).done;
  assert.equal(r.code, 1);
  assert.match(r.stderr, /stat_prefx/);

  r = await runCli(['validate', '-c', join(tmp.path, 'missing.yaml')]).done;
  assert.equal(r.code, 1);
});

it('run serves traffic and drains on SIGTERM with exit 0', async () => {
  const up = await Upstream.start();
  try {
    const file = tmp.write('run.json', bootstrapJson({ ...spec, clusters: [{ name: 'backend', port: up.port }] }));
    const proc = runCli(['run', '-c', file, '--log-level', 'warn']);
    await until(() => /listening ingress 127\.0\.0\.1:\d+/.test(proc.out()), 15_000, 'listener up');
    const port = Number(/listening ingress 127\.0\.0\.1:(\d+)/.exec(proc.out())![1]);
    const res = await request(`http://127.0.0.1:${port}/via-cli`);
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['x-added-by'], 'proxy-wasm-sidecar');
    await res.body.text();
    proc.child.kill('SIGTERM');
    const r = await proc.done;
    assert.equal(r.code, 0, r.stderr);
  } finally {
    await up.close();
  }
});
