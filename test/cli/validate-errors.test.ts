import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { REPO_ROOT } from '../support/plugins';
import { bootstrapJson, TempDir } from '../http/helpers';

// validate reports every field error in a file at once; files that are not a bootstrap (a config dump, a
// ConfigMap, a WasmPlugin) are named with what to pass instead; run's errors name the file and the path too.
const CLI = join(REPO_ROOT, 'dist', 'src', 'cli.js');
const tmp = new TempDir();
after(() => tmp.cleanup());

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
  return new Promise((r) => child.on('close', (code) => r({ code, stdout, stderr })));
}

const spec = { filters: [{ plugin: 'add-header', name: 'add', rootId: 'add_header' }], clusters: [{ name: 'backend', port: 1 }] };

it('lists every field error of a bootstrap, each with its path', async () => {
  const text = JSON.stringify(bootstrapJson(spec))
    .replace('"stat_prefix"', '"stat_prefx"')
    .replace('"connect_timeout":"1s"', '"connect_timeout":"soon"')
    .replace('"id":"test-node"', '"id":"test-node","clustr":"x"');
  const r = await cli(['validate', '-c', tmp.write('three.json', text)]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /is invalid: \d+ errors\n/);
  assert.match(r.stderr, /  PWS_ERR_CONFIG: node\.clustr: unknown field 'clustr'/);
  assert.match(r.stderr, /  PWS_ERR_CONFIG: static_resources\.listeners\[0\]\.filter_chains\[0\]\.filters\[0\]\.typed_config\.stat_prefx: unknown field 'stat_prefx'/);
  assert.match(r.stderr, /  PWS_ERR_CONFIG: static_resources\.clusters\[0\]\.connect_timeout: expected a Duration string/);
});

it('lists the errors found reading listeners too: a route to an unknown cluster and a bad filter, each with its path', async () => {
  const doc = bootstrapJson(spec) as { static_resources: { listeners: Array<Record<string, unknown>> } };
  const text = JSON.stringify(doc)
    .replace('"cluster":"backend"', '"cluster":"nope"')
    .replace('"root_id":"add_header"', '"root_id":"add_header","failure_policy":"FAIL_SOMETIMES"');
  const r = await cli(['validate', '-c', tmp.write('two-semantic.json', text)]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /is invalid: 2 errors\n/);
  assert.match(r.stderr, /routes\[0\]\.route\.cluster: unknown cluster 'nope'/);
  assert.match(r.stderr, /http_filters\[0\]\.typed_config\.config\.failure_policy: unknown failure_policy 'FAIL_SOMETIMES'/);
});

it('names a config dump, a ConfigMap and a WasmPlugin, and says what to pass instead', async () => {
  const dump = join('/work/shared/vectors', 'higress_config_dump.json');
  const dumpFile = existsSync(dump) ? dump : tmp.write('dump.json', { configs: [{ '@type': 'type.googleapis.com/envoy.admin.v3.BootstrapConfigDump', bootstrap: {} }] });
  let r = await cli(['validate', '-c', dumpFile]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /is an admin \/config_dump, not a bootstrap: its bootstrap is the BootstrapConfigDump entry, e\.g\. `jq /);

  const configMaps = readdirSync(join(REPO_ROOT, 'deploy', 'kubernetes')).filter((f) => /configmap/i.test(f));
  assert.ok(configMaps.length > 0, 'deploy/kubernetes has a ConfigMap');
  r = await cli(['validate', '-c', join('deploy', 'kubernetes', configMaps[0]!)]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /is a Kubernetes ConfigMap, not a bootstrap: extract data\["[^"]+"\], e\.g\. `kubectl get configmap/);

  r = await cli(['validate', '-c', 'examples/wasm-plugin/higress-add-header.yaml']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /is a extensions\.higress\.io\/v1alpha1 WasmPlugin resource, not a bootstrap: run it with `run --wasm-plugin examples\/wasm-plugin\/higress-add-header\.yaml`/);

  r = await cli(['run', '-c', 'examples/wasm-plugin/higress-add-header.yaml']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot start: .*WasmPlugin resource, not a bootstrap/);
});

it('run names the file and the path of a bad bootstrap', async () => {
  const file = tmp.write('bad-run.json', JSON.stringify(bootstrapJson(spec)).replace('"stat_prefix"', '"stat_prefx"'));
  const r = await cli(['run', '-c', file]);
  assert.equal(r.code, 1);
  assert.ok(r.stderr.includes(`cannot start: ${file}: PWS_ERR_CONFIG: static_resources.listeners[0].filter_chains[0].filters[0].typed_config.stat_prefx: unknown field 'stat_prefx'`), r.stderr);
});
