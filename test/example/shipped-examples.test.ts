import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, it } from 'node:test';
import { request } from 'undici';
import { REPO_ROOT } from '../support/plugins';
import { until } from '../support/until';
import { Upstream } from '../http/helpers';

// Every file in examples/ works as shipped, from the repository root: bootstraps validate (their plugins exist
// and compile), WasmPlugin resources make a bootstrap that validates and serves traffic.
const CLI = join(REPO_ROOT, 'dist', 'src', 'cli.js');
let up: Upstream;
before(async () => {
  up = await Upstream.start();
});
after(() => up?.close());

function cli(args: string[]): { done: Promise<{ code: number | null; stdout: string; stderr: string }>; stdout: () => string; kill: () => void } {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString(); });
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
  return {
    done: new Promise((r) => child.on('close', (code) => r({ code, stdout, stderr }))),
    stdout: () => stdout,
    kill: () => child.kill('SIGTERM'),
  };
}

for (const dir of ['static', 'xds']) {
  it(`examples/${dir}/bootstrap.yaml validates as shipped`, async () => {
    const r = await cli(['validate', '-c', `examples/${dir}/bootstrap.yaml`]).done;
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /OK: 1 listener\(s\), 1 wasm filter\(s\)/);
  });
}

const resources = readdirSync(join(REPO_ROOT, 'examples', 'wasm-plugin')).filter((f) => f.endsWith('.yaml'));

it('examples/wasm-plugin holds the Higress and the Istio resource', () => {
  assert.deepEqual(resources.sort(), ['higress-add-header.yaml', 'istio-add-header.yaml']);
});

it('the Higress WasmPlugin example serves with its default and its domain rule', async () => {
  const run = cli(['run', '--wasm-plugin', 'examples/wasm-plugin/higress-add-header.yaml', '--upstream', `http://127.0.0.1:${up.port}`,
    '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--log-level', 'warn']);
  try {
    await until(() => /listening \S+ 127\.0\.0\.1:\d+/.test(run.stdout()), 60_000, 'the example listening');
    const port = /listening \S+ 127\.0\.0\.1:(\d+)/.exec(run.stdout())![1];
    let res = await request(`http://127.0.0.1:${port}/`, { headers: { host: 'api.example.com' } });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['x-go-response'], 'example-domain');
    await res.body.text();
    res = await request(`http://127.0.0.1:${port}/`);
    assert.equal(res.headers['x-go-response'], 'default');
    await res.body.text();
  } finally {
    run.kill();
    await run.done;
  }
});

it('the Istio WasmPlugin example makes a bootstrap that validates', async () => {
  const printed = await cli(['run', '--wasm-plugin', 'examples/wasm-plugin/istio-add-header.yaml', '--labels', 'app=shop', '--print-bootstrap']).done;
  assert.equal(printed.code, 0, printed.stderr);
  assert.match(printed.stdout, /name: shop\.add-header/);
});
