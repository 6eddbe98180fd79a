import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { request } from 'undici';
import { parse as parseYaml } from 'yaml';
import { pluginPath, REPO_ROOT } from '../support/plugins';
import { until } from '../support/until';
import { TempDir, Upstream } from '../http/helpers';

// `run` without a bootstrap: flags (--plugin, --plugin-config, --upstream, --cluster ...) and WasmPlugin resources
// (Higress and Istio) make one; the sidecar process serves real traffic through real Go SDK plugins.
const CLI = join(REPO_ROOT, 'dist', 'src', 'cli.js');
const tmp = new TempDir();
let up: Upstream;

before(async () => {
  up = await Upstream.start();
});
after(async () => {
  await up?.close();
  tmp.cleanup();
});

interface Run {
  readonly done: Promise<{ code: number | null; stdout: string; stderr: string }>;
  readonly stop: () => Promise<void>;
  readonly stdout: () => string;
}

function cli(args: string[]): Run {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: tmp.path, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((r) => child.on('close', (code) => r({ code, stdout, stderr })));
  return {
    done,
    stdout: () => stdout,
    stop: async () => {
      child.kill('SIGTERM');
      await done;
    },
  };
}

async function serving(args: string[]): Promise<{ run: Run; url: string }> {
  // Port 0: the OS picks free ports at bind time, and run prints the listener's (no race with other tests).
  const run = cli(['run', '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--log-level', 'warn', ...args]);
  const exited = run.done.then((r) => { throw new Error(`sidecar exited ${r.code}: ${r.stderr}`); });
  await Promise.race([until(() => /listening \S+ 127\.0\.0\.1:\d+/.test(run.stdout()), 60_000, 'the sidecar printing "listening"'), exited]);
  exited.catch(() => undefined);
  const port = /listening \S+ 127\.0\.0\.1:(\d+)/.exec(run.stdout())![1];
  return { run, url: `http://127.0.0.1:${port}` };
}

it('runs a Go plugin from --plugin with its JSON configuration in front of --upstream', async () => {
  const { run, url } = await serving([
    '--plugin', pluginPath('go/add-header'), '--plugin-config', '{"value":"from-flags"}',
    '--upstream', `http://127.0.0.1:${up.port}`,
  ]);
  try {
    const res = await request(`${url}/hello`);
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['x-go-response'], 'from-flags');
    assert.equal(await res.body.text(), 'upstream saw GET /hello ');
    assert.equal(up.requests.at(-1)!.headers['x-go-request'], 'from-flags');
  } finally {
    await run.stop();
  }
});

it('takes a YAML configuration file and several plugins in order', async () => {
  const yamlFile = tmp.write('cfg.yaml', 'value: from-yaml\nrequest_header: x-order\n');
  const { run, url } = await serving([
    '--plugin', pluginPath('go/add-header'), '--name', 'first', '--plugin-config', yamlFile,
    '--plugin', pluginPath('go/add-header'), '--name', 'second', '--plugin-config', '{"value":"second","request_header":"x-order"}',
    '--upstream', `backend=http://127.0.0.1:${up.port}`,
  ]);
  try {
    const res = await request(`${url}/order`);
    assert.equal(res.statusCode, 200);
    await res.body.text();
    // The filters run in command-line order: the first plugin adds its value first.
    assert.equal(up.requests.at(-1)!.headers['x-order'], 'from-yaml, second');
  } finally {
    await run.stop();
  }
});

it('prints the bootstrap it makes, and that bootstrap validates', async () => {
  const r = await cli([
    'run', '--plugin', pluginPath('go/add-header'), '--root-id', 'r1', '--plugin-env', 'MODE=test',
    '--upstream', 'http://127.0.0.1:1', '--cluster', 'outbound|6379||redis.default.svc.cluster.local=127.0.0.1:6379', '--print-bootstrap',
  ]).done;
  assert.equal(r.code, 0, r.stderr);
  const doc = parseYaml(r.stdout) as { static_resources: { clusters: Array<{ name: string; type: string }>; listeners: unknown[] } };
  assert.deepEqual(doc.static_resources.clusters.map((c) => [c.name, c.type]), [['upstream', 'STATIC'], ['outbound|6379||redis.default.svc.cluster.local', 'STATIC']]);
  assert.match(r.stdout, /root_id: r1/);
  assert.match(r.stdout, /MODE: test/);
  const file = tmp.write('printed.yaml', r.stdout);
  const v = await cli(['validate', '-c', file]).done;
  assert.equal(v.code, 0, v.stderr);
});

it('refuses what it cannot honour, naming the flag', async () => {
  let r = await cli(['run', '--upstream', 'https://127.0.0.1:8443', '--plugin', pluginPath('go/add-header')]).done;
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--upstream: https upstreams \(UpstreamTlsContext\) are not supported/);
  r = await cli(['run', '--plugin-config', '{}']).done;
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--plugin-config describes the --plugin before it/);
  r = await cli(['run', '--plugin', pluginPath('go/add-header'), '--plugin-config', '{"a": [1,}']).done;
  assert.equal(r.code, 1);
  assert.match(r.stderr, /--plugin #1 .* --plugin-config: text is neither JSON nor YAML/);
  r = await cli(['run']).done;
  assert.equal(r.code, 1);
  assert.match(r.stderr, /nothing to run: give -c <bootstrap>, or --plugin/);
  r = await cli(['run', '-c', 'x.yaml', '--plugin', pluginPath('go/add-header')]).done;
  assert.equal(r.code, 1);
  assert.match(r.stderr, /-c: -c runs that bootstrap as it is/);
});

it('runs a Higress WasmPlugin: defaultConfig globally, matchRules as _rules_ per domain, phase and priority order', async () => {
  const file = tmp.write('higress.yaml', [
    'apiVersion: extensions.higress.io/v1alpha1',
    'kind: WasmPlugin',
    'metadata: { name: add-header, namespace: higress-system }',
    'spec:',
    `  url: file://${pluginPath('go/add-header')}`,
    '  phase: UNSPECIFIED_PHASE',
    '  priority: 100',
    '  defaultConfig: { value: global, request_header: x-order }',
    '  matchRules:',
    '  - domain: ["*.example.com"]',
    '    config: { value: example-domain, request_header: x-order }',
    '  - domain: ["off.example.org"]',
    '    configDisable: true',
    '---',
    'apiVersion: extensions.higress.io/v1alpha1',
    'kind: WasmPlugin',
    'metadata: { name: authn-first, namespace: higress-system }',
    'spec:',
    `  url: ${pluginPath('go/add-header')}`,
    '  phase: AUTHN',
    '  priority: 1',
    '  defaultConfig: { value: authn, request_header: x-order }',
    '',
  ].join('\n'));
  const { run, url } = await serving(['--wasm-plugin', file, '--upstream', `http://127.0.0.1:${up.port}`]);
  try {
    let res = await request(`${url}/a`, { headers: { host: 'www.example.com' } });
    assert.equal(res.statusCode, 200);
    await res.body.text();
    // AUTHN runs before UNSPECIFIED_PHASE whatever the priorities; the domain rule replaced the default config.
    assert.equal(up.requests.at(-1)!.headers['x-order'], 'authn, example-domain');
    res = await request(`${url}/b`, { headers: { host: 'other.test' } });
    await res.body.text();
    assert.equal(up.requests.at(-1)!.headers['x-order'], 'authn, global');
  } finally {
    await run.stop();
  }
});

it('runs an Istio WasmPlugin with pluginConfig and refuses fields it cannot honour with their path', async () => {
  const good = tmp.write('istio.yaml', [
    'apiVersion: extensions.istio.io/v1alpha1',
    'kind: WasmPlugin',
    'metadata: { name: hdr, namespace: default }',
    'spec:',
    '  selector: { matchLabels: { app: shop } }',
    `  url: file://${pluginPath('go/add-header')}`,
    '  failStrategy: FAIL_OPEN',
    '  pluginConfig: { value: istio }',
    '',
  ].join('\n'));
  const printed = await cli(['run', '--wasm-plugin', good, '--labels', 'app=shop', '--print-bootstrap']).done;
  assert.equal(printed.code, 0, printed.stderr);
  assert.match(printed.stdout, /name: default\.hdr/);
  assert.match(printed.stdout, /fail_open: true/);
  assert.match(printed.stdout, /value: '\{"value":"istio"\}'/);

  const { run, url } = await serving(['--wasm-plugin', good, '--labels', 'app=shop', '--upstream', `http://127.0.0.1:${up.port}`]);
  try {
    const res = await request(`${url}/istio`);
    assert.equal(res.headers['x-go-response'], 'istio');
    await res.body.text();
  } finally {
    await run.stop();
  }

  let r = await cli(['run', '--wasm-plugin', good, '--print-bootstrap']).done;
  assert.equal(r.code, 1);
  assert.match(r.stderr, /istio\.yaml \(document 1\): spec\.selector: selects workloads by label: pass this sidecar's labels with --labels/);

  const oci = tmp.write('oci.yaml', 'apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: { name: o }\nspec:\n  url: oci://ghcr.io/x/y:1\n');
  r = await cli(['run', '--wasm-plugin', oci]).done;
  assert.equal(r.code, 1);
  assert.match(r.stderr, /oci\.yaml \(document 1\): spec\.url: fetching plugin code from 'oci:\/\/' is not supported/);

  const typo = tmp.write('typo.yaml', `apiVersion: extensions.higress.io/v1alpha1\nkind: WasmPlugin\nmetadata: { name: t }\nspec:\n  url: ${pluginPath('go/add-header')}\n  defaultConfg: {}\n`);
  r = await cli(['run', '--wasm-plugin', typo]).done;
  assert.equal(r.code, 1);
  assert.match(r.stderr, /typo\.yaml \(document 1\): spec\.defaultConfg: unknown field 'defaultConfg'/);

  const pull = tmp.write('pull.yaml', `apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: { name: p }\nspec:\n  url: ${pluginPath('go/add-header')}\n  imagePullPolicy: Always\n`);
  r = await cli(['run', '--wasm-plugin', pull]).done;
  assert.equal(r.code, 1);
  assert.match(r.stderr, /pull\.yaml \(document 1\): spec\.imagePullPolicy: applies to oci:\/\/ images only/);

  const wrongSha = tmp.write('sha.yaml', `apiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: { name: s }\nspec:\n  url: ${pluginPath('go/add-header')}\n  sha256: "${'0'.repeat(64)}"\n`);
  r = await cli(['run', '--wasm-plugin', wrongSha]).done;
  assert.equal(r.code, 1);
  assert.match(r.stderr, /spec\.sha256: .* has sha256 [0-9a-f]{64}, not 0{64}/);
});

it('--wasm-call-deadline sets how long a plugin callback may run: a looping one is stopped at it and its stream failed closed', async () => {
  const { run, url } = await serving([
    '--plugin', pluginPath('hostile-loop'), '--upstream', `http://127.0.0.1:${up.port}`, '--wasm-call-deadline', '250',
  ]);
  try {
    assert.equal((await request(`${url}/before`)).statusCode, 200, 'a request without x-loop passes');
    const looped = await request(`${url}/loop`, { headers: { 'x-loop': '1' } });
    assert.equal(looped.statusCode, 503, 'FAIL_CLOSED: the stream of the stopped callback');
    await looped.body.dump();
  } finally {
    await run.stop();
  }
  const { stderr } = await run.done;
  assert.match(stderr, /proxy_on_request_headers ran past its deadline of 250 ms/);
});

it('refuses a --wasm-memory-limit below one Wasm page, naming it', async () => {
  const r = await cli(['run', '--plugin', pluginPath('noop-min'), '--upstream', `http://127.0.0.1:${up.port}`, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--wasm-memory-limit', '100']).done;
  assert.equal(r.code, 1);
  assert.match(r.stderr, /cannot start: .*PWS_WASM_MEMORY_LIMIT_BYTES.*at least 65536 bytes/);
});
